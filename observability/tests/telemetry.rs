//! Subscriber set-up without a collector.

use fieldwise_observability::testing::LogCapture;
use fieldwise_observability::{self as obs, Error, LogFormat, TelemetryConfig};

fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test]
async fn without_an_endpoint_no_otel_layer_is_installed() {
    let logs = LogCapture::default();
    let (dispatch, guard) =
        obs::dispatch_with_writer(&TelemetryConfig::default(), no_env, logs.clone()).unwrap();
    assert!(!guard.is_exporting());
    assert_eq!(
        guard.export_description(),
        "traces not exported (OTEL_EXPORTER_OTLP_ENDPOINT unset)"
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = obs::reconcile_span("FeatureStore", "ns", "a", Some(1));
        let _entered = span.enter();
        // No OpenTelemetry layer: no OTel context, so no trace id anywhere.
        assert_eq!(obs::current_trace_id(), None);
        assert_eq!(obs::record_trace_id(&span), None);
        tracing::info!("still logged");
    });
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l.contains("still logged"))
        .unwrap();
    assert!(line.contains("reconcile{"), "{line}");
    assert!(!line.contains("trace_id"), "{line}");
    guard.shutdown().await.unwrap();
}

#[tokio::test]
async fn sdk_disabled_installs_no_layer_even_with_an_endpoint() {
    let env = |name: &str| match name {
        "OTEL_SDK_DISABLED" => Some("true".to_string()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4317".to_string()),
        _ => None,
    };
    let (dispatch, guard) =
        obs::dispatch_with_writer(&TelemetryConfig::default(), env, LogCapture::default()).unwrap();
    assert!(!guard.is_exporting());
    tracing::dispatcher::with_default(&dispatch, || {
        let span = obs::reconcile_span("FeatureStore", "ns", "a", None);
        assert_eq!(obs::trace_id(&span), None);
    });
}

#[tokio::test]
async fn with_an_endpoint_spans_get_a_trace_id() {
    let env = |name: &str| {
        (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:9".to_string())
    };
    let (dispatch, guard) =
        obs::dispatch_with_writer(&TelemetryConfig::default(), env, LogCapture::default()).unwrap();
    assert!(guard.is_exporting());
    assert!(
        guard
            .export_description()
            .contains("OTLP gRPC to http://127.0.0.1:9")
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = obs::reconcile_span("FeatureStore", "ns", "a", None);
        let id = obs::trace_id(&span).expect("trace id");
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let _entered = span.enter();
        assert_eq!(obs::current_trace_id(), Some(id));
    });
    drop(dispatch);
    // Nothing listens on port 9: shutdown reports or swallows the failure, it does not hang.
    let _ = guard.shutdown().await;
}

#[tokio::test]
async fn https_grpc_endpoints_get_tls() {
    let env = |name: &str| {
        (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "https://127.0.0.1:9".to_string())
    };
    let (_dispatch, guard) =
        obs::dispatch_with_writer(&TelemetryConfig::default(), env, LogCapture::default())
            .expect("TLS is built in for gRPC");
    assert!(guard.is_exporting());
    assert!(
        guard
            .export_description()
            .contains("OTLP gRPC to https://127.0.0.1:9")
    );
    let _ = guard.shutdown().await;
}

#[test]
fn grpc_export_outside_a_runtime_is_a_clear_error() {
    let env = |name: &str| {
        (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4317".to_string())
    };
    let result = obs::dispatch_with_writer(&TelemetryConfig::default(), env, LogCapture::default());
    assert!(
        matches!(result, Err(Error::NoRuntime)),
        "{:?}",
        result.err()
    );
}

#[test]
fn bad_filters_and_variables_are_errors() {
    let config = TelemetryConfig {
        log_format: LogFormat::Json,
        log_filter: Some("info,[".to_string()),
        trace_filter: None,
    };
    let result = obs::dispatch_with_writer(&config, no_env, LogCapture::default());
    assert!(
        matches!(result, Err(Error::InvalidFilter { .. })),
        "{:?}",
        result.err()
    );

    let env = |name: &str| {
        (name == "OTEL_EXPORTER_OTLP_PROTOCOL" || name == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .then(|| "http/json".to_string())
    };
    let result = obs::dispatch_with_writer(&TelemetryConfig::default(), env, LogCapture::default());
    assert!(
        matches!(result, Err(Error::InvalidEnv { .. })),
        "{:?}",
        result.err()
    );
}

#[test]
fn text_logs_honour_the_filter() {
    let logs = LogCapture::default();
    let config = TelemetryConfig {
        log_format: LogFormat::Text,
        log_filter: Some("warn,fieldwise=debug".to_string()),
        trace_filter: None,
    };
    let (dispatch, _guard) = obs::dispatch_with_writer(&config, no_env, logs.clone()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(target: "other", "hidden info");
        tracing::warn!(target: "other", "shown warning");
        tracing::debug!(target: "fieldwise::controller", "shown debug");
    });
    let text = logs.contents();
    assert!(!text.contains("hidden info"), "{text}");
    assert!(text.contains("shown warning"), "{text}");
    assert!(text.contains("shown debug"), "{text}");
}

#[test]
fn log_format_parses_from_the_command_line() {
    assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
    assert_eq!(" Text ".parse::<LogFormat>(), Ok(LogFormat::Text));
    assert!("yaml".parse::<LogFormat>().unwrap_err().contains("yaml"));
    assert_eq!(LogFormat::Json.to_string(), "json");
}
