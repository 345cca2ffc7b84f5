//! Snapshot tests of `fieldwise render` for every Feast sample: the exact objects fieldwise applies.
//!
//! A change to any rendered object fails here with a diff. After checking the new output against the spec,
//! accept it with `FIELDWISE_BLESS=1 cargo test --test render_snapshots`.

use std::{fs, path::Path};

use fieldwise::featurestore::{
    context::ImageDefaults,
    render::{Input, render},
};

/// Extra cluster state some samples reference without shipping it.
fn fixtures_for(sample: &str) -> Vec<&'static str> {
    match sample {
        "v1_featurestore_lineage_server.yaml" | "v1_featurestore_openlineage_consumer.yaml" => {
            vec!["tests/fixtures/registry-db-secret.yaml"]
        }
        _ => Vec::new(),
    }
}

fn input(path: &Path) -> Input {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Input {
        source_name: path.display().to_string(),
        text,
    }
}

/// A Feast sample as render input, or `None` (the test is skipped) when the reference corpus is absent.
fn sample(file_name: &str) -> Option<Input> {
    let corpus = fieldwise_api::reference::feast_corpus()?;
    Some(input(&corpus.join("samples").join(file_name)))
}

#[test]
fn every_feast_sample_renders_as_its_snapshot() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let samples_dir = corpus.join("samples");
    let mut samples: Vec<_> = fs::read_dir(&samples_dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", samples_dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    samples.sort();
    assert!(
        samples.len() >= 25,
        "expected the 25 Feast samples, found {}",
        samples.len()
    );
    let bless = std::env::var_os("FIELDWISE_BLESS").is_some();
    let mut mismatched = Vec::new();
    for sample in &samples {
        let file_name = sample
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 sample name");
        let mut inputs = vec![input(sample)];
        inputs.extend(
            fixtures_for(file_name)
                .into_iter()
                .map(|fixture| input(Path::new(fixture))),
        );
        let rendered = render(&inputs, &ImageDefaults::default())
            .unwrap_or_else(|e| panic!("{file_name}: {e}"));
        let snapshot = Path::new("tests/snapshots").join(file_name);
        if bless {
            fs::write(&snapshot, &rendered).expect("writable snapshot");
            continue;
        }
        let expected = fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != rendered {
            mismatched.push(first_difference(file_name, &expected, &rendered));
        }
    }
    assert!(
        mismatched.is_empty(),
        "rendered objects differ from tests/snapshots (FIELDWISE_BLESS=1 to accept after review):\n{}",
        mismatched.join("\n")
    );
}

fn first_difference(name: &str, expected: &str, actual: &str) -> String {
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a);
    match line {
        Some(index) => format!(
            "{name}: line {}: expected {:?}, rendered {:?}",
            index + 1,
            expected.lines().nth(index).unwrap_or_default(),
            actual.lines().nth(index).unwrap_or_default()
        ),
        None => format!(
            "{name}: {} lines expected, {} rendered",
            expected.lines().count(),
            actual.lines().count()
        ),
    }
}

#[test]
fn rendering_is_deterministic() {
    let Some(sample) = sample("v1_featurestore_all_remote_servers.yaml") else {
        return;
    };
    let first = render(std::slice::from_ref(&sample), &ImageDefaults::default()).expect("renders");
    let second = render(&[sample], &ImageDefaults::default()).expect("renders");
    assert_eq!(first, second);
}

#[test]
fn a_missing_referenced_secret_is_an_error_naming_it() {
    let Some(sample) = sample("v1_featurestore_lineage_server.yaml") else {
        return;
    };
    let error =
        render(&[sample], &ImageDefaults::default()).expect_err("the sample lacks its Secret");
    assert!(
        error
            .to_string()
            .contains("secrets \"registry-db-secret\" not found"),
        "{error}"
    );
}

#[test]
fn an_invalid_feature_store_is_rejected_with_the_api_server_message() {
    let text = "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: bad\nspec:\n  feastProject: my_project\n  replicas: 0\n";
    let error = render(
        &[Input {
            source_name: "bad.yaml".into(),
            text: text.into(),
        }],
        &ImageDefaults::default(),
    )
    .expect_err("replicas 0 is invalid");
    assert!(
        error
            .to_string()
            .contains("spec.replicas: Invalid value: 0"),
        "{error}"
    );
}
