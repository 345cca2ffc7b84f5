//! The FeatureStore status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FeatureStoreSpec;

/// The observed state of a FeatureStore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureStoreStatus {
    /// The spec with every default applied: what the controller actually deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<FeatureStoreSpec>,
    /// Name of the client ConfigMap (`feast-<name>-client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_config_map: Option<String>,
    /// Name of the CronJob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feast_version: Option<String>,
    /// `Ready`, `Failed` or `Pending`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_hostnames: Option<ServiceHostnames>,
    /// Ready replicas of the feature-server Deployment (scale subresource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector of the feature-server pods, as a string (scale subresource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_status: Option<ScalingStatus>,
}

/// A status condition, with the bounds `meta/v1 Condition` declares.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[schemars(length(max = 316))]
    #[schemars(pattern(
        r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
    ))]
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[schemars(range(min = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    pub last_transition_time: Time,
    #[schemars(
        length(min = 1, max = 1024),
        pattern(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    #[schemars(length(max = 32768))]
    pub message: String,
}

/// The status of a condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// In-cluster `host:port` of each service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHostnames {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_rest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

/// Replica counts reported while scaling is on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}
