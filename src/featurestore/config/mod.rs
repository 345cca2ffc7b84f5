//! feature_store.yaml for the feature servers, the `feast-<cr>-client` ConfigMap and the lineage server.
//!
//! Pure functions of a FeatureStore, its applied (defaulted) spec, the service hostnames and the
//! [`GraphContext`]: [`server_config`], [`client_config`] and [`lineage_config`] return the document as a
//! `serde_json::Value` whose key order is the Feast operator's (project, provider, offline_store, online_store,
//! registry, auth, entity_key_serialization_version, batch_engine, feature_server, materialization,
//! openlineage, mlflow, data_quality_monitoring), and [`to_yaml`] writes it. Errors ([`ConfigError`]) carry
//! the Feast operator's messages and never a Secret value. The server and lineage documents can hold
//! credentials read from Secrets; the graph stores them in a Secret, never in a pod spec or a log.
//!
//! Decisions where fieldwise deliberately differs from (or pins down) the Feast operator:
//! - **No registry configured.** The servers still need a registry, and the only one such a pod has is the
//!   file that the `feast-apply` init container writes on start-up. fieldwise keeps writing
//!   `registry: {registry_type: file, path: /feast-data/registry.db}` (the `feast-data` emptyDir is mounted
//!   whenever a store lacks a PVC), so registry-less FeatureStores such as the base sample keep working. The
//!   registry is rebuilt by `feast apply` on every pod start; configure `services.registry` to persist it.
//! - **`authz: {noAuth: false}`.** The Feast operator renders `auth: kubernetes` but creates no RBAC, so
//!   every request fails. fieldwise reads `noAuth: false` as "authorization wanted", i.e. the default
//!   Kubernetes authorization, in the YAML (servers and client) and, through [`authz_mode`], in the RBAC the
//!   graph creates.
//! - **Lineage server registry.** The Feast operator points the lineage server at
//!   `feast-<cr>-registry.<ns>.svc.cluster.local:6570`, the container port, which the registry Service (port
//!   80/443) does not expose. fieldwise uses the registry's service hostname (`host:80` / `host:443`, with the
//!   registry cert under TLS). When the consumer has no `connectionStringSecretRef`, the lineage server gets
//!   the SQL registry's database URL as `consumer.connection_string`, which is how it shares that database.
//! - **Registry MCP** (`mcp: {enabled: true}`) is written for a DB-backed local registry as well as a file one.
//! - **Secrets read only where needed.** OpenLineage API keys and connection strings read just their key, and
//!   OIDC settings without `secretKeyName` read just the OIDC keys, each as a YAML value; the Feast operator
//!   parses every key of the Secret, so an unrelated key (a PEM, say) could fail the whole FeatureStore.
//! - **Error messages never quote Secret contents.** Where the Feast operator appends the raw value
//!   (`secret <k> contains invalid value <v>`), fieldwise stops at the key; a conflicting `type` tag is
//!   printed only when it is a scalar.
//! - **Lineage server.** The producer is redirected to the lineage Service (and the embedded consumer marked
//!   `standalone_server: true`) only when the graph reports a lineage hostname, i.e. when it actually runs the
//!   lineage server; otherwise the user's transport settings stay, so events are not sent to a missing Service.
//! - Sections with nothing in them (`materialization` without fields) are omitted; the ODH/OpenShift CA
//!   bundle paths are not written (OpenShift TLS defaulting is out of scope).

mod auth;
mod client;
mod error;
mod extras;
mod lineage;
mod openlineage;
mod server;
mod stores;
mod values;

#[cfg(test)]
mod tests;

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, ServerConfigs, ServiceHostnames};
use kube::ResourceExt;

pub use auth::{AuthzMode, OIDC_CA_CERT_PATH, authz_mode};
pub use client::client_config;
pub use error::{ConfigError, ConfigErrorKind};
pub use extras::batch_driver_service_account;
pub use lineage::lineage_config;
pub use openlineage::LINEAGE_ENDPOINT;
pub use server::server_config;
pub use stores::{DEFAULT_ONLINE_STORE_PATH, DEFAULT_REGISTRY_PATH};

use crate::featurestore::context::GraphContext;

/// `provider` of every document.
const LOCAL_PROVIDER: &str = "local";
/// `entity_key_serialization_version` of every server and client document.
const ENTITY_KEY_SERIALIZATION_VERSION: u8 = 3;
/// The TLS key file name used when `secretKeyNames.tlsCrt` is unset.
const DEFAULT_TLS_CRT: &str = "tls.crt";

/// Everything a feature_store.yaml is built from.
#[derive(Clone, Copy, Debug)]
struct ConfigInputs<'a> {
    /// The FeatureStore, for its name and namespace.
    feature_store: &'a FeatureStore,
    /// Its applied spec: the spec with every default filled in (`status.applied`).
    applied: &'a FeatureStoreSpec,
    /// Referenced Secrets and ConfigMaps and the operator's `OIDC_ISSUER_URL`.
    context: &'a GraphContext,
    /// The service hostnames the graph computed (`status.serviceHostnames`), including a remote registry's.
    hostnames: &'a ServiceHostnames,
}

impl ConfigInputs<'_> {
    fn cr_name(&self) -> String {
        self.feature_store.name_any()
    }
}

/// The certificate file a server's TLS Secret is mounted at: `/tls/<type>/<file>`.
fn tls_cert_path(service_type: &str, file: &str) -> String {
    format!("/tls/{service_type}/{file}")
}

/// The certificate key name of a server that serves TLS (a `secretRef` and not disabled).
fn server_tls_cert(server: Option<&ServerConfigs>) -> Option<&str> {
    let tls = server?.tls.as_ref()?;
    if tls.disable == Some(true) || tls.secret_ref.is_none() {
        return None;
    }
    let crt = tls
        .secret_key_names
        .as_ref()
        .and_then(|names| names.tls_crt.as_deref());
    Some(crt.filter(|crt| !crt.is_empty()).unwrap_or(DEFAULT_TLS_CRT))
}

/// Writes a feature_store.yaml document as YAML, keys in the document's order, indented by 4 like the Feast
/// operator's encoder. Strings stay plain or quoted scalars (never folded `>` blocks), and strings a YAML 1.1
/// reader such as PyYAML would take for booleans, numbers or nulls are quoted.
pub fn to_yaml(document: &serde_json::Value) -> String {
    let options = serde_saphyr::ser_options! {
        indent_step: 4,
        prefer_block_scalars: false,
    };
    // A serde_json::Value has string keys and finite numbers only, which YAML can always represent.
    #[allow(clippy::expect_used)]
    serde_saphyr::to_string_with_options(document, options)
        .expect("a JSON value always serializes to YAML")
}
