//! Errors building a feature_store.yaml. Every message names Secrets, ConfigMaps and keys, never their values.

use crate::featurestore::names::ServiceType;

/// Why a feature_store.yaml could not be built, and which part of the FeatureStore it concerns. `Display` is
/// the message the Feast operator gives for the same problem, and never contains a Secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ConfigError {
    part: ServiceType,
    kind: ConfigErrorKind,
}

impl ConfigError {
    pub(super) fn new(part: ServiceType, kind: ConfigErrorKind) -> Self {
        Self { part, kind }
    }

    /// The part whose condition the error fails: the store or registry whose Secret is wrong,
    /// `Authorization` for OIDC, and `Online` (the feature-server Deployment) for the batch engine,
    /// OpenLineage and the lineage server, which belong to no single server.
    pub fn part(&self) -> ServiceType {
        self.part
    }

    /// What went wrong.
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

/// What went wrong building a feature_store.yaml. `Display` is the Feast operator's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// A referenced Secret does not exist.
    #[error("secrets \"{name}\" not found")]
    SecretNotFound { name: String },
    /// A store's Secret lacks the key holding its parameters (`secretKeyName`, else the store type).
    /// The Feast operator's message, then what chose the key, the field that chooses another and the
    /// keys the Secret has (key names only).
    #[error(
        "secret key {key} doesn't exist in secret {secret}: {}; {}",
        key_choice(key, field, *defaulted),
        present_keys(keys)
    )]
    MissingSecretKey {
        key: String,
        secret: String,
        /// The `secretKeyName` field that chooses the key.
        field: String,
        /// Whether the key is the default (the store type) because that field is unset.
        defaulted: bool,
        /// The keys the Secret has.
        keys: Vec<String>,
    },
    /// A Secret value is not a YAML mapping (or, for single values, not valid YAML).
    #[error("secret {key} contains invalid value")]
    InvalidSecretValue { key: String },
    /// A store's parameters carry `type` / `registry_type` naming another store type. `value` is that type
    /// name, which is configuration, not a credential; mappings and lists are not printed.
    #[error("secret key {key} in secret {secret} contains tag named {tag} with value {value}")]
    ConflictingStoreType {
        key: String,
        secret: String,
        tag: String,
        value: String,
    },
    /// OIDC authorization without any source for the discovery URL.
    #[error(
        "no OIDC discovery URL configured: set issuerUrl on the OidcAuthz CR, include auth_discovery_url in the \
         referenced Secret, or ensure the OIDC_ISSUER_URL environment variable is set on the operator pod"
    )]
    MissingOidcDiscoveryUrl,
    /// The batch-engine ConfigMap does not exist.
    #[error("configmaps \"{name}\" not found")]
    ConfigMapNotFound { name: String },
    /// The batch-engine ConfigMap lacks `configMapKey` (default `config`).
    #[error("configmap key {key} doesn't exist in configmap {config_map}")]
    MissingConfigMapKey { key: String, config_map: String },
    /// The batch-engine ConfigMap value is not a YAML mapping.
    #[error("configmap {config_map} contains invalid YAML in key {key}")]
    InvalidConfigMapYaml { key: String, config_map: String },
    /// The batch-engine configuration has no string `type`.
    #[error("batch engine config must contain 'type' field")]
    MissingBatchEngineType,
    /// Reading an OpenLineage Secret failed (`purpose` is e.g. `API key`).
    #[error("failed to read OpenLineage {purpose} from secret {secret}: {source}")]
    OpenLineageSecret {
        purpose: String,
        secret: String,
        source: Box<ConfigErrorKind>,
    },
    /// An OpenLineage Secret lacks the key fieldwise reads.
    #[error("secret \"{secret}\" does not contain the required key \"{key}\"")]
    MissingRequiredSecretKey { key: String, secret: String },
    /// An OpenLineage Secret value parses to something other than a string (`found` is its kind only).
    #[error("key \"{key}\" in secret \"{secret}\" must be a string, got {found}")]
    NonStringSecretValue {
        key: String,
        secret: String,
        found: String,
    },
    /// A remote registry without a resolved `host:port` (neither `hostname` nor a resolved feastRef).
    #[error("remote registry hostname is not resolved")]
    UnresolvedRemoteRegistry,
    /// A lineage server with neither its own database nor a SQL registry to share.
    #[error(
        "lineageServer requires a SQL database. Either set consumer.connectionStringSecretRef or configure \
         registry.local.persistence.store (SQL registry)"
    )]
    LineageServerNeedsDatabase,
    /// A lineage server under authorization without a registry service to check permissions against.
    #[error(
        "lineageServer with authz requires a registry (local or remote) so the lineage server can connect for \
         RBAC checks"
    )]
    LineageServerNeedsRegistry,
}

/// How the missing key was chosen, and how to choose another.
fn key_choice(key: &str, field: &str, defaulted: bool) -> String {
    if defaulted {
        format!(
            "the store's parameters are read from the key named after its type ({key}) unless {field} names another"
        )
    } else {
        format!("{field} names it; set it to the key that holds the parameters")
    }
}

/// `the Secret has the keys a, b`, or that it has none.
fn present_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        "the Secret has no keys".to_owned()
    } else {
        format!("the Secret has the keys {}", keys.join(", "))
    }
}
