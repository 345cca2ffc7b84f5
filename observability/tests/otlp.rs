//! Spans go from tracing through our pipeline to an in-process OTLP collector (gRPC and HTTP).

use std::collections::BTreeMap;
use std::time::Duration;

use fieldwise_observability::testing::{CollectedSpan, Collector, LogCapture, SpanStatus};
use fieldwise_observability::{
    self as obs, LogFormat, ObjectOperation, TelemetryConfig, TelemetryGuard,
};
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(20);

/// Builds a dispatch exporting to `collector` with `extra` variables on top of its own.
fn pipeline(
    collector: &Collector,
    extra: &[(&str, &str)],
    format: LogFormat,
) -> (tracing::Dispatch, TelemetryGuard, LogCapture) {
    let mut env = collector.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let logs = LogCapture::default();
    let config = TelemetryConfig {
        log_format: format,
        ..TelemetryConfig::default()
    };
    let (dispatch, guard) =
        obs::dispatch_with_writer(&config, move |name| env.get(name).cloned(), logs.clone())
            .expect("pipeline builds");
    (dispatch, guard, logs)
}

/// A reconcile with one good apply, one failing apply and a status write.
async fn reconcile() -> Option<String> {
    let span = obs::reconcile_span("FeatureStore", "ml", "sample", Some(7));
    let trace_id = obs::trace_id(&span);
    async {
        tracing::info!("reconciling");
        let ok = obs::object_span(ObjectOperation::Apply, "Deployment", "ml", "sample");
        async { obs::record_result(&tracing::Span::current(), "applied") }
            .instrument(ok)
            .await;
        let bad = obs::object_span(ObjectOperation::Apply, "Service", "ml", "sample");
        async { obs::record_error(&tracing::Span::current(), "409 Conflict: field manager x") }
            .instrument(bad)
            .await;
        let status = obs::object_span(ObjectOperation::Status, "FeatureStore", "ml", "sample");
        async {}.instrument(status).await;
        obs::record_error(&tracing::Span::current(), "1 of 2 objects failed");
    }
    .instrument(span)
    .await;
    trace_id
}

fn by_name<'a>(spans: &'a [CollectedSpan], name: &str) -> Vec<&'a CollectedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

async fn check_reconcile_trace(collector: Collector) {
    let (dispatch, guard, _logs) = pipeline(&collector, &[], LogFormat::Text);
    let trace_id = {
        let _default = tracing::dispatcher::set_default(&dispatch);
        reconcile().await
    };
    let trace_id = trace_id.expect("sampled trace id");
    guard.flush().await.expect("flush");
    let spans = collector.wait_for_spans(4, WAIT).await.expect("4 spans");
    assert_eq!(spans.len(), 4, "{spans:#?}");

    let roots = by_name(&spans, "reconcile");
    assert_eq!(roots.len(), 1);
    let root = roots[0];
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.trace_id, trace_id);
    assert_eq!(root.attribute("k8s.namespace.name"), Some("ml"));
    assert_eq!(root.attribute("k8s.object.kind"), Some("FeatureStore"));
    assert_eq!(root.attribute("k8s.object.name"), Some("sample"));
    assert_eq!(root.attribute("k8s.object.generation"), Some("7"));
    assert_eq!(root.attribute("result"), Some("error"));
    assert_eq!(root.status, SpanStatus::Error);
    assert_eq!(root.status_message, "1 of 2 objects failed");
    assert_eq!(
        root.resource.get("service.name").map(String::as_str),
        Some("fieldwise")
    );

    let applies = by_name(&spans, "apply");
    assert_eq!(applies.len(), 2);
    let deployment = applies
        .iter()
        .find(|s| s.attribute("k8s.object.kind") == Some("Deployment"))
        .expect("deployment apply");
    assert!(deployment.is_child_of(root));
    assert_eq!(deployment.attribute("result"), Some("applied"));
    assert_eq!(deployment.status, SpanStatus::Unset);
    let service = applies
        .iter()
        .find(|s| s.attribute("k8s.object.kind") == Some("Service"))
        .expect("service apply");
    assert!(service.is_child_of(root));
    assert_eq!(service.status, SpanStatus::Error);
    assert_eq!(service.status_message, "409 Conflict: field manager x");
    assert_eq!(service.attribute("result"), Some("error"));

    let status = by_name(&spans, "status");
    assert_eq!(status.len(), 1);
    assert!(status[0].is_child_of(root));
    assert_eq!(status[0].attribute("k8s.object.kind"), Some("FeatureStore"));
    guard.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn grpc_collector_receives_the_reconcile_trace() {
    check_reconcile_trace(Collector::start_grpc().await.unwrap()).await;
}

