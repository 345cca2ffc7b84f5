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
    /// Field managers whose ownership of a child fieldwise takes over before applying to it, so
    /// what they set and fieldwise does not is removed (`fieldwise run --take-over-from`).
    pub take_over_from: Vec<String>,
    /// Set when fieldwise watches some namespaces only and may not manage cluster-scoped objects
    /// (decided once at start, `crate::runtime::access`): how to grant them, for the status of
    /// each resource whose graph has some. Those children are then neither watched nor applied.
    pub cluster_scoped_off: Option<String>,
}

/// The field managers fieldwise takes over from by default, each named explicitly: never "every
/// other manager", whose fields (kube-controller-manager's revision annotation, a user's `kubectl
/// annotate`) must stay.
/// - `manager`: the Feast operator's writes. Its controller-runtime client sets no field manager,
///   so the API server names it after its User-Agent up to the first `/`, the binary's name: the
///   image runs `/manager`.
/// - `feast-operator`: the Feast operator's server-side applies (HPA, PodDisruptionBudget,
///   ServiceMonitor).
/// - `kubectl-client-side-apply`: a `kubectl apply` without `--server-side`.
pub const DEFAULT_TAKE_OVER_FROM: [&str; 3] =
    ["manager", "feast-operator", "kubectl-client-side-apply"];

/// [`DEFAULT_TAKE_OVER_FROM`], owned.
pub fn default_take_over_from() -> Vec<String> {
    DEFAULT_TAKE_OVER_FROM.map(str::to_owned).to_vec()
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
            take_over_from: default_take_over_from(),
            cluster_scoped_off: None,
        }
    }
}
