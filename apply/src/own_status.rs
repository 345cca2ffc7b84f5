//! Reading our own status writes. The owner a reconcile is handed comes from a watch cache, which may not
//! show yet the status this engine wrote a moment earlier. Deciding from that stale copy whether to write
//! (or, in the controller, when a condition last changed) would rewrite the status for nothing. So the
//! engine remembers the last status it wrote per owner (from the server's response) until the cache has
//! caught up, and stands it in for the cached one while the cached copy is older. Resource versions are
//! compared as integers, which Kubernetes guarantees since 1.35 (KEP-5504, comparable resource versions);
//! when they cannot be compared, the cached copy is trusted, as before.

use std::{cmp::Ordering, collections::HashMap, sync::Mutex};

use serde_json::Value;

use crate::{MANAGER, cached::CompressedJson, error::ObjectKey};

/// The last status written per owner, kept until the owner's cache shows it; and per owner, the last
/// status found in sync (see [`crate::fingerprint`]), until the owner is forgotten.
#[derive(Default)]
pub(crate) struct OwnStatusWrites {
    written: Mutex<HashMap<ObjectKey, Written>>,
    in_sync: Mutex<HashMap<ObjectKey, StatusInSync>>,
}

/// A status found in sync with one owner object.
struct StatusInSync {
    uid: Option<String>,
    resource_version: String,
    /// The status's fingerprint.
    status: u64,
}

/// What a status write left on the server.
struct Written {
    uid: Option<String>,
    resource_version: String,
    /// `{"status": <the written status>, "entry": <our managedFields entry for the status
    /// subresource, what the skip check reads>}`, compressed: kept for every owner until its next
    /// reconcile, and read only while the cache lags behind the write. As parsed trees, these
    /// records were ~15 MiB at 1000 owners.
    written: CompressedJson,
}

impl OwnStatusWrites {
    /// Remembers the server's response to a status apply.
    pub fn remember(&self, key: &ObjectKey, response: &Value) {
        let Some(resource_version) = text(response, "/metadata/resourceVersion") else {
            return;
        };
        let written = serde_json::json!({
            "status": response.get("status").unwrap_or(&Value::Null),
            "entry": own_status_entry(response),
        });
        let written = Written {
            uid: text(response, "/metadata/uid"),
            resource_version,
            written: CompressedJson::of(&written.to_string()),
        };
        self.lock().insert(key.clone(), written);
    }

    /// `cached` with the last status we wrote, when the cache has not caught up with it yet; `None` when
    /// `cached` is as new as that write, or there is none. With `forget`, a record the cache has caught up
    /// with is dropped (only pass `forget` for a copy straight from the cache: one this module produced
    /// is as new as the record even while the cache still lags).
    pub fn newer_than(&self, key: &ObjectKey, cached: &Value, forget: bool) -> Option<Value> {
        let mut written = self.lock();
        let record = written.get(key)?;
        let uid = text(cached, "/metadata/uid");
        let cached_version = text(cached, "/metadata/resourceVersion").unwrap_or_default();
        if record.is_newer_than(uid.as_deref(), &cached_version) {
            return Some(with_status(cached, record));
        }
        if forget {
            written.remove(key);
        }
        None
    }

    /// Whether there is a status write the cache may not show yet.
    pub fn has_write(&self, key: &ObjectKey) -> bool {
        self.lock().contains_key(key)
    }

    /// The resourceVersion the owner has for us: the cached one, or that of our last status write
    /// while the cache is behind it.
    pub fn version_seen(&self, key: &ObjectKey, uid: Option<&str>, cached_version: &str) -> String {
        match self.lock().get(key) {
            Some(record) if record.is_newer_than(uid, cached_version) => {
                record.resource_version.clone()
            }
            _ => cached_version.to_owned(),
        }
    }

    /// Whether a status with this fingerprint was found in sync with this version of the owner.
    pub fn remembers_in_sync(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        version: &str,
        desired: u64,
    ) -> bool {
        self.lock_in_sync().get(key).is_some_and(|seen| {
            seen.uid.as_deref() == uid && seen.resource_version == version && seen.status == desired
        })
    }

    /// Remembers that a status with this fingerprint is in sync with this version of the owner.
    pub fn remember_in_sync(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        version: &str,
        desired: u64,
    ) {
        let seen = StatusInSync {
            uid: uid.map(str::to_owned),
            resource_version: version.to_owned(),
            status: desired,
        };
        self.lock_in_sync().insert(key.clone(), seen);
    }

