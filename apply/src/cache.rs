//! One reflector store per registered kind, fed by one watch per kind (label-filtered to our
//! children), shared with the controllers through subscribers.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::{Stream, StreamExt, channel::mpsc};
use tokio::sync::watch;
use kube::{
    Api, Client, ResourceExt,
    api::DynamicObject,
    discovery::ApiResource,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use crate::{HANDOVER_MANAGER, MANAGER, error::ApplyError, labels, registry::KindSpec};

/// A stream of every object of one kind the watch sees change (added, modified, deleted), after
/// the cache was updated.
pub type Subscription = mpsc::Receiver<Arc<DynamicObject>>;

pub(crate) struct KindCache {
    pub spec: KindSpec,
    pub store: Store<DynamicObject>,
    writer: Mutex<Option<Writer<DynamicObject>>>,
    subscribers: Mutex<Vec<mpsc::Sender<Arc<DynamicObject>>>>,
    buffer: usize,
    /// True once the initial list is in the store. Waiters use this, not `Store::wait_until_ready`:
    /// kube's readiness is one oneshot receiver behind a mutex, which wakes only the last of several
    /// tasks waiting at once, so the others (reconciles, the readiness probe) would wait forever.
    synced: watch::Receiver<bool>,
    /// Set by the watch task (it takes the sender with the writer) or by `preload`.
    synced_tx: Mutex<Option<watch::Sender<bool>>>,
    /// The cached objects by owner uid, kept beside the store by the watch task, so that finding an
    /// owner's children does not scan every cached object (with 1000 owners that scan dominated a
    /// reconcile's CPU time).
    index: Arc<Mutex<OwnerIndex>>,
}

/// Which cached objects carry which owner-uid label ([`labels::OWNER_UID`]), and how many there are.
#[derive(Default)]
pub(crate) struct OwnerIndex {
    owner_of: HashMap<ObjectRef<DynamicObject>, Option<String>>,
    children: HashMap<String, HashSet<ObjectRef<DynamicObject>>>,
}

impl OwnerIndex {
    fn insert(&mut self, key: ObjectRef<DynamicObject>, obj: &DynamicObject) {
        self.remove(&key);
        let owner = obj.metadata.labels.as_ref().and_then(|l| l.get(labels::OWNER_UID)).cloned();
        if let Some(owner) = &owner {
            self.children
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
        self.owner_of.insert(key, owner);
    }

    fn remove(&mut self, key: &ObjectRef<DynamicObject>) {
        if let Some(Some(owner)) = self.owner_of.remove(key)
            && let Some(children) = self.children.get_mut(&owner)
        {
            children.remove(key);
            if children.is_empty() {
                self.children.remove(&owner);
            }
        }
    }

    /// Rebuilt from the store after a (re-)list: objects deleted while the watch was down never
    /// produce a delete event.
    fn rebuild(&mut self, store: &Store<DynamicObject>, resource: &ApiResource) {
        *self = OwnerIndex::default();
        for obj in store.state() {
            self.insert(object_ref(&obj, resource), &obj);
        }
    }

    /// Applies one watch event (after the reflector stored it).
    fn apply(&mut self, event: &watcher::Event<DynamicObject>, store: &Store<DynamicObject>, resource: &ApiResource) {
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                self.insert(object_ref(obj, resource), obj);
            }
            watcher::Event::Delete(obj) => self.remove(&object_ref(obj, resource)),
            watcher::Event::InitDone => self.rebuild(store, resource),
            watcher::Event::Init => {}
        }
    }
}

fn object_ref(obj: &DynamicObject, resource: &ApiResource) -> ObjectRef<DynamicObject> {
    let mut key = ObjectRef::new_with(&obj.name_any(), resource.clone());
    if let Some(namespace) = obj.metadata.namespace.as_deref() {
        key = key.within(namespace);
    }
    key
}

impl KindCache {
    fn new(spec: KindSpec, buffer: usize) -> Self {
        let writer = Writer::new(spec.resource.clone());
        let (synced_tx, synced) = watch::channel(false);
        Self {
            store: writer.as_reader(),
            spec,
            writer: Mutex::new(Some(writer)),
            subscribers: Mutex::default(),
            buffer,
            synced,
            synced_tx: Mutex::new(Some(synced_tx)),
            index: Arc::default(),
        }
    }

    fn index(&self) -> MutexGuard<'_, OwnerIndex> {
        lock_index(&self.index)
    }

    /// The cached objects labelled with this owner uid (not yet checked further).
    pub fn children_of(&self, owner_uid: &str) -> Vec<Arc<DynamicObject>> {
        let keys: Vec<ObjectRef<DynamicObject>> = self
            .index()
            .children
            .get(owner_uid)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter().filter_map(|key| self.store.get(key)).collect()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.index().owner_of.len()
    }

    fn synced_tx(&self) -> MutexGuard<'_, Option<watch::Sender<bool>>> {
        self.synced_tx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Option<Writer<DynamicObject>>> {
        // A poisoned lock only means another thread panicked while holding it; the Option
        // inside is still consistent.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached object with this name and namespace.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        let mut key = ObjectRef::new_with(name, self.spec.resource.clone());
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        self.store.get(&key)
    }

    pub fn is_ready(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the initial list is in the store; fails if the watch stopped before that.
    /// Any number of tasks may wait at once.
    pub async fn wait_until_synced(&self) -> Result<(), watch::error::RecvError> {
        self.synced.clone().wait_for(|synced| *synced).await.map(|_| ())
    }
}

