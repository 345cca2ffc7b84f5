//! The FeatureStore reconciler: reads the caches, builds the pure desired graph, hands it to the apply
//! engine, derives the status from what happened and applies it. Watches and wiring are in [`super::run`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::{ApplyError, Engine, Outcome as WriteOutcome, Owner, ReconcileReport};
use fieldwise_observability::{
    Metrics, ReconcileResult, WriteOutcome as MetricOutcome, cpu_timed, record_error,
    record_result, trace_id,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{ObjectRef, Store},
    },
};
use tracing::{Instrument, info, warn};

use super::{
    cached::CachedFeatureStore,
    context::{GraphContext, ImageDefaults},
    graph::{DesiredGraph, GraphError, desired_graph, static_replicas},
    names::{ServiceType, base_name},
    references::{referenced_config_maps, referenced_feature_store, referenced_secrets},
    run::Synced,
    secrets::{FetchedSecrets, SecretMeta},
    status::{DeploymentObservation, Outcome, READY_TYPE, derive_status},
};

/// The finalizer that lets fieldwise remove a FeatureStore's cluster-scoped children, which garbage
/// collection cannot reach (they cannot have a namespaced owner).
pub const FINALIZER: &str = "feast.dev/fieldwise-cleanup";
/// The controller's name in metrics and events.
pub const CONTROLLER: &str = "featurestore";

/// Operator-wide settings: what the graph depends on, and how often a settled FeatureStore is resynced.
#[derive(Clone, Debug)]
pub struct Settings {
    pub images: ImageDefaults,
    pub oidc_issuer_url: Option<String>,
    pub service_monitor_available: bool,
    /// A FeatureStore whose Deployment is available is reconciled again after this long even if nothing
    /// changed, so drift that no watch reported is still corrected. An unchanged one costs no write.
    pub resync_period: Duration,
}

/// The default [`Settings::resync_period`], as controller-runtime operators commonly use.
pub const DEFAULT_RESYNC_PERIOD: Duration = Duration::from_secs(600);

impl Default for Settings {
    fn default() -> Self {
        Self {
            images: ImageDefaults::default(),
            oidc_issuer_url: None,
            service_monitor_available: false,
            resync_period: DEFAULT_RESYNC_PERIOD,
        }
    }
}

/// FeatureStores triggered but not yet reconciled: the controller's work queue, as the depth metric
/// reports it. kube's Controller keeps its queue private, so the triggers are counted on their way in and
/// taken off when the reconcile starts (repeated triggers of one FeatureStore count once, as in a queue).
#[derive(Default)]
pub struct WorkQueue {
    pending: Mutex<std::collections::HashSet<ObjectRef<CachedFeatureStore>>>,
}

impl WorkQueue {
    /// Records a trigger; returns the depth.
    pub fn push(&self, fs: ObjectRef<CachedFeatureStore>) -> usize {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.insert(fs);
        pending.len()
    }

    /// Takes a FeatureStore off the queue as its reconcile starts; returns the depth.
    pub fn take(&self, fs: &ObjectRef<CachedFeatureStore>) -> usize {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.remove(fs);
        pending.len()
    }
}

/// Shared state of every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub engine: Engine,
    /// Secrets as metadata only (see `secrets.rs`).
    pub secrets: Store<SecretMeta>,
    /// The data of the Secrets FeatureStores read.
    fetched_secrets: FetchedSecrets,
    /// Set once `secrets` holds its initial list.
    pub secrets_synced: Synced,
    pub feature_stores: Store<CachedFeatureStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub queue: Arc<WorkQueue>,
    /// Consecutive failures per FeatureStore, for exponential backoff (kube's error_policy is not told about
    /// successes, so the reconciler keeps this itself).
    failures: Mutex<HashMap<ObjectRef<CachedFeatureStore>, u32>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)] // one per shared dependency; a builder would only rename them
    pub fn new(
        client: kube::Client,
        engine: Engine,
        secrets: Store<SecretMeta>,
        secrets_synced: Synced,
        feature_stores: Store<CachedFeatureStore>,
        settings: Settings,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        queue: Arc<WorkQueue>,
    ) -> Self {
        Self {
            client,
            engine,
            secrets,
            fetched_secrets: FetchedSecrets::default(),
            secrets_synced,
            feature_stores,
            settings,
            metrics,
            recorder,
            queue,
            failures: Mutex::default(),
        }
    }

    /// Records the reconcile's result and returns how long to wait before retrying after a failure.
    fn backoff_after(&self, fs: &ObjectRef<CachedFeatureStore>, failed: bool) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !failed {
            failures.remove(fs);
            return Duration::ZERO;
        }
        let count = failures.entry(fs.clone()).or_insert(0);
        *count = count.saturating_add(1);
        let seconds = 5u64.saturating_mul(1 << (*count - 1).min(6));
        Duration::from_secs(seconds.min(300))
    }
}

