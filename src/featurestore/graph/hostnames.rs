//! `status.serviceHostnames`: where each server can be reached, including a remote registry (spec §5).

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, RemoteRegistryConfig, ServiceHostnames};

use super::{
    GraphError,
    services::{ServiceSpecOf, local_hostnames},
};
use crate::featurestore::{context::GraphContext, names::ServiceType};

/// The hostnames of the local servers plus the remote registry's, if the registry is remote.
pub fn service_hostnames(
    fs: &FeatureStore,
    applied: &FeatureStoreSpec,
    specs: &[ServiceSpecOf<'_>],
    context: &GraphContext,
) -> Result<ServiceHostnames, GraphError> {
    let namespace = fs.metadata.namespace.as_deref().unwrap_or("default");
    let mut hostnames = local_hostnames(namespace, specs);
    let remote = applied
        .services
        .as_ref()
        .and_then(|s| s.registry.as_ref())
        .and_then(|r| r.remote.as_ref());
    if let Some(remote) = remote {
        let hostname =
            remote_registry_hostname(fs, remote, context).map_err(|message| GraphError {
                part: ServiceType::Registry,
                message,
            })?;
        hostnames.registry = Some(hostname);
    }
    Ok(hostnames)
}

/// A hostname given verbatim, or the registry hostname of the referenced FeatureStore once it is ready.
fn remote_registry_hostname(
    fs: &FeatureStore,
    remote: &RemoteRegistryConfig,
    context: &GraphContext,
) -> Result<String, String> {
    if let Some(hostname) = remote.hostname.as_ref() {
        if hostname.trim().is_empty() {
            return Err("Remote registry hostname must not be empty".to_owned());
        }
        return Ok(hostname.clone());
    }
    let Some(reference) = remote.feast_ref.as_ref() else {
        return Err("Remote registry requires a hostname or a feastRef".to_owned());
    };
    let own_namespace = fs.metadata.namespace.as_deref().unwrap_or("default");
    let namespace = reference.namespace.as_deref().unwrap_or(own_namespace);
    let name = reference.name.as_str();
    if namespace == own_namespace && Some(name) == fs.metadata.name.as_deref() {
        return Err(format!(
            "FeatureStore '{name}' can't reference itself in `spec.services.registry.remote.feastRef`"
        ));
    }
    let Some(target) = context
        .feature_stores
        .get(&(namespace.to_owned(), name.to_owned()))
    else {
        return Err(format!("Referenced FeatureStore '{name}' was not found"));
    };
    let status = target.status.as_ref();
    let target_applied = status.and_then(|s| s.applied.as_ref());
    let local_server = target_applied
        .and_then(|a| a.services.as_ref())
        .and_then(|s| s.registry.as_ref())
        .and_then(|r| r.local.as_ref())
        .and_then(|l| l.server.as_ref());
    let grpc = local_server.is_some_and(|server| server.grpc != Some(false));
    let registry_ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.type_ == "Registry" && c.status == fieldwise_api::v1::ConditionStatus::True
            })
        });
    let hostname = status
        .and_then(|s| s.service_hostnames.as_ref())
        .and_then(|h| h.registry.clone());
    match (grpc, registry_ready, hostname) {
        (false, _, _) if target_applied.is_some() => Err(format!(
            "Remote feast registry of referenced FeatureStore '{name}' must have gRPC server enabled"
        )),
        (_, true, Some(hostname)) if grpc => Ok(hostname),
        _ => Err(format!(
            "Remote feast registry of referenced FeatureStore '{name}' is not ready"
        )),
    }
}
