//! Every pod fieldwise creates passes the `restricted` Pod Security Standard: each sample (ours in
//! `deploy/samples/`, the Feast reference corpus) is rendered through the pure graph, as
//! `fieldwise render` does, and every pod template (Deployments with their init containers,
//! StatefulSets, CronJobs) is checked against the restricted level's rules with the checker the
//! emulator's PodSecurity admission uses (`fieldwise_e2e::pod_security`, conformance-tested against
//! kube-apiserver). A failure names the sample, the object, the rule and the containers at fault.

use std::{
    fs,
    path::{Path, PathBuf},
};

use fieldwise::{
    featurestore::context::ImageDefaults,
    render::{Input, render},
};
use fieldwise_e2e::pod_security::{Level, evaluate, pod_of};
use serde_json::Value;

fn input(path: &Path) -> Input {
    Input {
        source_name: path.display().to_string(),
        text: fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// What a rendered sample made, and the restricted violations of its pod templates.
#[derive(Default)]
struct Checked {
    templates: Vec<String>,
    violations: Vec<String>,
}

/// Renders `sample` (with the documents that stand for the cluster) and checks every pod template.
fn check(sample: &Path, cluster: &[&Path], checked: &mut Checked) {
    let mut inputs = vec![input(sample)];
    inputs.extend(cluster.iter().map(|path| input(path)));
    let rendered = render(&inputs, &ImageDefaults::default())
        .unwrap_or_else(|e| panic!("{}: {e}", sample.display()));
    let objects: Vec<Value> = serde_saphyr::from_multiple(&rendered).expect("rendered YAML");
    let sample_name = sample
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some((pod_meta, pod_spec)) = pod_of(kind, object) else {
            continue;
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        checked
            .templates
            .push(format!("{sample_name}: {kind} {name}"));
        for violation in evaluate(Level::Restricted, pod_meta, pod_spec) {
            checked.violations.push(format!(
                "{sample_name}: {kind} {name}: rule {}: {} ({})",
                violation.check, violation.reason, violation.detail
            ));
        }
    }
}

fn assert_restricted(checked: &Checked) {
    assert!(
        checked.violations.is_empty(),
        "pod templates that violate the restricted Pod Security Standard:\n{}",
        checked.violations.join("\n")
    );
}

#[test]
fn every_pod_of_our_samples_is_restricted() {
    let samples = Path::new("deploy/samples");
    let secrets = samples.join("feature-store-secrets.yaml");
    let crds = Path::new("tests/fixtures/prometheus-keda-crds.yaml");
    let mut checked = Checked::default();
    for sample in yaml_files(samples) {
        let name = sample
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("featurestore-") {
            check(&sample, &[&secrets], &mut checked);
        } else if name.starts_with("prismcluster-") {
            // With KEDA and the Prometheus Operator installed: every object there can be.
            check(&sample, &[crds], &mut checked);
        }
    }
    assert_restricted(&checked);
    for expected in [
        "featurestore-basic.yaml: Deployment feast-basic",
        "featurestore-basic.yaml: CronJob feast-basic",
        "prismcluster-all-backends.yaml: StatefulSet kafka",
        "prismcluster-all-backends.yaml: StatefulSet postgres",
        "prismcluster-local.yaml: StatefulSet redis",
        "prismcluster-local.yaml: Deployment prism-admin",
        "prismcluster-local.yaml: Deployment prism-proxy",
        "prismcluster-local.yaml: StatefulSet mailbox-runner",
        "prismcluster-local.yaml: Deployment consumer-runner",
    ] {
        assert!(
            checked.templates.iter().any(|t| t == expected),
            "{expected} was not checked: {:#?}",
            checked.templates
        );
    }
}

#[test]
fn every_pod_of_the_feast_reference_samples_is_restricted() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let registry_secret = Path::new("tests/fixtures/registry-db-secret.yaml");
    let mut checked = Checked::default();
    let samples = yaml_files(&corpus.join("samples"));
    for sample in &samples {
        let name = sample
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let cluster: &[&Path] =
            if name.contains("lineage_server") || name.contains("openlineage_consumer") {
                &[registry_secret]
            } else {
                &[]
            };
        check(sample, cluster, &mut checked);
    }
    assert_restricted(&checked);
    // Each sample's feature-server Deployment and CronJob were among those checked.
    let deployments = checked
        .templates
        .iter()
        .filter(|t| t.contains(": Deployment "))
        .count();
    let cron_jobs = checked
        .templates
        .iter()
        .filter(|t| t.contains(": CronJob "))
        .count();
    assert!(
        deployments >= samples.len(),
        "{deployments} Deployments for {} samples",
        samples.len()
    );
    assert!(
        cron_jobs >= samples.len(),
        "{cron_jobs} CronJobs for {} samples",
        samples.len()
    );
}

/// The checker itself catches what it must: a FeatureStore whose user context runs as root is
/// reported, naming the object and the rule.
#[test]
fn a_pod_run_as_root_by_the_user_is_reported() {
    let dir = std::env::temp_dir().join(format!("fieldwise-restricted-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a temporary directory");
    let sample = dir.join("root.yaml");
    fs::write(
        &sample,
        "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: root\nspec:\n  feastProject: p\n  services:\n    securityContext:\n      runAsUser: 0\n",
    )
    .expect("writable");
    let mut checked = Checked::default();
    check(&sample, &[], &mut checked);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(
        checked.violations,
        [
            "root.yaml: Deployment feast-root: rule runAsNonRoot: runAsNonRoot != true (pod or containers \"feast-init\", \"feast-apply\", \"online\" must set securityContext.runAsNonRoot=true)",
            "root.yaml: Deployment feast-root: rule runAsUser: runAsUser=0 (pod must not set runAsUser=0)",
        ]
    );
}

/// fieldwise's own Deployment (kustomize install and OLM bundle) runs restricted too: its namespace
/// is labelled `enforce: restricted`.
#[test]
fn the_operators_own_pod_is_restricted() {
    use fieldwise::deploy::manager::{WatchScope, deployment};
    for scope in [WatchScope::AllNamespaces, WatchScope::OlmTargetNamespaces] {
        let deployment = serde_json::to_value(deployment("0.1.0", scope)).expect("JSON");
        let (pod_meta, pod_spec) = pod_of("Deployment", &deployment).expect("a template");
        let violations = evaluate(Level::Restricted, pod_meta, pod_spec);
        assert!(violations.is_empty(), "{violations:#?}");
    }
}
