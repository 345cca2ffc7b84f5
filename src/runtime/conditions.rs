//! Status conditions as every controller writes them.

use fieldwise_api::v1::{Condition, ConditionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A condition that keeps its previous `lastTransitionTime` unless its status changed (so an
/// unchanged status serialises the same and costs no write).
pub fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
    type_: &str,
    status: ConditionStatus,
    reason: String,
    message: String,
) -> Condition {
    let earlier = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status);
    Condition {
        type_: type_.to_owned(),
        status,
        observed_generation: generation,
        last_transition_time: earlier
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
        reason,
        message,
    }
}
