//! The FeatureStores the scenarios run under the Feast operator and under fieldwise (issue 24): every
//! sample of the Feast reference corpus, fieldwise's own samples (`deploy/samples/`), and variants of
//! a corpus sample that can never become Ready (a Secret or a key missing, a `feastRef` to nothing),
//! so that both operators' failure statuses are compared too.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Limits the cases (comma-separated labels, as [`Case::label`]); else every case.
pub const CASES_VARIABLE: &str = "E2E_FEAST_SAMPLES";

/// fieldwise's own FeatureStore samples and the Secrets they read.
const OWN_SAMPLES: &str = "deploy/samples";
const OWN_SECRETS: &str = "feature-store-secrets.yaml";

/// One set of manifests to apply into a namespace of its own.
#[derive(Clone, Debug)]
pub struct Case {
    /// The sample's file name (corpus), `deploy/samples/<file>` (fieldwise's own), or
    /// `<corpus file>#<variant>`.
    pub label: String,
    /// The documents, without a namespace.
    documents: Vec<Value>,
}

impl Case {
    /// The documents as one YAML (JSON) stream, each put into `namespace` (some samples name `test`
    /// or `feast`).
    pub fn text(&self, namespace: &str) -> String {
        let moved: Vec<String> = self
            .documents
            .iter()
            .map(|document| {
                let mut document = document.clone();
                document["metadata"]["namespace"] = Value::from(namespace);
                document.to_string()
            })
            .collect();
        moved.join("\n---\n")
    }

    /// The FeatureStore's `spec.replicas`, or the HPA's lower bound: the pods it runs once Ready.
    pub fn replicas(&self) -> i32 {
        let spec = self
            .documents
            .iter()
            .find(|document| document["kind"] == "FeatureStore")
            .map(|document| &document["spec"]);
        let autoscaling = spec.map(|spec| &spec["services"]["scaling"]["autoscaling"]);
        let bound = autoscaling.and_then(|a| a.get("minReplicas").and_then(Value::as_i64));
        let fixed = spec.and_then(|spec| spec["replicas"].as_i64());
        bound.or(fixed).map_or(1, |replicas| replicas as i32)
    }
}

/// `E2E_FEAST_SAMPLES`'s cases, else every case.
pub fn chosen_cases(corpus: &Path) -> Vec<Case> {
    let all = all_cases(corpus);
    let Ok(list) = std::env::var(CASES_VARIABLE) else {
        return all;
    };
    let wanted: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if wanted.is_empty() {
        return all;
    }
    let unknown: Vec<&&str> = wanted
        .iter()
        .filter(|label| !all.iter().any(|case| case.label == **label))
        .collect();
    assert!(
        unknown.is_empty(),
        "{CASES_VARIABLE} names no case {unknown:?}"
    );
    all.into_iter()
        .filter(|case| wanted.contains(&case.label.as_str()))
        .collect()
}

/// The corpus samples (in file-name order), fieldwise's own samples, then the failing variants.
pub fn all_cases(corpus: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = corpus_samples(corpus)
        .into_iter()
        .map(|file| corpus_case(corpus, &file))
        .collect();
    cases.extend(own_cases());
    cases.extend(failing_variants(corpus));
    cases
}

fn corpus_samples(corpus: &Path) -> Vec<String> {
    let directory = corpus.join("samples");
    let mut all: Vec<String> = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    all.sort();
    all
}

/// A corpus sample, with the Secret the lineage samples name but do not ship.
fn corpus_case(corpus: &Path, file: &str) -> Case {
    let mut documents = read_documents(&corpus.join("samples").join(file));
    if file.contains("lineage_server") || file.contains("openlineage_consumer") {
        documents.extend(read_documents(Path::new(
            "tests/fixtures/registry-db-secret.yaml",
        )));
    }
    Case {
        label: file.to_owned(),
        documents,
    }
}

/// fieldwise's FeatureStore samples with the Secrets they read; KEDA's ScaledObject is left out (no
/// KEDA runs on the test control plane; the FeatureStore alone is the same under both operators).
fn own_cases() -> Vec<Case> {
    let directory = PathBuf::from(OWN_SAMPLES);
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", directory.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("featurestore-") && name.ends_with(".yaml"))
        .collect();
    files.sort();
    let secrets = read_documents(&directory.join(OWN_SECRETS));
    files
        .into_iter()
        .map(|file| {
            let mut documents: Vec<Value> = read_documents(&directory.join(&file))
                .into_iter()
                .filter(|document| document["kind"] != "ScaledObject")
                .collect();
            documents.extend(secrets.iter().cloned());
            Case {
                label: format!("{OWN_SAMPLES}/{file}"),
                documents,
            }
        })
        .collect()
}

/// The base of the variants: a FeatureStore whose stores read a Secret.
const DB_SAMPLE: &str = "v1_featurestore_db_persistence.yaml";

/// FeatureStores neither operator can make Ready: the database sample without its Secrets, with the
/// Secret lacking the key its online store reads, and a remote registry naming a FeatureStore that
/// does not exist.
fn failing_variants(corpus: &Path) -> Vec<Case> {
    let base = corpus_case(corpus, DB_SAMPLE);
    let without_secrets = base
        .documents
        .iter()
        .filter(|document| document["kind"] != "Secret")
        .cloned()
        .collect();
    let mut without_key = base.documents.clone();
    for document in &mut without_key {
        if document["kind"] == "Secret"
            && let Some(data) = document["stringData"].as_object_mut()
        {
            data.remove("postgres");
        }
    }
    let dangling_ref = vec![json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "dangling-ref"},
        "spec": {"feastProject": "dangling", "services": {
            "registry": {"remote": {"feastRef": {"name": "no-such-store"}}}}},
    })];
    [
        ("secrets-missing", without_secrets),
        ("secret-key-missing", without_key),
        ("feast-ref-missing", dangling_ref),
    ]
    .into_iter()
    .map(|(variant, documents)| Case {
        label: format!("{DB_SAMPLE}#{variant}"),
        documents,
    })
    .collect()
}

fn read_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed: Vec<Value> = serde_saphyr::from_multiple_with_options(
        &text,
        fieldwise::featurestore::render::kubernetes_yaml(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parsed.into_iter().filter(Value::is_object).collect()
}

#[test]
fn the_cases_are_the_corpus_our_samples_and_three_failing_variants() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let cases = all_cases(&corpus);
    let labels: Vec<&str> = cases.iter().map(|case| case.label.as_str()).collect();
    assert!(labels.contains(&"v1_featurestore.yaml"), "{labels:?}");
    assert!(
        labels.contains(&"deploy/samples/featurestore-basic.yaml"),
        "{labels:?}"
    );
    let keda = cases
        .iter()
        .find(|case| case.label.ends_with("featurestore-scaling-keda.yaml"))
        .expect("the KEDA sample");
    assert!(!keda.text("n").contains("ScaledObject"));
    assert!(keda.text("n").contains("postgres-credentials"));
    let missing = cases
        .iter()
        .find(|case| case.label.ends_with("#secrets-missing"))
        .expect("the variant");
    assert!(!missing.text("n").contains("\"Secret\""));
    let key_missing = cases
        .iter()
        .find(|case| case.label.ends_with("#secret-key-missing"))
        .expect("the variant");
    assert!(!key_missing.text("n").contains("\"postgres\":"));
    let hpa = cases
        .iter()
        .find(|case| case.label.ends_with("featurestore-scaling-hpa.yaml"))
        .expect("the HPA sample");
    assert_eq!(hpa.replicas(), 2);
}
