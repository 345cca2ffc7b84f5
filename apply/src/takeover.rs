//! Taking over objects another controller wrote: its field ownership becomes ours before we apply,
//! so our apply removes what we no longer set (spec §2.2 step 3: an apply prunes only fields its
//! manager owned before).
//!
//! This is what client-go's `csaupgrade` does for `kubectl apply --server-side` after client-side
//! applies, written here on the engine's schema-free FieldsV1 trees: every main-resource entry of a
//! *predecessor* manager (a name the operator is configured with, never "any other manager") is
//! united into our `Apply` entry, and removed. Entries of other managers (kube-controller-manager's
//! revision annotation, a user's `kubectl annotate`) and every subresource entry stay as they are.
//!
//! The new list is written with a JSON patch that replaces `/metadata/managedFields` and also
//! "replaces" `/metadata/resourceVersion` with the version it was computed from: a supplied
//! managedFields list replaces the stored one (spec §3), and a resourceVersion that is no longer
//! current fails the update with 409 Conflict, as `csaupgrade` guards it (a `test` operation would
//! fail with 422 Invalid instead, which says nothing about a race).
//!
//! An object with no managedFields at all has no predecessor to name. An apply of nothing makes
//! the API server record everything it holds as [`BEFORE_FIRST_APPLY`], which is then taken over
//! like a predecessor: the object is being taken over, and what it held came before us.

use serde_json::{Map, Value, json};

use crate::fields;

/// The manager the API server gives every field of an object that has no managedFields at all
/// when the first apply comes (spec §2.2 step 1).
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Whether the object has no managedFields: created before field tracking, or stripped. Nobody's
/// fields can be told apart, and nothing can be taken over until an apply has the API server
/// record them all as [`BEFORE_FIRST_APPLY`].
pub fn is_untracked(live: &Value) -> bool {
    fields::at(live, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

/// The result of [`migrate`]: our new managedFields and whose ownership they took.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// The object's managedFields after the takeover.
    pub managed_fields: Vec<Value>,
    /// The predecessor managers whose entries were taken over, in the order they appeared.
    pub managers: Vec<String>,
}

/// The managedFields of `live` with every entry of a manager in `predecessors` (`Update` or
/// `Apply`) for `subresource` (`None`: the main resource) folded into `manager`'s `Apply` entry
/// for it; `None` when there is none. Entries for other subresources stay as they are.
///
/// Our entry is kept at its apiVersion, or created at `api_version` (the version we apply) when
/// absent. Field sets of one object at two versions cannot be united without the API's
/// conversion, so predecessor entries at another version are dropped, not united (their fields
/// then belong to nobody and stay), as `csaupgrade` drops them. When we have no entry and no
/// predecessor entry is at `api_version`, the newest predecessor entry becomes ours at its own
/// version; the API server converts it at our next apply.
pub fn migrate(
    live: &Value,
    predecessors: &[String],
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Option<Migration> {
    let entries = fields::at(live, &["metadata", "managedFields"])?.as_array()?;
    let ours = Ours {
        manager,
        subresource: subresource.unwrap_or_default(),
    };
    let taken_over = |e: &Value| ours.takes_over(e, predecessors);
    let taken: Vec<&Value> = entries.iter().filter(|e| taken_over(e)).collect();
    if taken.is_empty() {
        return None;
    }
    let our_entry = entries.iter().position(|e| ours.is_apply(e));
    let version = match our_entry {
        Some(index) => text(&entries[index], "apiVersion").to_owned(),
        None => target_version(&taken, api_version).to_owned(),
    };
    let mut united = our_entry
        .map(|index| entries[index].clone())
        .unwrap_or_else(|| ours.new_entry(&version));
    let same_version = taken.iter().filter(|e| text(e, "apiVersion") == version);
    for entry in same_version.clone() {
        let tree = united_fields(&united, entry);
        united["fieldsV1"] = Value::Object(tree);
    }
    if our_entry.is_none()
        && let Some(time) = same_version
            .filter_map(|e| e.get("time"))
            .max_by(|a, b| a.as_str().cmp(&b.as_str()))
    {
        united["time"] = time.clone();
    }
    let mut managed_fields: Vec<Value> = entries
        .iter()
        .filter(|e| !taken_over(e))
        .map(|e| {
            if ours.is_apply(e) {
                united.clone()
            } else {
                e.clone()
            }
        })
        .collect();
    if our_entry.is_none() {
        // Apply entries come first in the API's order (spec §2.5).
        managed_fields.insert(0, united);
    }
    let mut managers: Vec<String> = Vec::new();
    for name in taken.iter().map(|e| text(e, "manager")) {
        if !managers.iter().any(|m| m == name) {
            managers.push(name.to_owned());
        }
    }
    Some(Migration {
        managed_fields,
        managers,
    })
}

/// The JSON patch that writes a [`Migration`] onto the object last seen at `resource_version`.
pub fn patch(migration: &Migration, resource_version: &str) -> Value {
    json!([
        {"op": "replace", "path": "/metadata/managedFields", "value": migration.managed_fields},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
    ])
}

fn text<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Our manager, and the subresource (empty: the main resource) whose entries are taken over.
struct Ours<'a> {
    manager: &'a str,
    subresource: &'a str,
}

impl Ours<'_> {
    fn is_apply(&self, entry: &Value) -> bool {
        text(entry, "subresource") == self.subresource
            && text(entry, "manager") == self.manager
            && text(entry, "operation") == "Apply"
    }

    fn takes_over(&self, entry: &Value, predecessors: &[String]) -> bool {
        let name = text(entry, "manager");
        text(entry, "subresource") == self.subresource
            && predecessors.iter().any(|p| p == name)
            && matches!(text(entry, "operation"), "Update" | "Apply")
            && !self.is_apply(entry)
    }

    fn new_entry(&self, api_version: &str) -> Value {
        let mut entry = json!({"manager": self.manager, "operation": "Apply",
            "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": {}});
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }
}

