//! Schema-free reading of `managedFields` (FieldsV1 trees, `docs/ssa-semantics.md` §1.2–1.5).
//!
//! The engine never has the OpenAPI schema of what it applies, yet must know whether the field
//! set it is about to apply equals the set its manager already owns. It walks the desired body
//! alongside the FieldsV1 tree, letting the tree tell it what the schema decided:
//! a leaf `{}` under a non-empty value means the server treats the value as atomic; `k:{..}`
//! children mean a list keyed by those fields; `v:<json>` children mean a set.

use serde_json::{Map, Value};

/// Metadata fields the server strips from every applier's field set (§1.2).
const STRIPPED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// The FieldsV1 tree of the `Apply` entry of `manager` for `subresource` (`None` = main
/// resource) in a live object, if there is one.
pub fn apply_entry<'a>(
    live: &'a Value,
    manager: &str,
    subresource: Option<&str>,
) -> Option<&'a Map<String, Value>> {
    managed_entries(live)
        .find(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
                && e.get("subresource")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    == subresource
        })
        .and_then(|e| e.get("fieldsV1"))
        .and_then(Value::as_object)
}

/// The value at `path` (a key per level), without `Value::pointer`'s allocation of every
/// token: the engine reads a few fixed paths of every object on every reconcile.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// Every managedFields entry of a live object.
pub fn managed_entries(live: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    at(live, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// Whether the FieldsV1 tree owns the (struct-field) path, e.g. `["spec", "replicas"]`.
pub fn owns_path(fields: &Map<String, Value>, path: &[&str]) -> bool {
    let mut node = fields;
    for part in path {
        match node.get(&format!("f:{part}")).and_then(Value::as_object) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// The part of an apply body the server turns into a field set: without `apiVersion`, `kind`
/// and the stripped metadata fields. `metadata` disappears when nothing is left in it.
pub fn ownable_part(body: &Value) -> Value {
    let mut out = body.as_object().cloned().unwrap_or_default();
    out.remove("apiVersion");
    out.remove("kind");
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        for key in STRIPPED_METADATA {
            meta.remove(*key);
        }
        if meta.is_empty() {
            out.remove("metadata");
        }
    }
    Value::Object(out)
}

/// True when applying `desired` would change nothing: every value in it equals the live value
/// and the FieldsV1 tree `ours` (our manager's entry) covers exactly the field set of
/// `desired` — nothing more (a field pending removal) and nothing less (a field another
/// manager took). `desired` must already be the [`ownable_part`] of the body.
pub fn in_sync(desired: &Value, ours: Option<&Map<String, Value>>, live: &Value) -> bool {
    match (desired.as_object(), ours) {
        (Some(d), Some(node)) => struct_in_sync(d, node, Some(live)),
        // No entry at all: only an empty field set would be in sync, and we never send one.
        _ => false,
    }
}

/// [`in_sync`] for a whole apply body, without copying it into its [`ownable_part`] first (this
/// runs for every desired object of every reconcile).
pub fn body_in_sync(body: &Value, ours: Option<&Map<String, Value>>, live: &Value) -> bool {
    let (Some(body), Some(node)) = (body.as_object(), ours) else {
        return false;
    };
    let keep_metadata = |field: &str| !STRIPPED_METADATA.contains(&field);
    let metadata_left = body
        .get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|meta| meta.keys().any(|k| keep_metadata(k)));
    let keep_top = |field: &str| {
        field != "apiVersion" && field != "kind" && (field != "metadata" || metadata_left)
    };
    fields_in_sync(
        body,
        keep_top,
        node,
        Some(live),
        |field, value, sub, live| {
            match (field, value) {
                ("metadata", Value::Object(meta)) if !sub.is_empty() => {
                    fields_in_sync(meta, keep_metadata, sub, live, |_, value, sub, live| {
                        value_in_sync(value, sub, live)
                    })
                }
                ("metadata", Value::Object(meta)) => {
                    // Owned as one leaf: compared whole, as ownable_part would leave it.
                    let kept: Map<String, Value> = meta
                        .iter()
                        .filter(|(k, _)| keep_metadata(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    live == Some(&Value::Object(kept))
                }
                _ => value_in_sync(value, sub, live),
            }
        },
    )
}

fn is_leaf(node: &Map<String, Value>) -> bool {
    node.keys().all(|k| k == ".")
}

fn child<'a>(node: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    node.get(key).and_then(Value::as_object)
}

/// The `f:<field>` child of a FieldsV1 node, without allocating the key for the usual short names.
fn field_child<'a>(node: &'a Map<String, Value>, field: &str) -> Option<&'a Map<String, Value>> {
    let mut buffer = [0u8; 64];
    let len = field.len() + 2;
    if len > buffer.len() {
        return child(node, &format!("f:{field}"));
    }
    buffer[..2].copy_from_slice(b"f:");
    buffer[2..len].copy_from_slice(field.as_bytes());
    // "f:" followed by a valid str is valid UTF-8, so this never falls back.
    match std::str::from_utf8(&buffer[..len]) {
        Ok(key) => child(node, key),
        Err(_) => child(node, &format!("f:{field}")),
    }
}

fn value_in_sync(desired: &Value, node: &Map<String, Value>, live: Option<&Value>) -> bool {
    match desired {
        Value::Null => is_leaf(node) && live.is_none_or(Value::is_null),
        Value::Object(d) if d.is_empty() => node.is_empty() && live.is_some_and(Value::is_object),
        // An atomic map or struct (e.g. a LabelSelector): owned as one leaf, replaced whole.
        Value::Object(_) if node.is_empty() => {
            live.is_some_and(|live| same_ignoring_nulls(live, desired))
        }
        Value::Object(d) => struct_in_sync(d, node, live),
        Value::Array(items) => list_in_sync(items, node, live),
        scalar => node.is_empty() && live == Some(scalar),
    }
}

/// Whether two values of an atomic field are the same object, where a null field and an absent
/// one are the same: kube-apiserver keeps the `null` of an unset Go struct field inside atomic
/// values (a StatefulSet claim template's `metadata.creationTimestamp`), and an apply body cannot
/// ask for it either way.
fn same_ignoring_nulls(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let present =
                |map: &Map<String, Value>| map.iter().filter(|(_, v)| !v.is_null()).count();
            present(l) == present(d)
                && d.iter().all(|(k, dv)| match l.get(k) {
                    Some(lv) => same_ignoring_nulls(lv, dv),
                    None => dv.is_null(),
                })
        }
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(l, d)| same_ignoring_nulls(l, d))
        }
        (l, d) => l == d,
    }
}

