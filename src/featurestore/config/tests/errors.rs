//! Every error for bad Secrets and ConfigMaps: the exact message, the part it fails, and no Secret value in it.

use serde_json::json;

use super::fixtures::Case;
use crate::featurestore::names::ServiceType;

/// A value planted in every Secret below; no error message may contain it.
const SENSITIVE: &str = "hunter2-very-secret";

fn online_store(secret_key_name: Option<&str>) -> Case {
    let mut store = json!({ "type": "postgres", "secretRef": { "name": "db" } });
    if let Some(key) = secret_key_name {
        store["secretKeyName"] = json!(key);
    }
    Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "onlineStore": { "persistence": { "store": store } } } }),
    )
}

fn assert_error(case: &Case, message: &str, part: ServiceType) {
    let error = case.server_err();
    assert_eq!(error.to_string(), message);
    assert_eq!(error.part(), part);
    assert!(
        !error.to_string().contains(SENSITIVE),
        "error leaks a secret value: {error}"
    );
    assert!(
        !format!("{error:?}").contains(SENSITIVE),
        "error Debug leaks a secret value: {error:?}"
    );
}

#[test]
fn a_missing_secret_is_named_as_the_api_server_does() {
    assert_error(
        &online_store(None),
        "secrets \"db\" not found",
        ServiceType::Online,
    );
}

/// The message names the missing key and the Secret (the Feast operator's words), then the field
/// that chooses another key and the keys the Secret has.
#[test]
fn a_missing_key_names_the_key_the_secret_and_the_field_that_chooses_another() {
    let case = online_store(None).secret("db", &[("other", SENSITIVE)]);
    assert_error(
        &case,
        "secret key postgres doesn't exist in secret db: the store's parameters are read from the key \
         named after its type (postgres) unless spec.services.onlineStore.persistence.store.secretKeyName \
         names another; the Secret has the keys other",
        ServiceType::Online,
    );
    let case = online_store(Some("custom")).secret("db", &[("postgres", "host: h"), ("x", "")]);
    assert_error(
        &case,
        "secret key custom doesn't exist in secret db: spec.services.onlineStore.persistence.store.secretKeyName \
         names it; set it to the key that holds the parameters; the Secret has the keys postgres, x",
        ServiceType::Online,
    );
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "local": { "persistence": { "store": {
            "type": "sql", "secretRef": { "name": "reg" } } } } } } }),
    )
    .secret("reg", &[]);
    assert_error(
        &case,
        "secret key sql doesn't exist in secret reg: the store's parameters are read from the key named \
         after its type (sql) unless spec.services.registry.local.persistence.store.secretKeyName names \
         another; the Secret has no keys",
        ServiceType::Registry,
    );
}

#[test]
fn a_value_that_is_not_a_yaml_mapping_is_invalid() {
    for value in [
        format!("just {SENSITIVE}"),
        format!("password: [{SENSITIVE}"),
        format!("- {SENSITIVE}"),
    ] {
        let case = online_store(None).secret("db", &[("postgres", &value)]);
        assert_error(
            &case,
            "secret postgres contains invalid value",
            ServiceType::Online,
        );
    }
}

#[test]
fn a_conflicting_type_tag_is_rejected_with_its_value() {
    let case = online_store(None).secret(
        "db",
        &[("postgres", &format!("type: redis\npassword: {SENSITIVE}\n"))],
    );
    assert_error(
        &case,
        "secret key postgres in secret db contains tag named type with value redis",
        ServiceType::Online,
    );
    let case = online_store(None).secret("db", &[("postgres", "registry_type: sql\n")]);
    assert_error(
        &case,
        "secret key postgres in secret db contains tag named registry_type with value sql",
        ServiceType::Online,
    );
    let case = online_store(None).secret(
        "db",
        &[("postgres", &format!("type: {{password: {SENSITIVE}}}\n"))],
    );
    assert_error(
        &case,
        "secret key postgres in secret db contains tag named type with value <mapping>",
        ServiceType::Online,
    );
}

