//! Events about a controller's resources: what a reconcile wrote that a user should know of
//! (drift corrected, a deleted child recreated or taken over from another manager, replicas handed
//! over, a child refused or controlled by another owner), and what the controller notices.

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
            Outcome::TakenOver { managers } => (
                EventType::Normal,
                "ChildTakenOver",
                format!(
                    "{kind} {}: took over the fields of {} and applied fieldwise's object, removing what it does not set",
                    object.object.name,
                    managers.join(", ")
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
            // Left alone: the other controller owns it (the status names it too).
            Outcome::Failed(error @ fieldwise_apply::ApplyError::ControlledByAnother { .. }) => (
                EventType::Warning,
                "ChildControlledByAnother",
                error.to_string(),
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
        Outcome::Created
        | Outcome::Recreated
        | Outcome::Replaced { .. }
        | Outcome::Updated
        | Outcome::TakenOver { .. } => WriteOutcome::Applied,
        Outcome::Unchanged => WriteOutcome::Unchanged,
        Outcome::Pruned => WriteOutcome::Pruned,
        Outcome::LeftShared => WriteOutcome::Applied,
        Outcome::HandedOver => WriteOutcome::HandedOver,
        Outcome::Failed(error) if error.code() == Some(409) => WriteOutcome::Conflict,
        Outcome::Failed(_) => WriteOutcome::Failed,
    }
}

/// Publishes an Event about `owner`, related to one of its children when given. The child is part
/// of the Recorder's series key, so corrections of different children are separate Events, not
/// one series; so is the note (see [`action`]), so a different message (another field drifted,
/// another manager, another error) is a new Event instead of a count on an Event that says
/// something else.
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
        action: action(&note),
        note: Some(note),
        secondary,
    };
    if let Err(error) = recorder.publish(&event, owner).await {
        warn!(error = %super::errors::message(&error), reason, "could not publish event");
    }
}

/// The Event's action: `Reconcile`, tagged with a digest of the note. client-go's recorder counts
/// an Event as a repeat of an earlier one only when the note is the same too; kube's keys its
/// series on everything but the note, and would count a new message into an Event that shows the
/// first one. The note's digest in the action restores client-go's rule.
fn action(note: &str) -> String {
    // FNV-1a: stable across runs and builds, so a restarted operator keys the same note alike.
    let digest = note.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("Reconcile/{:08x}", digest as u32)
}

#[cfg(test)]
mod tests {
    use fieldwise_e2e::{Emulator, Options};
    use k8s_openapi::api::{core::v1::ConfigMap, events::v1::Event as K8sEvent};
    use kube::{
        Resource,
        api::{Api, ListParams, PostParams},
        runtime::events::Reporter,
    };

    use super::*;

    #[tokio::test]
    async fn a_new_message_is_a_new_event_and_a_repeat_is_counted() {
        let emulator = Emulator::start(Options::default()).await.expect("emulator");
        let client = emulator.client().expect("client");
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let owner = serde_json::from_value(serde_json::json!({"metadata": {"name": "owner"}}))
            .expect("a ConfigMap");
        let owner = config_maps
            .create(&PostParams::default(), &owner)
            .await
            .expect("created");
        let reporter = Reporter {
            controller: "fieldwise".into(),
            instance: None,
        };
        let recorder = Recorder::new(client.clone(), reporter);
        let child = ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: "web".into(),
        };
        let owner = owner.object_ref(&());
        for note in [
            "restored spec.replicas changed by a",
            "restored spec.replicas changed by a",
            "restored spec.paused changed by b",
        ] {
            let (normal, child) = (EventType::Normal, Some(&child));
            publish(
                &recorder,
                &owner,
                child,
                normal,
                "DriftCorrected",
                note.into(),
            )
            .await;
        }
        let events: Api<K8sEvent> = Api::namespaced(client, "default");
        let mut seen: Vec<(String, i32)> = events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .map(|e| (e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("restored spec.paused changed by b".to_owned(), 1),
                ("restored spec.replicas changed by a".to_owned(), 2),
            ]
        );
    }
}
