//! The PrismCluster status: a phase, conditions, one entry per component, and ready/desired summaries
//! for `kubectl get` (printer columns cannot compute `ready/desired` themselves).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::v1::Condition;

/// Condition types of a PrismCluster.
pub mod condition {
    /// Everything below is healthy.
    pub const READY: &str = "Ready";
    pub const ADMIN_HEALTHY: &str = "AdminHealthy";
    pub const PROXY_HEALTHY: &str = "ProxyHealthy";
    pub const BACKENDS_HEALTHY: &str = "BackendsHealthy";
    pub const PATTERNS_HEALTHY: &str = "PatternsHealthy";
    /// Every condition type, in the order the status lists them.
    pub const ALL: [&str; 5] = [
        READY,
        ADMIN_HEALTHY,
        PROXY_HEALTHY,
        BACKENDS_HEALTHY,
        PATTERNS_HEALTHY,
    ];
}

/// The observed state of a PrismCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrismClusterStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, AdminHealthy, ProxyHealthy, BackendsHealthy and PatternsHealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
    /// `prism-admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_status: Option<ComponentStatus>,
    /// `prism-proxy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_status: Option<ComponentStatus>,
    /// One entry per pattern runner (`<name>-runner`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub pattern_status: Option<Vec<ComponentStatus>>,
    /// One entry per enabled backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub backend_status: Option<Vec<ComponentStatus>>,
    /// `ready/desired` replicas of the admin, e.g. `1/1` (printer column Admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_ready: Option<String>,
    /// `ready/desired` replicas of the proxy (printer column Proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_ready: Option<String>,
    /// `ready/total` pattern runners (printer column Patterns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patterns_ready: Option<String>,
    /// `ready/enabled` backends (printer column Backends, `-o wide`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends_ready: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the status last changed. Unlike ADR-059, not rewritten by every reconcile: a steady
    /// cluster causes no writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reconciled: Option<Time>,
}

/// The cluster as a whole.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Nothing observed yet.
    Pending,
    /// Admin and proxy available, every backend and runner ready.
    Running,
    /// Something short of Running; the conditions name it.
    Degraded,
    /// The spec cannot be deployed, or the API server refused a write.
    Failed,
}

/// The health of one workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The workload's name (`prism-admin`, `keyvalue-runner`, `redis`, ...).
    pub name: String,
    pub ready: bool,
    /// Desired replicas.
    pub replicas: i32,
    pub available_replicas: i32,
    /// What is wrong or awaited, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ComponentStatus {
    /// `ready/desired`, the form of the printer columns.
    pub fn ready_of_desired(&self) -> String {
        format!("{}/{}", self.available_replicas, self.replicas)
    }
}
