//! `spec.admin`: the Prism control plane, `prism-admin`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::rules;

/// The admin Deployment `prism-admin` and its Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::resources)]
#[x_kube(validation = kube::core::Rule::new("self.replicas <= 1 || self.storage.type == 'postgres'")
    .message("replicas > 1 needs storage.type postgres: admin replicas cannot share one sqlite file"))]
pub struct AdminSpec {
    #[serde(default = "defaults::one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default)]
    pub storage: AdminStorage,
    #[serde(default = "defaults::small_resources")]
    pub resources: ResourceRequirements,
    #[serde(default = "defaults::admin_image")]
    pub image: String,
}

impl Default for AdminSpec {
    fn default() -> Self {
        Self {
            replicas: defaults::one(),
            storage: AdminStorage::default(),
            resources: defaults::small_resources(),
            image: defaults::admin_image(),
        }
    }
}

/// Where the admin keeps its state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminStorage {
    #[serde(rename = "type", default)]
    pub storage_type: AdminStorageType,
    /// Size of the sqlite volume `prism-admin-data` (unused with postgres).
    #[serde(default = "defaults::admin_storage_size")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub size: String,
}

impl Default for AdminStorage {
    fn default() -> Self {
        Self {
            storage_type: AdminStorageType::default(),
            size: defaults::admin_storage_size(),
        }
    }
}

/// `sqlite`: a file on the volume `prism-admin-data`. `postgres`: the cluster's postgres backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminStorageType {
    #[default]
    Sqlite,
    Postgres,
}
