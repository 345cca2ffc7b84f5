//! The FeatureStore controller on the shared runtime: what a FeatureStore reads, its pure desired
//! graph and status (in [`super::graph`] and [`super::status`]), and the Feast operator's info
//! gauge. Watches, finalizer, apply, Events and metrics are the runtime's (`crate::runtime`).

use std::collections::BTreeMap;

use fieldwise_api::v1::{FeatureStore, FeatureStoreStatus};
use fieldwise_apply::KindRegistry;
use fieldwise_observability::{InfoLabels, Metrics};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    runtime::{
        events::EventType,
        reflector::{ObjectRef, Store},
    },
};
use tracing::warn;

use super::{
    cached::CachedFeatureStore,
    context::{CoOwner, ConfigHashKey, GraphContext, ImageDefaults},
    graph::{
        DesiredGraph, HASH_KEY_SECRET_KEY, applied_spec, config_secret_name, desired_graph,
        static_replicas,
    },
    kinds, leftovers,
    names::{INVALID_NAME_REASON, ServiceType, base_name, check_derived_names},
    references::{
        custom_roles, referenced_config_maps, referenced_feature_store, referenced_secrets,
    },
    status::{
        CLUSTER_SCOPED_OFF_REASON, CLUSTER_SCOPED_TYPE, DeploymentObservation, FAILED_REASON,
        Outcome, READY_TYPE, cluster_scoped_off_message, derive_status,
    },
};
use crate::{
    runtime::{Applied, Controller, Graph, GraphResult, Notice, Rejection, Shared, Workloads},
    settings::Settings,
};

/// The finalizer that lets fieldwise remove a FeatureStore's cluster-scoped children, which garbage
/// collection cannot reach (they cannot have a namespaced owner).
pub const FINALIZER: &str = "feast.dev/fieldwise-cleanup";
/// The controller's name in metrics and events.
pub const CONTROLLER: &str = "featurestore";
/// The Feast operator's info gauge, kept for existing dashboards.
pub const FEATURE_STORE_INFO: &str = "feast_operator_feature_store_info";

/// The FeatureStore controller: its settings (what the graph depends on besides the FeatureStore).
pub struct FeatureStoreController {
    images: ImageDefaults,
    oidc_issuer_url: Option<String>,
    service_monitor_available: bool,
    openshift: bool,
    /// How to grant what is needed when the operator may not manage cluster-scoped children
    /// ([`Settings::cluster_scoped_off`]); `None` when it manages them.
    cluster_scoped_off: Option<String>,
}

impl FeatureStoreController {
    /// The controller with the operator's settings; registers its info gauge.
    pub fn new(settings: &Settings, metrics: &Metrics) -> Self {
        metrics.register_info(
            FEATURE_STORE_INFO,
            "FeatureStore information (value is always 1)",
        );
        Self {
            images: settings.images.clone(),
            oidc_issuer_url: settings.oidc_issuer_url.clone(),
            service_monitor_available: settings.service_monitor_available,
            openshift: settings.openshift,
            cluster_scoped_off: settings.cluster_scoped_off.clone(),
        }
    }

    /// The controller `fieldwise render` uses: images from the environment, no OIDC issuer.
    pub fn offline(
        images: ImageDefaults,
        service_monitor_available: bool,
        openshift: bool,
    ) -> Self {
        Self {
            images,
            oidc_issuer_url: None,
            service_monitor_available,
            openshift,
            cluster_scoped_off: None,
        }
    }

    /// The graph inputs that come from the operator's settings, with no resource read yet.
    pub(super) fn settings_context(&self) -> GraphContext {
        GraphContext {
            images: self.images.clone(),
            oidc_issuer_url: self.oidc_issuer_url.clone(),
            service_monitor_available: self.service_monitor_available,
            openshift: self.openshift,
            cluster_scoped_off: self.cluster_scoped_off.clone(),
            ..GraphContext::default()
        }
    }
}

impl Controller for FeatureStoreController {
    type Cached = CachedFeatureStore;
    type Owner = FeatureStore;
    type Inputs = GraphContext;
    type Graph = DesiredGraph;
    type Part = ServiceType;
    type Status = FeatureStoreStatus;

    const NAME: &'static str = CONTROLLER;
    const FINALIZER: &'static str = FINALIZER;
    const APP_NAME: &'static str = "featurestore";

