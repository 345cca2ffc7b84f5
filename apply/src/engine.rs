//! The engine: caches, reconcile of a desired graph, status, and cluster-scoped cleanup.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, future::join_all, stream::select_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Client, Resource,
    api::{
        DeleteParams, DynamicObject, GetParams, Patch, PatchParams, Preconditions,
        PropagationPolicy,
    },
    core::Request,
    discovery::ApiResource,
    runtime::reflector::ObjectRef,
};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, Span, field::Empty};

use crate::{
    HANDOVER_MANAGER, MANAGER,
    cache::{Caches, KindCache, Subscription},
    cached::CachedObject,
    desired::{DesiredObject, Owner, OwnerStamp, Prepared, ReplicasPolicy, prepare_owned},
    error::{ApplyError, ObjectKey},
    fields,
    fingerprint::{Finding, fingerprint},
    identity::Identity,
    immutable, labels,
    own_status::OwnStatusWrites,
    registry::{KindRegistry, Scope},
    report::{DriftReport, Outcome, ReconcileReport},
    takeover,
    transport::{self, RetryConfig, SendError, Success},
};

/// Tunables of an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Retry bounds of every request.
    pub retry: RetryConfig,
    /// Label selector of the watches; `None` watches every object of the registered kinds.
    /// Default: `app.kubernetes.io/managed-by=fieldwise`.
    pub watch_selector: Option<String>,
    /// Events buffered per subscriber before the watch waits for slow subscribers.
    pub subscriber_buffer: usize,
    /// How long a reconcile waits for the caches' initial lists before failing.
    pub cache_ready_timeout: Duration,
    /// Objects per page of the watches' (re-)lists. Each page is decoded whole before the cache
    /// compacts its objects, so smaller pages keep the memory peak of a restart low; kube's
    /// default of 500 left the operator's resident memory high after listing 15000 children.
    pub list_page_size: u32,
    /// Field managers the engine takes over from: before applying to an object with their
    /// main-resource managedFields entries, it makes their field ownership its own (see
    /// `crate::takeover`), so the apply removes what they set and the desired body does not.
    /// Default: none.
    pub take_over_from: Vec<String>,
    /// The namespaces whose children the engine watches and caches; empty for every namespace
    /// (one watch per kind). Otherwise a namespaced kind is watched once per namespace, and a
    /// cluster-scoped kind once, limited by its owner-namespace label to children of owners in
    /// these namespaces, so a child of an owner elsewhere is never cached nor triggers anything.
    pub namespaces: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            retry: RetryConfig::default(),
            watch_selector: Some(labels::managed_selector()),
            subscriber_buffer: 256,
            cache_ready_timeout: Duration::from_secs(30),
            list_page_size: 100,
            take_over_from: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}

/// The server-side-apply engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    registry: KindRegistry,
    caches: Caches,
    config: EngineConfig,
    own_status: OwnStatusWrites,
}

/// Which kind of per-object span to open.
#[derive(Clone, Copy)]
enum Op {
    Apply,
    Skip,
    Prune,
    Handover,
    Status,
}

fn object_span(op: Op, key: &ObjectKey) -> Span {
    let ns = key.namespace.as_deref().unwrap_or("");
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!($name, "k8s.object.kind" = %key.kind, "k8s.namespace.name" = ns,
                "k8s.object.name" = %key.name, outcome = Empty, "otel.status_code" = Empty,
                "otel.status_description" = Empty)
        };
    }
    match op {
        Op::Apply => span!("apply"),
        Op::Skip => span!("skip"),
        Op::Prune => span!("prune"),
        Op::Handover => span!("handover"),
        Op::Status => span!("status"),
    }
}

fn record(span: &Span, outcome: &Outcome) {
    span.record("outcome", outcome.as_str());
    if let Outcome::Failed(error) = outcome {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", error.to_string());
        tracing::warn!(parent: span, %error, "object failed");
    }
}

fn send_error(object: &ObjectKey, verb: &'static str, error: SendError) -> ApplyError {
    match error {
        SendError::Final(f) => ApplyError::Rejected {
            object: object.to_string(),
            verb,
            code: f.code,
            reason: f.reason,
            message: f.message,
        },
        SendError::Exhausted { attempts, last } => ApplyError::RetriesExhausted {
            object: object.to_string(),
            verb,
            attempts,
            last,
        },
        SendError::Malformed(message) => ApplyError::BadResponse {
            object: object.to_string(),
            verb,
            message,
        },
        SendError::Fenced(message) => ApplyError::Fenced {
            object: object.to_string(),
            verb,
            message,
        },
    }
}

fn url_path(resource: &ApiResource, namespace: Option<&str>) -> String {
    <DynamicObject as Resource>::url_path(resource, namespace)
}

/// The minimal body addressing an object: `apiVersion`, `kind`, name and namespace.
fn skeleton(key: &ObjectKey) -> Value {
    let mut metadata = json!({"name": key.name});
    if let Some(ns) = &key.namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": key.api_version, "kind": key.kind, "metadata": metadata})
}

/// What an apply did: its outcome, the drift it corrected, and the version it left.
type Applied = (Outcome, Vec<DriftReport>, Identity);

/// Attempts at a takeover whose object keeps changing under it (kube-controller-manager writes a
/// Deployment's status often); after them the reconcile fails and is retried later.
const TAKEOVER_ATTEMPTS: u32 = 3;

/// Refuses an object whose controller ownerReference names another owner than `p`'s: applying
/// ours beside it would give it two controllers, which the API rejects.
fn refuse_foreign_controller(p: &Prepared, live: &Value) -> Result<(), ApplyError> {
    if p.shared {
        return refuse_foreign_sharing(p, live);
    }
    let ours = p
        .body
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(labels::OWNER_UID))
        .and_then(Value::as_str);
    let Some(controller) = live_controller(live) else {
        return refuse_foreign_owner_label(p, ours, live);
    };
    if Some(text_of(controller, "uid")) == ours {
        return Ok(());
    }
    Err(controlled_by(p, controller))
}

