//! One reflector store per registered kind, fed by one watch per kind (label-filtered to our
//! children), shared with the controllers through subscribers.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::{Stream, StreamExt, channel::mpsc};
use tokio::sync::watch;
use kube::{
    Api, Client,
    api::DynamicObject,
    discovery::ApiResource,
    runtime::{
        WatchStreamExt,
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use crate::{HANDOVER_MANAGER, MANAGER, error::ApplyError, registry::KindSpec};

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
        }
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
            writers.push((cache.spec.resource.clone(), writer, subscribers, synced));
        }
        Ok(writers
            .into_iter()
            .map(|(resource, writer, subscribers, synced)| {
                let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
                let mut config = watcher::Config::default().any_semantic();
                if let Some(selector) = selector {
                    config = config.labels(selector);
                }
                let kind = resource.kind.clone();
                let stream = watcher(api, config)
                    .default_backoff()
                    .modify(strip_for_cache)
                    .reflect(writer);
                fan_out(kind, stream, subscribers, synced)
            })
            .collect())
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
/// resource (and `/scale`) stay: they tell which manager changed a field we own (drift).
pub(crate) fn strip_for_cache(obj: &mut DynamicObject) {
    if let Some(entries) = obj.metadata.managed_fields.as_mut() {
        entries.retain(|e| {
            is_ours(e)
                || e.subresource
                    .as_deref()
                    .is_none_or(|s| s.is_empty() || s == "scale")
        });
    }
    if let Some(annotations) = obj.metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
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
/// needs to skip unchanged status writes. Without it every status apply is sent (a no-op for
/// the server, but a write request).
pub fn keep_own_managed_fields(meta: &mut ObjectMeta) {
    if let Some(entries) = meta.managed_fields.as_mut() {
        entries.retain(is_ours);
    }
}
