//! The key order of served objects, as kube-apiserver encodes them.
//!
//! Built-in types are Go structs, encoded in field order: `kind`, `apiVersion` (TypeMeta), then
//! `metadata` in ObjectMeta's field order (name, …, uid, resourceVersion, … managedFields), then the
//! type's own fields. Custom resources are unstructured maps, and Go's JSON encoder writes map keys
//! sorted at every level. Clients may depend on this for their cost: fieldwise's engine reads an
//! apply's answer only up to `metadata.uid` and `resourceVersion`, which a built-in object gives
//! right after its name and a custom resource only after its `managedFields`. So the emulator
//! serves both orders, neither flattering nor penalising such a client.

use fieldwise_api::schema::OBJECT_META_FIELDS;
use serde_json::{Map, Value};

/// Puts a built-in object's keys in Go struct order: `kind`, `apiVersion`, `metadata` (itself in
/// ObjectMeta order), then the other fields in their stored order. Keys ObjectMeta does not
/// declare keep their relative order after the declared ones.
pub fn order_builtin(object: &mut Value) {
    let Some(top) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(meta)) = top.get_mut("metadata") {
        reorder(meta, OBJECT_META_FIELDS);
    }
    reorder(top, &["kind", "apiVersion", "metadata"]);
}

/// Sorts the keys of every JSON object in `value`, as Go encodes an unstructured map.
pub fn order_custom(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(order_custom);
        }
        Value::Array(items) => items.iter_mut().for_each(order_custom),
        _ => {}
    }
}

/// Moves the keys named in `first` to the front, in that order; the rest follow as they were.
fn reorder(map: &mut Map<String, Value>, first: &[&str]) {
    let mut rest = std::mem::take(map);
    for key in first {
        // shift_remove keeps the order of what stays (remove would swap the last key in).
        if let Some((key, value)) = rest.shift_remove_entry(*key) {
            map.insert(key, value);
        }
    }
    map.append(&mut rest);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn builtin_objects_follow_go_struct_order() {
        let mut deployment = json!({
            "metadata": {
                "labels": {"b": "1", "a": "2"},
                "managedFields": [],
                "name": "web",
                "namespace": "ns",
                "x-unknown": true,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "uid": "u",
                "resourceVersion": "7",
            },
            "spec": {"replicas": 1},
            "status": {},
            "apiVersion": "apps/v1",
            "kind": "Deployment",
        });
        order_builtin(&mut deployment);
        assert_eq!(
            keys(&deployment),
            ["kind", "apiVersion", "metadata", "spec", "status"]
        );
        assert_eq!(
            keys(&deployment["metadata"]),
            [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "labels",
                "managedFields",
                "x-unknown"
            ]
        );
        // A map's own keys (labels) are not Go struct fields and keep their order.
        assert_eq!(keys(&deployment["metadata"]["labels"]), ["b", "a"]);
    }

    #[test]
    fn custom_resources_have_keys_sorted_at_every_level() {
        let mut store = json!({
            "metadata": {"uid": "u", "managedFields": [{"manager": "m", "fieldsV1": {}}], "name": "fs"},
            "spec": {"zeta": 1, "alpha": [{"y": 1, "x": 2}]},
            "kind": "FeatureStore",
            "apiVersion": "feast.dev/v1",
        });
        order_custom(&mut store);
        assert_eq!(keys(&store), ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(keys(&store["metadata"]), ["managedFields", "name", "uid"]);
        assert_eq!(
            keys(&store["metadata"]["managedFields"][0]),
            ["fieldsV1", "manager"]
        );
        assert_eq!(keys(&store["spec"]), ["alpha", "zeta"]);
        assert_eq!(keys(&store["spec"]["alpha"][0]), ["x", "y"]);
    }

    #[test]
    fn non_objects_are_left_alone() {
        let mut text = json!("plain");
        order_builtin(&mut text);
        order_custom(&mut text);
        assert_eq!(text, json!("plain"));
    }
}