/// The owner reference of `live` with `controller: true` (the API allows one).
fn live_controller(live: &Value) -> Option<&Value> {
    fields::at(live, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

fn text_of<'a>(reference: &'a Value, key: &str) -> &'a str {
    reference
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The refusal of `p` because `controller` (an owner reference) controls it.
fn controlled_by(p: &Prepared, controller: &Value) -> ApplyError {
    ApplyError::ControlledByAnother {
        object: p.key.to_string(),
        controller: format!(
            "{} {}",
            text_of(controller, "kind"),
            text_of(controller, "name")
        ),
        controller_uid: text_of(controller, "uid").to_owned(),
    }
}

/// Refuses to share an object another owner controls: a controller reference, or an owner-uid
/// label, naming an owner that is not among the body's owners. (One of them controlling it, as
/// before it was shared, is fine: the apply makes it shared.)
fn refuse_foreign_sharing(p: &Prepared, live: &Value) -> Result<(), ApplyError> {
    let sharers: Vec<&str> = fields::at(&p.body, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .collect();
    let foreign = live_controller(live).filter(|c| !sharers.contains(&text_of(c, "uid")));
    if let Some(controller) = foreign {
        return Err(controlled_by(p, controller));
    }
    let labelled =
        fields::at(live, &["metadata", "labels", labels::OWNER_UID]).and_then(Value::as_str);
    match labelled {
        Some(uid) if !sharers.contains(&uid) => refuse_foreign_owner_label(p, None, live),
        _ => Ok(()),
    }
}

/// Refuses an object without a controller reference (cluster-scoped children cannot have one)
/// whose owner-uid label names another owner: two FeatureStores whose cluster-scoped names
/// collide must not take the object from each other, apply after apply.
fn refuse_foreign_owner_label(
    p: &Prepared,
    ours: Option<&str>,
    live: &Value,
) -> Result<(), ApplyError> {
    let live_labels = fields::at(live, &["metadata", "labels"]);
    let label = |key: &str| {
        live_labels
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    };
    match label(labels::OWNER_UID) {
        Some(theirs) if Some(theirs) != ours => Err(ApplyError::ControlledByAnother {
            object: p.key.to_string(),
            controller: format!(
                "{} {}{}",
                label(labels::OWNER_KIND).unwrap_or("owner"),
                label(labels::OWNER_NAMESPACE)
                    .map(|ns| format!("{ns}/"))
                    .unwrap_or_default(),
                label(labels::INSTANCE).unwrap_or_default(),
            ),
            controller_uid: theirs.to_owned(),
        }),
        _ => Ok(()),
    }
}

enum DeleteResult {
    Gone,
    Terminating,
    Replaced,
}

impl Engine {
    /// An engine with the default [`EngineConfig`].
    ///
    /// The engine retries requests itself: build the `Client` from a `Config` with
    /// `default_retry = false`, or kube's own retry layer (up to 15 retries, long delays) stacks
    /// on top and a reconcile may hang.
    pub fn new(client: Client, registry: KindRegistry) -> Self {
        Self::with_config(client, registry, EngineConfig::default())
    }

    /// An engine with explicit tunables.
    pub fn with_config(client: Client, registry: KindRegistry, config: EngineConfig) -> Self {
        let caches = Caches::new(registry.kinds(), config.subscriber_buffer.max(1));
        Self {
            inner: Arc::new(Inner {
                client,
                registry,
                caches,
                config,
                own_status: OwnStatusWrites::default(),
            }),
        }
    }

    /// The kind registry (for RBAC generation: [`KindRegistry::policy_rules`]).
    pub fn registry(&self) -> &KindRegistry {
        &self.inner.registry
    }

    /// A subscriber to the shared watch of one registered kind, yielding every changed object
    /// after the cache was updated. Call before [`Self::run_watches`]. A subscriber that falls
    /// `subscriber_buffer` events behind misses triggers instead of stalling the caches. The
    /// objects are as cached ([`CachedObject`]: the lookup metadata typed, the rest compressed); use
    /// [`Self::cached`] to read one whole.
    pub fn subscribe(&self, resource: &ApiResource) -> Result<Subscription, ApplyError> {
        self.inner.caches.subscribe(resource)
    }

    /// One stream of owner references, merged over every registered kind, for
    /// `Controller::reconcile_on`: a change to any child (namespaced children through their
    /// controller ownerReference to a `K`, cluster-scoped ones through the owner-kind, instance
    /// and owner-namespace labels) triggers a reconcile of its owner. Call before
    /// [`Self::run_watches`], once per controller, and hand the stream to that controller.
    pub fn owner_triggers<K>(
        &self,
    ) -> Result<impl Stream<Item = ObjectRef<K>> + Send + 'static + use<K>, ApplyError>
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        let mut handles = Vec::new();
        for cache in &self.inner.caches.kinds {
            let scope = cache.spec.scope;
            let handle = self.subscribe(&cache.spec.resource)?;
            handles.push(
                handle.flat_map(move |child| futures::stream::iter(owners_of::<K>(&child, scope))),
            );
        }
        Ok(select_all(handles))
    }

    /// The future that runs every watch and keeps the caches current. Spawn it once
    /// (`tokio::spawn(engine.run_watches()?)`); it never completes.
    pub fn run_watches(
        &self,
    ) -> Result<impl Future<Output = ()> + Send + 'static + use<>, ApplyError> {
        let config = &self.inner.config;
        let tasks = self.inner.caches.watch_tasks(
            &self.inner.client,
            config.watch_selector.as_deref(),
            config.list_page_size,
            &config.namespaces,
        )?;
        Ok(async move {
            join_all(tasks).await;
        })
    }

    /// Resolves once every cache has completed its initial list (for `/readyz`). Any number of
    /// tasks may wait at once; all of them are woken.
    pub async fn wait_until_ready(&self) -> Result<(), ApplyError> {
        for cache in &self.inner.caches.kinds {
            cache
                .wait_until_synced()
                .await
                .map_err(|_| ApplyError::CacheNotReady {
                    kind: cache.spec.resource.kind.clone(),
                })?;
        }
        Ok(())
    }

    /// The cached live object of a registered kind, for controllers that derive status from their
    /// children without a request. With the default watch selector the caches hold only objects
    /// labelled `app.kubernetes.io/managed-by=fieldwise`; managedFields entries of other managers'
    /// status writes are stripped. The object is restored for each call (the cache keeps most of it
    /// compressed, see [`CachedObject`]).
    pub fn cached(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let cached = self
            .inner
            .caches
            .find(api_version, kind)?
            .get(namespace, name)?;
        cached.to_dynamic().map(Arc::new)
    }

    /// Whether the cache of a registered kind holds the object. Nothing is restored, unlike
    /// [`Self::cached`]: for controllers that only ask whether a child exists.
    pub fn is_cached(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        self.inner
            .caches
            .find(api_version, kind)
            .is_some_and(|cache| cache.get(namespace, name).is_some())
    }

    /// The fields of a cached object that `T` declares, read straight from its cached JSON (no
    /// `DynamicObject`, nothing else built): for controllers that read a few fields of a child on
    /// every reconcile. Its namespace, name, uid and resourceVersion are not part of that JSON.
    pub fn cached_fields<T: serde::de::DeserializeOwned>(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<T> {
        let cache = self.inner.caches.find(api_version, kind)?;
        cache.get(namespace, name)?.fields()
    }

    /// How many objects of each registered kind the caches hold (the objects fieldwise manages),
    /// as `(kind, count)` in registration order.
    pub fn cached_counts(&self) -> Vec<(String, usize)> {
        let kinds = self.inner.caches.kinds.iter();
        kinds
            .map(|cache| (cache.spec.resource.kind.clone(), cache.len()))
            .collect()
    }

    /// Whether every cache has completed its initial list, without waiting.
    pub fn is_ready(&self) -> bool {
        self.inner.caches.kinds.iter().all(KindCache::is_ready)
    }

    /// Fills the caches with the given objects and marks them ready, instead of watching.
    /// For tests and offline runs; fails once [`Self::run_watches`] was called.
    pub fn preload(&self, objects: Vec<DynamicObject>) -> Result<(), ApplyError> {
        self.inner.caches.preload(objects)
    }

    /// Makes the cluster match the desired graph of one owner.
    ///
    /// Order: validation of every object; replicas handovers; applies in graph order (skipping
    /// objects already in sync, without a request); then, only if every object succeeded,
    /// prune of children of prunable kinds that carry the owner's uid and are no longer desired.
    pub async fn reconcile(&self, owner: &Owner, desired: Vec<DesiredObject>) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let mut ready: Vec<Prepared> = Vec::new();
        let mut seen = HashSet::new();
        let stamp = OwnerStamp::new(owner);
        for (index, object) in desired.into_iter().enumerate() {
            match prepare_owned(&self.inner.registry, &stamp, object, index) {
                Ok(p) if !seen.insert(p.key.clone()) => {
                    let error = ApplyError::InvalidObject {
                        object: p.key.to_string(),
                        reason: "appears twice in the desired graph".into(),
                    };
                    report.push(p.key, Some(index), p.component, Outcome::Failed(error));
                }
                Ok(p) => ready.push(p),
                Err(refused) => report.push(
                    refused.key,
                    Some(index),
                    refused.component,
                    Outcome::Failed(refused.error),
                ),
            }
        }
        if let Err(error) = self.await_caches().await {
            for p in ready {
                let outcome = Outcome::Failed(error.clone());
                report.push(p.key, Some(p.index), p.component, outcome);
            }
            report.prune_skipped = true;
            return report;
        }
        for p in &ready {
            let (outcome, drift) = self.apply_object(p, owner.adopting).await;
            report.drift.extend(drift);
            report.push(p.key.clone(), Some(p.index), p.component.clone(), outcome);
        }
        if report.has_errors() {
            report.prune_skipped = true;
            return report;
        }
        self.prune(owner, &seen, &mut report).await;
        report
    }

    async fn await_caches(&self) -> Result<(), ApplyError> {
        let timeout = self.inner.config.cache_ready_timeout;
        match tokio::time::timeout(timeout, self.wait_until_ready()).await {
            Ok(result) => result,
            Err(_) => {
                let kind = self
                    .inner
                    .caches
                    .kinds
                    .iter()
                    .find(|c| !c.is_ready())
                    .map(|c| c.spec.resource.kind.clone());
                Err(ApplyError::CacheNotReady {
                    kind: kind.unwrap_or_default(),
                })
            }
        }
    }

    fn cache_of(&self, key: &ObjectKey) -> Option<&KindCache> {
        self.inner.caches.find(&key.api_version, &key.kind)
    }

    /// Hands `spec.replicas` over (spec §2.4) when our entry in `live` (the object about to be
    /// applied over) still owns it. `Ok(true)` when a handover apply was sent.
    async fn handover(&self, p: &Prepared, live: Option<&Value>) -> Result<bool, ApplyError> {
        let cached = self.cached_of(&p.key);
        if let Some((cache, cached)) = &cached
            && cache.remembers(cached, Finding::ReplicasReleased)
        {
            return Ok(false);
        }
        let owned = live
            .and_then(|live| fields::apply_entry(live, MANAGER, None))
            .is_some_and(|f| fields::owns_path(f, &["spec", "replicas"]));
        let replicas = live.and_then(|live| live.pointer("/spec/replicas"));
        let Some(replicas) = replicas.filter(|_| owned).cloned() else {
            if let Some((cache, cached)) = &cached {
                cache.remember(cached, Finding::ReplicasReleased);
            }
            return Ok(false);
        };
        let span = object_span(Op::Handover, &p.key);
        let mut body = skeleton(&p.key);
        body["spec"] = json!({"replicas": replicas});
        let result = async {
            let request = Request::new(url_path(&p.kind.resource, p.key.namespace.as_deref()))
                .patch(
                    &p.key.name,
                    &PatchParams::apply(HANDOVER_MANAGER),
                    &Patch::Apply(&body),
                )
                .map_err(|e| ApplyError::BadResponse {
                    object: p.key.to_string(),
                    verb: "handover",
                    message: e.to_string(),
                })?;
            match transport::send(&self.inner.client, request, &self.inner.config.retry).await {
                Ok(_) => Ok(true),
                // The autoscaler already owns replicas with another value: nothing to hand over.
                Err(SendError::Final(f)) if f.code == 409 && f.field_conflict => Ok(true),
                Err(e) => Err(send_error(&p.key, "handover", e)),
            }
        }
        .instrument(span.clone())
        .await;
        record(
            &span,
            &result
                .as_ref()
                .map_or_else(|e| Outcome::Failed(e.clone()), |_| Outcome::HandedOver),
        );
        result
    }

    /// One GET, for an object the caches do not hold: absent, or not labelled as ours (yet).
    async fn read_live(&self, p: &Prepared) -> Result<Option<Value>, ApplyError> {
        self.read(&p.kind.resource, &p.key).await
    }

    async fn read(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
    ) -> Result<Option<Value>, ApplyError> {
        let request = Request::new(url_path(resource, key.namespace.as_deref()))
            .get(&key.name, &GetParams::default())
            .map_err(|e| ApplyError::BadResponse {
                object: key.to_string(),
                verb: "get",
                message: e.to_string(),
            })?;
        match transport::send(&self.inner.client, request, &self.inner.config.retry).await {
            Ok(success) => Ok(Some(success.body())),
            Err(SendError::Final(f)) if f.code == 404 => Ok(None),
            Err(e) => Err(send_error(key, "get", e)),
        }
    }

    /// The cached object, with its kind's cache.
    fn cached_of(&self, key: &ObjectKey) -> Option<(&KindCache, Arc<CachedObject>)> {
        let cache = self.cache_of(key)?;
        let cached = cache.get(key.namespace.as_deref(), &key.name)?;
        Some((cache, cached))
    }

    /// Whether the live object already holds `p`'s body (fingerprint `body`) owned by us:
    /// remembered for its current resourceVersion, or found by comparing (then remembered). The
    /// live object, when compared.
    fn in_sync(&self, p: &Prepared, body: u64) -> (bool, Option<Value>) {
        let Some((cache, cached)) = self.cached_of(&p.key) else {
            return (false, None);
        };
        let finding = Finding::InSyncWith(body);
        if cache.remembers(&cached, finding) {
            return (true, None);
        }
        let Some(live) = cached.to_value() else {
            return (false, None);
        };
        let in_sync =
            fields::body_in_sync(&p.body, fields::apply_entry(&live, MANAGER, None), &live);
        if in_sync {
            cache.remember(&cached, finding);
        }
        (in_sync, Some(live))
    }

    async fn apply_object(&self, p: &Prepared, adopting: bool) -> (Outcome, Vec<DriftReport>) {
        let yielded = self.yield_to_growth(p);
        let p = yielded.as_ref().unwrap_or(p);
        let body = fingerprint(&p.body);
        let (in_sync, live) = self.in_sync(p, body);
        if in_sync {
            let span = object_span(Op::Skip, &p.key);
            record(&span, &Outcome::Unchanged);
            return (Outcome::Unchanged, Vec::new());
        }
        let span = object_span(Op::Apply, &p.key);
        let result = self
            .apply_live(p, live, adopting)
            .instrument(span.clone())
            .await;
        let (outcome, drift) = match result {
            Ok((outcome, drift, applied)) => {
                self.remember_applied(p, body, &applied);
                (self.recreation(p, outcome), drift)
            }
            Err(error) => (Outcome::Failed(error), Vec::new()),
        };
        record(&span, &outcome);
        (outcome, drift)
    }

    /// `p` without the size of a claim someone else has grown (see
    /// [`immutable::without_outgrown_storage`]); `None` for every other object.
    fn yield_to_growth(&self, p: &Prepared) -> Option<Prepared> {
        if !immutable::has_claim_rule(&p.kind.immutable) {
            return None;
        }
        let (_, cached) = self.cached_of(&p.key)?;
        let live = cached.to_value()?;
        let ours = fields::apply_entry(&live, MANAGER, None);
        let body = immutable::without_outgrown_storage(&p.kind.immutable, &p.body, &live, ours)?;
        Some(Prepared { body, ..p.clone() })
    }

    /// `Recreated` for a create that brought back a child of this owner someone else deleted.
    fn recreation(&self, p: &Prepared, outcome: Outcome) -> Outcome {
        let owner_uid = p
            .body
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(labels::OWNER_UID))
            .and_then(Value::as_str);
        let vanished = |owner_uid| {
            self.cache_of(&p.key).is_some_and(|cache| {
                cache.take_vanished(p.key.namespace.as_deref(), &p.key.name, owner_uid)
            })
        };
        match (outcome, owner_uid) {
            (Outcome::Created, Some(owner_uid)) if vanished(owner_uid) => Outcome::Recreated,
            (outcome, _) => outcome,
        }
    }

    /// What an apply of `p` (body fingerprint `body`) left on the server: the version it answered
    /// with holds that body owned by us (applying it again would change nothing), and, when
    /// replicas are released, does not own them. Remembered for when the watch brings that
    /// version, so the next reconcile neither parses nor compares it.
    fn remember_applied(&self, p: &Prepared, body: u64, applied: &Identity) {
        let (Some(cache), Some(uid), Some(version)) = (
            self.cache_of(&p.key),
            applied.uid.as_deref(),
            applied.resource_version.as_deref(),
        ) else {
            return;
        };
        let remember = |finding| {
            let namespace = p.key.namespace.as_deref();
            cache.remember_version(namespace, &p.key.name, uid, version, finding);
        };
        remember(Finding::InSyncWith(body));
        if p.replicas == ReplicasPolicy::Released {
            remember(Finding::ReplicasReleased);
        }
    }

    /// Applies `p` over the live object: the cached copy (`cached`), else, when the owner is
    /// `adopting` or the body leaves replicas to an autoscaler, the object as the API has it (the
    /// caches hold only objects labelled as ours: one they lack is absent, or someone else's).
    /// Otherwise the apply goes out blind, which creates a missing object in one request; an
    /// object someone else made that the API then refuses is read and applied over after all.
    async fn apply_live(
        &self,
        p: &Prepared,
        cached: Option<Value>,
        adopting: bool,
    ) -> Result<Applied, ApplyError> {
        // Drift is what someone changed in an object of ours, not what an adopted one held before.
        let ours = cached.is_some();
        // Applying without replicas over an entry of ours that owns them (our labels removed)
        // would reset them to 1: a released workload is always read.
        // A shared body has no controller reference, so the API would merge it into an object
        // another owner controls instead of refusing it: a shared object is read too.
        let read_first = adopting || p.replicas == ReplicasPolicy::Released || p.shared;
        let live = match cached {
            Some(live) => Some(live),
            None if read_first => self.read_live(p).await?,
            None => None,
        };
        let unread = !ours && !read_first;
        match self.adopt_and_apply(p, live, ours).await {
            Err(refusal @ ApplyError::Rejected { code: 422, .. }) if unread => {
                self.apply_after_refusal(p, refusal).await
            }
            applied => applied,
        }
    }

    /// The object a blind apply was refused for (422), read: an object someone else made, whose
    /// fields beside ours, second controller or changed immutable field the API refused. Applied
    /// over as an adopted one when taking it over or its kind's remedy can help; else the refusal.
    async fn apply_after_refusal(
        &self,
        p: &Prepared,
        refusal: ApplyError,
    ) -> Result<Applied, ApplyError> {
        // The read only explains the refusal: when it fails, the refusal is the answer.
        let Ok(Some(live)) = self.read_live(p).await else {
            return Err(refusal);
        };
        refuse_foreign_controller(p, &live)?;
        let immutable = immutable::violation(&p.kind.immutable, &p.body, &live).is_some();
        if !self.takes_over(p, &live) && !immutable {
            return Err(refusal);
        }
        self.adopt_and_apply(p, Some(live), false).await
    }

    /// Applies `p` over `live` (reporting drift when it is an object of ours): an object
    /// controlled by another owner is refused, the ownership of the predecessor managers is taken
    /// over, and a released workload's replicas are handed over first.
    async fn adopt_and_apply(
        &self,
        p: &Prepared,
        live: Option<Value>,
        report_drift: bool,
    ) -> Result<Applied, ApplyError> {
        let (live, taken_over) = match live {
            Some(live) => {
                refuse_foreign_controller(p, &live)?;
                let (live, managers) = self.take_over(p, live).await?;
                (Some(live), managers)
            }
            None => (None, Vec::new()),
        };
        let handed_over = p.replicas == ReplicasPolicy::Released
            && self.handover(p, live.as_ref()).await.map_err(|error| {
                ApplyError::HandoverFailed {
                    object: p.key.to_string(),
                    cause: error.to_string(),
                }
            })?;
        let (outcome, drift, applied) = self.apply_changed(p, live.as_ref(), report_drift).await?;
        let outcome = match outcome {
            Outcome::Updated | Outcome::Unchanged if !taken_over.is_empty() => Outcome::TakenOver {
                managers: taken_over,
            },
            Outcome::Updated | Outcome::Unchanged if handed_over => Outcome::HandedOver,
            outcome => outcome,
        };
        Ok((outcome, drift, applied))
    }

    /// Makes the field ownership of the configured predecessor managers ours (`crate::takeover`)
    /// before an apply over `live`; returns the object after it and the managers taken over from.
    async fn take_over(
        &self,
        p: &Prepared,
        mut live: Value,
    ) -> Result<(Value, Vec<String>), ApplyError> {
        let configured = &self.inner.config.take_over_from;
        if configured.is_empty() {
            return Ok((live, Vec::new()));
        }
        let with_untracked;
        let mut predecessors = configured.as_slice();
        if takeover::is_untracked(&live) {
            live = self.record_before_first_apply(p).await?;
            with_untracked = [
                configured.as_slice(),
                &[takeover::BEFORE_FIRST_APPLY.to_owned()],
            ]
            .concat();
            predecessors = &with_untracked;
        }
        let target = (&p.kind.resource, &p.key);
        self.migrate_ownership(target, live, predecessors, None)
            .await
    }

    /// Makes the status field ownership of the configured predecessor managers ours before the
    /// first status apply to an owner another operator ran, so the apply removes what they
    /// reported and we do not (a condition, a hostname of a server since removed). The owner is
    /// read whole: its reflector keeps only our managedFields entries.
    pub async fn take_over_status(&self, owner: &Owner) -> Result<(), ApplyError> {
        let predecessors = &self.inner.config.take_over_from;
        if predecessors.is_empty() {
            return Ok(());
        }
        let (key, resource) = self.owner_target(owner)?;
        let Some(live) = self.read(&resource, &key).await? else {
            return Ok(());
        };
        let status = Some("status");
        self.migrate_ownership((&resource, &key), live, predecessors, status)
            .await
            .map(|_| ())
    }

    /// Writes [`takeover::migrate`]'s managedFields for `subresource`, tied to the resourceVersion
    /// they were computed from: when the object changed in between (409), it is read again and the
    /// takeover computed again. Returns the object after it and the managers taken over from.
    async fn migrate_ownership(
        &self,
        (resource, key): (&ApiResource, &ObjectKey),
        mut live: Value,
        predecessors: &[String],
        subresource: Option<&str>,
    ) -> Result<(Value, Vec<String>), ApplyError> {
        let mut attempt = 1;
        loop {
            let api_version = &key.api_version;
            let migrated =
                takeover::migrate(&live, predecessors, MANAGER, api_version, subresource);
            let Some(migration) = migrated else {
                return Ok((live, Vec::new()));
            };
            let version = fields::at(&live, &["metadata", "resourceVersion"])
                .and_then(Value::as_str)
                .unwrap_or_default();
            let patch = takeover::patch(&migration, version);
            match self.send_json_patch(resource, key, patch).await {
                Ok(success) => {
                    tracing::info!(managers = ?migration.managers, ?subresource, "took over field ownership");
                    return Ok((success.body(), migration.managers));
                }
                Err(SendError::Final(f)) if f.code == 409 && attempt < TAKEOVER_ATTEMPTS => {
                    attempt += 1;
                    live = self
                        .read(resource, key)
                        .await?
                        .ok_or_else(|| ApplyError::Rejected {
                            object: key.to_string(),
                            verb: "take over",
                            code: 404,
                            reason: "NotFound".into(),
                            message: "deleted while being taken over".into(),
                        })?;
                }
                Err(e) => return Err(send_error(key, "take over", e)),
            }
        }
    }

    /// Whether `live` has field ownership to take over: entries of a predecessor, or none at all.
    fn takes_over(&self, p: &Prepared, live: &Value) -> bool {
        let predecessors = &self.inner.config.take_over_from;
        !predecessors.is_empty()
            && (takeover::is_untracked(live)
                || takeover::migrate(live, predecessors, MANAGER, &p.key.api_version, None)
                    .is_some())
    }

    /// An apply of nothing to an untracked object: the API server records every field it holds as
    /// `before-first-apply` (and none as ours). Returns the object after it.
    async fn record_before_first_apply(&self, p: &Prepared) -> Result<Value, ApplyError> {
        let nothing = skeleton(&p.key);
        let verb = "record fields";
        let recorded = self.send_apply(&p.kind.resource, &p.key, None, &nothing, verb);
        Ok(recorded.await?.body())
    }

    /// A JSON patch under our manager: a takeover's (which only changes managedFields) or the
    /// removal of our reference from a shared object. Neither sets a field, so the API records no
    /// Update entry for it.
    async fn send_json_patch(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        patch: Value,
    ) -> Result<Success, SendError> {
        let patch: json_patch::Patch =
            serde_json::from_value(patch).map_err(|e| SendError::Malformed(e.to_string()))?;
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let request = Request::new(url_path(resource, key.namespace.as_deref()))
            .patch(&key.name, &params, &Patch::<()>::Json(patch))
            .map_err(|e| SendError::Malformed(e.to_string()))?;
        transport::send_guarded(&self.inner.client, request, &self.inner.config.retry).await
    }

    /// Applies `p` over `live`; a Deployment refused for a `rollingUpdate` beside `Recreate` gets
    /// it removed first and is applied again.
    async fn apply_changed(
        &self,
        p: &Prepared,
        live: Option<&Value>,
        report_drift: bool,
    ) -> Result<Applied, ApplyError> {
        let mut applied = self.apply_over(p, live, report_drift).await;
        if switches_to_recreate(p, &applied) {
            self.drop_rolling_update(p).await?;
            applied = self.apply_over(p, live, report_drift).await;
        }
        applied
    }

    /// Removes a Deployment's `spec.strategy.rollingUpdate` while setting `type: Recreate`, by a
    /// JSON merge patch. The server defaults `rollingUpdate` on every Deployment made with the
    /// default strategy and refuses it beside `Recreate`; when another manager (or nobody) owns it,
    /// as on a Deployment made by hand and adopted, no apply of ours can remove it.
    async fn drop_rolling_update(&self, p: &Prepared) -> Result<(), ApplyError> {
        let patch = json!({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": null}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let request = Request::new(url_path(&p.kind.resource, p.key.namespace.as_deref()))
            .patch(&p.key.name, &params, &Patch::Merge(&patch))
            .map_err(|e| ApplyError::BadResponse {
                object: p.key.to_string(),
                verb: "patch strategy",
                message: e.to_string(),
            })?;
        transport::send(&self.inner.client, request, &self.inner.config.retry)
            .await
            .map(|_| ())
            .map_err(|e| send_error(&p.key, "patch strategy", e))
    }

    /// Applies `p` over `live` (the object as last seen, if known), first replacing it when the
    /// body changes one of its kind's immutable fields.
    async fn apply_over(
        &self,
        p: &Prepared,
        live: Option<&Value>,
        report_drift: bool,
    ) -> Result<Applied, ApplyError> {
        let mut live = live;
        let mut replaced = None;
        if let Some(current) = live
            && let Some(v) = immutable::violation(&p.kind.immutable, &p.body, current)
        {
            let propagation = match v.remedy {
                immutable::Remedy::Refuse(hint) => {
                    return Err(ApplyError::ImmutableField {
                        object: p.key.to_string(),
                        field: v.field,
                        hint: hint.into_owned(),
                    });
                }
                immutable::Remedy::Recreate => PropagationPolicy::Background,
                immutable::Remedy::RecreateOrphaningDependents => PropagationPolicy::Orphan,
            };
            let uid = current
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tracing::info!(field = %v.field, ?propagation, "immutable field changed; recreating");
            match self
                .delete(&p.kind.resource, &p.key, uid, propagation)
                .await?
            {
                DeleteResult::Gone | DeleteResult::Replaced => {
                    live = None;
                    replaced = Some(v.field);
                }
                DeleteResult::Terminating => {
                    if let Some(cache) = self.cache_of(&p.key) {
                        cache.expect_replacement(p.key.namespace.as_deref(), &p.key.name, &v.field);
                    }
                    return Err(ApplyError::RecreatePending {
                        object: p.key.to_string(),
                        field: v.field,
                    });
                }
            }
        }
        let drift = live
            .filter(|_| report_drift)
            .map(|l| drift_of(&p.key, &p.body, l))
            .unwrap_or_default();
        let success = self
            .send_apply(&p.kind.resource, &p.key, None, &p.body, "apply")
            .await?;
        let before = live
            .and_then(|l| fields::at(l, &["metadata", "resourceVersion"]))
            .cloned();
        let applied = success.identity();
        let after = applied.resource_version.as_deref();
        let outcome = match (
            changed_outcome(success.code, after, before.as_ref()),
            replaced,
        ) {
            (Outcome::Created, Some(field)) => Outcome::Replaced { field },
            // Created after the old object finished terminating (an earlier reconcile deleted it).
            (Outcome::Created, None) => self
                .cache_of(&p.key)
                .and_then(|cache| cache.take_replacement(p.key.namespace.as_deref(), &p.key.name))
                .map_or(Outcome::Created, |field| Outcome::Replaced { field }),
            (outcome, _) => outcome,
        };
        let drift = if outcome == Outcome::Unchanged {
            Vec::new()
        } else {
            drift
        };
        for d in &drift {
            tracing::info!(manager = %d.manager, fields = ?d.fields, "drift corrected");
        }
        Ok((outcome, drift, applied))
    }

    async fn send_apply(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        subresource: Option<&str>,
        body: &Value,
        verb: &'static str,
    ) -> Result<Success, ApplyError> {
        let params = PatchParams::apply(MANAGER).force();
        let builder = Request::new(url_path(resource, key.namespace.as_deref()));
        let request = match subresource {
            Some(sub) => builder.patch_subresource(sub, &key.name, &params, &Patch::Apply(body)),
            None => builder.patch(&key.name, &params, &Patch::Apply(body)),
        }
        .map_err(|e| ApplyError::BadResponse {
            object: key.to_string(),
            verb,
            message: e.to_string(),
        })?;
        transport::send(&self.inner.client, request, &self.inner.config.retry)
            .await
            .map_err(|e| send_error(key, verb, e))
    }

    async fn delete(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        uid: &str,
        propagation: PropagationPolicy,
    ) -> Result<DeleteResult, ApplyError> {
        if let Some(cache) = self.cache_of(key) {
            cache.expect_deletion(key.namespace.as_deref(), &key.name, uid);
        }
        let params = DeleteParams {
            propagation_policy: Some(propagation),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = Request::new(url_path(resource, key.namespace.as_deref()))
            .delete(&key.name, &params)
            .map_err(|e| ApplyError::BadResponse {
                object: key.to_string(),
                verb: "delete",
                message: e.to_string(),
            })?;
        match transport::send(&self.inner.client, request, &self.inner.config.retry)
            .await
            .map(|success| success.body())
        {
            Ok(body) if body.get("kind").and_then(Value::as_str) == Some("Status") => {
                Ok(DeleteResult::Gone)
            }
            Ok(body) if body.pointer("/metadata/deletionTimestamp").is_some() => {
                Ok(DeleteResult::Terminating)
            }
            Ok(_) => Ok(DeleteResult::Gone),
            Err(SendError::Final(f)) if f.code == 404 => Ok(DeleteResult::Gone),
            // The uid precondition failed: a new object with this name exists; not ours to delete.
            Err(SendError::Final(f)) if f.code == 409 => Ok(DeleteResult::Replaced),
            Err(e) => Err(send_error(key, "delete", e)),
        }
    }

    /// Children of this owner in the caches of the kinds selected by `filter`.
    fn children(
        &self,
        owner: &Owner,
        filter: impl Fn(&KindCache) -> bool,
    ) -> Vec<(&KindCache, ObjectKey, String)> {
        let mut out = Vec::new();
        for cache in self.inner.caches.kinds.iter().filter(|c| filter(c)) {
            for obj in cache.children_of(&owner.uid) {
                if !is_child_of(&obj, owner, cache.spec.scope) || obj.is_deleting() {
                    continue;
                }
                let key = ObjectKey {
                    api_version: cache.spec.resource.api_version.clone(),
                    kind: cache.spec.resource.kind.clone(),
                    namespace: obj.namespace().map(str::to_owned),
                    name: obj.name().to_owned(),
                };
                out.push((cache, key, obj.uid().to_owned()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    async fn prune(
        &self,
        owner: &Owner,
        desired: &HashSet<ObjectKey>,
        report: &mut ReconcileReport,
    ) {
        for (cache, key, uid) in self.children(owner, |c| c.spec.prunable) {
            if desired.contains(&key) {
                continue;
            }
            let span = object_span(Op::Prune, &key);
            if let Some(outcome) = self
                .leave_shared(cache, &key, owner)
                .instrument(span.clone())
                .await
            {
                record(&span, &outcome);
                report.push(key, None, String::new(), outcome);
                continue;
            }
            let outcome = match self
                .delete(
                    &cache.spec.resource,
                    &key,
                    &uid,
                    PropagationPolicy::Background,
                )
                .instrument(span.clone())
                .await
            {
                Ok(DeleteResult::Replaced) => {
                    tracing::debug!(parent: &span, "not pruned: replaced by a newer object of the same name");
                    continue;
                }
                Ok(_) => Outcome::Pruned,
                Err(error) => Outcome::Failed(error),
            };
            record(&span, &outcome);
            report.push(key, None, String::new(), outcome);
        }
    }

    /// For a shared object this owner no longer wants while other owners still share it: takes
    /// this owner's reference out (a JSON patch that tests the reference first), so the object
    /// stays for the others and their next apply finds it as they want it. `None` when the object
    /// is not shared with anyone else: then it is pruned like any other.
    async fn leave_shared(
        &self,
        cache: &KindCache,
        key: &ObjectKey,
        owner: &Owner,
    ) -> Option<Outcome> {
        let cached = cache.get(key.namespace.as_deref(), &key.name)?;
        let sharers = cached.sharers();
        let position = sharers.iter().position(|r| *r.uid == *owner.uid)?;
        if sharers.len() < 2 {
            return None;
        }
        let path = format!("/metadata/ownerReferences/{position}/uid");
        let patch = json!([
            {"op": "test", "path": path, "value": owner.uid},
            {"op": "remove", "path": format!("/metadata/ownerReferences/{position}")},
        ]);
        let result = self.send_json_patch(&cache.spec.resource, key, patch).await;
        Some(match result {
            Ok(_) => Outcome::LeftShared,
            Err(SendError::Final(f)) if f.code == 404 => Outcome::LeftShared,
            // A failed test (the references moved since the cache saw them) is an error too: the
            // reconcile is retried, against a cache that has caught up.
            Err(e) => Outcome::Failed(send_error(key, "leave shared", e)),
        })
    }

    /// Deletes every cluster-scoped child carrying the owner's uid label (for the owner's
    /// finalizer: cluster-scoped children cannot have a namespaced owner reference). Returns
    /// `Ok(true)` when all are gone, `Ok(false)` while some are still terminating (call again
    /// later); an error when a delete failed (the others were still attempted).
    pub async fn delete_cluster_scoped_children(&self, owner: &Owner) -> Result<bool, ApplyError> {
        self.await_caches().await?;
        let mut all_gone = true;
        let mut first_error = None;
        let terminating = self
            .inner
            .caches
            .kinds
            .iter()
            .filter(|c| c.spec.scope == Scope::Cluster)
            .any(|c| {
                c.children_of(&owner.uid)
                    .iter()
                    .any(|o| is_child_of(o, owner, Scope::Cluster) && o.is_deleting())
            });
        for (cache, key, uid) in self.children(owner, |c| c.spec.scope == Scope::Cluster) {
            let span = object_span(Op::Prune, &key);
            let outcome = match self
                .delete(
                    &cache.spec.resource,
                    &key,
                    &uid,
                    PropagationPolicy::Background,
                )
                .instrument(span.clone())
                .await
            {
                Ok(DeleteResult::Terminating) => {
                    all_gone = false;
                    Outcome::Pruned
                }
                Ok(_) => Outcome::Pruned,
                Err(error) => {
                    first_error.get_or_insert(error.clone());
                    Outcome::Failed(error)
                }
            };
            record(&span, &outcome);
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(all_gone && !terminating),
        }
    }

    /// The owner as it stands after this engine's last status write, when `cached` (a copy from a watch
    /// cache) predates that write; `None` when `cached` is current. A controller should derive the next
    /// status from this, or it would compute condition transitions against a status it already replaced.
    pub fn with_own_status<K>(&self, cached: &K) -> Option<K>
    where
        K: Resource<DynamicType = ()> + Serialize + serde::de::DeserializeOwned,
    {
        let key = key_of(&ApiResource::erase::<K>(&()), cached.meta());
        if !self.inner.own_status.has_write(&key) {
            // The common case: no copy to make.
            return None;
        }
        let value = serde_json::to_value(cached).ok()?;
        let fresher = self.inner.own_status.newer_than(&key, &value, true)?;
        serde_json::from_value(fresher).ok()
    }

    /// Applies the owner's status through `/status` under the `fieldwise` manager, unless the
    /// owner object (as the controller last read it, or as this engine last wrote its status when
    /// that is newer) already shows exactly this status owned by us: an unchanged status makes no
    /// request. `status` is the full status fieldwise owns.
    pub async fn apply_status<K>(&self, owner: &K, status: Value) -> Result<Outcome, ApplyError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        self.apply_status_of(&ApiResource::erase::<K>(&()), owner, owner.meta(), status)
            .await
    }

    /// Adds (`wanted`) or drops fieldwise's `finalizer` on an owner by server-side apply of
    /// `metadata.finalizers` under `fieldwise` (a set: other managers' finalizers are untouched).
    /// The owner's uid goes with the body as a precondition, so an apply can never create an
    /// owner that is gone. The owner's kind must be registered with
    /// [`KindRegistry::with_owner`].
    ///
    /// A finalizer that another manager co-owns (one added by a JSON patch before fieldwise applied
    /// it) would stay after the apply drops it; it is then removed by a JSON patch that tests its
    /// position first: the one write to an owner that is not a server-side apply.
    pub async fn apply_finalizer(
        &self,
        owner: &Owner,
        finalizer: &str,
        wanted: bool,
    ) -> Result<FinalizerState, ApplyError> {
        let (key, resource) = self.owner_target(owner)?;
        let mut body = skeleton(&key);
        body["metadata"]["uid"] = json!(owner.uid);
        if wanted {
            body["metadata"]["finalizers"] = json!([finalizer]);
        }
        let verb = if wanted {
            "add finalizer"
        } else {
            "remove finalizer"
        };
        let live = match self.send_apply(&resource, &key, None, &body, verb).await {
            Ok(success) => success.body(),
            Err(error) if owner_gone(&error) => return Ok(FinalizerState::OwnerGone),
            Err(error) => return Err(error),
        };
        let finalizers = live
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array);
        let position = finalizers.and_then(|f| f.iter().position(|f| f == finalizer));
        match (wanted, position) {
            (true, _) | (false, None) => Ok(FinalizerState::Applied),
            (false, Some(index)) => {
                self.patch_out_finalizer(&resource, &key, finalizer, index)
                    .await
            }
        }
    }

    /// The owner's key and resource; its kind must be registered with
    /// [`KindRegistry::with_owner`].
    fn owner_target(&self, owner: &Owner) -> Result<(ObjectKey, ApiResource), ApplyError> {
        let key = ObjectKey {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
        };
        let resource = self
            .inner
            .registry
            .owner_resource(&owner.api_version, &owner.kind)
            .cloned()
            .ok_or_else(|| ApplyError::UnregisteredKind {
                object: key.to_string(),
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
            })?;
        Ok((key, resource))
    }

    /// Removes a finalizer another manager co-owns (see [`Self::apply_finalizer`]).
    async fn patch_out_finalizer(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        finalizer: &str,
        index: usize,
    ) -> Result<FinalizerState, ApplyError> {
        let path = format!("/metadata/finalizers/{index}");
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": path, "value": finalizer},
            {"op": "remove", "path": path},
        ]))
        .map_err(|e| ApplyError::InvalidObject {
            object: key.to_string(),
            reason: e.to_string(),
        })?;
        let params = PatchParams::default();
        let request = Request::new(url_path(resource, key.namespace.as_deref()))
            .patch(&key.name, &params, &Patch::<()>::Json(patch))
            .map_err(|e| ApplyError::BadResponse {
                object: key.to_string(),
                verb: "remove finalizer",
                message: e.to_string(),
            })?;
        match transport::send(&self.inner.client, request, &self.inner.config.retry).await {
            Ok(_) => Ok(FinalizerState::Applied),
            Err(SendError::Final(f)) if f.code == 404 => Ok(FinalizerState::OwnerGone),
            Err(e) => Err(send_error(key, "remove finalizer", e)),
        }
    }

    /// Tells the engine that the owner's watch shows it at its current resourceVersion (call it
    /// for every owner the watch brings): a status write of ours that this version includes is no
    /// longer kept.
    pub fn owner_seen<K>(&self, owner: &K)
    where
        K: Resource<DynamicType = ()>,
    {
        let meta = owner.meta();
        let Some(version) = meta.resource_version.as_deref() else {
            return;
        };
        let key = key_of(&ApiResource::erase::<K>(&()), meta);
        self.inner
            .own_status
            .seen(&key, meta.uid.as_deref(), version);
    }

    /// Drops what the engine remembers about an owner's status; call when the owner is deleted.
    pub fn forget_owner<K>(&self, owner: &K)
    where
        K: Resource<DynamicType = ()>,
    {
        let key = key_of(&ApiResource::erase::<K>(&()), owner.meta());
        self.inner.own_status.forget(&key);
    }

    /// What is known, without serialising the owner, about whether it already shows a status
    /// with this fingerprint owned by us.
    fn status_known(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        status: &Value,
        desired: u64,
    ) -> StatusKnown {
        let Some(cached_version) = meta.resource_version.as_deref() else {
            return StatusKnown::Unknown;
        };
        let uid = meta.uid.as_deref();
        let own_status = &self.inner.own_status;
        let version = own_status.version_seen(key, uid, cached_version);
        match own_status.status_at(key, uid, &version) {
            Some(owned) if owned == desired => StatusKnown::InSync,
            Some(_) => StatusKnown::Differs(version),
            // Nothing of the status is ours yet (a new owner): a status with any field differs.
            None if version == cached_version
                && !owns_a_status(meta)
                && status.as_object().is_some_and(|fields| !fields.is_empty()) =>
            {
                StatusKnown::Differs(version)
            }
            None => StatusKnown::Unknown,
        }
    }

    /// [`Self::apply_status`] for an owner known only at run time.
    pub async fn apply_status_dynamic(
        &self,
        resource: &ApiResource,
        owner: &DynamicObject,
        status: Value,
    ) -> Result<Outcome, ApplyError> {
        self.apply_status_of(resource, owner, &owner.metadata, status)
            .await
    }

    /// The status path of both entry points: what is known about the owner's status when it is
    /// enough, else the comparison with the serialised owner; then the apply if needed.
    async fn apply_status_of(
        &self,
        resource: &ApiResource,
        owner: &impl Serialize,
        meta: &ObjectMeta,
        status: Value,
    ) -> Result<Outcome, ApplyError> {
        let key = key_of(resource, meta);
        if !status.is_object() {
            return Err(ApplyError::InvalidObject {
                object: key.to_string(),
                reason: "status must be a JSON object".into(),
            });
        }
        let desired = fingerprint(&status);
        // The owner's resourceVersion when its status differs; `None` when it is in sync.
        let differs_at = match self.status_known(&key, meta, &status, desired) {
            StatusKnown::InSync => None,
            StatusKnown::Differs(version) => Some(Value::String(version)),
            StatusKnown::Unknown => {
                let mut live =
                    serde_json::to_value(owner).map_err(|e| ApplyError::InvalidObject {
                        object: key.to_string(),
                        reason: e.to_string(),
                    })?;
                crate::cache::expand_fields(&mut live);
                self.compare_status(&key, &live, &status, desired)
            }
        };
        match differs_at {
            Some(before) => {
                self.send_status(resource, &key, status, desired, &before)
                    .await
            }
            None => {
                record(&object_span(Op::Status, &key), &Outcome::Unchanged);
                Ok(Outcome::Unchanged)
            }
        }
    }

    /// Whether `live` (or our last status write, when the caller's copy predates it) shows
    /// `status` owned by us (then remembered, and `None`); else the resourceVersion compared with.
    fn compare_status(
        &self,
        key: &ObjectKey,
        live: &Value,
        status: &Value,
        desired: u64,
    ) -> Option<Value> {
        // The caller's copy may come from a cache that does not show our last status write yet.
        let fresher = self.inner.own_status.newer_than(key, live, false);
        let live = fresher.as_ref().unwrap_or(live);
        let applied = json!({"status": status});
        let version = fields::at(live, &["metadata", "resourceVersion"]);
        if !fields::in_sync(
            &applied,
            fields::apply_entry(live, MANAGER, Some("status")),
            live,
        ) {
            return Some(version.cloned().unwrap_or(Value::Null));
        }
        if let Some(version) = version.and_then(Value::as_str) {
            let uid = fields::at(live, &["metadata", "uid"]).and_then(Value::as_str);
            self.inner
                .own_status
                .remember_status_at(key, uid, version, desired);
        }
        None
    }

    /// Applies `status` (fingerprint `owned`) to an owner last seen at resourceVersion `before`,
    /// and remembers what the server answered.
    async fn send_status(
        &self,
        resource: &ApiResource,
        key: &ObjectKey,
        status: Value,
        owned: u64,
        before: &Value,
    ) -> Result<Outcome, ApplyError> {
        let span = object_span(Op::Status, key);
        let mut body = skeleton(key);
        body["status"] = status;
        let result = self
            .send_apply(resource, key, Some("status"), &body, "apply status")
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(success) => {
                let written = success.identity();
                let after = written.resource_version.clone();
                if let Some(version) = &after {
                    // The answer holds exactly the status we applied, owned by us.
                    let uid = written.uid.as_deref();
                    self.inner
                        .own_status
                        .remember_status_at(key, uid, version, owned);
                }
                self.inner.own_status.remember(key, written, success.text());
                changed_outcome(success.code, after.as_deref(), Some(before))
            }
            Err(error) => Outcome::Failed(error.clone()),
        };
        record(&span, &outcome);
        result.map(|_| {
            if outcome == Outcome::Created {
                Outcome::Updated
            } else {
                outcome
            }
        })
    }
}

/// Whether `applied` is the server refusing a Deployment's switch to the `Recreate` strategy
/// because the live object keeps a `rollingUpdate` the body cannot remove.
fn switches_to_recreate(p: &Prepared, applied: &Result<Applied, ApplyError>) -> bool {
    let recreate = p.key.kind == "Deployment"
        && p.body
            .pointer("/spec/strategy/type")
            .and_then(Value::as_str)
            == Some("Recreate");
    recreate
        && matches!(applied, Err(ApplyError::Rejected { code: 422, message, .. })
            if message.contains("spec.strategy.rollingUpdate"))
}

/// What is known about an owner's status before comparing.
enum StatusKnown {
    /// It shows the desired status, owned by us.
    InSync,
    /// It does not; the owner's resourceVersion.
    Differs(String),
    /// Only a comparison with the owner tells.
    Unknown,
}

/// Where an owner's finalizer stands after [`Engine::apply_finalizer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerState {
    /// The owner carries the finalizer, or no longer does, as asked.
    Applied,
    /// The owner is gone (or replaced by a new object of the same name): nothing to do.
    OwnerGone,
}

