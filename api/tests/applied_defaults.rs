//! The defaults for `status.applied` never turn a valid FeatureStore into an invalid one: for every
//! Feast sample, the applied spec passes the same schema and CEL rules as the spec itself, and applying
//! the defaults again changes nothing.

use std::path::PathBuf;

use fieldwise_api::v1::FeatureStore;
use fieldwise_api::v1::defaults::{DefaultsContext, applied_with};
use serde_json::Value;

/// The FeatureStores of the Feast samples, or `None` (the test is skipped) when the reference
/// corpus is absent.
fn samples() -> Option<Vec<(String, Value)>> {
    let dir = fieldwise_api::reference::feast_corpus()?.join("samples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    let mut stores = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let documents: Vec<Value> =
            serde_saphyr::from_multiple_with_options(&text, options.clone())
                .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        stores.extend(
            documents
                .into_iter()
                .filter(|d| d["kind"] == "FeatureStore")
                .map(|d| (name.clone(), d)),
        );
    }
    assert!(
        !stores.is_empty(),
        "no FeatureStore samples in {}",
        dir.display()
    );
    Some(stores)
}

#[test]
fn applied_specs_of_every_sample_still_validate_and_are_stable() {
    let mut problems = Vec::new();
    let Some(samples) = samples() else {
        return;
    };
    for (file, object) in samples {
        let store: FeatureStore =
            serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let context = DefaultsContext::new(
            store
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        );
        let applied = applied_with(&store.spec, &context);
        if applied_with(&applied, &context) != applied {
            problems.push(format!(
                "{file}: applying the defaults twice changes the result"
            ));
        }
        let mut defaulted = object;
        defaulted["spec"] = serde_json::to_value(&applied).expect("a spec serialises");
        if let Err(rejection) = fieldwise_api::validate::validate_feature_store(&defaulted) {
            problems.push(format!("{file}: applied spec is rejected: {rejection:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
