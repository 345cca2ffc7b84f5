//! The standalone lineage server's feature_store.yaml.

use serde_json::json;

use super::fixtures::Case;
use crate::featurestore::names::ServiceType;

/// The lineage-server sample, or `None` (the test is skipped) when the Feast reference corpus is absent.
fn lineage_sample() -> Option<Case> {
    let case = Case::sample("v1_featurestore_lineage_server.yaml")?
        .secret("registry-db-secret", &[("sql", "path: postgresql://lineage:pw@db:5432/feast\n")])
        .hostnames(json!({ "registry": "feast-sample-lineage-server-registry.feast.svc.cluster.local:80" }));
    Some(case)
}

#[test]
fn the_lineage_server_shares_the_sql_registry_database() {
    let Some(case) = lineage_sample() else {
        return;
    };
    let document = case
        .lineage()
        .expect("lineage config")
        .expect("a lineage server is configured");
    assert_eq!(
        document,
        json!({
            "project": "my_project",
            "provider": "local",
            "openlineage": {
                "enabled": true,
                "emit_on_apply": true,
                "emit_on_materialize": true,
                "namespace": "my_project",
                "producer": "feast-operator",
                "consumer": {
                    "enabled": true,
                    "store_type": "sql",
                    "connection_string": "postgresql://lineage:pw@db:5432/feast",
                    "api_key": "consumer-api-key-for-producers",
                    "namespace_mapping": { "airflow_production": "my_project", "spark_etl": "my_project" },
                    "retention_days": 30,
                    "retention_check_interval_hours": 6,
                },
            },
            "registry": {
                "path": "feast-sample-lineage-server-registry.feast.svc.cluster.local:80",
                "registry_type": "remote",
            },
        })
    );
}

#[test]
fn an_own_connection_string_wins_and_no_auth_needs_no_registry() {
    let Some(case) = lineage_sample() else {
        return;
    };
    let mut case = case.secret(
        "lineage-db",
        &[("connection_string", "postgresql://own/lineage")],
    );
    let spec = &mut case.feature_store.spec;
    spec.authz = Some(serde_json::from_value(json!({ "noAuth": true })).expect("authz"));
    let consumer = spec
        .openlineage
        .as_mut()
        .and_then(|ol| ol.consumer.as_mut())
        .expect("consumer");
    consumer.connection_string_secret_ref =
        Some(fieldwise_api::v1::LocalObjectReference::new("lineage-db"));
    let document = case.lineage().expect("lineage config").expect("configured");
    assert_eq!(
        document["openlineage"]["consumer"]["connection_string"],
        json!("postgresql://own/lineage")
    );
    assert!(document.get("registry").is_none());
}

#[test]
fn a_remote_registry_is_used_as_is() {
    let case = Case::new(
        "s",
        "ns",
        json!({
            "feastProject": "p",
            "services": { "registry": { "remote": { "hostname": "central:80" } } },
            "openlineage": { "enabled": true, "consumer": {
                "enabled": true, "connectionStringSecretRef": { "name": "db" }, "lineageServer": {}
            } },
        }),
    )
    .secret("db", &[("connection_string", "postgresql://x")])
    .hostnames(json!({ "registry": "central:80" }));
    let document = case.lineage().expect("lineage config").expect("configured");
    assert_eq!(
        document["registry"],
        json!({ "path": "central:80", "registry_type": "remote" })
    );
}

#[test]
fn lineage_server_errors() {
    let without_database = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "openlineage": { "enabled": true, "consumer": { "enabled": true, "lineageServer": {} } } }),
    );
    let error = without_database.lineage().expect_err("no database");
    assert_eq!(
        error.to_string(),
        "lineageServer requires a SQL database. Either set consumer.connectionStringSecretRef or configure \
         registry.local.persistence.store (SQL registry)"
    );
    assert_eq!(error.part(), ServiceType::Online);

    let without_registry = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "openlineage": { "enabled": true, "consumer": {
            "enabled": true, "connectionStringSecretRef": { "name": "db" }, "lineageServer": {}
        } } }),
    )
    .secret("db", &[("connection_string", "postgresql://x")]);
    assert_eq!(
        without_registry
            .lineage()
            .expect_err("no registry")
            .to_string(),
        "lineageServer with authz requires a registry (local or remote) so the lineage server can connect for \
         RBAC checks"
    );
}

#[test]
fn no_lineage_server_no_document() {
    let Some(case) = Case::sample("v1_featurestore_materialization_openlineage.yaml") else {
        return;
    };
    assert_eq!(case.lineage().expect("lineage config"), None);
}
