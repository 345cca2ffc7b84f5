//! The desired object graph of a FeatureStore: a pure function of the FeatureStore and its [`GraphContext`].
//!
//! Every child is built fresh as a minimal body (only the fields fieldwise means to own) and handed to the
//! apply engine, which adds owner references and the standard labels, applies, skips what is unchanged and
//! prunes what is no longer wanted.

mod containers;
mod cronjob;
mod deployment;
mod hostnames;
mod objects;
pub mod rbac;
mod scaling;
mod servers;
mod services;
mod storage;
mod volumes;

#[cfg(test)]
mod tests;

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, ServiceHostnames, defaults};
use fieldwise_apply::{DesiredObject, ReplicasPolicy};
use serde_json::Value;

pub use self::{
    deployment::{CONFIG_HASH_ANNOTATION, static_replicas},
    hostnames::service_hostnames,
    rbac::{
        CRON_JOB_EXEC_CLUSTER_ROLE, OIDC_TOKEN_REVIEW_CLUSTER_ROLE, SHIPPED_CLUSTER_ROLES,
        TOKEN_REVIEW_CLUSTER_ROLE, cluster_object_name, cron_job_exec_binding_name,
        shipped_cluster_role_rules,
    },
    scaling::is_scaling,
};
use crate::featurestore::{
    config,
    context::GraphContext,
    names::{SERVICE_TYPE_LABEL, ServiceType, base_name},
};

/// The component of the Deployment and what serves it as a whole (ServiceAccount, HPA, PDB).
const FEATURE_SERVER: &str = "feature-server";
/// The component of the Secret holding the server configuration.
const CONFIG: &str = "config";

/// The name of the Secret holding the server feature_store.yaml: `feast-<cr>-server-config`.
pub fn config_secret_name(cr_name: &str) -> String {
    format!("{}-server-config", base_name(cr_name))
}

/// The key of the server feature_store.yaml (base64, as the Feast images read it) in that Secret.
pub const CONFIG_SECRET_KEY: &str = "TMP_FEATURE_STORE_YAML_BASE64";
/// The key of the config Secret that holds the FeatureStore's config-hash key (never mounted).
pub const HASH_KEY_SECRET_KEY: &str = "config-hash-key";

/// Everything a reconcile needs from the pure part: the objects to apply and what the status reports.
#[derive(Clone, Debug)]
pub struct DesiredGraph {
    /// The children, in apply order (configuration before the workloads that read it).
    pub objects: Vec<DesiredObject>,
    /// The part of the FeatureStore each child belongs to: `parts[i]` is that of `objects[i]`
    /// (its conditions report the child's failures).
    pub parts: Vec<ServiceType>,
    /// The spec with every default applied (`status.applied`).
    pub applied: FeatureStoreSpec,
    /// In-cluster addresses of the servers (`status.serviceHostnames`).
    pub hostnames: ServiceHostnames,
    /// Spec fields fieldwise accepts but does not act on (their objects would be OpenShift- or add-on-specific).
    pub unsupported: Vec<String>,
    /// The cluster-scoped children left out because the operator may not manage them
    /// ([`GraphContext::cluster_scoped_off`]), as `<Kind> <name>`.
    pub cluster_scoped_left_out: Vec<String>,
}

/// Why the graph could not be built; the status names the failing part with the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GraphError {
    /// The part of the FeatureStore the error belongs to (its condition turns False).
    pub part: ServiceType,
    pub message: String,
}

impl GraphError {
    fn new(part: ServiceType, message: impl Into<String>) -> Self {
        Self {
            part,
            message: message.into(),
        }
    }
}

/// The spec with every default applied, as `status.applied` reports it (remote registry namespace and the
/// CronJob image included).
pub fn applied_spec(fs: &FeatureStore, context: &GraphContext) -> FeatureStoreSpec {
    let defaults = defaults::DefaultsContext {
        namespace: Some(
            fs.metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
        ),
        cron_job_image: Some(context.images.cron_job.clone()),
        feature_server_image: Some(context.images.feature_server.clone()),
    };
    defaults::applied_with(&fs.spec, &defaults)
}

