//! Events about a controller's resources: what a reconcile wrote that a user should know of
//! (drift corrected, a deleted child recreated, replicas handed over, a child refused), and what the controller notices.

use fieldwise_apply::{ObjectKey, Outcome, ReconcileReport};
use fieldwise_observability::{Metrics, WriteOutcome};
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

/// Counts writes and emits Events for drift and handovers; nothing for unchanged objects.
pub async fn record_writes(
    controller: &str,
    recorder: &Recorder,
    metrics: &Metrics,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
    report: &ReconcileReport,
) {
    for object in &report.objects {
        let kind = &object.object.kind;
        metrics.count_write(controller, kind, metric_outcome(&object.outcome));
        let (type_, reason, note) = match &object.outcome {
            Outcome::Recreated => (
                EventType::Warning,
                "ChildRecreated",
                format!(
                    "{kind} {}: was deleted by someone other than fieldwise; recreated it",
                    object.object.name
                ),
            ),
            Outcome::Replaced { field } => (
                EventType::Normal,
                "ChildReplaced",
                format!(
                    "{kind} {}: {field} cannot change in place; deleted it and created it again",
                    object.object.name
                ),
            ),
            Outcome::HandedOver => (
                EventType::Normal,
                "ReplicasHandedOver",
                format!(
                    "{kind} {}: spec.replicas handed over to the autoscaler",
                    object.object.name
                ),
            ),
            // Not a failure: the replacement the kind's remedy asked for, under way.
            Outcome::Failed(fieldwise_apply::ApplyError::RecreatePending { field, .. }) => (
                EventType::Normal,
                "ChildReplacing",
                format!(
                    "{kind} {}: {field} cannot change in place; waiting for the old object to go before creating it again",
                    object.object.name
                ),
            ),
            // The category says who can act: the spec's author (invalid, immutable), another
            // writer (conflict), the cluster's admin (forbidden), or nobody but time (transient).
            Outcome::Failed(error) => (
                EventType::Warning,
                "ApplyFailed",
                format!("{error} [{}]", error.category().as_str()),
            ),
            _ => continue,
        };
        publish(recorder, owner, Some(&object.object), type_, reason, note).await;
    }
    for drift in &report.drift {
        metrics.count_drift_correction(controller, &drift.object.kind);
        let note = format!(
            "{} {}: restored {} changed by {}",
            drift.object.kind,
            drift.object.name,
            drift.fields.join(", "),
            drift.manager
        );
        let (child, normal) = (Some(&drift.object), EventType::Normal);
        publish(recorder, owner, child, normal, "DriftCorrected", note).await;
    }
}

/// The metric outcome of a write.
pub fn metric_outcome(outcome: &Outcome) -> WriteOutcome {
    match outcome {
        Outcome::Created | Outcome::Recreated | Outcome::Replaced { .. } | Outcome::Updated => {
            WriteOutcome::Applied
        }
        Outcome::Unchanged => WriteOutcome::Unchanged,
        Outcome::Pruned => WriteOutcome::Pruned,
        Outcome::HandedOver => WriteOutcome::HandedOver,
        Outcome::Failed(error) if error.code() == Some(409) => WriteOutcome::Conflict,
        Outcome::Failed(_) => WriteOutcome::Failed,
    }
}

/// Publishes an Event about `owner`, related to one of its children when given. The child is part
/// of the Recorder's series key, so corrections of different children are separate Events, not
/// one series.
pub async fn publish(
    recorder: &Recorder,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
    child: Option<&ObjectKey>,
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
    if let Err(error) = recorder.publish(&event, owner).await {
        warn!(error = %super::errors::message(&error), reason, "could not publish event");
    }
}
