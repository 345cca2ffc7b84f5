//! Differential tests of `fieldwise_e2e::ssa` against the real structured-merge-diff library.
//!
//! Each case in `testdata/ssa/cases/` is a sequence of applies and updates; its golden in
//! `testdata/ssa/golden/` is what `e2e/tools/smd-oracle` (the library kube-apiserver uses)
//! answered for the same steps with the schema exported from our `TypeSchema`. Regenerate with
//! `e2e/tools/smd-goldens.sh` when the oracle is available.

use std::collections::BTreeSet;
use std::path::{Path as FsPath, PathBuf};

use fieldwise_e2e::ssa::{
    ApplyError, ApplyOptions, TypeSchema, UpdateOptions, WriteOutcome, apply,
    decode_managed_fields, update,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

fn testdata() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ssa")
}

fn cases() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let dir = testdata().join("cases");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".json")
            .to_string();
        let text = std::fs::read_to_string(entry.path()).expect("read case");
        out.push((name, serde_json::from_str(&text).expect("case is JSON")));
    }
    out
}

fn schema_of(case: &Value) -> TypeSchema {
    let schema = &case["schema"];
    if let Some(gvk) = schema["builtin"].as_str() {
        let parts: Vec<&str> = gvk.split('/').collect();
        let (group, version, kind) = match parts.as_slice() {
            [version, kind] => ("", *version, *kind),
            [group, version, kind] => (*group, *version, *kind),
            _ => panic!("bad builtin {gvk}"),
        };
        return TypeSchema::builtin(group, version, kind).expect("known builtin");
    }
    let props: JSONSchemaProps = serde_json::from_value(schema["crd"].clone()).expect("crd schema");
    TypeSchema::from_crd_schema(&props)
}

/// What one step produced, in the oracle's terms.
#[derive(Debug, PartialEq)]
struct StepResult {
    /// (manager, path) in message order: managers sorted, paths in field-set order.
    conflicts: Vec<(String, String)>,
    object: Value,
    managers: BTreeSet<(String, String, String)>,
}

fn normalize(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .filter(|(k, _)| k.as_str() != "managedFields")
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => {
            // The oracle's library (v4.1.2) orders merged list items differently from 1.32.
            let mut items: Vec<Value> = items.iter().map(normalize).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn strip_identity(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
        ] {
            meta.remove(key);
        }
        meta.remove("managedFields");
        if meta.is_empty() {
            out.as_object_mut().map(|m| m.remove("metadata"));
        }
    }
    normalize(&out)
}

fn manager_rows(object: &Value) -> BTreeSet<(String, String, String)> {
    decode_managed_fields(object)
        .expect("managedFields decode")
        .into_iter()
        .map(|e| {
            (
                e.manager,
                e.operation.as_str().to_string(),
                e.fields.to_fields_v1().to_string(),
            )
        })
        .collect()
}

/// Parses the oracle's conflict text (`conflict with "a": .x` or `conflicts with "a":\n- .x`).
fn oracle_conflicts(error: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(rest) = error.strip_prefix("conflict with ") {
        if let Some((manager, path)) = rest.split_once(": ") {
            out.push((manager.trim_matches('"').to_string(), path.to_string()));
        }
        return out;
    }
    let mut manager = String::new();
    for line in error.lines() {
        if let Some(m) = line.strip_prefix("conflicts with ") {
            manager = m.trim_end_matches(':').trim_matches('"').to_string();
        } else if let Some(path) = line.strip_prefix("- ") {
            out.push((manager.clone(), path.to_string()));
        }
    }
    out
}

fn oracle_result(golden: &Value) -> StepResult {
    let managers = golden["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            // Compared as text: the library's encoding order must match ours exactly.
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
                m["fieldsV1"].to_string(),
            )
        })
        .collect();
    StepResult {
        conflicts: oracle_conflicts(golden["error"].as_str().unwrap_or_default()),
        object: strip_identity(&golden["object"]),
        managers,
    }
}