#[test]
fn registry_and_offline_store_errors_fail_their_own_part() {
    let registry = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "local": { "persistence": { "store": {
            "type": "sql", "secretRef": { "name": "reg" }, "secretKeyName": "registry"
        } } } } } }),
    )
    .secret("reg", &[("registry", "registry_type: snowflake.registry\n")]);
    assert_error(
        &registry,
        "secret key registry in secret reg contains tag named registry_type with value snowflake.registry",
        ServiceType::Registry,
    );
    let offline = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "offlineStore": { "persistence": { "store": {
            "type": "snowflake.offline", "secretRef": { "name": "wh" }
        } } } } }),
    )
    .secret("wh", &[("snowflake.offline", SENSITIVE)]);
    assert_error(
        &offline,
        "secret snowflake.offline contains invalid value",
        ServiceType::Offline,
    );
}

#[test]
fn oidc_secret_errors_fail_authorization() {
    let oidc = |secret_key_name: Option<&str>| {
        let mut oidc = json!({ "secretRef": { "name": "o" } });
        if let Some(key) = secret_key_name {
            oidc["secretKeyName"] = json!(key);
        }
        Case::new(
            "s",
            "ns",
            json!({ "feastProject": "p", "authz": { "oidc": oidc } }),
        )
    };
    assert_error(
        &oidc(None),
        "secrets \"o\" not found",
        ServiceType::Authorization,
    );
    let case = oidc(None).secret("o", &[("client_secret", &format!("*{SENSITIVE}"))]);
    assert_error(
        &case,
        "secret client_secret contains invalid value",
        ServiceType::Authorization,
    );
    let case = oidc(Some("cfg")).secret("o", &[("client_secret", SENSITIVE)]);
    assert_error(
        &case,
        "secret key cfg doesn't exist in secret o: spec.authz.oidc.secretKeyName names it; set it to \
         the key that holds the parameters; the Secret has the keys client_secret",
        ServiceType::Authorization,
    );
}

fn openlineage_case(secret: &[(&str, &str)]) -> Case {
    Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "openlineage": { "enabled": true, "apiKeySecretRef": { "name": "ol" } } }),
    )
    .secret("ol", secret)
}

#[test]
fn openlineage_api_key_errors() {
    let missing_secret = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "openlineage": { "enabled": true, "apiKeySecretRef": { "name": "ol" } } }),
    );
    assert_error(
        &missing_secret,
        "failed to read OpenLineage API key from secret ol: secrets \"ol\" not found",
        ServiceType::Online,
    );
    assert_error(
        &openlineage_case(&[("token", SENSITIVE)]),
        "secret \"ol\" does not contain the required key \"api_key\"",
        ServiceType::Online,
    );
    assert_error(
        &openlineage_case(&[("api_key", "12345")]),
        "key \"api_key\" in secret \"ol\" must be a string, got int",
        ServiceType::Online,
    );
    assert_error(
        &openlineage_case(&[("api_key", &format!("[{SENSITIVE}"))]),
        "failed to read OpenLineage API key from secret ol: secret api_key contains invalid value",
        ServiceType::Online,
    );
}

#[test]
fn batch_engine_configmap_errors() {
    let case = |data: &[(&str, &str)]| {
        Case::new(
            "s",
            "ns",
            json!({ "feastProject": "p", "batchEngine": { "configMapRef": { "name": "engine" } } }),
        )
        .config_map("engine", data)
    };
    let missing = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "batchEngine": { "configMapRef": { "name": "engine" } } }),
    );
    assert_error(
        &missing,
        "configmaps \"engine\" not found",
        ServiceType::Online,
    );
    assert_error(
        &case(&[("other", "type: local")]),
        "configmap key config doesn't exist in configmap engine",
        ServiceType::Online,
    );
    assert_error(
        &case(&[("config", "type: [")]),
        "configmap engine contains invalid YAML in key config",
        ServiceType::Online,
    );
    assert_error(
        &case(&[("config", "partitions: 4")]),
        "batch engine config must contain 'type' field",
        ServiceType::Online,
    );
    assert_error(
        &case(&[("config", "type: 7")]),
        "batch engine config must contain 'type' field",
        ServiceType::Online,
    );
}
