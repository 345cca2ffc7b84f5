//! One cache per registered kind, fed by one watch per kind (label-filtered to our children), shared
//! with the controllers through subscribers.
//!
//! Not kube's reflector `Store`: its key for every object is an `ObjectRef` carrying its own copy of
//! the kind's `ApiResource` (five strings), and its readiness wakes only one of several waiters. Here
//! objects are kept by namespace, then name, both shared with the object itself, next to an index by
//! owner uid and what the engine found about each object's current version.

use std::{
    cmp::Ordering,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use futures::{Stream, StreamExt, TryStreamExt, channel::mpsc};
use kube::{
    Api, Client,
    api::DynamicObject,
    discovery::ApiResource,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
// foldhash's (randomly seeded) maps: every reconcile looks up each desired object and the owner's
// children here, and std's SipHash was a visible share of that.
use foldhash::{HashMap, HashSet};

use crate::{
    cached::CachedObject,
    error::ApplyError,
    fingerprint::{Finding, Findings},
    own_status::compare_resource_versions,
    registry::{KindSpec, Scope},
};

/// A stream of every object of one kind the watch sees change (added, modified, deleted), after
/// the cache was updated.
pub type Subscription = mpsc::Receiver<Arc<CachedObject>>;

pub(crate) struct KindCache {
    pub spec: KindSpec,
    /// The objects, shared with the kind's watch task.
    state: Arc<Mutex<KindState>>,
    /// Set once the watch task was handed out (or the cache preloaded).
    started: Mutex<bool>,
    subscribers: Mutex<Vec<mpsc::Sender<Arc<CachedObject>>>>,
    buffer: usize,
    /// True once the initial list is in the cache. Any number of tasks may wait on it at once
    /// (kube's `Store::wait_until_ready` wakes only the last of several waiters).
    synced: watch::Receiver<bool>,
    /// Set by the watch task (it takes the sender) or by `preload`.
    synced_tx: Mutex<Option<watch::Sender<bool>>>,
}

/// The namespace ("" when cluster-scoped) and name of a cached object within its kind.
type Name = (Arc<str>, Arc<str>);

/// Objects by namespace ("" for cluster-scoped ones), then name.
type Objects = HashMap<Arc<str>, HashMap<Arc<str>, Slot>>;

/// How many objects `objects` holds (a sum over its namespaces).
fn count(objects: &Objects) -> usize {
    objects.values().map(HashMap::len).sum()
}

/// One cached object, with what the engine found about this version of it (a new version from the
/// watch replaces the slot, and so forgets the findings, unless it differs only in status).
struct Slot {
    object: Arc<CachedObject>,
    findings: Findings,
}

/// Everything one kind's cache holds.
#[derive(Default)]
struct KindState {
    objects: Objects,
    /// How many objects `objects` holds, kept as it changes (counted on every reconcile for the
    /// owned-objects gauge, a sum over namespaces would grow with them).
    len: usize,
    /// The names of the cached objects carrying each owner-uid label, so that finding an owner's
    /// children does not scan every cached object (with 1000 owners that scan dominated a
    /// reconcile's CPU time).
    children: HashMap<Arc<str>, HashSet<Name>>,
    /// The objects of a (re-)list in progress; they replace `objects` when it completes (objects
    /// deleted while the watch was down never produce a delete event).
    listing: Option<Objects>,
    /// The same for the watches of one namespace each (see [`WatchScope`]): a namespace's list
    /// replaces that namespace's objects only, so one watch's re-list never drops what the
    /// others brought.
    namespace_listings: HashMap<Arc<str>, Objects>,
    /// Findings about versions the watch has not brought yet (see [`KindCache::remember_version`]).
    awaited: HashMap<Name, Awaited>,
    /// Children someone else deleted (the watch saw the delete; the engine had not sent it), with
    /// their owner's uid: the create that brings one back is a recreation to report.
    vanished: HashMap<Name, Remembered>,
    /// The engine's own deletes in flight, with the uid they delete: their delete events are not
    /// someone else's.
    deleting: HashMap<Name, Remembered>,
    /// Objects the engine deleted to replace them (an immutable field changed), with that field,
    /// until it creates them again.
    replacing: HashMap<Name, Remembered>,
}

/// A text remembered about a name for a while: an owner's uid (vanished), the object's uid
/// (deleting), or the field that made the engine replace it (replacing).
struct Remembered {
    uid: Arc<str>,
    at: std::time::Instant,
}

/// How long a vanished child or an own delete is remembered. The owner's reconcile that follows a
/// delete event comes within seconds; entries about owners that never reconcile again (deleted
/// with their children) must not pile up.
const REMEMBERED_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// Inserts `uid` for `name`, first forgetting entries older than [`REMEMBERED_FOR`].
fn remember_uid(map: &mut HashMap<Name, Remembered>, name: Name, uid: Arc<str>) {
    let now = std::time::Instant::now();
    map.retain(|_, entry| now.duration_since(entry.at) < REMEMBERED_FOR);
    map.insert(name, Remembered { uid, at: now });
}

/// Findings about one version of an object, held until the watch brings that version (they go
/// into its slot) or a later one (they are dropped).
struct Awaited {
    uid: Box<str>,
    resource_version: Box<str>,
    findings: Findings,
}

impl Awaited {
    fn is_about(&self, obj: &CachedObject) -> bool {
        *self.uid == *obj.uid() && *self.resource_version == *obj.resource_version()
    }

    /// Whether `obj` (a version the watch brought) is not older than the awaited version, so the
    /// watch will never bring that one (or already did).
    fn is_passed_by(&self, obj: &CachedObject) -> bool {
        compare_resource_versions(obj.resource_version(), &self.resource_version)
            != Some(Ordering::Less)
    }
}

/// What one watch of a kind covers: every namespace (`None`, also for a cluster-scoped kind), or
/// one namespace (the engine then runs one watch per watched namespace, all feeding one cache).
type WatchScope = Option<Arc<str>>;

impl KindState {
    /// Applies one event of the watch covering `scope`; returns the object to hand to
    /// subscribers, if any.
    fn apply_scoped(
        &mut self,
        scope: &WatchScope,
        event: watcher::Event<CachedObject>,
    ) -> Option<Arc<CachedObject>> {
        let Some(namespace) = scope else {
            return self.apply(event);
        };
        match event {
            watcher::Event::Init => {
                self.namespace_listings
                    .insert(namespace.clone(), Objects::default());
                None
            }
            watcher::Event::InitApply(obj) => {
                let findings = self.findings_for(&obj);
                let listing = self.namespace_listings.entry(namespace.clone());
                Some(put(listing.or_default(), obj, findings).0)
            }
            watcher::Event::InitDone => {
                let listed = self.namespace_listings.remove(namespace);
                let replaced = self.objects.remove(namespace);
                self.len -= replaced.as_ref().map_or(0, HashMap::len);
                let listed = listed.unwrap_or_default();
                self.len += count(&listed);
                self.objects.extend(listed);
                self.rebuild_children();
                self.drop_passed_awaited();
                None
            }
            event => self.apply(event),
        }
    }

    /// Applies one watch event; returns the object to hand to subscribers, if any.
    fn apply(&mut self, event: watcher::Event<CachedObject>) -> Option<Arc<CachedObject>> {
        match event {
            watcher::Event::Init => {
                self.listing = Some(Objects::default());
                None
            }
            watcher::Event::InitApply(obj) => {
                let findings = self.findings_for(&obj);
                let listing = self.listing.get_or_insert_default();
                Some(put(listing, obj, findings).0)
            }
            watcher::Event::InitDone => {
                self.objects = self.listing.take().unwrap_or_default();
                self.len = count(&self.objects);
                self.rebuild_children();
                self.drop_passed_awaited();
                None
            }
            watcher::Event::Apply(obj) => {
                let findings = self.findings_for(&obj);
                let (obj, previous) = put(&mut self.objects, obj, findings);
                match previous {
                    Some(previous) => self.unindex(&previous),
                    None => self.len += 1,
                }
                self.index(&obj);
                Some(obj)
            }
            watcher::Event::Delete(obj) => {
                take_awaited(&mut self.awaited, &obj);
                self.note_deletion(&obj);
                if let Some(previous) = self.take(&obj) {
                    self.unindex(&previous);
                }
                Some(Arc::new(obj))
            }
        }
    }

    /// What is known about the version `obj` the watch brought: the findings awaited for exactly
    /// this version (our apply answered with it), or else those about the cached version when the
    /// two differ only in status. A status write (a controller reporting progress) changes nothing
    /// a finding is about: desired bodies never carry status, and the cache keeps no status
    /// writer's managedFields. So the reconcile that follows a Deployment becoming available does
    /// not parse and compare its children again.
    fn findings_for(&mut self, obj: &CachedObject) -> Findings {
        let awaited = take_awaited(&mut self.awaited, obj);
        if !awaited.is_empty() {
            return awaited;
        }
        self.slot(&obj.namespace, &obj.name)
            .filter(|slot| slot.object.differs_only_in_status(obj))
            .map(|slot| slot.findings)
            .unwrap_or_default()
    }

    fn expect_deletion(&mut self, name: Name, uid: &str) {
        remember_uid(&mut self.deleting, name, uid.into());
    }

    fn take_vanished(&mut self, name: &Name, owner_uid: &str) -> bool {
        self.vanished
            .remove(name)
            .is_some_and(|entry| *entry.uid == *owner_uid)
    }

    /// Remembers a child deleted by someone else (not by one of the engine's own deletes).
    fn note_deletion(&mut self, obj: &CachedObject) {
        let name = (obj.namespace.clone(), obj.name.clone());
        if let Some(own) = self.deleting.remove(&name)
            && *own.uid == *obj.uid()
        {
            return;
        }
        if let Some(owner) = obj.owner_uid() {
            remember_uid(&mut self.vanished, name, owner.clone());
        }
    }

    fn slot(&self, namespace: &str, name: &str) -> Option<&Slot> {
        self.objects.get(namespace)?.get(name)
    }

    /// The slot of exactly this version of the object (the one a caller read from the cache).
    fn slot_of(&mut self, object: &CachedObject) -> Option<&mut Slot> {
        let slot = self
            .objects
            .get_mut(&object.namespace)?
            .get_mut(&object.name)?;
        std::ptr::eq(Arc::as_ptr(&slot.object), object).then_some(slot)
    }

    fn take(&mut self, obj: &CachedObject) -> Option<Arc<CachedObject>> {
        let names = self.objects.get_mut(&obj.namespace)?;
        let slot = names.remove(&obj.name)?;
        if names.is_empty() {
            self.objects.remove(&obj.namespace);
        }
        self.len -= 1;
        Some(slot.object)
    }

    fn index(&mut self, obj: &CachedObject) {
        index_child(&mut self.children, obj);
    }

    fn unindex(&mut self, obj: &CachedObject) {
        for owner in owner_uids(obj) {
            if let Some(names) = self.children.get_mut(&owner) {
                names.remove(&(obj.namespace.clone(), obj.name.clone()));
                if names.is_empty() {
                    self.children.remove(&owner);
                }
            }
        }
    }

    /// After a re-list: awaited versions of objects that are gone, or that the list showed at the
    /// same or a later version, will never arrive.
    fn drop_passed_awaited(&mut self) {
        let objects = &self.objects;
        self.awaited.retain(|(namespace, name), awaited| {
            let slot = objects.get(namespace).and_then(|names| names.get(name));
            slot.is_some_and(|slot| !awaited.is_passed_by(&slot.object))
        });
    }

    fn rebuild_children(&mut self) {
        self.children = HashMap::default();
        for slot in self.objects.values().flat_map(HashMap::values) {
            index_child(&mut self.children, &slot.object);
        }
    }
}

/// Adds `obj` under its owner-uid label, if it has one, or under each owner of a shared object.
fn index_child(children: &mut HashMap<Arc<str>, HashSet<Name>>, obj: &CachedObject) {
    for owner in owner_uids(obj) {
        let name = (obj.namespace.clone(), obj.name.clone());
        children.entry(owner).or_default().insert(name);
    }
}

/// The uids `obj` is indexed under: its owner-uid label, and the owners of a shared object.
fn owner_uids(obj: &CachedObject) -> impl Iterator<Item = Arc<str>> + '_ {
    let sharers = obj.sharers().iter().map(|r| Arc::from(&*r.uid));
    obj.owner_uid().cloned().into_iter().chain(sharers)
}

/// The findings awaited for exactly this version of `obj` (empty if none), forgetting any awaited
/// version it passes.
fn take_awaited(awaited: &mut HashMap<Name, Awaited>, obj: &CachedObject) -> Findings {
    if awaited.is_empty() {
        return Findings::default();
    }
    let name = (obj.namespace.clone(), obj.name.clone());
    let Some(entry) = awaited.get(&name) else {
        return Findings::default();
    };
    let findings = entry.is_about(obj).then_some(entry.findings);
    if entry.is_passed_by(obj) {
        awaited.remove(&name);
    }
    findings.unwrap_or_default()
}

/// Stores `obj` in `objects` (sharing the namespace string already held) with what is known about
/// it; returns it and the object it replaced.
fn put(
    objects: &mut Objects,
    mut obj: CachedObject,
    findings: Findings,
) -> (Arc<CachedObject>, Option<Arc<CachedObject>>) {
    if let Some((namespace, _)) = objects.get_key_value(&*obj.namespace) {
        obj.share_namespace(namespace);
    }
    let obj = Arc::new(obj);
    let slot = Slot {
        object: obj.clone(),
        findings,
    };
    let previous = objects
        .entry(obj.namespace.clone())
        .or_default()
        .insert(obj.name.clone(), slot);
    (obj, previous.map(|slot| slot.object))
}

impl KindCache {
    fn new(spec: KindSpec, buffer: usize) -> Self {
        let (synced_tx, synced) = watch::channel(false);
        Self {
            spec,
            state: Arc::default(),
            started: Mutex::new(false),
            subscribers: Mutex::default(),
            buffer,
            synced,
            synced_tx: Mutex::new(Some(synced_tx)),
        }
    }

    fn state(&self) -> MutexGuard<'_, KindState> {
        lock(&self.state)
    }

    /// The cached objects labelled with this owner uid, and the shared ones it is an owner of (not
    /// yet checked further).
    pub fn children_of(&self, owner_uid: &str) -> Vec<Arc<CachedObject>> {
        let state = self.state();
        let Some(names) = state.children.get(owner_uid) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|(namespace, name)| state.slot(namespace, name))
            .map(|slot| slot.object.clone())
            .collect()
    }

    /// Whether the engine found `finding` about this object (as read from this cache), and the
    /// watch has not replaced it since.
    pub fn remembers(&self, object: &CachedObject, finding: Finding) -> bool {
        self.state()
            .slot_of(object)
            .is_some_and(|slot| slot.findings.holds(finding))
    }

    /// Remembers `finding` about this object (as read from this cache), for as long as the cache
    /// holds this version of it (nothing is kept once the watch replaced or deleted it).
    pub fn remember(&self, object: &CachedObject, finding: Finding) {
        if let Some(slot) = self.state().slot_of(object) {
            slot.findings.add(finding);
        }
    }

    /// Remembers `finding` about the version `resource_version` of an object (uid `uid`), which the
    /// cache may not hold yet: what an apply of ours answered with. The finding goes beside that
    /// version now if the cache holds it, or when the watch brings it; it is dropped once the
    /// cache holds a later version (or the versions cannot be ordered).
    pub fn remember_version(
        &self,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
        resource_version: &str,
        finding: Finding,
    ) {
        let mut state = self.state();
        let namespace = namespace.unwrap_or_default();
        if let Some(slot) = state
            .objects
            .get_mut(namespace)
            .and_then(|names| names.get_mut(name))
        {
            let cached = &slot.object;
            if cached.uid() == uid && cached.resource_version() == resource_version {
                slot.findings.add(finding);
                return;
            }
            let order = compare_resource_versions(cached.resource_version(), resource_version);
            if order != Some(Ordering::Less) {
                return;
            }
        }
        let awaited = state.awaited.entry((namespace.into(), name.into()));
        let entry = awaited.or_insert_with(|| Awaited {
            uid: uid.into(),
            resource_version: resource_version.into(),
            findings: Findings::default(),
        });
        if *entry.uid != *uid || *entry.resource_version != *resource_version {
            // Findings about an earlier apply's version: this answer supersedes them.
            entry.uid = uid.into();
            entry.resource_version = resource_version.into();
            entry.findings = Findings::default();
        }
        entry.findings.add(finding);
    }

    /// Notes that the engine is about to delete this object (uid `uid`), so that its delete event
    /// is not taken for someone else's.
    pub fn expect_deletion(&self, namespace: Option<&str>, name: &str, uid: &str) {
        let name = (namespace.unwrap_or_default().into(), name.into());
        self.state().expect_deletion(name, uid);
    }

    /// Whether someone else deleted this child of `owner_uid` since the engine last made it
    /// (forgotten once asked).
    pub fn take_vanished(&self, namespace: Option<&str>, name: &str, owner_uid: &str) -> bool {
        let name = (namespace.unwrap_or_default().into(), name.into());
        self.state().take_vanished(&name, owner_uid)
    }

    /// Notes that the engine deleted this object to replace it because `field` changed.
    pub fn expect_replacement(&self, namespace: Option<&str>, name: &str, field: &str) {
        let name = (namespace.unwrap_or_default().into(), name.into());
        remember_uid(&mut self.state().replacing, name, field.into());
    }

    /// The immutable field for which the engine deleted this object, if it awaits its re-creation
    /// (forgotten once asked).
    pub fn take_replacement(&self, namespace: Option<&str>, name: &str) -> Option<String> {
        let name: Name = (namespace.unwrap_or_default().into(), name.into());
        let entry = self.state().replacing.remove(&name)?;
        Some(entry.uid.to_string())
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.state().len
    }

    fn synced_tx(&self) -> MutexGuard<'_, Option<watch::Sender<bool>>> {
        lock(&self.synced_tx)
    }

    /// Marks the cache as started; fails if it already was.
    fn start(&self) -> Result<(), ApplyError> {
        let mut started = lock(&self.started);
        if *started {
            return Err(already_started(&self.spec.resource));
        }
        *started = true;
        Ok(())
    }

    /// The cached object with this name and namespace.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<CachedObject>> {
        let state = self.state();
        let slot = state.slot(namespace.unwrap_or_default(), name)?;
        Some(slot.object.clone())
    }

    pub fn is_ready(&self) -> bool {
        *self.synced.borrow()
    }

    /// Resolves once the initial list is in the cache; fails if the watch stopped before that.
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
        if *lock(&cache.started) {
            return Err(already_started(resource));
        }
        let (tx, rx) = mpsc::channel(cache.buffer);
        lock(&cache.subscribers).push(tx);
        Ok(rx)
    }

    /// Fills the caches directly and marks them ready, for tests and dry runs without watches.
    pub fn preload(&self, objects: Vec<DynamicObject>) -> Result<(), ApplyError> {
        for cache in &self.kinds {
            cache.start()?;
            let mut state = cache.state();
            state.apply(watcher::Event::Init);
            for obj in objects.iter().filter(|o| {
                o.types
                    .as_ref()
                    .is_some_and(|t| cache.spec.matches(&t.api_version, &t.kind))
            }) {
                state.apply(watcher::Event::InitApply(CachedObject::new(obj.clone())));
            }
            state.apply(watcher::Event::InitDone);
            if let Some(synced) = cache.synced_tx().as_ref() {
                synced.send_replace(true);
            }
        }
        Ok(())
    }

    /// The tasks that keep every cache current: run them all (e.g. `join_all`) for the life of
    /// the process. `namespaces` as [`crate::EngineConfig::namespaces`].
    pub fn watch_tasks(
        &self,
        client: &Client,
        selector: Option<&str>,
        page_size: u32,
        namespaces: &[String],
    ) -> Result<Vec<impl Future<Output = ()> + Send + use<>>, ApplyError> {
        let mut tasks = Vec::new();
        for cache in &self.kinds {
            cache.start()?;
            let subscribers = std::mem::take(&mut *lock(&cache.subscribers));
            let synced = cache
                .synced_tx()
                .take()
                .ok_or_else(|| already_started(&cache.spec.resource))?;
            let resource = cache.spec.resource.clone();
            let watches = kind_watches(client, &resource, cache.spec.scope, selector, namespaces);
            let synced = Arc::new(SyncedWhenAll::new(synced, watches.len()));
            for (scope, api, selector) in watches {
                let mut config = watcher::Config::default()
                    .any_semantic()
                    .page_size(page_size.max(1));
                if let Some(selector) = selector {
                    config = config.labels(&selector);
                }
                let stream = watcher(api, config).default_backoff().map_ok(compact);
                let feed = Feed {
                    kind: resource.kind.clone(),
                    scope,
                    state: cache.state.clone(),
                    subscribers: subscribers.clone(),
                    synced: synced.clone(),
                    listed: false,
                };
                tasks.push(feed.run(stream));
            }
        }
        Ok(tasks)
    }
}

