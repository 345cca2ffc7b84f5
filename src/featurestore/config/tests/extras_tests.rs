//! batch_engine, feature_server, materialization, openlineage, mlflow and data_quality_monitoring.

use serde_json::json;

use super::fixtures::{Case, keys};

#[test]
fn serving_sample_becomes_the_feature_server_section() {
    let Some(sample) = Case::sample("v1_featurestore_serving.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["feature_server"],
        json!({
            "type": "local",
            "metrics": {
                "enabled": true,
                "audit_logging": false,
                "freshness": false,
                "materialization": true,
                "offline_features": true,
                "online_features": true,
                "push": true,
                "request": true,
                "resource": true,
            },
            "offline_push_batching_enabled": true,
            "offline_push_batching_batch_size": 1000,
            "offline_push_batching_batch_interval_seconds": 10,
        })
    );
}

#[test]
fn mcp_serving_switches_the_feature_server_type() {
    let Some(sample) = Case::sample("v1_featurestore_mcp.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["feature_server"],
        json!({
            "type": "mcp",
            "mcp_enabled": true,
            "mcp_server_name": "feast-mcp-server",
            "mcp_server_version": "1.0.0",
            "mcp_transport": "sse",
        })
    );
    let disabled = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "onlineStore": { "serving": { "mcp": { "enabled": false, "serverName": "x" } } } } }),
    );
    assert_eq!(
        disabled.server_ok()["feature_server"],
        json!({ "type": "local" })
    );
}

#[test]
fn materialization_coerces_only_true_and_false() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "materialization": {
            "onlineWriteBatchSize": 10000,
            "extraConfig": { "pull_latest_features": "false", "strict": "true", "workers": "4", "mode": "True" },
        } }),
    );
    assert_eq!(
        case.server_ok()["materialization"],
        json!({ "online_write_batch_size": 10000, "mode": "True", "pull_latest_features": false, "strict": true, "workers": "4" })
    );
    let empty = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "materialization": {} }),
    );
    assert!(empty.server_ok().get("materialization").is_none());
}

fn batch_case(config: &str, key: Option<&str>) -> Case {
    let mut batch = json!({ "configMapRef": { "name": "engine" } });
    if let Some(key) = key {
        batch["configMapKey"] = json!(key);
    }
    Case::new(
        "fs",
        "ns",
        json!({ "feastProject": "p", "batchEngine": batch }),
    )
    .config_map("engine", &[(key.unwrap_or("config"), config)])
}

#[test]
fn batch_engine_comes_from_the_configmap() {
    let spark = batch_case(
        "type: spark_application\nspark_conf:\n  spark.executor.instances: '2'\n",
        None,
    );
    assert_eq!(
        spark.server_ok()["batch_engine"],
        json!({
            "type": "spark_application",
            "service_account": "feast-fs-batch-driver",
            "spark_conf": { "spark.executor.instances": "2" },
        })
    );
    let named = batch_case(
        "type: spark_application\nservice_account: driver\n",
        Some("engine.yaml"),
    );
    assert_eq!(
        named.server_ok()["batch_engine"],
        json!({ "type": "spark_application", "service_account": "driver" })
    );
    let local = batch_case("type: local\n", None);
    assert_eq!(
        local.server_ok()["batch_engine"],
        json!({ "type": "local" })
    );
    let unreferenced = Case::new(
        "fs",
        "ns",
        json!({ "feastProject": "p", "batchEngine": {} }),
    );
    assert!(unreferenced.server_ok().get("batch_engine").is_none());
}

#[test]
fn openlineage_producer_reads_its_api_key() {
    let Some(sample) = Case::sample("v1_featurestore_materialization_openlineage.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["materialization"],
        json!({ "online_write_batch_size": 10000 })
    );
    assert_eq!(
        document["openlineage"],
        json!({
            "enabled": true,
            "transport_type": "http",
            "transport_url": "http://marquez.feast.svc.cluster.local:5000",
            "transport_endpoint": "api/v1/lineage",
            "api_key": "your-marquez-api-key",
            "emit_on_apply": true,
            "emit_on_materialize": true,
            "namespace": "my-feast-project",
            "producer": "feast-operator",
        })
    );
}