/// Why a reconcile failed; the controller requeues with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0} object(s) failed to apply")]
    PartialApply(usize),
}

/// Reconciles one FeatureStore inside its own root `reconcile` span (one trace per reconcile).
pub async fn reconcile(
    fs: Arc<CachedFeatureStore>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let span = fieldwise_observability::reconcile_span(
        "FeatureStore",
        fs.namespace().as_deref().unwrap_or_default(),
        &fs.name_any(),
        fs.metadata.generation,
    );
    let depth = context.queue.take(&ObjectRef::from_obj(&*fs));
    context.metrics.set_queue_depth(CONTROLLER, depth);
    let started = Instant::now();
    // The CPU time of the reconcile's own work, summed over its polls: API round trips, timers and
    // locks it waits for are not counted.
    let (result, cpu) =
        cpu_timed(reconcile_with_finalizer(fs.clone(), context.clone()).instrument(span.clone()))
            .await;
    context.metrics.observe_reconcile_cpu(CONTROLLER, cpu);
    let trace = trace_id(&span);
    let fs_ref = ObjectRef::from_obj(&*fs);
    let (metric, action) = match &result {
        Ok(action) => {
            context.backoff_after(&fs_ref, false);
            record_result(&span, "success");
            (ReconcileResult::Success, action.clone())
        }
        Err(error) => {
            record_error(&span, &error.to_string());
            let delay = context.backoff_after(&fs_ref, true);
            warn!(parent: &span, error = %error, retry_in_seconds = delay.as_secs(), "reconcile failed");
            (ReconcileResult::Error, Action::requeue(delay))
        }
    };
    context
        .metrics
        .observe_reconcile(CONTROLLER, metric, started.elapsed(), trace.as_deref());
    // Errors are handled here (status, metrics, backoff); the controller only sees when to come back.
    Ok(action)
}