/// The watches of one kind: one of every namespace, or with `namespaces` one per namespace for a
/// namespaced kind and one limited by the owner-namespace label for a cluster-scoped kind.
fn kind_watches(
    client: &Client,
    resource: &ApiResource,
    scope: Scope,
    selector: Option<&str>,
    namespaces: &[String],
) -> Vec<(WatchScope, Api<DynamicObject>, Option<String>)> {
    let all = || Api::<DynamicObject>::all_with(client.clone(), resource);
    if namespaces.is_empty() {
        return vec![(None, all(), selector.map(str::to_owned))];
    }
    if scope == Scope::Cluster {
        let owners = format!(
            "{} in ({})",
            crate::labels::OWNER_NAMESPACE,
            namespaces.join(",")
        );
        let selector = match selector {
            Some(selector) => format!("{selector},{owners}"),
            None => owners,
        };
        return vec![(None, all(), Some(selector))];
    }
    namespaces
        .iter()
        .map(|namespace| {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource);
            (
                Some(Arc::from(namespace.as_str())),
                api,
                selector.map(str::to_owned),
            )
        })
        .collect()
}

/// A kind's readiness when several watches feed its cache: synced once each has listed.
struct SyncedWhenAll {
    unlisted: Mutex<usize>,
    synced: watch::Sender<bool>,
}

