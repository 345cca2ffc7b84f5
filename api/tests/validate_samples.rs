//! Every Feast sample FeatureStore validates against fieldwise's generated CRD; the Secrets some
//! sample files carry are skipped, not rejected.

use std::path::{Path, PathBuf};

use fieldwise_api::validate::{Outcome, validate_manifests};

/// The Feast sample files in the reference corpus.
fn sample_files(corpus: &Path) -> Vec<PathBuf> {
    let dir = corpus.join("samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_sample_feature_store_is_valid() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let files = sample_files(&corpus);
    assert!(
        files.len() >= 20,
        "expected the Feast samples, found {}",
        files.len()
    );
    let mut feature_stores = 0;
    let mut skipped = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("sample readable");
        let report = validate_manifests(&text);
        for doc in &report.documents {
            match &doc.outcome {
                Outcome::Valid { .. } => feature_stores += 1,
                Outcome::Skipped { .. } => skipped += 1,
                other => panic!("{} document {}: {other:?}", file.display(), doc.index),
            }
        }
        assert!(report.is_valid(), "{}", file.display());
    }
    assert!(
        feature_stores >= files.len(),
        "every sample file holds a FeatureStore"
    );
    assert!(skipped > 0, "some samples carry Secrets, which are skipped");
}

#[test]
fn every_sample_feature_store_is_valid_against_the_reference_crd_too() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let path = corpus.join("feast.dev_featurestores.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let reference: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut checked = 0;
    for file in sample_files(&corpus) {
        let text = std::fs::read_to_string(&file).expect("sample readable");
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).expect("sample parses");
        for doc in docs.iter().filter(|d| d["kind"] == "FeatureStore") {
            let result = fieldwise_api::validate::validate_create(&reference, doc);
            assert_eq!(result, Ok(()), "{}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 20);
}
