//! Field errors worded exactly as kube-apiserver 1.32 words them (`k8s.io/apimachinery/pkg/util/validation/field`),
//! and the 422 `Invalid` status built from them.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;

use super::gofmt;

/// The kind of a field error; each maps to one `StatusCause` reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    /// The value does not have the schema's type. Worded like `Invalid`, but a different cause reason.
    TypeInvalid,
}

impl ErrorType {
    /// The machine-readable reason used in `status.details.causes[].reason`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human phrase that starts an error body.
    pub fn phrase(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }

    /// Errors of these types show no value, whatever they carry.
    fn hides_value(self) -> bool {
        matches!(
            self,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
        )
    }
}

/// The offending value of a field error.
#[derive(Clone, Debug, PartialEq)]
pub enum BadValue {
    /// No value is shown (e.g. `Too many` with an unknown count).
    Omitted,
    /// A JSON value, printed the way Go prints the decoded value (`0`, `"foo"`, `map[string]interface {}{…}`).
    Json(Value),
}

impl From<Value> for BadValue {
    fn from(value: Value) -> Self {
        BadValue::Json(value)
    }
}

impl From<&str> for BadValue {
    fn from(value: &str) -> Self {
        BadValue::Json(Value::String(value.to_owned()))
    }
}

impl From<i64> for BadValue {
    fn from(value: i64) -> Self {
        BadValue::Json(Value::from(value))
    }
}

/// One field-level validation error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field path as the API server prints it (`spec.replicas`, `spec.list[0]`); empty means the
    /// whole object and prints as `<nil>`.
    pub field: String,
    pub error_type: ErrorType,
    pub bad_value: BadValue,
    pub detail: String,
}

impl FieldError {
    pub fn new(
        error_type: ErrorType,
        field: impl Into<String>,
        bad_value: BadValue,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            error_type,
            bad_value,
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(ErrorType::Invalid, field, value.into(), detail)
    }

    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(ErrorType::TypeInvalid, field, value.into(), detail)
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, field, BadValue::from(""), detail)
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, BadValue::from(""), detail)
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::Duplicate, field, value.into(), "")
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        supported: &[String],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| gofmt::quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(ErrorType::NotSupported, field, value.into(), detail)
    }

    /// `Too long: may not be more than N bytes` (1.32 wording; the value is never shown).
    pub fn too_long(field: impl Into<String>, max_length: Option<i64>) -> Self {
        let detail = match max_length {
            Some(1) => "may not be more than 1 byte".to_owned(),
            Some(max) if max >= 0 => format!("may not be more than {max} bytes"),
            _ => "value is too long".to_owned(),
        };
        Self::new(
            ErrorType::TooLong,
            field,
            BadValue::from("<value omitted>"),
            detail,
        )
    }

    /// `Too many: 3: must have at most 2 items`.
    pub fn too_many(field: impl Into<String>, actual: Option<i64>, max: Option<i64>) -> Self {
        let detail = match max {
            Some(1) => "must have at most 1 item".to_owned(),
            Some(max) if max >= 0 => format!("must have at most {max} items"),
            _ => "has too many items".to_owned(),
        };
        let value = match actual {
            Some(actual) if actual >= 0 => BadValue::from(actual),
            _ => BadValue::Omitted,
        };
        Self::new(ErrorType::TooMany, field, value, detail)
    }

    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            ErrorType::Internal,
            field,
            BadValue::Json(Value::Null),
            detail,
        )
    }

    /// The message without the field: `Invalid value: 0: spec.replicas in body should be …`.
    pub fn body(&self) -> String {
        let mut body = self.error_type.phrase().to_owned();
        if !self.error_type.hides_value()
            && let BadValue::Json(value) = &self.bad_value
        {
            body.push_str(": ");
            body.push_str(&gofmt::bad_value(value));
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }

    /// The field as printed: `<nil>` for the whole object.
    pub fn field_display(&self) -> &str {
        if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        }
    }

    /// Whether the API server treats this error as blocking CEL evaluation (type, required, enum,
    /// maxLength, maxItems/maxProperties violations).
    pub fn blocks_cel(&self) -> bool {
        matches!(
            self.error_type,
            ErrorType::NotSupported
                | ErrorType::Required
                | ErrorType::TooLong
                | ErrorType::TooMany
                | ErrorType::TypeInvalid
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field_display(), self.body())
    }
}

impl std::error::Error for FieldError {}

/// The errors joined as the API server aggregates them: duplicates (same text) dropped, one error
/// printed bare, several as `[e1, e2]`.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for error in errors {
        let text = error.to_string();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// What kubectl (1.32, 1.33) prints for a 422 `Invalid` answer with these errors: `The FeatureStore
/// "sample" is invalid: <field>: <message>` for one error; for several, that first line ending in
/// `: ` and then one `* <field>: <message>` line per error (duplicates dropped, as kubectl drops
/// them). No trailing newline.
pub fn kubectl_invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let head = format!("The {kind} {} is invalid", gofmt::quote(name));
    let mut lines: Vec<String> = Vec::new();
    for error in errors {
        let line = format!("{}: {}", error.field_display(), error.body());
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    match lines.len() {
        0 => head,
        1 => format!("{head}: {}", lines[0]),
        _ => {
            let items: Vec<String> = lines.iter().map(|line| format!("* {line}")).collect();
            format!("{head}: \n{}", items.join("\n"))
        }
    }
}

/// `FeatureStore.feast.dev "sample" is invalid: <errors>` (group empty for core kinds: `Pod "x" is invalid: …`).
pub fn invalid_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> String {
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let name = gofmt::quote(name);
    if errors.is_empty() {
        format!("{qualified} {name} is invalid")
    } else {
        format!("{qualified} {name} is invalid: {}", aggregate(errors))
    }
}

/// One `details.causes[]` entry per error (not deduplicated, as the API server does).
pub fn status_causes(errors: &[FieldError]) -> Vec<StatusCause> {
    errors
        .iter()
        .map(|error| StatusCause {
            reason: Some(error.error_type.reason().to_owned()),
            message: Some(error.body()),
            field: Some(error.field_display().to_owned()),
        })
        .collect()
}

/// The complete 422 `Invalid` Status body the API server returns for these errors.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Status {
    Status {
        status: Some("Failure".to_owned()),
        message: Some(invalid_message(kind, group, name, errors)),
        reason: Some("Invalid".to_owned()),
        code: Some(422),
        details: Some(StatusDetails {
            name: (!name.is_empty()).then(|| name.to_owned()),
            group: (!group.is_empty()).then(|| group.to_owned()),
            kind: Some(kind.to_owned()),
            causes: Some(status_causes(errors)),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}
