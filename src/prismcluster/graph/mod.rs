//! The desired graph of a PrismCluster: a pure function of the PrismCluster and its inputs.
//!
//! Order: credentials and connection settings, backends, admin, proxy (and its HPA), pattern
//! runners (each once every backend it lists is ready), ingress and observability.

mod backends;
mod components;
mod exposure;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use fieldwise_api::prism::{PatternBackend, PrismCluster};
use fieldwise_apply::{DesiredObject, ReplicasPolicy};
use k8s_openapi::api::core::v1::ResourceRequirements;
use serde_json::{Value, json};

pub use backends::credentials_secret_name;

use super::{inputs::PrismInputs, names};
use crate::security::{PodIdentity, restricted_container_json, restricted_pod_json};

/// The part of a PrismCluster a child belongs to (its conditions and component lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Backends,
    Admin,
    Proxy,
    /// The pattern at this index of `spec.patterns`.
    Pattern(usize),
    /// Ingress, ServiceMonitor, dashboards.
    Exposure,
}

impl Part {
    /// The component label of the part's children.
    fn component(self) -> &'static str {
        match self {
            Part::Backends => "backend",
            Part::Admin => "admin",
            Part::Proxy => "proxy",
            Part::Pattern(_) => "pattern",
            Part::Exposure => "exposure",
        }
    }
}

/// What the status needs of the graph besides its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrismGraph {
    /// Runners not applied yet, with the backends they wait for.
    pub waiting: BTreeMap<String, Vec<PatternBackend>>,
    /// Fields accepted but not acted on, with why (Loki, KEDA without its CRD, ...).
    pub notes: Vec<String>,
}

/// Why the graph cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    pub part: Part,
    pub message: String,
}

/// The children (each with its part) and the rest of the graph.
pub type Children = Vec<(Part, DesiredObject)>;

/// The desired graph of a PrismCluster.
pub fn desired_graph(
    cluster: &PrismCluster,
    inputs: &PrismInputs,
) -> Result<(Children, PrismGraph), GraphError> {
    if let Some(holder) = &inputs.namespace_held_by {
        return Err(GraphError {
            part: Part::Admin,
            message: format!(
                "PrismCluster {holder} already runs in this namespace; the Prism components' names are per namespace, so only one PrismCluster can own them: delete this one or move it to another namespace"
            ),
        });
    }
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or("default");
    let mut graph = PrismGraph::default();
    let mut children = Children::new();
    let mut push = |part: Part, body: Value, replicas: ReplicasPolicy| {
        children.push((
            part,
            DesiredObject::new(part.component(), body).with_replicas(replicas),
        ));
    };
    let owned = ReplicasPolicy::Owned;
    for secret in components::credentials(namespace, inputs) {
        push(Part::Backends, secret, owned);
    }
    let connection = components::connection_settings(cluster, namespace);
    push(
        Part::Backends,
        components::connection_config_map(namespace, &connection),
        owned,
    );
    for object in backends::backends(cluster, namespace) {
        push(Part::Backends, object, owned);
    }
    for (object, replicas) in components::admin(cluster, namespace, &connection, inputs) {
        push(Part::Admin, object, replicas);
    }
    for (object, replicas) in components::proxy(cluster, namespace) {
        push(Part::Proxy, object, replicas);
    }
    for (index, pattern) in cluster.spec.patterns.iter().enumerate() {
        let runner = pattern.runner_name();
        let waits_for: Vec<PatternBackend> = pattern
            .backends
            .iter()
            .copied()
            .filter(|b| *b != PatternBackend::Sqlite && !inputs.ready_backends.contains(b))
            .collect();
        // A runner starts once its backends are ready; one that exists stays while they restart.
        if !waits_for.is_empty() && !inputs.existing_runners.contains(&runner) {
            graph.waiting.insert(runner, waits_for);
            continue;
        }
        let objects = components::runner(
            cluster,
            namespace,
            pattern,
            &connection,
            inputs,
            &mut graph.notes,
        );
        for (object, replicas) in objects {
            push(Part::Pattern(index), object, replicas);
        }
    }
    for object in exposure::exposure(cluster, namespace, inputs, &mut graph.notes) {
        push(Part::Exposure, object, owned);
    }
    Ok((children, graph))
}

/// Standard labels of every child besides the engine's: the ADR's `app` label.
fn metadata(name: &str, namespace: &str, app: &str) -> Value {
    json!({"name": name, "namespace": namespace, "labels": {"app": app}})
}

/// A StatefulSet of one container, `serviceName` its headless Service, with a claim template when
/// given `(name, size)`.
fn stateful_set(
    name: &str,
    namespace: &str,
    app: &str,
    replicas: i32,
    container: Value,
    claim: Option<(&str, &str)>,
    annotations: Value,
) -> Value {
    let mut template = json!({"metadata": {"labels": names::selector(app)},
        "spec": {"containers": [container]}});
    if !annotations.is_null() {
        template["metadata"]["annotations"] = annotations;
    }
    let mut body = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata(name, namespace, app),
        "spec": {"replicas": replicas, "serviceName": name,
                 "selector": {"matchLabels": names::selector(app)}, "template": template}});
    if let Some((claim, size)) = claim {
        body["spec"]["volumeClaimTemplates"] = json!([claim_template(claim, size)]);
    }
    body
}

/// A claim template as kube-apiserver stores it (1.33 fills in `apiVersion`, `kind`,
/// `volumeMode: Filesystem` and `status.phase: Pending`, and keeps a null `creationTimestamp`,
/// which the engine's comparison ignores). The list is atomic, so the engine compares it whole
/// with the live one: anything the server adds that the body lacked would make every reconcile
/// (and every restart) re-apply the StatefulSet.
fn claim_template(name: &str, size: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}})
}

/// A Deployment of one container.
fn deployment(name: &str, namespace: &str, replicas: i32, pod: Value, strategy: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(name, namespace, name),
        "spec": {"replicas": replicas, "selector": {"matchLabels": names::selector(name)},
                 "strategy": {"type": strategy},
                 "template": {"metadata": {"labels": names::selector(name)}, "spec": pod}}})
}

/// The workload with its pod template restricted (see [`crate::security`]): the pod runs as
/// `identity`, every container without privilege escalation or capabilities.
fn restricted(mut workload: Value, identity: PodIdentity) -> Value {
    if let Some(pod) = workload.pointer_mut("/spec/template/spec") {
        pod["securityContext"] = restricted_pod_json(identity);
        for list in ["initContainers", "containers"] {
            for container in pod
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                container["securityContext"] = restricted_container_json();
            }
        }
    }
    workload
}

/// A headless Service (the governing Service of a StatefulSet).
fn headless_service(name: &str, namespace: &str, app: &str, ports: &[(&str, i32)]) -> Value {
    let mut service = service(name, namespace, app, ports);
    service["spec"]["clusterIP"] = json!("None");
    service
}

/// A ClusterIP Service selecting `app=<app>`.
fn service(name: &str, namespace: &str, app: &str, ports: &[(&str, i32)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(port_name, port)| json!({"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata(name, namespace, app),
        "spec": {"selector": names::selector(app), "ports": ports}})
}

fn container_resources(resources: &ResourceRequirements) -> Value {
    serde_json::to_value(resources).unwrap_or(Value::Null)
}