    fn kinds(&self) -> KindRegistry {
        let registry = kinds::registry(self.service_monitor_available);
        match self.cluster_scoped_off {
            // Neither watched nor applied: the operator may not.
            Some(_) => registry.only(fieldwise_apply::Scope::Namespaced),
            None => registry,
        }
    }

    fn parse(cached: &CachedFeatureStore) -> Result<FeatureStore, String> {
        cached.feature_store()
    }

    async fn inputs(
        &self,
        fs: &FeatureStore,
        shared: &Shared<Self>,
    ) -> Result<GraphContext, crate::runtime::ReconcileError> {
        graph_context(self, fs, shared).await
    }

    fn graph(&self, fs: &FeatureStore, inputs: &GraphContext) -> GraphResult<Self> {
        // The CRD refuses such names at creation; a FeatureStore admitted without that rule
        // (before it, or under the Feast operator's CRD) gets no children the API server would
        // refuse one by one, but a status saying which name is too long.
        let namespace = fs.namespace().unwrap_or_else(|| "default".to_owned());
        if let Err(problem) = check_derived_names(&fs.name_any(), &namespace) {
            return Err(Rejection {
                part: problem.part,
                message: problem.message,
            });
        }
        match desired_graph(fs, inputs) {
            Ok(mut graph) => {
                let objects = std::mem::take(&mut graph.objects);
                let parts = std::mem::take(&mut graph.parts);
                Ok(Graph {
                    children: parts.into_iter().zip(objects).collect(),
                    rest: graph,
                })
            }
            Err(error) => Err(Rejection {
                part: error.part,
                message: error.message,
            }),
        }
    }

    fn status(
        &self,
        fs: &FeatureStore,
        inputs: &GraphContext,
        applied: Applied<'_, ServiceType, DesiredGraph>,
        workloads: &Workloads<'_>,
        now: &Time,
    ) -> FeatureStoreStatus {
        let deployment = observe_deployment(fs, workloads);
        let rejected_spec;
        let outcome = match applied {
            Applied::Graph { graph, failed } => Outcome::Applied {
                applied: &graph.applied,
                hostnames: &graph.hostnames,
                unsupported: &graph.unsupported,
                cluster_scoped_off: inputs
                    .cluster_scoped_off
                    .as_deref()
                    .map(|grant| (graph.cluster_scoped_left_out.as_slice(), grant)),
                // A child that failed to be pruned is in no part any more; the FeatureStore
                // condition reports it with the feature servers'.
                failed: failed
                    .iter()
                    .map(|(part, message)| (part.unwrap_or(ServiceType::Online), message.clone()))
                    .collect(),
            },
            Applied::Rejected(rejection) => {
                rejected_spec = applied_spec(fs, inputs);
                let names_invalid = check_derived_names(
                    &fs.name_any(),
                    &fs.namespace().unwrap_or_else(|| "default".to_owned()),
                )
                .is_err();
                Outcome::Invalid {
                    applied: &rejected_spec,
                    part: rejection.part,
                    message: rejection.message.clone(),
                    reason: if names_invalid {
                        INVALID_NAME_REASON
                    } else {
                        FAILED_REASON
                    },
                }
            }
        };
        derive_status(fs, &outcome, deployment.as_ref(), now)
    }

    fn settled(&self, fs: &FeatureStore, workloads: &Workloads<'_>) -> bool {
        observe_deployment(fs, workloads).is_some_and(|d| d.available)
    }

    fn notices(&self, fs: &FeatureStore, graph: &DesiredGraph) -> Vec<Notice> {
        let mut notices = Vec::new();
        if let Some(grant) = &self.cluster_scoped_off
            && !graph.cluster_scoped_left_out.is_empty()
            && !had_condition(fs, CLUSTER_SCOPED_TYPE)
        {
            notices.push(Notice {
                type_: EventType::Warning,
                reason: CLUSTER_SCOPED_OFF_REASON,
                note: cluster_scoped_off_message(fs, &graph.cluster_scoped_left_out, grant),
            });
        }
        if graph.unsupported.is_empty() || had_condition(fs, "Unsupported") {
            return notices;
        }
        notices.push(Notice {
            type_: EventType::Warning,
            reason: "Unsupported",
            note: format!(
                "fieldwise does not create the objects these fields need: {}",
                graph.unsupported.join(", ")
            ),
        });
        notices
    }

    fn has_status(&self, fs: &FeatureStore) -> bool {
        fs.status.is_some()
    }

