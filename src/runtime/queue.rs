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

/// Which resources refer to which ([`Controller::references`](super::Controller::references)),
/// kept from the owner watch's events, so that a change finds the resources that depend on it
/// without scanning the cache (a scan per change grows with the number of resources).
pub struct ReferenceIndex<K: Resource<DynamicType = ()>> {
    /// What each resource refers to, only for those that refer to any.
    outgoing: HashMap<ObjectRef<K>, Vec<ObjectRef<K>>>,
    /// The resources that refer to each referenced one.
    incoming: HashMap<ObjectRef<K>, HashSet<ObjectRef<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone> ReferenceIndex<K> {
    pub fn new() -> Self {
        Self {
            outgoing: HashMap::new(),
            incoming: HashMap::new(),
        }
    }

    /// `object` was seen referring to `references`, in place of what it referred to before.
    /// Returns the resources that refer to `object`.
    pub fn applied(&mut self, object: &K, references: Vec<ObjectRef<K>>) -> Vec<ObjectRef<K>> {
        let key = ObjectRef::from_obj(object);
        self.unlink(&key);
        for referenced in &references {
            let referrers = self.incoming.entry(referenced.clone()).or_default();
            referrers.insert(key.clone());
        }
        if !references.is_empty() {
            self.outgoing.insert(key.clone(), references);
        }
        self.referrers(&key)
    }

    /// `object` is gone: forgets what it referred to. Returns the resources that refer to it.
    pub fn deleted(&mut self, object: &K) -> Vec<ObjectRef<K>> {
        let key = ObjectRef::from_obj(object);
        self.unlink(&key);
        self.referrers(&key)
    }

    /// After a re-list, forgets the references of resources that are gone (their deletion may not
    /// have been seen).
    pub fn keep_only(&mut self, store: &Store<K>) {
        let gone: Vec<ObjectRef<K>> = self
            .outgoing
            .keys()
            .filter(|key| store.get(key).is_none())
            .cloned()
            .collect();
        for key in gone {
            self.unlink(&key);
        }
    }

    fn referrers(&self, key: &ObjectRef<K>) -> Vec<ObjectRef<K>> {
        let referrers = self.incoming.get(key).into_iter().flatten();
        referrers.cloned().collect()
    }

    /// Removes what `key` refers to from the index.
    fn unlink(&mut self, key: &ObjectRef<K>) {
        for referenced in self.outgoing.remove(key).unwrap_or_default() {
            if let Some(referrers) = self.incoming.get_mut(&referenced) {
                referrers.remove(key);
                if referrers.is_empty() {
                    self.incoming.remove(&referenced);
                }
            }
        }
    }
}

/// Aborts a background task when dropped, so every return path stops it.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn object(namespace: &str, name: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.to_owned());
        object.metadata.name = Some(name.to_owned());
        object
    }

    fn to(namespace: &str, name: &str) -> ObjectRef<ConfigMap> {
        ObjectRef::new(name).within(namespace)
    }

    fn sorted(mut refs: Vec<ObjectRef<ConfigMap>>) -> Vec<String> {
        refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        refs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_change_finds_the_resources_that_refer_to_it_now() {
        let mut index = ReferenceIndex::new();
        let registry = object("a", "registry");
        assert!(index.applied(&registry, Vec::new()).is_empty());
        assert!(
            index
                .applied(&object("a", "one"), vec![to("a", "registry")])
                .is_empty()
        );
        index.applied(&object("b", "two"), vec![to("a", "registry")]);
        index.applied(&object("b", "three"), vec![to("b", "other")]);
        assert_eq!(
            sorted(index.applied(&registry, Vec::new())),
            sorted(vec![to("a", "one"), to("b", "two")])
        );

        // `two` now refers elsewhere, `one` is deleted: neither depends on the registry any more.
        index.applied(&object("b", "two"), vec![to("b", "other")]);
        assert!(index.deleted(&object("a", "one")).is_empty());
        assert!(index.applied(&registry, Vec::new()).is_empty());
        assert_eq!(
            sorted(index.deleted(&object("b", "other"))),
            sorted(vec![to("b", "three"), to("b", "two")]),
            "the deletion of a referenced resource reconciles its referrers"
        );
        assert!(index.incoming.keys().all(|k| k.name == "other"));
        assert_eq!(index.outgoing.len(), 2);
    }

    #[test]
    fn a_relist_forgets_the_references_of_resources_gone_meanwhile() {
        let mut index = ReferenceIndex::new();
        index.applied(&object("a", "kept"), vec![to("a", "registry")]);
        index.applied(&object("a", "gone"), vec![to("a", "registry")]);
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(object("a", "kept")));
        writer.apply_watcher_event(&Event::InitDone);
        index.keep_only(&reader);
        assert_eq!(
            sorted(index.applied(&object("a", "registry"), Vec::new())),
            vec![to("a", "kept").to_string()]
        );
        assert_eq!(index.outgoing.len(), 1);
    }
}
