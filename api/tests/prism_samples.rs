//! The PrismCluster samples in `deploy/samples/`: each validates against the generated CRD, the
//! `prism-local` one is ADR-059's example verbatim, and the defaults the API server fills in (from the
//! CRD) are exactly the ones deserialising the raw manifest fills in (from the Rust types).

use std::path::{Path, PathBuf};

use fieldwise_api::prism::{PrismCluster, defaults};
use fieldwise_api::validate::{Outcome, validate_manifests};
use serde_json::Value;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples")
}

fn prism_samples() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(samples_dir())
        .expect("deploy/samples")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("prismcluster-"))
        })
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn prism_documents(path: &Path) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    docs.into_iter()
        .filter(|d| d["kind"] == "PrismCluster")
        .collect()
}

#[test]
fn every_prism_cluster_sample_is_valid() {
    let files = prism_samples();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "prismcluster-all-backends.yaml",
            "prismcluster-keda-nats.yaml",
            "prismcluster-local.yaml",
            "prismcluster-minimal.yaml"
        ]
    );
    for file in &files {
        let report = validate_manifests(&read(file));
        let mut valid = 0;
        for doc in &report.documents {
            match &doc.outcome {
                Outcome::Valid { resource, .. } => {
                    assert_eq!(resource, "PrismCluster.prism.io");
                    valid += 1;
                }
                other => panic!("{} document {}: {other:?}", file.display(), doc.index),
            }
        }
        assert_eq!(valid, 1, "{} holds one PrismCluster", file.display());
    }
}

/// The ```yaml block after "### Example PrismCluster Resource" in the ADR.
fn adr_example() -> String {
    let adr =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds/003_6bfcfc8dc4e21a3e.txt");
    let text = read(&adr);
    assert!(text.contains("title: Kubernetes Operator for Declarative Prism Deployment"));
    let after = text
        .split_once("### Example PrismCluster Resource")
        .expect("the ADR's example section")
        .1;
    let block = after
        .split_once("```yaml\n")
        .expect("a yaml block")
        .1
        .split_once("```")
        .expect("the block's end")
        .0;
    block.to_owned()
}

#[test]
fn the_prism_local_sample_is_the_adr_example_verbatim() {
    assert_eq!(
        read(&samples_dir().join("prismcluster-local.yaml")),
        adr_example()
    );
}

/// The object as the API server stores it: pruned and defaulted with the CRD's schema.
fn defaulted_by_the_crd(object: &Value) -> Value {
    let crd = fieldwise_api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == "PrismCluster")
        .expect("the PrismCluster CRD");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema")
        .clone();
    let mut object = object.clone();
    let unknown = fieldwise_api::schema::prune_unknown(&schema, &mut object);
    assert!(unknown.is_empty(), "unknown fields {unknown:?}");
    fieldwise_api::schema::apply_defaults(&schema, &mut object);
    object
}

fn assert_rust_defaults_match_the_crd(object: &Value, label: &str) {
    let from_raw: PrismCluster =
        serde_json::from_value(object.clone()).unwrap_or_else(|err| panic!("{label}: {err}"));
    let stored = defaulted_by_the_crd(object);
    let from_stored: PrismCluster =
        serde_json::from_value(stored.clone()).unwrap_or_else(|err| panic!("{label}: {err}"));
    assert_eq!(
        from_raw, from_stored,
        "{label}: the CRD fills a default the types do not, or differently"
    );
    let mut serialised = serde_json::to_value(&from_raw).expect("serialises");
    strip_empty_metadata(&mut serialised);
    let mut stored = stored;
    strip_empty_metadata(&mut stored);
    assert_eq!(
        serialised["spec"], stored["spec"],
        "{label}: the types fill a default the CRD does not"
    );
}

fn strip_empty_metadata(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
}

#[test]
fn crd_defaults_and_rust_defaults_agree_on_every_sample() {
    for file in prism_samples() {
        for doc in prism_documents(&file) {
            assert_rust_defaults_match_the_crd(&doc, &file.display().to_string());
        }
    }
}

#[test]
fn crd_defaults_and_rust_defaults_agree_on_sparse_blocks() {
    let sparse = serde_json::json!({
        "apiVersion": "prism.io/v1alpha1",
        "kind": "PrismCluster",
        "metadata": {"name": "sparse"},
        "spec": {
            "proxy": {"autoscaling": {}},
            "patterns": [
                {"name": "a", "type": "StatefulSet", "storage": {}, "autoscaling": {}},
                {"name": "b", "autoscaling": {"scaler": "keda", "triggers": [{"type": "cpu"}]}}
            ],
            "backends": {"redis": {}, "nats": {}, "postgres": {}, "minio": {}, "kafka": {}},
            "ingress": {},
            "observability": {"prometheus": {}, "grafana": {}, "loki": {}}
        }
    });
    assert_rust_defaults_match_the_crd(&sparse, "sparse");
    let empty = serde_json::json!({
        "apiVersion": "prism.io/v1alpha1", "kind": "PrismCluster",
        "metadata": {"name": "empty"}, "spec": {}
    });
    assert_rust_defaults_match_the_crd(&empty, "empty spec");
}

#[test]
fn the_minimal_sample_gets_the_recommended_defaults() {
    let doc = prism_documents(&samples_dir().join("prismcluster-minimal.yaml")).remove(0);
    let cluster: PrismCluster = serde_json::from_value(doc).expect("deserialises");
    let spec = &cluster.spec;
    assert_eq!(spec.admin.image, defaults::ADMIN_IMAGE);
    assert_eq!(spec.admin.storage.size, "1Gi");
    assert_eq!(spec.admin.resources, defaults::small_resources());
    assert_eq!(spec.proxy.image, defaults::PROXY_IMAGE);
    assert_eq!(spec.proxy.resources, defaults::proxy_resources());
    assert!(spec.patterns.is_empty());
    assert_eq!(spec.backends, Default::default());
}
