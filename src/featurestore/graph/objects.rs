//! The configuration objects (server config Secret, client ConfigMap), the ServiceMonitor, and the list of
//! accepted-but-unsupported fields.

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use fieldwise_api::v1::FeatureStoreSpec;
use hmac::{Hmac, Mac};
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{servers::Server, to_value};
use crate::featurestore::{
    context::{ConfigHashKey, GraphContext},
    names::{ServiceType, base_labels, service_labels, service_name},
};

/// The Secret holding the server feature_store.yaml, base64-encoded as the Feast images read it. It may hold
/// database credentials, which is why it is a Secret rather than an inline environment variable.
pub fn config_secret(
    cr_name: &str,
    namespace: &str,
    secret_name: &str,
    server_yaml: &str,
    hash_key: &ConfigHashKey,
) -> Value {
    let encoded = BASE64.encode(server_yaml);
    to_value(&Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(base_labels(cr_name)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (
                super::CONFIG_SECRET_KEY.to_owned(),
                ByteString(encoded.into_bytes()),
            ),
            (
                super::HASH_KEY_SECRET_KEY.to_owned(),
                ByteString(hash_key.expose().as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    })
}

/// The ConfigMap `feast-<cr>-client` with the feature_store.yaml clients use to reach the servers.
pub fn client_config_map(cr_name: &str, namespace: &str, client_yaml: &str) -> Value {
    to_value(&ConfigMap {
        metadata: ObjectMeta {
            name: Some(service_name(cr_name, ServiceType::Client)),
            namespace: Some(namespace.to_owned()),
            labels: Some(service_labels(cr_name, ServiceType::Client)),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "feature_store.yaml".to_owned(),
            client_yaml.to_owned(),
        )])),
        ..ConfigMap::default()
    })
}

/// A short digest of the server configuration for the pod template, so pods restart when it
/// changes. The configuration can hold passwords and anyone who can read pods sees the digest: an
/// HMAC under a key only the operator and the owned Secret hold means a guess of the
/// configuration cannot be checked against it (a plain or uid-salted hash could be).
pub fn config_hash(key: &ConfigHashKey, server_yaml: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return String::new();
    };
    mac.update(server_yaml.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A ServiceMonitor for the online server's metrics, when Prometheus Operator is installed and metrics are on.
pub fn service_monitor(
    cr_name: &str,
    namespace: &str,
    servers: &[Server<'_>],
    context: &GraphContext,
) -> Option<Value> {
    let online = servers
        .iter()
        .find(|server| server.service == ServiceType::Online)?;
    if !context.service_monitor_available || !online.metrics {
        return None;
    }
    let labels = service_labels(cr_name, ServiceType::Online);
    Some(json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": service_name(cr_name, ServiceType::Online), "namespace": namespace, "labels": labels},
        "spec": {
            "endpoints": [{"port": "metrics"}],
            "selector": {"matchLabels": labels},
        },
    }))
}

/// Fields whose objects fieldwise does not create (see the README): each becomes an `Unsupported` condition.
pub fn unsupported_fields(applied: &FeatureStoreSpec, context: &GraphContext) -> Vec<String> {
    let mut fields = Vec::new();
    let consumer = applied
        .openlineage
        .as_ref()
        .and_then(|o| o.consumer.as_ref());
    if consumer.is_some_and(|c| c.enabled && c.lineage_server.is_some()) {
        fields.push("spec.openlineage.consumer.lineageServer".to_owned());
    }
    if batch_engine_type(applied, context).as_deref() == Some("spark_application") {
        fields.push("spec.batchEngine (spark_application RBAC)".to_owned());
    }
    fields
}

/// The `type` of the batch engine configuration, when its ConfigMap can be read.
fn batch_engine_type(applied: &FeatureStoreSpec, context: &GraphContext) -> Option<String> {
    let engine = applied.batch_engine.as_ref()?;
    let config_map = context
        .config_maps
        .get(&engine.config_map_ref.as_ref()?.name)?;
    let text = config_map.get(engine.config_map_key.as_deref().unwrap_or("config"))?;
    let parsed: Value = serde_saphyr::from_str(text).ok()?;
    parsed.get("type")?.as_str().map(str::to_owned)
}
