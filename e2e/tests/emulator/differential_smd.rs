//! Randomized differential tests of server-side apply against structured-merge-diff, the library
//! kube-apiserver uses (`shared/tools/smd-oracle`): at least 500 random sequences of applies and
//! updates on a custom resource (through the emulator's HTTP API) and on a Deployment (through the
//! emulator's merge and ownership core), every step identical: object, managedFields, conflicts.
//!
//! The oracle is found through `SMD_ORACLE` (the path of the binary that
//! `shared/tools/smd-oracle/build.sh` builds; see e2e/README.md). Without it the tests pass with one
//! `SKIPPED` line, except in CI (`CI=true`), where they fail. `DIFF_SEED` replays another seed.

use std::path::{Path, PathBuf};

use fieldwise_e2e::differential::generate::{
    deployment_sequence, widget_crd, widget_schema, widget_sequence,
};
use fieldwise_e2e::differential::{
    HttpTarget, Rng, Sequence, StepResult, run_on_engine, run_on_oracle, run_over_http,
};
use fieldwise_e2e::ssa::TypeSchema;
use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, Options};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::json;

/// Sequences per test and kind (the floor is 500).
const SEQUENCES: u64 = 500;

/// The oracle binary, or `None` (after one SKIPPED line) when it is not configured outside CI.
fn oracle() -> Option<PathBuf> {
    match std::env::var_os("SMD_ORACLE").map(PathBuf::from) {
        Some(path) if path.is_file() => Some(path),
        other => {
            let why = match other {
                Some(path) => format!("SMD_ORACLE={} is not a file", path.display()),
                None => "SMD_ORACLE is not set".to_owned(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{why}: CI must build shared/tools/smd-oracle and set SMD_ORACLE"
            );
            eprintln!(
                "SKIPPED: {why}; build shared/tools/smd-oracle (build.sh OUT) and set SMD_ORACLE=OUT to run the structured-merge-diff differential tests"
            );
            None
        }
    }
}

fn seed() -> u64 {
    std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0021)
}

/// Writes the smd schema of `schema` for the oracle.
fn schema_file(schema: &TypeSchema, name: &str) -> Result<PathBuf, TestError> {
    let path = std::env::temp_dir().join(format!("smd-{name}-{}.json", std::process::id()));
    std::fs::write(&path, schema.to_smd_schema("root").to_string())?;
    Ok(path)
}

/// How many leading steps the oracle models: up to where an API server layers more on top of
/// structured-merge-diff. A step after which the library keeps nulls (a container emptied by
/// pruning) is the server's own: it decodes them away, or for a custom resource refuses them in
/// validation. After a step that left no managedFields, the server adds a `before-first-apply`
/// entry on the next apply and tracks no updates; after one that left an empty `metadata.labels`
/// (or annotations), the server has dropped it (ObjectMeta is a Go struct). (Those layers are tested against a real server
/// in `differential_real` and `conformance_nulls`.)
fn modelled_steps(ours: &[StepResult], oracle: &[StepResult]) -> usize {
    for (i, (a, b)) in ours.iter().zip(oracle).enumerate() {
        if b.nulls_left {
            return i;
        }
        if a.managers.is_empty() || b.empty_meta_left {
            return i + 1;
        }
    }
    ours.len().min(oracle.len())
}

/// The first differing step of one sequence, described for the failure message.
fn first_difference(
    index: u64,
    sequence: &Sequence,
    ours: &[StepResult],
    oracle: &[StepResult],
    compared: &mut usize,
) -> Option<String> {
    if ours.len() != oracle.len() {
        return Some(format!(
            "sequence {index}: {} results against {}",
            ours.len(),
            oracle.len()
        ));
    }
    let modelled = modelled_steps(ours, oracle);
    *compared += modelled;
    let step = (0..modelled).find(|&i| !ours[i].same(&oracle[i]))?;
    Some(format!(
        "sequence {index} differs at step {step}\n  steps:  {:?}\n  ours:   {:?}\n  oracle: {:?}",
        sequence.steps, ours[step], oracle[step]
    ))
}

fn report(differences: &[String], seed: u64, compared: usize) {
    assert!(
        differences.is_empty(),
        "{} of {SEQUENCES} sequences differ (seed {seed}); first ones:\n{}",
        differences.len(),
        differences
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Most steps must be inside the oracle's model, or the test proves little.
    assert!(
        compared >= SEQUENCES as usize * 2,
        "only {compared} steps compared in {SEQUENCES} sequences"
    );
    eprintln!("{SEQUENCES} sequences, {compared} steps identical (seed {seed})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_sequences_match_structured_merge_diff() -> Result<(), TestError> {
    let Some(oracle) = oracle() else {
        return Ok(());
    };
    let emu = Emulator::start(Options::default()).await?;
    let raw = RawClient::new(&emu)?;
    let crd = raw
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd(),
        )
        .await?;
    assert_eq!(crd.status, 201, "{}", crd.text);
    let client = emu.client()?;
    let props: JSONSchemaProps = serde_json::from_value(widget_schema())?;
    let mut schema = TypeSchema::from_crd_schema(&props);
    schema.empty_object = json!({});
    let schema_path = schema_file(&schema, "widget")?;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut differences = Vec::new();
    let mut compared = 0;
    for index in 0..SEQUENCES {
        let sequence = widget_sequence(&mut rng);
        let target = HttpTarget {
            collection: "/apis/example.com/v1/namespaces/default/widgets".into(),
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            name: format!("w{index}"),
        };
        let ours = run_over_http(&client, &target, &sequence).await?;
        let theirs = tokio::task::block_in_place(|| {
            run_on_oracle(&oracle, &schema_path, "root", &sequence, true)
        })?;
        differences.extend(first_difference(
            index,
            &sequence,
            &ours,
            &theirs,
            &mut compared,
        ));
    }
    report(&differences, seed, compared);
    Ok(())
}

#[test]
fn deployment_sequences_match_structured_merge_diff() -> Result<(), TestError> {
    let Some(oracle) = oracle() else {
        return Ok(());
    };
    let Some(mut schema) = TypeSchema::builtin("apps", "v1", "Deployment") else {
        return Err("no Deployment schema".into());
    };
    schema.empty_object = json!({});
    let schema_path: &Path = &schema_file(&schema, "deployment")?;
    let seed = seed() ^ 0xd3;
    let mut rng = Rng::new(seed);
    let mut differences = Vec::new();
    let mut compared = 0;
    for index in 0..SEQUENCES {
        let sequence = deployment_sequence(&mut rng);
        let ours = run_on_engine(&schema, "apps/v1", &sequence);
        let theirs = run_on_oracle(&oracle, schema_path, "root", &sequence, false)?;
        differences.extend(first_difference(
            index,
            &sequence,
            &ours,
            &theirs,
            &mut compared,
        ));
    }
    report(&differences, seed, compared);
    Ok(())
}
