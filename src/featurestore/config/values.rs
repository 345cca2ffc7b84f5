//! Reading YAML out of Secrets and ConfigMaps, and the value conversions feature_store.yaml needs.

use std::{collections::HashMap, sync::Mutex};

use serde_json::{Map, Value};

use super::ConfigErrorKind;
use crate::featurestore::context::{GraphContext, SecretData};

/// The Secret called `name`, or [`ConfigErrorKind::SecretNotFound`].
pub(super) fn secret<'c>(
    context: &'c GraphContext,
    name: &str,
) -> Result<&'c SecretData, ConfigErrorKind> {
    context
        .secret(name)
        .map_err(|_| ConfigErrorKind::SecretNotFound {
            name: name.to_owned(),
        })
}

/// Parses one YAML document as the Feast operator's decoder (gopkg.in/yaml.v3) does, where a plain number with
/// a leading zero is octal. Parser errors are dropped on purpose: they quote the input, which may be secret.
pub(super) fn parse_yaml(text: &str) -> Option<Value> {
    if let Some(parsed) = lock_parsed().get(text) {
        return parsed.clone();
    }
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    let parsed = serde_saphyr::from_str_with_options::<Value>(text, options).ok();
    let mut memo = lock_parsed();
    if memo.len() >= PARSED_TEXTS_KEPT {
        memo.clear();
    }
    memo.insert(text.to_owned(), parsed.clone());
    parsed
}

/// How many distinct texts [`parse_yaml`] keeps parsed. Every FeatureStore reading a Secret parses the same
/// few texts on every reconcile (at 1000 FeatureStores that parse was ~5% of a cold-start reconcile's CPU); a
/// cluster with more distinct texts than this only loses the shortcut.
const PARSED_TEXTS_KEPT: usize = 256;

/// Texts [`parse_yaml`] parsed, with the result. Held like the Secret cache holds the same texts; never logged.
static PARSED: std::sync::LazyLock<Mutex<HashMap<String, Option<Value>>>> =
    std::sync::LazyLock::new(Mutex::default);

fn lock_parsed() -> std::sync::MutexGuard<'static, HashMap<String, Option<Value>>> {
    // A panic while holding the lock cannot leave the map half-updated in a way that matters: every entry is a
    // complete parse result.
    PARSED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Parses a YAML mapping the way the Feast operator reads parameters into a Go map: an empty or null document
/// is an empty map, anything but a mapping is invalid.
pub(super) fn parse_yaml_map(text: &str) -> Option<Map<String, Value>> {
    if text.trim().is_empty() {
        return Some(Map::new());
    }
    match parse_yaml(text)? {
        Value::Object(map) => Some(map),
        Value::Null => Some(Map::new()),
        _ => None,
    }
}

/// Which key of a Secret holds a store's parameters, and the field that chose it.
pub(super) struct SecretKey<'a> {
    pub key: &'a str,
    /// The `secretKeyName` field (its path in the FeatureStore) that chooses the key.
    pub field: &'static str,
    /// Whether `key` is the default because that field is unset.
    pub defaulted: bool,
}

/// The parameters stored under `key` of Secret `secret_name`, as a YAML mapping, with every key sorted.
pub(super) fn secret_map(
    context: &GraphContext,
    secret_name: &str,
    key: &SecretKey<'_>,
) -> Result<Map<String, Value>, ConfigErrorKind> {
    let SecretKey {
        key,
        field,
        defaulted,
    } = *key;
    let data = secret(context, secret_name)?;
    let text = data
        .get(key)
        .ok_or_else(|| ConfigErrorKind::MissingSecretKey {
            key: key.to_owned(),
            secret: secret_name.to_owned(),
            field: field.to_owned(),
            defaulted,
            keys: data.keys().cloned().collect(),
        })?;
    let map = parse_yaml_map(text).ok_or_else(|| ConfigErrorKind::InvalidSecretValue {
        key: key.to_owned(),
    })?;
    Ok(sort_map(map))
}

/// Rejects parameters whose `type` or `registry_type` names another store type than `store_type`.
pub(super) fn check_type_tags(
    params: &Map<String, Value>,
    store_type: &str,
    key: &str,
    secret_name: &str,
) -> Result<(), ConfigErrorKind> {
    for tag in ["type", "registry_type"] {
        match params.get(tag) {
            None => {}
            Some(Value::String(value)) if value == store_type => {}
            Some(value) => {
                return Err(ConfigErrorKind::ConflictingStoreType {
                    key: key.to_owned(),
                    secret: secret_name.to_owned(),
                    tag: tag.to_owned(),
                    value: describe_scalar(value),
                });
            }
        }
    }
    Ok(())
}

