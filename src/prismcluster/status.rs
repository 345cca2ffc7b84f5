//! The PrismCluster status, derived from the graph, the apply's failures and the observed
//! workloads. Pure: the same inputs give the same status, and `lastReconciled` moves only when
//! something else in the status changed (so a resync writes nothing).

use fieldwise_api::{
    prism::{ComponentStatus, Phase, PrismCluster, PrismClusterStatus, condition},
    v1::{Condition, ConditionStatus},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    graph::{Part, PrismGraph},
    names,
};
use crate::runtime::{WorkloadObservation, Workloads, conditions};

/// What the reconcile came to, as far as the status cares.
pub enum Outcome<'a> {
    Applied {
        graph: &'a PrismGraph,
        failed: Vec<(Option<Part>, String)>,
    },
    Invalid {
        part: Part,
        message: String,
    },
}

/// The condition type for fields fieldwise accepts but does not act on.
pub const UNSUPPORTED: &str = "Unsupported";

/// The whole status.
pub fn derive_status(
    cluster: &PrismCluster,
    outcome: &Outcome<'_>,
    workloads: &Workloads<'_>,
    now: &Time,
) -> PrismClusterStatus {
    let namespace = cluster.metadata.namespace.as_deref();
    let observe = Observe {
        workloads,
        namespace,
    };
    let admin = observe.deployment(names::ADMIN, cluster.spec.admin.replicas);
    let proxy_replicas = cluster.spec.proxy.replicas;
    let proxy = observe.deployment(names::PROXY, proxy_replicas);
    let backends = observe.backends(cluster);
    let waiting = match outcome {
        Outcome::Applied { graph, .. } => Some(&graph.waiting),
        Outcome::Invalid { .. } => None,
    };
    let patterns = observe.patterns(cluster, waiting);
    let previous = cluster.status.clone().unwrap_or_default();
    let old_conditions = previous.conditions.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let failure = failure(outcome);
    let all = std::iter::once(&admin)
        .chain([&proxy])
        .chain(&backends)
        .chain(&patterns);
    let observed_any = all.clone().any(|c| c.message.as_deref() != Some(NOT_FOUND));
    let phase = match (&failure, all.clone().all(|c| c.ready), observed_any) {
        (Some(_), _, _) => Phase::Failed,
        (None, true, _) => Phase::Running,
        (None, false, false) => Phase::Pending,
        (None, false, true) => Phase::Degraded,
    };
    let unready: Vec<&str> = all.filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let make = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        };
        conditions::condition(
            &old_conditions,
            generation,
            now,
            type_,
            status,
            reason.to_owned(),
            message,
        )
    };
    let ready_message = match (&failure, phase) {
        (Some((_, message)), _) => message.clone(),
        (None, Phase::Running) => "every component is ready".to_owned(),
        (None, _) => format!("not ready: {}", unready.join(", ")),
    };
    let mut conditions = vec![
        make(
            condition::READY,
            phase == Phase::Running,
            phase_reason(phase),
            ready_message,
        ),
        component_condition(
            &make,
            condition::ADMIN_HEALTHY,
            std::slice::from_ref(&admin),
            failure_of(&failure, Part::Admin),
        ),
        component_condition(
            &make,
            condition::PROXY_HEALTHY,
            std::slice::from_ref(&proxy),
            failure_of(&failure, Part::Proxy),
        ),
        component_condition(
            &make,
            condition::BACKENDS_HEALTHY,
            &backends,
            failure_of(&failure, Part::Backends),
        ),
        component_condition(
            &make,
            condition::PATTERNS_HEALTHY,
            &patterns,
            pattern_failure(&failure),
        ),
    ];
    if let Outcome::Applied { graph, .. } = outcome
        && !graph.notes.is_empty()
    {
        conditions.push(make(
            UNSUPPORTED,
            true,
            "NotActedOn",
            graph.notes.join("; "),
        ));
    }
    let ready_count = |list: &[ComponentStatus]| list.iter().filter(|c| c.ready).count();
    let mut status = PrismClusterStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        admin_ready: Some(admin.ready_of_desired()),
        proxy_ready: Some(proxy.ready_of_desired()),
        patterns_ready: Some(format!("{}/{}", ready_count(&patterns), patterns.len())),
        backends_ready: Some(format!("{}/{}", ready_count(&backends), backends.len())),
        admin_status: Some(admin),
        proxy_status: Some(proxy),
        pattern_status: Some(patterns),
        backend_status: Some(backends),
        observed_generation: generation,
        last_reconciled: None,
    };
    // The ADR's timestamp, set only when the status changes: a timestamp rewritten on every pass
    // would make every resync a write.
    let unchanged = PrismClusterStatus {
        last_reconciled: None,
        ..previous.clone()
    } == status;
    status.last_reconciled = match previous.last_reconciled {
        Some(at) if unchanged => Some(at),
        _ => Some(now.clone()),
    };
    status
}

