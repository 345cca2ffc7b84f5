//! A real reconcile against the emulator, observed: one OTLP trace with a root `reconcile` span and a
//! child per object, metrics with the expected series, and no Secret value in any span, log line, event
//! or status.

// The scenarios' cluster harness; this test uses part of it.
#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../e2e/scenarios/harness.rs"]
mod harness;

use std::time::Duration;

use fieldwise_observability::{
    LogFormat, TelemetryConfig, dispatch_with_writer,
    testing::{CollectedSpan, Collector, LogCapture},
};
use k8s_openapi::api::events::v1::Event;
use kube::Api;

use harness::{Cluster, block_on};

const SECRET_VALUE: &str = "pw-7f3c9e1d-never-log-me";

fn manifests() -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: feast-data-stores
stringData:
  postgres: |
    host: db
    user: feast
    password: {SECRET_VALUE}
  sql: |
    path: postgresql+psycopg://feast:{SECRET_VALUE}@db:5432/feast
---
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: traced
spec:
  feastProject: traced
  services:
    onlineStore:
      persistence:
        store:
          type: postgres
          secretRef:
            name: feast-data-stores
    registry:
      local:
        persistence:
          store:
            type: sql
            secretRef:
              name: feast-data-stores
"#
    )
}

#[test]
fn a_reconcile_is_one_trace_with_a_span_per_object_and_leaks_no_secret() {
    block_on(async {
        let collector = Collector::start_grpc().await.expect("collector");
        let logs = LogCapture::default();
        let config = TelemetryConfig {
            log_format: LogFormat::Json,
            log_filter: Some("debug".into()),
            ..TelemetryConfig::default()
        };
        let (dispatch, guard) =
            dispatch_with_writer(&config, collector.env_lookup(), logs.clone()).expect("telemetry");
        tracing::dispatcher::set_global_default(dispatch)
            .expect("the only subscriber of this test binary");

        let cluster = Cluster::start().await;
        cluster.apply_yaml(&manifests(), "default").await;
        let fs = cluster.wait_ready("default", "traced").await;
        guard.flush().await.expect("flushed");

        let is_root = |s: &CollectedSpan| {
            s.name == "reconcile" && s.attribute("k8s.object.name") == Some("traced")
        };
        let spans = collector
            .wait_until(Duration::from_secs(30), |spans| {
                spans.iter().filter(|s| is_root(s)).any(|root| {
                    spans
                        .iter()
                        .filter(|c| c.is_child_of(root) && c.name == "apply")
                        .count()
                        >= 10
                })
            })
            .await
            .unwrap_or_else(|spans| {
                panic!(
                    "no reconcile trace with its applies: {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            });
        let root = spans
            .iter()
            .filter(|s| is_root(s))
            .find(|root| {
                spans
                    .iter()
                    .any(|c| c.is_child_of(root) && c.name == "apply")
            })
            .expect("a root span");
        assert_eq!(
            root.parent_span_id, None,
            "the reconcile span is a trace root"
        );
        assert_eq!(root.attribute("k8s.namespace.name"), Some("default"));
        assert_eq!(root.attribute("k8s.object.kind"), Some("FeatureStore"));
        let children: Vec<&CollectedSpan> = spans.iter().filter(|c| c.is_child_of(root)).collect();
        let applied: Vec<String> = children
            .iter()
            .filter(|c| c.name == "apply")
            .map(|c| {
                format!(
                    "{}/{}",
                    c.attribute("k8s.object.kind").unwrap_or("?"),
                    c.attribute("k8s.object.name").unwrap_or("?")
                )
            })
            .collect();
        for expected in [
            "Deployment/feast-traced",
            "Secret/feast-traced-server-config",
            "Service/feast-traced-online",
            "CronJob/feast-traced",
        ] {
            assert!(
                applied.contains(&expected.to_owned()),
                "{expected} not among {applied:?}"
            );
        }
        assert!(
            children.iter().any(|c| c.name == "status"),
            "a span for the status write"
        );

        // No Secret value anywhere a person could read it.
        for span in &spans {
            let text = format!("{span:?}");
            assert!(
                !text.contains(SECRET_VALUE),
                "secret value in span {}",
                span.name
            );
        }
        assert!(
            !logs.contents().contains(SECRET_VALUE),
            "secret value in the logs"
        );
        assert!(
            logs.contents().contains(&root.trace_id),
            "the reconcile's trace id is in its log lines"
        );
        let status = serde_json::to_string(&fs.status).expect("JSON");
        assert!(!status.contains(SECRET_VALUE), "secret value in the status");
        let events: Api<Event> = Api::namespaced(cluster.client.clone(), "default");
        let events =
            serde_json::to_string(&events.list(&Default::default()).await.expect("events"))
                .expect("JSON");
        assert!(!events.contains(SECRET_VALUE), "secret value in an event");

        let metrics = cluster.metrics.encode().expect("metrics");
        for series in [
            "fieldwise_reconciles_total{controller=\"featurestore\",result=\"success\"}",
            "fieldwise_api_writes_total{controller=\"featurestore\",kind=\"Deployment\",outcome=\"applied\"} 1",
            "fieldwise_owned_objects{kind=\"Deployment\"} 1",
            "feast_operator_feature_store_info{namespace=\"default\",name=\"traced\",online_store_type=\"postgres\",offline_store_type=\"none\",registry_type=\"local\"} 1",
        ] {
            assert!(metrics.contains(series), "missing {series} in\n{metrics}");
        }
        assert!(
            metrics.contains("fieldwise_reconcile_duration_seconds_bucket"),
            "duration histogram"
        );
        assert!(
            metrics.contains("trace_id=\""),
            "an exemplar links the duration to a trace"
        );
    });
}
