//! The tracing subscriber: logs (JSON or text) plus, when an OTLP endpoint is configured, an
//! OpenTelemetry layer feeding a batch span processor.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Dispatch;
use tracing::Metadata;
use tracing_subscriber::filter::{FilterExt, dynamic_filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::Error;
use crate::config::{OtlpExport, OtlpProtocol, SamplerConfig, TraceExport, trace_export_from_env};
use crate::spans::SPAN_TARGET;

/// Log filter used when [`TelemetryConfig::log_filter`] is `None`.
pub const DEFAULT_LOG_FILTER: &str = "info";
/// Span filter of the OpenTelemetry layer when [`TelemetryConfig::trace_filter`] is `None`: our
/// spans at info plus kube-client's `HTTP` spans (debug) as children of the object spans. It is
/// separate from the log filter, so API calls show up in traces without flooding the logs.
/// Whatever the filter, only spans of target `fieldwise*` start a trace; other spans are exported
/// only beneath one of those.
pub const DEFAULT_TRACE_FILTER: &str = "info,kube_client=debug";
/// The instrumentation scope name of our tracer.
const TRACER_NAME: &str = "fieldwise";
/// Upper bound for flushing spans at shutdown; a collector that is down must not hold up exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How log lines are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, with the current span's fields (including `trace_id`).
    Json,
    /// Human-readable lines.
    #[default]
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    /// Parses `--log-format` values: `json` or `text`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!(
                "unknown log format {other:?}; use \"json\" or \"text\""
            )),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        })
    }
}

/// Settings the operator's command line controls. OTLP export is configured only by the standard
/// `OTEL_*` environment variables (see [`crate::trace_export_from_env`]).
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style directives for log lines; [`DEFAULT_LOG_FILTER`] when `None`.
    pub log_filter: Option<String>,
    /// `RUST_LOG`-style directives for exported spans; [`DEFAULT_TRACE_FILTER`] when `None`.
    pub trace_filter: Option<String>,
}

/// Keeps the span pipeline alive; flush it with [`TelemetryGuard::shutdown`] before exit.
///
/// Dropping it also flushes, but cannot wait on a current-thread runtime; prefer `shutdown`.
#[must_use = "dropping the guard shuts the span exporter down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    export: TraceExport,
}

impl TelemetryGuard {
    /// Where traces go, e.g. `traces exported by OTLP gRPC to http://jaeger:4317 (...)` or
    /// `traces not exported (OTEL_EXPORTER_OTLP_ENDPOINT unset)`. Never contains header values.
    pub fn export_description(&self) -> String {
        self.export.describe()
    }

    /// The export decision read from the environment.
    pub fn export(&self) -> &TraceExport {
        &self.export
    }

    /// Whether an OpenTelemetry layer (and exporter) is installed.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports all finished spans now. Runs the blocking flush on the blocking pool.
    pub async fn flush(&self) -> Result<(), Error> {
        let Some(provider) = self.provider.clone() else {
            return Ok(());
        };
        run_blocking(move || provider.force_flush()).await
    }

    /// Flushes and stops the exporter (bounded by a 5 s timeout). Call it once at exit.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        run_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)).await
    }
}

/// `force_flush`/`shutdown` block their caller (and the gRPC exporter needs the runtime to make
/// progress), so they run on tokio's blocking pool, never on a runtime worker.
async fn run_blocking(
    work: impl FnOnce() -> opentelemetry_sdk::error::OTelSdkResult + Send + 'static,
) -> Result<(), Error> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Error::Flush(err.to_string())),
        Err(join) => Err(Error::Flush(join.to_string())),
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let shutdown = move || {
            let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        };
        match tokio::runtime::Handle::try_current() {
            // Other workers keep driving the gRPC connection while this one waits.
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(shutdown)
            }
            // Waiting here could starve the exporter of the only runtime thread: flush in the
            // background, best effort.
            Ok(_) => drop(std::thread::spawn(shutdown)),
            Err(_) => shutdown(),
        }
    }
}

/// Installs the subscriber globally, configured by `config` and the process's `OTEL_*` variables.
///
/// Call it from inside a Tokio runtime (the gRPC exporter connects on it).
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, Error> {
    init_with_env(config, |name| std::env::var(name).ok())
}

