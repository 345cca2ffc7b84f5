//! Observability for fieldwise: logs, one OTLP trace per reconcile, Prometheus metrics and the
//! `/metrics` (HTTPS, bearer tokens reviewed by a [`TokenReviewer`]), `/healthz`, `/readyz` endpoints.
//!
//! The crate knows nothing about the controllers; it offers conventions and plumbing.
//!
//! # Start-up
//!
//! ```no_run
//! # async fn run() -> Result<(), fieldwise_observability::Error> {
//! use std::sync::Arc;
//! use fieldwise_observability::{self as obs, LogFormat, TelemetryConfig};
//!
//! // Inside the Tokio runtime: the gRPC exporter connects on it.
//! let telemetry = obs::init(&TelemetryConfig {
//!     log_format: LogFormat::Json,
//!     log_filter: std::env::var("RUST_LOG").ok(),
//!     trace_filter: None,
//! })?;
//! tracing::info!(traces = %telemetry.export_description(), "starting");
//!
//! let metrics = Arc::new(obs::Metrics::new());
//! metrics.register_controller("featurestore");
//! let health = obs::Health::new();
//! let probes = obs::HttpServer::probes(([0, 0, 0, 0], 8081).into(), health.clone()).await?;
//! let http = tokio::spawn(probes.run(async { let _ = tokio::signal::ctrl_c().await; }));
//! // Development only: /metrics over plain HTTP without authentication.
//! let scrape = obs::HttpServer::metrics(([127, 0, 0, 1], 8443).into(), metrics.clone(), obs::MetricsAccess::Insecure).await?;
//! # drop(scrape);
//! // ... once the reflector stores are synced:
//! health.set_ready();
//! // ... on exit:
//! # drop(http);
//! telemetry.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Traces
//!
//! Export is configured only by the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` = `grpc` | `http/protobuf`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`; see
//! [`trace_export_from_env`]). Without an endpoint no OpenTelemetry layer is installed at all.
//! Spans leave through the SDK batch processor (bounded queue, own thread), so a collector that is
//! down never blocks or fails a reconcile; spans are dropped instead.
//!
//! Span conventions (all spans have target [`spans::SPAN_TARGET`] = `fieldwise`):
//!
//! | span | parent | fields |
//! |---|---|---|
//! | `reconcile` ([`reconcile_span`]) | none (a root per reconcile) | `k8s.namespace.name`, `k8s.object.kind`, `k8s.object.name`, `k8s.object.generation`, `result` (`success`/`error`/`requeue`), `trace_id` |
//! | `apply`, `skip`, `prune`, `handover`, `status` ([`object_span`]) | the reconcile span | `k8s.object.kind`, `k8s.namespace.name`, `k8s.object.name`, `result` (a [`WriteOutcome`] value) |
//! | `HTTP` (kube-client, debug level) | the object span | kube's own `http.*` fields |
//!
//! On failure call [`record_error`]: the span gets OTel status `Error` with the message as
//! description (`otel.status_code`/`otel.status_description`). Messages must not contain secret
//! values. Log filtering ([`TelemetryConfig::log_filter`]) and span filtering
//! ([`TelemetryConfig::trace_filter`], default `info,kube_client=debug`) are separate, so API
//! calls appear in traces without flooding the logs.
//!
//! A reconcile looks like this (create the root span with no span entered):
//!
//! ```no_run
//! use std::time::Instant;
//! use tracing::Instrument;
//! use fieldwise_observability::{self as obs, ObjectOperation, ReconcileResult, WriteOutcome};
//!
//! # async fn apply_deployment() -> Result<(), String> { Ok(()) }
//! # async fn reconcile(metrics: &obs::Metrics) {
//! let started = Instant::now();
//! let span = obs::reconcile_span("FeatureStore", "ml", "sample", Some(3));
//! let trace_id = obs::trace_id(&span);
//! let result = async {
//!     let child = obs::object_span(ObjectOperation::Apply, "Deployment", "ml", "sample");
//!     match apply_deployment().instrument(child.clone()).await {
//!         Ok(()) => { obs::record_result(&child, "applied"); metrics.count_write("featurestore", "Deployment", WriteOutcome::Applied); ReconcileResult::Success }
//!         Err(message) => { obs::record_error(&child, &message); metrics.count_write("featurestore", "Deployment", WriteOutcome::Failed); ReconcileResult::Error }
//!     }
//! }
//! .instrument(span.clone())
//! .await;
//! obs::record_result(&span, result.as_str());
//! metrics.observe_reconcile("featurestore", result, started.elapsed(), trace_id.as_deref());
//! # }
//! ```
//!
//! # Metrics
//!
//! See [`Metrics`]: `fieldwise_reconciles_total{controller,result}`,
//! `fieldwise_reconcile_duration_seconds{controller}` (exemplar `trace_id`),
//! `fieldwise_api_writes_total{controller,kind,outcome}`,
//! `fieldwise_drift_corrections_total{controller,kind}`,
//! `fieldwise_reconcile_errors_total{controller,category}`,
//! `fieldwise_work_queue_depth{controller}`, `fieldwise_owned_objects{kind}`, and the info gauges
//! controllers register ([`Metrics::register_info`]; the FeatureStore controller's is the
//! Feast-compatible `feast_operator_feature_store_info`).
//! Label values are enums or kinds/controller names, never error strings.
//!
//! # Tests in other crates
//!
//! With the `test-collector` feature, [`testing::Collector`] is an in-process OTLP collector
//! (gRPC or HTTP/protobuf) and [`testing::LogCapture`] captures log lines; use them with
//! [`dispatch_with_writer`] and `tracing::dispatcher::set_default` to check the trace of a real
//! reconcile without installing anything globally.