/// The message of a component whose workload does not exist (yet).
const NOT_FOUND: &str = "not created yet";

struct Observe<'a, 'w> {
    workloads: &'a Workloads<'w>,
    namespace: Option<&'a str>,
}

impl Observe<'_, '_> {
    fn deployment(&self, name: &str, desired: i32) -> ComponentStatus {
        component(
            name,
            desired,
            self.workloads.deployment(self.namespace, name),
        )
    }

    fn stateful_set(&self, name: &str, desired: i32) -> ComponentStatus {
        component(
            name,
            desired,
            self.workloads.stateful_set(self.namespace, name),
        )
    }

    fn backends(&self, cluster: &PrismCluster) -> Vec<ComponentStatus> {
        use fieldwise_api::prism::PatternBackend;
        PatternBackend::ALL
            .into_iter()
            .filter_map(|backend| {
                let settings = cluster.spec.backends.settings(backend)?;
                settings
                    .enabled
                    .then(|| self.stateful_set(backend.as_str(), settings.replicas))
            })
            .collect()
    }

    fn patterns(
        &self,
        cluster: &PrismCluster,
        waiting: Option<
            &std::collections::BTreeMap<String, Vec<fieldwise_api::prism::PatternBackend>>,
        >,
    ) -> Vec<ComponentStatus> {
        use fieldwise_api::prism::PatternType;
        cluster
            .spec
            .patterns
            .iter()
            .map(|pattern| {
                let name = pattern.runner_name();
                if let Some(backends) = waiting.and_then(|w| w.get(&name)) {
                    let list: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
                    return ComponentStatus {
                        name,
                        ready: false,
                        replicas: pattern.replicas,
                        available_replicas: 0,
                        message: Some(format!(
                            "waiting for backends to be ready: {}",
                            list.join(", ")
                        )),
                    };
                }
                match pattern.workload {
                    PatternType::Deployment => self.deployment(&name, pattern.replicas),
                    PatternType::StatefulSet => self.stateful_set(&name, pattern.replicas),
                }
            })
            .collect()
    }
}

/// A component's status from its workload (replicas as the cluster has them: an autoscaler's).
fn component(name: &str, desired: i32, live: Option<WorkloadObservation>) -> ComponentStatus {
    let Some(live) = live else {
        return ComponentStatus {
            name: name.to_owned(),
            ready: false,
            replicas: desired,
            available_replicas: 0,
            message: Some(NOT_FOUND.to_owned()),
        };
    };
    let replicas = live.replicas.unwrap_or(desired);
    ComponentStatus {
        name: name.to_owned(),
        ready: live.available,
        replicas,
        available_replicas: live.ready_replicas,
        message: (!live.available)
            .then(|| format!("{}/{replicas} replicas ready", live.ready_replicas)),
    }
}

fn failure(outcome: &Outcome<'_>) -> Option<(Option<Part>, String)> {
    match outcome {
        Outcome::Invalid { part, message } => Some((Some(*part), message.clone())),
        Outcome::Applied { failed, .. } => failed.first().cloned(),
    }
}

fn failure_of(failure: &Option<(Option<Part>, String)>, part: Part) -> Option<&str> {
    failure
        .as_ref()
        .filter(|(p, _)| *p == Some(part))
        .map(|(_, message)| message.as_str())
}

fn pattern_failure(failure: &Option<(Option<Part>, String)>) -> Option<&str> {
    failure
        .as_ref()
        .filter(|(p, _)| matches!(p, Some(Part::Pattern(_))))
        .map(|(_, message)| message.as_str())
}

fn component_condition(
    make: &impl Fn(&str, bool, &str, String) -> Condition,
    type_: &str,
    components: &[ComponentStatus],
    failed: Option<&str>,
) -> Condition {
    if let Some(message) = failed {
        return make(type_, false, "Failed", message.to_owned());
    }
    let unready: Vec<String> = components
        .iter()
        .filter(|c| !c.ready)
        .map(|c| {
            format!(
                "{}: {}",
                c.name,
                c.message.as_deref().unwrap_or("not ready")
            )
        })
        .collect();
    if unready.is_empty() {
        make(type_, true, "Available", "ready".to_owned())
    } else {
        make(type_, false, "Unavailable", unready.join("; "))
    }
}

fn phase_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "Pending",
        Phase::Running => "Running",
        Phase::Degraded => "Degraded",
        Phase::Failed => "Failed",
    }
}
