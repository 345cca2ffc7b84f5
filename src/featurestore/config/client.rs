//! The feature_store.yaml of the `feast-<cr>-client` ConfigMap: remote clients of this FeatureStore's servers.

use fieldwise_api::v1::{
    FeatureStore, FeatureStoreServices, FeatureStoreSpec, ServerConfigs, ServiceHostnames,
};
use serde_json::{Map, Value, json};

use super::{
    ConfigError, ENTITY_KEY_SERIALIZATION_VERSION, LOCAL_PROVIDER, auth, extras, server_tls_cert,
    tls_cert_path,
};
use crate::featurestore::context::GraphContext;

/// The Service port clients reach a plain-HTTP server on.
const HTTP_PORT: u16 = 80;
/// The Service port clients reach a TLS server on.
const HTTPS_PORT: u16 = 443;

/// The client feature_store.yaml: project, the remote offline / online / registry entries for every service
/// hostname, client-side auth and MLflow. It holds no credentials and reads nothing from the cluster, so it
/// cannot fail today; the `Result` keeps the signature uniform with [`super::server_config`].
pub fn client_config(
    _feature_store: &FeatureStore,
    applied: &FeatureStoreSpec,
    hostnames: &ServiceHostnames,
    _context: &GraphContext,
) -> Result<Value, ConfigError> {
    let services = applied.services.as_ref();
    let mut document = Map::new();
    document.insert("project".into(), json!(applied.feast_project));
    document.insert("provider".into(), json!(LOCAL_PROVIDER));
    if let Some(host) = hostnames
        .offline_store
        .as_deref()
        .filter(|host| !host.is_empty())
    {
        let server = services.and_then(|services| services.offline_store.as_ref()?.server.as_ref());
        document.insert("offline_store".into(), remote_offline(host, server));
    }
    if let Some(host) = hostnames
        .online_store
        .as_deref()
        .filter(|host| !host.is_empty())
    {
        let server = services.and_then(|services| services.online_store.as_ref()?.server.as_ref());
        document.insert("online_store".into(), remote_online(host, server));
    }
    if let Some(host) = hostnames
        .registry
        .as_deref()
        .filter(|host| !host.is_empty())
    {
        document.insert("registry".into(), remote_registry(host, services));
    }
    document.insert("auth".into(), auth::client_auth(applied));
    document.insert(
        "entity_key_serialization_version".into(),
        json!(ENTITY_KEY_SERIALIZATION_VERSION),
    );
    if let Some(section) = applied.mlflow.as_ref().and_then(extras::mlflow) {
        document.insert("mlflow".into(), section);
    }
    Ok(Value::Object(document))
}

/// `{host, type: remote, port}`: the host without its port, 80 or (TLS) 443 with `scheme: https` and the cert.
fn remote_offline(host_port: &str, server: Option<&ServerConfigs>) -> Value {
    let host = host_port.split(':').next().unwrap_or(host_port);
    let mut section = Map::new();
    section.insert("host".into(), json!(host));
    section.insert("type".into(), json!("remote"));
    match server_tls_cert(server) {
        Some(cert) => {
            section.insert("port".into(), json!(HTTPS_PORT));
            section.insert("scheme".into(), json!("https"));
            section.insert("cert".into(), json!(tls_cert_path("offline", cert)));
        }
        None => {
            section.insert("port".into(), json!(HTTP_PORT));
        }
    }
    Value::Object(section)
}

/// `{path: http(s)://host:port, type: remote, cert?}`.
fn remote_online(host_port: &str, server: Option<&ServerConfigs>) -> Value {
    let cert = server_tls_cert(server);
    let scheme = if cert.is_some() { "https" } else { "http" };
    let mut section = Map::new();
    section.insert("path".into(), json!(format!("{scheme}://{host_port}")));
    section.insert("type".into(), json!("remote"));
    if let Some(cert) = cert {
        section.insert("cert".into(), json!(tls_cert_path("online", cert)));
    }
    Value::Object(section)
}

/// `{path: host:port, registry_type: remote, cert?}`; the cert is the local registry server's, or the remote
/// registry's CA from its ConfigMap.
fn remote_registry(host_port: &str, services: Option<&FeatureStoreServices>) -> Value {
    let registry = services.and_then(|services| services.registry.as_ref());
    let local_cert = registry
        .and_then(|registry| registry.local.as_ref()?.server.as_ref())
        .and_then(|server| server_tls_cert(Some(&server.server)));
    let remote_cert = registry
        .and_then(|registry| registry.remote.as_ref()?.tls.as_ref())
        .map(|tls| tls.cert_name.as_str());
    let mut section = Map::new();
    section.insert("path".into(), json!(host_port));
    section.insert("registry_type".into(), json!("remote"));
    if let Some(cert) = local_cert.or(remote_cert) {
        section.insert("cert".into(), json!(tls_cert_path("registry", cert)));
    }
    Value::Object(section)
}
