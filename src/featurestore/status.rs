//! The FeatureStore status: derived from the desired graph, the engine's outcome and the observed Deployment.
//! Pure, so every rule is unit-tested; the controller writes the result with server-side apply.

use fieldwise_api::v1::{
    Condition, ConditionStatus, FeatureStore, FeatureStoreSpec, FeatureStoreStatus, ScalingStatus,
    ServiceHostnames,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    config::{AuthzMode, authz_mode},
    context::FEAST_VERSION,
    graph::is_scaling,
    names::{ServiceType, selector_string, service_name},
    trim::{APPLIED_LIMIT, bounded_applied},
};
use crate::runtime::conditions::condition;

/// Condition types, as the Feast operator names them.
pub const READY_TYPE: &str = "FeatureStore";
/// The FeatureStore condition's reason when something failed (the Feast operator's).
pub const FAILED_REASON: &str = "FeatureStoreFailed";
/// The same as [`READY_TYPE`] under the name tools expect (`kubectl wait --for=condition=Ready`).
pub const KUBERNETES_READY_TYPE: &str = "Ready";
const UNSUPPORTED_TYPE: &str = "Unsupported";
/// Present (False) when the graph's ClusterRoles and bindings were left out because the operator
/// may not manage cluster-scoped objects (see `GraphContext::cluster_scoped_off`).
pub const CLUSTER_SCOPED_TYPE: &str = "ClusterScopedRBAC";
/// That condition's reason.
pub const CLUSTER_SCOPED_OFF_REASON: &str = "NotPermittedToOperator";
/// Present (True) when `status.applied` leaves out parts of a spec too large to copy.
pub const TRIMMED_TYPE: &str = "StatusTrimmed";

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
    Applied {
        applied: &'a FeatureStoreSpec,
        hostnames: &'a ServiceHostnames,
        unsupported: &'a [String],
        /// What the graph left out because the operator may not manage cluster-scoped objects,
        /// and how to grant them ([`CLUSTER_SCOPED_TYPE`]).
        cluster_scoped_off: Option<(&'a [String], &'a str)>,
        failed: Vec<(ServiceType, String)>,
    },
    /// The graph could not be built (bad reference, bad Secret): nothing was applied.
    Invalid {
        applied: &'a FeatureStoreSpec,
        part: ServiceType,
        message: String,
        /// The FeatureStore condition's reason: [`FAILED_REASON`] unless the problem has its own.
        reason: &'a str,
    },
}

/// What the [`CLUSTER_SCOPED_TYPE`] condition says: what is missing, for which ServiceAccount,
/// and how to grant it.
pub fn cluster_scoped_off_message(fs: &FeatureStore, left_out: &[String], grant: &str) -> String {
    let namespace = fs.metadata.namespace.as_deref().unwrap_or("default");
    let account =
        crate::featurestore::names::base_name(fs.metadata.name.as_deref().unwrap_or_default());
    format!(
        "fieldwise watches only some namespaces and may not manage cluster-scoped objects, so it did \
         not create {} for the ServiceAccount {namespace}/{account} (the feature servers' token \
         reviews need it). {grant}",
        left_out.join(" and ")
    )
}