#[tokio::test]
async fn http_protobuf_collector_receives_the_reconcile_trace() {
    check_reconcile_trace(Collector::start_http().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_works_on_a_multi_thread_runtime_and_shutdown_flushes() {
    let collector = Collector::start_grpc().await.unwrap();
    let (dispatch, guard, _logs) = pipeline(&collector, &[], LogFormat::Text);
    tracing::dispatcher::with_default(&dispatch, || {
        let _root = obs::reconcile_span("FeatureStore", "ns", "a", None).entered();
    });
    // No flush: shutdown alone must deliver the span.
    guard.shutdown().await.expect("shutdown");
    let spans = collector
        .wait_until(WAIT, |spans| spans.iter().any(|s| s.name == "reconcile"))
        .await
        .expect("reconcile span");
    assert_eq!(spans[0].name, "reconcile");
    assert_eq!(spans[0].attribute("k8s.object.generation"), None);
}

async fn check_headers_and_resource(collector: Collector) {
    let (dispatch, guard, _logs) = pipeline(
        &collector,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=s3cr%3Dt,x-tenant=ml",
            ),
            ("OTEL_SERVICE_NAME", "fieldwise-test"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
        ],
        LogFormat::Text,
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let _root = obs::reconcile_span("FeatureStore", "ns", "a", Some(1)).entered();
    });
    guard.flush().await.expect("flush");
    let spans = collector.wait_for_spans(1, WAIT).await.expect("span");
    let resource = &spans[0].resource;
    assert_eq!(
        resource.get("service.name").map(String::as_str),
        Some("fieldwise-test")
    );
    assert_eq!(
        resource
            .get("deployment.environment.name")
            .map(String::as_str),
        Some("ci")
    );
    let headers: Vec<BTreeMap<String, String>> = collector.request_headers();
    assert!(!headers.is_empty());
    for request in headers {
        assert_eq!(request.get("x-api-key").map(String::as_str), Some("s3cr=t"));
        assert_eq!(request.get("x-tenant").map(String::as_str), Some("ml"));
    }
}

#[tokio::test]
async fn grpc_sends_headers_and_resource_attributes() {
    check_headers_and_resource(Collector::start_grpc().await.unwrap()).await;
}

#[tokio::test]
async fn http_sends_headers_and_resource_attributes() {
    check_headers_and_resource(Collector::start_http().await.unwrap()).await;
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id_of_their_reconcile() {
    let collector = Collector::start_grpc().await.unwrap();
    let (dispatch, guard, logs) = pipeline(&collector, &[], LogFormat::Json);
    let trace_id = {
        let _default = tracing::dispatcher::set_default(&dispatch);
        reconcile().await.expect("trace id")
    };
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l.contains("reconciling"))
        .expect("log line");
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "{line}"
    );
    assert!(line.contains("\"k8s.object.name\":\"sample\""), "{line}");
    guard.flush().await.expect("flush");
    let spans = collector.wait_for_spans(4, WAIT).await.expect("spans");
    assert!(spans.iter().all(|s| s.trace_id == trace_id));
}

