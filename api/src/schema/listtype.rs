//! `x-kubernetes-list-type: set|map` invariants: unique items, unique list-map keys.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

use super::error::FieldError;
use super::node;

/// Reports duplicate set items and duplicate list-map keys anywhere in `value`.
pub fn validate_list_types(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::Array(items) => {
            match node::list_type(schema) {
                "set" => duplicates_in_set(items, path, errors),
                "map" => duplicates_in_map(schema, items, path, errors),
                _ => {}
            }
            if let Some(item_schema) = node::items(schema) {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item_schema, item, &node::index(path, i), errors);
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(child) = node::property(schema, k) {
                    validate_list_types(child, v, &node::child(path, k), errors);
                } else if let node::Additional::Schema(additional) = node::additional(schema) {
                    validate_list_types(additional, v, &node::key(path, k), errors);
                }
            }
        }
        _ => {}
    }
}

/// Each repeated value is reported once, at its second occurrence.
fn report_repeats<K: PartialEq>(keys: &[K], mut report: impl FnMut(usize)) {
    for (i, key) in keys.iter().enumerate() {
        let earlier = keys[..i].iter().filter(|k| *k == key).count();
        if earlier == 1 {
            report(i);
        }
    }
}

fn duplicates_in_set(items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    report_repeats(items, |i| {
        errors.push(FieldError::duplicate(
            node::index(path, i),
            items[i].clone(),
        ))
    });
}

fn duplicates_in_map(
    schema: &JSONSchemaProps,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(i) = items.iter().position(|x| !x.is_null() && !x.is_object()) {
        errors.push(FieldError::invalid(
            node::index(path, i),
            items[i].clone(),
            "must be an object for an array of list-type map",
        ));
        return;
    }
    let key_names = node::list_map_keys(schema);
    let item_schema = node::items(schema);
    // A missing key takes its schema default; without one it is "unspecified" (None), which only equals itself.
    let keys: Vec<Vec<(String, Option<Value>)>> = items
        .iter()
        .map(|item| {
            key_names
                .iter()
                .map(|k| {
                    let v = item.get(k).cloned().or_else(|| {
                        item_schema
                            .and_then(|s| node::property(s, k))
                            .and_then(node::default)
                            .cloned()
                    });
                    (k.clone(), v)
                })
                .collect()
        })
        .collect();
    report_repeats(&keys, |i| {
        let shown: Map<String, Value> = keys[i]
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        errors.push(FieldError::duplicate(
            node::index(path, i),
            Value::Object(shown),
        ));
    });
}
