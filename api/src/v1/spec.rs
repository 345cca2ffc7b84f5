//! The FeatureStore resource and its top-level spec blocks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AuthzConfig, FeastCronJob, FeatureStoreServices, FeatureStoreStatus, LocalObjectReference,
    OpenLineageConfig,
};

/// The longest FeatureStore name fieldwise admits. The children's names are derived from it
/// (`feast-<name>-…`), and the longest of a kind with a 63-character limit is the registry REST
/// Service `feast-<name>-registry-rest`: Service names are DNS-1035 labels of at most 63
/// characters. `src/featurestore/names.rs` lists every derived name with its kind's limit and
/// checks that this is the tightest.
pub const MAX_NAME_LENGTH: usize = 43;

/// The CRD rule behind [`MAX_NAME_LENGTH`]. Names are immutable, so it judges creates only
/// (`optionalOldSelf`): a FeatureStore admitted before the rule (or under the Feast operator's CRD)
/// can still be updated and deleted, and its status says which child name is too long.
fn name_length_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "oldSelf.hasValue() || !has(self.metadata.name) || size(self.metadata.name) <= {MAX_NAME_LENGTH}"
    ))
    .optional_old_self(true)
    .field_path(".metadata.name")
    .reason(kube::core::Reason::FieldValueForbidden)
    .message(kube::core::Message::Message(format!(
        "may have at most {MAX_NAME_LENGTH} characters: the Service feast-<name>-registry-rest \
         fieldwise creates must be a DNS-1035 label of at most 63 characters"
    )))
}

/// Names with a dot are valid FeatureStore names (DNS-1123 subdomains) but not valid Service names.
fn name_character_rule() -> kube::core::Rule {
    kube::core::Rule::new(
        "oldSelf.hasValue() || !has(self.metadata.name) || !self.metadata.name.contains('.')",
    )
    .optional_old_self(true)
    .field_path(".metadata.name")
    .reason(kube::core::Reason::FieldValueForbidden)
    .message(
        "must not contain '.': the Services feast-<name>-<service> fieldwise creates must be \
         DNS-1035 labels (lower-case letters, digits and '-')",
    )
}

/// The desired state of a Feast feature store (`feast.dev/v1` FeatureStore).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "feast.dev",
    version = "v1",
    kind = "FeatureStore",
    doc = "A Feast feature store: its feature servers, persistence, registry and authorization.",
    plural = "featurestores",
    namespaced,
    shortname = "feast",
    status = "FeatureStoreStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = name_length_rule(),
    validation = name_character_rule()
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.replicas <= 1 || !has(self.services) || !has(self.services.scaling) || !has(self.services.scaling.autoscaling)"
).message("replicas > 1 and services.scaling.autoscaling are mutually exclusive."))]
#[x_kube(validation = kube::core::Rule::new(
    "self.replicas <= 1 && (!has(self.services) || !has(self.services.scaling) || !has(self.services.scaling.autoscaling)) || (has(self.services) && has(self.services.onlineStore) && has(self.services.onlineStore.persistence) && has(self.services.onlineStore.persistence.store))"
).message("Scaling requires DB-backed persistence for the online store. Configure services.onlineStore.persistence.store when using replicas > 1 or autoscaling."))]
#[x_kube(validation = kube::core::Rule::new(
    "self.replicas <= 1 && (!has(self.services) || !has(self.services.scaling) || !has(self.services.scaling.autoscaling)) || (!has(self.services) || !has(self.services.offlineStore) || (has(self.services.offlineStore.persistence) && has(self.services.offlineStore.persistence.store)))"
).message("Scaling requires DB-backed persistence for the offline store. Configure services.offlineStore.persistence.store when using replicas > 1 or autoscaling."))]
#[x_kube(validation = kube::core::Rule::new(
    "self.replicas <= 1 && (!has(self.services) || !has(self.services.scaling) || !has(self.services.scaling.autoscaling)) || (has(self.services) && has(self.services.registry) && (has(self.services.registry.remote) || (has(self.services.registry.local) && has(self.services.registry.local.persistence) && (has(self.services.registry.local.persistence.store) || (has(self.services.registry.local.persistence.file) && has(self.services.registry.local.persistence.file.path) && (self.services.registry.local.persistence.file.path.startsWith('s3://') || self.services.registry.local.persistence.file.path.startsWith('gs://')))))))"
).message("Scaling requires DB-backed or remote registry. Configure registry.local.persistence.store or use a remote registry when using replicas > 1 or autoscaling. S3/GCS-backed registry is also allowed."))]
pub struct FeatureStoreSpec {
    /// The Feast project name: letters, digits, `_` and `-`, starting with a letter or digit.
    #[schemars(pattern(r"^[A-Za-z0-9][A-Za-z0-9_-]*$"))]
    pub feast_project: String,
    /// Where the feature repository comes from (ad `{init: {}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feast_project_dir: Option<FeastProjectDir>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<FeatureStoreServices>,
    /// Authorization for the feature servers (ad `{kubernetes: {}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz: Option<AuthzConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<FeastCronJob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_engine: Option<BatchEngineConfig>,
    /// Static replica count of the feature-server Deployment; the API server defaults it to 1.
    #[schemars(range(min = 1), extend("default" = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_quality_monitoring: Option<DataQualityMonitoringConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub materialization: Option<MaterializationConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openlineage: Option<OpenLineageConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlflow: Option<MlflowConfig>,
}