    /// Drops everything remembered about an owner (it is being deleted).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
        self.lock_in_sync().remove(key);
    }

    fn lock_in_sync(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, StatusInSync>> {
        self.in_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Written>> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Written {
    /// Whether this write is newer than a cached copy of the same object (uid) at `cached_version`.
    fn is_newer_than(&self, uid: Option<&str>, cached_version: &str) -> bool {
        self.uid.as_deref() == uid
            && compare_resource_versions(cached_version, &self.resource_version)
                == Some(Ordering::Less)
    }
}

/// `cached` with the written status, resourceVersion and our status managedFields entry.
fn with_status(cached: &Value, record: &Written) -> Value {
    let written: Value = record
        .written
        .text()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default();
    let mut fresher = cached.clone();
    fresher["status"] = written.get("status").cloned().unwrap_or(Value::Null);
    fresher["metadata"]["resourceVersion"] = Value::from(record.resource_version.clone());
    let mut entries: Vec<Value> = fresher
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|entry| !is_own_status_entry(entry))
        .cloned()
        .collect();
    entries.extend(written.get("entry").filter(|e| !e.is_null()).cloned());
    fresher["metadata"]["managedFields"] = Value::from(entries);
    fresher
}

fn own_status_entry(object: &Value) -> Option<&Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|entry| is_own_status_entry(entry))
}

fn is_own_status_entry(entry: &Value) -> bool {
    entry.get("manager").and_then(Value::as_str) == Some(MANAGER)
        && entry.get("subresource").and_then(Value::as_str) == Some("status")
}

fn text(object: &Value, pointer: &str) -> Option<String> {
    object.pointer(pointer)?.as_str().map(str::to_owned)
}

/// Orders two resource versions of the same resource as KEP-5504 defines: both must be positive decimal
/// integers without leading zeros (of any length); `None` otherwise.
pub(crate) fn compare_resource_versions(a: &str, b: &str) -> Option<Ordering> {
    let valid =
        |rv: &str| !rv.is_empty() && !rv.starts_with('0') && rv.bytes().all(|b| b.is_ascii_digit());
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> ObjectKey {
        ObjectKey {
            api_version: "feast.dev/v1".into(),
            kind: "FeatureStore".into(),
            namespace: Some("default".into()),
            name: "fs".into(),
        }
    }

    fn object(rv: &str, uid: &str, phase: &str, managers: &[(&str, &str)]) -> Value {
        let entries: Vec<Value> = managers
            .iter()
            .map(|(manager, subresource)| {
                json!({"manager": manager, "operation": "Apply", "subresource": subresource,
                "fieldsV1": {"f:status": {"f:phase": {}}}})
            })
            .collect();
        json!({"metadata": {"name": "fs", "uid": uid, "resourceVersion": rv, "managedFields": entries},
            "spec": {"feastProject": "p"}, "status": {"phase": phase}})
    }

    #[test]
    fn resource_versions_compare_as_integers_of_any_length() {
        assert_eq!(compare_resource_versions("9", "10"), Some(Ordering::Less));
        assert_eq!(
            compare_resource_versions("123", "123"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_resource_versions("99999999999999999999999", "100"),
            Some(Ordering::Greater)
        );
        for invalid in ["", "0", "012", "12a", "-1"] {
            assert_eq!(compare_resource_versions(invalid, "5"), None, "{invalid}");
        }
    }

    #[test]
    fn a_cache_behind_our_write_sees_the_written_status() {
        let writes = OwnStatusWrites::default();
        writes.remember(
            &key(),
            &object("20", "u1", "Ready", &[("fieldwise", "status")]),
        );
        let stale = object("15", "u1", "Pending", &[("user", "")]);
        let fresher = writes
            .newer_than(&key(), &stale, true)
            .expect("substituted");
        assert_eq!(fresher["status"]["phase"], "Ready");
        assert_eq!(fresher["metadata"]["resourceVersion"], "20");
        assert_eq!(
            fresher["spec"], stale["spec"],
            "everything else is the cache's"
        );
        let managers: Vec<&str> = fresher["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["user", "fieldwise"]);
        assert!(
            writes.newer_than(&key(), &stale, true).is_some(),
            "kept while behind"
        );
        assert!(
            writes.newer_than(&key(), &fresher, false).is_none(),
            "our own substitute is as new as the write"
        );
        assert!(
            writes.newer_than(&key(), &stale, true).is_some(),
            "and does not end the record"
        );
    }

    #[test]
    fn a_cache_that_caught_up_is_used_and_the_record_forgotten() {
        let writes = OwnStatusWrites::default();
        writes.remember(&key(), &object("20", "u1", "Ready", &[]));
        assert!(
            writes
                .newer_than(&key(), &object("20", "u1", "Ready", &[]), true)
                .is_none()
        );
        assert!(
            writes
                .newer_than(&key(), &object("15", "u1", "Pending", &[]), true)
                .is_none(),
            "forgotten once caught up"
        );
    }

    #[test]
    fn a_recreated_owner_or_opaque_versions_trust_the_cache() {
        let writes = OwnStatusWrites::default();
        writes.remember(&key(), &object("20", "u1", "Ready", &[]));
        assert!(
            writes
                .newer_than(&key(), &object("15", "u2", "Pending", &[]), true)
                .is_none()
        );
        writes.remember(&key(), &object("20", "u1", "Ready", &[]));
        assert!(
            writes
                .newer_than(&key(), &object("abc", "u1", "Pending", &[]), true)
                .is_none()
        );
    }
}
