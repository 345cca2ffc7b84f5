//! The parts of custom resource validation outside the schema: object metadata names and the scale
//! subresource's replica paths.

use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceSubresourceScale;
use regex::Regex;
use serde_json::Value;

use super::error::FieldError;

const DNS1123_SUBDOMAIN: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_LABEL: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?";

fn full_match(cell: &'static OnceLock<Option<Regex>>, pattern: &str, s: &str) -> bool {
    // The patterns are constants that compile; if one did not, the name is not judged.
    cell.get_or_init(|| Regex::new(&format!("^{pattern}$")).ok())
        .as_ref()
        .is_none_or(|re| re.is_match(s))
}

/// `metadata.name` (required unless `generateName` is set; an RFC 1123 subdomain) and
/// `metadata.namespace` (an RFC 1123 label), worded as the API server words them.
pub fn validate_object_meta(object: &Value) -> Vec<FieldError> {
    static SUBDOMAIN: OnceLock<Option<Regex>> = OnceLock::new();
    static LABEL: OnceLock<Option<Regex>> = OnceLock::new();
    let mut errors = Vec::new();
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let generate_name = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        if generate_name.is_empty() {
            errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        if name.len() > 253 {
            errors.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 253 characters",
            ));
        }
        if !full_match(&SUBDOMAIN, DNS1123_SUBDOMAIN, name) {
            errors.push(FieldError::invalid(
                "metadata.name",
                name,
                format!(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
                ),
            ));
        }
    }
    if let Some(namespace) = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        if namespace.len() > 63 {
            errors.push(FieldError::invalid(
                "metadata.namespace",
                namespace,
                "must be no more than 63 characters",
            ));
        }
        if !full_match(&LABEL, DNS1123_LABEL, namespace) {
            errors.push(FieldError::invalid(
                "metadata.namespace",
                namespace,
                format!(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL}')"
                ),
            ));
        }
    }
    errors
}

/// The scale subresource's replica fields, when present, must be integers within 0..=MaxInt32. The
/// error field is the path as written in the CRD (`.spec.replicas`).
pub fn validate_scale(scale: &CustomResourceSubresourceScale, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for path in [&scale.spec_replicas_path, &scale.status_replicas_path] {
        if let Some(error) = replicas_error(path, object) {
            errors.push(error);
        }
    }
    errors
}

fn replicas_error(path: &str, object: &Value) -> Option<FieldError> {
    let mut current = object;
    for segment in path.trim_start_matches('.').split('.') {
        current = current.get(segment)?;
    }
    let Some(replicas) = current.as_i64() else {
        let go_type = match current {
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Number(_) => "float64",
            Value::Array(_) => "[]interface {}",
            Value::Object(_) => "map[string]interface {}",
            Value::Null => return None,
        };
        let shown = match current {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Some(FieldError::invalid(
            path,
            0,
            format!("{path} accessor error: {shown} is of the type {go_type}, expected int64"),
        ));
    };
    if replicas < 0 {
        Some(FieldError::invalid(
            path,
            replicas,
            "should be a non-negative integer",
        ))
    } else if replicas > i64::from(i32::MAX) {
        Some(FieldError::invalid(
            path,
            replicas,
            format!("should be less than or equal to {}", i32::MAX),
        ))
    } else {
        None
    }
}
