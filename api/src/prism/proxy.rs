//! `spec.proxy`: the data-plane proxy, `prism-proxy`, optionally scaled by an HPA.

use k8s_openapi::api::{
    autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec},
    core::v1::ResourceRequirements,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::rules;

/// The proxy Deployment `prism-proxy` and its Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::resources)]
pub struct ProxySpec {
    /// Replicas while autoscaling is off; with autoscaling on, the HPA owns the count.
    #[serde(default = "defaults::one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<ProxyAutoscaling>,
    #[serde(default = "defaults::proxy_resources")]
    pub resources: ResourceRequirements,
    #[serde(default = "defaults::proxy_image")]
    pub image: String,
}

impl Default for ProxySpec {
    fn default() -> Self {
        Self {
            replicas: defaults::one(),
            autoscaling: None,
            resources: defaults::proxy_resources(),
            image: defaults::proxy_image(),
        }
    }
}

/// An `autoscaling/v2` HPA for the proxy: CPU and memory utilisation targets, then any `metrics`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::autoscaling)]
#[x_kube(validation = rules::min_not_above_max())]
pub struct ProxyAutoscaling {
    /// The block switches autoscaling on; `enabled: false` keeps the settings but turns it off.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::proxy_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    #[serde(default = "defaults::proxy_max_replicas")]
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation target in percent of the requests; 0 leaves CPU out of the metrics.
    #[serde(rename = "targetCPU", default = "defaults::proxy_target_cpu")]
    #[schemars(range(min = 0))]
    pub target_cpu: i32,
    /// Average memory utilisation target in percent of the requests; 0 leaves memory out.
    #[serde(default = "defaults::proxy_target_memory")]
    #[schemars(range(min = 0))]
    pub target_memory: i32,
    /// Further HPA metrics, after the CPU and memory targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

impl Default for ProxyAutoscaling {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
            min_replicas: defaults::proxy_min_replicas(),
            max_replicas: defaults::proxy_max_replicas(),
            target_cpu: defaults::proxy_target_cpu(),
            target_memory: defaults::proxy_target_memory(),
            metrics: None,
            behavior: None,
        }
    }
}
