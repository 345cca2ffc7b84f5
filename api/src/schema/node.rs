//! Read access to the parts of a structural schema node the algorithms need, and field-path joins.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// What a node says about keys it does not declare in `properties`.
pub enum Additional<'a> {
    /// `additionalProperties: {schema}`: every other key is a map entry with this schema.
    Schema(&'a JSONSchemaProps),
    /// `additionalProperties: true`: any value is allowed and kept.
    Any,
    /// No `additionalProperties` (or `false`): other keys are unknown.
    None,
}

pub fn properties(schema: &JSONSchemaProps) -> Option<&BTreeMap<String, JSONSchemaProps>> {
    schema.properties.as_ref()
}

pub fn property<'a>(schema: &'a JSONSchemaProps, name: &str) -> Option<&'a JSONSchemaProps> {
    schema.properties.as_ref().and_then(|props| props.get(name))
}

pub fn additional(schema: &JSONSchemaProps) -> Additional<'_> {
    match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Additional::Schema(s),
        Some(JSONSchemaPropsOrBool::Bool(true)) => Additional::Any,
        _ => Additional::None,
    }
}

/// The schema of a map value or of a declared property, whichever applies to `key`.
pub fn child_schema<'a>(schema: &'a JSONSchemaProps, key: &str) -> Option<&'a JSONSchemaProps> {
    property(schema, key).or(match additional(schema) {
        Additional::Schema(s) => Some(s),
        _ => None,
    })
}

/// The schema of list items (structural schemas have a single items schema).
pub fn items(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.first(),
        None => None,
    }
}

pub fn type_name(schema: &JSONSchemaProps) -> &str {
    schema.type_.as_deref().unwrap_or("")
}

pub fn int_or_string(schema: &JSONSchemaProps) -> bool {
    schema.x_kubernetes_int_or_string == Some(true)
}

pub fn preserves_unknown(schema: &JSONSchemaProps) -> bool {
    schema.x_kubernetes_preserve_unknown_fields == Some(true)
}

pub fn embedded_resource(schema: &JSONSchemaProps) -> bool {
    schema.x_kubernetes_embedded_resource == Some(true)
}

pub fn nullable(schema: &JSONSchemaProps) -> bool {
    schema.nullable == Some(true)
}

pub fn default(schema: &JSONSchemaProps) -> Option<&Value> {
    schema.default.as_ref().map(|d| &d.0)
}

pub fn list_type(schema: &JSONSchemaProps) -> &str {
    schema.x_kubernetes_list_type.as_deref().unwrap_or("atomic")
}

pub fn list_map_keys(schema: &JSONSchemaProps) -> &[String] {
    schema.x_kubernetes_list_map_keys.as_deref().unwrap_or(&[])
}

/// `parent.name`, or `name` at the root.
pub fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `parent[i]`.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `parent[key]` (how field paths print map keys).
pub fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// The item of `old` (a list) that corresponds to `item` of a `x-kubernetes-list-type: map` list,
/// matched by the list-map keys. Other list types have no correlation, as in the API server.
pub fn correlated_item<'a>(
    schema: &JSONSchemaProps,
    item: &Value,
    old: Option<&'a Value>,
) -> Option<&'a Value> {
    let old_items = old?.as_array()?;
    let keys = list_map_keys(schema);
    if list_type(schema) != "map" || keys.is_empty() {
        return None;
    }
    let item_schema = items(schema);
    let key_of = |v: &Value| -> Vec<Value> {
        keys.iter()
            .map(|k| {
                v.get(k)
                    .cloned()
                    .or_else(|| {
                        item_schema
                            .and_then(|s| property(s, k))
                            .and_then(default)
                            .cloned()
                    })
                    .unwrap_or(Value::Null)
            })
            .collect()
    };
    let wanted = key_of(item);
    old_items
        .iter()
        .find(|candidate| key_of(candidate) == wanted)
}
