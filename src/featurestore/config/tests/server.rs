//! The server feature_store.yaml: stores, registry, auth and key order.

use serde_json::json;

use super::fixtures::{Case, keys};
use crate::featurestore::config::{AuthzMode, authz_mode, to_yaml};

#[test]
fn base_sample_runs_online_with_the_pod_local_registry() {
    let Some(sample) = Case::sample("v1_featurestore.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document,
        json!({
            "project": "my_project",
            "provider": "local",
            "online_store": { "path": "/feast-data/online_store.db", "type": "sqlite" },
            "registry": { "path": "/feast-data/registry.db", "registry_type": "file" },
            "auth": { "type": "kubernetes" },
            "entity_key_serialization_version": 3,
        })
    );
    assert_eq!(
        keys(&document),
        [
            "project",
            "provider",
            "online_store",
            "registry",
            "auth",
            "entity_key_serialization_version"
        ]
    );
}

#[test]
fn pvc_paths_are_joined_to_the_mount_path() {
    let Some(sample) = Case::sample("v1_featurestore_pvc_persistence.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(document["offline_store"], json!({ "type": "duckdb" }));
    assert_eq!(
        document["online_store"],
        json!({ "path": "/data/online/online_store.db", "type": "sqlite" })
    );
    assert_eq!(
        document["registry"],
        json!({ "path": "/data/registry/registry.db", "registry_type": "file" })
    );
    assert_eq!(
        keys(&document)[..5],
        [
            "project",
            "provider",
            "offline_store",
            "online_store",
            "registry"
        ],
        "offline_store comes before online_store"
    );
}

#[test]
fn a_file_offline_store_defaults_to_dask() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "offlineStore": { "server": {} } } }),
    );
    assert_eq!(case.server_ok()["offline_store"], json!({ "type": "dask" }));
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "offlineStore": { "persistence": { "file": { "type": "file" } } } } }),
    );
    assert_eq!(case.server_ok()["offline_store"], json!({ "type": "file" }));
}

#[test]
fn db_persistence_reads_the_store_parameters_from_the_secret() {
    let Some(sample) = Case::sample("v1_featurestore_db_persistence.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["online_store"],
        json!({
            "type": "postgres",
            "database": "${POSTGRES_DB}",
            "db_schema": "public",
            "host": "postgres.test.svc.cluster.local",
            "password": "${POSTGRES_PASSWORD}",
            "port": 5432,
            "user": "${POSTGRES_USER}",
        })
    );
    assert_eq!(
        document["registry"],
        json!({
            "path": "postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres.test.svc.cluster.local:5432/${POSTGRES_DB}",
            "registry_type": "sql",
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": { "echo": false, "pool_pre_ping": true },
        })
    );
    assert!(document.get("offline_store").is_none());
}

#[test]
fn object_store_registry_carries_s3_and_cache_settings() {
    let Some(sample) = Case::sample("v1_featurestore_objectstore_persistence.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["registry"],
        json!({
            "path": "s3://bucket/registry.db",
            "registry_type": "file",
            "s3_additional_kwargs": {
                "ACL": "bucket-owner-full-control",
                "CacheControl": "max-age=3600",
                "ServerSideEncryption": "AES256",
            },
            "cache_ttl_seconds": 60,
            "cache_mode": "sync",
        })
    );
}

#[test]
fn gcs_sample_uses_bigquery_bigtable_and_a_gs_registry() {
    let Some(sample) = Case::sample("v1_featurestore_gcs.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["offline_store"],
        json!({ "type": "bigquery", "dataset": "feast_bq_dataset" })
    );
    assert_eq!(
        document["online_store"],
        json!({ "type": "bigtable", "instance": "my_bigtable_instance", "project_id": "my_gcp_project" })
    );
    assert_eq!(
        document["registry"],
        json!({ "path": "gs://[YOUR BUCKET YOU CREATED]/registry.pb", "registry_type": "file" })
    );
}