    async fn taken_on(&self, fs: &FeatureStore, shared: &Shared<Self>) -> Vec<Notice> {
        if self.cluster_scoped_off.is_some() {
            // The leftovers are cluster-scoped: the operator may not read them.
            return Vec::new();
        }
        leftovers::notices(fs, &shared.client).await
    }

    fn reports_rejection(&self, fs: &FeatureStore, message: &str) -> bool {
        let conditions = fs.status.as_ref().and_then(|s| s.conditions.as_ref());
        conditions.is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == READY_TYPE && c.message.ends_with(message))
        })
    }

    fn status_applied(&self, fs: &FeatureStore, status: &FeatureStoreStatus, metrics: &Metrics) {
        if let Some(labels) = info_labels(fs, status) {
            let namespace = fs.namespace().unwrap_or_default();
            metrics.set_info(FEATURE_STORE_INFO, &namespace, &fs.name_any(), labels);
        }
    }

    fn deleted(&self, fs: &FeatureStore, metrics: &Metrics) {
        let namespace = fs.namespace().unwrap_or_default();
        metrics.remove_info(FEATURE_STORE_INFO, &namespace, &fs.name_any());
    }

    fn reads_secret(cached: &CachedFeatureStore, name: &str) -> bool {
        cached.reads_secret(name)
    }

    /// The FeatureStore whose registry it uses (its status carries the hostname the graph needs).
    fn references(cached: &CachedFeatureStore) -> Vec<ObjectRef<CachedFeatureStore>> {
        let referenced = cached.registry_feature_store();
        let to = referenced.map(|(namespace, name)| ObjectRef::new(name).within(namespace));
        to.into_iter().collect()
    }
}

/// Reads what the graph depends on from the caches (Secrets, referenced FeatureStores) and, for the rare
/// batch-engine ConfigMap, from the API.
///
/// Fails when a read it needs fails (a Secret's data, a ConfigMap): rendering without it would look
/// like a missing object and fail a FeatureStore that is fine.
async fn graph_context(
    controller: &FeatureStoreController,
    fs: &FeatureStore,
    shared: &Shared<FeatureStoreController>,
) -> Result<GraphContext, crate::runtime::ReconcileError> {
    let namespace = fs.namespace().unwrap_or_else(|| "default".to_owned());
    let mut graph = controller.settings_context();
    for name in referenced_secrets(&fs.spec) {
        // Waits for the Secret cache's initial list (a Secret would look missing before it).
        let data = shared.secrets.data(&namespace, &name).await?;
        if let Some(data) = data {
            graph.secrets.insert(name, data);
        }
    }
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(shared.client.clone(), &namespace);
    for name in referenced_config_maps(&fs.spec) {
        // A failed read is an error to retry, not a missing ConfigMap (which the status would
        // report as the FeatureStore's fault).
        if let Some(config_map) = config_maps.get_opt(&name).await? {
            graph
                .config_maps
                .insert(name, config_map.data.unwrap_or_default());
        }
    }
    graph.config_hash_key = Some(config_hash_key(fs, &namespace, shared).await?);
    if let Some((ref_namespace, ref_name)) = referenced_feature_store(fs) {
        let cached = shared
            .owners
            .get(&ObjectRef::new(&ref_name).within(&ref_namespace));
        match cached.map(|target| target.feature_store()) {
            Some(Ok(target)) => {
                graph
                    .feature_stores
                    .insert((ref_namespace, ref_name), target);
            }
            Some(Err(error)) => warn!(%error, "referenced FeatureStore unreadable"),
            None => {}
        }
    }
    graph.role_sharers = role_sharers(fs, &namespace, &shared.owners);
    Ok(graph)
}

/// For each custom Role `fs` wants, the other FeatureStores of its namespace that want it too and
/// are not being deleted (a FeatureStore on its way out leaves the Role to the others). Scans the
/// namespace only for the few FeatureStores that list custom Roles.
fn role_sharers(
    fs: &FeatureStore,
    namespace: &str,
    owners: &Store<CachedFeatureStore>,
) -> BTreeMap<String, Vec<CoOwner>> {
    let roles = custom_roles(&fs.spec);
    if roles.is_empty() {
        return BTreeMap::new();
    }
    let others: Vec<_> = owners
        .state()
        .into_iter()
        .filter(|other| {
            other.namespace().as_deref() == Some(namespace)
                && other.uid() != fs.uid()
                && other.metadata.deletion_timestamp.is_none()
        })
        .collect();
    roles
        .into_iter()
        .filter_map(|role| {
            let sharers: Vec<CoOwner> = others
                .iter()
                .filter(|other| other.wants_role(&role))
                .map(|other| CoOwner {
                    name: other.name_any(),
                    uid: other.uid().unwrap_or_default(),
                })
                .collect();
            (!sharers.is_empty()).then_some((role, sharers))
        })
        .collect()
}