fn struct_in_sync(
    desired: &Map<String, Value>,
    node: &Map<String, Value>,
    live: Option<&Value>,
) -> bool {
    fields_in_sync(
        desired,
        |_| true,
        node,
        live,
        |_, value, sub, live| value_in_sync(value, sub, live),
    )
}

/// The fields of `desired` that `keep` accepts against the FieldsV1 node: exactly the owned ones,
/// each in sync by `compare` (field, desired value, its node, live value).
fn fields_in_sync(
    desired: &Map<String, Value>,
    keep: impl Fn(&str) -> bool,
    node: &Map<String, Value>,
    live: Option<&Value>,
    compare: impl Fn(&str, &Value, &Map<String, Value>, Option<&Value>) -> bool,
) -> bool {
    let Some(live) = live.and_then(Value::as_object) else {
        return false;
    };
    // "nothing more": every owned child must still be in the desired body.
    let owned_children_match =
        node.keys()
            .filter(|k| *k != ".")
            .all(|k| match k.strip_prefix("f:") {
                Some(field) => keep(field) && desired.contains_key(field),
                None => false,
            });
    // "nothing less" and values equal, recursively.
    owned_children_match
        && desired
            .iter()
            .filter(|(field, _)| keep(field))
            .all(|(field, value)| match field_child(node, field) {
                Some(sub) => compare(field, value, sub, live.get(field)),
                None => false,
            })
}

fn list_in_sync(items: &[Value], node: &Map<String, Value>, live: Option<&Value>) -> bool {
    let live_items = live.and_then(Value::as_array);
    if is_leaf(node) {
        // Atomic list (or an empty granular one, which the server omits): compared whole.
        return match live_items {
            Some(live_items) => {
                live_items.len() == items.len()
                    && live_items
                        .iter()
                        .zip(items)
                        .all(|(l, d)| same_ignoring_nulls(l, d))
            }
            None => items.is_empty() && (live.is_none() || live.is_some_and(Value::is_null)),
        };
    }
    let children: Vec<&String> = node.keys().filter(|k| *k != ".").collect();
    let Some(live_items) = live_items else {
        return false;
    };
    if children.iter().all(|k| k.starts_with("k:")) {
        keyed_list_in_sync(items, node, &children, live_items)
    } else if children.iter().all(|k| k.starts_with("v:")) {
        set_in_sync(items, &children, live_items)
    } else {
        // Index-keyed (`i:`) or mixed trees: too rare to model; apply instead of guessing.
        false
    }
}

/// Parses a `k:{...}` path element into its key fields.
fn parse_key(element: &str) -> Option<Map<String, Value>> {
    serde_json::from_str::<Value>(element.strip_prefix("k:")?)
        .ok()?
        .as_object()
        .cloned()
}

