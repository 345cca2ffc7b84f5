//! A scrape shows the expected series, values and the trace-id exemplar.

use std::time::Duration;

use fieldwise_observability::{InfoLabels, Metrics, ReconcileResult, WriteOutcome};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn scrape(metrics: &Metrics) -> Vec<String> {
    let text = metrics.encode().expect("encodes");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines().map(str::to_string).collect()
}

fn has(lines: &[String], expected: &str) -> bool {
    lines.iter().any(|l| l == expected)
}

fn assert_line(lines: &[String], expected: &str) {
    assert!(
        has(lines, expected),
        "missing {expected:?} in\n{}",
        lines.join("\n")
    );
}

const INFO: &str = "feast_operator_feature_store_info";

fn store(online: &str) -> InfoLabels {
    [
        ("namespace", "ml"),
        ("name", "sample"),
        ("online_store_type", online),
        ("offline_store_type", "dask"),
        ("registry_type", "file"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn reconciles_and_duration_with_exemplar() {
    let metrics = Metrics::new();
    metrics.register_controller("featurestore");
    let lines = scrape(&metrics);
    assert_line(&lines, "# TYPE fieldwise_reconciles counter");
    for result in ["success", "error", "requeue"] {
        assert_line(
            &lines,
            &format!(
                "fieldwise_reconciles_total{{controller=\"featurestore\",result=\"{result}\"}} 0"
            ),
        );
    }
    assert_line(
        &lines,
        "fieldwise_work_queue_depth{controller=\"featurestore\"} 0",
    );

    metrics.observe_reconcile(
        "featurestore",
        ReconcileResult::Success,
        Duration::from_millis(300),
        Some(TRACE_ID),
    );
    metrics.observe_reconcile(
        "featurestore",
        ReconcileResult::Error,
        Duration::from_millis(20),
        None,
    );
    metrics.observe_reconcile(
        "featurestore",
        ReconcileResult::Success,
        Duration::from_secs(2),
        None,
    );
    let lines = scrape(&metrics);
    assert_line(
        &lines,
        "fieldwise_reconciles_total{controller=\"featurestore\",result=\"success\"} 2",
    );
    assert_line(
        &lines,
        "fieldwise_reconciles_total{controller=\"featurestore\",result=\"error\"} 1",
    );
    assert_line(
        &lines,
        "# TYPE fieldwise_reconcile_duration_seconds histogram",
    );
    assert_line(
        &lines,
        "fieldwise_reconcile_duration_seconds_count{controller=\"featurestore\"} 3",
    );
    assert_line(
        &lines,
        "fieldwise_reconcile_duration_seconds_bucket{le=\"0.25\",controller=\"featurestore\"} 1",
    );
    assert_line(
        &lines,
        "fieldwise_reconcile_duration_seconds_bucket{le=\"+Inf\",controller=\"featurestore\"} 3",
    );
    // The 0.3 s observation lands in the 0.5 bucket and carries the trace id as exemplar.
    let bucket = lines
        .iter()
        .find(|l| {
            l.starts_with("fieldwise_reconcile_duration_seconds_bucket{le=\"0.5\",controller=\"featurestore\"} 2")
        })
        .unwrap_or_else(|| panic!("0.5 bucket in\n{}", lines.join("\n")));
    assert!(
        bucket.contains(&format!(" # {{trace_id=\"{TRACE_ID}\"}} 0.3")),
        "{bucket}"
    );
    let exemplars = lines.iter().filter(|l| l.contains(" # {")).count();
    assert_eq!(exemplars, 1, "only the traced reconcile has an exemplar");
}

#[test]
fn writes_drift_queue_and_owned_objects() {
    let metrics = Metrics::new();
    for outcome in [
        WriteOutcome::Applied,
        WriteOutcome::Applied,
        WriteOutcome::Unchanged,
        WriteOutcome::Pruned,
        WriteOutcome::HandedOver,
        WriteOutcome::Conflict,
        WriteOutcome::Failed,
    ] {
        metrics.count_write("featurestore", "Deployment", outcome);
    }
    metrics.count_write("featurestore", "Service", WriteOutcome::Unchanged);
    metrics.count_drift_correction("featurestore", "Deployment");
    metrics.count_drift_correction("featurestore", "Deployment");
    metrics.count_reconcile_error("featurestore", "conflict");
    metrics.set_queue_depth("featurestore", 5);
    metrics.set_queue_depth("featurestore", 3);
    metrics.set_owned_objects("Deployment", 4);
    let lines = scrape(&metrics);
    for (outcome, value) in [
        ("applied", 2),
        ("unchanged", 1),
        ("pruned", 1),
        ("handed_over", 1),
        ("conflict", 1),
        ("failed", 1),
    ] {
        assert_line(
            &lines,
            &format!(
                "fieldwise_api_writes_total{{controller=\"featurestore\",kind=\"Deployment\",outcome=\"{outcome}\"}} {value}"
            ),
        );
    }
    assert_line(
        &lines,
        "fieldwise_api_writes_total{controller=\"featurestore\",kind=\"Service\",outcome=\"unchanged\"} 1",
    );
    assert_line(
        &lines,
        "fieldwise_drift_corrections_total{controller=\"featurestore\",kind=\"Deployment\"} 2",
    );
    assert_line(
        &lines,
        "fieldwise_reconcile_errors_total{controller=\"featurestore\",category=\"conflict\"} 1",
    );
    assert_line(
        &lines,
        "fieldwise_work_queue_depth{controller=\"featurestore\"} 3",
    );
    assert_line(&lines, "# TYPE fieldwise_owned_objects gauge");
    assert_line(&lines, "fieldwise_owned_objects{kind=\"Deployment\"} 4");
}

#[test]
fn feast_info_gauge_is_replaced_and_removed() {
    let metrics = Metrics::new();
    metrics.set_info(INFO, "ml", "sample", store("sqlite"));
    assert!(
        !scrape(&metrics).iter().any(|l| l.starts_with(INFO)),
        "an unregistered info gauge exports nothing"
    );
    metrics.register_info(INFO, "FeatureStore information (value is always 1)");
    let sqlite = "feast_operator_feature_store_info{namespace=\"ml\",name=\"sample\",online_store_type=\"sqlite\",offline_store_type=\"dask\",registry_type=\"file\"} 1";
    let redis = sqlite.replace("sqlite", "redis");
    metrics.set_info(INFO, "ml", "sample", store("sqlite"));
    metrics.set_info(INFO, "ml", "sample", store("sqlite"));
    let lines = scrape(&metrics);
    assert_line(&lines, "# TYPE feast_operator_feature_store_info gauge");
    assert_line(&lines, sqlite);

    metrics.set_info(INFO, "ml", "sample", store("redis"));
    let lines = scrape(&metrics);
    assert_line(&lines, &redis);
    assert!(!has(&lines, sqlite), "old series must go");

    metrics.remove_info(INFO, "ml", "sample");
    let lines = scrape(&metrics);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("feast_operator_feature_store_info{")),
        "{}",
        lines.join("\n")
    );
}
