//! Names, ports and labels of a PrismCluster's children. The names are the ADR's, one set per
//! namespace (so one PrismCluster per namespace); pods are labelled `app=<name>` as in the ADR, so
//! objects installed by hand from its manifests are adopted without a selector change.

use fieldwise_api::prism::PatternBackend;
use serde_json::{Value, json};

pub const ADMIN: &str = "prism-admin";
pub const PROXY: &str = "prism-proxy";
pub const PROXY_HPA: &str = "prism-proxy-hpa";
pub const ADMIN_DATA: &str = "prism-admin-data";
pub const BACKENDS_CONFIG: &str = "prism-backends";
pub const INGRESS: &str = "prism-ingress";
pub const SERVICE_MONITOR: &str = "prism";
pub const DASHBOARD: &str = "prism-grafana-dashboard";

pub const ADMIN_PORT: i32 = 8080;
pub const PROXY_PORT: i32 = 50051;
pub const METRICS_PORT: i32 = 9090;
pub const RUNNER_PORT: i32 = 8080;

/// The label on Services that expose a `metrics` port (what the ServiceMonitor selects).
pub const METRICS_LABEL: &str = "prism.io/metrics";
/// The pod-template annotation with the digest of the connection settings a runner consumes.
pub const BACKENDS_DIGEST: &str = "prism.io/backends-digest";

/// The Secret holding a backend's generated credentials (`username`, `password`).
pub fn credentials_secret(backend: PatternBackend) -> String {
    format!("{}-credentials", backend.as_str())
}

/// `app=<name>`: the selector and pod labels of a workload.
pub fn selector(app: &str) -> Value {
    json!({"app": app})
}

/// In-cluster DNS name of a Service.
pub fn host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}
