//! Randomized differential testing of server-side apply: the same sequence of applies and updates
//! runs on several targets and each step's result must be identical.
//!
//! Targets:
//! - [`run_on_oracle`]: `shared/tools/smd-oracle`, the structured-merge-diff library kube-apiserver
//!   uses (found through the `SMD_ORACLE` environment variable, see e2e/README.md);
//! - [`run_over_http`]: any API server through a `kube::Client`: the emulator, or a real
//!   kube-apiserver (the same function, another client);
//! - [`run_on_engine`]: the emulator's merge and ownership core ([`crate::ssa`]) called directly,
//!   for built-in kinds whose defaulting and validation would otherwise get in the way.
//!
//! A [`StepResult`] holds what is compared: the object without identity, managedFields or nulls
//! (list items sorted: the oracle's library version orders merged items differently), each
//! manager's operation and owned fields (FieldsV1 text), and the conflicts or other error.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

pub mod generate;

use crate::ssa::{
    ApplyError, ApplyOptions, TypeSchema, UpdateOptions, apply, decode_managed_fields, update,
};

/// One write of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Server-side apply of a partial configuration (no apiVersion, kind or name: runners add them).
    Apply { force: bool, config: Value },
    /// A whole-object update (PUT), without identity.
    Update { object: Value },
}

#[derive(Debug, Clone)]
pub struct Step {
    pub manager: String,
    pub op: Op,
}

/// Writes to one object, the first of which creates it (an apply).
#[derive(Debug, Clone, Default)]
pub struct Sequence {
    pub steps: Vec<Step>,
}

/// What one step left behind, in comparable form.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// `(manager, path)` of a conflict, in the order reported.
    pub conflicts: Vec<(String, String)>,
    /// Any other failure, as `code reason` (HTTP) or the oracle's text; empty on success.
    pub error: String,
    /// The object after the step.
    pub object: Value,
    /// `(manager, operation, fieldsV1)` of every managedFields entry.
    pub managers: BTreeSet<(String, String, String)>,
    /// The object kept nulls (structured-merge-diff leaves emptied containers as nulls; an API
    /// server decodes them away). Not compared: it tells where the oracle's model ends.
    pub nulls_left: bool,
    /// The object kept an empty `metadata.labels` or `annotations` map (an API server's ObjectMeta
    /// drops it). Not compared, like `nulls_left`.
    pub empty_meta_left: bool,
}

impl StepResult {
    fn new() -> Self {
        StepResult {
            conflicts: Vec::new(),
            error: String::new(),
            object: Value::Null,
            managers: BTreeSet::new(),
            nulls_left: false,
            empty_meta_left: false,
        }
    }

    /// The compared parts are equal. Conflicts are compared as a set: kube-apiserver lists them in
    /// Go map order, which is not stable.
    pub fn same(&self, other: &StepResult) -> bool {
        let sorted = |c: &[(String, String)]| {
            let mut c = c.to_vec();
            c.sort();
            c
        };
        sorted(&self.conflicts) == sorted(&other.conflicts)
            && self.error == other.error
            && self.object == other.object
            && self.managers == other.managers
    }
}

/// `metadata.labels` or `metadata.annotations` present and empty.
fn has_empty_meta(object: &Value) -> bool {
    ["labels", "annotations"].iter().any(|key| {
        object
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    })
}

/// An update body as an API server decodes it: no nulls, no empty ObjectMeta maps.
fn decoded(object: &Value) -> Value {
    let mut out = drop_nulls(object);
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
    }
    out
}

fn has_nulls(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().any(has_nulls),
        Value::Array(items) => items.iter().any(has_nulls),
        _ => false,
    }
}

/// A deterministic pseudo-random source (splitmix64): a failing seed replays exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random subset of `items`, in their order.
    pub fn subset<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        items.iter().filter(|_| self.chance(50)).cloned().collect()
    }
}

/// Removes null values at every level: kube-apiserver drops the nulls of non-nullable fields when
/// it decodes a custom resource, before server-side apply sees them.
pub fn drop_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

/// The object as compared: no identity, managedFields or nulls, list items sorted.
pub fn comparable(object: &Value) -> Value {
    // A root pruned to nothing is an empty object (structured-merge-diff leaves null).
    let mut out = match drop_nulls(object) {
        Value::Null => json!({}),
        other => other,
    };
    if let Some(map) = out.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            // ObjectMeta's empty maps are dropped by a server; compared as absent.
            meta.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
            for key in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
            ] {
                meta.remove(key);
            }
        }
        if map
            .get("metadata")
            .is_some_and(|m| m.as_object().is_some_and(Map::is_empty))
        {
            map.remove("metadata");
        }
    }
    sorted(&out)
}

/// Keys sorted at every level, list items sorted by their canonical text.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> =
                map.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(sorted).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        other => other.clone(),
    }
}

