//! Jobs: after `job_duration`, an unsuspended Job succeeds with all its completions, as the job
//! controller reports it (SuccessCriteriaMet, then Complete). A Job whose pods PodSecurity
//! admission refuses never completes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::common::{self, Controller};
use super::{CONTROLLER_MANAGER, Shared};
use crate::emulator::store::ObjKey;
use crate::emulator::{EventType, StoreEvent, meta};

#[derive(Default)]
pub(crate) struct Jobs {
    pending: Arc<Mutex<HashSet<ObjKey>>>,
}

fn finished(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("Complete" | "Failed")
                ) && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn runnable(obj: &Value) -> bool {
    !finished(obj)
        && !meta::is_terminating(obj)
        && obj.pointer("/spec/suspend").and_then(Value::as_bool) != Some(true)
}

fn completed_status(obj: &Value) -> Value {
    let completions = obj
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let old = obj.get("status");
    let start = old
        .and_then(|s| s.get("startTime"))
        .cloned()
        .unwrap_or_else(|| json!(meta::now()));
    let message = "Reached expected number of succeeded pods";
    json!({
        "startTime": start,
        "completionTime": meta::now(),
        "succeeded": completions,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            common::condition(old, "SuccessCriteriaMet", true, "CompletionsReached", message, false),
            common::condition(old, "Complete", true, "CompletionsReached", message, false),
        ],
    })
}

impl Jobs {
    fn schedule(&self, shared: &Arc<Shared>, key: ObjKey) {
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
        let duration = shared.options.job_duration;
        tokio::spawn(async move {
            // Simulated run time of the Job's pods, not synchronisation.
            tokio::time::sleep(duration).await;
            pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            common::write_status(&shared.server, &key, CONTROLLER_MANAGER, |obj| {
                (runnable(obj) && !pods_refused(&shared, &key, obj)).then(|| completed_status(obj))
            });
        });
    }
}

/// Whether PodSecurity admission of the Job's namespace refuses its pods: then none runs, and the
/// Job never completes.
fn pods_refused(shared: &Shared, key: &ObjKey, obj: &Value) -> bool {
    let Some(template) = obj.pointer("/spec/template") else {
        return false;
    };
    let pod_meta = template.get("metadata").unwrap_or(&Value::Null);
    let pod_spec = template.get("spec").unwrap_or(&Value::Null);
    let pod_name = format!("{}-{}", key.3, &common::template_hash(Some(template))[..5]);
    let txn = shared.server.store.lock();
    crate::emulator::admission::pod_refusal(&txn, &key.2, &pod_name, pod_meta, pod_spec).is_some()
}

impl Controller for Jobs {
    fn on_event(&mut self, shared: &Arc<Shared>, ev: &StoreEvent) {
        if ev.key.0 == "batch"
            && ev.key.1 == "jobs"
            && ev.kind != EventType::Deleted
            && runnable(&ev.object)
        {
            self.schedule(shared, ev.key.clone());
        }
    }

    fn resync(&mut self, shared: &Arc<Shared>) {
        for key in common::keys_of(&shared.server, "batch", "jobs") {
            if common::get(&shared.server, &key).is_some_and(|o| runnable(&o)) {
                self.schedule(shared, key);
            }
        }
    }
}