fn online_store_case(secret_value: &str) -> Case {
    Case::new(
        "s",
        "ns",
        json!({
            "feastProject": "p",
            "services": { "onlineStore": { "persistence": { "store": {
                "type": "redis", "secretRef": { "name": "creds" }, "secretKeyName": "conn"
            } } } },
        }),
    )
    .secret("creds", &[("conn", secret_value)])
}

#[test]
fn secret_parameters_naming_typed_fields_are_lifted() {
    let document =
        online_store_case("type: redis\nPath: /x.db\nconnection_string: redis:6379\n").server_ok();
    assert_eq!(
        document["online_store"],
        json!({ "path": "/x.db", "type": "redis", "connection_string": "redis:6379" }),
        "a matching type tag is dropped, Path fills the empty path, the rest goes inline"
    );
    assert_eq!(
        online_store_case("").server_ok()["online_store"],
        json!({ "type": "redis" })
    );
}

#[test]
fn db_registry_lifts_only_well_typed_cache_settings() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "local": { "persistence": { "store": {
            "type": "sql", "secretRef": { "name": "reg" }
        } } } } } }),
    );
    let lifted = case.secret(
        "reg",
        &[(
            "sql",
            "path: postgresql://db\ncache_ttl_seconds: 30.9\ncache_mode: thread\n",
        )],
    );
    assert_eq!(
        lifted.server_ok()["registry"],
        json!({ "path": "postgresql://db", "registry_type": "sql", "cache_ttl_seconds": 30, "cache_mode": "thread" })
    );
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "local": { "persistence": { "store": {
            "type": "sql", "secretRef": { "name": "reg" }
        } } } } } }),
    );
    let dropped = case.secret(
        "reg",
        &[(
            "sql",
            "path: postgresql://db\ncache_ttl_seconds: soon\ncache_mode: 3\n",
        )],
    );
    assert_eq!(
        dropped.server_ok()["registry"],
        json!({ "path": "postgresql://db", "registry_type": "sql" })
    );
}

#[test]
fn remote_registry_by_hostname_uses_the_hostname_and_its_ca() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "remote": {
            "hostname": "registry.other.svc.cluster.local:443",
            "tls": { "configMapRef": { "name": "ca" }, "certName": "ca.crt" }
        } } } }),
    )
    .hostnames(json!({ "registry": "registry.other.svc.cluster.local:443" }));
    assert_eq!(
        case.server_ok()["registry"],
        json!({
            "path": "registry.other.svc.cluster.local:443",
            "registry_type": "remote",
            "cert": "/tls/registry/ca.crt",
        })
    );
}

#[test]
fn remote_registry_by_feast_ref_uses_the_resolved_hostname() {
    let spec = json!({ "feastProject": "p", "services": { "registry": { "remote": { "feastRef": { "name": "central" } } } } });
    let case = Case::new("s", "ns", spec.clone())
        .hostnames(json!({ "registry": "feast-central-registry.ns.svc.cluster.local:80" }));
    assert_eq!(
        case.server_ok()["registry"],
        json!({ "path": "feast-central-registry.ns.svc.cluster.local:80", "registry_type": "remote" })
    );
    let unresolved = Case::new("s", "ns", spec).server_err();
    assert_eq!(
        unresolved.to_string(),
        "remote registry hostname is not resolved"
    );
}

#[test]
fn registry_mcp_is_written_when_the_registry_server_enables_it() {
    let Some(sample) = Case::sample("v1_featurestore_mcp.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["registry"],
        json!({ "path": "/feast-data/registry.db", "registry_type": "file", "mcp": { "enabled": true } })
    );
}

#[test]
fn kubernetes_is_the_default_and_no_auth_false_still_means_kubernetes() {
    let auth = |authz: serde_json::Value| {
        let case = Case::new("s", "ns", json!({ "feastProject": "p", "authz": authz }));
        (
            case.server_ok()["auth"].clone(),
            case.client().expect("client")["auth"].clone(),
        )
    };
    let kubernetes = json!({ "type": "kubernetes" });
    assert_eq!(
        auth(json!({ "kubernetes": { "roles": ["reader"] } })),
        (kubernetes.clone(), kubernetes.clone())
    );
    assert_eq!(
        auth(json!({ "noAuth": false })),
        (kubernetes.clone(), kubernetes.clone())
    );
    let no_auth = json!({ "type": "no_auth" });
    assert_eq!(auth(json!({ "noAuth": true })), (no_auth.clone(), no_auth));

    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "authz": { "noAuth": false } }),
    );
    assert_eq!(authz_mode(&case.applied()), AuthzMode::Kubernetes);
}

