//! The feature_store.yaml every main container of the FeatureStore's Deployment runs with.

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, OpenLineageConfig, ServiceHostnames};
use serde_json::{Map, Value, json};

use super::openlineage::{LineageRole, openlineage};
use super::{
    ConfigError, ConfigInputs, ENTITY_KEY_SERIALIZATION_VERSION, LOCAL_PROVIDER, auth, extras,
    stores,
};
use crate::featurestore::context::GraphContext;
use crate::featurestore::names::ServiceType;

/// The server feature_store.yaml (the same for the registry, online, offline and UI containers). It may hold
/// database credentials and API keys: store it in a Secret, never in a pod spec, and never log it.
///
/// `hostnames` supplies a remote registry's `host:port` (`hostnames.registry`) and, when the graph deploys a
/// lineage server, its `host:port` (`hostnames.lineage`): only then is the producer pointed at it and the
/// embedded consumer told to leave retention to it (`standalone_server: true`).
pub fn server_config(
    feature_store: &FeatureStore,
    applied: &FeatureStoreSpec,
    hostnames: &ServiceHostnames,
    context: &GraphContext,
) -> Result<Value, ConfigError> {
    let inputs = ConfigInputs {
        feature_store,
        applied,
        context,
        hostnames,
    };
    let at = |part: ServiceType| move |kind| ConfigError::new(part, kind);
    let services = applied.services.as_ref();
    let mut document = Map::new();
    document.insert("project".into(), json!(applied.feast_project));
    document.insert("provider".into(), json!(LOCAL_PROVIDER));
    if let Some(offline) = services.and_then(|services| services.offline_store.as_ref()) {
        let section = stores::offline_store(offline, context).map_err(at(ServiceType::Offline))?;
        document.insert("offline_store".into(), section);
    }
    let online = services.and_then(|services| services.online_store.as_ref());
    let section = stores::online_store(online, context).map_err(at(ServiceType::Online))?;
    document.insert("online_store".into(), section);
    let remote_registry_host = hostnames.registry.as_deref();
    let section = stores::registry(applied, context, remote_registry_host)
        .map_err(at(ServiceType::Registry))?;
    document.insert("registry".into(), section);
    let section = auth::server_auth(applied, context).map_err(at(ServiceType::Authorization))?;
    document.insert("auth".into(), section);
    document.insert(
        "entity_key_serialization_version".into(),
        json!(ENTITY_KEY_SERIALIZATION_VERSION),
    );
    if let Some(batch) = applied.batch_engine.as_ref() {
        let section = extras::batch_engine(batch, context, &inputs.cr_name())
            .map_err(at(ServiceType::Online))?;
        if let Some(section) = section {
            document.insert("batch_engine".into(), section);
        }
    }
    if let Some(serving) = online.and_then(|online| online.serving.as_ref()) {
        document.insert("feature_server".into(), extras::feature_server(serving));
    }
    if let Some(section) = applied
        .materialization
        .as_ref()
        .and_then(extras::materialization)
    {
        document.insert("materialization".into(), section);
    }
    if let Some(config) = applied.openlineage.as_ref() {
        let lineage_url = lineage_service_url(config, hostnames);
        let role = LineageRole::Producer {
            lineage_url: lineage_url.as_deref(),
        };
        let section = openlineage(config, context, role).map_err(at(ServiceType::Online))?;
        document.insert("openlineage".into(), section);
    }
    if let Some(section) = applied.mlflow.as_ref().and_then(extras::mlflow) {
        document.insert("mlflow".into(), section);
    }
    if let Some(monitoring) = applied.data_quality_monitoring.as_ref() {
        document.insert(
            "data_quality_monitoring".into(),
            extras::data_quality_monitoring(monitoring),
        );
    }
    Ok(Value::Object(document))
}

/// `http://<lineage host:port>` when `openlineage.consumer.lineageServer` is set and the graph runs it.
fn lineage_service_url(config: &OpenLineageConfig, hostnames: &ServiceHostnames) -> Option<String> {
    config.consumer.as_ref()?.lineage_server.as_ref()?;
    let host = hostnames
        .lineage
        .as_deref()
        .filter(|host| !host.is_empty())?;
    Some(format!("http://{host}"))
}
