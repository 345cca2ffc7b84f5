//! kube-controller-manager's root CA publisher: every namespace holds the ConfigMap
//! `kube-root-ca.crt` (data key `ca.crt`), created when the namespace appears and restored when it is
//! deleted or its data changed, for as long as the namespace is not terminating. It runs
//! asynchronously like the garbage collector ([`super::gc`]), subscribed to the store's change
//! broadcast; the namespaces a fresh emulator starts with get theirs before it serves.
//!
//! The emulator serves plain HTTP, so the certificate verifies nothing: it is a fixed self-signed CA
//! (its key discarded) that stands in for the cluster's, so that clients reading the ConfigMap find
//! a PEM certificate as in a real cluster.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::custom::FieldValidation;
use super::meta;
use super::ownership::Sub;
use super::registry::ResourceType;
use super::server::ApiServer;
use super::store::{EventType, StoreEvent};
use super::write::WriteRequest;

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";

/// Its one data key.
pub const DATA_KEY: &str = "ca.crt";

/// The certificate every namespace's ConfigMap carries.
pub const CERTIFICATE: &str = include_str!("root-ca.crt");

const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";

/// kube-controller-manager's wording of the annotation.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when \
     using internal endpoints such as the internal service IP or kubernetes.default.svc. No other \
     usage is guaranteed across distributions of Kubernetes clusters.";

/// The publisher's field manager, as in a real cluster.
const MANAGER: &str = "kube-controller-manager";

/// Runs until `shutdown` flips to true.
pub async fn run(server: Arc<ApiServer>, mut shutdown: watch::Receiver<bool>) {
    let mut rx = server.store.subscribe();
    // Namespaces created before the subscription would otherwise be missed.
    server.publish_root_ca_everywhere();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(event) => {
                    if let Some(namespace) = concerned_namespace(&event) {
                        server.publish_root_ca(namespace);
                    }
                }
                Err(RecvError::Lagged(_)) => server.publish_root_ca_everywhere(),
                Err(RecvError::Closed) => break,
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// The namespace whose ConfigMap a change may have to (re)publish: a namespace written, or the
/// ConfigMap itself changed or deleted.
fn concerned_namespace(event: &StoreEvent) -> Option<&str> {
    let (group, plural, namespace, name) = &event.key;
    match (group.as_str(), plural.as_str()) {
        ("", "namespaces") if event.kind != EventType::Deleted => Some(name),
        ("", "configmaps") if name == CONFIG_MAP => Some(namespace),
        _ => None,
    }
}

fn desired_data() -> Value {
    json!({ DATA_KEY: CERTIFICATE })
}

/// Whether the stored ConfigMap is as published: the same data, and a description.
fn is_current(config_map: &Value) -> bool {
    let described = config_map
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty());
    config_map.get("data") == Some(&desired_data()) && described
}

impl ApiServer {
    /// Publishes the ConfigMap into every namespace.
    pub fn publish_root_ca_everywhere(&self) {
        let namespaces: Vec<String> = {
            let txn = self.store.lock();
            txn.list("", "namespaces", None)
                .into_iter()
                .map(|ns| meta::name(ns).to_owned())
                .collect()
        };
        for namespace in namespaces {
            self.publish_root_ca(&namespace);
        }
    }

    /// Creates the namespace's ConfigMap, or restores its data. Failures are left alone: a namespace
    /// gone or terminating takes no new content, and a write that lost a race with another one
    /// causes a change this publisher sees again.
    pub fn publish_root_ca(&self, namespace: &str) {
        let Some(rt) = self.registry.find("", "v1", "configmaps") else {
            return;
        };
        let request = WriteRequest {
            rt: &rt,
            namespace,
            name: CONFIG_MAP,
            sub: Sub::Main,
            manager: MANAGER,
            validation: FieldValidation::Strict,
            force: false,
            dry_run: false,
        };
        let _ = match self.get(&rt, namespace, CONFIG_MAP) {
            Err(_) => self.create(
                &WriteRequest {
                    name: "",
                    ..request
                },
                published(&rt, None),
            ),
            Ok(current) if is_current(&current) => return,
            Ok(current) => self.update(&request, published(&rt, Some(current))),
        };
    }
}

/// The ConfigMap as the publisher writes it: `current` (or a new one) with the certificate as its
/// only data and the description annotation.
fn published(rt: &ResourceType, current: Option<Value>) -> Value {
    let mut config_map = current.unwrap_or_else(|| {
        json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": CONFIG_MAP}})
    });
    config_map["data"] = desired_data();
    let metadata = meta::meta_mut(&mut config_map);
    if !metadata.get("annotations").is_some_and(Value::is_object) {
        metadata.insert("annotations".into(), json!({}));
    }
    metadata["annotations"][DESCRIPTION_ANNOTATION] = json!(DESCRIPTION);
    config_map
}
