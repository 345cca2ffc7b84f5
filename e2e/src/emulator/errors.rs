//! Kubernetes `Status` failure bodies, with the wording kube-apiserver 1.32 uses (spec §4).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::registry::ResourceType;

/// One cause of a 422 Invalid answer: `field: message` in the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: String,
    /// The field path without a leading dot, e.g. `spec.replicas`.
    pub field: String,
    /// The text after `field: `, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
}

impl Cause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The cause's text as the summary line shows it.
    pub fn summary(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// A failed request, rendered as a `Status` body by [`ApiError::body`].
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// Empty for the reason-less 500 of a failed typed conversion.
    pub reason: String,
    pub message: String,
    /// `None` leaves `details` out; `Some({})` writes an empty object.
    pub details: Option<Box<Map<String, Value>>>,
}

fn name_details(rt: &ResourceType, name: &str) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !rt.group.is_empty() {
        d.insert("group".into(), json!(rt.group));
    }
    d.insert("kind".into(), json!(rt.plural));
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", rt.qualified(), name),
        );
        e.details = Some(Box::new(name_details(rt, name)));
        e
    }

    /// A namespace named in the path does not exist.
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut d = Map::new();
        d.insert("name".into(), json!(ns));
        d.insert("kind".into(), json!("namespaces"));
        ApiError {
            code: 404,
            reason: "NotFound".into(),
            message: format!("namespaces \"{ns}\" not found"),
            details: Some(Box::new(d)),
        }
    }

    pub fn path_not_found() -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
        e.details = Some(Box::default());
        e
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", rt.qualified(), name),
        );
        e.details = Some(Box::new(name_details(rt, name)));
        e
    }

    /// Stale resourceVersion on update, or a failed precondition.
    pub fn modified(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{}\": {}",
            rt.qualified(),
            name,
            why
        );
        let mut e = Self::new(409, "Conflict", msg);
        e.details = Some(Box::new(name_details(rt, name)));
        e
    }

    /// A failed delete precondition: kube-apiserver's storage names the object by its kind (not
    /// its resource, as other conflicts do), e.g. `Deployment.apps "web"`.
    pub fn precondition_failed(rt: &ResourceType, name: &str, why: &str) -> Self {
        let kind = if rt.group.is_empty() {
            rt.kind.clone()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        let mut e = Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {kind} \"{name}\": {why}"),
        );
        let mut details = name_details(rt, name);
        details.insert("kind".into(), json!(rt.kind));
        e.details = Some(Box::new(details));
        e
    }

    /// 422 with one error as `field: body` and several as `[e1, e2]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let errs: Vec<String> = causes.iter().map(Cause::summary).collect();
        let joined = if errs.len() == 1 {
            errs[0].clone()
        } else {
            format!("[{}]", errs.join(", "))
        };
        let kind_group = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = format!("{kind_group} \"{name}\" is invalid: {joined}");
        let mut d = Map::new();
        // An empty name is left out, as kube-apiserver's StatusDetails does.
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        d.insert("causes".into(), Value::Array(causes));
        ApiError {
            code: 422,
            reason: "Invalid".into(),
            message,
            details: Some(Box::new(d)),
        }
    }

    /// 422 for custom-resource validation errors, worded by `fieldwise_api::schema`.
    pub fn invalid_fields(
        kind: &str,
        group: &str,
        name: &str,
        errors: &[fieldwise_api::schema::FieldError],
    ) -> Self {
        let causes: Vec<Cause> = errors
            .iter()
            .map(|e| Cause::new(e.error_type.reason(), e.field_display(), e.body()))
            .collect();
        let mut err = Self::invalid(kind, group, name, causes);
        err.message = fieldwise_api::schema::invalid_message(kind, group, name, errors);
        err
    }

    /// An error whose `Status` body was built elsewhere (e.g. the apply conflict of the ssa module).
    pub fn from_status(status: &Value) -> Self {
        ApiError {
            code: status
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500),
            reason: status
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            message: status
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            details: status
                .get("details")
                .and_then(Value::as_object)
                .cloned()
                .map(Box::new),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 500 without a reason (the typed-conversion failure of an apply).
    pub fn internal_no_reason(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// A 500 InternalError with exactly this message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// kube-apiserver's `NewInternalError`: the message prefixed, the bare error as the one cause.
    pub fn internal_error(error: impl Into<String>) -> Self {
        let error = error.into();
        let mut e = Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {error}"),
        );
        let mut details = Map::new();
        details.insert("causes".into(), json!([{ "message": error }]));
        e.details = Some(Box::new(details));
        e
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        let msg = format!("{} \"{}\" is forbidden: {}", rt.qualified(), name, why);
        let mut e = Self::new(403, "Forbidden", msg);
        e.details = Some(Box::new(name_details(rt, name)));
        e
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!("Status"));
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("metadata".into(), json!({}));
        m.insert("status".into(), json!("Failure"));
        m.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            m.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            m.insert("details".into(), Value::Object((**d).clone()));
        }
        m.insert("code".into(), json!(self.code));
        Value::Object(m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = super::http::json_response(code, &self.body());
        // kube-apiserver sends the Status's retryAfterSeconds as a Retry-After header too.
        if let Some(secs) = self
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
        {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