/// kube's error policy; never reached because [`reconcile`] turns errors into requeues itself.
pub fn error_policy(
    _fs: Arc<CachedFeatureStore>,
    _error: &Error,
    _context: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_with_finalizer(
    fs: Arc<CachedFeatureStore>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = fs.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<CachedFeatureStore> = Api::namespaced(context.client.clone(), &namespace);
    finalizer(&api, FINALIZER, fs, |event| async {
        match event {
            FinalizerEvent::Apply(fs) => apply(&parsed(&fs)?, &context).await,
            FinalizerEvent::Cleanup(fs) => cleanup(&parsed(&fs)?, &context).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))
}

/// The cached FeatureStore, parsed for this reconcile.
fn parsed(fs: &CachedFeatureStore) -> Result<FeatureStore, Error> {
    fs.feature_store().map_err(|reason| {
        Error::Apply(ApplyError::InvalidObject {
            object: format!("FeatureStore {}", fs.name_any()),
            reason,
        })
    })
}

/// The desired graph applied, then the status.
async fn apply(fs: &FeatureStore, context: &Context) -> Result<Action, Error> {
    // The cache may not show our last status write yet; conditions must transition from that status.
    let fresher = context.engine.with_own_status(fs);
    let fs = fresher.as_ref().unwrap_or(fs);
    let owner = Owner::of(fs)?.with_app_name("featurestore");
    let graph_context = graph_context(fs, context).await?;
    match desired_graph(fs, &graph_context) {
        Ok(graph) => apply_graph(fs, context, &owner, graph).await,
        Err(error) => reject(fs, context, &graph_context, error).await,
    }
}

async fn apply_graph(
    fs: &FeatureStore,
    context: &Context,
    owner: &Owner,
    mut graph: DesiredGraph,
) -> Result<Action, Error> {
    // The engine takes the objects; the rest of the graph is still needed for the status.
    let objects = std::mem::take(&mut graph.objects);
    let report = context.engine.reconcile(owner, objects).await;
    record_writes(context, fs, &report).await;
    for (kind, count) in context.engine.cached_counts() {
        context.metrics.set_owned_objects(&kind, count);
    }
    let failed: Vec<(ServiceType, String)> = report
        .errors()
        .map(|(line, error)| (part_of(&line.component), error.to_string()))
        .collect();
    let deployment = observe_deployment(fs, context);
    let outcome = Outcome::Applied {
        applied: &graph.applied,
        hostnames: &graph.hostnames,
        unsupported: &graph.unsupported,
        failed: failed.clone(),
    };
    let status = derive_status(fs, &outcome, deployment.as_ref(), &now());
    if !graph.unsupported.is_empty() && !had_condition(fs, "Unsupported") {
        let note = format!(
            "fieldwise does not create the objects these fields need: {}",
            graph.unsupported.join(", ")
        );
        publish(context, fs, EventType::Warning, "Unsupported", note).await;
    }
    write_status(fs, context, &status).await?;
    if !failed.is_empty() {
        return Err(Error::PartialApply(failed.len()));
    }
    let available = deployment.as_ref().is_some_and(|d| d.available);
    // Until the Deployment is available, look again soon; afterwards only changes trigger reconciles.
    Ok(if available {
        Action::requeue(context.settings.resync_period)
    } else {
        Action::requeue(Duration::from_secs(5))
    })
}

/// The graph could not be built: nothing is applied or pruned; the status says why.
async fn reject(
    fs: &FeatureStore,
    context: &Context,
    graph_context: &GraphContext,
    error: GraphError,
) -> Result<Action, Error> {
    let applied = super::graph::applied_spec(fs, graph_context);
    let outcome = Outcome::Invalid {
        applied: &applied,
        part: error.part,
        message: error.message.clone(),
    };
    let status = derive_status(
        fs,
        &outcome,
        observe_deployment(fs, context).as_ref(),
        &now(),
    );
    if !had_failure_message(fs, &error.message) {
        publish(
            context,
            fs,
            EventType::Warning,
            "InvalidSpec",
            error.message.clone(),
        )
        .await;
    }
    write_status(fs, context, &status).await?;
    info!(reason = %error.message, "FeatureStore cannot be reconciled until its references are fixed");
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// On deletion: remove the cluster-scoped children; namespaced ones go with garbage collection.
async fn cleanup(fs: &FeatureStore, context: &Context) -> Result<Action, Error> {
    let owner = Owner::of(fs)?;
    context
        .metrics
        .remove_feature_store_info(&fs.namespace().unwrap_or_default(), &fs.name_any());
    if context
        .engine
        .delete_cluster_scoped_children(&owner)
        .await?
    {
        context.engine.forget_owner(fs);
        Ok(Action::await_change())
    } else {
        // Still terminating: the finalizer stays until they are gone.
        Err(Error::Apply(ApplyError::CacheNotReady {
            kind: "ClusterRoleBinding".to_owned(),
        }))
    }
}

async fn write_status(
    fs: &FeatureStore,
    context: &Context,
    status: &fieldwise_api::v1::FeatureStoreStatus,
) -> Result<(), Error> {
    let value = serde_json::to_value(status).map_err(|e| ApplyError::InvalidObject {
        object: format!("FeatureStore {}", fs.name_any()),
        reason: e.to_string(),
    })?;
    let outcome = context.engine.apply_status(fs, value).await?;
    context
        .metrics
        .count_write("FeatureStore", metric_outcome(&outcome));
    set_info_gauge(fs, status, context);
    Ok(())
}

/// Counts writes and emits Events for drift and handovers; nothing for objects that were unchanged.
async fn record_writes(context: &Context, fs: &FeatureStore, report: &ReconcileReport) {
    for object in &report.objects {
        context
            .metrics
            .count_write(&object.object.kind, metric_outcome(&object.outcome));
        match &object.outcome {
            WriteOutcome::HandedOver => {
                let note = format!(
                    "{} {}: spec.replicas handed over to the autoscaler",
                    object.object.kind, object.object.name
                );
                publish_about(
                    context,
                    fs,
                    Some(&object.object),
                    EventType::Normal,
                    "ReplicasHandedOver",
                    note,
                )
                .await;
            }
            WriteOutcome::Failed(error) => {
                let note = error.to_string();
                publish_about(
                    context,
                    fs,
                    Some(&object.object),
                    EventType::Warning,
                    "ApplyFailed",
                    note,
                )
                .await;
            }
            _ => {}
        }
    }
    for drift in &report.drift {
        context.metrics.count_drift_correction(&drift.object.kind);
        let note = format!(
            "{} {}: restored {} changed by {}",
            drift.object.kind,
            drift.object.name,
            drift.fields.join(", "),
            drift.manager
        );
        publish_about(
            context,
            fs,
            Some(&drift.object),
            EventType::Normal,
            "DriftCorrected",
            note,
        )
        .await;
    }
}

fn metric_outcome(outcome: &WriteOutcome) -> MetricOutcome {
    match outcome {
        WriteOutcome::Created | WriteOutcome::Updated => MetricOutcome::Applied,
        WriteOutcome::Unchanged => MetricOutcome::Unchanged,
        WriteOutcome::Pruned => MetricOutcome::Pruned,
        WriteOutcome::HandedOver => MetricOutcome::HandedOver,
        WriteOutcome::Failed(error) if error.code() == Some(409) => MetricOutcome::Conflict,
        WriteOutcome::Failed(_) => MetricOutcome::Failed,
    }
}

async fn publish(
    context: &Context,
    fs: &FeatureStore,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_about(context, fs, None, type_, reason, note).await;
}

/// Publishes an Event about `fs`, related to one of its children when given. The child is part of the
/// Recorder's series key, so corrections of different children are separate Events, not one series.
async fn publish_about(
    context: &Context,
    fs: &FeatureStore,
    child: Option<&fieldwise_apply::ObjectKey>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let secondary = child.map(|key| k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(key.api_version.clone()),
        kind: Some(key.kind.clone()),
        name: Some(key.name.clone()),
        namespace: key.namespace.clone(),
        ..Default::default()
    });
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary,
    };
    if let Err(error) = context.recorder.publish(&event, &fs.object_ref(&())).await {
        warn!(%error, reason, "could not publish event");
    }
}

/// Reads what the graph depends on from the caches (Secrets, referenced FeatureStores) and, for the rare
/// batch-engine ConfigMap, from the API.
///
/// Fails when a read it needs fails (a Secret's data, a ConfigMap): rendering without it would look
/// like a missing object and fail a FeatureStore that is fine.
async fn graph_context(fs: &FeatureStore, context: &Context) -> Result<GraphContext, Error> {
    // Reconciles may start as soon as the FeatureStores are listed; until the Secrets are listed too, a
    // referenced Secret would look missing and a Ready FeatureStore would flip to Failed.
    if context.secrets_synced.wait().await.is_err() {
        warn!("the Secret cache stopped before its initial list");
    }
    let namespace = fs.namespace().unwrap_or_else(|| "default".to_owned());
    let mut graph = GraphContext {
        images: context.settings.images.clone(),
        oidc_issuer_url: context.settings.oidc_issuer_url.clone(),
        service_monitor_available: context.settings.service_monitor_available,
        ..GraphContext::default()
    };
    for name in referenced_secrets(&fs.spec) {
        let data = context
            .fetched_secrets
            .data(&context.client, &context.secrets, &namespace, &name)
            .await?;
        if let Some(data) = data {
            graph.secrets.insert(name, data);
        }
    }
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(context.client.clone(), &namespace);
    for name in referenced_config_maps(&fs.spec) {
        // A failed read is an error to retry, not a missing ConfigMap (which the status would
        // report as the FeatureStore's fault).
        if let Some(config_map) = config_maps.get_opt(&name).await? {
            graph
                .config_maps
                .insert(name, config_map.data.unwrap_or_default());
        }
    }
    if let Some((ref_namespace, ref_name)) = referenced_feature_store(fs) {
        let cached = context
            .feature_stores
            .get(&ObjectRef::new(&ref_name).within(&ref_namespace));
        match cached.map(|target| target.feature_store()) {
            Some(Ok(target)) => {
                graph
                    .feature_stores
                    .insert((ref_namespace, ref_name), target);
            }
            Some(Err(error)) => warn!(%error, "referenced FeatureStore unreadable"),
            None => {}
        }
    }
    Ok(graph)
}

/// The live feature-server Deployment, from the engine's cache: only the fields the status reads,
/// parsed straight from the cached JSON (a cold start reads every Deployment once per reconcile).
fn observe_deployment(fs: &FeatureStore, context: &Context) -> Option<DeploymentObservation> {
    let namespace = fs.namespace();
    let live: DeploymentFields = context.engine.cached_fields(
        "apps/v1",
        "Deployment",
        namespace.as_deref(),
        &base_name(&fs.name_any()),
    )?;
    let status = live.status.unwrap_or_default();
    let available = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True");
    let up_to_date = status.observed_generation >= live.metadata.generation;
    Some(DeploymentObservation {
        desired_replicas: live.spec.replicas.or(static_replicas(&fs.spec)),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available: available && up_to_date,
    })
}

/// The fields of a Deployment that [`observe_deployment`] reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DeploymentFields {
    metadata: DeploymentMetadata,
    spec: DeploymentSpecFields,
    status: Option<DeploymentStatusFields>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DeploymentMetadata {
    generation: Option<i64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DeploymentSpecFields {
    replicas: Option<i32>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DeploymentStatusFields {
    observed_generation: Option<i64>,
    ready_replicas: Option<i32>,
    conditions: Vec<ConditionFields>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ConditionFields {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

fn set_info_gauge(
    fs: &FeatureStore,
    status: &fieldwise_api::v1::FeatureStoreStatus,
    context: &Context,
) {
    let Some(applied) = status.applied.as_ref() else {
        return;
    };
    let services = applied.services.as_ref();
    let online = services
        .and_then(|s| s.online_store.as_ref())
        .and_then(|o| o.persistence.as_ref());
    let offline = services
        .and_then(|s| s.offline_store.as_ref())
        .and_then(|o| o.persistence.as_ref());
    let registry = services.and_then(|s| s.registry.as_ref());
    let store_type = |store: Option<serde_json::Value>, file: bool| match (store, file) {
        (Some(value), _) => value.as_str().unwrap_or("unknown").to_owned(),
        (None, true) => "file".to_owned(),
        (None, false) => "none".to_owned(),
    };
    let registry_type = match registry {
        Some(r) if r.local.is_some() => "local",
        Some(r)
            if r.remote
                .as_ref()
                .is_some_and(|remote| remote.feast_ref.is_some()) =>
        {
            "remote_feastref"
        }
        Some(r) if r.remote.is_some() => "remote",
        _ => "none",
    };
    context
        .metrics
        .set_feature_store_info(fieldwise_observability::FeatureStoreInfo {
            namespace: fs.namespace().unwrap_or_default(),
            name: fs.name_any(),
            online_store_type: store_type(
                online
                    .and_then(|p| p.store.as_ref())
                    .and_then(|s| serde_json::to_value(s.store_type).ok()),
                online.is_some_and(|p| p.file.is_some()),
            ),
            offline_store_type: store_type(
                offline
                    .and_then(|p| p.store.as_ref())
                    .and_then(|s| serde_json::to_value(s.store_type).ok()),
                offline.is_some_and(|p| p.file.is_some()),
            ),
            registry_type: registry_type.to_owned(),
        });
}

/// Which part of the FeatureStore a child belongs to, from its component.
fn part_of(component: &str) -> ServiceType {
    match component {
        "registry" => ServiceType::Registry,
        "offline" => ServiceType::Offline,
        "ui" => ServiceType::Ui,
        "client" => ServiceType::Client,
        "cronjob" => ServiceType::CronJob,
        "authorization" => ServiceType::Authorization,
        _ => ServiceType::Online,
    }
}

fn had_condition(fs: &FeatureStore, type_: &str) -> bool {
    let conditions = fs.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == type_))
}

fn had_failure_message(fs: &FeatureStore, message: &str) -> bool {
    let conditions = fs.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| {
        c.iter()
            .any(|c| c.type_ == READY_TYPE && c.message.ends_with(message))
    })
}

/// Now, to the second: the API server stores condition times at second precision, so anything finer would
/// make an unchanged status look changed.
fn now() -> Time {
    let seconds = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(seconds)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}