/// Runs a case through our implementation.
fn run_case(schema: &TypeSchema, case: &Value) -> Vec<StepResult> {
    let mut live: Option<Value> = None;
    let mut results = Vec::new();
    for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
        let manager = step["manager"].as_str().expect("manager").to_string();
        let now = format!("2026-01-01T00:00:{i:02}Z");
        let mut conflicts = Vec::new();
        let outcome: Option<WriteOutcome> = match step["op"].as_str() {
            Some("apply") => {
                let opts = ApplyOptions {
                    manager,
                    force: step["force"].as_bool().unwrap_or(false),
                    api_version: "v1".into(),
                    now,
                    ..ApplyOptions::default()
                };
                match apply(schema, live.as_ref(), &step["config"], &opts) {
                    Ok(outcome) => Some(outcome),
                    Err(ApplyError::Conflict(c)) => {
                        conflicts = c
                            .conflicts
                            .iter()
                            .map(|c| (c.manager.manager.clone(), c.path.to_string()))
                            .collect();
                        None
                    }
                    Err(other) => panic!("step {i}: {other}"),
                }
            }
            Some("update") => {
                let opts = UpdateOptions {
                    manager,
                    api_version: "v1".into(),
                    now,
                    ..UpdateOptions::default()
                };
                Some(
                    update(schema, live.as_ref(), &step["object"], &opts)
                        .unwrap_or_else(|e| panic!("step {i}: {e}")),
                )
            }
            other => panic!("unknown op {other:?}"),
        };
        if let Some(outcome) = outcome {
            live = Some(outcome.object);
        }
        let current = live.clone().unwrap_or_else(|| json!({}));
        results.push(StepResult {
            conflicts,
            object: strip_identity(&current),
            managers: manager_rows(&current),
        });
    }
    results
}

#[test]
fn ssa_matches_structured_merge_diff_goldens() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, case) in cases() {
        let golden_path = testdata().join("golden").join(format!("{name}.json"));
        let golden: Value = match std::fs::read_to_string(&golden_path) {
            Ok(text) => serde_json::from_str(&text).expect("golden is JSON"),
            Err(_) => {
                failures.push(format!("{name}: no golden (run e2e/tools/smd-goldens.sh)"));
                continue;
            }
        };
        let mut schema = schema_of(&case);
        // The oracle starts from an empty object, not from the Go zero value of the type.
        schema.empty_object = json!({});
        let ours = run_case(&schema, &case);
        for (i, (mine, theirs)) in ours
            .iter()
            .zip(golden["steps"].as_array().expect("golden steps"))
            .enumerate()
        {
            let expected = oracle_result(theirs);
            checked += 1;
            if *mine != expected {
                failures.push(format!(
                    "{name} step {i}:\n  ours:   {:?}\n  oracle: {:?}",
                    mine, expected
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "no steps checked");
}

/// Regenerates the goldens: `SMD_ORACLE=/path/to/smd-oracle cargo test -p fieldwise-e2e --test
/// emulator -- --ignored ssa_oracle::regenerate_goldens` (see e2e/tools/smd-goldens.sh).
#[test]
#[ignore = "needs the smd-oracle binary (SMD_ORACLE)"]
fn regenerate_goldens() {
    let oracle = std::env::var("SMD_ORACLE").expect("SMD_ORACLE names the smd-oracle binary");
    let scratch = std::env::temp_dir().join(format!("ssa-goldens-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    for (name, case) in cases() {
        let schema = schema_of(&case);
        let schema_path = scratch.join(format!("{name}.schema.json"));
        std::fs::write(&schema_path, schema.to_smd_schema("root").to_string())
            .expect("write schema");
        let input = json!({ "schema": schema_path, "type": "root", "steps": case["steps"] });
        let mut child = std::process::Command::new(&oracle)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run oracle");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write input");
        let output = child.wait_with_output().expect("oracle output");
        assert!(output.status.success(), "oracle failed on {name}");
        let parsed: Value = serde_json::from_slice(&output.stdout).expect("oracle JSON");
        let text = serde_json::to_string_pretty(&parsed).expect("pretty") + "\n";
        std::fs::write(testdata().join("golden").join(format!("{name}.json")), text)
            .expect("write golden");
    }
}
