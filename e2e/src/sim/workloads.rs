//! Deployments and StatefulSets: after `ready_delay`, status catches up with spec as the
//! deployment and statefulset controllers report it once every pod is ready. A workload that is
//! switched to never-ready reports its pods as created but unavailable.
//!
//! A StatefulSet whose pod template changes first reports the rollout as the statefulset
//! controller does on observing it, before it replaces any pod: the new generation observed,
//! `updateRevision` the new revision, `currentRevision` still the old one and no replica updated,
//! while the old pods are still ready. Only the revisions tell that it is not rolled out yet.
//!
//! Pods that PodSecurity admission of the namespace refuses are never created: a Deployment then
//! reports no replicas and the `ReplicaFailure` condition (`FailedCreate`, the API server's
//! message), a StatefulSet no replicas.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::common::{self, Controller};
use super::{CONTROLLER_MANAGER, NEVER_READY_ANNOTATION, Shared};
use crate::emulator::store::ObjKey;
use crate::emulator::{EventType, StoreEvent};

const KINDS: &[&str] = &["deployments", "statefulsets"];

#[derive(Default)]
pub(crate) struct Workloads {
    /// Workloads with a status update already scheduled.
    pending: Arc<Mutex<HashSet<ObjKey>>>,
}

impl Workloads {
    fn schedule(&self, shared: &Arc<Shared>, key: ObjKey) {
        let delay = shared.options.ready_delay;
        if delay.is_zero() {
            settle(shared, &key);
            return;
        }
        if !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let pending = self.pending.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            // Simulated rollout time, not synchronisation: the status is computed from the object
            // as it is when the time is up.
            tokio::time::sleep(delay).await;
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            settle(&shared, &key);
        });
    }
}

impl Controller for Workloads {
    fn on_event(&mut self, shared: &Arc<Shared>, ev: &StoreEvent) {
        let (group, plural) = (&ev.key.0, &ev.key.1);
        if group == "apps" && KINDS.contains(&plural.as_str()) && ev.kind != EventType::Deleted {
            if plural == "statefulsets" && !shared.options.ready_delay.is_zero() {
                start_rollout(shared, &ev.key, &ev.object);
            }
            if needs_update(shared, &ev.key, &ev.object) {
                self.schedule(shared, ev.key.clone());
            }
        } else if group.is_empty() && plural == "namespaces" {
            // The never-ready annotation may have changed on the namespace.
            self.resync(shared);
        }
    }

    fn resync(&mut self, shared: &Arc<Shared>) {
        for plural in KINDS {
            for key in common::keys_of(&shared.server, "apps", plural) {
                if let Some(obj) = common::get(&shared.server, &key)
                    && needs_update(shared, &key, &obj)
                {
                    self.schedule(shared, key);
                }
            }
        }
    }
}

fn never_ready(shared: &Shared, key: &ObjKey, obj: &Value) -> bool {
    shared.never_ready_set(&key.2, &key.3)
        || common::annotated(&shared.server, obj, &key.2, NEVER_READY_ANNOTATION)
}

fn desired_status(shared: &Shared, key: &ObjKey, obj: &Value) -> Value {
    let ready = !never_ready(shared, key, obj);
    let refusal = pods_refused(shared, key, obj);
    if key.1 == "deployments" {
        deployment_status(obj, &key.3, ready, refusal.as_deref())
    } else {
        statefulset_status(obj, &key.3, ready, refusal.is_some())
    }
}

/// Why the workload's pods cannot be created, if PodSecurity admission of its namespace refuses
/// them: the message the controller gets for its first pod (`<replicaset>-<suffix>` of a
/// Deployment, `<name>-0` of a StatefulSet). The simulators keep no pods, so this stands for the
/// pod creations that fail.
fn pods_refused(shared: &Shared, key: &ObjKey, obj: &Value) -> Option<String> {
    if common::spec_replicas(obj) == 0 {
        return None;
    }
    let template = obj.pointer("/spec/template")?;
    let (pod_meta, pod_spec) = (
        template.get("metadata").unwrap_or(&Value::Null),
        template.get("spec").unwrap_or(&Value::Null),
    );
    let pod_name = if key.1 == "deployments" {
        let rs = replica_set_name(obj, &key.3);
        let suffix: String = common::template_hash(Some(&json!(rs)))
            .chars()
            .take(5)
            .collect();
        format!("{rs}-{suffix}")
    } else {
        format!("{}-0", key.3)
    };
    let txn = shared.server.store.lock();
    crate::emulator::admission::pod_refusal(&txn, &key.2, &pod_name, pod_meta, pod_spec)
}

/// The name of a Deployment's current ReplicaSet: `<name>-<pod-template-hash>`.
fn replica_set_name(obj: &Value, name: &str) -> String {
    format!(
        "{name}-{}",
        common::template_hash(obj.pointer("/spec/template"))
    )
}

