//! Generic handling of custom resources by their CRD structural schema, following how kube-apiserver
//! 1.32 treats them: pruning of unknown fields, defaulting, OpenAPI validation, list-type invariants
//! and `x-kubernetes-validations` CEL rules, with errors worded exactly as the API server words them.
//!
//! The order the API server uses on create/update is: [`prune_unknown`] → [`apply_defaults`] →
//! [`validate_custom_resource`] (or [`validate`] for the schema part alone). Pure functions, no I/O.

mod cel;
mod default;
mod error;
mod format;
mod gofmt;
mod listtype;
mod meta;
mod node;
mod openapi;
mod prune;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceSubresourceScale, JSONSchemaProps,
};
use serde_json::Value;

pub use cel::{escape_property, to_cel};
pub use default::apply_defaults;
pub use error::{
    BadValue, ErrorType, FieldError, aggregate, invalid_message, invalid_status,
    kubectl_invalid_message, status_causes,
};
pub use meta::{validate_object_meta, validate_scale};
pub use prune::{OBJECT_META_FIELDS, prune_unknown};

/// The detail of the extra error the API server adds when schema errors stop CEL rules from running.
pub const CEL_SKIPPED_DETAIL: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Validates `new` (already pruned and defaulted) against `schema`: OpenAPI value validation, then
/// list-type (set/map) uniqueness, then CEL rules, in the API server's order. CEL rules are skipped
/// when a blocking error (type, required, enum, maxLength, maxItems/maxProperties) exists, with the
/// API server's `<nil>: Invalid value: "null": some validation rules were not checked…` error instead.
/// `old` is the stored object on update: it enables transition rules and ratchets unchanged values.
pub fn validate(schema: &JSONSchemaProps, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = schema_errors(schema, new, old);
    push_cel_errors(schema, new, old, &mut errors);
    errors
}

/// Everything the API server checks on a custom resource create (`old` = None) or update: object
/// metadata (name, namespace), the schema, the scale subresource's replica paths, list types and CEL.
pub fn validate_custom_resource(
    schema: &JSONSchemaProps,
    scale: Option<&CustomResourceSubresourceScale>,
    new: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errors = validate_object_meta(new);
    errors.extend(openapi_errors(schema, new, old));
    if let Some(scale) = scale {
        errors.extend(validate_scale(scale, new));
    }
    errors.extend(list_type_errors(schema, new, old));
    push_cel_errors(schema, new, old, &mut errors);
    errors
}

fn openapi_errors(schema: &JSONSchemaProps, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    openapi::validate_value(schema, new, old, &mut errors);
    errors
}

/// List-type errors; on update only those the old object did not already have.
fn list_type_errors(schema: &JSONSchemaProps, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    listtype::validate_list_types(schema, new, "", &mut errors);
    if let Some(old) = old {
        let mut before = Vec::new();
        listtype::validate_list_types(schema, old, "", &mut before);
        errors.retain(|e| !before.contains(e));
    }
    errors
}

fn schema_errors(schema: &JSONSchemaProps, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = openapi_errors(schema, new, old);
    errors.extend(list_type_errors(schema, new, old));
    errors
}

fn push_cel_errors(
    schema: &JSONSchemaProps,
    new: &Value,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    if !has_cel_rules(schema) {
        return;
    }
    if errors.iter().any(FieldError::blocks_cel) {
        errors.push(FieldError::invalid("", Value::Null, CEL_SKIPPED_DETAIL));
        return;
    }
    cel::validate_cel(schema, new, old, errors);
}

/// Whether any node of the schema carries `x-kubernetes-validations`.
pub fn has_cel_rules(schema: &JSONSchemaProps) -> bool {
    if schema
        .x_kubernetes_validations
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return true;
    }
    let in_props = node::properties(schema).is_some_and(|p| p.values().any(has_cel_rules));
    let in_items = node::items(schema).is_some_and(has_cel_rules);
    let in_additional =
        matches!(node::additional(schema), node::Additional::Schema(s) if has_cel_rules(s));
    in_props || in_items || in_additional
}

#[cfg(test)]
mod tests;
