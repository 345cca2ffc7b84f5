//! Reading our own status writes. The owner a reconcile is handed comes from a watch cache, which may not
//! show yet the status this engine wrote a moment earlier. Deciding from that stale copy whether to write
//! (or, in the controller, when a condition last changed) would rewrite the status for nothing. So the
//! engine remembers the last status it wrote per owner (from the server's response) until the cache has
//! caught up, and stands it in for the cached one while the cached copy is older. Resource versions are
//! compared as integers, which Kubernetes guarantees since 1.35 (KEP-5504, comparable resource versions);
//! when they cannot be compared, the cached copy is trusted, as before.

use std::{cmp::Ordering, collections::HashMap, sync::Mutex};

use serde_json::Value;

use crate::{MANAGER, error::ObjectKey, identity::Identity};

/// The last status written per owner, kept until the owner's cache shows it; and per owner, the
/// fingerprint of the status we own in its latest version we know (see [`crate::fingerprint`]),
/// until the owner is forgotten.
#[derive(Default)]
pub(crate) struct OwnStatusWrites {
    written: Mutex<HashMap<ObjectKey, Written>>,
    owned: Mutex<HashMap<ObjectKey, OwnedStatus>>,
}

/// The status we own in one version of an owner: found in sync with it, or written by us.
struct OwnedStatus {
    uid: Option<String>,
    resource_version: String,
    /// The status's fingerprint.
    status: u64,
}

/// What a status write left on the server.
struct Written {
    uid: Option<String>,
    resource_version: String,
    /// The server's answer, as it came: parsed only while the cache lags behind the write (for the
    /// written status and our managedFields entry for it, what the skip check reads). Kept until
    /// the owner's watch shows the write ([`OwnStatusWrites::seen`]), usually a moment.
    answer: bytes::Bytes,
}

impl OwnStatusWrites {
    /// Remembers the server's answer to a status apply (`written`: the object and version it
    /// returned).
    pub fn remember(&self, key: &ObjectKey, written: Identity, answer: bytes::Bytes) {
        let Some(resource_version) = written.resource_version else {
            return;
        };
        let written = Written {
            uid: written.uid,
            resource_version,
            answer,
        };
        self.lock().insert(key.clone(), written);
    }

    /// The owner's watch shows it at `version`: a status write this version includes is no longer
    /// needed.
    pub fn seen(&self, key: &ObjectKey, uid: Option<&str>, version: &str) {
        let mut written = self.lock();
        if written
            .get(key)
            .is_some_and(|record| !record.is_newer_than(uid, version))
        {
            written.remove(key);
        }
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

    /// The fingerprint of the status we own in this version of the owner, when known: found in
    /// sync with it, or written by us (the server answered with this version).
    pub fn status_at(&self, key: &ObjectKey, uid: Option<&str>, version: &str) -> Option<u64> {
        self.lock_owned()
            .get(key)
            .filter(|seen| seen.uid.as_deref() == uid && seen.resource_version == version)
            .map(|seen| seen.status)
    }

    /// Remembers that we own a status with this fingerprint in this version of the owner.
    pub fn remember_status_at(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        version: &str,
        desired: u64,
    ) {
        let seen = OwnedStatus {
            uid: uid.map(str::to_owned),
            resource_version: version.to_owned(),
            status: desired,
        };
        self.lock_owned().insert(key.clone(), seen);
    }

    /// Drops everything remembered about an owner (it is being deleted).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
        self.lock_owned().remove(key);
    }

    fn lock_owned(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, OwnedStatus>> {
        self.owned
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
    // The answer is the server's 2xx JSON, from which the record's resourceVersion was read: it
    // parses. Were it ever not JSON, the status would read as absent (as before any write), and the
    // next comparison would rewrite it; nothing would panic.
    let written: Value = serde_json::from_slice(&record.answer).unwrap_or_default();
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
    entries.extend(own_status_entry(&written).cloned());
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

    /// Remembers `answer` as the server's answer to a status write.
    fn remember(writes: &OwnStatusWrites, answer: &Value) {
        let written = Identity {
            uid: text(answer, "/metadata/uid"),
            resource_version: text(answer, "/metadata/resourceVersion"),
        };
        writes.remember(&key(), written, answer.to_string().into());
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
        remember(
            &writes,
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
        remember(&writes, &object("20", "u1", "Ready", &[]));
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
        remember(&writes, &object("20", "u1", "Ready", &[]));
        assert!(
            writes
                .newer_than(&key(), &object("15", "u2", "Pending", &[]), true)
                .is_none()
        );
        remember(&writes, &object("20", "u1", "Ready", &[]));
        assert!(
            writes
                .newer_than(&key(), &object("abc", "u1", "Pending", &[]), true)
                .is_none()
        );
    }

    #[test]
    fn a_write_is_dropped_once_the_owner_watch_shows_it() {
        let writes = OwnStatusWrites::default();
        remember(&writes, &object("20", "u1", "Ready", &[]));
        writes.seen(&key(), Some("u1"), "19");
        assert!(
            writes.has_write(&key()),
            "an older version does not show it"
        );
        writes.seen(&key(), Some("u1"), "21");
        assert!(!writes.has_write(&key()), "a later version includes it");
        remember(&writes, &object("20", "u1", "Ready", &[]));
        writes.seen(&key(), Some("u2"), "5");
        assert!(
            !writes.has_write(&key()),
            "the owner written to was replaced: its write no longer matters"
        );
    }

    #[test]
    fn the_status_we_own_is_known_per_version() {
        let writes = OwnStatusWrites::default();
        writes.remember_status_at(&key(), Some("u1"), "20", 7);
        assert_eq!(writes.status_at(&key(), Some("u1"), "20"), Some(7));
        assert_eq!(writes.status_at(&key(), Some("u1"), "21"), None);
        assert_eq!(writes.status_at(&key(), Some("u2"), "20"), None);
        writes.forget(&key());
        assert_eq!(writes.status_at(&key(), Some("u1"), "20"), None);
    }
}