pub(crate) struct Caches {
    pub kinds: Vec<KindCache>,
}

fn already_started(resource: &ApiResource) -> ApplyError {
    ApplyError::InvalidObject {
        object: resource.kind.clone(),
        reason:
            "the engine's watches were already started (subscribe and preload before run_watches)"
                .into(),
    }
}

impl Caches {
    pub fn new(kinds: &[KindSpec], buffer: usize) -> Self {
        Self {
            kinds: kinds
                .iter()
                .map(|k| KindCache::new(k.clone(), buffer))
                .collect(),
        }
    }

    pub fn find(&self, api_version: &str, kind: &str) -> Option<&KindCache> {
        self.kinds
            .iter()
            .find(|k| k.spec.matches(api_version, kind))
    }

    pub fn subscribe(&self, resource: &ApiResource) -> Result<Subscription, ApplyError> {
        let cache = self
            .find(&resource.api_version, &resource.kind)
            .ok_or_else(|| ApplyError::UnregisteredKind {
                object: resource.kind.clone(),
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            })?;
        if cache.writer().is_none() {
            return Err(already_started(resource));
        }
        let (tx, rx) = mpsc::channel(cache.buffer);
        cache
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(tx);
        Ok(rx)
    }

    /// Fills the stores directly and marks them ready, for tests and dry runs without watches.
    pub fn preload(&self, objects: Vec<DynamicObject>) -> Result<(), ApplyError> {
        for cache in &self.kinds {
            let mut writer = cache.writer();
            let writer = writer
                .as_mut()
                .ok_or_else(|| already_started(&cache.spec.resource))?;
            writer.apply_watcher_event(&watcher::Event::Init);
            for obj in objects.iter().filter(|o| {
                o.types
                    .as_ref()
                    .is_some_and(|t| cache.spec.matches(&t.api_version, &t.kind))
            }) {
                let mut obj = obj.clone();
                strip_for_cache(&mut obj);
                writer.apply_watcher_event(&watcher::Event::InitApply(obj));
            }
            writer.apply_watcher_event(&watcher::Event::InitDone);
            cache.index().rebuild(&cache.store, &cache.spec.resource);
            if let Some(synced) = cache.synced_tx().as_ref() {
                synced.send_replace(true);
            }
        }
        Ok(())
    }

    /// The tasks that keep every store current: run them all (e.g. `join_all`) for the life of
    /// the process.
    pub fn watch_tasks(
        &self,
        client: &Client,
        selector: Option<&str>,
    ) -> Result<Vec<impl Future<Output = ()> + Send + use<>>, ApplyError> {
        let mut writers = Vec::new();
        for cache in &self.kinds {
            let writer = cache
                .writer()
                .take()
                .ok_or_else(|| already_started(&cache.spec.resource))?;
            let subscribers = std::mem::take(
                &mut *cache
                    .subscribers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            let synced = cache
                .synced_tx()
                .take()
                .ok_or_else(|| already_started(&cache.spec.resource))?;
            let index = Indexer {
                index: cache.index.clone(),
                store: cache.store.clone(),
                resource: cache.spec.resource.clone(),
            };
            writers.push((cache.spec.resource.clone(), writer, subscribers, synced, index));
        }
        Ok(writers
            .into_iter()
            .map(|(resource, writer, subscribers, synced, index)| {
                let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
                let mut config = watcher::Config::default().any_semantic();
                if let Some(selector) = selector {
                    config = config.labels(selector);
                }
                let kind = resource.kind.clone();
                let stream = watcher(api, config)
                    .default_backoff()
                    .modify(strip_for_cache)
                    .reflect(writer)
                    .inspect(move |event| {
                        if let Ok(event) = event {
                            index.apply(event);
                        }
                    });
                fan_out(kind, stream, subscribers, synced)
            })
            .collect())
    }
}

fn lock_index(index: &Mutex<OwnerIndex>) -> MutexGuard<'_, OwnerIndex> {
    // A poisoned lock only means another thread panicked while holding it; the maps are still
    // structurally valid.
    index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the watch task needs to keep one kind's owner index current.
struct Indexer {
    index: Arc<Mutex<OwnerIndex>>,
    store: Store<DynamicObject>,
    resource: ApiResource,
}

impl Indexer {
    fn apply(&self, event: &watcher::Event<DynamicObject>) {
        lock_index(&self.index).apply(event, &self.store, &self.resource);
    }
}

/// Drives one kind's watch (the reflector updates the store first), marks the cache synced once the
/// initial list is in, and hands every changed object to the subscribers.
async fn fan_out<S>(
    kind: String,
    stream: S,
    mut subscribers: Vec<mpsc::Sender<Arc<DynamicObject>>>,
    synced: watch::Sender<bool>,
) where
    S: Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let object = match event {
            Ok(
                watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o),
            ) => Arc::new(o),
            Ok(watcher::Event::InitDone) => {
                synced.send_replace(true);
                continue;
            }
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(kind = %kind, %error, "watch error; retrying with backoff");
                continue;
            }
        };
        // Never wait for a subscriber: a controller that is not polling yet (e.g. before it won
        // leader election) must not freeze the caches. A full subscriber misses this trigger
        // (its controller's periodic resync covers it); a dropped one is forgotten.
        subscribers.retain_mut(|tx| match tx.try_send(object.clone()) {
            Ok(()) => true,
            Err(e) if e.is_full() => {
                tracing::debug!(kind = %kind, "subscriber full; trigger dropped");
                true
            }
            Err(_) => false,
        });
    }
}

