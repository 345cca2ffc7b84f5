//! What a controller gives the runtime: its resource type, child kinds, and pure functions from
//! the resource (and what it reads) to the desired graph and to the status.

use std::{fmt::Debug, future::Future, sync::Arc};

use fieldwise_apply::{DesiredObject, KindRegistry};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Resource,
    core::NamespaceResourceScope,
    runtime::{
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use serde::{Serialize, de::DeserializeOwned};

use super::{reconcile::Error, secrets::SecretReader, workloads::Workloads};

/// One controller on the shared runtime.
///
/// The data flows one way: the cached resource is parsed ([`Self::parse`]), what it references is
/// read ([`Self::inputs`], the only I/O), the desired graph is built ([`Self::graph`], pure), the
/// engine applies it, and the status is derived from the graph, the engine's report and the
/// observed workloads ([`Self::status`], pure) and applied.
pub trait Controller: Send + Sync + Sized + 'static {
    /// The resource as the owner reflector caches it (may be a compact form of [`Self::Owner`]
    /// with the same kind).
    type Cached: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The resource, parsed for one reconcile.
    type Owner: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What the graph reads besides the resource (Secrets, ConfigMaps, other resources).
    type Inputs: Send + Sync;
    /// What the status needs of the graph, besides its objects.
    type Graph: Send + Sync;
    /// The part of the resource a child belongs to (its conditions name parts).
    type Part: Copy + Debug + Send + Sync + 'static;
    /// The resource's status.
    type Status: Serialize + Send + Sync;

    /// The controller's name in metrics (`controller` label) and logs, e.g. `featurestore`.
    const NAME: &'static str;
    /// The finalizer that lets the controller remove cluster-scoped children.
    const FINALIZER: &'static str;
    /// `app.kubernetes.io/name` on every child.
    const APP_NAME: &'static str;

    /// The child kinds (and the owner kind, [`KindRegistry::with_owner`]).
    fn kinds(&self) -> KindRegistry;

    /// The resource, parsed from its cached form; `Err` names what is unreadable.
    fn parse(cached: &Self::Cached) -> Result<Self::Owner, String>;

    /// Reads what the graph depends on. Fails when a read fails (rendering without it would look
    /// like a missing object and fail a resource that is fine).
    fn inputs(
        &self,
        owner: &Self::Owner,
        shared: &Shared<Self>,
    ) -> impl Future<Output = Result<Self::Inputs, Error>> + Send;

    /// The desired graph, or why it cannot be built (nothing is then applied or pruned).
    fn graph(&self, owner: &Self::Owner, inputs: &Self::Inputs) -> GraphResult<Self>;

    /// The status after a reconcile. `now` is to the second (the API server stores times so).
    fn status(
        &self,
        owner: &Self::Owner,
        inputs: &Self::Inputs,
        applied: Applied<'_, Self::Part, Self::Graph>,
        workloads: &Workloads<'_>,
        now: &Time,
    ) -> Self::Status;

    /// Whether the resource's workloads are settled: then it is next reconciled after the resync
    /// period (or a change); otherwise soon, to follow the rollout.
    fn settled(&self, owner: &Self::Owner, workloads: &Workloads<'_>) -> bool;

    /// Events to publish about a graph (e.g. fields accepted but not acted on), each once: the
    /// controller checks its current status to tell whether it already said so.
    fn notices(&self, _owner: &Self::Owner, _graph: &Self::Graph) -> Vec<Notice> {
        Vec::new()
    }

    /// Whether the resource has a status. One that has a status fieldwise has not applied was run
    /// by another operator before: its children may exist without fieldwise's labels, so until
    /// fieldwise applies the status the engine reads each child it does not hold before applying it.
    fn has_status(&self, owner: &Self::Owner) -> bool;

    /// Events about what another operator that ran the resource before left behind, published once:
    /// when the runtime takes the resource on (adds its finalizer). Besides [`Self::inputs`], the
    /// one place a controller may read the cluster.
    fn taken_on(
        &self,
        _owner: &Self::Owner,
        _shared: &Shared<Self>,
    ) -> impl Future<Output = Vec<Notice>> + Send {
        async { Vec::new() }
    }

    /// Whether the current status already reports this rejection (so its Event is not repeated).
    fn reports_rejection(&self, _owner: &Self::Owner, _message: &str) -> bool {
        false
    }

    /// Called after the status was applied (e.g. to export an info gauge).
    fn status_applied(
        &self,
        _owner: &Self::Owner,
        _status: &Self::Status,
        _metrics: &fieldwise_observability::Metrics,
    ) {
    }

    /// Called once the resource's cluster-scoped children are gone and its finalizer is removed.
    fn deleted(&self, _owner: &Self::Owner, _metrics: &fieldwise_observability::Metrics) {}

    /// Whether the resource reads Secret `name` in its namespace (a change to it reconciles the
    /// resource). Resources that read none keep the default.
    fn reads_secret(_cached: &Self::Cached, _name: &str) -> bool {
        false
    }

    /// The other resources of this kind whose state the resource's graph reads (e.g. their status):
    /// a change to one of them, or its deletion, reconciles the resource. The runtime keeps these
    /// in an index as the resources are seen, so a change finds its dependents without a scan.
    fn references(_cached: &Self::Cached) -> Vec<ObjectRef<Self::Cached>> {
        Vec::new()
    }
}

/// The desired graph of a controller's resource, or why it cannot be built.
pub type GraphResult<C> = Result<
    Graph<<C as Controller>::Part, <C as Controller>::Graph>,
    Rejection<<C as Controller>::Part>,
>;

/// What [`Controller::inputs`] may read: the operator's client and the shared caches.
pub struct Shared<C: Controller> {
    pub client: kube::Client,
    /// The engine, for reads of the caches of owned children (`Engine::cached`).
    pub engine: fieldwise_apply::Engine,
    /// Secrets, metadata cached, data fetched on demand.
    pub secrets: SecretReader,
    /// Every resource of the controller's kind, as cached.
    pub owners: Store<C::Cached>,
    pub controller: Arc<C>,
}

/// A desired graph: the children, each tagged with the part it belongs to, and the rest of what
/// the status needs.
pub struct Graph<P, G> {
    /// The children in apply order.
    pub children: Vec<(P, DesiredObject)>,
    pub rest: G,
}

/// Why a graph cannot be built: the part it belongs to and a message for the status and Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection<P> {
    pub part: P,
    pub message: String,
}

/// What a reconcile did, as the status sees it.
pub enum Applied<'a, P, G> {
    /// The graph was applied; `failed` lists the children that failed, by part, with the error
    /// (no part for a child that failed to be pruned: it is no longer in the graph).
    Graph {
        graph: &'a G,
        failed: &'a [(Option<P>, String)],
    },
    /// The graph could not be built; nothing was applied.
    Rejected(&'a Rejection<P>),
}

/// An Event a controller asks to publish about its resource.
pub struct Notice {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}
