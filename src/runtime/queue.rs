//! The work queue's depth, cache-sync flags and the spec-change predicate of the owner watch.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use futures::{Stream, StreamExt};
use kube::{
    Resource, ResourceExt,
    runtime::{
        predicates,
        reflector::{ObjectRef, Store},
        utils::Predicate,
        watcher,
    },
};
use tokio::sync::watch;

/// Resources triggered but not yet reconciled: the controller's work queue, as the depth metric
/// reports it. kube's Controller keeps its queue private, so the triggers are counted on their
/// way in and taken off when the reconcile starts (repeated triggers of one resource count once,
/// as in a queue).
pub struct WorkQueue<K: Resource<DynamicType = ()>> {
    pending: Mutex<HashSet<ObjectRef<K>>>,
}

impl<K: Resource<DynamicType = ()>> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> WorkQueue<K> {
    /// Records a trigger; returns the depth.
    pub fn push(&self, object: ObjectRef<K>) -> usize {
        let mut pending = self.lock();
        pending.insert(object);
        pending.len()
    }

    /// Takes a resource off the queue as its reconcile starts; returns the depth.
    pub fn take(&self, object: &ObjectRef<K>) -> usize {
        let mut pending = self.lock();
        pending.remove(object);
        pending.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ObjectRef<K>>> {
        // A poisoned lock only means a reconcile panicked holding it; the set is still whole.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a reflector's store holds its initial list, for any number of waiters at once.
///
/// kube's `Store::wait_until_ready` keeps one oneshot receiver behind a mutex, so of several tasks
/// waiting at the same time only the last one to poll is woken; reconciles waiting on it could wait
/// forever (they did after an operator restart with 1000 FeatureStores). This flag is set from the
/// watch stream itself ([`mark_synced`]) and wakes every waiter.
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// An unset flag and the sender that sets it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Resolves once the initial list is in; fails if the watch stopped before that.
    pub async fn wait(&self) -> Result<(), watch::error::RecvError> {
        self.0.clone().wait_for(|synced| *synced).await.map(|_| ())
    }
}

/// Passes a reflected watch stream through unchanged and sets `synced` when an initial list is
/// complete (the reflector has stored it by then).
pub fn mark_synced<K, S>(stream: S, synced: watch::Sender<bool>) -> impl Stream<Item = S::Item>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    stream.inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            synced.send_replace(true);
        }
    })
}

/// The generation and finalizers last seen per resource (by uid), so that only changes to them
/// trigger its reconcile (its own status writes do not); the first sight always does.
pub struct SpecSeen<K>(HashMap<String, u64>, std::marker::PhantomData<fn(&K)>);

impl<K: Resource<DynamicType = ()> + Clone> SpecSeen<K> {
    pub fn new() -> Self {
        Self(HashMap::new(), std::marker::PhantomData)
    }

    pub fn changed(&mut self, object: &K) -> bool {
        let Some(hash) = predicates::generation
            .combine(predicates::finalizers)
            .hash_property(object)
        else {
            return true;
        };
        self.0.insert(Self::key(object), hash) != Some(hash)
    }

    pub fn forget(&mut self, object: &K) {
        self.0.remove(&Self::key(object));
    }

    /// After a re-list, drops the resources that are gone (their deletion may not have been seen).
    pub fn keep_only(&mut self, store: &Store<K>) {
        let live: HashSet<String> = store.state().iter().map(|o| Self::key(o)).collect();
        self.0.retain(|key, _| live.contains(key));
    }

    fn key(object: &K) -> String {
        object.meta().uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                object.namespace().unwrap_or_default(),
                object.name_any()
            )
        })
    }
}

/// Aborts a background task when dropped, so every return path stops it.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
