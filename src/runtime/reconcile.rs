//! The reconcile wrapper every controller runs through: span, metrics and backoff around the
//! finalizer, the desired graph, the apply, the Events and the status.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fieldwise_apply::{ApplyError, Engine, ErrorCategory, FinalizerState, Owner};
use fieldwise_observability::{
    Metrics, ReconcileResult, WriteOutcome, cpu_timed, record_error, record_result, trace_id,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{EventType, Recorder},
        reflector::ObjectRef,
    },
};
use tracing::{Instrument, info, warn};

use super::{
    controller::{Applied, Controller, Graph, Rejection, Shared},
    events::{metric_outcome, publish, record_writes},
    queue::WorkQueue,
    workloads::Workloads,
};

/// Shared state of one controller's reconciles.
pub struct Context<C: Controller> {
    pub shared: Shared<C>,
    pub engine: Engine,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub queue: Arc<WorkQueue<C::Cached>>,
    /// A settled resource is reconciled again after this long even if nothing changed, so drift
    /// that no watch reported is still corrected. An unchanged one costs no write.
    pub resync_period: Duration,
    /// Consecutive failures per resource, for exponential backoff (kube's error_policy is not told
    /// about successes, so the wrapper keeps this itself).
    failures: Mutex<HashMap<ObjectRef<C::Cached>, u32>>,
}

impl<C: Controller> Context<C> {
    pub fn new(
        shared: Shared<C>,
        engine: Engine,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        resync_period: Duration,
    ) -> Self {
        Self {
            shared,
            engine,
            metrics,
            recorder,
            queue: Arc::default(),
            resync_period,
            failures: Mutex::default(),
        }
    }

    fn controller(&self) -> &C {
        &self.shared.controller
    }

    /// Records the reconcile's result and returns how long to wait before retrying after a
    /// failure: 5 s doubling to at most 5 minutes.
    fn backoff_after(&self, object: &ObjectRef<C::Cached>, failed: bool) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !failed {
            failures.remove(object);
            return Duration::ZERO;
        }
        let count = failures.entry(object.clone()).or_insert(0);
        *count = count.saturating_add(1);
        let seconds = 5u64.saturating_mul(1 << (*count - 1).min(6));
        Duration::from_secs(seconds.min(300))
    }
}

/// Why a reconcile failed; the wrapper requeues with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error("{}", super::errors::message(.0))]
    Kube(#[from] kube::Error),
    #[error("{count} object(s) failed to apply")]
    PartialApply {
        count: usize,
        /// The category of the first failure.
        category: ErrorCategory,
    },
}

impl Error {
    /// What kind of failure this is, for the metrics.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Apply(error) => error.category(),
            Error::PartialApply { category, .. } => *category,
            Error::Kube(kube::Error::Api(status)) => match status.code {
                403 => ErrorCategory::Forbidden,
                409 => ErrorCategory::Conflict,
                400 | 404 | 422 => ErrorCategory::Invalid,
                _ => ErrorCategory::Transient,
            },
            Error::Kube(_) => ErrorCategory::Transient,
        }
    }
}

/// Reconciles one resource inside its own root `reconcile` span (one trace per reconcile). Errors
/// are handled here (status, metrics, backoff); kube's controller only learns when to come back.
pub async fn reconcile<C: Controller>(
    cached: Arc<C::Cached>,
    context: Arc<Context<C>>,
) -> Result<Action, Error> {
    let object = ObjectRef::from_obj(&*cached);
    let span = fieldwise_observability::reconcile_span(
        &C::Cached::kind(&()),
        cached.namespace().as_deref().unwrap_or_default(),
        &cached.name_any(),
        cached.meta().generation,
    );
    let depth = context.queue.take(&object);
    context.metrics.set_queue_depth(C::NAME, depth);
    let started = Instant::now();
    // The CPU time of the reconcile's own work, summed over its polls: API round trips, timers and
    // locks it waits for are not counted.
    let (result, cpu) =
        cpu_timed(reconcile_owner(&*cached, &context).instrument(span.clone())).await;
    context.metrics.observe_reconcile_cpu(C::NAME, cpu);
    let (metric, action) = match result {
        Ok(action) => {
            context.backoff_after(&object, false);
            record_result(&span, "success");
            (ReconcileResult::Success, action)
        }
        Err(error) => {
            record_error(&span, &error.to_string());
            let category = error.category();
            context
                .metrics
                .count_reconcile_error(C::NAME, category.as_str());
            let delay = context.backoff_after(&object, true);
            warn!(parent: &span, error = %error, category = category.as_str(),
                retry_in_seconds = delay.as_secs(), "reconcile failed");
            (ReconcileResult::Error, Action::requeue(delay))
        }
    };
    let trace = trace_id(&span);
    context
        .metrics
        .observe_reconcile(C::NAME, metric, started.elapsed(), trace.as_deref());
    Ok(action)
}

