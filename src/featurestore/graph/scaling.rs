//! Horizontal scaling and high availability (spec §4): replicas, strategy, HPA, PDB, spread and anti-affinity.

use fieldwise_api::v1::{AutoscalingConfig, FeatureStoreServices, FeatureStoreSpec, PdbConfig};
use k8s_openapi::{
    api::{
        apps::v1::DeploymentStrategy,
        autoscaling::v2::{
            CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
            MetricSpec, MetricTarget, ResourceMetricSource,
        },
        core::v1::{
            Affinity, PodAffinityTerm, PodAntiAffinity, TopologySpreadConstraint,
            WeightedPodAffinityTerm,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use crate::featurestore::names::{base_labels, base_name, selector_labels};

/// The autoscaling settings, when an HPA scales the Deployment.
pub fn autoscaling(applied: &FeatureStoreSpec) -> Option<&AutoscalingConfig> {
    services(applied)?.scaling.as_ref()?.autoscaling.as_ref()
}

/// Scaling = more than one static replica, or autoscaling.
pub fn is_scaling(applied: &FeatureStoreSpec) -> bool {
    applied.replicas.unwrap_or(1) > 1 || autoscaling(applied).is_some()
}

/// The Deployment strategy: the user's, else RollingUpdate while scaling (no downtime), else Recreate (file
/// stores on a ReadWriteOnce volume cannot be shared by two pods during a rollout).
pub fn strategy(applied: &FeatureStoreSpec) -> DeploymentStrategy {
    let chosen = services(applied)
        .and_then(|s| s.deployment_strategy.clone())
        .unwrap_or_else(|| DeploymentStrategy {
            type_: Some(
                if is_scaling(applied) {
                    "RollingUpdate"
                } else {
                    "Recreate"
                }
                .to_owned(),
            ),
            rolling_update: None,
        });
    with_rolling_update_parameters(chosen)
}

/// A RollingUpdate strategy carries its parameters, the API server's defaults where none are given. Left
/// out, the server fills them in owned by no manager, and a later switch to Recreate (scaling stops) is
/// rejected: `spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy type is
/// 'Recreate'`. Applied by fieldwise, they are its own and go when it stops sending them.
fn with_rolling_update_parameters(mut strategy: DeploymentStrategy) -> DeploymentStrategy {
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    if rolling {
        let parameters = strategy.rolling_update.get_or_insert_with(Default::default);
        let default = || Some(IntOrString::String("25%".to_owned()));
        parameters.max_surge = parameters.max_surge.take().or_else(default);
        parameters.max_unavailable = parameters.max_unavailable.take().or_else(default);
    }
    strategy
}

/// The pod's spread constraints: the user's list verbatim (even `[]`), else a soft zone spread while scaling.
pub fn topology_spread(
    cr_name: &str,
    applied: &FeatureStoreSpec,
) -> Option<Vec<TopologySpreadConstraint>> {
    if let Some(user) = services(applied).and_then(|s| s.topology_spread_constraints.clone()) {
        return Some(user);
    }
    is_scaling(applied).then(|| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".to_owned(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(pod_selector(cr_name)),
            ..TopologySpreadConstraint::default()
        }]
    })
}

/// The pod's affinity: the user's, else a soft anti-affinity spreading replicas over nodes while scaling.
pub fn affinity(cr_name: &str, applied: &FeatureStoreSpec) -> Option<Affinity> {
    if let Some(user) = services(applied).and_then(|s| s.affinity.clone()) {
        return Some(user);
    }
    is_scaling(applied).then(|| Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        label_selector: Some(pod_selector(cr_name)),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// The HPA scaling the feature-server Deployment, when autoscaling is configured.
pub fn horizontal_pod_autoscaler(
    cr_name: &str,
    namespace: &str,
    applied: &FeatureStoreSpec,
) -> Option<HorizontalPodAutoscaler> {
    let config = autoscaling(applied)?;
    Some(HorizontalPodAutoscaler {
        metadata: metadata(cr_name, namespace),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: base_name(cr_name),
            },
            min_replicas: Some(config.min_replicas.unwrap_or(1)),
            max_replicas: config.max_replicas,
            metrics: Some(config.metrics.clone().unwrap_or_else(default_metrics)),
            behavior: config.behavior.clone(),
        }),
        status: None,
    })
}

/// 80% average CPU utilisation, the Feast operator's default target.
fn default_metrics() -> Vec<MetricSpec> {
    vec![MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: "cpu".to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(80),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }]
}

/// The PodDisruptionBudget: only when configured and scaling (a single pod cannot keep one available).
pub fn pod_disruption_budget(
    cr_name: &str,
    namespace: &str,
    applied: &FeatureStoreSpec,
) -> Option<PodDisruptionBudget> {
    let config: &PdbConfig = services(applied)?.pod_disruption_budgets.as_ref()?;
    if !is_scaling(applied) {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: metadata(cr_name, namespace),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(pod_selector(cr_name)),
            min_available: config.min_available.clone(),
            max_unavailable: config.max_unavailable.clone(),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

fn services(applied: &FeatureStoreSpec) -> Option<&FeatureStoreServices> {
    applied.services.as_ref()
}

/// `matchLabels: {feast.dev/name: <cr>}`.
pub fn pod_selector(cr_name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(cr_name)),
        match_expressions: None,
    }
}

fn metadata(cr_name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(base_name(cr_name)),
        namespace: Some(namespace.to_owned()),
        labels: Some(base_labels(cr_name)),
        ..ObjectMeta::default()
    }
}
