//! The generated CRDs pass kube-apiserver's own CRD validation (structural schema, defaults, CEL
//! compilation with cel-go and the CEL cost budget), and kube-apiserver's custom resource validation
//! gives every invalid PrismCluster of `prism_cases` the message `fieldwise validate` prints; both run
//! by `api/tools/crd-check`, a Go program built on `k8s.io/apiextensions-apiserver`. Needs the Go
//! toolchain (and the Go module proxy, or a module cache holding the pinned modules); without `go` on
//! PATH the tests say so and pass.

mod prism_cases;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The checker, built once per test binary (the tests run in parallel).
fn checker() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_checker)
}

fn build_checker() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/crd-check");
    let binary = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crd-check");
    // No VCS stamping: the tool is built inside this repository's work tree, whose git metadata
    // may be a worktree or absent.
    let output = Command::new("go")
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&tool)
        .output()
        .expect("go build runs");
    assert!(
        output.status.success(),
        "building {} (needs the Go module proxy or a module cache with go.sum's modules): {}",
        tool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

fn check(binary: &Path, yaml: &str) -> (bool, String) {
    run(Command::new(binary), yaml)
}

fn run(mut command: Command, yaml: &str) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crd-check starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(yaml.as_bytes())
        .expect("crd-check reads the CRDs");
    let output = child.wait_with_output().expect("crd-check finishes");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn every_generated_crd_passes_kube_apiserver_crd_validation() {
    if !go_available() {
        eprintln!("skipped: no `go` on PATH to build api/tools/crd-check");
        return;
    }
    let binary = checker();
    let (ok, output) = check(binary, &fieldwise_api::crds_yaml());
    assert!(ok, "kube-apiserver would refuse the CRDs:\n{output}");
    for crd in fieldwise_api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        assert!(
            output.lines().any(|line| line == format!("{name}: valid")),
            "{output}"
        );
    }
    // The check can fail: a rule over an unbounded list is over the cost budget, and a Kubernetes
    // CEL function called the way only the Rust interpreter accepts does not compile.
    let too_costly: String = fieldwise_api::crds_yaml()
        .lines()
        .filter(|line| !matches!(line.trim(), "maxItems: 64" | "maxLength: 63"))
        .map(|line| format!("{line}\n"))
        .collect();
    let (ok, output) = check(binary, &too_costly);
    assert!(!ok && output.contains("exceeds budget"), "{output}");
    let uncompilable = fieldwise_api::crds_yaml().replace(
        "quantity(self).isGreaterThan(quantity('0'))",
        "quantity(self).sign() == 1",
    );
    let (ok, output) = check(binary, &uncompilable);
    assert!(
        !ok && output.contains("found no matching overload for 'sign'"),
        "{output}"
    );
}

#[test]
fn kube_apiserver_gives_every_invalid_prism_cluster_the_message_fieldwise_validate_prints() {
    if !go_available() {
        eprintln!("skipped: no `go` on PATH to build api/tools/crd-check");
        return;
    }
    let crd = fieldwise_api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == "PrismCluster")
        .expect("the PrismCluster CRD");
    let crd_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("prismclusters.prism.io.yaml");
    std::fs::write(&crd_file, fieldwise_api::crd_yaml(&crd)).expect("CRD written");
    let cases = prism_cases::cases();
    let input: String = cases
        .iter()
        .map(|case| format!("---\n{}", prism_cases::manifest(&case.spec)))
        .collect();
    let mut command = Command::new(checker());
    command.arg("--objects").arg(&crd_file);
    let (ok, output) = run(command, &input);
    assert!(ok, "{output}");
    let verdicts: Vec<serde_json::Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "{output}");
    let mut failures = Vec::new();
    for (case, verdict) in cases.iter().zip(&verdicts) {
        let expected = format!("{}{}", prism_cases::PREFIX, case.expected);
        let judged = verdict["message"].as_str().unwrap_or_default();
        let offline = fieldwise_api::validate::validate_prism_cluster(
            &serde_saphyr::from_str(&prism_cases::manifest(&case.spec)).expect("case parses"),
        )
        .err()
        .map(|r| r.message)
        .unwrap_or_default();
        if judged != expected || offline != expected {
            failures.push(format!(
                "{}:\n  expected:       {expected}\n  kube-apiserver: {judged}\n  validate:       {offline}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} case(s) differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Accepted objects get an empty message: the samples.
    let samples = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/samples/prismcluster-local.yaml"),
    )
    .expect("sample");
    let mut command = Command::new(checker());
    command.arg("--objects").arg(&crd_file);
    let (ok, output) = run(command, &samples);
    assert!(ok, "{output}");
    assert_eq!(output.trim(), r#"{"message":"","name":"prism-local"}"#);
}

/// kube-apiserver's custom resource validation refuses FeatureStore names whose children's names
/// would be invalid, with the message `fieldwise validate` prints, and accepts the longest allowed.
#[test]
fn kube_apiserver_refuses_feature_store_names_as_fieldwise_validate_does() {
    if !go_available() {
        eprintln!("skipped: no `go` on PATH to build api/tools/crd-check");
        return;
    }
    let crd = fieldwise_api::crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == "FeatureStore")
        .expect("the FeatureStore CRD");
    let crd_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("featurestores.feast.dev.yaml");
    std::fs::write(&crd_file, fieldwise_api::crd_yaml(&crd)).expect("CRD written");
    let max = fieldwise_api::v1::MAX_NAME_LENGTH;
    let names = ["a".repeat(max + 1), "a".repeat(max), "my.store".to_owned()];
    let manifest = |name: &str| {
        format!(
            "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: {name}\n  namespace: ns\nspec:\n  feastProject: p\n"
        )
    };
    let input: String = names
        .iter()
        .map(|n| format!("---\n{}", manifest(n)))
        .collect();
    let mut command = Command::new(checker());
    command.arg("--objects").arg(&crd_file);
    let (ok, output) = run(command, &input);
    assert!(ok, "{output}");
    let judged: Vec<String> = output
        .lines()
        .map(|line| {
            let verdict: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            verdict["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let offline: Vec<String> = names
        .iter()
        .map(|name| {
            let object = serde_saphyr::from_str(&manifest(name)).expect("manifest parses");
            fieldwise_api::validate::validate_feature_store(&object)
                .err()
                .map(|r| r.message)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(judged, offline);
    assert_eq!(
        judged[0],
        format!(
            "FeatureStore.feast.dev \"{}\" is invalid: metadata.name: Forbidden: may have at most 43 \
             characters: the Service feast-<name>-registry-rest fieldwise creates must be a DNS-1035 \
             label of at most 63 characters",
            names[0]
        )
    );
    assert_eq!(judged[1], "");
    assert!(
        judged[2].contains("metadata.name: Forbidden: must not contain '.'"),
        "{}",
        judged[2]
    );
}
