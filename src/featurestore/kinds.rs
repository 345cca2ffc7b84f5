//! The one registry of the kinds a FeatureStore owns. It drives the engine's watches and prune, the
//! controller's triggers, and the operator's RBAC rules: add a child kind here and nowhere else.

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::{KindRegistry, KindSpec, Scope};
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    batch::v1::CronJob,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRoleBinding, Role, RoleBinding},
};
use kube::discovery::ApiResource;

/// The Prometheus Operator's ServiceMonitor, owned only when that CRD is installed.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource {
        group: "monitoring.coreos.com".to_owned(),
        version: "v1".to_owned(),
        api_version: "monitoring.coreos.com/v1".to_owned(),
        kind: "ServiceMonitor".to_owned(),
        plural: "servicemonitors".to_owned(),
    }
}

/// Every kind a FeatureStore's graph may contain. No ClusterRole: the graph binds the ClusterRoles shipped
/// with the install (`graph::SHIPPED_CLUSTER_ROLES`), so the operator needs no write on ClusterRoles. `with_service_monitors` adds ServiceMonitor, which only
/// exists where the Prometheus Operator's CRD is installed.
pub fn registry(with_service_monitors: bool) -> KindRegistry {
    let registry = KindRegistry::new()
        .with_owner::<FeatureStore>()
        .with(KindSpec::namespaced::<Deployment>().with_replicas())
        .with(KindSpec::namespaced::<Service>())
        .with(KindSpec::namespaced::<ConfigMap>())
        .with(KindSpec::namespaced::<Secret>())
        .with(KindSpec::namespaced::<ServiceAccount>())
        .with(KindSpec::namespaced::<PersistentVolumeClaim>())
        .with(KindSpec::namespaced::<Role>())
        .with(KindSpec::namespaced::<RoleBinding>())
        .with(KindSpec::cluster::<ClusterRoleBinding>())
        .with(KindSpec::namespaced::<CronJob>())
        .with(KindSpec::namespaced::<HorizontalPodAutoscaler>())
        .with(KindSpec::namespaced::<PodDisruptionBudget>());
    if with_service_monitors {
        registry.with(KindSpec::dynamic(
            service_monitor_resource(),
            Scope::Namespaced,
        ))
    } else {
        registry
    }
}
