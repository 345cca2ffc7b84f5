//! The `auth` section: kubernetes, no_auth, or OIDC (servers get the client settings, clients the token variable).

use fieldwise_api::v1::{FeatureStoreSpec, OidcAuthz};
use serde_json::{Map, Value, json};

use super::ConfigErrorKind;
use super::values::{SecretKey, check_type_tags, parse_yaml, secret, secret_map, sort_map};
use crate::featurestore::context::GraphContext;

/// The Secret keys copied into the servers' OIDC settings.
const OIDC_SECRET_PROPERTIES: [&str; 7] = [
    "auth_discovery_url",
    "client_id",
    "client_secret",
    "username",
    "password",
    "audience",
    "issuer",
];
/// Claims Feast compares as strings: a numeric value from YAML is written as its text.
const OIDC_STRING_CLAIMS: [&str; 2] = ["audience", "issuer"];
/// Appended to an issuer URL to form its discovery URL.
const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";
/// Where the graph mounts `oidc.caCertConfigMap`.
pub const OIDC_CA_CERT_PATH: &str = "/etc/pki/tls/oidc-ca/ca.crt";

/// How the feature servers authorise requests, decided once for the YAML and the RBAC objects alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AuthzMode<'a> {
    /// Kubernetes RBAC (TokenReview + SubjectAccessReview): the default, and what `noAuth: false` means.
    Kubernetes,
    /// OIDC tokens validated against the configured provider.
    Oidc(&'a OidcAuthz),
    /// No authorization (`noAuth: true`).
    NoAuth,
}

/// The authorization mode of an applied spec. A missing `authz` and `authz: {noAuth: false}` both mean
/// Kubernetes authorization: "no auth: false" asks for authorization, and the default one is Kubernetes.
pub fn authz_mode(applied: &FeatureStoreSpec) -> AuthzMode<'_> {
    let Some(authz) = applied.authz.as_ref() else {
        return AuthzMode::Kubernetes;
    };
    if authz.kubernetes.is_some() {
        AuthzMode::Kubernetes
    } else if let Some(oidc) = authz.oidc.as_ref() {
        AuthzMode::Oidc(oidc)
    } else if authz.no_auth == Some(true) {
        AuthzMode::NoAuth
    } else {
        AuthzMode::Kubernetes
    }
}

/// The servers' `auth` section.
pub(super) fn server_auth(
    applied: &FeatureStoreSpec,
    context: &GraphContext,
) -> Result<Value, ConfigErrorKind> {
    match authz_mode(applied) {
        AuthzMode::Kubernetes => Ok(json!({ "type": "kubernetes" })),
        AuthzMode::NoAuth => Ok(json!({ "type": "no_auth" })),
        AuthzMode::Oidc(oidc) => oidc_server_auth(oidc, context),
    }
}

/// The clients' `auth` section: OIDC clients only learn which variable holds their token.
pub(super) fn client_auth(applied: &FeatureStoreSpec) -> Value {
    match authz_mode(applied) {
        AuthzMode::Kubernetes => json!({ "type": "kubernetes" }),
        AuthzMode::NoAuth => json!({ "type": "no_auth" }),
        AuthzMode::Oidc(oidc) => {
            let mut section = Map::new();
            section.insert("type".into(), json!("oidc"));
            if let Some(variable) = oidc.token_env_var.as_deref() {
                section.insert("token_env_var".into(), json!(variable));
            }
            Value::Object(section)
        }
    }
}

fn oidc_server_auth(oidc: &OidcAuthz, context: &GraphContext) -> Result<Value, ConfigErrorKind> {
    let secret_properties = match oidc.secret_ref.as_ref() {
        Some(reference) => {
            oidc_secret_properties(context, &reference.name, oidc.secret_key_name.as_deref())?
        }
        None => Map::new(),
    };
    let mut params = Map::new();
    for property in OIDC_SECRET_PROPERTIES {
        if let Some(value) = secret_properties.get(property) {
            params.insert(
                property.to_owned(),
                stringify_claim(property, value.clone()),
            );
        }
    }
    let discovery_url =
        discovery_url(oidc, &secret_properties, context.oidc_issuer_url.as_deref())?;
    params.insert("auth_discovery_url".into(), json!(discovery_url));
    if let Some(verify) = oidc.verify_ssl {
        params.insert("verify_ssl".into(), json!(verify));
    }
    if oidc.ca_cert_config_map.is_some() {
        params.insert("ca_cert_path".into(), json!(OIDC_CA_CERT_PATH));
    }
    if let Some(seconds) = oidc.jwks_cache_lifespan_seconds {
        params.insert("jwks_cache_lifespan_seconds".into(), json!(seconds));
    }
    if let Some(seconds) = oidc.jwks_request_timeout_seconds {
        params.insert("jwks_request_timeout_seconds".into(), json!(seconds));
    }
    let mut section = Map::new();
    section.insert("type".into(), json!("oidc"));
    section.extend(sort_map(params));
    Ok(Value::Object(section))
}

/// The OIDC settings in the Secret: the YAML mapping under `secretKeyName`, or else each OIDC key of the Secret
/// read as a YAML value. Other keys of the Secret are not read, so they cannot make it invalid.
fn oidc_secret_properties(
    context: &GraphContext,
    secret_name: &str,
    secret_key_name: Option<&str>,
) -> Result<Map<String, Value>, ConfigErrorKind> {
    if let Some(key) = secret_key_name.filter(|key| !key.is_empty()) {
        let choice = SecretKey {
            key,
            field: "spec.authz.oidc.secretKeyName",
            defaulted: false,
        };
        let params = secret_map(context, secret_name, &choice)?;
        // The Feast operator checks type tags against an empty store type here, so any tag is rejected.
        check_type_tags(&params, "", key, secret_name)?;
        return Ok(params);
    }
    let data = secret(context, secret_name)?;
    let mut properties = Map::new();
    for property in OIDC_SECRET_PROPERTIES {
        if let Some(text) = data.get(property) {
            let value = parse_yaml(text).ok_or_else(|| ConfigErrorKind::InvalidSecretValue {
                key: property.to_owned(),
            })?;
            properties.insert(property.to_owned(), value);
        }
    }
    Ok(properties)
}

fn stringify_claim(property: &str, value: Value) -> Value {
    match value {
        Value::Number(number) if OIDC_STRING_CLAIMS.contains(&property) => {
            Value::String(number.to_string())
        }
        other => other,
    }
}

/// The discovery URL: the CR's issuer, else the Secret's `auth_discovery_url`, else the operator's
/// `OIDC_ISSUER_URL`.
fn discovery_url(
    oidc: &OidcAuthz,
    secret_properties: &Map<String, Value>,
    operator_issuer: Option<&str>,
) -> Result<String, ConfigErrorKind> {
    if let Some(issuer) = oidc
        .issuer_url
        .as_deref()
        .filter(|issuer| !issuer.is_empty())
    {
        return Ok(issuer_discovery_url(issuer));
    }
    if let Some(url) = secret_properties
        .get("auth_discovery_url")
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
    {
        return Ok(url.to_owned());
    }
    operator_issuer
        .filter(|issuer| !issuer.is_empty())
        .map(issuer_discovery_url)
        .ok_or(ConfigErrorKind::MissingOidcDiscoveryUrl)
}

fn issuer_discovery_url(issuer: &str) -> String {
    format!("{}{DISCOVERY_SUFFIX}", issuer.trim_end_matches('/'))
}
