//! Persistence of the offline store, online store and registry: a file (optionally on a PVC) or a DB store.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::VolumeResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;

/// Offline store persistence: exactly one of `file` or `store`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.file), has(self.store)].exists_one(c, c)").message("One selection required between file or store."))]
pub struct OfflineStorePersistence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<OfflineStoreFilePersistence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<OfflineStoreDbStorePersistence>,
}

/// File-based offline store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct OfflineStoreFilePersistence {
    /// ad `dask`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub file_type: Option<OfflineStoreFileType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcConfig>,
}

/// File offline store engines.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OfflineStoreFileType {
    File,
    Dask,
    Duckdb,
}

/// A DB-backed offline store configured from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineStoreDbStorePersistence {
    #[serde(rename = "type")]
    pub store_type: OfflineStoreDbType,
    /// The Secret holding the store's feature_store.yaml parameters.
    pub secret_ref: LocalObjectReference,
    /// The Secret key holding the parameters; defaults (in the controller) to the store type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_name: Option<String>,
}

/// DB offline store types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OfflineStoreDbType {
    #[serde(rename = "snowflake.offline")]
    Snowflake,
    #[serde(rename = "bigquery")]
    Bigquery,
    #[serde(rename = "redshift")]
    Redshift,
    #[serde(rename = "spark")]
    Spark,
    #[serde(rename = "postgres")]
    Postgres,
    #[serde(rename = "trino")]
    Trino,
    #[serde(rename = "athena")]
    Athena,
    #[serde(rename = "mssql")]
    Mssql,
    #[serde(rename = "couchbase.offline")]
    Couchbase,
    #[serde(rename = "clickhouse")]
    Clickhouse,
    #[serde(rename = "ray")]
    Ray,
    #[serde(rename = "oracle")]
    Oracle,
    #[serde(rename = "hybrid")]
    Hybrid,
}

/// Online store persistence: exactly one of `file` or `store`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.file), has(self.store)].exists_one(c, c)").message("One selection required between file or store."))]
pub struct OnlineStorePersistence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<OnlineStoreFilePersistence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<OnlineStoreDbStorePersistence>,
}

/// A SQLite file online store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("(!has(self.pvc) && has(self.path)) ? self.path.startsWith('/') : true").message("Ephemeral stores must have absolute paths."))]
#[x_kube(validation = kube::core::Rule::new("(has(self.pvc) && has(self.path)) ? !self.path.startsWith('/') : true").message("PVC path must be a file name only, with no slashes."))]
#[x_kube(validation = kube::core::Rule::new("has(self.path) ? !(self.path.startsWith('s3://') || self.path.startsWith('gs://')) : true").message("Online store does not support S3 or GS buckets."))]
pub struct OnlineStoreFilePersistence {
    /// ad `/feast-data/online_store.db`, or `online_store.db` on a PVC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcConfig>,
}

/// A DB-backed online store configured from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnlineStoreDbStorePersistence {
    #[serde(rename = "type")]
    pub store_type: OnlineStoreDbType,
    pub secret_ref: LocalObjectReference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_name: Option<String>,
}

/// DB online store types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OnlineStoreDbType {
    #[serde(rename = "snowflake.online")]
    Snowflake,
    #[serde(rename = "redis")]
    Redis,
    #[serde(rename = "datastore")]
    Datastore,
    #[serde(rename = "dynamodb")]
    Dynamodb,
    #[serde(rename = "bigtable")]
    Bigtable,
    #[serde(rename = "postgres")]
    Postgres,
    #[serde(rename = "cassandra")]
    Cassandra,
    #[serde(rename = "mysql")]
    Mysql,
    #[serde(rename = "hazelcast")]
    Hazelcast,
    #[serde(rename = "singlestore")]
    Singlestore,
    #[serde(rename = "hbase")]
    Hbase,
    #[serde(rename = "elasticsearch")]
    Elasticsearch,
    #[serde(rename = "qdrant")]
    Qdrant,
    #[serde(rename = "couchbase.online")]
    Couchbase,
    #[serde(rename = "milvus")]
    Milvus,
    #[serde(rename = "hybrid")]
    Hybrid,
    #[serde(rename = "mongodb")]
    Mongodb,
    #[serde(rename = "aerospike")]
    Aerospike,
    #[serde(rename = "scylladb")]
    Scylladb,
}

/// Registry persistence: exactly one of `file` or `store`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("[has(self.file), has(self.store)].exists_one(c, c)").message("One selection required between file or store."))]
pub struct RegistryPersistence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<RegistryFilePersistence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<RegistryDbStorePersistence>,
}

/// A file registry: local (optionally on a PVC) or an `s3://` / `gs://` object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("(!has(self.pvc) && has(self.path)) ? (self.path.startsWith('/') || self.path.startsWith('s3://') || self.path.startsWith('gs://')) : true").message("Registry files must use absolute paths or be S3 ('s3://') or GS ('gs://') object store URIs."))]
#[x_kube(validation = kube::core::Rule::new("(has(self.pvc) && has(self.path)) ? !self.path.startsWith('/') : true").message("PVC path must be a file name only, with no slashes."))]
#[x_kube(validation = kube::core::Rule::new("(has(self.pvc) && has(self.path)) ? !(self.path.startsWith('s3://') || self.path.startsWith('gs://')) : true").message("PVC persistence does not support S3 or GS object store URIs."))]
#[x_kube(validation = kube::core::Rule::new("(has(self.s3_additional_kwargs) && has(self.path)) ? self.path.startsWith('s3://') : true").message("Additional S3 settings are available only for S3 object store URIs."))]
pub struct RegistryFilePersistence {
    /// ad `/feast-data/registry.db`, or `registry.db` on a PVC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_additional_kwargs: Option<BTreeMap<String, String>>,
    /// Registry cache TTL in seconds (0 disables expiry).
    #[schemars(range(min = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_mode: Option<RegistryCacheMode>,
}

/// How the registry cache is refreshed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistryCacheMode {
    None,
    Sync,
    Thread,
}

/// A DB-backed registry configured from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryDbStorePersistence {
    #[serde(rename = "type")]
    pub store_type: RegistryDbType,
    pub secret_ref: LocalObjectReference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_name: Option<String>,
}

/// DB registry types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RegistryDbType {
    #[serde(rename = "sql")]
    Sql,
    #[serde(rename = "snowflake.registry")]
    Snowflake,
}

/// A PersistentVolumeClaim mounted into the feature-server pod: exactly one of `ref` or `create`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.ref), has(self.create)].exists_one(c, c)").message("One selection is required between ref and create."))]
#[x_kube(validation = kube::core::Rule::new("self.mountPath.matches('^/[^:]*$')").message("Mount path must start with '/' and must not contain ':'"))]
pub struct PvcConfig {
    /// An existing claim.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub pvc_ref: Option<LocalObjectReference>,
    /// A claim fieldwise creates (and never changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<PvcCreate>,
    pub mount_path: String,
}

/// The claim fieldwise creates; immutable once set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::k8s_schema::pvc_create)]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("PvcCreate is immutable"))]
pub struct PvcCreate {
    /// ad `[ReadWriteOnce]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_modes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// ad storage request: offline 20Gi, online 5Gi, registry 5Gi.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<VolumeResourceRequirements>,
}
