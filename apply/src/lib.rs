//! fieldwise-apply: the server-side-apply engine.
//!
//! Controllers describe, for one owner, the complete set of objects they want (a desired graph
//! of fresh, minimal JSON bodies); the [`Engine`] makes the cluster match it with server-side
//! apply only, under the single field manager [`MANAGER`] (plus [`HANDOVER_MANAGER`] for
//! replicas handovers). It knows nothing about the custom resources that own the graphs.
//! "spec §N" in this crate is a section of `docs/ssa-semantics.md`, the API server behaviour it
//! relies on.
//!
//! Wiring, once per process:
//! ```no_run
//! # async fn wire(client: kube::Client) -> Result<(), fieldwise_apply::ApplyError> {
//! use fieldwise_apply::{Engine, KindRegistry, KindSpec};
//! use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
//! let registry = KindRegistry::new()
//!     .with(KindSpec::namespaced::<Deployment>().with_replicas())
//!     .with(KindSpec::namespaced::<ConfigMap>());
//! let rules = registry.policy_rules(); // RBAC for the ServiceAccount
//! let engine = Engine::new(client, registry);
//! // Per controller, before starting the watches: a trigger stream for Controller::reconcile_on.
//! let triggers = engine.owner_triggers::<ConfigMap>()?;
//! tokio::spawn(engine.run_watches()?);
//! engine.wait_until_ready().await?; // then report ready on /readyz
//! # drop((rules, triggers)); Ok(()) }
//! ```
//! Per reconcile: [`Engine::reconcile`] with an [`Owner`] and [`DesiredObject`]s, then
//! [`Engine::apply_status`]; on owner deletion [`Engine::delete_cluster_scoped_children`].
//!
//! Guarantees:
//! - every write is `PATCH application/apply-patch+yaml?fieldManager=fieldwise&force=true`
//!   (the replicas handover alone uses `fieldwise-handover` without force), but for the JSON
//!   patch that takes an object's field ownership over from `EngineConfig::take_over_from`
//!   (`metadata.managedFields` only, pinned to the resourceVersion read) and the two repairs
//!   applies cannot make (a `rollingUpdate` beside `Recreate`, a co-owned finalizer); deletes
//!   (prune, Job recreate, finalizer cleanup) carry a uid precondition and background propagation;
//! - an object the caches lack is read first when its owner is adopting (`Owner::adopting`) or
//!   its replicas are released, else applied blind (a create in one request); an object with a
//!   controller reference to another owner is never applied (`ApplyError::ControlledByAnother`);
//! - an object whose live state (from the caches) already equals the desired body, with our
//!   managedFields entry covering exactly its field set, is skipped without a request, so an
//!   unchanged graph and an unchanged status make zero writes;
//! - prune runs only after every object of the reconcile succeeded;
//! - each object gets a span (`apply`, `skip`, `prune`, `handover`, `status`) with
//!   `k8s.object.kind`, `k8s.namespace.name`, `k8s.object.name`, `outcome`, and
//!   `otel.status_code`/`otel.status_description` on failure; bodies are never logged.
//!
//! The controller's reflector of its owner objects should strip managedFields with
//! [`keep_own_managed_fields`] (not wholesale), so `apply_status` can see its own entry.
//! The `Client` should be built with `Config::default_retry = false`: the engine retries itself.

mod cache;
mod cached;
mod desired;
mod engine;
mod error;
pub mod fence;
pub mod fields;
mod fingerprint;
mod identity;
pub mod immutable;
pub mod labels;
pub mod messages;
mod own_status;
mod quantities;
mod registry;
mod report;
mod takeover;
mod transport;

pub use cache::{Subscription, keep_own_managed_fields};
pub use cached::{CachedObject, CompressedJson, ControllerRef};
pub use desired::{CoOwner, DesiredObject, Owner, ReplicasPolicy, applied_body};
pub use engine::{Engine, EngineConfig, FinalizerState, owns_a_status};
pub use error::{ApplyError, ErrorCategory, ObjectKey};
pub use fence::{FenceLayer, FencedConnector, FencedExecutor, FencedWrite, WriteFence};
pub use immutable::{ImmutableField, ImmutableRule, Remedy};
pub use registry::{KindRegistry, KindSpec, Scope};
pub use report::{DriftReport, ObjectReport, Outcome, ReconcileReport};
pub use transport::RetryConfig;

/// The field manager of every object and status fieldwise applies.
pub const MANAGER: &str = "fieldwise";
/// The field manager that holds `spec.replicas` during a handover to an autoscaler.
pub const HANDOVER_MANAGER: &str = "fieldwise-handover";
