//! Object storage with a global resourceVersion counter, a bounded event history per resource type
//! (for watches that resume from a resourceVersion, kept as kube-apiserver's watch cache keeps it)
//! and a broadcast of every change (for watches and in-process controllers such as the garbage
//! collector).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::broadcast;

/// `(group, plural, namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String, String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `object` is the stored object (for deletes: its last state, carrying the
/// deletion's resourceVersion).
#[derive(Debug, Clone)]
pub struct StoreEvent {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    pub object: Arc<Value>,
    /// The state before this change (`None` for a create).
    pub previous: Option<Arc<Value>>,
}

/// Why a watch cannot start from the resourceVersion it asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct TooOld {
    pub asked: u64,
    pub oldest_minus_one: u64,
}

/// How much change history each resource type keeps, as kube-apiserver's watch cache does
/// (`k8s.io/apiserver` cacher, 1.33): at least `min` events, every event younger than `fresh`, and
/// never more than `max`. A watch from a resourceVersion older than what is kept gets 410 Expired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLimits {
    /// Events kept whatever their age (the cache's lower bound capacity, 100).
    pub min: usize,
    /// Events younger than this are kept beyond `min` (eventFreshDuration, 75 s).
    pub fresh: Duration,
    /// Events never kept beyond this count (the upper bound capacity, 102400).
    pub max: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            min: 100,
            fresh: Duration::from_secs(75),
            max: 100 * 1024,
        }
    }
}

/// The retained history of one resource type.
#[derive(Default)]
struct TypeHistory {
    events: VecDeque<(Instant, Arc<StoreEvent>)>,
    /// resourceVersion of the newest event no longer retained.
    last_dropped: Option<u64>,
}

impl TypeHistory {
    fn trim(&mut self, limits: &HistoryLimits, now: Instant) {
        while let Some((at, ev)) = self.events.front() {
            let stale = now.duration_since(*at) >= limits.fresh;
            if self.events.len() <= limits.max && !(stale && self.events.len() > limits.min) {
                break;
            }
            self.last_dropped = Some(ev.rv);
            self.events.pop_front();
        }
    }

    /// The oldest resourceVersion a watch can resume from: one before the oldest retained event
    /// once events were dropped, else the resourceVersion the history started at.
    fn oldest_minus_one(&self, started: u64) -> u64 {
        match (self.last_dropped, self.events.front()) {
            (Some(_), Some((_, oldest))) => oldest.rv - 1,
            (Some(dropped), None) => dropped,
            (None, _) => started,
        }
    }
}

struct Inner {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    /// uid → key, for owner lookups.
    uids: HashMap<String, ObjKey>,
    /// Per `(group, plural)`.
    history: HashMap<(String, String), TypeHistory>,
    /// The resourceVersion watch history starts at (the emulator's start): older is 410.
    history_start: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
    limits: HistoryLimits,
}

impl Store {
    pub fn new(limits: HistoryLimits) -> Self {
        // Live watchers lag behind by at most this many changes before they are told to resume.
        let (tx, _) = broadcast::channel(limits.min.max(1024) * 4);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                uids: HashMap::new(),
                history: HashMap::new(),
                history_start: 0,
            }),
            tx,
            limits: HistoryLimits {
                min: limits.min.max(1),
                max: limits.max.max(1),
                ..limits
            },
        }
    }

    /// Exclusive access for one read-modify-write. Keep it short: every request waits on it.
    pub fn lock(&self) -> Txn<'_> {
        // A poisoned lock means a panic mid-request; the map is still structurally valid.
        Txn {
            inner: self.inner.lock().unwrap_or_else(|p| p.into_inner()),
            store: self,
        }
    }

    /// Every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.tx.subscribe()
    }
}

pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    store: &'a Store,
}

