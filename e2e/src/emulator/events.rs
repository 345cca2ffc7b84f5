//! Events have one storage and two views, as in kube-apiserver: objects are stored in the core
//! `v1` form, and `events.k8s.io/v1` serves the same objects with its field names (Kubernetes
//! `pkg/apis/events/v1` conversion). So an Event written by a kube-rs `Recorder`
//! (events.k8s.io) shows in `kubectl get events`, `kubectl events` and `kubectl describe` (core),
//! and the other way round.
//!
//! The write pipeline (merge, ownership, validation) runs on the view the request was made to;
//! only storage and reads convert. managedFields are not converted: their entries name the
//! apiVersion they were written with, as on a real server.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::registry::ResourceType;

/// `(events.k8s.io/v1 name, core v1 name)` of the fields that differ; the rest share names.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `rt` is the events.k8s.io view of the core Event storage.
pub fn is_events_view(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events" && !rt.is_custom()
}

/// The storage group and resource of `rt`: core `events` for both Event views.
pub fn storage_group(rt: &ResourceType) -> &str {
    if is_events_view(rt) { "" } else { &rt.group }
}

/// A stored object as `rt` serves it (borrowed unless `rt` is the events.k8s.io view).
pub fn view<'a>(rt: &ResourceType, stored: &'a Value) -> Cow<'a, Value> {
    if !is_events_view(rt) {
        return Cow::Borrowed(stored);
    }
    Cow::Owned(rename(stored, |(view, core)| (core, view)))
}

/// An object written through `rt` in its storage form.
pub fn to_storage(rt: &ResourceType, written: Value) -> Value {
    if !is_events_view(rt) {
        return written;
    }
    rename(&written, |(view, core)| (view, core))
}

/// Copies `object` with the top-level keys renamed `from → to` by `pick(pair)`, keeping key order.
fn rename(
    object: &Value,
    pick: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let renamed: Map<String, Value> = map
        .iter()
        .map(|(key, value)| {
            let to = RENAMED
                .iter()
                .map(|&pair| pick(pair))
                .find(|(from, _)| from == key)
                .map_or(key.as_str(), |(_, to)| to);
            (to.to_owned(), value.clone())
        })
        .collect();
    Value::Object(renamed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::emulator::registry::Registry;

    #[test]
    fn events_k8s_io_fields_are_stored_under_their_core_names_and_back() {
        let registry = Registry::default();
        let Some(rt) = registry.find("events.k8s.io", "v1", "events") else {
            panic!("events.k8s.io/v1 events are served");
        };
        let written = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "note": "Scaled up",
            "reason": "ScalingReplicaSet",
            "reportingController": "fieldwise",
            "deprecatedCount": 2,
        });
        let stored = to_storage(&rt, written.clone());
        assert_eq!(
            stored,
            json!({
                "metadata": {"name": "e"},
                "involvedObject": {"kind": "Deployment", "name": "web"},
                "message": "Scaled up",
                "reason": "ScalingReplicaSet",
                "reportingComponent": "fieldwise",
                "count": 2,
            })
        );
        assert_eq!(view(&rt, &stored).into_owned(), written);
        let Some(core) = registry.find("", "v1", "events") else {
            panic!("core events are served");
        };
        assert_eq!(view(&core, &stored).into_owned(), stored);
    }
}