/// Whether an apply to an owner failed because it no longer exists: 404, or 409 for a uid that
/// names no live object (a new owner of the same name is a different one).
fn owner_gone(error: &ApplyError) -> bool {
    matches!(error, ApplyError::Rejected { code: 404, .. })
        || matches!(error, ApplyError::Rejected { code: 409, message, .. } if message.contains("uid"))
}

/// Whether the owner's managedFields have an entry of ours for the status subresource: whether
/// the engine has applied its status (the owner reflector keeps our entries, see
/// [`crate::keep_own_managed_fields`]).
pub fn owns_a_status(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(MANAGER) && entry.subresource.as_deref() == Some("status")
    })
}

/// What an apply answered with `code` and resourceVersion `after` did to an object that had
/// resourceVersion `before`.
fn changed_outcome(code: u16, after: Option<&str>, before: Option<&Value>) -> Outcome {
    let before = before.and_then(Value::as_str);
    if code == 201 {
        Outcome::Created
    } else if before.is_some() && after == before {
        Outcome::Unchanged
    } else {
        Outcome::Updated
    }
}

/// Fields of `body` other managers own with a different live value: what a forced apply takes.
fn drift_of(key: &ObjectKey, body: &Value, live: &Value) -> Vec<DriftReport> {
    let desired = fields::ownable_part(body);
    fields::managed_entries(live)
        .filter(|e| {
            !matches!(
                e.get("manager").and_then(Value::as_str),
                Some(MANAGER) | Some(HANDOVER_MANAGER)
            )
        })
        .filter(|e| {
            e.get("subresource")
                .and_then(Value::as_str)
                .is_none_or(|s| s.is_empty() || s == "scale")
        })
        .filter_map(|e| {
            let theirs = e.get("fieldsV1")?.as_object()?;
            let taken = fields::taken_paths(&desired, theirs, live);
            (!taken.is_empty()).then(|| DriftReport {
                object: key.clone(),
                manager: e
                    .get("manager")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
                fields: taken,
            })
        })
        .collect()
}