impl Txn<'_> {
    pub fn current_rv(&self) -> u64 {
        self.inner.rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.inner.objects.get(key)
    }

    /// Objects of one group/resource, optionally in one namespace, sorted by namespace then name.
    /// Objects of one group/resource, optionally in one namespace, sorted by namespace then name.
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.list_after(group, plural, namespace, None).collect()
    }

    /// Like [`Txn::list`], lazily, starting after the object at `(namespace, name)` (a list's
    /// continue position). Keys sort by group, resource, namespace, name, so the objects asked for
    /// are one contiguous range: a page costs what it reads, not a scan of every stored object of
    /// every kind, nor of the pages before it.
    pub fn list_after<'s, 'q>(
        &'s self,
        group: &'q str,
        plural: &'q str,
        namespace: Option<&'q str>,
        after: Option<&(String, String)>,
    ) -> impl Iterator<Item = &'s Value> + use<'s, 'q> {
        let key = |ns: &str, name: &str| -> ObjKey {
            (
                group.to_owned(),
                plural.to_owned(),
                ns.to_owned(),
                name.to_owned(),
            )
        };
        let first = key(namespace.unwrap_or_default(), "");
        // A continue position before the namespace asked for starts at its beginning.
        let start = match after.map(|(ns, name)| key(ns, name)) {
            Some(after) if after >= first => Bound::Excluded(after),
            _ => Bound::Included(first),
        };
        self.inner
            .objects
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| {
                k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns)
            })
            .map(|(_, v)| v)
    }

    /// Every stored object with its key, borrowed (no copies).
    pub fn iter(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.inner.objects.iter()
    }

    /// Every stored object with its key.
    pub fn all(&self) -> Vec<(ObjKey, Value)> {
        self.inner
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Stores `obj` under a new resourceVersion and announces it.
    pub fn put(&mut self, key: ObjKey, mut obj: Value) -> Value {
        let rv = self.bump(&mut obj);
        let previous = self.inner.objects.insert(key.clone(), obj.clone());
        let uid = uid_of(&obj);
        if !uid.is_empty() {
            self.inner.uids.insert(uid.to_string(), key.clone());
        }
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(rv, kind, key, &obj, previous);
        obj
    }

    /// Removes the object, announcing its last state under a new resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut obj = self.inner.objects.remove(key)?;
        self.inner.uids.remove(uid_of(&obj));
        let previous = obj.clone();
        let rv = self.bump(&mut obj);
        self.record(rv, EventType::Deleted, key.clone(), &obj, Some(previous));
        Some(obj)
    }

    fn bump(&mut self, obj: &mut Value) -> u64 {
        self.inner.rv += 1;
        let rv = self.inner.rv;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        rv
    }

    fn record(
        &mut self,
        rv: u64,
        kind: EventType,
        key: ObjKey,
        obj: &Value,
        previous: Option<Value>,
    ) {
        let ev = Arc::new(StoreEvent {
            rv,
            kind,
            key,
            object: Arc::new(obj.clone()),
            previous: previous.map(Arc::new),
        });
        let now = Instant::now();
        let history = self
            .inner
            .history
            .entry((ev.key.0.clone(), ev.key.1.clone()))
            .or_default();
        history.events.push_back((now, ev.clone()));
        history.trim(&self.store.limits, now);
        // No receivers is fine: nobody is watching.
        let _ = self.store.tx.send(ev);
    }

    /// Starts the watch history here: a watch from an older resourceVersion is 410 Expired, as
    /// on a freshly started kube-apiserver whose watch cache begins at its first list.
    pub fn start_history(&mut self) {
        self.inner.history_start = self.inner.rv;
    }

    /// Retained events of one resource type after `rv`, or why they are gone.
    pub fn events_since(
        &self,
        group: &str,
        plural: &str,
        rv: u64,
    ) -> Result<Vec<Arc<StoreEvent>>, TooOld> {
        let history = self
            .inner
            .history
            .get(&(group.to_owned(), plural.to_owned()));
        let start = self.inner.history_start;
        let oldest_minus_one = history.map_or(start, |h| h.oldest_minus_one(start));
        if rv < oldest_minus_one {
            return Err(TooOld {
                asked: rv,
                oldest_minus_one,
            });
        }
        Ok(history
            .into_iter()
            .flat_map(|h| h.events.iter())
            .map(|(_, ev)| ev)
            .filter(|ev| ev.rv > rv)
            .cloned()
            .collect())
    }

    /// Subscribes while holding the lock, so nothing committed after the caller's snapshot is missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.store.tx.subscribe()
    }

    /// The object with this uid, if stored.
    pub fn find_uid(&self, uid: &str) -> Option<(ObjKey, &Value)> {
        let key = self.inner.uids.get(uid)?;
        self.inner.objects.get(key).map(|v| (key.clone(), v))
    }
}

fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(group: &str, plural: &str, namespace: &str, name: &str) -> ObjKey {
        (group.into(), plural.into(), namespace.into(), name.into())
    }

    fn names<'a>(objects: impl Iterator<Item = &'a Value>) -> Vec<String> {
        objects
            .map(|o| {
                let meta = &o["metadata"];
                format!(
                    "{}/{}",
                    meta["namespace"].as_str().unwrap_or(""),
                    meta["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Neighbours in key order on every side (another group, another resource, namespaces before
    /// and after) must stay out of a list, and a continue position must resume right after itself.
    #[test]
    fn a_list_is_the_range_of_its_kind_and_namespace_and_resumes_after_its_position() {
        let store = Store::new(HistoryLimits::default());
        let mut txn = store.lock();
        let stored = [
            key("", "configmaps", "b", "x"),
            key("", "secrets", "a", "s1"),
            key("", "secrets", "b", "s1"),
            key("", "secrets", "b", "s2"),
            key("", "secrets", "c", "s1"),
            key("", "serviceaccounts", "b", "s3"),
            key("apps", "secrets", "b", "s9"),
        ];
        for k in &stored {
            let object = json!({"metadata": {"namespace": k.2, "name": k.3}});
            txn.put(k.clone(), object);
        }
        assert_eq!(
            names(txn.list("", "secrets", None).into_iter()),
            ["a/s1", "b/s1", "b/s2", "c/s1"]
        );
        assert_eq!(
            names(txn.list("", "secrets", Some("b")).into_iter()),
            ["b/s1", "b/s2"]
        );
        assert!(txn.list("", "secrets", Some("d")).is_empty());
        let after = |ns: &str, name: &str| (ns.to_owned(), name.to_owned());
        let resumed = txn.list_after("", "secrets", None, Some(&after("b", "s1")));
        assert_eq!(names(resumed), ["b/s2", "c/s1"]);
        let resumed = txn.list_after("", "secrets", Some("b"), Some(&after("b", "s1")));
        assert_eq!(names(resumed), ["b/s2"]);
        // A position before the namespace asked for starts at its beginning; one after it is past
        // its end.
        let resumed = txn.list_after("", "secrets", Some("b"), Some(&after("a", "zz")));
        assert_eq!(names(resumed), ["b/s1", "b/s2"]);
        let resumed = txn.list_after("", "secrets", Some("b"), Some(&after("c", "")));
        assert_eq!(names(resumed), Vec::<String>::new());
    }
}