fn with_registry_secret(case: Case) -> Case {
    case.secret(
        "registry-db-secret",
        &[("sql", "path: postgresql://lineage:pw@db:5432/feast\n")],
    )
}

#[test]
fn openlineage_consumer_is_embedded_in_the_servers() {
    let Some(sample) = Case::sample("v1_featurestore_openlineage_consumer.yaml") else {
        return;
    };
    let case = with_registry_secret(sample);
    let openlineage = &case.server_ok()["openlineage"];
    assert_eq!(openlineage["api_key"], json!("your-marquez-api-key"));
    assert_eq!(
        openlineage["transport_url"],
        json!("http://localhost:8080/api")
    );
    assert_eq!(
        openlineage["consumer"],
        json!({
            "enabled": true,
            "store_type": "sql",
            "api_key": "consumer-api-key-for-producers",
            "namespace_mapping": { "airflow_production": "my_project", "dbt_analytics": "my_project", "spark_etl": "my_project" },
            "retention_days": 30,
            "retention_check_interval_hours": 6,
        })
    );
}

#[test]
fn a_lineage_server_redirects_the_producer_and_owns_retention() {
    let Some(sample) = Case::sample("v1_featurestore_lineage_server.yaml") else {
        return;
    };
    let case = with_registry_secret(sample).hostnames(
        json!({ "lineage": "feast-sample-lineage-server-lineage.feast.svc.cluster.local:80" }),
    );
    let openlineage = &case.server_ok()["openlineage"];
    assert_eq!(openlineage["transport_type"], json!("http"));
    assert_eq!(
        openlineage["transport_url"],
        json!("http://feast-sample-lineage-server-lineage.feast.svc.cluster.local:80")
    );
    assert_eq!(openlineage["transport_endpoint"], json!("api/v1/lineage"));
    assert_eq!(openlineage["consumer"]["standalone_server"], json!(true));
    assert!(
        openlineage.get("api_key").is_none(),
        "the producer has no API key Secret in this sample"
    );
}

#[test]
fn mlflow_and_data_quality_monitoring_close_the_document() {
    let case = Case::new(
        "s",
        "ns",
        json!({
            "feastProject": "p",
            "mlflow": {
                "enabled": true, "trackingUri": "http://mlflow", "uiUrl": "http://ui", "trackingAuth": "kubernetes",
                "autoLog": true, "autoLogEntityDf": false, "entityDfMaxRows": 100, "logOperations": true,
                "opsExperimentSuffix": "-ops", "extraConfig": { "flush": "true" }
            },
            "dataQualityMonitoring": {},
            "materialization": { "onlineWriteBatchSize": 5 },
            "openlineage": { "enabled": false },
        }),
    );
    let document = case.server_ok();
    assert_eq!(
        document["mlflow"],
        json!({
            "enabled": true, "tracking_uri": "http://mlflow", "ui_url": "http://ui", "tracking_auth": "kubernetes",
            "auto_log": true, "auto_log_entity_df": false, "entity_df_max_rows": 100, "log_operations": true,
            "ops_experiment_suffix": "-ops", "flush": true,
        })
    );
    assert_eq!(
        document["data_quality_monitoring"],
        json!({ "auto_baseline": true })
    );
    assert_eq!(document["openlineage"], json!({ "enabled": false }));
    assert_eq!(
        keys(&document)[5..],
        [
            "entity_key_serialization_version",
            "materialization",
            "openlineage",
            "mlflow",
            "data_quality_monitoring"
        ]
    );
    let off = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "dataQualityMonitoring": { "autoBaseline": false } }),
    );
    assert_eq!(
        off.server_ok()["data_quality_monitoring"],
        json!({ "auto_baseline": false })
    );
}

#[test]
fn a_lineage_server_the_graph_does_not_run_redirects_nothing() {
    let Some(sample) = Case::sample("v1_featurestore_lineage_server.yaml") else {
        return;
    };
    let case = with_registry_secret(sample);
    let openlineage = &case.server_ok()["openlineage"];
    assert!(openlineage.get("transport_url").is_none(), "{openlineage}");
    assert!(
        openlineage["consumer"].get("standalone_server").is_none(),
        "{openlineage}"
    );
}
