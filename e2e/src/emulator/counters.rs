//! Request accounting: how many requests of each verb, resource, subresource and field manager the
//! emulator served. Read by tests and benchmarks ("zero writes at steady state").

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    /// Per field manager: writes being served now, and the most there ever were at once.
    writes_in_flight: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
}

/// One write being served, from [`Counters::write_in_flight`]; dropping it ends it.
pub struct WriteInFlight {
    manager: String,
    in_flight: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
}

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((now, _)) = in_flight.get_mut(&self.manager) {
            *now -= 1;
        }
    }
}

impl Counters {
    /// Counts a write of `manager` as being served until the guard is dropped.
    pub fn write_in_flight(&self, manager: &str) -> WriteInFlight {
        let mut in_flight = self
            .writes_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (now, most) = in_flight.entry(manager.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        WriteInFlight {
            manager: manager.to_owned(),
            in_flight: Arc::clone(&self.writes_in_flight),
        }
    }

    /// The most writes of `manager` the emulator was serving at the same time.
    pub fn most_writes_in_flight(&self, manager: &str) -> u64 {
        let in_flight = self
            .writes_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        in_flight.get(manager).map_or(0, |(_, most)| *most)
    }

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
