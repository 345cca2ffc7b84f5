//! `spec.openlineage`: OpenLineage emission and the optional lineage consumer / server.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{LocalObjectReference, ServerConfigs};

/// OpenLineage settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenLineageConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_type: Option<OpenLineageTransportType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_endpoint: Option<String>,
    /// The Secret holding `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_config: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<OpenLineageConsumerConfig>,
}

/// OpenLineage transports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpenLineageTransportType {
    Http,
    Console,
    File,
    Kafka,
}

/// The lineage consumer that stores received events.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenLineageConsumerConfig {
    pub enabled: bool,
    #[schemars(extend("default" = "sql"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_type: Option<LineageStoreType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string_secret_ref: Option<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_mapping: Option<BTreeMap<String, String>>,
    #[schemars(range(min = 0), extend("default" = 30))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    #[schemars(range(min = 1), extend("default" = 6))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_check_interval_hours: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage_server: Option<LineageServerConfig>,
}

/// Lineage consumer storage.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineageStoreType {
    Sql,
}

/// A standalone lineage server Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LineageServerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfigs>,
    #[schemars(range(min = 1), extend("default" = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}
