//! Invalid PrismClusters are rejected by `fieldwise validate`'s code path with exactly the API server's
//! message (the same table is run against the emulator's HTTP API in `e2e/tests/emulator/prism_cluster.rs`),
//! and PrismClusters and FeatureStores mix in one file.

mod prism_cases;

use fieldwise_api::validate::{
    Outcome, validate_manifests, validate_prism_cluster, validate_prism_cluster_update,
};
use prism_cases::{PREFIX, cases, manifest};
use serde_json::Value;

fn rejection(yaml: &str) -> Result<String, String> {
    let report = validate_manifests(yaml);
    let doc = report.documents.first().ok_or("no document")?;
    match &doc.outcome {
        Outcome::Rejected(rejection) => Ok(rejection.message.clone()),
        other => Err(format!("not rejected: {other:?}")),
    }
}

#[test]
fn invalid_prism_clusters_are_rejected_with_the_api_server_message() {
    let cases = cases();
    assert!(cases.len() >= 25, "the issue asks for at least 25 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let expected = format!("{PREFIX}{}", case.expected);
        match rejection(&manifest(&case.spec)) {
            Ok(actual) if actual == expected => {}
            Ok(actual) => failures.push(format!(
                "{}:\n  expected: {expected}\n  actual:   {actual}",
                case.name
            )),
            Err(err) => failures.push(format!("{}: {err}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case(s) differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn object(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).expect("test YAML parses")
}

#[test]
fn valid_neighbours_of_the_invalid_cases_are_accepted() {
    let accepted = [
        "",
        "patterns: [{name: kv, backends: [sqlite]}]",
        "backends: {redis: {}}, patterns: [{name: kv, backends: [redis]}]",
        "admin: {replicas: 3, storage: {type: postgres}}, backends: {postgres: {}}",
        "admin: {replicas: 0}",
        &format!("patterns: [{{name: {}}}]", "a".repeat(45)),
        "patterns: [{name: mailbox, type: StatefulSet, storage: {size: 500Mi}}]",
        "patterns: [{name: consumer, autoscaling: {scaler: keda, minReplicas: 0, triggers: [{type: cpu, metadata: {value: '60'}}]}}]",
        "patterns: [{name: consumer, autoscaling: {enabled: false, maxReplicas: 3}}]",
        "proxy: {autoscaling: {minReplicas: 3, maxReplicas: 3, targetCPU: 0}}",
        "backends: {kafka: {replicas: 5}}",
        "backends: {kafka: {replicas: 0}}",
        "ingress: {host: '*.prism.example.com'}",
        "ingress: {host: ''}",
        "observability: {prometheus: {scrapeInterval: 1h30m}}",
    ];
    for spec in accepted {
        let yaml = manifest(spec);
        assert_eq!(validate_prism_cluster(&object(&yaml)), Ok(()), "{spec}");
    }
}

#[test]
fn unknown_fields_are_reported_like_strict_field_validation() {
    let yaml = manifest("admin: {replicas: 1, colour: red}, bogus: 1");
    assert_eq!(
        rejection(&yaml).as_deref(),
        Ok(
            r#"PrismCluster in version "v1alpha1" cannot be handled as a PrismCluster: strict decoding error: unknown field "spec.admin.colour", unknown field "spec.bogus""#
        )
    );
}

#[test]
fn other_versions_of_prism_cluster_are_not_served() {
    let yaml =
        "apiVersion: prism.io/v1beta1\nkind: PrismCluster\nmetadata: {name: later}\nspec: {}\n";
    assert_eq!(
        rejection(yaml).as_deref(),
        Ok(r#"no matches for kind "PrismCluster" in version "prism.io/v1beta1""#)
    );
}

#[test]
fn prism_clusters_and_feature_stores_mix_in_one_file() {
    let yaml = format!(
        "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata: {{name: features}}\nspec: {{feastProject: p}}\n---\n{}---\n{}---\n{}---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata: {{name: broken}}\nspec: {{feastProject: p, replicas: 0}}\n",
        manifest("patterns: [{name: kv, backends: [sqlite]}]")
            .replace("name: sample", "name: data"),
        manifest("admin: {replicas: 2}"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
    );
    let report = validate_manifests(&yaml);
    let outcomes: Vec<String> = report
        .documents
        .iter()
        .map(|doc| match &doc.outcome {
            Outcome::Valid { resource, name } => format!("valid {resource} {name}"),
            Outcome::Rejected(rejection) => format!("rejected {rejection}"),
            Outcome::Skipped { note } => note.clone(),
            Outcome::Malformed(err) => format!("malformed {err}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "valid FeatureStore.feast.dev features".to_owned(),
            "valid PrismCluster.prism.io data".to_owned(),
            format!("rejected {PREFIX}spec.admin: Invalid value: \"object\": replicas > 1 needs storage.type postgres: admin replicas cannot share one sqlite file"),
            "skipped ConfigMap \"settings\" (v1): not a kind fieldwise serves (feast.dev/v1 FeatureStore, prism.io/v1alpha1 PrismCluster)".to_owned(),
            "rejected FeatureStore.feast.dev \"broken\" is invalid: spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1".to_owned(),
        ]
    );
    assert!(!report.is_valid());
    let lines: Vec<usize> = report.documents.iter().map(|d| d.line).collect();
    assert_eq!(lines, [1, 5, 11, 17, 21]);
}

#[test]
fn ratcheting_keeps_an_unchanged_invalid_value_on_update() {
    // Stored before a rule existed (or by a looser version): an update that leaves it alone is
    // accepted, one that touches it is judged.
    let old = object(&manifest("backends: {kafka: {replicas: 2}}"));
    let unrelated = object(&manifest(
        "backends: {kafka: {replicas: 2}}, proxy: {replicas: 3}",
    ));
    assert_eq!(validate_prism_cluster_update(&old, &unrelated), Ok(()));
    let touched = object(&manifest("backends: {kafka: {replicas: 4}}"));
    assert!(validate_prism_cluster_update(&old, &touched).is_err());
}
