//! What a reconcile did, object by object.

use crate::error::{ApplyError, ObjectKey};

/// The outcome for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The apply created the object (HTTP 201).
    Created,
    /// The apply created again a child someone else had deleted (the engine saw the delete).
    Recreated,
    /// The desired body changed an immutable field, so the engine deleted the object (as its
    /// kind's remedy says) and created it again.
    Replaced {
        /// The immutable field that changed.
        field: String,
    },
    /// The apply changed the object.
    Updated,
    /// The object was written by other field managers the engine takes over from (see
    /// `EngineConfig::take_over_from`): their field ownership became ours, then the apply removed
    /// what they had set and we do not.
    TakenOver {
        /// The managers taken over from, e.g. `manager` (the Feast operator).
        managers: Vec<String>,
    },
    /// Nothing to do: skipped without a request, or the server reported no change.
    Unchanged,
    /// Deleted because it left the desired graph.
    Pruned,
    /// Left the desired graph, but other owners still share it: only this owner's reference was
    /// taken out.
    LeftShared,
    /// `spec.replicas` was handed over to the autoscaler, then the object applied without it.
    HandedOver,
    /// Failed; nothing else was attempted for this object.
    Failed(ApplyError),
}

impl Outcome {
    /// A stable lowercase name, for span attributes and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Recreated => "recreated",
            Outcome::Replaced { .. } => "replaced",
            Outcome::Updated => "updated",
            Outcome::TakenOver { .. } => "taken_over",
            Outcome::Unchanged => "unchanged",
            Outcome::Pruned => "pruned",
            Outcome::LeftShared => "left_shared",
            Outcome::HandedOver => "handed_over",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// One object's line in a [`ReconcileReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectReport {
    /// The object.
    pub object: ObjectKey,
    /// Its position in the desired graph handed to [`crate::Engine::reconcile`], so that a
    /// controller can tell which part of its resource an outcome belongs to; `None` for pruned
    /// objects.
    pub index: Option<usize>,
    /// The desired object's component (its `app.kubernetes.io/component`); empty for pruned
    /// objects.
    pub component: String,
    /// What happened to it.
    pub outcome: Outcome,
}

/// Fields a forced apply took back from another manager that had changed them: the basis of a
/// `DriftCorrected` Event and a drift metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftReport {
    /// The corrected object.
    pub object: ObjectKey,
    /// The other manager's name, e.g. `kubectl-edit`.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The subresource it wrote through, e.g. `scale`; `None` for the main resource.
    pub subresource: Option<String>,
    /// The fields taken back, e.g. `.spec.template.spec.containers[name="app"].image`.
    pub fields: Vec<String>,
}

/// Everything one [`crate::Engine::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Per-object outcomes: desired objects in graph order, then pruned ones.
    pub objects: Vec<ObjectReport>,
    /// Drift corrected by this reconcile's applies.
    pub drift: Vec<DriftReport>,
    /// True when prune was skipped because some object failed (nothing is lost on a partial
    /// failure).
    pub prune_skipped: bool,
}

impl ReconcileReport {
    /// Whether any object failed.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// The failed objects (key and component) and their errors.
    pub fn errors(&self) -> impl Iterator<Item = (&ObjectReport, &ApplyError)> {
        self.objects.iter().filter_map(|r| match &r.outcome {
            Outcome::Failed(e) => Some((r, e)),
            _ => None,
        })
    }

    /// The outcome recorded for an object, if any.
    pub fn outcome_of(&self, kind: &str, name: &str) -> Option<&Outcome> {
        self.objects
            .iter()
            .find(|r| r.object.kind == kind && r.object.name == name)
            .map(|r| &r.outcome)
    }

    pub(crate) fn push(
        &mut self,
        object: ObjectKey,
        index: Option<usize>,
        component: String,
        outcome: Outcome,
    ) {
        self.objects.push(ObjectReport {
            object,
            index,
            component,
            outcome,
        });
    }
}
