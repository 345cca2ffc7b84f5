//! Custom resources: pruning, schema defaults and validation (structural + CEL) through
//! `fieldwise_api::schema`, run on every write of a custom resource.

use fieldwise_api::schema::{self as crschema, FieldError};
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
