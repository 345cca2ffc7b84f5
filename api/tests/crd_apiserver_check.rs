//! The generated CRDs pass kube-apiserver's own CRD validation (structural schema, defaults, CEL
//! compilation with cel-go and the CEL cost budget), run by `api/tools/crd-check`, a Go program built
//! on `k8s.io/apiextensions-apiserver`. Needs the Go toolchain (and the Go module proxy, or a module
//! cache holding the pinned modules); without `go` on PATH the test says so and passes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn go_available() -> bool {
    Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn build_checker() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/crd-check");
    let binary = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crd-check");
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&tool)
        .output()
        .expect("go build runs");
    assert!(
        output.status.success(),
        "building {}: {}",
        tool.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

fn check(binary: &Path, yaml: &str) -> (bool, String) {
    let mut child = Command::new(binary)
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
    let binary = build_checker();
    let (ok, output) = check(&binary, &fieldwise_api::crds_yaml());
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
    let (ok, output) = check(&binary, &too_costly);
    assert!(!ok && output.contains("exceeds budget"), "{output}");
    let uncompilable = fieldwise_api::crds_yaml().replace(
        "quantity(self).isGreaterThan(quantity('0'))",
        "quantity(self).sign() == 1",
    );
    let (ok, output) = check(&binary, &uncompilable);
    assert!(
        !ok && output.contains("found no matching overload for 'sign'"),
        "{output}"
    );
}
