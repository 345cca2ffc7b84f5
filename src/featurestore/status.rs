//! The FeatureStore status: derived from the desired graph, the engine's outcome and the observed Deployment.
//! Pure, so every rule is unit-tested; the controller writes the result with server-side apply.

use fieldwise_api::v1::{
    Condition, ConditionStatus, FeatureStore, FeatureStoreSpec, FeatureStoreStatus, ScalingStatus, ServiceHostnames,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    context::FEAST_VERSION,
    graph::is_scaling,
    names::{ServiceType, selector_string, service_name},
};

/// Condition types, as the Feast operator names them.
pub const READY_TYPE: &str = "FeatureStore";
const UNSUPPORTED_TYPE: &str = "Unsupported";

/// What was observed of the feature-server Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentObservation {
    /// `spec.replicas` of the live Deployment.
    pub desired_replicas: Option<i32>,
    pub ready_replicas: i32,
    /// The Deployment's `Available` condition is True.
    pub available: bool,
}

/// The outcome of one reconcile, as far as the status cares.
#[derive(Clone, Debug)]
pub enum Outcome<'a> {
    /// The graph was built and applied; `failed` lists the parts whose objects failed to apply, with messages.
    Applied { applied: &'a FeatureStoreSpec, hostnames: &'a ServiceHostnames, unsupported: &'a [String], failed: Vec<(ServiceType, String)> },
    /// The graph could not be built (bad reference, bad Secret): nothing was applied.
    Invalid { applied: &'a FeatureStoreSpec, part: ServiceType, message: String },
}

/// Derives the whole status. `previous` conditions keep their `lastTransitionTime` while their status holds.
pub fn derive_status(fs: &FeatureStore, outcome: &Outcome<'_>, deployment: Option<&DeploymentObservation>, now: &Time) -> FeatureStoreStatus {
    let cr_name = fs.metadata.name.as_deref().unwrap_or_default();
    let generation = fs.metadata.generation;
    let previous = fs.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let (applied, hostnames) = match outcome {
        Outcome::Applied { applied, hostnames, .. } => (*applied, Some((*hostnames).clone())),
        Outcome::Invalid { applied, .. } => (*applied, None),
    };
    let mut conditions: Vec<Condition> = part_conditions(applied, outcome)
        .into_iter()
        .map(|(type_, status, reason, message)| condition(previous, generation, now, type_, status, reason, message))
        .collect();
    let (status, reason, message) = overall(outcome, deployment);
    conditions.insert(0, condition(previous, generation, now, READY_TYPE, status, reason, message));
    if let Outcome::Applied { unsupported, .. } = outcome {
        if !unsupported.is_empty() {
            let message = format!("fieldwise does not create the objects these fields need: {}", unsupported.join(", "));
            conditions.push(condition(previous, generation, now, UNSUPPORTED_TYPE, ConditionStatus::True, "Unsupported".into(), message));
        }
    }
    let scaling = is_scaling(applied);
    let ready_replicas = deployment.map_or(0, |d| d.ready_replicas);
    FeatureStoreStatus {
        applied: Some(applied.clone()),
        client_config_map: Some(service_name(cr_name, ServiceType::Client)),
        cron_job: Some(super::names::base_name(cr_name)),
        phase: Some(phase(status).to_owned()),
        conditions: Some(conditions),
        feast_version: Some(FEAST_VERSION.to_owned()),
        service_hostnames: hostnames,
        replicas: Some(ready_replicas),
        selector: Some(selector_string(cr_name)),
        scaling_status: scaling.then(|| ScalingStatus {
            current_replicas: Some(ready_replicas),
            desired_replicas: deployment.and_then(|d| d.desired_replicas),
        }),
    }
}

/// `Ready` when the FeatureStore condition is True, `Failed` when False, else `Pending`.
fn phase(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "Ready",
        ConditionStatus::False => "Failed",
        ConditionStatus::Unknown => "Pending",
    }
}

