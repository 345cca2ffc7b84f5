//! One reflector store per registered kind, fed by one watch per kind (label-filtered to our
//! children), shared with the controllers through subscribers.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::{Stream, StreamExt, TryStreamExt, channel::mpsc};
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
use tokio::sync::watch;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{
    cached::CachedObject,
    error::ApplyError,
    fingerprint::{Finding, Remembered},
    labels,
    registry::KindSpec,
};

/// A stream of every object of one kind the watch sees change (added, modified, deleted), after
/// the cache was updated.
pub type Subscription = mpsc::Receiver<Arc<CachedObject>>;

pub(crate) struct KindCache {
    pub spec: KindSpec,
    pub store: Store<CachedObject>,
    writer: Mutex<Option<Writer<CachedObject>>>,
    subscribers: Mutex<Vec<mpsc::Sender<Arc<CachedObject>>>>,
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

/// The namespace and name of a cached object within its kind (kube's `ObjectRef` would also carry a
/// copy of the kind's `ApiResource` per object).
type Name = (Option<String>, String);

fn name_of(obj: &CachedObject) -> Name {
    (obj.metadata.namespace.clone(), obj.name_any())
}

/// Which cached objects carry which owner-uid label ([`labels::OWNER_UID`]), and how many objects
/// the cache holds.
#[derive(Default)]
pub(crate) struct OwnerIndex {
    entries: HashMap<Name, Entry>,
    children: HashMap<Arc<str>, HashSet<Name>>,
}

/// One cached object in the index.
struct Entry {
    /// Its owner-uid label.
    owner: Option<Arc<str>>,
    /// What the engine found about this version of it (dropped when the watch brings another).
    remembered: Option<Box<Remembered>>,
}

impl OwnerIndex {
    fn insert(&mut self, obj: &CachedObject) {
        let name = name_of(obj);
        self.remove(&name);
        let owner = obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::OWNER_UID))
            .map(|uid| Arc::<str>::from(uid.as_str()));
        if let Some(owner) = &owner {
            self.children
                .entry(owner.clone())
                .or_default()
                .insert(name.clone());
        }
        let entry = Entry {
            owner,
            remembered: None,
        };
        self.entries.insert(name, entry);
    }

    fn remove(&mut self, name: &Name) {
        if let Some(Entry {
            owner: Some(owner), ..
        }) = self.entries.remove(name)
            && let Some(children) = self.children.get_mut(&owner)
        {
            children.remove(name);
            if children.is_empty() {
                self.children.remove(&owner);
            }
        }
    }

    /// Rebuilt from the store after a (re-)list: objects deleted while the watch was down never
    /// produce a delete event.
    fn rebuild(&mut self, store: &Store<CachedObject>) {
        *self = OwnerIndex::default();
        for obj in store.state() {
            self.insert(&obj);
        }
    }

    /// Applies one watch event (after the reflector stored it).
    fn apply(&mut self, event: &watcher::Event<CachedObject>, store: &Store<CachedObject>) {
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => self.insert(obj),
            watcher::Event::Delete(obj) => self.remove(&name_of(obj)),
            watcher::Event::InitDone => self.rebuild(store),
            watcher::Event::Init => {}
        }
    }
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
    pub fn children_of(&self, owner_uid: &str) -> Vec<Arc<CachedObject>> {
        let names: Vec<Name> = self
            .index()
            .children
            .get(owner_uid)
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default();
        names
            .iter()
            .filter_map(|(namespace, name)| self.get(namespace.as_deref(), name))
            .collect()
    }

    /// Whether the engine found `finding` about this object at this resourceVersion (and the watch has
    /// not replaced it since).
    pub fn remembers(&self, object: &CachedObject, finding: Finding) -> bool {
        let Some(version) = object.metadata.resource_version.as_deref() else {
            return false;
        };
        self.index()
            .entries
            .get(&name_of(object))
            .and_then(|entry| entry.remembered.as_deref())
            .is_some_and(|record| record.holds(version, finding))
    }

    /// Remembers `finding` about this cached object, for as long as the cache holds this version
    /// (nothing is kept for an object the watch has already deleted).
    pub fn remember(&self, object: &CachedObject, finding: Finding) {
        let Some(version) = object.metadata.resource_version.as_deref() else {
            return;
        };
        if let Some(entry) = self.index().entries.get_mut(&name_of(object)) {
            entry
                .remembered
                .get_or_insert_default()
                .add(version, finding);
        }
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.index().entries.len()
    }

    fn synced_tx(&self) -> MutexGuard<'_, Option<watch::Sender<bool>>> {
        self.synced_tx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer(&self) -> MutexGuard<'_, Option<Writer<CachedObject>>> {
        // A poisoned lock only means another thread panicked while holding it; the Option
        // inside is still consistent.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached object with this name and namespace.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
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
        self.synced
            .clone()
            .wait_for(|synced| *synced)
            .await
            .map(|_| ())
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
                let obj = CachedObject::new(obj.clone());
                writer.apply_watcher_event(&watcher::Event::InitApply(obj));
            }
            writer.apply_watcher_event(&watcher::Event::InitDone);
            cache.index().rebuild(&cache.store);
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
        page_size: u32,
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
            };
            writers.push((
                cache.spec.resource.clone(),
                writer,
                subscribers,
                synced,
                index,
            ));
        }
        Ok(writers
            .into_iter()
            .map(|(resource, writer, subscribers, synced, index)| {
                let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
                let mut config = watcher::Config::default()
                    .any_semantic()
                    .page_size(page_size.max(1));
                if let Some(selector) = selector {
                    config = config.labels(selector);
                }
                let kind = resource.kind.clone();
                let stream = watcher(api, config)
                    .default_backoff()
                    .map_ok(compact)
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

/// A watch event with its objects compacted for the cache.
fn compact(event: watcher::Event<DynamicObject>) -> watcher::Event<CachedObject> {
    match event {
        watcher::Event::Apply(obj) => watcher::Event::Apply(CachedObject::new(obj)),
        watcher::Event::Delete(obj) => watcher::Event::Delete(CachedObject::new(obj)),
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(CachedObject::new(obj)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn lock_index(index: &Mutex<OwnerIndex>) -> MutexGuard<'_, OwnerIndex> {
    // A poisoned lock only means another thread panicked while holding it; the maps are still
    // structurally valid.
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the watch task needs to keep one kind's owner index current.
struct Indexer {
    index: Arc<Mutex<OwnerIndex>>,
    store: Store<CachedObject>,
}

impl Indexer {
    fn apply(&self, event: &watcher::Event<CachedObject>) {
        lock_index(&self.index).apply(event, &self.store);
    }
}

/// Drives one kind's watch (the reflector updates the store first), marks the cache synced once the
/// initial list is in, and hands every changed object to the subscribers.
async fn fan_out<S>(
    kind: String,
    stream: S,
    mut subscribers: Vec<mpsc::Sender<Arc<CachedObject>>>,
    synced: watch::Sender<bool>,
) where
    S: Stream<Item = Result<watcher::Event<CachedObject>, watcher::Error>>,
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

/// For the controller's own reflector of owner objects (`.modify(...)` before `.reflect(...)`):
/// drops every managedFields entry except fieldwise's, which [`crate::Engine::apply_status`]
/// needs to skip unchanged status writes, and keeps their FieldsV1 as JSON text (`apply_status`
/// restores the trees). Without the entry every status apply is sent
/// (a no-op for the server, but a write request).
pub fn keep_own_managed_fields(meta: &mut ObjectMeta) {
    if let Some(entries) = meta.managed_fields.as_mut() {
        entries.retain(crate::cached::is_ours);
        for fields in entries.iter_mut().filter_map(|e| e.fields_v1.as_mut()) {
            if !fields.0.is_string() {
                fields.0 = serde_json::Value::String(fields.0.to_string());
            }
        }
    }
}