mod access;
mod config;
mod cpu;
mod metrics;
mod server;
pub mod spans;
mod telemetry;
#[cfg(feature = "test-collector")]
pub mod testing;
mod tls;

pub use access::{Access, CachePolicy, CachedReviewer, ReviewFuture, TokenReviewer};
pub use config::{
    DEFAULT_SERVICE_NAME, DisabledReason, OtlpExport, OtlpProtocol, SamplerConfig, TraceExport,
    trace_export_from_env,
};
pub use cpu::{CpuTimed, cpu_timed, thread_cpu_time};
pub use metrics::{InFlight, InfoLabels, Metrics, ReconcileResult, WriteOutcome};
pub use server::{
    Health, HttpServer, MetricsAccess, OPENMETRICS_CONTENT_TYPE, metrics_router, probe_router,
};
pub use spans::{
    ObjectOperation, current_trace_id, object_span, reconcile_span, record_error, record_result,
    record_trace_id, trace_id,
};
pub use telemetry::{
    DEFAULT_LOG_FILTER, DEFAULT_TRACE_FILTER, LogFormat, TelemetryConfig, TelemetryGuard,
    dispatch_with_writer, init, init_with_env,
};
pub use tls::{CERT_FILE, Certificate, KEY_FILE, RELOAD_CHECK};

/// Metric names, for dashboards and tests.
pub mod metric_names {
    pub use crate::metrics::{
        API_REQUEST_DURATION, API_REQUESTS_IN_FLIGHT, API_WRITE_WAITS, API_WRITES,
        DRIFT_CORRECTIONS, OWNED_OBJECTS, RECONCILE_CPU, RECONCILE_DURATION, RECONCILE_ERRORS,
        RECONCILES, WORK_QUEUE_DEPTH,
    };
}

/// Everything that can go wrong setting up or serving telemetry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A standard `OTEL_*` variable has a value we cannot use. Never contains header values.
    #[error("invalid {variable}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `RUST_LOG`-style filter does not parse.
    #[error("invalid filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The directives.
        filter: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The OTLP exporter rejected its configuration.
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(String),
    /// OTLP gRPC needs a Tokio runtime at start-up.
    #[error("OTLP gRPC export must be set up inside a Tokio runtime")]
    NoRuntime,
    /// [`init`] was called when a global subscriber already existed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    /// Flushing or shutting down the span exporter failed (e.g. the collector is down).
    #[error("flushing spans failed: {0}")]
    Flush(String),
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed while serving.
    #[error("metrics/health server failed: {0}")]
    Serve(std::io::Error),
    /// The metrics certificate could not be loaded or made.
    #[error("metrics TLS: {0}")]
    Tls(String),
    /// Encoding the metrics failed.
    #[error("cannot encode metrics")]
    EncodeMetrics,
}
