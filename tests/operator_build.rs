//! The operator image does not link the Kubernetes API emulator: built with the feature flags of
//! `deploy/Dockerfile`, fieldwise-e2e is not among the `fieldwise` package's dependencies. (That this
//! build compiles and runs is checked by `deploy/check-image-build`, which `.ci/run` runs.)

use std::path::Path;
use std::process::Command;

/// The feature flags of the `cargo build` in `deploy/Dockerfile`.
fn image_feature_flags() -> Vec<String> {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dockerfile.display()));
    let build = text
        .lines()
        .find(|line| line.trim_start().starts_with("cargo build"))
        .unwrap_or_else(|| panic!("no `cargo build` line in {}", dockerfile.display()));
    let words: Vec<&str> = build.split_whitespace().collect();
    let mut flags = Vec::new();
    for (index, word) in words.iter().enumerate() {
        match *word {
            "--no-default-features" | "--all-features" => flags.push((*word).to_owned()),
            "--features" | "-F" => {
                flags.push((*word).to_owned());
                flags.push(words.get(index + 1).copied().unwrap_or_default().to_owned());
            }
            _ if word.starts_with("--features=") => flags.push((*word).to_owned()),
            _ => {}
        }
    }
    flags
}

/// The packages the `fieldwise` package's normal (non-dev, non-build) dependency tree holds with
/// `flags`.
fn normal_dependencies(flags: &[String]) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--quiet", "--locked", "--package", "fieldwise"])
        .args(["--edges", "normal", "--prefix", "none", "--format", "{p}"])
        .args(flags)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree {flags:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_image_build_does_not_link_the_emulator() {
    let flags = image_feature_flags();
    assert!(
        flags.iter().any(|flag| flag == "--no-default-features"),
        "deploy/Dockerfile builds with {flags:?}: the default features link the emulator"
    );
    let default = normal_dependencies(&[]);
    assert!(
        default.iter().any(|package| package == "fieldwise-e2e"),
        "the default build has `fieldwise demo` and so the emulator: {default:?}"
    );
    let image = normal_dependencies(&flags);
    assert!(
        image.iter().any(|package| package == "fieldwise-apply"),
        "the tree was read: {image:?}"
    );
    assert!(
        !image.iter().any(|package| package == "fieldwise-e2e"),
        "the image links fieldwise-e2e: {image:?}"
    );
}

/// The image's build context holds only what the Dockerfile copies; cargo needs every workspace
/// member's manifest even for `--bin fieldwise`.
#[test]
fn the_image_build_copies_every_workspace_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml readable");
    let members_line = manifest
        .lines()
        .find(|line| line.starts_with("members = ["))
        .expect("Cargo.toml lists the workspace members on one line");
    let members: Vec<&str> = members_line
        .trim_start_matches("members = [")
        .trim_end_matches(']')
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| !member.is_empty())
        .collect();
    assert!(members.contains(&"api"), "{members:?}");
    let dockerfile =
        std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("Dockerfile readable");
    let missing: Vec<&&str> = members
        .iter()
        .filter(|member| {
            !dockerfile
                .lines()
                .any(|line| line == format!("COPY {member} {member}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/Dockerfile does not copy {missing:?}"
    );
}
