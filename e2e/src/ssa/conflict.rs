//! Apply conflicts and their 409 Status body (§4.2).

use serde_json::{Value, json};

use super::managed::ManagedFieldsEntry;
use super::path::Path;

/// One field another manager owns whose value the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's entry (fields emptied; only identity matters).
    pub manager: ManagedFieldsEntry,
    /// The conflicting path.
    pub path: Path,
}

/// An apply rejected because other managers own fields it would change (HTTP 409).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyConflict {
    /// Conflicts sorted by manager identity, then path (members before deeper paths).
    pub conflicts: Vec<Conflict>,
}

/// One entry of `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictCause {
    /// Always `FieldManagerConflict`.
    pub reason: String,
    /// `conflict with "alice"` (manager text as in [`ManagedFieldsEntry::display_manager`]).
    pub message: String,
    /// `.data.a`.
    pub field: String,
}

impl ApplyConflict {
    /// `Apply failed with 1 conflict: conflict with "alice": .data.a`, or for several:
    /// `Apply failed with N conflicts: conflicts with "alice":\n- .data.a\nconflicts with …`.
    pub fn message(&self) -> String {
        if let [only] = self.conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager.display_manager(),
                only.path
            );
        }
        let mut lines = Vec::new();
        let mut last_identity = None;
        for conflict in &self.conflicts {
            let identity = conflict.manager.identity();
            if last_identity.as_ref() != Some(&identity) {
                lines.push(format!(
                    "conflicts with {}:",
                    conflict.manager.display_manager()
                ));
                last_identity = Some(identity);
            }
            lines.push(format!("- {}", conflict.path));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }

    /// One cause per (manager, path).
    pub fn causes(&self) -> Vec<ConflictCause> {
        self.conflicts
            .iter()
            .map(|c| ConflictCause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {}", c.manager.display_manager()),
                field: c.path.to_string(),
            })
            .collect()
    }

    /// The full `Status` body the server answers with (code 409, reason Conflict).
    pub fn to_status(&self) -> Value {
        let causes: Vec<Value> = self
            .causes()
            .into_iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message(),
            "reason": "Conflict",
            "details": { "causes": causes },
            "code": 409
        })
    }
}

impl std::fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ApplyConflict {}