/// Where the feature repository comes from: exactly one of `git`, `init` or `packaged`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.git), has(self.init), has(self.packaged)].exists_one(c, c)")
    .message("One selection required between init, git, or packaged."))]
pub struct FeastProjectDir {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitCloneOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<FeastInitOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packaged: Option<FeastPackagedOptions>,
}

/// Clone the feature repository from git.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::k8s_schema::container)]
#[x_kube(validation = kube::core::Rule::new("has(self.featureRepoPath) ? !self.featureRepoPath.startsWith('/') : true")
    .message("RepoPath must be a file name only, with no slashes."))]
pub struct GitCloneOptions {
    pub url: String,
    /// The commit, tag or branch to check out.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Git `-c` configuration options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configs: Option<BTreeMap<String, String>>,
    /// Path of the feature repo relative to the repository root (ad `feature_repo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_repo_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<EnvFromSource>>,
}

/// Create a new feature repository with `feast init`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct FeastInitOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<FeastInitTemplate>,
}

/// The `feast init -t` template.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeastInitTemplate {
    Local,
    Gcp,
    Aws,
    Snowflake,
    Spark,
    Postgres,
    Hbase,
    Cassandra,
    Hazelcast,
    Couchbase,
    Clickhouse,
    Milvus,
    Ray,
    RayRag,
    PytorchNlp,
}

/// Use a feature repository already present in the feature-server image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.featureRepoPath.startsWith('/') && self.featureRepoPath != '/' && !self.featureRepoPath.contains('//') && !self.featureRepoPath.endsWith('/') && !self.featureRepoPath.contains('/./') && !self.featureRepoPath.endsWith('/.') && !self.featureRepoPath.contains('/../') && !self.featureRepoPath.endsWith('/..')")
    .message("FeatureRepoPath must be a canonical absolute, non-root path without dot segments or repeated separators."))]
pub struct FeastPackagedOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub feature_repo_path: String,
}

/// The batch materialization engine configuration, read from a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchEngineConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalObjectReference>,
    /// The ConfigMap key holding the engine YAML (the controller reads `config` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key: Option<String>,
}

/// Data quality monitoring settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataQualityMonitoringConfig {
    #[schemars(extend("default" = true))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_baseline: Option<bool>,
}

/// Materialization settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaterializationConfig {
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_write_batch_size: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_config: Option<BTreeMap<String, String>>,
}

/// MLflow integration settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.extraConfig) || !('enabled' in self.extraConfig) && !('tracking_uri' in self.extraConfig) && !('ui_url' in self.extraConfig) && !('tracking_auth' in self.extraConfig) && !('auto_log' in self.extraConfig) && !('auto_log_entity_df' in self.extraConfig) && !('entity_df_max_rows' in self.extraConfig) && !('log_operations' in self.extraConfig) && !('ops_experiment_suffix' in self.extraConfig)")
    .message("extraConfig must not contain keys that duplicate typed fields (enabled, tracking_uri, ui_url, tracking_auth, auto_log, auto_log_entity_df, entity_df_max_rows, log_operations, ops_experiment_suffix); use the corresponding spec fields instead."))]
pub struct MlflowConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ui_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_auth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_log: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_log_entity_df: Option<bool>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_df_max_rows: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_operations: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_experiment_suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_config: Option<BTreeMap<String, String>>,
}
