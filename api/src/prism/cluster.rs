//! The PrismCluster resource and its spec.

use kube::core::{Message, Rule};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::rules::MAX_PATTERNS;
use super::{
    AdminSpec, BackendsSpec, IngressSpec, ObservabilitySpec, PatternSpec, PrismClusterStatus,
    ProxySpec,
};

/// A whole Prism data layer: its backing services, admin, proxy, pattern runners, ingress and
/// observability (`prism.io/v1alpha1` PrismCluster, ADR-059).
// clippy reads the repeated `type_ = "string"` of the printer columns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "prism.io",
    version = "v1alpha1",
    kind = "PrismCluster",
    doc = "A Prism data layer: backing services, admin, proxy, pattern runners, ingress and observability, from one resource.",
    plural = "prismclusters",
    namespaced,
    shortname = "prism",
    category = "prism",
    status = "PrismClusterStatus",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Admin",
        type_ = "string",
        description = "Ready/desired replicas of prism-admin",
        json_path = ".status.adminReady"
    ),
    printcolumn(
        name = "Proxy",
        type_ = "string",
        description = "Ready/desired replicas of prism-proxy",
        json_path = ".status.proxyReady"
    ),
    printcolumn(
        name = "Patterns",
        type_ = "string",
        description = "Ready/total pattern runners",
        json_path = ".status.patternsReady"
    ),
    printcolumn(
        name = "Backends",
        type_ = "string",
        description = "Ready/enabled backing services",
        json_path = ".status.backendsReady",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = backend_listed_only_when_enabled("redis"))]
#[x_kube(validation = backend_listed_only_when_enabled("nats"))]
#[x_kube(validation = backend_listed_only_when_enabled("postgres"))]
#[x_kube(validation = backend_listed_only_when_enabled("minio"))]
#[x_kube(validation = backend_listed_only_when_enabled("kafka"))]
#[x_kube(validation = Rule::new(
    "self.admin.storage.type != 'postgres' || (has(self.backends.postgres) && self.backends.postgres.enabled)"
).message("admin.storage.type postgres needs the postgres backend: enable spec.backends.postgres"))]
pub struct PrismClusterSpec {
    /// The control plane, `prism-admin`.
    #[serde(default)]
    pub admin: AdminSpec,
    /// The data-plane proxy, `prism-proxy`.
    #[serde(default)]
    pub proxy: ProxySpec,
    /// Pattern runners, one workload `<name>-runner` each; merged by `name` under server-side apply.
    #[serde(default)]
    #[schemars(length(max = MAX_PATTERNS))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub patterns: Vec<PatternSpec>,
    /// The backing services fieldwise runs, each a StatefulSet with a headless Service.
    #[serde(default)]
    pub backends: BackendsSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<ObservabilitySpec>,
}

/// A pattern may list `backend` only when `spec.backends.<backend>` is enabled; the message names the
/// first pattern that lists it. (Naming all of them with `filter(…).join(…)` is estimated by the API
/// server at over 100 times its cost budget, since neither result has a size bound; the three-argument
/// `map` keeps the bound of `name`.)
fn backend_listed_only_when_enabled(backend: &str) -> Rule {
    Rule::new(format!(
        "(has(self.backends.{backend}) && self.backends.{backend}.enabled) || !self.patterns.exists(p, '{backend}' in p.backends)"
    ))
    .message(Message::Expression(format!(
        "'backend {backend} is not enabled (spec.backends.{backend}.enabled), but pattern ' + self.patterns.map(p, '{backend}' in p.backends, p.name)[0] + ' lists it'"
    )))
}
