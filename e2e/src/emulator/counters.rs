//! Request accounting: how many requests of each verb, resource, subresource and field manager the
//! emulator served. Read by tests and benchmarks ("zero writes at steady state").

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What one counted request was.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name (`deployments`).
    pub resource: String,
    /// `status`, `scale`, or empty.
    pub subresource: String,
    /// `fieldManager` of a write (or the one derived from the User-Agent); empty for reads.
    pub field_manager: String,
    /// For patches: `apply`, `merge`, `json` or `strategic`; empty otherwise.
    pub patch_type: String,
}

impl RequestKey {
    /// create, update, patch, delete or deletecollection.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// Thread-safe request counts.
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<RequestKey, u64>>,
}

impl Counters {
    pub fn record(&self, key: RequestKey) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(key).or_insert(0) += 1;
    }

    /// Every key with its count.
    pub fn snapshot(&self) -> Vec<(RequestKey, u64)> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Sum of the counts whose key satisfies `pred`.
    pub fn count(&self, pred: impl Fn(&RequestKey) -> bool) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v)
            .sum()
    }

    /// Number of write requests (create/update/patch/delete/deletecollection).
    pub fn writes(&self) -> u64 {
        self.count(RequestKey::is_write)
    }

    /// Number of requests with this verb.
    pub fn verb(&self, verb: &str) -> u64 {
        self.count(|k| k.verb == verb)
    }

    /// Number of write requests sent by one field manager.
    pub fn writes_by(&self, manager: &str) -> u64 {
        self.count(|k| k.is_write() && k.field_manager == manager)
    }

    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