#[test]
fn oidc_sample_takes_the_client_settings_from_the_secret() {
    let Some(sample) = Case::sample("v1_featurestore_oidc_auth.yaml") else {
        return;
    };
    let document = sample.server_ok();
    assert_eq!(
        document["auth"],
        json!({
            "type": "oidc",
            "auth_discovery_url": "auth_discovery_url",
            "client_id": "client_id",
            "client_secret": "client_secret",
            "password": "password",
            "username": "username",
        })
    );
    assert_eq!(keys(&document["auth"])[0], "type");
}

fn oidc_case(oidc: serde_json::Value) -> Case {
    Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "authz": { "oidc": oidc } }),
    )
}

#[test]
fn oidc_discovery_url_prefers_issuer_then_secret_then_operator_environment() {
    let secret = [
        (
            "auth_discovery_url",
            "https://secret/.well-known/openid-configuration",
        ),
        ("client_id", "c"),
    ];
    let issuer = oidc_case(
        json!({ "issuerUrl": "https://idp/realms/feast/", "secretRef": { "name": "o" } }),
    )
    .secret("o", &secret);
    assert_eq!(
        issuer.server_ok()["auth"]["auth_discovery_url"],
        json!("https://idp/realms/feast/.well-known/openid-configuration")
    );

    let from_secret = oidc_case(json!({ "secretRef": { "name": "o" } })).secret("o", &secret);
    assert_eq!(
        from_secret.server_ok()["auth"]["auth_discovery_url"],
        json!("https://secret/.well-known/openid-configuration")
    );

    let mut from_env =
        oidc_case(json!({ "secretRef": { "name": "o" } })).secret("o", &[("client_id", "c")]);
    from_env.context.oidc_issuer_url = Some("https://operator-idp".into());
    assert_eq!(
        from_env.server_ok()["auth"],
        json!({
            "type": "oidc",
            "auth_discovery_url": "https://operator-idp/.well-known/openid-configuration",
            "client_id": "c",
        })
    );

    let without_secret = {
        let mut case = oidc_case(json!({}));
        case.context.oidc_issuer_url = Some("https://operator-idp/".into());
        case
    };
    assert_eq!(
        without_secret.server_ok()["auth"],
        json!({ "type": "oidc", "auth_discovery_url": "https://operator-idp/.well-known/openid-configuration" })
    );

    let nowhere =
        oidc_case(json!({ "secretRef": { "name": "o" } })).secret("o", &[("client_id", "c")]);
    assert_eq!(
        nowhere.server_err().to_string(),
        "no OIDC discovery URL configured: set issuerUrl on the OidcAuthz CR, include auth_discovery_url in the \
         referenced Secret, or ensure the OIDC_ISSUER_URL environment variable is set on the operator pod"
    );
}

#[test]
fn oidc_optional_settings_and_numeric_claims() {
    let case = oidc_case(json!({
        "issuerUrl": "https://idp",
        "secretRef": { "name": "o" },
        "verifySSL": false,
        "caCertConfigMap": { "name": "idp-ca" },
        "jwksCacheLifespanSeconds": 600,
        "jwksRequestTimeoutSeconds": 5,
        "tokenEnvVar": "FEAST_TOKEN",
    }))
    .secret(
        "o",
        &[
            ("audience", "12345"),
            ("issuer", "https://idp"),
            ("unrelated.pem", "*not yaml: ["),
        ],
    );
    assert_eq!(
        case.server_ok()["auth"],
        json!({
            "type": "oidc",
            "audience": "12345",
            "auth_discovery_url": "https://idp/.well-known/openid-configuration",
            "ca_cert_path": "/etc/pki/tls/oidc-ca/ca.crt",
            "issuer": "https://idp",
            "jwks_cache_lifespan_seconds": 600,
            "jwks_request_timeout_seconds": 5,
            "verify_ssl": false,
        })
    );
    assert_eq!(
        case.client().expect("client")["auth"],
        json!({ "type": "oidc", "token_env_var": "FEAST_TOKEN" })
    );
}

