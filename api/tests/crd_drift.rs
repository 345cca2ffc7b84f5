//! Drift gate: `crds/` must hold exactly what `fieldwise crds` prints, one file per CRD.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

const BLESS_VAR: &str = "FIELDWISE_BLESS";

fn crd_file(crd: &CustomResourceDefinition) -> PathBuf {
    let name = crd.metadata.name.as_deref().unwrap_or("unnamed");
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../crds/{name}.yaml"))
}

#[test]
fn generated_crds_are_committed() {
    let bless = std::env::var_os(BLESS_VAR).is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for crd in fieldwise_api::crds() {
        let path = crd_file(&crd);
        let generated = fieldwise_api::crd_yaml(&crd);
        if bless {
            std::fs::write(&path, &generated)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale (or missing): {}. Regenerate with\n    {BLESS_VAR}=1 cargo test -p fieldwise-api --test crd_drift\nand commit the result.",
        stale.join(", ")
    );
}

#[test]
fn fieldwise_crds_prints_every_file_of_crds_dir_in_order() {
    let files: String = fieldwise_api::crds()
        .iter()
        .map(fieldwise_api::crd_yaml)
        .collect();
    assert_eq!(fieldwise_api::crds_yaml(), files);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = fieldwise_api::crds()
        .iter()
        .map(|crd| format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("")))
        .collect();
    expected.sort();
    assert_eq!(on_disk, expected, "crds/ holds exactly one file per CRD");
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
    let parsed: Vec<CustomResourceDefinition> =
        serde_saphyr::from_multiple(&fieldwise_api::crds_yaml()).expect("crds_yaml is valid YAML");
    assert_eq!(parsed, fieldwise_api::crds());
}
