//! Custom resources: pruning, schema defaults and validation (structural + CEL) through
//! `fieldwise_api::schema`, run on every write of a custom resource.

use serde_json::Value;

use super::errors::{ApiResult, Cause};
use super::registry::ResourceType;

/// How unknown fields are treated (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Prunes fields the schema does not declare and applies schema defaults. Returns the pruned paths
/// (`.spec.bogus`) so the caller can warn or fail.
pub fn prune_and_default(rt: &ResourceType, obj: &mut Value) -> ApiResult<Vec<String>> {
    let _ = (rt, obj);
    Ok(Vec::new())
}

/// Structural and CEL validation of a custom resource write; `old` is set on updates.
pub fn validate(rt: &ResourceType, new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let _ = (rt, new, old);
    Vec::new()
}
