//! Snapshot tests of `fieldwise render` for every Feast sample and every PrismCluster sample: the
//! exact objects fieldwise applies.
//!
//! A change to any rendered object fails here with a diff. After checking the new output against the spec,
//! accept it with `FIELDWISE_BLESS=1 cargo test --test render_snapshots`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use fieldwise::{
    featurestore::context::ImageDefaults,
    render::{GENERATED_PLACEHOLDER, Input, render},
};
use serde_json::Value;

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
    let samples = yaml_files(&corpus.join("samples"), "");
    assert!(
        samples.len() >= 25,
        "expected the 25 Feast samples, found {}",
        samples.len()
    );
    assert_snapshots(&samples, fixtures_for);
}

/// The PrismCluster samples with the Prometheus Operator and KEDA installed: the complete graph,
/// ServiceMonitor and ScaledObjects included.
#[test]
fn every_prism_cluster_sample_renders_as_its_snapshot() {
    let samples = yaml_files(Path::new("deploy/samples"), "prismcluster-");
    assert_eq!(
        samples.len(),
        4,
        "the four PrismCluster samples: {samples:?}"
    );
    assert_snapshots(&samples, |_| vec![PROMETHEUS_KEDA_CRDS]);
}

const PROMETHEUS_KEDA_CRDS: &str = "tests/fixtures/prometheus-keda-crds.yaml";

/// The `.yaml` files in `dir` whose names start with `prefix`, sorted.
fn yaml_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .filter(|path| file_name(path).starts_with(prefix))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 sample name")
}

