//! The optional sections: `batch_engine`, `feature_server`, `materialization`, `mlflow` and
//! `data_quality_monitoring`.

use fieldwise_api::v1::{
    BatchEngineConfig, DataQualityMonitoringConfig, MaterializationConfig, McpTransport,
    MlflowConfig, OnlineStoreServing,
};
use serde_json::{Map, Value, json};

use super::ConfigErrorKind;
use super::values::{append_extra_config, parse_yaml_map, put, sort_map};
use crate::featurestore::context::GraphContext;

/// The ConfigMap key read when `batchEngine.configMapKey` is unset.
const DEFAULT_BATCH_ENGINE_KEY: &str = "config";
/// The engine type that runs Spark applications and needs a driver service account.
const SPARK_APPLICATION: &str = "spark_application";

/// The `batch_engine` section from the referenced ConfigMap, or `None` without a ConfigMap reference.
pub(super) fn batch_engine(
    batch: &BatchEngineConfig,
    context: &GraphContext,
    cr_name: &str,
) -> Result<Option<Value>, ConfigErrorKind> {
    let Some(reference) = batch.config_map_ref.as_ref() else {
        return Ok(None);
    };
    let name = reference.name.as_str();
    let key = batch
        .config_map_key
        .as_deref()
        .filter(|key| !key.is_empty())
        .unwrap_or(DEFAULT_BATCH_ENGINE_KEY);
    let data = context
        .config_maps
        .get(name)
        .ok_or_else(|| ConfigErrorKind::ConfigMapNotFound {
            name: name.to_owned(),
        })?;
    let text = data
        .get(key)
        .ok_or_else(|| ConfigErrorKind::MissingConfigMapKey {
            key: key.to_owned(),
            config_map: name.to_owned(),
        })?;
    let mut params = parse_yaml_map(text).ok_or_else(|| ConfigErrorKind::InvalidConfigMapYaml {
        key: key.to_owned(),
        config_map: name.to_owned(),
    })?;
    let engine_type = match params.remove("type") {
        Some(Value::String(engine_type)) => engine_type,
        _ => return Err(ConfigErrorKind::MissingBatchEngineType),
    };
    if engine_type == SPARK_APPLICATION && !params.contains_key("service_account") {
        params.insert(
            "service_account".into(),
            json!(batch_driver_service_account(cr_name)),
        );
    }
    let mut section = Map::new();
    section.insert("type".into(), json!(engine_type));
    section.extend(sort_map(params));
    Ok(Some(Value::Object(section)))
}

/// The service account Spark drivers run as when the engine configuration names none: `feast-<cr>-batch-driver`.
pub fn batch_driver_service_account(cr_name: &str) -> String {
    format!("feast-{cr_name}-batch-driver")
}

/// The `feature_server` section from `onlineStore.serving`.
pub(super) fn feature_server(serving: &OnlineStoreServing) -> Value {
    let mcp = serving.mcp.as_ref().filter(|mcp| mcp.enabled);
    let mut section = Map::new();
    section.insert(
        "type".into(),
        json!(if mcp.is_some() { "mcp" } else { "local" }),
    );
    if let Some(metrics) = serving.metrics.as_ref() {
        let mut block = Map::new();
        block.insert("enabled".into(), json!(metrics.enabled));
        for (category, enabled) in metrics.categories.iter().flatten() {
            block.entry(category.clone()).or_insert(json!(enabled));
        }
        section.insert("metrics".into(), Value::Object(block));
    }
    if let Some(batching) = serving.offline_push_batching.as_ref() {
        section.insert(
            "offline_push_batching_enabled".into(),
            json!(batching.enabled),
        );
        put(
            &mut section,
            "offline_push_batching_batch_size",
            batching.batch_size,
        );
        put(
            &mut section,
            "offline_push_batching_batch_interval_seconds",
            batching.batch_interval_seconds,
        );
    }
    if let Some(mcp) = mcp {
        section.insert("mcp_enabled".into(), json!(true));
        put(&mut section, "mcp_server_name", mcp.server_name.clone());
        put(
            &mut section,
            "mcp_server_version",
            mcp.server_version.clone(),
        );
        put(
            &mut section,
            "mcp_transport",
            mcp.transport.map(mcp_transport),
        );
    }
    Value::Object(section)
}

fn mcp_transport(transport: McpTransport) -> &'static str {
    match transport {
        McpTransport::Sse => "sse",
        McpTransport::Http => "http",
    }
}

/// The `materialization` section, or `None` when it would be empty.
pub(super) fn materialization(materialization: &MaterializationConfig) -> Option<Value> {
    let mut section = Map::new();
    put(
        &mut section,
        "online_write_batch_size",
        materialization.online_write_batch_size,
    );
    append_extra_config(&mut section, materialization.extra_config.as_ref());
    (!section.is_empty()).then_some(Value::Object(section))
}

/// The `mlflow` section, only when MLflow is enabled.
pub(super) fn mlflow(mlflow: &MlflowConfig) -> Option<Value> {
    if !mlflow.enabled {
        return None;
    }
    let mut section = Map::new();
    section.insert("enabled".into(), json!(true));
    put(&mut section, "tracking_uri", mlflow.tracking_uri.clone());
    put(&mut section, "ui_url", mlflow.ui_url.clone());
    put(&mut section, "tracking_auth", mlflow.tracking_auth.clone());
    put(&mut section, "auto_log", mlflow.auto_log);
    put(
        &mut section,
        "auto_log_entity_df",
        mlflow.auto_log_entity_df,
    );
    put(
        &mut section,
        "entity_df_max_rows",
        mlflow.entity_df_max_rows,
    );
    put(&mut section, "log_operations", mlflow.log_operations);
    put(
        &mut section,
        "ops_experiment_suffix",
        mlflow.ops_experiment_suffix.clone(),
    );
    append_extra_config(&mut section, mlflow.extra_config.as_ref());
    Some(Value::Object(section))
}

/// The `data_quality_monitoring` section (`auto_baseline` defaults to true, as in the CRD).
pub(super) fn data_quality_monitoring(monitoring: &DataQualityMonitoringConfig) -> Value {
    json!({ "auto_baseline": monitoring.auto_baseline.unwrap_or(true) })
}