/// [`init`] with the environment supplied by `env`.
pub fn init_with_env(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<TelemetryGuard, Error> {
    let ansi = std::io::stdout().is_terminal();
    let (dispatch, guard) = build(config, env, std::io::stdout, ansi)?;
    tracing::dispatcher::set_global_default(dispatch).map_err(|_| Error::AlreadyInstalled)?;
    tracing::info!(traces = %guard.export_description(), "telemetry initialised");
    Ok(guard)
}

/// Builds the subscriber without installing it, writing log lines to `writer` (without colours).
/// Tests use it with `tracing::dispatcher::set_default` so they can run in parallel.
pub fn dispatch_with_writer<W>(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
    writer: W,
) -> Result<(Dispatch, TelemetryGuard), Error>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, env, writer, false)
}

fn build<W>(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
    writer: W,
    ansi: bool,
) -> Result<(Dispatch, TelemetryGuard), Error>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let export = trace_export_from_env(env)?;
    let log_filter = parse_filter(config.log_filter.as_deref(), DEFAULT_LOG_FILTER)?;
    let mut layers = vec![fmt_layer(config.log_format, writer, log_filter, ansi)];
    let provider = match &export {
        TraceExport::Otlp(otlp) => {
            let trace_filter = parse_filter(config.trace_filter.as_deref(), DEFAULT_TRACE_FILTER)?;
            let provider = tracer_provider(otlp)?;
            layers.push(otel_layer(&provider, trace_filter));
            Some(provider)
        }
        TraceExport::Disabled(_) => None,
    };
    let subscriber = Registry::default().with(layers);
    Ok((
        Dispatch::new(subscriber),
        TelemetryGuard { provider, export },
    ))
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn parse_filter(directives: Option<&str>, default: &str) -> Result<EnvFilter, Error> {
    let directives = directives.unwrap_or(default);
    EnvFilter::builder()
        .parse(directives)
        .map_err(|err| Error::InvalidFilter {
            filter: directives.to_string(),
            reason: err.to_string(),
        })
}

fn fmt_layer<W>(format: LogFormat, writer: W, filter: EnvFilter, ansi: bool) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => base
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => base.with_filter(filter).boxed(),
    }
}

fn otel_layer(provider: &SdkTracerProvider, filter: EnvFilter) -> BoxedLayer {
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_filter(filter.and(dynamic_filter_fn(starts_in_our_trace)))
        .boxed()
}

/// Keeps traces to our own trees: a span is exported only if it is one of ours (target
/// `fieldwise*`) or sits under an exported span. Without this, every watch or list request of
/// the reflectors (kube-client `HTTP` spans outside any reconcile) and kube-runtime's empty
/// `reconciling object` span would each become a trace of its own.
fn starts_in_our_trace(metadata: &Metadata<'_>, cx: &Context<'_, Registry>) -> bool {
    !metadata.is_span()
        || metadata.target().starts_with(SPAN_TARGET)
        || cx.lookup_current().is_some()
}

fn tracer_provider(otlp: &OtlpExport) -> Result<SdkTracerProvider, Error> {
    let exporter = span_exporter(otlp)?;
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(otlp.service_name.clone())
        .with_attributes(
            otlp.resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build();
    // The default batch processor keeps a bounded queue (2048 spans, OTEL_BSP_MAX_QUEUE_SIZE)
    // and exports from its own thread: a slow or absent collector drops spans instead of
    // blocking reconciles.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(otlp.sampler))
        .with_resource(resource)
        .build())
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(ratio) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

fn span_exporter(otlp: &OtlpExport) -> Result<SpanExporter, Error> {
    let headers = header_map(&otlp.headers)?;
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => {
            // tonic connects lazily on the ambient runtime; without one it would panic.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(Error::NoRuntime);
            }
            let builder = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(otlp.endpoint.clone())
                .with_metadata(MetadataMap::from_headers(headers));
            if otlp.endpoint.starts_with("https://") {
                builder
                    .with_tls_config(ClientTlsConfig::new().with_native_roots())
                    .build()
            } else {
                builder.build()
            }
        }
        // The blocking reqwest client is the only HTTP client that works on the batch
        // processor's own thread (the async ones need a reactor there).
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(otlp.endpoint.clone())
            .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>())
            .build(),
    };
    exporter.map_err(|err| Error::Exporter(err.to_string()))
}

/// Validates header names and values up front; the exporters would silently skip bad ones.
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = |what: &str| Error::InvalidEnv {
            variable: "OTEL_EXPORTER_OTLP_HEADERS",
            reason: format!("header {name:?} has an invalid {what}"),
        };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("name"))?;
        let header_value = HeaderValue::from_str(value).map_err(|_| invalid("value"))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}
