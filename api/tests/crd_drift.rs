//! Drift gate: `crds/` must hold exactly what `fieldwise crds` prints.

use std::path::PathBuf;

const BLESS_VAR: &str = "FIELDWISE_BLESS";

fn crd_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/featurestores.feast.dev.yaml")
}

#[test]
fn generated_crds_are_committed() {
    let path = crd_file();
    let generated = fieldwise_api::crds_yaml();
    if std::env::var_os(BLESS_VAR).is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale (or missing). Regenerate it with\n    {BLESS_VAR}=1 cargo test -p fieldwise-api --test crd_drift\n\
         or\n    cargo run -- crds > crds/featurestores.feast.dev.yaml\nand commit the result.",
        path.display()
    );
}

#[test]
fn crds_yaml_is_deterministic_and_multi_document() {
    let first = fieldwise_api::crds_yaml();
    assert_eq!(first, fieldwise_api::crds_yaml());
    assert!(first.starts_with("---\n"));
    assert_eq!(
        first.matches("\n---\n").count() + 1,
        fieldwise_api::crds().len()
    );
}

#[test]
fn crds_yaml_parses_back_to_the_same_crds() {
    let parsed: Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        serde_saphyr::from_multiple(&fieldwise_api::crds_yaml()).expect("crds_yaml is valid YAML");
    assert_eq!(parsed, fieldwise_api::crds());
}