/// The managedFields rows of a served object.
pub fn manager_rows(object: &Value) -> BTreeSet<(String, String, String)> {
    decode_managed_fields(object)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.manager,
                e.operation.as_str().to_owned(),
                e.fields.to_fields_v1().to_string(),
            )
        })
        .collect()
}

/// Parses the oracle's conflict text (`conflict with "a": .x`, or `conflicts with "a":` followed by
/// `- .x` lines).
fn oracle_conflicts(error: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(rest) = error.strip_prefix("conflict with ") {
        if let Some((manager, path)) = rest.split_once(": ") {
            out.push((manager.trim_matches('"').to_owned(), path.to_owned()));
        }
        return out;
    }
    let mut manager = String::new();
    for line in error.lines() {
        if let Some(m) = line.strip_prefix("conflicts with ") {
            manager = m.trim_end_matches(':').trim_matches('"').to_owned();
        } else if let Some(path) = line.strip_prefix("- ") {
            out.push((manager.clone(), path.to_owned()));
        }
    }
    out
}

/// Runs `sequence` through the smd-oracle binary with the schema file `schema_path` (from
/// [`TypeSchema::to_smd_schema`]) and type `type_name`. With `custom`, update bodies lose their
/// nulls and empty ObjectMeta maps first, as kube-apiserver's decoding of custom resources does.
pub fn run_on_oracle(
    oracle: &Path,
    schema_path: &Path,
    type_name: &str,
    sequence: &Sequence,
    custom: bool,
) -> std::io::Result<Vec<StepResult>> {
    let steps: Vec<Value> = sequence
        .steps
        .iter()
        .map(|step| match &step.op {
            Op::Apply { force, config } => json!({
                "op": "apply", "manager": step.manager, "force": force, "config": config,
            }),
            Op::Update { object } => json!({
                "op": "update", "manager": step.manager,
                "object": if custom { decoded(object) } else { object.clone() },
            }),
        })
        .collect();
    let input = json!({"schema": schema_path, "type": type_name, "steps": steps});
    let mut child = Command::new(oracle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "smd-oracle failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let parsed: Value = serde_json::from_slice(&output.stdout)?;
    Ok(parsed["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(oracle_step)
        .collect())
}

fn oracle_step(step: &Value) -> StepResult {
    let error = step["error"].as_str().unwrap_or_default();
    let conflicts = oracle_conflicts(error);
    let managers = step["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_owned(),
                m["operation"].as_str().unwrap_or_default().to_owned(),
                m["fieldsV1"].to_string(),
            )
        })
        .collect();
    StepResult {
        error: if conflicts.is_empty() {
            error.to_owned()
        } else {
            String::new()
        },
        conflicts,
        object: comparable(&step["object"]),
        managers,
        nulls_left: has_nulls(&step["object"]),
        empty_meta_left: has_empty_meta(&step["object"]),
    }
}

/// The emulator's merge and ownership core, called directly (no HTTP, defaulting or validation).
pub fn run_on_engine(
    schema: &TypeSchema,
    api_version: &str,
    sequence: &Sequence,
) -> Vec<StepResult> {
    let mut live: Option<Value> = None;
    let mut results = Vec::new();
    for (i, step) in sequence.steps.iter().enumerate() {
        let now = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        let mut result = StepResult::new();
        let outcome = match &step.op {
            Op::Apply { force, config } => {
                let opts = ApplyOptions {
                    manager: step.manager.clone(),
                    force: *force,
                    api_version: api_version.to_owned(),
                    now,
                    ..ApplyOptions::default()
                };
                apply(schema, live.as_ref(), config, &opts)
            }
            Op::Update { object } => {
                let opts = UpdateOptions {
                    manager: step.manager.clone(),
                    api_version: api_version.to_owned(),
                    now,
                    ..UpdateOptions::default()
                };
                update(schema, live.as_ref(), object, &opts).map_err(ApplyError::Schema)
            }
        };
        match outcome {
            Ok(outcome) => live = Some(outcome.object),
            Err(ApplyError::Conflict(c)) => {
                result.conflicts = c
                    .conflicts
                    .iter()
                    .map(|c| (c.manager.manager.clone(), c.path.to_string()))
                    .collect();
            }
            Err(other) => result.error = other.to_string(),
        }
        let current = live.clone().unwrap_or_else(|| json!({}));
        result.nulls_left = has_nulls(&current);
        result.object = comparable(&current);
        result.managers = manager_rows(&current);
        results.push(result);
    }
    results
}