/// Whether a desired list item is the one a `k:` element names. Key fields missing from the
/// item are accepted (the server fills defaulted keys, e.g. a port's `protocol: TCP`), but at
/// least one key field must be present and every present one must be equal.
fn item_matches_key(item: &Map<String, Value>, key: &Map<String, Value>) -> bool {
    let mut present = 0;
    for (field, value) in key {
        match item.get(field) {
            Some(v) if v == value => present += 1,
            Some(_) => return false,
            None => {}
        }
    }
    present > 0
}

/// The live item whose key fields all equal the key.
fn live_item<'a>(live_items: &'a [Value], key: &Map<String, Value>) -> Option<&'a Value> {
    live_items.iter().find(|item| {
        key.iter()
            .all(|(field, value)| item.get(field) == Some(value))
    })
}

fn keyed_list_in_sync(
    items: &[Value],
    node: &Map<String, Value>,
    children: &[&String],
    live_items: &[Value],
) -> bool {
    if items.len() != children.len() {
        return false;
    }
    let keys: Vec<(&String, Map<String, Value>)> = children
        .iter()
        .filter_map(|c| parse_key(c).map(|k| (*c, k)))
        .collect();
    if keys.len() != children.len() {
        return false;
    }
    let mut used = vec![false; keys.len()];
    for item in items {
        let Some(item) = item.as_object() else {
            return false;
        };
        let mut matches = keys
            .iter()
            .enumerate()
            .filter(|(_, (_, key))| item_matches_key(item, key));
        let (Some((index, (element, key))), None) = (matches.next(), matches.next()) else {
            // No owned element for this item, or an ambiguous one.
            return false;
        };
        if used[index] {
            return false;
        }
        used[index] = true;
        let Some(sub) = child(node, element) else {
            return false;
        };
        let live = live_item(live_items, key);
        let item_in_sync = if sub.is_empty() {
            // An atomic element, owned whole under its key: kube-apiserver records an
            // OwnerReference (`+structType=atomic`) as `k:{"uid":…}: {}`.
            let whole = Value::Object(item.clone());
            live.is_some_and(|live| same_ignoring_nulls(live, &whole))
        } else {
            struct_in_sync(item, sub, live)
        };
        if !item_in_sync {
            return false;
        }
    }
    true
}

fn set_in_sync(items: &[Value], children: &[&String], live_items: &[Value]) -> bool {
    let owned: Vec<Value> = children
        .iter()
        .filter_map(|c| {
            c.strip_prefix("v:")
                .and_then(|v| serde_json::from_str(v).ok())
        })
        .collect();
    owned.len() == children.len()
        && owned.len() == items.len()
        && items
            .iter()
            .all(|item| owned.contains(item) && live_items.contains(item))
}

/// Paths of `desired` (an [`ownable_part`]) that another manager's FieldsV1 tree owns and whose
/// live value differs from the desired one: what a forced apply takes away from that manager.
/// Rendered like the API server's conflict messages, e.g.
/// `.spec.template.spec.containers[name="app"].image`.
pub fn taken_paths(desired: &Value, theirs: &Map<String, Value>, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_taken(desired, theirs, Some(live), &mut String::new(), &mut out);
    out
}

fn collect_taken(
    desired: &Value,
    node: &Map<String, Value>,
    live: Option<&Value>,
    path: &mut String,
    out: &mut Vec<String>,
) {
    if node.is_empty() {
        // They own this value as a leaf (scalar or atomic): ours replaces it when different.
        if live != Some(desired) {
            out.push(if path.is_empty() {
                ".".to_string()
            } else {
                path.clone()
            });
        }
        return;
    }
    match desired {
        Value::Object(d) => {
            let live = live.and_then(Value::as_object);
            for (field, value) in d {
                if let Some(sub) = field_child(node, field) {
                    let len = path.len();
                    path.push('.');
                    path.push_str(field);
                    collect_taken(value, sub, live.and_then(|l| l.get(field)), path, out);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            let live_items = live
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (element, sub) in node.iter().filter(|(k, _)| k.starts_with("k:")) {
                let (Some(key), Some(sub)) = (parse_key(element), sub.as_object()) else {
                    continue;
                };
                let Some(item) = items
                    .iter()
                    .find(|i| i.as_object().is_some_and(|i| item_matches_key(i, &key)))
                else {
                    continue;
                };
                let len = path.len();
                path.push_str(&render_key(&key));
                collect_taken(item, sub, live_item(live_items, &key), path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn render_key(key: &Map<String, Value>) -> String {
    let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests;