fn is_child_of(obj: &CachedObject, owner: &Owner, scope: Scope) -> bool {
    if obj.is_shared() {
        return obj.is_managed_by_us()
            && scope == Scope::Namespaced
            && obj.sharers().iter().any(|r| *r.uid == *owner.uid);
    }
    let labelled = obj.is_managed_by_us() && obj.owner_uid().is_some_and(|uid| **uid == *owner.uid);
    // Namespaced children must also point at the owner, so an object that merely copied our
    // labels is never deleted.
    labelled && (scope == Scope::Cluster || obj.controller().is_some_and(|r| *r.uid == *owner.uid))
}

/// The owners of `K` a change of `child` concerns: its owner, or every owner of a shared child.
fn owners_of<K: Resource<DynamicType = ()>>(
    child: &CachedObject,
    scope: Scope,
) -> Vec<ObjectRef<K>> {
    if !child.is_shared() {
        return owner_of::<K>(child, scope).into_iter().collect();
    }
    let (api_version, kind) = (K::api_version(&()), K::kind(&()));
    child
        .sharers()
        .iter()
        .filter(|r| *r.api_version == *api_version && *r.kind == *kind)
        .map(|r| {
            let owner = ObjectRef::new(&r.name);
            match child.namespace() {
                Some(ns) => owner.within(ns),
                None => owner,
            }
        })
        .collect()
}