impl SyncedWhenAll {
    fn new(synced: watch::Sender<bool>, watches: usize) -> Self {
        Self {
            unlisted: Mutex::new(watches),
            synced,
        }
    }

    /// One watch completed its first list.
    fn listed(&self) {
        let mut unlisted = lock(&self.unlisted);
        *unlisted = unlisted.saturating_sub(1);
        if *unlisted == 0 {
            self.synced.send_replace(true);
        }
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; what it guards is
    // still structurally valid.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one watch task feeds: its kind's cache, subscribers and readiness.
struct Feed {
    kind: String,
    /// What the watch covers.
    scope: WatchScope,
    state: Arc<Mutex<KindState>>,
    subscribers: Vec<mpsc::Sender<Arc<CachedObject>>>,
    synced: Arc<SyncedWhenAll>,
    /// Whether this watch completed its first list.
    listed: bool,
}

impl Feed {
    /// Drives the watch: updates the cache, marks it synced once the initial list is in, and hands
    /// every changed object to the subscribers.
    async fn run<S>(mut self, stream: S)
    where
        S: Stream<Item = Result<watcher::Event<CachedObject>, watcher::Error>>,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    let error = crate::messages::message(&error);
                    tracing::warn!(kind = %self.kind, %error, "watch error; retrying with backoff");
                    continue;
                }
            };
            let list_done = matches!(event, watcher::Event::InitDone);
            let changed = lock(&self.state).apply_scoped(&self.scope, event);
            if list_done && !self.listed {
                self.listed = true;
                self.synced.listed();
            }
            if let Some(object) = changed {
                self.notify(object);
            }
        }
    }

    fn notify(&mut self, object: Arc<CachedObject>) {
        let kind = &self.kind;
        // Never wait for a subscriber: a controller that is not polling yet (e.g. before it won
        // leader election) must not freeze the caches. A full subscriber misses this trigger
        // (its controller's periodic resync covers it); a dropped one is forgotten.
        self.subscribers
            .retain_mut(|tx| match tx.try_send(object.clone()) {
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

/// For a controller's cache of its owner objects (`.modify(...)` before `.reflect(...)`, or when compacting them):
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A ConfigMap whose data changes with every version (as if someone edited it each time).
    fn child(name: &str, owner: &str, version: &str) -> CachedObject {
        let served = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "resourceVersion": version,
                         "labels": {"fieldwise.dev/owner-uid": owner}},
            "data": {"edit": version}
        });
        CachedObject::new(serde_json::from_value(served).expect("object"))
    }

    /// A Deployment with the given uid, replicas and status.
    fn workload(
        uid: &str,
        version: &str,
        replicas: u32,
        status: serde_json::Value,
    ) -> CachedObject {
        let served = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "uid": uid, "resourceVersion": version,
                         "generation": 1, "labels": {"fieldwise.dev/owner-uid": "o1"}},
            "spec": {"replicas": replicas},
            "status": status
        });
        CachedObject::new(serde_json::from_value(served).expect("object"))
    }

    impl KindState {
        fn slot_mut_for_test(&mut self, name: &str) -> &mut Slot {
            let read = self.slot("ns", name).expect("cached").object.clone();
            self.slot_of(&read).expect("current")
        }
    }

    fn names(state: &KindState, owner: &str) -> Vec<String> {
        let mut names: Vec<String> = state
            .children
            .get(owner)
            .into_iter()
            .flatten()
            .map(|(_, name)| name.to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn watch_events_keep_objects_and_the_owner_index_current() {
        let mut state = KindState::default();
        state.apply(watcher::Event::Init);
        state.apply(watcher::Event::InitApply(child("a", "o1", "1")));
        state.apply(watcher::Event::InitApply(child("b", "o1", "2")));
        assert!(
            state.slot("ns", "a").is_none(),
            "a list is swapped in when complete"
        );
        state.apply(watcher::Event::InitDone);
        assert_eq!(names(&state, "o1"), ["a", "b"]);
        assert_eq!(state.len, 2);

        // A new owner label moves the object in the index; a delete removes it.
        state.apply(watcher::Event::Apply(child("a", "o2", "3")));
        assert_eq!(names(&state, "o1"), ["b"]);
        assert_eq!(names(&state, "o2"), ["a"]);
        state.apply(watcher::Event::Apply(child("d", "o2", "4")));
        state.apply(watcher::Event::Delete(child("b", "o1", "4")));
        assert!(state.slot("ns", "b").is_none());
        assert!(!state.children.contains_key("o1"));
        assert_eq!(state.len, 2, "a and d");

        // A re-list replaces everything: objects deleted while the watch was down are gone.
        state.apply(watcher::Event::Init);
        state.apply(watcher::Event::InitApply(child("c", "o3", "5")));
        assert!(
            state.slot("ns", "a").is_some(),
            "the old objects serve reads until then"
        );
        state.apply(watcher::Event::InitDone);
        assert!(state.slot("ns", "a").is_none());
        assert_eq!(names(&state, "o3"), ["c"]);
        assert!(!state.children.contains_key("o2"));
        assert_eq!(state.len, 1);
    }

    /// A ConfigMap `name` in `namespace`, child of `owner`.
    fn child_in(namespace: &str, name: &str, owner: &str, version: &str) -> CachedObject {
        let served = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                         "resourceVersion": version,
                         "labels": {"fieldwise.dev/owner-uid": owner}},
        });
        CachedObject::new(serde_json::from_value(served).expect("object"))
    }

    #[test]
    fn a_namespace_watch_relisting_replaces_its_namespace_only() {
        let mut state = KindState::default();
        let (a, b): (WatchScope, WatchScope) = (Some("a".into()), Some("b".into()));
        for (scope, namespace) in [(&a, "a"), (&b, "b")] {
            state.apply_scoped(scope, watcher::Event::Init);
            let listed = child_in(namespace, "x", &format!("o-{namespace}"), "1");
            state.apply_scoped(scope, watcher::Event::InitApply(listed));
            state.apply_scoped(scope, watcher::Event::InitDone);
        }
        state.apply_scoped(&a, watcher::Event::Apply(child_in("a", "y", "o-a", "2")));

        // b's watch re-lists while a's list is also in progress: each replaces its own namespace.
        state.apply_scoped(&b, watcher::Event::Init);
        state.apply_scoped(&a, watcher::Event::Init);
        let relisted = child_in("b", "z", "o-b", "3");
        state.apply_scoped(&b, watcher::Event::InitApply(relisted));
        state.apply_scoped(&b, watcher::Event::InitDone);
        assert!(state.slot("a", "x").is_some() && state.slot("a", "y").is_some());
        assert!(
            state.slot("b", "x").is_none(),
            "gone while b's watch was down"
        );
        assert!(state.slot("b", "z").is_some());
        assert_eq!(names(&state, "o-a"), ["x", "y"]);
        assert_eq!(names(&state, "o-b"), ["z"]);
        assert_eq!(state.len, 3);

        state.apply_scoped(
            &a,
            watcher::Event::InitApply(child_in("a", "y", "o-a", "4")),
        );
        state.apply_scoped(&a, watcher::Event::InitDone);
        assert!(state.slot("a", "x").is_none() && state.slot("a", "y").is_some());
        assert!(
            state.slot("b", "z").is_some(),
            "a's re-list keeps b's objects"
        );
        assert_eq!(state.len, count(&state.objects));
        assert_eq!(state.len, 2);
    }

    #[test]
    fn children_deleted_by_someone_else_are_remembered_not_the_engines_own_deletes() {
        let mut state = KindState::default();
        state.apply(watcher::Event::Init);
        for (name, version) in [("a", "1"), ("b", "2")] {
            state.apply(watcher::Event::InitApply(child(name, "o1", version)));
        }
        state.apply(watcher::Event::InitDone);
        let name = |n: &str| -> Name { ("ns".into(), n.into()) };
        state.expect_deletion(name("b"), "uid-b");
        state.apply(watcher::Event::Delete(child("a", "o1", "3")));
        state.apply(watcher::Event::Delete(child("b", "o1", "4")));
        assert!(!state.take_vanished(&name("a"), "o2"), "another owner's");
        state.apply(watcher::Event::Apply(child("a", "o1", "5")));
        state.apply(watcher::Event::Delete(child("a", "o1", "6")));
        assert!(
            state.take_vanished(&name("a"), "o1"),
            "deleted by someone else"
        );
        assert!(
            !state.take_vanished(&name("a"), "o1"),
            "forgotten once asked"
        );
        assert!(
            !state.take_vanished(&name("b"), "o1"),
            "the engine's own delete"
        );
    }

    #[test]
    fn findings_are_forgotten_when_the_watch_brings_a_new_version() {
        let mut state = KindState::default();
        state.apply(watcher::Event::Apply(child("a", "o1", "1")));
        let read = state.slot("ns", "a").expect("cached").object.clone();
        let finding = Finding::InSyncWith(42);
        state
            .slot_of(&read)
            .expect("same version")
            .findings
            .add(finding);
        assert!(
            state
                .slot_of(&read)
                .is_some_and(|s| s.findings.holds(finding))
        );

        state.apply(watcher::Event::Apply(child("a", "o1", "2")));
        assert!(
            state.slot_of(&read).is_none(),
            "the copy read earlier is outdated"
        );
        let current = state.slot("ns", "a").expect("cached");
        assert!(!current.findings.holds(finding));
    }

    #[test]
    fn findings_outlive_a_status_write_but_not_a_change_or_a_recreation() {
        let mut state = KindState::default();
        let finding = Finding::InSyncWith(42);
        let holds = |state: &KindState| {
            state
                .slot("ns", "d")
                .is_some_and(|s| s.findings.holds(finding))
        };
        state.apply(watcher::Event::Apply(workload("u1", "1", 2, json!({}))));
        state.slot_mut_for_test("d").findings.add(finding);

        let available = json!({"availableReplicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
        state.apply(watcher::Event::Apply(workload(
            "u1",
            "2",
            2,
            available.clone(),
        )));
        assert!(holds(&state), "a status write changes nothing found");
        let restored = state.slot("ns", "d").expect("cached").object.to_value();
        assert_eq!(
            restored.map(|v| v["status"].clone()),
            Some(available.clone()),
            "the status is still cached"
        );

        state.apply(watcher::Event::Init);
        state.apply(watcher::Event::InitApply(workload(
            "u1",
            "2",
            2,
            available.clone(),
        )));
        state.apply(watcher::Event::InitDone);
        assert!(
            holds(&state),
            "a re-list showing the same object keeps them"
        );

        state.apply(watcher::Event::Apply(workload(
            "u1",
            "3",
            3,
            available.clone(),
        )));
        assert!(!holds(&state), "someone scaled it");

        state.slot_mut_for_test("d").findings.add(finding);
        state.apply(watcher::Event::Apply(workload("u2", "4", 3, available)));
        assert!(!holds(&state), "deleted and created again: another object");
    }

    #[test]
    fn findings_about_a_version_wait_for_the_watch_to_bring_it() {
        let cache = KindCache::new(
            KindSpec::namespaced::<k8s_openapi::api::core::v1::ConfigMap>(),
            1,
        );
        let finding = Finding::InSyncWith(42);
        let holds = |name: &str| {
            let cached = cache.get(Some("ns"), name).expect("cached");
            cache.remembers(&cached, finding)
        };
        cache
            .state()
            .apply(watcher::Event::Apply(child("a", "o1", "1")));
        cache
            .state()
            .apply(watcher::Event::Apply(child("b", "o1", "2")));

        // Our apply answered with version 5 of `a`; the cache still shows version 1.
        cache.remember_version(Some("ns"), "a", "uid-a", "5", finding);
        assert!(!holds("a"), "version 1 is not the applied one");
        cache
            .state()
            .apply(watcher::Event::Apply(child("a", "o1", "5")));
        assert!(holds("a"), "the watch brought the applied version");
        cache
            .state()
            .apply(watcher::Event::Apply(child("a", "o1", "6")));
        assert!(!holds("a"), "someone changed it since");

        // The watch brought the version before the answer was read.
        cache.remember_version(Some("ns"), "a", "uid-a", "6", finding);
        assert!(holds("a"));

        // Never attached to a later version, nor to another object of the same name.
        cache.remember_version(Some("ns"), "b", "uid-b", "7", finding);
        cache
            .state()
            .apply(watcher::Event::Apply(child("b", "o1", "8")));
        assert!(!holds("b"));
        assert!(
            cache.state().awaited.is_empty(),
            "a passed version is not kept"
        );
        cache.remember_version(Some("ns"), "b", "uid-other", "9", finding);
        cache
            .state()
            .apply(watcher::Event::Apply(child("b", "o1", "9")));
        assert!(!holds("b"), "same version, other uid");

        // An older version than the cached one is not awaited; a re-list drops what it passed.
        cache.remember_version(Some("ns"), "a", "uid-a", "3", finding);
        cache.remember_version(Some("ns"), "c", "uid-c", "10", finding);
        assert_eq!(cache.state().awaited.len(), 1);
        let mut state = cache.state();
        state.apply(watcher::Event::Init);
        state.apply(watcher::Event::InitApply(child("a", "o1", "6")));
        state.apply(watcher::Event::InitDone);
        assert!(
            state.awaited.is_empty(),
            "c is gone: its version will never come"
        );
    }
}
