//! Where the tests find the Feast operator's reference corpus (its FeatureStore CRD and samples).
//!
//! The corpus is not part of this repository. Every test that compares against it asks
//! [`feast_corpus`], so one setting, [`SETTING`], says where it is for all of them. This is the
//! one place in the crate that looks at the environment or the file system; only tests call it.

use std::path::{Path, PathBuf};

/// The environment variable naming the corpus directory (the one holding
/// `feast.dev_featurestores.yaml` and `samples/`). A relative value is taken from the repository
/// root, since every test binary runs in its own package's directory.
pub const SETTING: &str = "FIELDWISE_FEAST_REFERENCE";

/// The corpus directory when it exists. When it does not, outside CI this prints one line to the
/// test's stderr and returns `None`, and the caller skips what needs the corpus; under CI (the `CI`
/// environment variable set, as CI services do) it panics with the same reason, because a check
/// CI silently skips is a check nobody runs.
pub fn feast_corpus() -> Option<PathBuf> {
    let directory = configured_directory(std::env::var_os(SETTING).map(PathBuf::from));
    if directory.is_dir() {
        return Some(directory);
    }
    let reason = format!(
        "the Feast reference corpus is not at {}; set {SETTING}",
        directory.display()
    );
    if running_in_ci() {
        panic!("{reason} (required under CI)");
    }
    report_skip(&reason);
    None
}

/// The directory the setting names, or the default `<repository root>/../shared/reference/feast`.
fn configured_directory(setting: Option<PathBuf>) -> PathBuf {
    let repository_root = repository_root();
    match setting {
        Some(directory) if !directory.as_os_str().is_empty() => repository_root.join(directory),
        _ => repository_root
            .parent()
            .unwrap_or(&repository_root)
            .join("shared/reference/feast"),
    }
}

/// The workspace root: this crate lives in `<root>/api`.
fn repository_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

/// Writes straight to stderr rather than through `eprintln!`, which the test harness captures and
/// shows only for failing tests: a skip should be visible in a passing run.
fn report_skip(reason: &str) {
    use std::io::Write;
    // One write, so the line cannot interleave with the harness's own output.
    let line = format!("skipped: {reason}\n");
    // Nothing useful can be done when stderr is closed; the skip itself still happens.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_beside_the_repository() {
        let root = repository_root();
        assert!(root.join("api/Cargo.toml").is_file(), "{}", root.display());
        assert_eq!(
            configured_directory(None),
            root.parent().unwrap().join("shared/reference/feast")
        );
        assert_eq!(
            configured_directory(Some(PathBuf::new())),
            configured_directory(None),
            "an empty setting means the default"
        );
    }

    #[test]
    fn a_setting_is_taken_from_the_repository_root_unless_absolute() {
        let root = repository_root();
        assert_eq!(
            configured_directory(Some("corpus/feast".into())),
            root.join("corpus/feast")
        );
        assert_eq!(
            configured_directory(Some("/srv/feast".into())),
            PathBuf::from("/srv/feast")
        );
    }
}
