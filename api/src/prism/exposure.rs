//! `spec.ingress` and `spec.observability`: how the cluster is reached and watched.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::rules;

/// An Ingress `prism-ingress`: `/admin` to the admin Service, `/` to the proxy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The block creates the Ingress; `enabled: false` keeps the settings but removes it.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::ingress_class")]
    #[schemars(length(max = rules::MAX_DNS_SUBDOMAIN))]
    pub class_name: String,
    /// The host the rules match; `""` matches every host.
    #[serde(default = "defaults::ingress_host")]
    #[schemars(length(max = rules::MAX_DNS_SUBDOMAIN))]
    #[x_kube(validation = kube::core::Rule::new(r"self == '' || self.matches('^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("must be a lowercase DNS name such as prism.local, optionally starting with '*.'; no IP address or port"))]
    pub host: String,
    /// Annotations of the Ingress (the default asks ingress-nginx for gRPC backends); given
    /// annotations replace the default ones.
    #[serde(default = "defaults::ingress_annotations")]
    pub annotations: BTreeMap<String, String>,
    /// A `kubernetes.io/tls` Secret: TLS for `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = rules::MAX_DNS_SUBDOMAIN))]
    #[x_kube(validation = rules::dns_subdomain())]
    pub tls_secret_name: Option<String>,
}

impl Default for IngressSpec {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
            class_name: defaults::ingress_class(),
            host: defaults::ingress_host(),
            annotations: defaults::ingress_annotations(),
            tls_secret_name: None,
        }
    }
}

/// Metrics, dashboards and logs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ObservabilitySpec {
    /// A Prometheus Operator ServiceMonitor for the admin, proxy and runners (when its CRD exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,
    /// A Grafana dashboard ConfigMap (label `grafana_dashboard: "1"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana: Option<Toggle>,
    /// Accepted for ADR compatibility; fieldwise creates no objects for Loki.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loki: Option<Toggle>,
}

/// Prometheus scraping.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// The block turns scraping on; `enabled: false` keeps the settings but turns it off.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::scrape_interval")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$') && self != ''")
        .message("must be a Prometheus duration such as 30s, 1m or 1h30m"))]
    pub scrape_interval: String,
}

impl Default for PrometheusSpec {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
            scrape_interval: defaults::scrape_interval(),
        }
    }
}

/// A feature switched on by its block; `enabled: false` keeps the block but turns it off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Toggle {
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
        }
    }
}
