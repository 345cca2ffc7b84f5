//! Bounding `status.applied`. Feast copies the whole spec (with defaults) into the status; a huge
//! spec (thousands of env entries, a large volume list) copied again could push the object past the
//! API server's size limit, and then no status write would ever succeed. The copy is bounded: its
//! largest lists and maps go first, and a condition names what was left out.

use fieldwise_api::v1::FeatureStoreSpec;
use serde_json::Value;

/// The most `status.applied` may take, serialized as JSON. A full spec with every default is a few
/// KiB; this leaves the spec itself almost the whole of the API server's object limit (1.5 MiB).
pub const APPLIED_LIMIT: usize = 64 * 1024;

/// `status.applied` within [`APPLIED_LIMIT`]: the spec as given when it fits; else without its
/// largest lists and maps, with the JSON path and size of each one left out; `None` when even
/// that does not fit.
pub fn bounded_applied(applied: &FeatureStoreSpec) -> (Option<FeatureStoreSpec>, Vec<String>) {
    bounded(applied, APPLIED_LIMIT)
}

fn bounded(applied: &FeatureStoreSpec, limit: usize) -> (Option<FeatureStoreSpec>, Vec<String>) {
    let Ok(mut value) = serde_json::to_value(applied) else {
        return (None, vec!["spec".to_owned()]);
    };
    let mut size = json_size(&value);
    if size <= limit {
        return (Some(applied.clone()), Vec::new());
    }
    let mut left_out = Vec::new();
    while size > limit {
        let Some((path, removed)) = remove_largest_collection(&mut value) else {
            return (None, vec!["spec".to_owned()]);
        };
        left_out.push(format!(
            "spec.{} ({} KiB)",
            path.join("."),
            removed.div_ceil(1024)
        ));
        size = json_size(&value);
    }
    // Every list and map of the spec is optional, so what remains still reads as a spec.
    match serde_json::from_value(value) {
        Ok(trimmed) => (Some(trimmed), left_out),
        Err(_) => (None, vec!["spec".to_owned()]),
    }
}

fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

/// Removes the largest list, or map of plain values (labels, a node selector), anywhere in
/// `value`; its path and serialized size. Structure (objects holding objects) stays, so the
/// services and their switches survive.
fn remove_largest_collection(value: &mut Value) -> Option<(Vec<String>, usize)> {
    let (path, size) = largest_collection(value, &mut Vec::new())?;
    let (last, parents) = path.split_last()?;
    let parent = parents
        .iter()
        .try_fold(&mut *value, |v, key| v.get_mut(key.as_str()))?;
    parent.as_object_mut()?.remove(last)?;
    Some((path, size))
}

fn largest_collection(value: &Value, path: &mut Vec<String>) -> Option<(Vec<String>, usize)> {
    let Value::Object(fields) = value else {
        return None;
    };
    let mut best: Option<(Vec<String>, usize)> = None;
    for (key, child) in fields {
        path.push(key.clone());
        let candidate = match child {
            Value::Array(_) => Some((path.clone(), json_size(child))),
            Value::Object(map) if !map.values().any(|v| v.is_object() || v.is_array()) => {
                Some((path.clone(), json_size(child)))
            }
            Value::Object(_) => largest_collection(child, path),
            _ => None,
        };
        path.pop();
        if let Some(candidate) = candidate
            && best.as_ref().is_none_or(|(_, size)| candidate.1 > *size)
        {
            best = Some(candidate);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> FeatureStoreSpec {
        serde_json::from_value(value).expect("a valid spec")
    }

    #[test]
    fn a_spec_within_the_limit_is_copied_whole() {
        let applied =
            spec(json!({"feastProject": "p", "services": {"onlineStore": {"server": {}}}}));
        let (copy, left_out) = bounded_applied(&applied);
        assert_eq!(copy, Some(applied));
        assert!(left_out.is_empty());
    }

    #[test]
    fn the_largest_lists_go_first_and_are_named() {
        let env: Vec<Value> = (0..200)
            .map(|i| json!({"name": format!("VARIABLE_{i}"), "value": "x".repeat(40)}))
            .collect();
        let applied = spec(json!({"feastProject": "p", "services": {
            "onlineStore": {"server": {"env": env, "image": "feast:1"}},
            "registry": {"local": {"server": {"env": [{"name": "A", "value": "b"}]}}},
        }}));
        let (copy, left_out) = bounded(&applied, 2 * 1024);
        let copy = serde_json::to_value(copy.expect("a trimmed copy")).expect("json");
        assert_eq!(left_out.len(), 1, "{left_out:?}");
        assert!(
            left_out[0].starts_with("spec.services.onlineStore.server.env ("),
            "{left_out:?}"
        );
        assert_eq!(copy["feastProject"], "p");
        assert_eq!(
            copy["services"]["onlineStore"]["server"]["image"],
            "feast:1"
        );
        assert_eq!(
            copy["services"]["registry"]["local"]["server"]["env"][0]["name"],
            "A"
        );
        assert!(json_size(&copy) <= 2 * 1024);
    }

    #[test]
    fn a_spec_too_large_even_without_its_collections_is_left_out() {
        let applied = spec(json!({"feastProject": "p".repeat(4096)}));
        let (copy, left_out) = bounded(&applied, 1024);
        assert_eq!(copy, None);
        assert_eq!(left_out, ["spec"]);
    }
}