type ConditionParts = (&'static str, ConditionStatus, String, String);

/// The FeatureStore condition: failed parts first, then Deployment availability.
fn overall(outcome: &Outcome<'_>, deployment: Option<&DeploymentObservation>) -> (ConditionStatus, String, String) {
    let failure = match outcome {
        Outcome::Invalid { message, .. } => Some(message.clone()),
        Outcome::Applied { failed, .. } => failed.first().map(|(_, message)| message.clone()),
    };
    if let Some(message) = failure {
        return (ConditionStatus::False, "FeatureStoreFailed".into(), format!("Error: {message}"));
    }
    match deployment {
        Some(d) if d.available => (ConditionStatus::True, "Ready".into(), "FeatureStore installation complete".into()),
        _ => (ConditionStatus::Unknown, "DeploymentNotAvailable".into(), "Deployment is not available".into()),
    }
}

/// One condition per configured part: True once its objects applied, False with the error otherwise.
fn part_conditions(applied: &FeatureStoreSpec, outcome: &Outcome<'_>) -> Vec<ConditionParts> {
    let failure_of = |part: ServiceType| -> Option<String> {
        match outcome {
            Outcome::Invalid { part: failed, message, .. } if *failed == part => Some(message.clone()),
            Outcome::Invalid { .. } => None,
            Outcome::Applied { failed, .. } => failed.iter().find(|(p, _)| *p == part).map(|(_, m)| m.clone()),
        }
    };
    configured_parts(applied)
        .into_iter()
        .map(|(part, type_, ok_message, failed_reason)| match failure_of(part) {
            Some(message) => (type_, ConditionStatus::False, failed_reason.to_owned(), format!("Error: {message}")),
            None => (type_, ConditionStatus::True, "Ready".to_owned(), ok_message.to_owned()),
        })
        .collect()
}

/// The parts a FeatureStore has, with their condition type, success message and failure reason.
fn configured_parts(applied: &FeatureStoreSpec) -> Vec<(ServiceType, &'static str, &'static str, &'static str)> {
    let services = applied.services.as_ref();
    let mut parts = Vec::new();
    if services.and_then(|s| s.offline_store.as_ref()).is_some_and(|o| o.server.is_some()) {
        parts.push((ServiceType::Offline, "OfflineStore", "Offline Store installation complete", "OfflineStoreDeploymentFailed"));
    }
    let online = services.and_then(|s| s.online_store.as_ref());
    if online.is_some_and(|o| o.disabled != Some(true) && o.server.is_some()) {
        parts.push((ServiceType::Online, "OnlineStore", "Online Store installation complete", "OnlineStoreDeploymentFailed"));
    }
    let local_registry = services.and_then(|s| s.registry.as_ref()).and_then(|r| r.local.as_ref());
    if local_registry.is_some_and(|l| l.server.is_some()) {
        parts.push((ServiceType::Registry, "Registry", "Registry installation complete", "RegistryDeploymentFailed"));
    }
    if services.and_then(|s| s.ui.as_ref()).is_some() {
        parts.push((ServiceType::Ui, "UI", "UI installation complete", "UIDeploymentFailed"));
    }
    parts.push((ServiceType::Client, "Client", "Client installation complete", "ClientDeploymentFailed"));
    parts.push((ServiceType::CronJob, "CronJob", "CronJob installation complete", "CronJobDeploymentFailed"));
    let authz = applied.authz.as_ref();
    if authz.and_then(|a| a.kubernetes.as_ref()).is_some() {
        parts.push((
            ServiceType::Authorization,
            "Authorization",
            "Kubernetes authorization installation complete",
            "KubernetesAuthorizationDeploymentFailed",
        ));
    } else if authz.and_then(|a| a.oidc.as_ref()).is_some() {
        parts.push((
            ServiceType::Authorization,
            "Authorization",
            "OIDC authorization installation complete",
            "OidcAuthorizationDeploymentFailed",
        ));
    }
    parts
}

/// A condition that keeps its previous `lastTransitionTime` unless its status changed.
fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
    type_: &str,
    status: ConditionStatus,
    reason: String,
    message: String,
) -> Condition {
    let earlier = previous.iter().find(|c| c.type_ == type_ && c.status == status);
    Condition {
        type_: type_.to_owned(),
        status,
        observed_generation: generation,
        last_transition_time: earlier.map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
        reason,
        message,
    }
}