/// The config-hash key kept in the FeatureStore's config Secret, or a new one when that Secret
/// (or the key in it) does not exist yet.
async fn config_hash_key(
    fs: &FeatureStore,
    namespace: &str,
    shared: &Shared<FeatureStoreController>,
) -> Result<ConfigHashKey, crate::runtime::ReconcileError> {
    let secret = config_secret_name(&fs.name_any());
    // Before the Secret cache's initial list (right after a restart) a kept key would look
    // missing, and a new one would roll every FeatureStore's pods.
    shared.engine.wait_until_ready().await?;
    let kept = shared
        .engine
        .cached("v1", "Secret", Some(namespace), &secret)
        .and_then(|object| stored_hash_key(&object.data));
    match kept {
        Some(key) => Ok(key),
        None => ConfigHashKey::generate().map_err(|error| {
            crate::runtime::ReconcileError::Apply(fieldwise_apply::ApplyError::InvalidObject {
                object: format!("Secret {secret}"),
                reason: format!("no random source for its config-hash key: {error}"),
            })
        }),
    }
}

/// The config-hash key in a config Secret (the object as JSON), if it holds one.
pub fn stored_hash_key(secret: &serde_json::Value) -> Option<ConfigHashKey> {
    use base64::Engine as _;
    let encoded = secret.get("data")?.get(HASH_KEY_SECRET_KEY)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok().map(ConfigHashKey::new)
}

/// The live feature-server Deployment, from the engine's cache.
fn observe_deployment(
    fs: &FeatureStore,
    workloads: &Workloads<'_>,
) -> Option<DeploymentObservation> {
    let namespace = fs.namespace();
    let live = workloads.deployment(namespace.as_deref(), &base_name(&fs.name_any()))?;
    Some(DeploymentObservation {
        desired_replicas: live.replicas.or(static_replicas(&fs.spec)),
        ready_replicas: live.ready_replicas,
        available: live.available,
    })
}

/// The labels of `feast_operator_feature_store_info` for a FeatureStore, as the Feast operator
/// exports them; `None` before its spec was applied.
fn info_labels(fs: &FeatureStore, status: &FeatureStoreStatus) -> Option<InfoLabels> {
    let applied = status.applied.as_ref()?;
    let services = applied.services.as_ref();
    let online = services
        .and_then(|s| s.online_store.as_ref())
        .and_then(|o| o.persistence.as_ref());
    let offline = services
        .and_then(|s| s.offline_store.as_ref())
        .and_then(|o| o.persistence.as_ref());
    let registry = services.and_then(|s| s.registry.as_ref());
    let store_type = |store: Option<serde_json::Value>, file: bool| match (store, file) {
        (Some(value), _) => value.as_str().unwrap_or("unknown").to_owned(),
        (None, true) => "file".to_owned(),
        (None, false) => "none".to_owned(),
    };
    let registry_type = match registry {
        Some(r) if r.local.is_some() => "local",
        Some(r)
            if r.remote
                .as_ref()
                .is_some_and(|remote| remote.feast_ref.is_some()) =>
        {
            "remote_feastref"
        }
        Some(r) if r.remote.is_some() => "remote",
        _ => "none",
    };
    let online_store_type = store_type(
        online
            .and_then(|p| p.store.as_ref())
            .and_then(|s| serde_json::to_value(s.store_type).ok()),
        online.is_some_and(|p| p.file.is_some()),
    );
    let offline_store_type = store_type(
        offline
            .and_then(|p| p.store.as_ref())
            .and_then(|s| serde_json::to_value(s.store_type).ok()),
        offline.is_some_and(|p| p.file.is_some()),
    );
    let labels = [
        ("namespace", fs.namespace().unwrap_or_default()),
        ("name", fs.name_any()),
        ("online_store_type", online_store_type),
        ("offline_store_type", offline_store_type),
        ("registry_type", registry_type.to_owned()),
    ];
    Some(
        labels
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn had_condition(fs: &FeatureStore, type_: &str) -> bool {
    let conditions = fs.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == type_))
}
