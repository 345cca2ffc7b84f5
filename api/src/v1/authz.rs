//! `spec.authz`: how the feature servers authorise requests.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;

/// Authorization: exactly one of `kubernetes`, `oidc` or `noAuth`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.kubernetes), has(self.oidc), has(self.noAuth)].exists_one(c, c)").message("One selection required between kubernetes, oidc, or noAuth."))]
pub struct AuthzConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesAuthz>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcAuthz>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_auth: Option<bool>,
}

/// Kubernetes RBAC authorization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KubernetesAuthz {
    /// Names of the (empty) Roles to create for Feast permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// OIDC authorization.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcAuthz {
    #[schemars(pattern(r"^https://\S+$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// The Secret with OIDC client settings (auth_discovery_url, client_id, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_name: Option<String>,
    /// The environment variable clients read their token from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env_var: Option<String>,
    #[serde(rename = "verifySSL", skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_config_map: Option<OidcCaCertConfigMap>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_cache_lifespan_seconds: Option<i32>,
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_request_timeout_seconds: Option<i32>,
}

/// The ConfigMap holding the OIDC provider's CA bundle.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct OidcCaCertConfigMap {
    pub name: String,
    /// The key of the bundle (the controller reads `ca-bundle.crt` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}
