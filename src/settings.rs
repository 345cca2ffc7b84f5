//! Operator-wide settings: what the controllers' graphs depend on, and how often a settled
//! resource is resynced.

use std::time::Duration;

use crate::featurestore::context::ImageDefaults;

/// Operator-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Feast images FeatureStores run by default.
    pub images: ImageDefaults,
    pub oidc_issuer_url: Option<String>,
    /// Whether the Prometheus Operator's ServiceMonitor CRD is installed.
    pub service_monitor_available: bool,
    /// Whether the cluster is OpenShift, detected as the Feast operator does: the `route.openshift.io`
    /// API group is served.
    pub openshift: bool,
    /// Whether KEDA's ScaledObject CRD is installed.
    pub keda_available: bool,
    /// Whether the PrismCluster CRD is installed: the PrismCluster controller runs only then (an
    /// install that has only the FeatureStore CRD keeps working, and becomes ready).
    pub prism_clusters_served: bool,
    /// A resource whose workloads are settled is reconciled again after this long even if nothing
    /// changed, so drift that no watch reported is still corrected. An unchanged one costs no write.
    pub resync_period: Duration,
}

/// The default [`Settings::resync_period`], as controller-runtime operators commonly use.
pub const DEFAULT_RESYNC_PERIOD: Duration = Duration::from_secs(600);

impl Default for Settings {
    fn default() -> Self {
        Self {
            images: ImageDefaults::default(),
            oidc_issuer_url: None,
            service_monitor_available: false,
            openshift: false,
            keda_available: false,
            prism_clusters_served: true,
            resync_period: DEFAULT_RESYNC_PERIOD,
        }
    }
}