/// Where [`run_over_http`] writes: one object of one resource.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// The collection path, e.g. `/apis/example.com/v1/namespaces/default/widgets`.
    pub collection: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl HttpTarget {
    fn object_url(&self, manager: &str, force: Option<bool>) -> String {
        let mut url = format!("{}/{}?fieldManager={manager}", self.collection, self.name);
        if let Some(force) = force {
            url.push_str(&format!("&force={force}"));
        }
        url
    }

    /// `body` with this target's apiVersion, kind and name.
    fn identified(&self, body: &Value) -> Value {
        let mut out = json!({"apiVersion": self.api_version, "kind": self.kind});
        if let (Some(out), Some(body)) = (out.as_object_mut(), body.as_object()) {
            for (k, v) in body {
                out.insert(k.clone(), v.clone());
            }
        }
        let meta = out
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
        if let Some(Value::Object(meta)) = meta {
            meta.insert("name".into(), json!(self.name));
        }
        out
    }
}

/// A failure talking to the server (not an answer from it: those are results).
pub type HttpError = Box<dyn std::error::Error + Send + Sync>;

async fn send(
    client: &kube::Client,
    method: &str,
    url: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), HttpError> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(bytes)?;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let status = response.status().as_u16();
    let collected = http_body_util::BodyExt::collect(response.into_body()).await?;
    let body = serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null);
    Ok((status, body))
}

/// Runs `sequence` against a live API server: applies as `PATCH application/apply-patch+yaml`,
/// updates as `PUT`, and reads the object back after every step.
pub async fn run_over_http(
    client: &kube::Client,
    target: &HttpTarget,
    sequence: &Sequence,
) -> Result<Vec<StepResult>, HttpError> {
    let mut results = Vec::new();
    for step in &sequence.steps {
        let (status, body) = match &step.op {
            Op::Apply { force, config } => {
                let url = target.object_url(&step.manager, Some(*force));
                let body = target.identified(config);
                send(
                    client,
                    "PATCH",
                    &url,
                    "application/apply-patch+yaml",
                    Some(&body),
                )
                .await?
            }
            Op::Update { object } => {
                conditional_update(client, target, &step.manager, object).await?
            }
        };
        let mut result = StepResult::new();
        if status == 409 && body["reason"] == "Conflict" {
            result.conflicts = http_conflicts(&body);
        } else if status >= 300 {
            result.error = format!("{status} {}", body["reason"].as_str().unwrap_or_default());
        }
        let url = format!("{}/{}", target.collection, target.name);
        let (_, current) = send(client, "GET", &url, "application/json", None).await?;
        result.object = comparable(&current);
        result.managers = manager_rows(&current);
        results.push(result);
    }
    Ok(results)
}

/// A conditional update, as controllers send them (custom resources require it), read again and
/// retried while the object changes in between (a real cluster's own controllers write too).
async fn conditional_update(
    client: &kube::Client,
    target: &HttpTarget,
    manager: &str,
    object: &Value,
) -> Result<(u16, Value), HttpError> {
    let url = format!("{}/{}", target.collection, target.name);
    let mut attempts = 0;
    loop {
        let (_, live) = send(client, "GET", &url, "application/json", None).await?;
        let mut body = target.identified(object);
        if let Some(rv) = live.pointer("/metadata/resourceVersion") {
            body["metadata"]["resourceVersion"] = rv.clone();
        }
        let put_url = target.object_url(manager, None);
        let (status, answer) =
            send(client, "PUT", &put_url, "application/json", Some(&body)).await?;
        let modified = status == 409 && http_conflicts(&answer).is_empty();
        attempts += 1;
        if !modified || attempts == 5 {
            return Ok((status, answer));
        }
    }
}

/// `(manager, path)` of each `FieldManagerConflict` cause (`conflict with "m"` and, for Update
/// managers, ` using <apiVersion>`).
fn http_conflicts(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["reason"] == "FieldManagerConflict")
        .map(|c| {
            let message = c["message"].as_str().unwrap_or_default();
            let manager = message
                .strip_prefix("conflict with ")
                .unwrap_or(message)
                .split(" using ")
                .next()
                .unwrap_or_default()
                .split(" with subresource ")
                .next()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned();
            (manager, c["field"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_replay() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert!((0..1000).all(|_| a.below(3) < 3));
    }

    #[test]
    fn oracle_conflict_texts_parse() {
        assert_eq!(
            oracle_conflicts("conflict with \"alice\": .spec.replicas"),
            [("alice".to_owned(), ".spec.replicas".to_owned())]
        );
        assert_eq!(
            oracle_conflicts("conflicts with \"bob\":\n- .spec.a\n- .spec.b"),
            [
                ("bob".to_owned(), ".spec.a".to_owned()),
                ("bob".to_owned(), ".spec.b".to_owned())
            ]
        );
    }

    #[test]
    fn comparable_objects_lose_identity_and_nulls() {
        let object = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "n", "uid": "u", "managedFields": []},
            "spec": {"a": null, "l": [2, 1]}});
        assert_eq!(comparable(&object), json!({"spec": {"l": [1, 2]}}));
    }
}
