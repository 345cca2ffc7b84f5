//! The feature-server Deployment `feast-<cr>` (spec §2.1).

use std::collections::BTreeMap;

use fieldwise_api::v1::FeatureStoreSpec;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::{
    containers::{PodContext, init_containers, server_container},
    scaling::{affinity, autoscaling, pod_selector, strategy, topology_spread},
    servers::Server,
    volumes::PodVolumes,
};
use crate::featurestore::names::{ServiceType, base_labels, base_name};

/// The pod-template annotation that changes whenever the server configuration does, so pods roll.
pub const CONFIG_HASH_ANNOTATION: &str = "fieldwise.dev/config-hash";

/// The Deployment running every feature server of the FeatureStore. `spec.replicas` is left out while an HPA
/// owns it.
pub fn deployment(
    pod: &PodContext<'_>,
    servers: &[Server<'_>],
    volumes: &PodVolumes,
    config_hash: &str,
) -> Deployment {
    let cr_name = pod.fs.metadata.name.as_deref().unwrap_or_default();
    let applied = pod.applied;
    let services = applied.services.as_ref();
    let mut annotations = services
        .and_then(|s| s.pod_annotations.clone())
        .unwrap_or_default();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    let init = init_containers(pod, servers);
    let pod_spec = PodSpec {
        service_account_name: Some(base_name(cr_name)),
        // Restricted by default; the user's `services.securityContext` wins field by field.
        security_context: Some(crate::security::restricted_pod(
            services.and_then(|s| s.security_context.as_ref()),
        )),
        init_containers: (!init.is_empty()).then_some(init),
        containers: servers
            .iter()
            .map(|server| server_container(pod, server))
            .collect(),
        volumes: (!volumes.volumes.is_empty()).then(|| volumes.volumes.clone()),
        node_selector: node_selector(applied, servers),
        tolerations: services.and_then(|s| s.tolerations.clone()),
        resource_claims: services.and_then(|s| s.resource_claims.clone()),
        affinity: affinity(cr_name, applied),
        topology_spread_constraints: topology_spread(cr_name, applied),
        ..PodSpec::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(base_name(cr_name)),
            namespace: pod.fs.metadata.namespace.clone(),
            labels: Some(base_labels(cr_name)),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: static_replicas(applied),
            selector: pod_selector(cr_name),
            strategy: Some(strategy(applied)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels(cr_name)),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The pods' labels: the selector's and `managed-by`, as the Feast operator labels its pods (with
/// its own name), so a tool selecting pods by their manager finds them under either operator and a
/// takeover changes only the label's value. fieldwise's other child labels stay off the pods.
fn pod_labels(cr_name: &str) -> BTreeMap<String, String> {
    let mut labels = base_labels(cr_name);
    labels.insert(
        fieldwise_apply::labels::MANAGED_BY.to_owned(),
        fieldwise_apply::labels::MANAGED_BY_VALUE.to_owned(),
    );
    labels
}

/// `spec.replicas` when fieldwise owns it; `None` while autoscaling (the HPA owns it).
pub fn static_replicas(applied: &FeatureStoreSpec) -> Option<i32> {
    match autoscaling(applied) {
        Some(_) => None,
        None => Some(applied.replicas.unwrap_or(1)),
    }
}

/// `services.nodeSelector` overlaid by each server's own, in container order.
fn node_selector(
    applied: &FeatureStoreSpec,
    servers: &[Server<'_>],
) -> Option<BTreeMap<String, String>> {
    let mut selector = applied
        .services
        .as_ref()
        .and_then(|s| s.node_selector.clone())
        .unwrap_or_default();
    let overlay_order = [
        ServiceType::Registry,
        ServiceType::Offline,
        ServiceType::Online,
        ServiceType::Ui,
    ];
    for service in overlay_order {
        let server = servers.iter().find(|server| server.service == service);
        selector.extend(
            server
                .and_then(|s| s.config.container.node_selector.clone())
                .unwrap_or_default(),
        );
    }
    (!selector.is_empty()).then_some(selector)
}
