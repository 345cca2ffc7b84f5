//! Everything the desired graph of a FeatureStore depends on besides the FeatureStore itself.
//!
//! The controller fills a [`GraphContext`] from its caches before it builds the graph, and `fieldwise render`
//! fills one from the documents it reads, so the graph stays a pure function of `(FeatureStore, GraphContext)`.

use std::collections::BTreeMap;

use fieldwise_api::v1::FeatureStore;
pub use fieldwise_apply::CoOwner;

/// The feature-server image fieldwise deploys when neither the FeatureStore nor the operator's environment names one.
pub const DEFAULT_FEATURE_SERVER_IMAGE: &str = "quay.io/feastdev/feature-server:0.66.0";
/// The image of the CronJob's `kubectl exec` containers when neither the FeatureStore nor the environment names one.
pub const DEFAULT_CRON_JOB_IMAGE: &str = "quay.io/openshift/origin-cli:4.17";
/// The Feast release whose behaviour fieldwise reproduces, reported in `status.feastVersion`.
pub const FEAST_VERSION: &str = "0.66.0";

/// Images the operator falls back to, from `RELATED_IMAGE_*` variables of its own environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `RELATED_IMAGE_FEATURE_SERVER`, else [`DEFAULT_FEATURE_SERVER_IMAGE`].
    pub feature_server: String,
    /// `RELATED_IMAGE_CRON_JOB`, else [`DEFAULT_CRON_JOB_IMAGE`].
    pub cron_job: String,
}

impl Default for ImageDefaults {
    fn default() -> Self {
        Self {
            feature_server: DEFAULT_FEATURE_SERVER_IMAGE.to_owned(),
            cron_job: DEFAULT_CRON_JOB_IMAGE.to_owned(),
        }
    }
}

impl ImageDefaults {
    /// Reads the `RELATED_IMAGE_*` overrides through `lookup` (the process environment in production).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::default();
        let non_empty = |name: &str| lookup(name).filter(|value| !value.is_empty());
        Self {
            feature_server: non_empty("RELATED_IMAGE_FEATURE_SERVER")
                .unwrap_or(defaults.feature_server),
            cron_job: non_empty("RELATED_IMAGE_CRON_JOB").unwrap_or(defaults.cron_job),
        }
    }
}

/// The data of one Secret, decoded to UTF-8 strings. Secret values must never reach logs, spans,
/// events or status.
pub use crate::runtime::secrets::{SecretData, secret_data};

/// What a FeatureStore's desired graph depends on, read from the cluster (or from `render`'s inputs).
#[derive(Clone, Debug, Default)]
pub struct GraphContext {
    /// Secrets in the FeatureStore's namespace that it references, by name. A name missing here means the
    /// Secret does not exist.
    pub secrets: BTreeMap<String, SecretData>,
    /// ConfigMaps in the FeatureStore's namespace that it references (batch engine configuration), by name.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// FeatureStores referenced through `services.registry.remote.feastRef`, keyed by `(namespace, name)`.
    pub feature_stores: BTreeMap<(String, String), FeatureStore>,
    /// Whether the `monitoring.coreos.com/v1` ServiceMonitor kind is served by the cluster.
    pub service_monitor_available: bool,
    /// Whether the cluster is OpenShift (the `route.openshift.io` API group is served).
    pub openshift: bool,
    /// Image fallbacks from the operator's environment.
    pub images: ImageDefaults,
    /// The operator's `OIDC_ISSUER_URL`, the last fallback for the OIDC discovery URL.
    pub oidc_issuer_url: Option<String>,
    /// The key of the pod template's config hash: kept in the config Secret fieldwise owns, made
    /// once when that Secret does not exist yet. The controller always sets it; without it (tests,
    /// `render` before the Secret exists) the public placeholder stands in.
    pub config_hash_key: Option<ConfigHashKey>,
    /// For each custom Role it wants (`authz.kubernetes.roles`), the other FeatureStores of its
    /// namespace that want it too (not being deleted): they share the Role. A name missing here is
    /// the FeatureStore's alone.
    pub role_sharers: BTreeMap<String, Vec<CoOwner>>,
    /// Set when the operator may not manage cluster-scoped objects (it watches some namespaces
    /// only and was not granted them, see `crate::runtime::access`): how to grant them. The
    /// graph then leaves its ClusterRoles and ClusterRoleBindings out and the status says so.
    pub cluster_scoped_off: Option<String>,
}

/// The secret key of a FeatureStore's config hash. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigHashKey(String);

impl ConfigHashKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// 32 random bytes, URL-safe base64.
    pub fn generate() -> Result<Self, getrandom::Error> {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// The key as stored; only for the config Secret and the HMAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The placeholder `render` shows; only the controller's real keys protect anything.
impl Default for ConfigHashKey {
    fn default() -> Self {
        Self(crate::render::GENERATED_PLACEHOLDER.to_owned())
    }
}

impl std::fmt::Debug for ConfigHashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigHashKey(..)")
    }
}

impl GraphContext {
    /// The Secret called `name`, or `secrets "<name>" not found` as the API server words it.
    pub fn secret(&self, name: &str) -> Result<&SecretData, String> {
        self.secrets
            .get(name)
            .ok_or_else(|| format!("secrets \"{name}\" not found"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_image_variables_override_the_defaults_when_set() {
        let images = ImageDefaults::from_env(|name| match name {
            "RELATED_IMAGE_FEATURE_SERVER" => Some("registry.local/feature-server:1".into()),
            "RELATED_IMAGE_CRON_JOB" => Some(String::new()),
            _ => None,
        });
        assert_eq!(images.feature_server, "registry.local/feature-server:1");
        assert_eq!(
            images.cron_job, DEFAULT_CRON_JOB_IMAGE,
            "an empty variable keeps the default"
        );
    }

    #[test]
    fn a_missing_secret_is_reported_as_the_api_server_words_it() {
        let context = GraphContext::default();
        assert_eq!(
            context.secret("creds").unwrap_err(),
            "secrets \"creds\" not found"
        );
    }
}
