//! The controller runtime every fieldwise controller runs on.
//!
//! A controller is a resource type, a pure desired-graph function, a pure status function and a
//! list of child kinds ([`Controller`]); the runtime owns everything else, once for all of them:
//!
//! - one apply [`Engine`](fieldwise_apply::Engine) whose caches and watches come from the merged
//!   kind registries of every controller (a kind two controllers own is watched and cached once);
//! - one metadata-only Secret cache with on-demand data ([`secrets`]), for controllers whose
//!   resources reference Secrets;
//! - per controller: the owner reflector, triggers (its own spec changes, its children, the
//!   Secrets and other owners it reads), kube's `Controller` with its work queue, and the
//!   reconcile wrapper ([`reconcile`]): finalizer, desired graph, apply, Events, status by
//!   server-side apply, metrics, per-object backoff;
//! - workload observation for Deployments and StatefulSets from the engine's caches
//!   ([`Workloads`]), and readiness for `/readyz`.
//!
//! Writes: every child and every status is a server-side apply through the engine under the
//! manager `fieldwise`, and so is each owner's finalizer ([`fieldwise_apply::Engine::apply_finalizer`]).
//! The only other writes the operator makes are Events (kube's `Recorder`: `events.k8s.io/v1`
//! creates and patches of a series), the leader Lease (`crate::leader`, kube-lease-manager), and a
//! JSON patch that removes a finalizer another manager co-owns (an owner from before fieldwise
//! applied its finalizer). Writes that name no field manager (the Events, that JSON patch) are
//! managed by `fieldwise` all the same: the API server names their manager after the operator's
//! `User-Agent` (`crate::cli::run::operator_config`).
//!
//! Errors reach logs, Events and conditions as messages ([`errors::message`]), never as debug dumps.

pub mod access;
pub mod client;
pub mod conditions;
mod controller;
pub mod errors;
mod events;
pub mod namespaces;
mod queue;
mod reconcile;
mod run;
pub mod secrets;
mod workloads;

pub use controller::{Applied, Controller, Graph, GraphResult, Notice, Rejection, Shared};
pub use queue::Synced;
pub use reconcile::Error as ReconcileError;
pub use run::{RunError, RunOptions, all_kinds, run};
pub use workloads::{WorkloadObservation, Workloads};
