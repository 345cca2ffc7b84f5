//! Pruning of fields a structural schema does not declare, as the API server does when it decodes a
//! custom resource. The pruned paths are what strict field validation reports as unknown fields.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use super::node::{self, Additional};

/// Fields of `metadata` the API server knows (`ObjectMeta`), in its Go struct order (the order the
/// API server encodes them in); anything else in a resource's metadata is dropped (and reported in
/// strict mode).
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Removes every field of `value` (a whole custom resource) that `schema` (the version's
/// `openAPIV3Schema`) does not declare, honouring `x-kubernetes-preserve-unknown-fields`,
/// `additionalProperties` and the `apiVersion`/`kind`/`metadata` rules of resource roots and
/// `x-kubernetes-embedded-resource` objects. Returns the pruned field paths, sorted
/// (`spec.bogus`, `spec.list[0].x`, `metadata.foo`).
pub fn prune_unknown(schema: &JSONSchemaProps, value: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_resource(Some(schema), value, "", &mut pruned);
    pruned.sort();
    pruned
}

/// A resource root or embedded resource: `apiVersion`/`kind` strings and a `metadata` object are
/// always kept; metadata keeps only ObjectMeta fields.
fn prune_resource(
    schema: Option<&JSONSchemaProps>,
    value: &mut Value,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let Some(map) = value.as_object_mut() else {
        prune(schema, value, path, pruned);
        return;
    };
    let preserve = schema.is_some_and(node::preserves_unknown);
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let child_path = node::child(path, &k);
        let Some(v) = map.get_mut(&k) else { continue };
        match k.as_str() {
            "apiVersion" | "kind" if v.is_string() => continue,
            "metadata" if v.is_object() => {
                prune_object_meta(v, &child_path, pruned);
                continue;
            }
            _ => {}
        }
        match schema.and_then(|s| node::child_schema(s, &k)) {
            Some(child) => prune(Some(child), v, &child_path, pruned),
            None if preserve
                || schema.is_some_and(|s| matches!(node::additional(s), Additional::Any)) => {}
            None => {
                pruned.push(child_path);
                map.remove(&k);
            }
        }
    }
}

fn prune_object_meta(meta: &mut Value, path: &str, pruned: &mut Vec<String>) {
    let Some(map) = meta.as_object_mut() else {
        return;
    };
    map.retain(|k, _| {
        let known = OBJECT_META_FIELDS.contains(&k.as_str());
        if !known {
            pruned.push(node::child(path, k));
        }
        known
    });
}

fn prune(
    schema: Option<&JSONSchemaProps>,
    value: &mut Value,
    path: &str,
    pruned: &mut Vec<String>,
) {
    let Some(schema) = schema else {
        prune_everything(value, path, pruned);
        return;
    };
    if node::embedded_resource(schema) && value.is_object() {
        prune_resource(Some(schema), value, path, pruned);
        return;
    }
    let preserve = node::preserves_unknown(schema);
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_path = node::child(path, &k);
                match node::child_schema(schema, &k) {
                    Some(child) => {
                        if let Some(v) = map.get_mut(&k) {
                            prune(Some(child), v, &child_path, pruned);
                        }
                    }
                    None if preserve || matches!(node::additional(schema), Additional::Any) => {}
                    None => {
                        pruned.push(child_path);
                        map.remove(&k);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_schema = node::items(schema);
            for (i, item) in items.iter_mut().enumerate() {
                let item_path = node::index(path, i);
                match item_schema {
                    Some(s) => prune(Some(s), item, &item_path, pruned),
                    // Items of a preserve-unknown-fields list without an items schema are kept whole.
                    None if preserve => {}
                    None => prune_everything(item, &item_path, pruned),
                }
            }
        }
        _ => {}
    }
}

/// No schema at all: every key of every nested object is unknown.
fn prune_everything(value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for k in map.keys() {
                pruned.push(node::child(path, k));
            }
            map.clear();
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                prune_everything(item, &node::index(path, i), pruned);
            }
        }
        _ => {}
    }
}
