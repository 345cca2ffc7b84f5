//! A reconcile whose apply fails: the failed object's span and the reconcile span carry the error status,
//! and the FeatureStore's status charges the failure to the part the object belongs to.
//! (Its own test binary: the telemetry subscriber is process-global.)

// The scenarios' cluster harness; this test uses part of it.
#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../e2e/scenarios/harness.rs"]
mod harness;

use std::time::Duration;

use fieldwise_observability::{
    LogFormat, TelemetryConfig, dispatch_with_writer,
    testing::{CollectedSpan, Collector, LogCapture},
};

use harness::{Cluster, block_on};

/// Rejects every apply of CronJobs, as an admission webhook might.
struct RejectCronJobs;

impl fieldwise_e2e::emulator::RequestHook for RejectCronJobs {
    fn before(
        &self,
        request: &fieldwise_e2e::emulator::RequestInfo,
    ) -> Option<fieldwise_e2e::emulator::ApiError> {
        (request.verb == "patch" && request.resource == "cronjobs").then(|| {
            fieldwise_e2e::emulator::ApiError::new(
                422,
                "Invalid",
                "admission webhook \"policy\" denied the request",
            )
        })
    }
}

#[test]
fn a_failing_apply_sets_the_error_status_on_its_span() {
    block_on(async {
        let collector = Collector::start_http().await.expect("collector");
        let config = TelemetryConfig {
            log_format: LogFormat::Text,
            ..TelemetryConfig::default()
        };
        let (dispatch, guard) =
            dispatch_with_writer(&config, collector.env_lookup(), LogCapture::default())
                .expect("telemetry");
        tracing::dispatcher::set_global_default(dispatch)
            .expect("the only subscriber of this test binary");
        let cluster = Cluster::start().await;
        cluster
            .emulator()
            .add_hook(std::sync::Arc::new(RejectCronJobs));
        cluster.apply_yaml("apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: failing\nspec:\n  feastProject: p\n", "default").await;
        // The failed apply's span ends before its reconcile span does, so they can arrive in different
        // export batches: wait until the parent has arrived too.
        let failed = |spans: &[CollectedSpan]| {
            spans.iter().any(|s| {
                s.name == "apply"
                    && s.attribute("k8s.object.kind") == Some("CronJob")
                    && s.status == fieldwise_observability::testing::SpanStatus::Error
                    && spans.iter().any(|root| s.is_child_of(root))
            })
        };
        let mut spans = Vec::new();
        for _ in 0..100 {
            guard.flush().await.expect("flushed");
            if let Ok(received) = collector
                .wait_until(Duration::from_millis(300), failed)
                .await
            {
                spans = received;
                break;
            }
        }
        let span = spans
            .iter()
            .find(|s| s.name == "apply" && s.attribute("k8s.object.kind") == Some("CronJob"))
            .expect("the failed apply's span");
        assert!(
            span.status_message.contains("denied the request"),
            "{}",
            span.status_message
        );
        let root = spans
            .iter()
            .find(|root| span.is_child_of(root))
            .expect("its reconcile span");
        assert_eq!(root.name, "reconcile");
        assert_eq!(
            root.status,
            fieldwise_observability::testing::SpanStatus::Error,
            "the reconcile failed too"
        );
        // The failure is charged to the part its object belongs to (the CronJob's component), and
        // only to it.
        let cron_job_failed = |fs: Option<&fieldwise_api::v1::FeatureStore>| {
            let conditions = fs
                .and_then(|fs| fs.status.as_ref())
                .and_then(|s| s.conditions.as_ref());
            let reason_of = |type_: &str| {
                conditions
                    .and_then(|c| c.iter().find(|c| c.type_ == type_))
                    .map(|c| (&c.status, c.reason.as_str(), c.message.as_str()))
            };
            use fieldwise_api::v1::ConditionStatus::{False, True};
            matches!(reason_of("CronJob"), Some((False, "CronJobDeploymentFailed", m)) if m.contains("denied the request"))
                && matches!(reason_of("OnlineStore"), Some((True, ..)))
        };
        harness::wait_for(
            &cluster.feature_stores("default"),
            "failing",
            cron_job_failed,
            "CronJob condition False, OnlineStore True",
        )
        .await;
    });
}
