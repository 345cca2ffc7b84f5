//! The Table kube-apiserver serves for Events (core `v1` and `events.k8s.io/v1` alike, one printer):
//! what `kubectl get events` shows. The server fills every column; kubectl hides those of priority 1
//! unless `-o wide`. Columns, cells and wording as kube-apiserver v1.33.13 answered them.

use serde_json::{Value, json};

use super::table::since;

/// `(name, format, description, priority)` of each column.
const COLUMNS: &[(&str, &str, &str, u8)] = &[
    (
        "Last Seen",
        "",
        "The time at which the most recent occurrence of this event was recorded.",
        0,
    ),
    (
        "Type",
        "",
        "Type of this event (Normal, Warning), new types could be added in the future",
        0,
    ),
    (
        "Reason",
        "",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        0,
    ),
    ("Object", "", "The object that this event is about.", 0),
    (
        "Subobject",
        "",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
        1,
    ),
    (
        "Source",
        "",
        "The component reporting this event. Should be a short machine understandable string.",
        1,
    ),
    (
        "Message",
        "",
        "A human-readable description of the status of this operation.",
        0,
    ),
    (
        "First Seen",
        "",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        1,
    ),
    (
        "Count",
        "",
        "The number of times this event has occurred.",
        1,
    ),
    (
        "Name",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        1,
    ),
];

pub fn columns() -> Vec<Value> {
    COLUMNS
        .iter()
        .map(|(name, format, description, priority)| {
            json!({"name": name, "type": "string", "format": format,
                "description": description, "priority": priority})
        })
        .collect()
}

fn text<'a>(event: &'a Value, pointer: &str) -> &'a str {
    event.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The first of `values` that is not empty.
fn first_set<'a>(values: &[&'a str]) -> &'a str {
    values.iter().find(|v| !v.is_empty()).copied().unwrap_or("")
}

/// `kind/name` of the object the Event is about, the kind in lower case (the name left out when
/// empty).
fn object(event: &Value) -> String {
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    match text(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    }
}

/// `component, instance`: the old recorder's `source`, else the reporting controller and instance.
fn source(event: &Value) -> String {
    let component = first_set(&[
        text(event, "/source/component"),
        text(event, "/reportingComponent"),
    ]);
    match first_set(&[
        text(event, "/source/host"),
        text(event, "/reportingInstance"),
    ]) {
        "" => component.to_owned(),
        instance => format!("{component}, {instance}"),
    }
}

/// The cells of one Event in its core `v1` form. The new API's Events carry `eventTime` (first
/// seen) and a `series` (last seen, count) where the old one has timestamps and a count; a
/// singleton has no count and counts as 1.
pub fn cells(event: &Value) -> Vec<Value> {
    let first_seen = first_set(&[text(event, "/firstTimestamp"), text(event, "/eventTime")]);
    let mut last_seen = first_set(&[text(event, "/lastTimestamp"), first_seen]);
    let mut count = event["count"].as_i64().unwrap_or(0);
    if event["series"].is_object() {
        last_seen = text(event, "/series/lastObservedTime");
        count = event["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    vec![
        json!(since(last_seen)),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(object(event)),
        json!(text(event, "/involvedObject/fieldPath")),
        json!(source(event)),
        json!(text(event, "/message").trim()),
        json!(since(first_seen)),
        json!(count),
        json!(text(event, "/metadata/name")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_event_shows_its_source_subobject_and_count() {
        let event = json!({
            "metadata": {"name": "web.legacy"},
            "involvedObject": {"kind": "Deployment", "name": "web", "fieldPath": "spec.x"},
            "reason": "Old", "message": "  from the core API  ", "count": 4,
            "source": {"component": "old-controller", "host": "h1"},
        });
        let cells = cells(&event);
        assert_eq!(cells[0], "<unknown>");
        assert_eq!(cells[3], "deployment/web");
        assert_eq!(cells[4], "spec.x");
        assert_eq!(cells[5], "old-controller, h1");
        assert_eq!(cells[6], "from the core API");
        assert_eq!(cells[8], 4);
        assert_eq!(cells[9], "web.legacy");
    }

    #[test]
    fn a_new_api_event_counts_one_and_names_its_reporter() {
        let event = json!({
            "metadata": {"name": "bare"},
            "involvedObject": {"kind": "ConfigMap"},
            "reason": "R", "message": "m",
            "reportingComponent": "fieldwise", "reportingInstance": "fieldwise-0",
        });
        let cells = cells(&event);
        assert_eq!(cells[3], "configmap");
        assert_eq!(cells[5], "fieldwise, fieldwise-0");
        assert_eq!(cells[8], 1);
    }
}
