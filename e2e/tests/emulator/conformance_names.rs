//! fieldwise's FeatureStore CRD refuses, at creation, names its children's names cannot be made
//! from (longer than `MAX_NAME_LENGTH`, or with a '.'), on the emulator and on kube-apiserver alike,
//! and kubectl prints exactly what `fieldwise validate` prints. The rules judge creates only: a
//! FeatureStore admitted before them can still be updated (and so have its finalizer removed).

use fieldwise_api::v1::MAX_NAME_LENGTH;
use fieldwise_api::validate::{Outcome, validate_manifests};
use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};
use serde_json::Value;

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

const FEATURESTORE_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/featurestores.feast.dev.yaml"
);
const CRD_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: {name}\nspec:\n  feastProject: p\n"
    )
}

/// What `fieldwise validate` says about the manifest: kubectl's words for the API server's answer.
fn validate_says(name: &str) -> String {
    match &validate_manifests(&manifest(name)).documents[0].outcome {
        Outcome::Rejected(rejection) => rejection.kubectl_message(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_too_long_for_the_children_are_refused_with_the_maximum() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&server, "names")?;
    k.ok(&["apply", "--server-side", "-f", FEATURESTORE_CRD])
        .await?;
    crate::target::await_established(&c, "featurestores.feast.dev").await?;

    let too_long = "a".repeat(MAX_NAME_LENGTH + 1);
    let longest = "b".repeat(MAX_NAME_LENGTH);
    for (name, refused) in [
        (too_long.as_str(), true),
        ("my.store", true),
        (&longest, false),
    ] {
        let file = write("names", name)?;
        let applied = k
            .run(&["apply", "--server-side", "--dry-run=server", "-f", &file])
            .await?;
        if refused {
            assert_eq!(applied.code, 1, "{name}: {}", applied.stdout);
            assert_eq!(applied.stderr.trim_end(), validate_says(name), "{name}");
        } else {
            assert_eq!(applied.code, 0, "{name}: {}", applied.stderr);
        }
    }
    assert_eq!(
        validate_says(&too_long),
        format!(
            "The FeatureStore \"{too_long}\" is invalid: metadata.name: Forbidden: may have at most \
             {MAX_NAME_LENGTH} characters: the Service feast-<name>-registry-rest fieldwise creates \
             must be a DNS-1035 label of at most 63 characters"
        )
    );
    Ok(())
}

/// A FeatureStore created under a CRD without the name rules (an older fieldwise, or the Feast
/// operator's CRD) keeps working through updates once the rules are installed: the rules judge
/// creates only, so its finalizer can still be removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_store_admitted_before_the_rules_can_still_be_updated() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&server, "names-legacy")?;
    let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(FEATURESTORE_CRD)?)?;
    let mut without_rules = crd.clone();
    let root = &mut without_rules["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    root.as_object_mut()
        .ok_or("the CRD has a schema")?
        .remove("x-kubernetes-validations");
    apply_crd(&c, &without_rules).await?;
    crate::target::await_established(&c, "featurestores.feast.dev").await?;

    let legacy = "l".repeat(MAX_NAME_LENGTH + 5);
    k.ok(&["create", "-f", &write("names-legacy", &legacy)?])
        .await?;
    apply_crd(&c, &crd).await?;
    // kube-apiserver serves a changed schema a moment after the update, and nothing about that
    // can be watched: a dry-run create of another long name shows when the rules are in force.
    let probe = write("names-legacy", &"p".repeat(MAX_NAME_LENGTH + 1))?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = k.run(&["create", "--dry-run=server", "-f", &probe]).await?;
        if r.code != 0 && r.stderr.contains("may have at most") {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                format!("the name rules were not in force after 30 s: {}", r.stderr).into(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let finalizer = r#"{"metadata":{"finalizers":["feast.dev/fieldwise-cleanup"]}}"#;
    k.ok(&[
        "patch",
        "featurestore",
        &legacy,
        "--type=merge",
        "-p",
        finalizer,
    ])
    .await?;
    k.ok(&[
        "patch",
        "featurestore",
        &legacy,
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":1}}"#,
    ])
    .await?;
    k.ok(&[
        "patch",
        "featurestore",
        &legacy,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers/0"}]"#,
    ])
    .await?;
    k.ok(&["delete", "featurestore", &legacy, "--wait=true"])
        .await?;
    Ok(())
}

/// The manifest of a FeatureStore called `name` in a file of the test's own.
fn write(test: &str, name: &str) -> Result<String, TestError> {
    let path = std::env::temp_dir().join(format!(
        "fieldwise-{test}-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, manifest(name))?;
    Ok(path.to_string_lossy().into_owned())
}

async fn apply_crd(c: &RawClient, crd: &Value) -> Result<(), TestError> {
    let r = c
        .apply(
            &format!("{CRD_PATH}/featurestores.feast.dev"),
            "names-test",
            true,
            crd,
        )
        .await?;
    assert!(r.status < 300, "{}", r.text);
    Ok(())
}
