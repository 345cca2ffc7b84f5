//! Every Feast sample FeatureStore validates against fieldwise's generated CRD; the Secrets some
//! sample files carry are skipped, not rejected.

use std::path::Path;

use fieldwise_api::validate::{Outcome, validate_manifests};

fn sample_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/feast/samples");
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
    let files = sample_files();
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
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference/feast/feast.dev_featurestores.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let reference: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"));
    let mut checked = 0;
    for file in sample_files() {
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
