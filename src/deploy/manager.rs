//! The operator's own workload: Namespace, Deployment, metrics Service and the optional ServiceMonitor.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
            ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort,
            ServiceSpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use serde_json::{Value, json};

use super::{NAMESPACE, OPERATOR, labels, operator_image, rbac::SERVICE_ACCOUNT};
use crate::featurestore::context::{DEFAULT_CRON_JOB_IMAGE, DEFAULT_FEATURE_SERVER_IMAGE};

/// The Deployment's name.
pub const DEPLOYMENT: &str = "fieldwise";
/// The metrics Service's name.
pub const METRICS_SERVICE: &str = "fieldwise-metrics";
/// The port serving /metrics over HTTPS, each request authenticated and authorized.
pub const METRICS_PORT: i32 = 8443;
/// The name of that port on the container and the Service.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The port serving /healthz and /readyz over plain HTTP, for the kubelet.
pub const PROBE_PORT: i32 = 8081;
/// The name of that port on the container.
pub const PROBE_PORT_NAME: &str = "probes";
/// The operator container's name.
pub const CONTAINER: &str = "manager";

/// Where the operator watches FeatureStores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchScope {
    /// All namespaces (the kustomize install).
    AllNamespaces,
    /// The namespaces OLM selects through the Operator Group (`olm.targetNamespaces`); empty means all.
    OlmTargetNamespaces,
}

/// The operator namespace, restricted by Pod Security admission.
pub fn namespace() -> Namespace {
    let mut labels = labels();
    labels.insert(
        "pod-security.kubernetes.io/enforce".to_owned(),
        "restricted".to_owned(),
    );
    Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// Labels selecting the operator pods.
pub fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), OPERATOR.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            "controller".to_owned(),
        ),
    ])
}

/// The operator Deployment of release `version`.
pub fn deployment(version: &str, scope: WatchScope) -> Deployment {
    let mut pod_labels = labels();
    pod_labels.extend(selector_labels());
    Deployment {
        metadata: ObjectMeta {
            name: Some(DEPLOYMENT.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(pod_labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(deployment_spec(version, scope)),
        status: None,
    }
}

/// The Deployment spec (also the OLM install strategy's).
pub fn deployment_spec(version: &str, scope: WatchScope) -> DeploymentSpec {
    let mut pod_labels = labels();
    pod_labels.extend(selector_labels());
    DeploymentSpec {
        replicas: Some(1),
        selector: LabelSelector {
            match_labels: Some(selector_labels()),
            ..LabelSelector::default()
        },
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                ..ObjectMeta::default()
            }),
            spec: Some(pod_spec(version, scope)),
        },
        ..DeploymentSpec::default()
    }
}

fn pod_spec(version: &str, scope: WatchScope) -> PodSpec {
    PodSpec {
        service_account_name: Some(SERVICE_ACCOUNT.to_owned()),
        // Long enough to finish in-flight reconciles and release the lease after SIGTERM.
        termination_grace_period_seconds: Some(30),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container(version, scope)],
        ..PodSpec::default()
    }
}

fn container(version: &str, scope: WatchScope) -> Container {
    Container {
        name: CONTAINER.to_owned(),
        image: Some(operator_image(version)),
        args: Some(
            [
                "run",
                "--leader-elect",
                "--log-format=json",
                &format!("--metrics-bind-address=0.0.0.0:{METRICS_PORT}"),
                &format!("--health-probe-bind-address=0.0.0.0:{PROBE_PORT}"),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        env: Some(env(scope)),
        ports: Some(vec![
            container_port(METRICS_PORT_NAME, METRICS_PORT),
            container_port(PROBE_PORT_NAME, PROBE_PORT),
        ]),
        liveness_probe: Some(probe("/healthz", 15, 20)),
        readiness_probe: Some(probe("/readyz", 5, 10)),
        resources: Some(resources()),
        security_context: Some(container_security()),
        ..Container::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

fn env(scope: WatchScope) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        value_env("RELATED_IMAGE_FEATURE_SERVER", DEFAULT_FEATURE_SERVER_IMAGE),
        value_env("RELATED_IMAGE_CRON_JOB", DEFAULT_CRON_JOB_IMAGE),
    ];
    if scope == WatchScope::OlmTargetNamespaces {
        // OLM writes the Operator Group's namespaces here; empty (AllNamespaces) means every namespace.
        env.push(field_env(
            "WATCH_NAMESPACE",
            "metadata.annotations['olm.targetNamespaces']",
        ));
    }
    env
}

/// A strategic-merge patch of the Deployment setting WATCH_NAMESPACE to `namespaces`
/// (comma-separated), for the namespaced overlay.
pub fn watch_namespace_patch(namespaces: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {"template": {"spec": {"containers": [{
            "name": CONTAINER,
            "env": [{"name": "WATCH_NAMESPACE", "value": namespaces}]
        }]}}}
    })
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

fn probe(path: &str, initial_delay_seconds: i32, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(PROBE_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay_seconds),
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

fn resources() -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(quantities("10m", "64Mi")),
        limits: Some(quantities("500m", "256Mi")),
        ..ResourceRequirements::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// The Service in front of the metrics port (HTTPS).
pub fn metrics_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(METRICS_SERVICE.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                target_port: Some(IntOrString::String(METRICS_PORT_NAME.to_owned())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Where Prometheus finds its own ServiceAccount token, which the operator reviews.
pub const SCRAPER_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A Prometheus Operator ServiceMonitor scraping the metrics Service over HTTPS with Prometheus' own
/// ServiceAccount token (the optional overlay; bind that ServiceAccount to `fieldwise-metrics-reader`).
/// The operator's certificate is self-signed unless `--metrics-cert-dir` gives one, so the scrape does
/// not verify it; with a certificate from a CA, set `tlsConfig.ca` and `serverName` instead.
pub fn service_monitor() -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": OPERATOR, "namespace": NAMESPACE, "labels": labels()},
        "spec": {
            "selector": {"matchLabels": labels()},
            "endpoints": [{
                "port": METRICS_PORT_NAME,
                "path": "/metrics",
                "interval": "30s",
                "scheme": "https",
                "bearerTokenFile": SCRAPER_TOKEN_FILE,
                "tlsConfig": {"insecureSkipVerify": true},
            }],
        },
    })
}