/// The version our new entry takes: the one we apply if a predecessor wrote at it, else the newest
/// predecessor entry's (so the list never ends up without an entry for what they owned).
fn target_version<'a>(taken: &[&'a Value], api_version: &'a str) -> &'a str {
    if taken.iter().any(|e| text(e, "apiVersion") == api_version) {
        return api_version;
    }
    taken
        .iter()
        .max_by(|a, b| text(a, "time").cmp(text(b, "time")))
        .map_or(api_version, |e| text(e, "apiVersion"))
}

fn united_fields(a: &Value, b: &Value) -> Map<String, Value> {
    let tree = |e: &Value| e.get("fieldsV1").and_then(Value::as_object).cloned();
    union(&tree(a).unwrap_or_default(), &tree(b).unwrap_or_default())
}

/// The union of two FieldsV1 trees (spec §1.4): a node either owns is owned, and the children of
/// both are united. A node is owned when it is a leaf `{}` or carries the `.` marker; an owned
/// node with children gets the marker.
pub fn union(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let mut children: Map<String, Value> = Map::new();
    for (key, value) in a.iter().chain(b).filter(|(key, _)| *key != ".") {
        let node = value.as_object().cloned().unwrap_or_default();
        let merged = match children.get(key).and_then(Value::as_object) {
            Some(existing) => union_node(existing, &node),
            None => node,
        };
        children.insert(key.clone(), Value::Object(merged));
    }
    canonical_order(children)
}

/// [`union`] for nodes below the root, where an empty node is an owned leaf.
fn union_node(a: &Map<String, Value>, b: &Map<String, Value>) -> Map<String, Value> {
    let owned = |node: &Map<String, Value>| node.is_empty() || node.contains_key(".");
    let mut node = union(a, b);
    if !node.is_empty() && (owned(a) || owned(b)) {
        node.insert(".".to_owned(), json!({}));
        node = canonical_order(node);
    }
    node
}

/// The key order kube-apiserver encodes FieldsV1 in (spec §1.4): `.` first, then `f:`, `k:`,
/// `v:` and `i:` keys, each sorted.
fn canonical_order(node: Map<String, Value>) -> Map<String, Value> {
    let rank = |key: &str| match key.get(..2) {
        _ if key == "." => 0,
        Some("f:") => 1,
        Some("k:") => 2,
        Some("v:") => 3,
        _ => 4,
    };
    let mut entries: Vec<(String, Value)> = node.into_iter().collect();
    entries.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    entries.into_iter().collect()
}

#[cfg(test)]
mod tests;