/// Renders each sample (with its fixtures) and compares it with `tests/snapshots/<file name>`.
fn assert_snapshots(samples: &[PathBuf], fixtures: impl Fn(&str) -> Vec<&'static str>) {
    let bless = std::env::var_os("FIELDWISE_BLESS").is_some();
    let mut mismatched = Vec::new();
    for sample in samples {
        let file_name = file_name(sample);
        let mut inputs = vec![input(sample)];
        inputs.extend(
            fixtures(file_name)
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

/// `text` as a render input called `name`.
fn text_input(name: &str, text: &str) -> Input {
    Input {
        source_name: name.into(),
        text: text.into(),
    }
}

/// The rendered objects of `inputs`, parsed.
fn rendered_objects(inputs: &[Input]) -> Vec<Value> {
    let yaml = render(inputs, &ImageDefaults::default()).expect("renders");
    serde_saphyr::from_multiple(&yaml).expect("rendered YAML parses")
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

const PRISM_LOCAL: &str = "deploy/samples/prismcluster-local.yaml";

#[test]
fn generated_credentials_are_rendered_as_a_placeholder_not_a_password() {
    let first =
        render(&[input(Path::new(PRISM_LOCAL))], &ImageDefaults::default()).expect("renders");
    let second =
        render(&[input(Path::new(PRISM_LOCAL))], &ImageDefaults::default()).expect("renders");
    assert_eq!(first, second, "rendering is deterministic");
    let objects: Vec<Value> = serde_saphyr::from_multiple(&first).expect("YAML");
    let secret = find(&objects, "Secret", "minio-credentials").expect("the generated Secret");
    assert_eq!(secret["metadata"]["namespace"], "prism");
    assert_eq!(secret["data"]["username"], base64("prism"));
    assert_eq!(secret["data"]["password"], GENERATED_PLACEHOLDER);
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["name"], "prism-local",
        "owned like every child"
    );
}

#[test]
fn a_credentials_secret_in_the_files_is_used_as_it_is() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: minio-credentials\n  namespace: prism\nstringData:\n  username: admin\n  password: from-the-file\n";
    let objects = rendered_objects(&[
        input(Path::new(PRISM_LOCAL)),
        text_input("secret.yaml", secret),
    ]);
    let rendered = find(&objects, "Secret", "minio-credentials").expect("the credentials Secret");
    assert_eq!(rendered["data"]["username"], base64("admin"));
    assert_eq!(rendered["data"]["password"], base64("from-the-file"));
}

#[test]
fn every_pattern_runner_is_rendered_as_if_its_backends_were_ready() {
    let objects = rendered_objects(&[input(Path::new(PRISM_LOCAL))]);
    for (kind, runner) in [
        ("StatefulSet", "keyvalue-runner"),
        ("Deployment", "consumer-runner"),
        ("Deployment", "producer-runner"),
        ("StatefulSet", "mailbox-runner"),
    ] {
        assert!(find(&objects, kind, runner).is_some(), "{kind} {runner}");
    }
}

#[test]
fn without_the_crds_in_the_files_there_is_no_service_monitor_or_scaled_object() {
    let objects = rendered_objects(&[input(Path::new(
        "deploy/samples/prismcluster-keda-nats.yaml",
    ))]);
    assert!(find(&objects, "ScaledObject", "consumer-runner").is_none());
    assert!(find(&objects, "ServiceMonitor", "prism").is_none());
    assert!(find(&objects, "Deployment", "consumer-runner").is_some());
}

#[test]
fn a_second_prism_cluster_in_a_namespace_is_an_error_naming_the_first() {
    let cluster = |name: &str| {
        format!(
            "apiVersion: prism.io/v1alpha1\nkind: PrismCluster\nmetadata:\n  name: {name}\nspec: {{}}\n"
        )
    };
    let inputs = [
        text_input("first.yaml", &cluster("zeta")),
        text_input("second.yaml", &cluster("alpha")),
    ];
    let error = render(&inputs, &ImageDefaults::default()).expect_err("two in one namespace");
    let message = error.to_string();
    assert!(
        message.starts_with(
            "PrismCluster default/alpha: PrismCluster zeta already runs in this namespace"
        ),
        "{message}"
    );
}

#[test]
fn feature_stores_and_prism_clusters_render_in_document_order() {
    let mixed = "apiVersion: prism.io/v1alpha1\nkind: PrismCluster\nmetadata:\n  name: prism\nspec: {}\n---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: sample\nspec:\n  feastProject: my_project\n";
    let objects = rendered_objects(&[text_input("mixed.yaml", mixed)]);
    let owner_kinds: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["ownerReferences"][0]["kind"].as_str())
        .collect();
    let first_feature_store = owner_kinds
        .iter()
        .position(|kind| *kind == "FeatureStore")
        .expect("FeatureStore children");
    assert!(first_feature_store > 0, "{owner_kinds:?}");
    assert!(
        owner_kinds[..first_feature_store]
            .iter()
            .all(|kind| *kind == "PrismCluster")
            && owner_kinds[first_feature_store..]
                .iter()
                .all(|kind| *kind == "FeatureStore"),
        "{owner_kinds:?}"
    );
}

/// Every child name in every FeatureStore snapshot that is made from the FeatureStore's name (and
/// every pod volume so named) is among `names::derived_names`, with its kind: the list the CRD's
/// name limit and the status's name check are derived from misses no object fieldwise creates.
#[test]
fn every_derived_child_name_is_listed_with_its_kind() {
    use fieldwise::featurestore::names::derived_names;
    let mut unlisted = Vec::new();
    let mut checked = 0;
    for snapshot in yaml_files(Path::new("tests/snapshots"), "v1_featurestore") {
        let text = fs::read_to_string(&snapshot).expect("readable snapshot");
        let objects: Vec<Value> = serde_saphyr::from_multiple(&text).expect("snapshot parses");
        for object in &objects {
            let labels = &object["metadata"]["labels"];
            let owner = labels["app.kubernetes.io/instance"]
                .as_str()
                .unwrap_or_default();
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .or_else(|| labels["fieldwise.dev/owner-namespace"].as_str())
                .unwrap_or_default();
            let listed = derived_names(owner, namespace);
            let is_listed =
                |kind: &str, name: &str| listed.iter().any(|d| d.kind == kind && d.name == name);
            let kind = object["kind"].as_str().unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let mut names = vec![(kind, name)];
            let volumes = object
                .pointer("/spec/template/spec/volumes")
                .and_then(Value::as_array);
            for volume in volumes.into_iter().flatten() {
                names.push(("pod volume", volume["name"].as_str().unwrap_or_default()));
            }
            for (kind, name) in names {
                if !owner.is_empty() && name.contains(owner) {
                    checked += 1;
                    if !is_listed(kind, name) {
                        unlisted.push(format!("{}: {kind} {name}", file_name(&snapshot)));
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} names checked");
    assert!(
        unlisted.is_empty(),
        "not in derived_names:\n{}",
        unlisted.join("\n")
    );
}

/// `render --decode` shows the server Secret's feature_store.yaml in clear text (the user's
/// database settings merged in), every other document as `render` shows it.
#[test]
fn decode_shows_the_server_feature_store_yaml_in_clear_text() {
    use fieldwise::render::{DECODED_COMMENT, RenderOptions, render_with};
    let inputs = [
        input(Path::new("deploy/samples/featurestore-scaling-static.yaml")),
        input(Path::new("deploy/samples/feature-store-secrets.yaml")),
    ];
    let plain = render(&inputs, &ImageDefaults::default()).expect("renders");
    let decoded = render_with(
        &inputs,
        &ImageDefaults::default(),
        RenderOptions {
            decode_secrets: true,
        },
    )
    .expect("renders");
    let plain_docs: Vec<Value> = serde_saphyr::from_multiple(&plain).expect("parses");
    let decoded_docs: Vec<Value> = serde_saphyr::from_multiple(&decoded).expect("parses");
    assert_eq!(plain_docs.len(), decoded_docs.len());
    let mut secrets = 0;
    for (plain, decoded) in plain_docs.iter().zip(&decoded_docs) {
        if plain["kind"] != "Secret" {
            assert_eq!(plain, decoded);
            continue;
        }
        secrets += 1;
        assert!(decoded.get("data").is_none(), "{decoded}");
        let yaml = decoded["stringData"]["TMP_FEATURE_STORE_YAML_BASE64"]
            .as_str()
            .expect("the feature_store.yaml in clear text");
        let encoded = plain["data"]["TMP_FEATURE_STORE_YAML_BASE64"]
            .as_str()
            .expect("base64 in data");
        let once = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        let twice = base64::engine::general_purpose::STANDARD
            .decode(once)
            .expect("base64 of base64");
        assert_eq!(yaml, String::from_utf8(twice).expect("UTF-8"));
        assert!(yaml.starts_with("project: "), "{yaml}");
        assert!(yaml.contains("type: postgres"), "{yaml}");
    }
    assert_eq!(secrets, 1);
    assert_eq!(decoded.matches(DECODED_COMMENT).count(), 1);
    assert!(
        decoded.contains("TMP_FEATURE_STORE_YAML_BASE64: |\n    project: "),
        "{decoded}"
    );
}
