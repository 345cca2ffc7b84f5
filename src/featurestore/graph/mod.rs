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
mod rbac;
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
    rbac::cluster_object_name,
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

/// Everything a reconcile needs from the pure part: the objects to apply and what the status reports.
#[derive(Clone, Debug)]
pub struct DesiredGraph {
    /// The children, in apply order (configuration before the workloads that read it).
    pub objects: Vec<DesiredObject>,
    /// The spec with every default applied (`status.applied`).
    pub applied: FeatureStoreSpec,
    /// In-cluster addresses of the servers (`status.serviceHostnames`).
    pub hostnames: ServiceHostnames,
    /// Spec fields fieldwise accepts but does not act on (their objects would be OpenShift- or add-on-specific).
    pub unsupported: Vec<String>,
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
        shared_mounts: &pod_volumes.shared_mounts,
    };
    let uid = fs.metadata.uid.as_deref().unwrap_or_default();
    let deployment = deployment::deployment(
        &pod,
        &servers,
        &pod_volumes,
        &objects::config_hash(uid, &server_yaml),
    );

    let mut children = Children::default();
    children.push(
        CONFIG,
        objects::config_secret(cr_name, namespace, &secret_name, &server_yaml),
    );
    children.push(
        ServiceType::Client.as_str(),
        objects::client_config_map(cr_name, namespace, &config::to_yaml(&client_yaml)),
    );
    children.push_typed(FEATURE_SERVER, &rbac::service_account(cr_name, namespace));
    for object in rbac::authorization_objects(cr_name, namespace, &applied) {
        children.push(ServiceType::Authorization.as_str(), object);
    }
    for claim in storage::persistent_volume_claims(cr_name, namespace, &applied) {
        children.push_typed(component_of_labels(&claim.metadata), &claim);
    }
    for spec in &service_specs {
        children.push_typed(
            spec.server.service.as_str(),
            &services::service(cr_name, namespace, spec),
        );
    }
    let replicas = match scaling::autoscaling(&applied) {
        Some(_) => ReplicasPolicy::Released,
        None => ReplicasPolicy::Owned,
    };
    children.push_workload(FEATURE_SERVER, &deployment, replicas);
    if let Some(hpa) = scaling::horizontal_pod_autoscaler(cr_name, namespace, &applied) {
        children.push_typed(FEATURE_SERVER, &hpa);
    }
    if let Some(pdb) = scaling::pod_disruption_budget(cr_name, namespace, &applied) {
        children.push_typed(FEATURE_SERVER, &pdb);
    }
    if let Some(monitor) = objects::service_monitor(cr_name, namespace, &servers, context) {
        children.push(ServiceType::Online.as_str(), monitor);
    }
    for object in rbac::cron_job_rbac(cr_name, namespace) {
        children.push(ServiceType::CronJob.as_str(), object);
    }
    children.push_typed(
        ServiceType::CronJob.as_str(),
        &cronjob::cron_job(cr_name, namespace, &applied, context),
    );

    let unsupported = objects::unsupported_fields(&applied, context);
    Ok(DesiredGraph {
        objects: children.objects,
        applied,
        hostnames,
        unsupported,
    })
}

/// The component a claim belongs to, from its `feast.dev/service-type` label.
fn component_of_labels(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> &str {
    let labels = metadata.labels.as_ref();
    labels
        .and_then(|labels| labels.get(SERVICE_TYPE_LABEL))
        .map_or(FEATURE_SERVER, String::as_str)
}

/// The graph under construction.
#[derive(Default)]
struct Children {
    objects: Vec<DesiredObject>,
}

impl Children {
    fn push(&mut self, component: &str, body: Value) {
        self.objects.push(DesiredObject {
            body,
            component: component.to_owned(),
            replicas: ReplicasPolicy::Owned,
        });
    }

    fn push_typed<T: serde::Serialize>(&mut self, component: &str, object: &T) {
        self.push(component, to_value(object));
    }

    fn push_workload<T: serde::Serialize>(
        &mut self,
        component: &str,
        object: &T,
        replicas: ReplicasPolicy,
    ) {
        self.objects.push(DesiredObject {
            body: to_value(object),
            component: component.to_owned(),
            replicas,
        });
    }
}

/// Serialises a typed object for the graph. k8s-openapi types always serialise (plain data, string keys).
pub(crate) fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}