#[tokio::test]
async fn always_off_sampler_exports_nothing_and_has_no_trace_id() {
    let collector = Collector::start_grpc().await.unwrap();
    let (dispatch, guard, _logs) = pipeline(
        &collector,
        &[("OTEL_TRACES_SAMPLER", "always_off")],
        LogFormat::Text,
    );
    let trace_id = {
        let _default = tracing::dispatcher::set_default(&dispatch);
        reconcile().await
    };
    assert_eq!(trace_id, None);
    guard.shutdown().await.expect("shutdown");
    assert!(collector.spans().is_empty());
}

#[tokio::test]
async fn kube_client_debug_spans_reach_traces_but_not_logs() {
    let collector = Collector::start_grpc().await.unwrap();
    let (dispatch, guard, logs) = pipeline(&collector, &[], LogFormat::Text);
    tracing::dispatcher::with_default(&dispatch, || {
        // Outside any reconcile: a reflector's watch request and kube-runtime's wrapper span
        // must not become traces of their own.
        drop(
            tracing::debug_span!(target: "kube_client::client", "HTTP", otel.kind = "client")
                .entered(),
        );
        drop(
            tracing::info_span!(target: "kube_runtime::controller", "reconciling object").entered(),
        );
        let _root = obs::reconcile_span("FeatureStore", "ns", "a", Some(1)).entered();
        let _apply = obs::object_span(ObjectOperation::Apply, "Deployment", "ns", "a").entered();
        let _http =
            tracing::debug_span!(target: "kube_client::client", "HTTP", otel.kind = "client")
                .entered();
        tracing::debug!(target: "kube_client::client", "sending request");
        let _noise = tracing::debug_span!(target: "hyper_util", "noise").entered();
    });
    guard.flush().await.expect("flush");
    let spans = collector.wait_for_spans(3, WAIT).await.expect("spans");
    let http = by_name(&spans, "HTTP");
    let apply = by_name(&spans, "apply");
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_eq!(http.len(), 1, "{spans:#?}");
    assert!(http[0].is_child_of(apply[0]));
    assert!(by_name(&spans, "noise").is_empty());
    assert!(by_name(&spans, "reconciling object").is_empty());
    assert!(!logs.contents().contains("sending request"));
}

#[tokio::test]
async fn a_collector_that_is_down_never_blocks_span_creation() {
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = format!("http://{addr}");
    for protocol in ["grpc", "http/protobuf"] {
        let env: BTreeMap<String, String> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (dispatch, guard) = obs::dispatch_with_writer(
            &TelemetryConfig::default(),
            move |name| env.get(name).cloned(),
            LogCapture::default(),
        )
        .unwrap();
        // More spans than the batch queue holds: the excess is dropped, nothing waits.
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..3000 {
                let _root = obs::reconcile_span("FeatureStore", "ns", "a", Some(i)).entered();
            }
        });
        // Shutdown is bounded and reports the failure instead of hanging or panicking.
        let _ = tokio::time::timeout(Duration::from_secs(60), guard.shutdown())
            .await
            .expect("shutdown returns");
    }
}

async fn check_drop_flushes(collector: &Collector) {
    let (dispatch, guard, _logs) = pipeline(collector, &[], LogFormat::Text);
    tracing::dispatcher::with_default(&dispatch, || {
        let _root = obs::reconcile_span("FeatureStore", "ns", "dropped", None).entered();
    });
    // Forgetting `shutdown().await` still delivers the span.
    drop(guard);
    let spans = collector.wait_for_spans(1, WAIT).await.expect("span");
    assert_eq!(spans[0].attribute("k8s.object.name"), Some("dropped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_guard_flushes_on_a_multi_thread_runtime() {
    check_drop_flushes(&Collector::start_grpc().await.unwrap()).await;
}

#[tokio::test]
async fn dropping_the_guard_flushes_in_the_background_on_a_current_thread_runtime() {
    check_drop_flushes(&Collector::start_grpc().await.unwrap()).await;
}
