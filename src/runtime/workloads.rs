//! What a controller's status reads of its workloads: Deployments and StatefulSets, from the
//! engine's caches (no request), parsed for just the fields the status needs.

use std::{collections::HashMap, sync::Mutex};

use fieldwise_apply::Engine;
use serde::Deserialize;

/// The live state of one workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadObservation {
    /// `spec.replicas` as the cluster has it (an autoscaler's choice when it owns the field).
    pub replicas: Option<i32>,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    /// The workload has caught up with its latest spec and serves it: a Deployment whose
    /// `Available` condition is True, a StatefulSet whose replicas are all ready and updated.
    pub available: bool,
}

/// Reads workloads from the engine's caches, for a controller's status function. Made once per
/// reconcile: each workload is parsed from the cache once however often it is asked for (the
/// status and the requeue decision both read it).
pub struct Workloads<'a> {
    engine: &'a Engine,
    seen: Mutex<HashMap<WorkloadKey, Option<WorkloadObservation>>>,
}

/// Kind, namespace and name of a workload.
type WorkloadKey = (&'static str, Option<String>, String);

impl<'a> Workloads<'a> {
    pub fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            seen: Mutex::default(),
        }
    }

    /// The Deployment `name` in `namespace`, if the cache holds it.
    pub fn deployment(&self, namespace: Option<&str>, name: &str) -> Option<WorkloadObservation> {
        self.once("Deployment", namespace, name, || {
            self.read_deployment(namespace, name)
        })
    }

    /// The StatefulSet `name` in `namespace`, if the cache holds it. Available once it observed
    /// its latest generation and every replica is ready and runs the current revision.
    pub fn stateful_set(&self, namespace: Option<&str>, name: &str) -> Option<WorkloadObservation> {
        self.once("StatefulSet", namespace, name, || {
            self.read_stateful_set(namespace, name)
        })
    }

    fn once(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
        name: &str,
        read: impl FnOnce() -> Option<WorkloadObservation>,
    ) -> Option<WorkloadObservation> {
        let key = (kind, namespace.map(str::to_owned), name.to_owned());
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.entry(key).or_insert_with(read).clone()
    }

    fn read_deployment(&self, namespace: Option<&str>, name: &str) -> Option<WorkloadObservation> {
        let live: WorkloadFields =
            self.engine
                .cached_fields("apps/v1", "Deployment", namespace, name)?;
        let status = live.status.unwrap_or_default();
        let available_condition = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        Some(WorkloadObservation {
            replicas: live.spec.replicas,
            ready_replicas: status.ready_replicas.unwrap_or(0),
            available_replicas: status.available_replicas.unwrap_or(0),
            available: available_condition
                && status.observed_generation >= live.metadata.generation,
        })
    }

    fn read_stateful_set(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<WorkloadObservation> {
        let live: WorkloadFields =
            self.engine
                .cached_fields("apps/v1", "StatefulSet", namespace, name)?;
        let status = live.status.unwrap_or_default();
        let wanted = live.spec.replicas.unwrap_or(1);
        let ready = status.ready_replicas.unwrap_or(0);
        let updated = status.update_revision.is_none()
            || status.update_revision == status.current_revision
            || status.updated_replicas.unwrap_or(0) >= wanted;
        Some(WorkloadObservation {
            replicas: live.spec.replicas,
            ready_replicas: ready,
            available_replicas: status.available_replicas.unwrap_or(ready),
            available: status.observed_generation >= live.metadata.generation
                && ready >= wanted
                && updated,
        })
    }
}

/// The fields of a Deployment or StatefulSet the observations read.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkloadFields {
    metadata: MetadataFields,
    spec: SpecFields,
    status: Option<StatusFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MetadataFields {
    generation: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SpecFields {
    replicas: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatusFields {
    observed_generation: Option<i64>,
    ready_replicas: Option<i32>,
    available_replicas: Option<i32>,
    updated_replicas: Option<i32>,
    current_revision: Option<String>,
    update_revision: Option<String>,
    conditions: Vec<ConditionFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConditionFields {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}