/// kube's error policy; never reached because [`reconcile`] turns errors into requeues itself.
pub fn error_policy<C: Controller>(
    _cached: Arc<C::Cached>,
    _error: &Error,
    _context: Arc<Context<C>>,
) -> Action {
    Action::requeue(Duration::from_secs(5))
}

/// The finalizer first (added by server-side apply before anything else is written, so a
/// cluster-scoped child never exists without it), then the graph; on deletion, the cleanup.
async fn reconcile_owner<C: Controller>(
    cached: &C::Cached,
    context: &Context<C>,
) -> Result<Action, Error> {
    let owner = C::parse(cached).map_err(|reason| ApplyError::InvalidObject {
        object: format!("{} {}", C::Cached::kind(&()), cached.name_any()),
        reason,
    })?;
    let adopting =
        context.controller().has_status(&owner) && !fieldwise_apply::owns_a_status(owner.meta());
    let identity = Owner::of(&owner)?
        .with_app_name(C::APP_NAME)
        .adopting(adopting);
    let has_finalizer = owner.finalizers().iter().any(|f| f == C::FINALIZER);
    if owner.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        return cleanup(&owner, &identity, context).await;
    }
    if !has_finalizer {
        let engine = &context.engine;
        if engine
            .apply_finalizer(&identity, C::FINALIZER, true)
            .await?
            == FinalizerState::OwnerGone
        {
            return Ok(Action::await_change());
        }
        take_on(&owner, context).await;
    }
    apply(&owner, &identity, context).await
}

/// The resource is fieldwise's from now on: what its previous operator left is reported, once.
async fn take_on<C: Controller>(owner: &C::Owner, context: &Context<C>) {
    let notices = context.controller().taken_on(owner, &context.shared).await;
    let owner_ref = owner.object_ref(&());
    for notice in notices {
        let (type_, reason, note) = (notice.type_, notice.reason, notice.note);
        publish(&context.recorder, &owner_ref, None, type_, reason, note).await;
    }
}

/// The desired graph applied, then the status.
async fn apply<C: Controller>(
    owner: &C::Owner,
    identity: &Owner,
    context: &Context<C>,
) -> Result<Action, Error> {
    // The cache may not show our last status write yet; conditions must transition from that status.
    let fresher = context.engine.with_own_status(owner);
    let owner = fresher.as_ref().unwrap_or(owner);
    let controller = context.controller();
    let inputs = controller.inputs(owner, &context.shared).await?;
    match controller.graph(owner, &inputs) {
        Ok(graph) => apply_graph(owner, identity, &inputs, graph, context).await,
        Err(rejection) => reject(owner, identity, &inputs, rejection, context).await,
    }
}