/// Whether the status differs from what the controller would report (ignoring condition times).
fn needs_update(shared: &Shared, key: &ObjKey, obj: &Value) -> bool {
    let strip = |s: Option<&Value>| {
        let mut s = s.cloned().unwrap_or_else(|| json!({}));
        if let Some(cs) = s.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                c.remove("lastTransitionTime");
                c.remove("lastUpdateTime");
            }
        }
        s
    };
    strip(obj.get("status")) != strip(Some(&desired_status(shared, key, obj)))
}

fn settle(shared: &Shared, key: &ObjKey) {
    common::write_status(&shared.server, key, CONTROLLER_MANAGER, |obj| {
        Some(desired_status(shared, key, obj))
    });
}

/// Reports the start of a StatefulSet's rolling update when its template changed since the
/// revision its pods run (`status.currentRevision`) and the rollout is not reported yet.
fn start_rollout(shared: &Shared, key: &ObjKey, obj: &Value) {
    let update = revision(obj, &key.3);
    let text = |pointer: &str| obj.pointer(pointer).and_then(Value::as_str);
    let Some(current) = text("/status/currentRevision") else {
        return; // never rolled out: nothing to update from
    };
    if current == update || text("/status/updateRevision") == Some(update.as_str()) {
        return;
    }
    let current = current.to_owned();
    common::write_status(&shared.server, key, CONTROLLER_MANAGER, |obj| {
        let mut status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
        status["observedGeneration"] = json!(common::generation(obj));
        status["updateRevision"] = json!(update);
        status["currentRevision"] = json!(current);
        if let Some(status) = status.as_object_mut() {
            status.remove("updatedReplicas");
        }
        Some(status)
    });
}

/// The controller-revision name of a StatefulSet's current template: `<name>-<hash>`.
fn revision(obj: &Value, name: &str) -> String {
    format!(
        "{name}-{}",
        common::template_hash(obj.pointer("/spec/template"))
    )
}

/// Inserts the non-zero counts (the API omits zero-valued replica counts).
fn counts(status: &mut Map<String, Value>, fields: &[(&str, i64)]) {
    for (name, n) in fields {
        if *n != 0 {
            status.insert((*name).to_string(), json!(n));
        }
    }
}

fn deployment_status(obj: &Value, name: &str, ready: bool, refusal: Option<&str>) -> Value {
    let n = common::spec_replicas(obj);
    let old = obj.get("status");
    let rs = replica_set_name(obj, name);
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(common::generation(obj)));
    if let Some(refusal) = refusal {
        // No pod could be created: none exists, the ReplicaSet's failure is copied up, and the
        // rollout has not progressed since the ReplicaSet was created.
        counts(&mut status, &[("unavailableReplicas", n)]);
        // In kube-controller-manager's order: Progressing, Available, ReplicaFailure.
        let conditions = [
            common::condition(
                old,
                "Progressing",
                true,
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{rs}\""),
                true,
            ),
            common::condition(
                old,
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                true,
            ),
            common::condition(old, "ReplicaFailure", true, "FailedCreate", refusal, true),
        ];
        status.insert("conditions".into(), json!(conditions));
        return Value::Object(status);
    }
    let (available, progressing) = if ready {
        counts(
            &mut status,
            &[
                ("replicas", n),
                ("updatedReplicas", n),
                ("readyReplicas", n),
                ("availableReplicas", n),
            ],
        );
        (
            common::condition(
                old,
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                true,
            ),
            common::condition(
                old,
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs}\" has successfully progressed."),
                true,
            ),
        )
    } else {
        counts(
            &mut status,
            &[
                ("replicas", n),
                ("updatedReplicas", n),
                ("unavailableReplicas", n),
            ],
        );
        (
            common::condition(
                old,
                "Available",
                n == 0,
                if n == 0 {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if n == 0 {
                    "Deployment has minimum availability."
                } else {
                    "Deployment does not have minimum availability."
                },
                true,
            ),
            common::condition(
                old,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{rs}\" is progressing."),
                true,
            ),
        )
    };
    status.insert("conditions".into(), json!([available, progressing]));
    Value::Object(status)
}

fn statefulset_status(obj: &Value, name: &str, ready: bool, refused: bool) -> Value {
    // Refused pods are never created: none exists.
    let n = if refused {
        0
    } else {
        common::spec_replicas(obj)
    };
    let revision = revision(obj, name);
    let ready_n = if ready { n } else { 0 };
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(common::generation(obj)));
    status.insert("replicas".into(), json!(n));
    counts(
        &mut status,
        &[
            ("readyReplicas", ready_n),
            ("currentReplicas", n),
            ("updatedReplicas", n),
            ("availableReplicas", ready_n),
        ],
    );
    status.insert("currentRevision".into(), json!(revision));
    status.insert("updateRevision".into(), json!(revision));
    status.insert("collisionCount".into(), json!(0));
    Value::Object(status)
}
