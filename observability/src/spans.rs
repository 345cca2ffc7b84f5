//! Span conventions for reconciles, and trace-id helpers.
//!
//! The constructors declare every field up front (tracing can only record declared fields), so
//! log lines and exported spans carry the same attributes however the controller fills them in.

use opentelemetry::trace::{Status, TraceContextExt};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Target of the spans built here, so `fieldwise=debug` style filters select them.
pub const SPAN_TARGET: &str = "fieldwise";
/// Name of the field carrying the hex trace id in log lines.
pub const TRACE_ID_FIELD: &str = "trace_id";
/// Name of the field carrying a reconcile's or an object operation's result.
pub const RESULT_FIELD: &str = "result";

/// What happened to one child object within a reconcile; each gets its own span name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOperation {
    /// Server-side apply of a desired object (span `apply`).
    Apply,
    /// Desired object already up to date, no write (span `skip`).
    Skip,
    /// Deleting an object that is no longer desired (span `prune`).
    Prune,
    /// Releasing `spec.replicas` to an autoscaler (span `handover`).
    Handover,
    /// Writing the resource's status (span `status`).
    Status,
}

/// Opens the root span of one reconcile and records its trace id.
///
/// Create it with no span entered (otherwise every reconcile joins one trace), then
/// `.instrument(span)` the reconcile future. Record the outcome with [`record_result`] and errors
/// with [`record_error`].
pub fn reconcile_span(kind: &str, namespace: &str, name: &str, generation: Option<i64>) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        parent: None,
        "reconcile",
        "k8s.namespace.name" = namespace,
        "k8s.object.kind" = kind,
        "k8s.object.name" = name,
        "k8s.object.generation" = generation,
        result = Empty,
        trace_id = Empty,
        "otel.status_code" = Empty,
        "otel.status_description" = Empty,
    );
    record_trace_id(&span);
    span
}

/// Opens a child span (of the current span) for one object operation.
pub fn object_span(operation: ObjectOperation, kind: &str, namespace: &str, name: &str) -> Span {
    macro_rules! object_span {
        ($name:literal) => {
            tracing::info_span!(
                target: SPAN_TARGET,
                $name,
                "k8s.object.kind" = kind,
                "k8s.namespace.name" = namespace,
                "k8s.object.name" = name,
                result = Empty,
                "otel.status_code" = Empty,
                "otel.status_description" = Empty,
            )
        };
    }
    match operation {
        ObjectOperation::Apply => object_span!("apply"),
        ObjectOperation::Skip => object_span!("skip"),
        ObjectOperation::Prune => object_span!("prune"),
        ObjectOperation::Handover => object_span!("handover"),
        ObjectOperation::Status => object_span!("status"),
    }
}

/// The sampled trace id of the current span as 32 lowercase hex digits; `None` when no
/// OpenTelemetry layer is installed, the span is filtered out, or the trace is not sampled.
pub fn current_trace_id() -> Option<String> {
    trace_id(&Span::current())
}

/// The sampled trace id of `span` (see [`current_trace_id`]).
pub fn trace_id(span: &Span) -> Option<String> {
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    (span_context.is_valid() && span_context.is_sampled())
        .then(|| span_context.trace_id().to_string())
}

/// Records the span's trace id into its `trace_id` field (declared by [`reconcile_span`]) so every
/// log line inside it carries the id. Returns the id, e.g. for the duration exemplar.
pub fn record_trace_id(span: &Span) -> Option<String> {
    let id = trace_id(span)?;
    span.record(TRACE_ID_FIELD, id.as_str());
    Some(id)
}

/// Records a bounded result value (`success`, `error`, `requeue`, `applied`, ...) on the span.
pub fn record_result(span: &Span, result: &str) {
    span.record(RESULT_FIELD, result);
}

/// Marks the span failed: OTel status `Error` with `message` as its description, and
/// `result=error`. The message must not contain secret values.
pub fn record_error(span: &Span, message: &str) {
    span.record(RESULT_FIELD, "error");
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
    span.set_status(Status::error(message.to_string()));
}