async fn apply_graph<C: Controller>(
    owner: &C::Owner,
    identity: &Owner,
    inputs: &C::Inputs,
    graph: Graph<C::Part, C::Graph>,
    context: &Context<C>,
) -> Result<Action, Error> {
    let controller = context.controller();
    let (parts, objects): (Vec<C::Part>, Vec<_>) = graph.children.into_iter().unzip();
    let report = context.engine.reconcile(identity, objects).await;
    let owner_ref = owner.object_ref(&());
    let (recorder, metrics) = (&context.recorder, &*context.metrics);
    record_writes(C::NAME, recorder, metrics, &owner_ref, &report).await;
    for (kind, count) in context.engine.cached_counts() {
        metrics.set_owned_objects(&kind, count);
    }
    let failed: Vec<(Option<C::Part>, String)> = report
        .errors()
        .map(|(line, error)| {
            let part = line.index.and_then(|index| parts.get(index)).copied();
            (part, error.to_string())
        })
        .collect();
    let first_category = report.errors().next().map(|(_, error)| error.category());
    for notice in controller.notices(owner, &graph.rest) {
        publish(
            recorder,
            &owner_ref,
            None,
            notice.type_,
            notice.reason,
            notice.note,
        )
        .await;
    }
    let workloads = Workloads::new(&context.engine);
    let applied = Applied::Graph {
        graph: &graph.rest,
        failed: &failed,
    };
    let status = controller.status(owner, inputs, applied, &workloads, &now());
    write_status(owner, identity, &status, context).await?;
    if let Some(category) = first_category {
        let count = failed.len();
        return Err(Error::PartialApply { count, category });
    }
    // Until the workloads are settled, look again soon; afterwards only changes trigger reconciles.
    Ok(if controller.settled(owner, &workloads) {
        Action::requeue(context.resync_period)
    } else {
        Action::requeue(Duration::from_secs(5))
    })
}

/// The graph could not be built: nothing is applied or pruned; the status says why.
async fn reject<C: Controller>(
    owner: &C::Owner,
    identity: &Owner,
    inputs: &C::Inputs,
    rejection: Rejection<C::Part>,
    context: &Context<C>,
) -> Result<Action, Error> {
    let controller = context.controller();
    let workloads = Workloads::new(&context.engine);
    let applied = Applied::Rejected(&rejection);
    let status = controller.status(owner, inputs, applied, &workloads, &now());
    if !controller.reports_rejection(owner, &rejection.message) {
        let owner_ref = owner.object_ref(&());
        let (warning, note) = (EventType::Warning, rejection.message.clone());
        publish(
            &context.recorder,
            &owner_ref,
            None,
            warning,
            "InvalidSpec",
            note,
        )
        .await;
    }
    write_status(owner, identity, &status, context).await?;
    info!(reason = %rejection.message, "cannot be reconciled until the spec or its references are fixed");
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// On deletion: remove the cluster-scoped children (namespaced ones go with garbage collection),
/// then the finalizer.
async fn cleanup<C: Controller>(
    owner: &C::Owner,
    identity: &Owner,
    context: &Context<C>,
) -> Result<Action, Error> {
    let engine = &context.engine;
    if !engine.delete_cluster_scoped_children(identity).await? {
        // Still terminating: the finalizer stays until they are gone.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    // Gone already (404) is as good as removed: the deletion completed.
    engine
        .apply_finalizer(identity, C::FINALIZER, false)
        .await?;
    engine.forget_owner(owner);
    context.controller().deleted(owner, &context.metrics);
    Ok(Action::await_change())
}

/// Applies the status; the first one over another operator's takes over its status fields first,
/// so the apply removes what that operator reported and fieldwise does not. (Right before the
/// apply: once taken over, the owner looks like one whose status fieldwise applied.)
async fn write_status<C: Controller>(
    owner: &C::Owner,
    identity: &Owner,
    status: &C::Status,
    context: &Context<C>,
) -> Result<(), Error> {
    if identity.adopting {
        context.engine.take_over_status(identity).await?;
    }
    let value = serde_json::to_value(status).map_err(|e| ApplyError::InvalidObject {
        object: format!("{} {}", C::Owner::kind(&()), owner.name_any()),
        reason: e.to_string(),
    })?;
    let outcome = context.engine.apply_status(owner, value).await?;
    let outcome: WriteOutcome = metric_outcome(&outcome);
    let kind = C::Owner::kind(&());
    context.metrics.count_write(C::NAME, &kind, outcome);
    context
        .controller()
        .status_applied(owner, status, &context.metrics);
    Ok(())
}

/// Now, to the second: the API server stores condition times at second precision, so anything
/// finer would make an unchanged status look changed.
fn now() -> Time {
    let seconds = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(seconds)
            .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now()),
    )
}
