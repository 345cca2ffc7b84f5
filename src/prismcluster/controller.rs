//! The PrismCluster controller on the shared runtime.

use fieldwise_api::prism::{PrismCluster, PrismClusterStatus};
use fieldwise_apply::KindRegistry;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::{
    graph::{Part, PrismGraph, desired_graph},
    inputs::{self, PrismInputs},
    kinds,
    status::{Outcome, UNSUPPORTED, derive_status},
};
use crate::runtime::{
    Applied, Controller, Graph, GraphResult, Notice, ReconcileError, Rejection, Shared, Workloads,
};

/// The finalizer of PrismClusters (for symmetry with FeatureStore: a PrismCluster has no
/// cluster-scoped children today, so its cleanup finds nothing and the finalizer goes at once).
pub const FINALIZER: &str = "prism.io/fieldwise-cleanup";
/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "prismcluster";

/// The PrismCluster controller and what it depends on besides the PrismCluster.
pub struct PrismClusterController {
    service_monitors: bool,
    scaled_objects: bool,
}

impl PrismClusterController {
    /// `service_monitors`, `scaled_objects`: whether the Prometheus Operator's and KEDA's CRDs are
    /// installed.
    pub fn new(service_monitors: bool, scaled_objects: bool) -> Self {
        Self {
            service_monitors,
            scaled_objects,
        }
    }

    /// Whether the Prometheus Operator's and KEDA's CRDs are installed, as the inputs carry it.
    pub(super) fn capabilities(&self) -> (bool, bool) {
        (self.service_monitors, self.scaled_objects)
    }
}

impl Controller for PrismClusterController {
    type Cached = PrismCluster;
    type Owner = PrismCluster;
    type Inputs = PrismInputs;
    type Graph = PrismGraph;
    type Part = Part;
    type Status = PrismClusterStatus;

    const NAME: &'static str = CONTROLLER;
    const FINALIZER: &'static str = FINALIZER;
    const APP_NAME: &'static str = "prism";

    fn kinds(&self) -> KindRegistry {
        kinds::registry(self.service_monitors, self.scaled_objects)
    }

    fn parse(cached: &PrismCluster) -> Result<PrismCluster, String> {
        Ok(cached.clone())
    }

    async fn inputs(
        &self,
        cluster: &PrismCluster,
        shared: &Shared<Self>,
    ) -> Result<PrismInputs, ReconcileError> {
        // The inputs read the engine's caches (which backends are ready, which runners exist).
        // Read before their initial list, as right after a restart, they look empty: the graph
        // then leaves the runners out and the engine, which does wait for its caches, prunes
        // them (the bench saw runners deleted and recreated in its restart pass).
        shared.engine.wait_until_ready().await?;
        inputs::read(cluster, shared, self.capabilities())
    }

    fn graph(&self, cluster: &PrismCluster, inputs: &PrismInputs) -> GraphResult<Self> {
        match desired_graph(cluster, inputs) {
            Ok((children, rest)) => Ok(Graph { children, rest }),
            Err(error) => Err(Rejection {
                part: error.part,
                message: error.message,
            }),
        }
    }

    fn status(
        &self,
        cluster: &PrismCluster,
        _inputs: &PrismInputs,
        applied: Applied<'_, Part, PrismGraph>,
        workloads: &Workloads<'_>,
        now: &Time,
    ) -> PrismClusterStatus {
        let outcome = match applied {
            Applied::Graph { graph, failed } => Outcome::Applied {
                graph,
                failed: failed.to_vec(),
            },
            Applied::Rejected(rejection) => Outcome::Invalid {
                part: rejection.part,
                message: rejection.message.clone(),
            },
        };
        derive_status(cluster, &outcome, workloads, now)
    }

    fn has_status(&self, cluster: &PrismCluster) -> bool {
        cluster.status.is_some()
    }

    fn settled(&self, cluster: &PrismCluster, workloads: &Workloads<'_>) -> bool {
        let namespace = cluster.metadata.namespace.as_deref();
        let available = |name| {
            workloads
                .deployment(namespace, name)
                .is_some_and(|w| w.available)
        };
        available(super::names::ADMIN) && available(super::names::PROXY)
    }

    fn notices(&self, cluster: &PrismCluster, graph: &PrismGraph) -> Vec<Notice> {
        let conditions = cluster.status.as_ref().and_then(|s| s.conditions.as_ref());
        let said = conditions.is_some_and(|c| c.iter().any(|c| c.type_ == UNSUPPORTED));
        if graph.notes.is_empty() || said {
            return Vec::new();
        }
        vec![Notice {
            type_: EventType::Warning,
            reason: "Unsupported",
            note: graph.notes.join("; "),
        }]
    }

    fn reports_rejection(&self, cluster: &PrismCluster, message: &str) -> bool {
        let conditions = cluster.status.as_ref().and_then(|s| s.conditions.as_ref());
        conditions.is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == fieldwise_api::prism::condition::READY && c.message == message)
        })
    }
}