fn owner_of<K: Resource<DynamicType = ()>>(
    child: &CachedObject,
    scope: Scope,
) -> Option<ObjectRef<K>> {
    let (api_version, kind) = (K::api_version(&()), K::kind(&()));
    if scope == Scope::Namespaced {
        let owner = child.controller()?;
        if *owner.api_version != *api_version || *owner.kind != *kind {
            return None;
        }
        let mut r = ObjectRef::new(&owner.name);
        if let Some(ns) = child.namespace() {
            r = r.within(ns);
        }
        return Some(r);
    }
    // The name and namespace labels alone could name an owner of another kind (two controllers'
    // owners may share a name); children from before the owner-kind label get it at the next
    // reconcile of their owner, which every owner has when the operator starts.
    if child.owner_kind() != Some(labels::owner_kind_value(&api_version, &kind).as_str()) {
        return None;
    }
    let mut r = ObjectRef::new(child.instance()?);
    if let Some(ns) = child.owner_namespace() {
        r = r.within(ns);
    }
    Some(r)
}

/// The key of an owner object of this resource.
fn key_of(resource: &ApiResource, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        desired::{OwnerStamp, prepare_owned},
        registry::KindSpec,
    };
    use k8s_openapi::api::{
        core::v1::{ConfigMap, Secret},
        rbac::v1::ClusterRole,
    };

    /// A cluster-scoped child as the engine stamps it for an owner of `kind` named `shared` in `ns`.
    fn cluster_child_of(api_version: &str, kind: &str) -> CachedObject {
        let owner = Owner {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "shared".into(),
            namespace: Some("ns".into()),
            uid: format!("uid-of-{kind}"),
            app_name: None,
            adopting: false,
        };
        let registry = KindRegistry::new().with(KindSpec::cluster::<ClusterRole>());
        let stamp = OwnerStamp::new(&owner);
        let body = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("{kind}-role")}});
        let prepared = prepare_owned(&registry, &stamp, DesiredObject::new("rbac", body), 0)
            .unwrap_or_else(|refused| panic!("refused: {}", refused.error));
        let object: DynamicObject = serde_json::from_value(prepared.body).expect("object");
        CachedObject::new(object)
    }

    /// Two owner kinds with owners of the same name and namespace: a cluster-scoped child (found
    /// by labels, having no ownerReference) triggers only the owner of its own kind.
    #[test]
    fn cluster_scoped_children_map_to_owners_of_their_kind() {
        let of_config_map = cluster_child_of("v1", "ConfigMap");
        let of_secret = cluster_child_of("v1", "Secret");
        assert_eq!(
            owner_of::<ConfigMap>(&of_config_map, Scope::Cluster),
            Some(ObjectRef::new("shared").within("ns"))
        );
        assert_eq!(owner_of::<Secret>(&of_config_map, Scope::Cluster), None);
        assert_eq!(
            owner_of::<Secret>(&of_secret, Scope::Cluster),
            Some(ObjectRef::new("shared").within("ns"))
        );
        assert_eq!(owner_of::<ConfigMap>(&of_secret, Scope::Cluster), None);
    }

    #[test]
    fn owner_kind_label_names_kind_and_group() {
        assert_eq!(
            labels::owner_kind_value("feast.dev/v1", "FeatureStore"),
            "FeatureStore.feast.dev"
        );
        assert_eq!(labels::owner_kind_value("v1", "ConfigMap"), "ConfigMap");
        let child = cluster_child_of("prism.io/v1alpha1", "PrismCluster");
        assert_eq!(child.owner_kind(), Some("PrismCluster.prism.io"));
    }
}