/// Derives the whole status. `previous` conditions keep their `lastTransitionTime` while their status holds.
pub fn derive_status(
    fs: &FeatureStore,
    outcome: &Outcome<'_>,
    deployment: Option<&DeploymentObservation>,
    now: &Time,
) -> FeatureStoreStatus {
    let cr_name = fs.metadata.name.as_deref().unwrap_or_default();
    let generation = fs.metadata.generation;
    let previous = fs
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let (applied, hostnames) = match outcome {
        Outcome::Applied {
            applied, hostnames, ..
        } => (*applied, Some((*hostnames).clone())),
        Outcome::Invalid { applied, .. } => (*applied, None),
    };
    let mut conditions: Vec<Condition> = part_conditions(applied, outcome)
        .into_iter()
        .filter_map(|part| match part {
            PartCondition::Now((type_, status, reason, message)) => Some(condition(
                previous, generation, now, type_, status, reason, message,
            )),
            PartCondition::AsBefore(type_) => previous.iter().find(|c| c.type_ == type_).cloned(),
        })
        .collect();
    let (status, reason, message) = overall(outcome, deployment);
    let ready = |type_| {
        let (reason, message) = (reason.clone(), message.clone());
        condition(previous, generation, now, type_, status, reason, message)
    };
    conditions.splice(0..0, [ready(READY_TYPE), ready(KUBERNETES_READY_TYPE)]);
    if let Outcome::Applied { unsupported, .. } = outcome
        && !unsupported.is_empty()
    {
        {
            let message = format!(
                "fieldwise does not create the objects these fields need: {}",
                unsupported.join(", ")
            );
            conditions.push(condition(
                previous,
                generation,
                now,
                UNSUPPORTED_TYPE,
                ConditionStatus::True,
                "Unsupported".into(),
                message,
            ));
        }
    }
    if let Outcome::Applied {
        cluster_scoped_off: Some((left_out, grant)),
        ..
    } = outcome
        && !left_out.is_empty()
    {
        let message = cluster_scoped_off_message(fs, left_out, grant);
        conditions.push(condition(
            previous,
            generation,
            now,
            CLUSTER_SCOPED_TYPE,
            ConditionStatus::False,
            CLUSTER_SCOPED_OFF_REASON.into(),
            message,
        ));
    }
    let (applied_copy, left_out) = bounded_applied(applied);
    if !left_out.is_empty() {
        let message = format!(
            "status.applied leaves out what would make it larger than {} KiB: {}",
            APPLIED_LIMIT / 1024,
            left_out.join(", ")
        );
        let reason = "AppliedSpecTooLarge".to_owned();
        conditions.push(condition(
            previous,
            generation,
            now,
            TRIMMED_TYPE,
            ConditionStatus::True,
            reason,
            message,
        ));
    }
    // The scale subresource's fields describe the Deployment, so they appear once it exists, and a
    // count of zero is left out: both as the Feast operator reports them (its status omits zeros).
    let ready_replicas = deployment.map(|d| d.ready_replicas).filter(|r| *r > 0);
    let scaling = is_scaling(applied) && deployment.is_some();
    let before = fs.status.as_ref();
    FeatureStoreStatus {
        applied: applied_copy,
        client_config_map: made(outcome, ServiceType::Client)
            .then(|| service_name(cr_name, ServiceType::Client))
            .or_else(|| before.and_then(|s| s.client_config_map.clone())),
        cron_job: made(outcome, ServiceType::CronJob)
            .then(|| super::names::base_name(cr_name))
            .or_else(|| before.and_then(|s| s.cron_job.clone())),
        phase: Some(phase(status).to_owned()),
        conditions: Some(conditions),
        feast_version: Some(FEAST_VERSION.to_owned()),
        service_hostnames: hostnames,
        replicas: ready_replicas,
        selector: deployment.map(|_| selector_string(cr_name)),
        scaling_status: scaling.then(|| ScalingStatus {
            current_replicas: ready_replicas,
            desired_replicas: deployment
                .and_then(|d| d.desired_replicas)
                .filter(|r| *r > 0),
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

/// A part's condition after a reconcile: derived now, or as the last reconcile that reached the
/// part left it (its objects are still there; a part never made has no condition at all).
enum PartCondition {
    Now(ConditionParts),
    AsBefore(&'static str),
}

/// Whether this reconcile applied a part's objects.
fn made(outcome: &Outcome<'_>, part: ServiceType) -> bool {
    match outcome {
        Outcome::Applied { failed, .. } => failed.iter().all(|(p, _)| *p != part),
        Outcome::Invalid { .. } => false,
    }
}

/// The FeatureStore condition: failed parts first, then Deployment availability.
fn overall(
    outcome: &Outcome<'_>,
    deployment: Option<&DeploymentObservation>,
) -> (ConditionStatus, String, String) {
    let failure = match outcome {
        Outcome::Invalid {
            message, reason, ..
        } => Some((*reason, message.clone())),
        Outcome::Applied { failed, .. } => failed
            .first()
            .map(|(_, message)| (FAILED_REASON, message.clone())),
    };
    if let Some((reason, message)) = failure {
        return (
            ConditionStatus::False,
            reason.into(),
            format!("Error: {message}"),
        );
    }
    match deployment {
        Some(d) if d.available => (
            ConditionStatus::True,
            "Ready".into(),
            "FeatureStore installation complete".into(),
        ),
        _ => (
            ConditionStatus::Unknown,
            "DeploymentNotAvailable".into(),
            "Deployment is not available".into(),
        ),
    }
}

/// One condition per configured part: True once its objects applied, False with the error
/// otherwise. When the graph could not be built nothing was applied: the other parts keep the
/// conditions an earlier reconcile gave them, and have none if they were never made.
fn part_conditions(applied: &FeatureStoreSpec, outcome: &Outcome<'_>) -> Vec<PartCondition> {
    let failure_of = |part: ServiceType| -> Option<String> {
        match outcome {
            Outcome::Invalid {
                part: failed,
                message,
                ..
            } if *failed == part => Some(message.clone()),
            Outcome::Invalid { .. } => None,
            Outcome::Applied { failed, .. } => failed
                .iter()
                .find(|(p, _)| *p == part)
                .map(|(_, m)| m.clone()),
        }
    };
    configured_parts(applied)
        .into_iter()
        .map(
            |(part, type_, ok_message, failed_reason)| match failure_of(part) {
                Some(message) => PartCondition::Now((
                    type_,
                    ConditionStatus::False,
                    failed_reason.to_owned(),
                    format!("Error: {message}"),
                )),
                None if made(outcome, part) => PartCondition::Now((
                    type_,
                    ConditionStatus::True,
                    "Ready".to_owned(),
                    ok_message.to_owned(),
                )),
                None => PartCondition::AsBefore(type_),
            },
        )
        .collect()
}

/// The parts a FeatureStore has, with their condition type, success message and failure reason.
fn configured_parts(
    applied: &FeatureStoreSpec,
) -> Vec<(ServiceType, &'static str, &'static str, &'static str)> {
    let services = applied.services.as_ref();
    let mut parts = Vec::new();
    // The offline store and a local registry have their conditions whether or not they run a
    // server (as in Feast, so `kubectl wait --for=condition=Registry` works for a file registry).
    if services.and_then(|s| s.offline_store.as_ref()).is_some() {
        parts.push((
            ServiceType::Offline,
            "OfflineStore",
            "Offline Store installation complete",
            "OfflineStoreDeploymentFailed",
        ));
    }
    let online = services.and_then(|s| s.online_store.as_ref());
    if online.is_some_and(|o| o.disabled != Some(true) && o.server.is_some()) {
        parts.push((
            ServiceType::Online,
            "OnlineStore",
            "Online Store installation complete",
            "OnlineStoreDeploymentFailed",
        ));
    }
    let local_registry = services
        .and_then(|s| s.registry.as_ref())
        .and_then(|r| r.local.as_ref());
    if local_registry.is_some() {
        parts.push((
            ServiceType::Registry,
            "Registry",
            "Registry installation complete",
            "RegistryDeploymentFailed",
        ));
    }
    if services.and_then(|s| s.ui.as_ref()).is_some() {
        parts.push((
            ServiceType::Ui,
            "UI",
            "UI installation complete",
            "UIDeploymentFailed",
        ));
    }
    parts.push((
        ServiceType::Client,
        "Client",
        "Client installation complete",
        "ClientDeploymentFailed",
    ));
    parts.push((
        ServiceType::CronJob,
        "CronJob",
        "CronJob installation complete",
        "CronJobDeploymentFailed",
    ));
    let authz = authz_mode(applied);
    if matches!(authz, AuthzMode::Kubernetes) {
        parts.push((
            ServiceType::Authorization,
            "Authorization",
            "Kubernetes authorization installation complete",
            "KubernetesAuthorizationDeploymentFailed",
        ));
    } else if matches!(authz, AuthzMode::Oidc(_)) {
        parts.push((
            ServiceType::Authorization,
            "Authorization",
            "OIDC authorization installation complete",
            "OidcAuthorizationDeploymentFailed",
        ));
    }
    parts
}

#[cfg(test)]
mod tests {
    use fieldwise_api::v1::{FeatureStore, defaults};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;

    fn fs(spec: serde_json::Value) -> FeatureStore {
        serde_json::from_value(json!({
            "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": "fs", "namespace": "ns", "generation": 3}, "spec": spec,
        }))
        .expect("a valid FeatureStore")
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("a valid time"))
    }

    fn available(ready: i32) -> DeploymentObservation {
        DeploymentObservation {
            desired_replicas: Some(ready),
            ready_replicas: ready,
            available: true,
        }
    }

    fn applied_status(
        fs: &FeatureStore,
        deployment: Option<&DeploymentObservation>,
        now: &Time,
    ) -> FeatureStoreStatus {
        let applied = defaults::applied(&fs.spec);
        let hostnames = ServiceHostnames::default();
        let outcome = Outcome::Applied {
            applied: &applied,
            hostnames: &hostnames,
            unsupported: &[],
            cluster_scoped_off: None,
            failed: Vec::new(),
        };
        derive_status(fs, &outcome, deployment, now)
    }

    fn condition<'a>(status: &'a FeatureStoreStatus, type_: &str) -> &'a Condition {
        let conditions = status.conditions.as_ref().expect("conditions");
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn an_available_deployment_makes_the_feature_store_ready() {
        let fs = fs(json!({"feastProject": "p"}));
        let status = applied_status(&fs, Some(&available(1)), &at(100));
        assert_eq!(status.phase.as_deref(), Some("Ready"));
        let ready = condition(&status, READY_TYPE);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::True, "Ready")
        );
        assert_eq!(ready.message, "FeatureStore installation complete");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(
            condition(&status, "OnlineStore").message,
            "Online Store installation complete"
        );
        assert_eq!(
            condition(&status, "Authorization").message,
            "Kubernetes authorization installation complete"
        );
        assert_eq!(status.selector.as_deref(), Some("feast.dev/name=fs"));
        assert_eq!(status.replicas, Some(1));
        assert!(
            status.scaling_status.is_none(),
            "no scaling status without scaling"
        );
    }

    #[test]
    fn an_unavailable_deployment_leaves_the_feature_store_pending() {
        let fs = fs(json!({"feastProject": "p"}));
        let status = applied_status(&fs, None, &at(100));
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let ready = condition(&status, READY_TYPE);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            (ConditionStatus::Unknown, "DeploymentNotAvailable")
        );
        assert_eq!(ready.message, "Deployment is not available");
    }

    #[test]
    fn transition_times_change_only_when_a_condition_changes_status() {
        let mut fs = fs(json!({"feastProject": "p"}));
        let first = applied_status(&fs, None, &at(100));
        fs.status = Some(first);
        let still_pending = applied_status(&fs, None, &at(200));
        assert_eq!(
            condition(&still_pending, READY_TYPE).last_transition_time,
            at(100)
        );
        assert_eq!(
            condition(&still_pending, "OnlineStore").last_transition_time,
            at(100)
        );
        fs.status = Some(still_pending);
        let ready = applied_status(&fs, Some(&available(1)), &at(300));
        assert_eq!(condition(&ready, READY_TYPE).last_transition_time, at(300));
        assert_eq!(
            condition(&ready, "OnlineStore").last_transition_time,
            at(100)
        );
    }

    /// The status after a reconcile whose graph failed on the offline store's missing Secret.
    fn offline_secret_missing(fs: &FeatureStore, now: &Time) -> FeatureStoreStatus {
        let applied = defaults::applied(&fs.spec);
        let outcome = Outcome::Invalid {
            applied: &applied,
            part: ServiceType::Offline,
            message: "secrets \"x\" not found".into(),
            reason: FAILED_REASON,
        };
        derive_status(fs, &outcome, None, now)
    }

    #[test]
    fn a_failed_part_fails_its_condition_and_the_feature_store() {
        let fs = fs(json!({"feastProject": "p", "services": {"offlineStore": {"server": {}}}}));
        let status = offline_secret_missing(&fs, &at(100));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let offline = condition(&status, "OfflineStore");
        assert_eq!(
            (offline.status, offline.reason.as_str()),
            (ConditionStatus::False, "OfflineStoreDeploymentFailed")
        );
        assert_eq!(offline.message, "Error: secrets \"x\" not found");
        assert_eq!(condition(&status, READY_TYPE).reason, "FeatureStoreFailed");
        let conditions = status.conditions.as_ref().expect("conditions");
        assert!(
            conditions.iter().all(|c| c.type_ != "OnlineStore"),
            "nothing was applied, so no part but the failed one is reported"
        );
    }

    #[test]
    fn a_ready_condition_mirrors_the_feature_store_condition() {
        let fs = fs(json!({"feastProject": "p"}));
        for (deployment, status) in [
            (Some(available(1)), ConditionStatus::True),
            (None, ConditionStatus::Unknown),
        ] {
            let derived = applied_status(&fs, deployment.as_ref(), &at(100));
            let (feast, ready) = (
                condition(&derived, READY_TYPE),
                condition(&derived, KUBERNETES_READY_TYPE),
            );
            assert_eq!(ready.status, status);
            assert_eq!(
                (&ready.reason, &ready.message),
                (&feast.reason, &feast.message)
            );
        }
    }

    #[test]
    fn stores_without_servers_still_have_their_conditions() {
        let fs = fs(json!({"feastProject": "p", "services": {
            "offlineStore": {"persistence": {"file": {"type": "duckdb"}}},
            "registry": {"local": {"persistence": {"file": {"path": "registry.db"}}}},
        }}));
        let status = applied_status(&fs, Some(&available(1)), &at(100));
        for type_ in ["OfflineStore", "Registry"] {
            assert_eq!(
                condition(&status, type_).status,
                ConditionStatus::True,
                "{type_}"
            );
        }
        let remote = fs_remote_registry();
        let status = applied_status(&remote, Some(&available(1)), &at(100));
        let conditions = status.conditions.as_ref().expect("conditions");
        assert!(
            conditions.iter().all(|c| c.type_ != "Registry"),
            "a remote registry has no Registry condition"
        );
    }

    fn fs_remote_registry() -> FeatureStore {
        fs(json!({"feastProject": "p", "services": {
            "registry": {"remote": {"hostname": "registry.other:80"}}
        }}))
    }

    #[test]
    fn a_first_reconcile_that_fails_claims_nothing_was_made() {
        let fs = fs(json!({"feastProject": "p", "services": {"offlineStore": {"server": {}}}}));
        let status = offline_secret_missing(&fs, &at(100));
        let types: Vec<&str> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, [READY_TYPE, KUBERNETES_READY_TYPE, "OfflineStore"]);
        assert_eq!(status.client_config_map, None);
        assert_eq!(status.cron_job, None);
        // No Deployment, so nothing for the scale subresource yet (as the Feast operator).
        assert_eq!((status.replicas, status.selector), (None, None));
    }

    #[test]
    fn no_ready_replica_is_reported_as_none_at_all() {
        let fs = fs(json!({"feastProject": "p"}));
        let status = applied_status(&fs, Some(&available(0)), &at(100));
        assert_eq!(status.replicas, None);
        assert_eq!(status.selector.as_deref(), Some("feast.dev/name=fs"));
    }

    #[test]
    fn a_later_failure_keeps_what_earlier_reconciles_made() {
        let mut fs = fs(json!({"feastProject": "p", "services": {"offlineStore": {"server": {}}}}));
        fs.status = Some(applied_status(&fs, Some(&available(1)), &at(100)));
        let status = offline_secret_missing(&fs, &at(200));
        let client = condition(&status, "Client");
        assert_eq!(
            (client.status, client.last_transition_time.clone()),
            (ConditionStatus::True, at(100))
        );
        assert_eq!(status.client_config_map.as_deref(), Some("feast-fs-client"));
        assert_eq!(
            condition(&status, "OfflineStore").status,
            ConditionStatus::False
        );
        assert_eq!(
            condition(&status, KUBERNETES_READY_TYPE).status,
            ConditionStatus::False
        );
    }

    #[test]
    fn a_client_config_map_that_failed_to_apply_is_not_reported() {
        let fs = fs(json!({"feastProject": "p"}));
        let applied = defaults::applied(&fs.spec);
        let hostnames = ServiceHostnames::default();
        let outcome = Outcome::Applied {
            applied: &applied,
            hostnames: &hostnames,
            unsupported: &[],
            cluster_scoped_off: None,
            failed: vec![(ServiceType::Client, "forbidden".into())],
        };
        let status = derive_status(&fs, &outcome, None, &at(100));
        assert_eq!(status.client_config_map, None);
        assert_eq!(condition(&status, "Client").status, ConditionStatus::False);
        assert_eq!(status.cron_job.as_deref(), Some("feast-fs"));
    }

    #[test]
    fn a_huge_spec_is_trimmed_in_status_and_says_so() {
        let env: Vec<serde_json::Value> = (0..2000)
            .map(|i| json!({"name": format!("VARIABLE_{i}"), "value": "x".repeat(40)}))
            .collect();
        let fs =
            fs(json!({"feastProject": "p", "services": {"onlineStore": {"server": {"env": env}}}}));
        let status = applied_status(&fs, Some(&available(1)), &at(100));
        let trimmed = condition(&status, TRIMMED_TYPE);
        assert_eq!(trimmed.reason, "AppliedSpecTooLarge");
        assert!(
            trimmed
                .message
                .contains("spec.services.onlineStore.server.env"),
            "{}",
            trimmed.message
        );
        let applied = serde_json::to_vec(&status.applied).expect("json");
        assert!(applied.len() <= APPLIED_LIMIT, "{} bytes", applied.len());
        let small = applied_status(&self::fs(json!({"feastProject": "p"})), None, &at(100));
        let conditions = small.conditions.as_ref().expect("conditions");
        assert!(conditions.iter().all(|c| c.type_ != TRIMMED_TYPE));
    }

    #[test]
    fn scaling_reports_current_and_desired_replicas() {
        let fs = fs(json!({"feastProject": "p", "replicas": 3, "services": {
            "onlineStore": {"persistence": {"store": {"type": "redis", "secretRef": {"name": "s"}}}},
            "registry": {"remote": {"hostname": "registry:80"}}
        }}));
        let deployment = DeploymentObservation {
            desired_replicas: Some(3),
            ready_replicas: 2,
            available: true,
        };
        let status = applied_status(&fs, Some(&deployment), &at(100));
        assert_eq!(status.replicas, Some(2));
        let scaling = status.scaling_status.expect("scaling status while scaling");
        assert_eq!(
            (scaling.current_replicas, scaling.desired_replicas),
            (Some(2), Some(3))
        );
    }

    #[test]
    fn no_auth_has_no_authorization_condition_and_unsupported_fields_are_reported() {
        let fs = fs(json!({"feastProject": "p", "authz": {"noAuth": true}}));
        let applied = defaults::applied(&fs.spec);
        let hostnames = ServiceHostnames::default();
        let unsupported = vec!["spec.openlineage.consumer.lineageServer".to_owned()];
        let outcome = Outcome::Applied {
            applied: &applied,
            hostnames: &hostnames,
            unsupported: &unsupported,
            cluster_scoped_off: None,
            failed: Vec::new(),
        };
        let status = derive_status(&fs, &outcome, Some(&available(1)), &at(100));
        let conditions = status.conditions.as_ref().expect("conditions");
        assert!(conditions.iter().all(|c| c.type_ != "Authorization"));
        assert!(
            condition(&status, "Unsupported")
                .message
                .contains("spec.openlineage.consumer.lineageServer")
        );
    }
}
