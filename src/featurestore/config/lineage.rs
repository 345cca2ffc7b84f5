//! The feature_store.yaml of the standalone lineage server (`feast serve_lineage`).

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, LocalRegistryConfig, ServiceHostnames};
use serde_json::{Map, Value, json};

use super::auth::{AuthzMode, authz_mode};
use super::openlineage::{LineageRole, openlineage};
use super::{
    ConfigError, ConfigErrorKind, ConfigInputs, LOCAL_PROVIDER, server_tls_cert, stores,
    tls_cert_path,
};
use crate::featurestore::context::GraphContext;
use crate::featurestore::names::ServiceType;

/// The lineage server's feature_store.yaml, or `None` when no `openlineage.consumer.lineageServer` is set.
///
/// It holds project, provider, the `openlineage` consumer settings and, when the servers authorise requests, a
/// remote registry for the lineage server's permission checks. It has no `auth` section. Without its own
/// `connectionStringSecretRef` the consumer shares the SQL registry's database, so the YAML may carry database
/// credentials: store it in a Secret. Errors have part `Online` (see [`ConfigError::part`]); match on
/// [`ConfigError::kind`] to report them under a lineage condition.
pub fn lineage_config(
    feature_store: &FeatureStore,
    applied: &FeatureStoreSpec,
    hostnames: &ServiceHostnames,
    context: &GraphContext,
) -> Result<Option<Value>, ConfigError> {
    let inputs = ConfigInputs {
        feature_store,
        applied,
        context,
        hostnames,
    };
    lineage_document(&inputs).map_err(|kind| ConfigError::new(ServiceType::Online, kind))
}

fn lineage_document(inputs: &ConfigInputs<'_>) -> Result<Option<Value>, ConfigErrorKind> {
    let applied = inputs.applied;
    let Some(config) = applied.openlineage.as_ref() else {
        return Ok(None);
    };
    if config
        .consumer
        .as_ref()
        .and_then(|consumer| consumer.lineage_server.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let sql_registry_url = sql_registry_url(inputs)?;
    let role = LineageRole::LineageServer {
        fallback_connection_string: sql_registry_url.as_deref(),
    };
    let mut document = Map::new();
    document.insert("project".into(), json!(applied.feast_project));
    document.insert("provider".into(), json!(LOCAL_PROVIDER));
    document.insert(
        "openlineage".into(),
        openlineage(config, inputs.context, role)?,
    );
    if let Some(registry) = lineage_registry(inputs)? {
        document.insert("registry".into(), registry);
    }
    Ok(Some(Value::Object(document)))
}

/// The database URL of a local SQL registry (its Secret's `path`), which the consumer reuses by default.
fn sql_registry_url(inputs: &ConfigInputs<'_>) -> Result<Option<String>, ConfigErrorKind> {
    let local_store = local_registry(inputs.applied)
        .and_then(|local| local.persistence.as_ref()?.store.as_ref())
        .is_some();
    if !local_store {
        return Ok(None);
    }
    let registry = stores::registry(inputs.applied, inputs.context, None)?;
    let is_sql = registry.get("registry_type").and_then(Value::as_str) == Some("sql");
    Ok(registry
        .get("path")
        .and_then(Value::as_str)
        .filter(|_| is_sql)
        .map(str::to_owned))
}

/// The registry the lineage server checks permissions against: none without authorization, the remote
/// registry, or this FeatureStore's registry Service.
fn lineage_registry(inputs: &ConfigInputs<'_>) -> Result<Option<Value>, ConfigErrorKind> {
    let applied = inputs.applied;
    if authz_mode(applied) == AuthzMode::NoAuth {
        return Ok(None);
    }
    let registry = applied
        .services
        .as_ref()
        .and_then(|services| services.registry.as_ref());
    if registry.is_some_and(|registry| registry.remote.is_some()) {
        let host = inputs.hostnames.registry.as_deref();
        return stores::registry(applied, inputs.context, host).map(Some);
    }
    let host = inputs
        .hostnames
        .registry
        .as_deref()
        .filter(|host| !host.is_empty() && local_registry(applied).is_some())
        .ok_or(ConfigErrorKind::LineageServerNeedsRegistry)?;
    let mut section = Map::new();
    section.insert("path".into(), json!(host));
    section.insert("registry_type".into(), json!("remote"));
    let server = local_registry(applied).and_then(|local| local.server.as_ref());
    if let Some(cert) = server.and_then(|server| server_tls_cert(Some(&server.server))) {
        section.insert("cert".into(), json!(tls_cert_path("registry", cert)));
    }
    Ok(Some(Value::Object(section)))
}

fn local_registry(applied: &FeatureStoreSpec) -> Option<&LocalRegistryConfig> {
    applied.services.as_ref()?.registry.as_ref()?.local.as_ref()
}