/// A scalar as Go's `%s`/`%v` would print it; collections are named, not printed, so nothing nested leaks.
fn describe_scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "<nil>".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Array(_) => "<sequence>".to_owned(),
        Value::Object(_) => "<mapping>".to_owned(),
    }
}

/// The Go type name `%T` prints for a value decoded from YAML (used in "must be a string, got T").
pub(super) fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Sorts mapping keys recursively, as gopkg.in/yaml.v3 does when it writes a Go map.
pub(super) fn sort_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(sort_map(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(sort_value).collect()),
        other => other,
    }
}

/// [`sort_value`] for a mapping.
pub(super) fn sort_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|left, right| left.0.cmp(&right.0));
    entries
        .into_iter()
        .map(|(key, value)| (key, sort_value(value)))
        .collect()
}

/// `"true"` and `"false"` become booleans, anything else stays a string: CRD string maps cannot hold booleans,
/// but Feast's strict boolean settings reject strings. Numbers are deliberately left alone (some targets are
/// strict strings).
pub(super) fn coerce(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        other => Value::String(other.to_owned()),
    }
}

/// Appends `extra` (sorted, coerced) to `section` without overwriting keys `section` already has.
pub(super) fn append_extra_config(
    section: &mut Map<String, Value>,
    extra: Option<&std::collections::BTreeMap<String, String>>,
) {
    for (key, value) in extra.into_iter().flatten() {
        if !section.contains_key(key) {
            section.insert(key.clone(), coerce(value));
        }
    }
}

/// Inserts `key: value` when `value` is present.
pub(super) fn put<T: Into<Value>>(section: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value {
        section.insert(key.to_owned(), value.into());
    }
}

/// `path.Join(mount_path, file)` as Go computes it: joined with `/`, then lexically cleaned.
pub(super) fn join_path(mount_path: &str, file: &str) -> String {
    let joined = format!("{mount_path}/{file}");
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (absolute, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_path_cleans_like_go() {
        assert_eq!(
            join_path("/data/online", "online_store.db"),
            "/data/online/online_store.db"
        );
        assert_eq!(join_path("/data/online/", "./x.db"), "/data/online/x.db");
        assert_eq!(join_path("/data", "../x.db"), "/x.db");
        assert_eq!(join_path("/", "x.db"), "/x.db");
    }

    #[test]
    fn yaml_maps_follow_go_decoding() {
        assert_eq!(parse_yaml_map(""), Some(Map::new()));
        assert_eq!(parse_yaml_map("~"), Some(Map::new()));
        assert_eq!(parse_yaml_map("just a string"), None);
        assert_eq!(parse_yaml_map("- a\n- b"), None);
        assert_eq!(parse_yaml_map("a: [unclosed"), None);
        let map =
            parse_yaml_map("port: 5432\nname: x\nflag: true\nratio: 1.5\n").expect("a mapping");
        assert_eq!(
            Value::Object(map),
            json!({"port": 5432, "name": "x", "flag": true, "ratio": 1.5})
        );
    }

    #[test]
    fn kept_parses_answer_as_a_fresh_parse_would() {
        let text = "host: db\nport: 0755\n";
        let first = parse_yaml(text);
        assert_eq!(
            first,
            Some(json!({"host": "db", "port": 493})),
            "octal as Go reads it"
        );
        assert_eq!(parse_yaml(text), first, "the kept parse");
        // More distinct texts than are kept: older ones are parsed again, the same way.
        for i in 0..=PARSED_TEXTS_KEPT {
            assert_eq!(parse_yaml(&format!("n: {i}")), Some(json!({"n": i})));
        }
        assert_eq!(parse_yaml(text), first);
        assert_eq!(parse_yaml("a: [unclosed"), None);
        assert_eq!(parse_yaml("a: [unclosed"), None, "a failure is kept as one");
    }

    #[test]
    fn coercion_only_touches_booleans() {
        assert_eq!(coerce("true"), json!(true));
        assert_eq!(coerce("false"), json!(false));
        assert_eq!(coerce("123"), json!("123"));
        assert_eq!(coerce("True"), json!("True"));
    }
}
