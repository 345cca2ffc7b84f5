//! `spec.services`: the feature servers, their containers and the pod-level settings they share.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::DeploymentStrategy,
        autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec},
        core::v1::{
            Affinity, EnvFromSource, EnvVar, PodResourceClaim, PodSecurityContext,
            ResourceRequirements, Toleration, TopologySpreadConstraint, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    LocalObjectReference, OfflineStorePersistence, OnlineStorePersistence, RegistryPersistence,
    k8s_schema,
};

/// The feature servers and the pod they run in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = k8s_schema::services)]
pub struct FeatureStoreServices {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_store: Option<OfflineStore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_store: Option<OnlineStore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// The Feast web UI server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui: Option<ServerConfigs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_strategy: Option<DeploymentStrategy>,
    /// The pod security context of the feature-server pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Skip the `feast-init` / `feast-apply` init containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_init_containers: Option<bool>,
    /// Image of the init containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_image: Option<String>,
    /// Run `feast apply` in an init container (ad true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_feast_apply_on_init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budgets: Option<PdbConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_claims: Option<Vec<PodResourceClaim>>,
}

/// The offline store and its optional server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct OfflineStore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfigs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<OfflineStorePersistence>,
}

/// The online store; its server always runs unless `disabled`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct OnlineStore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfigs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<OnlineStorePersistence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<OnlineStoreServing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Feature-server settings of the online store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnlineStoreServing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ServingMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_push_batching: Option<OfflinePushBatching>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpConfig>,
}

/// Feature-server metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServingMetrics {
    pub enabled: bool,
    /// Metric categories switched on or off by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<BTreeMap<String, bool>>,
}

/// Batching of offline pushes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflinePushBatching {
    pub enabled: bool,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i32>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_interval_seconds: Option<i32>,
}

/// Model Context Protocol server settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<McpTransport>,
}

/// MCP transport.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    Sse,
    Http,
}

/// The registry: exactly one of `local` or `remote`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.local), has(self.remote)].exists_one(c, c)").message("One selection required."))]
pub struct Registry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalRegistryConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRegistryConfig>,
}

/// A registry run by this FeatureStore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LocalRegistryConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<RegistryServerConfigs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<RegistryPersistence>,
}

/// A registry run elsewhere: exactly one of `hostname` or `feastRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.hostname), has(self.feastRef)].exists_one(c, c)").message("One selection required."))]
pub struct RemoteRegistryConfig {
    /// `host:port` of the remote registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feast_ref: Option<FeatureStoreRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRemoteRegistryConfigs>,
}

/// A reference to another FeatureStore whose registry is used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct FeatureStoreRef {
    pub name: String,
    /// Defaults to the referencing FeatureStore's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The CA of a remote registry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRemoteRegistryConfigs {
    pub config_map_ref: LocalObjectReference,
    pub cert_name: String,
}

/// Container settings shared by every container fieldwise runs for a FeatureStore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = k8s_schema::container)]
pub struct ContainerConfigs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
}

/// A feature server's container and server settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfigs {
    #[serde(flatten)]
    pub container: ContainerConfigs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfigs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<LogLevel>,
    /// Expose Prometheus metrics (online server only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_configs: Option<WorkerConfigs>,
}

/// The registry server: a feature server plus its gRPC / REST / MCP switches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.restAPI == true || self.grpc == true || !has(self.grpc)").message("At least one of restAPI or grpc must be true"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.mcp) || !self.mcp.enabled || (has(self.restAPI) && self.restAPI == true)").message("MCP requires restAPI to be true"))]
pub struct RegistryServerConfigs {
    #[serde(flatten)]
    pub server: ServerConfigs,
    #[serde(rename = "restAPI", skip_serializing_if = "Option::is_none")]
    pub rest_api: Option<bool>,
    /// Serve gRPC (ad true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpConfig>,
}

/// Feature-server log level.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// TLS for a feature server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(!has(self.disable) || !self.disable) ? has(self.secretRef) : true").message("`secretRef` required if `disable` is false."))]
pub struct TlsConfigs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_names: Option<SecretKeyNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable: Option<bool>,
}

/// Key names of the certificate and private key in the TLS Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyNames {
    /// ad `tls.crt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_crt: Option<String>,
    /// ad `tls.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
}

/// Gunicorn worker settings of a feature server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerConfigs {
    /// `-1` means one worker per CPU.
    #[schemars(range(min = -1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<i32>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_connections: Option<i32>,
    #[schemars(range(min = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<i32>,
    #[schemars(range(min = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_jitter: Option<i32>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout: Option<i32>,
    #[schemars(range(min = 0))]
    #[serde(rename = "registryTTLSeconds", skip_serializing_if = "Option::is_none")]
    pub registry_ttl_seconds: Option<i32>,
}

/// Horizontal scaling of the feature-server Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ScalingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingConfig>,
}

/// A HorizontalPodAutoscaler for the feature-server Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = k8s_schema::autoscaling)]
pub struct AutoscalingConfig {
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Defaults (in the controller) to 80% average CPU utilisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// A PodDisruptionBudget for the feature-server pods: exactly one of the two bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.minAvailable), has(self.maxUnavailable)].exists_one(c, c)").message("Exactly one of minAvailable or maxUnavailable must be set."))]
pub struct PdbConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}