/// Builds the desired graph of `fs`. Pure: the same inputs always give the same objects in the same order.
pub fn desired_graph(
    fs: &FeatureStore,
    context: &GraphContext,
) -> Result<DesiredGraph, GraphError> {
    let cr_name = fs.metadata.name.as_deref().unwrap_or_default();
    let namespace = fs.metadata.namespace.as_deref().unwrap_or("default");
    let applied = applied_spec(fs, context);
    let servers = servers::servers(&applied);
    if servers.is_empty() {
        return Err(GraphError::new(
            ServiceType::Online,
            "at least one local server must be configured. e.g. registry / online / offline",
        ));
    }
    let service_specs = services::service_specs(cr_name, &servers);
    let hostnames = hostnames::service_hostnames(fs, &applied, &service_specs, context)?;

    let server_yaml = config::server_config(fs, &applied, &hostnames, context)
        .map_err(|error| GraphError::new(error.part(), error.to_string()))?;
    let client_yaml = config::client_config(fs, &applied, &hostnames, context)
        .map_err(|error| GraphError::new(ServiceType::Client, error.to_string()))?;
    let server_yaml = config::to_yaml(&server_yaml);

    let pod_volumes = volumes::pod_volumes(cr_name, &applied, &servers);
    let secret_name = config_secret_name(cr_name);
    let pod = containers::PodContext {
        fs,
        applied: &applied,
        context,
        config_secret: (&secret_name, CONFIG_SECRET_KEY),
        volumes: &pod_volumes,
    };
    let hash_key = context.config_hash_key.clone().unwrap_or_default();
    let deployment = deployment::deployment(
        &pod,
        &servers,
        &pod_volumes,
        &objects::config_hash(&hash_key, &server_yaml),
    );

    let mut children = Children::default();
    children.push(
        (ServiceType::Online, CONFIG),
        objects::config_secret(cr_name, namespace, &secret_name, &server_yaml, &hash_key),
    );
    children.push(
        ServiceType::Client.into(),
        objects::client_config_map(cr_name, namespace, &config::to_yaml(&client_yaml)),
    );
    children.push_typed(
        FEATURE_SERVER_PART,
        &rbac::service_account(cr_name, namespace),
    );
    let mut cluster_scoped_left_out = Vec::new();
    for object in rbac::authorization_objects(cr_name, namespace, &applied) {
        if context.cluster_scoped_off.is_some() && rbac::is_cluster_scoped(&object) {
            cluster_scoped_left_out.push(rbac::kind_and_name(&object));
            continue;
        }
        children.push(ServiceType::Authorization.into(), object);
    }
    for (role, sharers) in rbac::custom_roles(fs, &applied, context) {
        children.push_shared(ServiceType::Authorization.into(), role, sharers);
    }
    for claim in storage::persistent_volume_claims(cr_name, namespace, &applied) {
        children.push_typed(part_of_claim(&claim.metadata), &claim);
    }
    for spec in &service_specs {
        children.push_typed(
            spec.server.service.into(),
            &services::service(cr_name, namespace, spec),
        );
    }
    // The HPA and the PodDisruptionBudget before the Deployment: taking one over from the Feast
    // operator is a patch pinned to its resourceVersion, and once the Deployment rolls, their
    // controllers rewrite their status (and so that version) with every pod that comes and goes.
    if let Some(hpa) = scaling::horizontal_pod_autoscaler(cr_name, namespace, &applied) {
        children.push_typed(FEATURE_SERVER_PART, &hpa);
    }
    if let Some(pdb) = scaling::pod_disruption_budget(cr_name, namespace, &applied) {
        children.push_typed(FEATURE_SERVER_PART, &pdb);
    }
    let replicas = match scaling::autoscaling(&applied) {
        Some(_) => ReplicasPolicy::Released,
        None => ReplicasPolicy::Owned,
    };
    children.push_workload(FEATURE_SERVER_PART, &deployment, replicas);
    if let Some(monitor) = objects::service_monitor(cr_name, namespace, &servers, context) {
        children.push(ServiceType::Online.into(), monitor);
    }
    for object in rbac::cron_job_rbac(cr_name, namespace) {
        children.push(ServiceType::CronJob.into(), object);
    }
    children.push_typed(
        ServiceType::CronJob.into(),
        &cronjob::cron_job(cr_name, namespace, &applied, context),
    );

    let unsupported = objects::unsupported_fields(&applied, context);
    Ok(DesiredGraph {
        objects: children.objects,
        parts: children.parts,
        applied,
        hostnames,
        unsupported,
        cluster_scoped_left_out,
    })
}

/// The part a claim belongs to and its component, from its `feast.dev/service-type` label.
fn part_of_claim(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (ServiceType, &'static str) {
    let labels = metadata.labels.as_ref();
    let label = labels.and_then(|labels| labels.get(SERVICE_TYPE_LABEL));
    ServiceType::ALL
        .into_iter()
        .find(|part| label.is_some_and(|label| label == part.as_str()))
        .map_or(FEATURE_SERVER_PART, Into::into)
}

/// The part and component of the children every feature server shares (ServiceAccount,
/// Deployment, HPA, PDB): the online part carries the Deployment's availability.
const FEATURE_SERVER_PART: (ServiceType, &str) = (ServiceType::Online, FEATURE_SERVER);

impl From<ServiceType> for (ServiceType, &'static str) {
    /// A part whose children carry its name as their component.
    fn from(part: ServiceType) -> Self {
        (part, part.as_str())
    }
}

/// The graph under construction: each child with the part it belongs to and its component label.
#[derive(Default)]
struct Children {
    objects: Vec<DesiredObject>,
    parts: Vec<ServiceType>,
}

impl Children {
    fn push(&mut self, (part, component): (ServiceType, &str), body: Value) {
        self.push_workload_body(part, component, body, ReplicasPolicy::Owned);
    }

    fn push_typed<T: serde::Serialize>(&mut self, part: (ServiceType, &str), object: &T) {
        self.push(part, to_value(object));
    }

    fn push_workload<T: serde::Serialize>(
        &mut self,
        (part, component): (ServiceType, &str),
        object: &T,
        replicas: ReplicasPolicy,
    ) {
        self.push_workload_body(part, component, to_value(object), replicas);
    }

    fn push_workload_body(
        &mut self,
        part: ServiceType,
        component: &str,
        body: Value,
        replicas: ReplicasPolicy,
    ) {
        self.objects
            .push(DesiredObject::new(component, body).with_replicas(replicas));
        self.parts.push(part);
    }

    /// A child other FeatureStores of the namespace want with the same content (see
    /// [`DesiredObject::shared_by`]).
    fn push_shared(
        &mut self,
        (part, component): (ServiceType, &str),
        body: Value,
        sharers: Vec<fieldwise_apply::CoOwner>,
    ) {
        self.objects
            .push(DesiredObject::new(component, body).shared_by(sharers));
        self.parts.push(part);
    }
}

/// Serialises a typed object for the graph. k8s-openapi types always serialise (plain data, string keys).
pub(crate) fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}