/// Keeps the cache small (kube-rs memory trap): drops the managedFields entries of status
/// writers other than us and the last-applied annotation. Entries of other managers on the main
/// resource (and `/scale`) stay: they tell which manager changed a field we own (drift). The
/// FieldsV1 trees that stay are kept as their JSON text ([`expand_fields`] restores them): parsed,
/// every `f:` key is a map entry of its own, many times the size of its text, and the trees are
/// read only when the engine compares a desired object with the live one. With 1000 owners and
/// their ~15 children each, the parsed trees and bodies made up most of the operator's memory.
pub(crate) fn strip_for_cache(obj: &mut DynamicObject) {
    if let Some(entries) = obj.metadata.managed_fields.as_mut() {
        entries.retain(|e| {
            is_ours(e)
                || e.subresource
                    .as_deref()
                    .is_none_or(|s| s.is_empty() || s == "scale")
        });
        for fields in entries.iter_mut().filter_map(|e| e.fields_v1.as_mut()) {
            if !fields.0.is_string() {
                fields.0 = serde_json::Value::String(fields.0.to_string());
            }
        }
    }
    if let Some(annotations) = obj.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    // The same for everything but the metadata (spec, status, data...): kept as JSON text and parsed
    // only when the engine compares (`live_value`) or a controller reads the object (`expanded`).
    if !obj.data.is_string() {
        obj.data = serde_json::Value::String(obj.data.to_string());
    }
}

/// A cached object as JSON, with its body and FieldsV1 trees parsed back (for comparisons).
pub(crate) fn live_value(obj: &DynamicObject) -> Option<serde_json::Value> {
    let mut live = match &obj.data {
        serde_json::Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    let map = live.as_object_mut()?;
    if let Some(types) = &obj.types {
        map.insert("apiVersion".into(), types.api_version.clone().into());
        map.insert("kind".into(), types.kind.clone().into());
    }
    map.insert("metadata".into(), serde_json::to_value(&obj.metadata).ok()?);
    expand_fields(&mut live);
    Some(live)
}

/// A cached object with its body parsed back, as the API served it (but for what the cache strips).
pub(crate) fn expanded(obj: &DynamicObject) -> DynamicObject {
    let mut copy = obj.clone();
    if let serde_json::Value::String(text) = &obj.data
        && let Ok(body) = serde_json::from_str(text)
    {
        copy.data = body;
    }
    copy
}

/// Turns the FieldsV1 texts of a cached object (as JSON) back into trees.
pub(crate) fn expand_fields(live: &mut serde_json::Value) {
    let entries = live
        .pointer_mut("/metadata/managedFields")
        .and_then(serde_json::Value::as_array_mut);
    for entry in entries.into_iter().flatten() {
        let Some(fields) = entry.get_mut("fieldsV1") else {
            continue;
        };
        if let Some(tree) = fields
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
        {
            *fields = tree;
        }
    }
}

fn is_ours(entry: &ManagedFieldsEntry) -> bool {
    matches!(
        entry.manager.as_deref(),
        Some(MANAGER) | Some(HANDOVER_MANAGER)
    )
}

/// For the controller's own reflector of owner objects (`.modify(...)` before `.reflect(...)`):
/// drops every managedFields entry except fieldwise's, which [`crate::Engine::apply_status`]
/// needs to skip unchanged status writes, and keeps their FieldsV1 as JSON text, as the engine's
/// caches do (`apply_status` restores the trees). Without the entry every status apply is sent
/// (a no-op for the server, but a write request).
pub fn keep_own_managed_fields(meta: &mut ObjectMeta) {
    if let Some(entries) = meta.managed_fields.as_mut() {
        entries.retain(is_ours);
        for fields in entries.iter_mut().filter_map(|e| e.fields_v1.as_mut()) {
            if !fields.0.is_string() {
                fields.0 = serde_json::Value::String(fields.0.to_string());
            }
        }
    }
}
