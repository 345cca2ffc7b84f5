//! Custom resources: pruning, schema defaults and validation (structural + CEL) through
//! `fieldwise_api::schema`, run on every write of a custom resource.

use fieldwise_api::schema::{self as crschema, FieldError};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::registry::ResourceType;

/// How unknown fields are treated (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Prunes fields the schema does not declare and applies schema defaults. Returns the pruned paths
/// (`spec.bogus`) so the caller can warn or fail.
pub fn prune_and_default(rt: &ResourceType, obj: &mut Value) -> Vec<String> {
    let Some(props) = rt.custom.as_ref().and_then(|c| c.props.as_deref()) else {
        return Vec::new();
    };
    let pruned = crschema::prune_unknown(props, obj);
    crschema::apply_defaults(props, obj);
    pruned
}

/// Metadata, schema, scale paths, list types and CEL rules (transition rules when `old` is set).
pub fn validate(rt: &ResourceType, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(c) = rt.custom.as_ref() else {
        return Vec::new();
    };
    let Some(props) = c.props.as_deref() else {
        return crschema::validate_object_meta(new);
    };
    crschema::validate_custom_resource(props, c.scale.as_ref(), new, old)
}

/// Paths of the nulls in non-nullable fields without a default of a merged apply result (nulled by
/// the configuration, or containers emptied by pruning). kube-apiserver drops such nulls when it
/// decodes a create or update body, but an apply's merge result keeps them and fails validation
/// (`must be of type object: "null"`).
pub fn stray_nulls(rt: &ResourceType, config: &Value) -> Vec<Vec<String>> {
    let Some(props) = rt.custom.as_ref().and_then(|c| c.props.as_deref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Value::Object(top) = config {
        for (key, value) in top {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(child) = child_schema(props, key) {
                stray_nulls_in(child, value, &mut vec![key.clone()], &mut out);
            }
        }
    }
    out
}

fn stray_nulls_in(
    schema: &JSONSchemaProps,
    value: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    if value.is_null() {
        if schema.nullable != Some(true) && schema.default.is_none() {
            out.push(path.clone());
        }
        return;
    }
    let children: Vec<(String, &Value, Option<&JSONSchemaProps>)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v, child_schema(schema, k)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v, item_schema(schema)))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child, child_schema) in children {
        if let Some(child_schema) = child_schema {
            path.push(key);
            stray_nulls_in(child_schema, child, path, out);
            path.pop();
        }
    }
}

fn child_schema<'a>(schema: &'a JSONSchemaProps, key: &str) -> Option<&'a JSONSchemaProps> {
    if let Some(property) = schema.properties.as_ref().and_then(|p| p.get(key)) {
        return Some(property);
    }
    match schema.additional_properties.as_ref() {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

fn item_schema(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match schema.items.as_ref() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        _ => None,
    }
}

/// Sets each path to null where its parent exists (the nulls [`stray_nulls`] found, back in a
/// merged object for validation).
pub fn put_nulls(object: &mut Value, paths: &[Vec<String>]) {
    for path in paths {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let pointer: String = parents
            .iter()
            .map(|key| format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            .collect();
        if let Some(Value::Object(map)) = object.pointer_mut(&pointer) {
            map.insert(last.clone(), Value::Null);
        }
    }
}