#[test]
fn oidc_settings_under_a_secret_key_are_one_yaml_mapping() {
    let case = oidc_case(json!({ "secretRef": { "name": "o" }, "secretKeyName": "oidc.yaml" }))
        .secret(
            "o",
            &[(
                "oidc.yaml",
                "auth_discovery_url: https://idp/d\nclient_id: feast\nignored: x\n",
            )],
        );
    assert_eq!(
        case.server_ok()["auth"],
        json!({ "type": "oidc", "auth_discovery_url": "https://idp/d", "client_id": "feast" })
    );
}

#[test]
fn yaml_output_round_trips_with_the_document_order() {
    let Some(sample) = Case::sample("v1_featurestore_db_persistence.yaml") else {
        return;
    };
    let case = sample.secret(
        "feast-data-stores",
        &[
            ("postgres", "host: h\nsslmode: 'true'\nport: '5432'\n"),
            ("sql", "path: p\n"),
        ],
    );
    let document = case.server_ok();
    let yaml = to_yaml(&document);
    let parsed: serde_json::Value = serde_saphyr::from_str(&yaml).expect("YAML");
    assert_eq!(parsed, document);
    assert_eq!(
        parsed["online_store"]["sslmode"],
        json!("true"),
        "a string that looks boolean stays a string"
    );
    assert_eq!(keys(&parsed), keys(&document));
    assert!(yaml.starts_with("project: my_project\n"));
}

#[test]
fn yaml_output_keeps_long_multi_line_and_ambiguous_strings_intact() {
    let document = json!({
        "project": "p",
        "online_store": {
            "type": "postgres",
            "long": "a value with many words that is clearly longer than eighty characters, so a folding writer would fold it",
            "multi": "line one\nline two\n",
            "yes": "yes",
            "on": "on",
            "null": "null",
            "number": "0123",
            "float": "1e3",
        },
    });
    let yaml = to_yaml(&document);
    let parsed: serde_json::Value = serde_saphyr::from_str(&yaml).expect("YAML");
    assert_eq!(parsed, document);
    assert!(
        !yaml.contains(">-") && !yaml.contains("|"),
        "no block scalars:\n{yaml}"
    );
    assert!(
        yaml.contains("\n    type: postgres\n"),
        "4-space indentation:\n{yaml}"
    );
    for ambiguous in ["yes", "on", "null", "0123", "1e3"] {
        assert!(
            !yaml.contains(&format!(": {ambiguous}\n")),
            "{ambiguous} must be quoted:\n{yaml}"
        );
    }
}

#[test]
fn every_feast_sample_builds_its_documents() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let directory = corpus.join("samples");
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .expect("the Feast samples")
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "found only {files:?}");
    for file in files {
        // Two samples reference a registry Secret they do not ship; the cluster would hold it.
        let case = Case::sample(&file).expect("the corpus is there").secret(
            "registry-db-secret",
            &[("sql", "path: postgresql://feast:pw@db:5432/feast\n")],
        );
        let case = match case
            .feature_store
            .spec
            .services
            .as_ref()
            .and_then(|services| services.registry.as_ref())
        {
            Some(registry) if registry.remote.is_some() => {
                case.hostnames(json!({ "registry": "registry.remote:80" }))
            }
            _ => case.hostnames(json!({ "registry": "feast-x-registry.ns.svc.cluster.local:80" })),
        };
        let server = case
            .server()
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        assert_eq!(
            server["project"],
            json!(case.feature_store.spec.feast_project),
            "{file}"
        );
        case.client()
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        case.lineage()
            .unwrap_or_else(|error| panic!("{file}: {error}"));
    }
}
