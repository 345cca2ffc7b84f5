//! Object storage with a global resourceVersion counter, a bounded event history (for watches that
//! resume from a resourceVersion) and a broadcast of every change (for watches and in-process
//! controllers such as the garbage collector).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

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

struct Inner {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    /// uid → key, for owner lookups.
    uids: HashMap<String, ObjKey>,
    history: VecDeque<Arc<StoreEvent>>,
    /// Highest resourceVersion whose event is no longer retained.
    floor: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
    history_limit: usize,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(history_limit.max(16) * 4);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                uids: HashMap::new(),
                history: VecDeque::new(),
                floor: 0,
            }),
            tx,
            history_limit: history_limit.max(1),
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
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.inner
            .objects
            .iter()
            .filter(|(k, _)| k.0 == group && k.1 == plural && namespace.is_none_or(|ns| k.2 == ns))
            .map(|(_, v)| v)
            .collect()
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
        self.inner.history.push_back(ev.clone());
        while self.inner.history.len() > self.store.history_limit {
            if let Some(old) = self.inner.history.pop_front() {
                self.inner.floor = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.store.tx.send(ev);
    }

    /// Retained events after `rv`, or why they are gone.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<StoreEvent>>, TooOld> {
        if rv < self.inner.floor {
            return Err(TooOld {
                asked: rv,
                oldest_minus_one: self.inner.floor,
            });
        }
        Ok(self
            .inner
            .history
            .iter()
            .filter(|e| e.rv > rv)
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
