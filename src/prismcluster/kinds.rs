//! The kinds a PrismCluster owns: its registry drives the engine's watches, prune and RBAC.

use fieldwise_api::prism::PrismCluster;
use fieldwise_apply::{KindRegistry, KindSpec, Scope};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    autoscaling::v2::HorizontalPodAutoscaler,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service},
    networking::v1::Ingress,
};
use kube::discovery::ApiResource;

/// KEDA's ScaledObject, owned only when KEDA's CRD is installed.
pub fn scaled_object_resource() -> ApiResource {
    ApiResource {
        group: "keda.sh".to_owned(),
        version: "v1alpha1".to_owned(),
        api_version: "keda.sh/v1alpha1".to_owned(),
        kind: "ScaledObject".to_owned(),
        plural: "scaledobjects".to_owned(),
    }
}

/// Every kind a PrismCluster's graph may contain; ServiceMonitor and ScaledObject only where their
/// CRDs are installed.
pub fn registry(service_monitors: bool, scaled_objects: bool) -> KindRegistry {
    let mut registry = KindRegistry::new()
        .with_owner::<PrismCluster>()
        .with(KindSpec::namespaced::<StatefulSet>().with_replicas())
        .with(KindSpec::namespaced::<Deployment>().with_replicas())
        .with(KindSpec::namespaced::<Service>())
        .with(KindSpec::namespaced::<ConfigMap>())
        .with(KindSpec::namespaced::<Secret>())
        .with(KindSpec::namespaced::<PersistentVolumeClaim>())
        .with(KindSpec::namespaced::<HorizontalPodAutoscaler>())
        .with(KindSpec::namespaced::<Ingress>());
    if service_monitors {
        let monitor = crate::featurestore::kinds::service_monitor_resource();
        registry = registry.with(KindSpec::dynamic(monitor, Scope::Namespaced));
    }
    if scaled_objects {
        registry = registry.with(KindSpec::dynamic(
            scaled_object_resource(),
            Scope::Namespaced,
        ));
    }
    registry
}
