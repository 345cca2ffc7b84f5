//! Credentials, connection settings, admin, proxy and pattern runners.

use std::collections::BTreeMap;

use base64::Engine as _;
use fieldwise_api::prism::{
    AdminStorageType, PatternBackend, PatternSpec, PatternType, PrismCluster, Scaler,
};
use fieldwise_apply::ReplicasPolicy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    backends::{PRISM_IDENTITY, credentials_secret_name, http_probe, secret_env},
    container_resources, deployment, headless_service, metadata, restricted, service, stateful_set,
};
use crate::prismcluster::{
    inputs::{PrismInputs, WITH_CREDENTIALS},
    names,
};

/// The generated credentials Secrets (never literals in a pod spec; once made they stay while the
/// PrismCluster lives, so a backend's data keeps matching its password).
pub fn credentials(namespace: &str, inputs: &PrismInputs) -> Vec<Value> {
    WITH_CREDENTIALS
        .iter()
        .filter_map(|backend| {
            let credentials = inputs.credentials.get(backend)?;
            let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
            let name = names::credentials_secret(*backend);
            Some(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": metadata(&name, namespace, backend.as_str()), "type": "Opaque",
                "data": {"username": encode(&credentials.username), "password": encode(&credentials.password)}}))
        })
        .collect()
}

/// The non-secret connection settings of each enabled backend, by backend and variable.
pub type Connection = BTreeMap<PatternBackend, Vec<(&'static str, String)>>;

/// `REDIS_URL`, `NATS_URL`, `S3_ENDPOINT`, `POSTGRES_HOST`/`POSTGRES_PORT`/`POSTGRES_DB`,
/// `KAFKA_BROKERS`, for the enabled backends.
pub fn connection_settings(cluster: &PrismCluster, namespace: &str) -> Connection {
    let backends = &cluster.spec.backends;
    let host = |name: &str| names::host(name, namespace);
    let mut settings = Connection::new();
    let enabled = |backend| backends.is_enabled(backend);
    if enabled(PatternBackend::Redis) {
        let url = format!("redis://{}:6379", host("redis"));
        settings.insert(PatternBackend::Redis, vec![("REDIS_URL", url)]);
    }
    if enabled(PatternBackend::Nats) {
        let url = format!("nats://{}:4222", host("nats"));
        settings.insert(PatternBackend::Nats, vec![("NATS_URL", url)]);
    }
    if enabled(PatternBackend::Minio) {
        let url = format!("http://{}:9000", host("minio"));
        settings.insert(PatternBackend::Minio, vec![("S3_ENDPOINT", url)]);
    }
    if let Some(postgres) = backends.postgres.as_ref().filter(|p| p.settings.enabled) {
        settings.insert(
            PatternBackend::Postgres,
            vec![
                ("POSTGRES_HOST", host("postgres")),
                ("POSTGRES_PORT", "5432".to_owned()),
                ("POSTGRES_DB", postgres.database.clone()),
            ],
        );
    }
    if let Some(kafka) = backends.kafka.as_ref().filter(|k| k.settings.enabled) {
        let brokers: Vec<String> = (0..kafka.settings.replicas.max(1))
            .map(|i| format!("kafka-{i}.{}:9092", host("kafka")))
            .collect();
        settings.insert(
            PatternBackend::Kafka,
            vec![("KAFKA_BROKERS", brokers.join(","))],
        );
    }
    settings
}

/// The ConfigMap `prism-backends` with every connection setting.
pub fn connection_config_map(namespace: &str, connection: &Connection) -> Value {
    let data: BTreeMap<&str, &String> = connection
        .values()
        .flatten()
        .map(|(key, value)| (*key, value))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": metadata(names::BACKENDS_CONFIG, namespace, "prism"), "data": data})
}

/// `prism-admin`: Deployment, Service, and the sqlite claim (or the postgres backend).
pub fn admin(
    cluster: &PrismCluster,
    namespace: &str,
    connection: &Connection,
    inputs: &PrismInputs,
) -> Vec<(Value, ReplicasPolicy)> {
    let spec = &cluster.spec.admin;
    let sqlite = spec.storage.storage_type == AdminStorageType::Sqlite;
    let mut env = vec![json!({"name": "PRISM_HTTP_PORT", "value": names::ADMIN_PORT.to_string()})];
    let mut container = json!({"name": "admin", "image": spec.image,
        "ports": [{"name": "http", "containerPort": names::ADMIN_PORT},
                  {"name": "metrics", "containerPort": names::METRICS_PORT}],
        "readinessProbe": http_probe("/health", names::ADMIN_PORT, 5),
        "livenessProbe": http_probe("/health", names::ADMIN_PORT, 10),
        "resources": container_resources(&spec.resources)});
    let mut pod = json!({});
    if sqlite {
        env.push(json!({"name": "PRISM_DATABASE_TYPE", "value": "sqlite"}));
        env.push(json!({"name": "PRISM_DATABASE_PATH", "value": "/data/prism-admin.db"}));
        container["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
        pod["volumes"] =
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": names::ADMIN_DATA}}]);
    } else {
        let secret = credentials_secret_name(cluster, PatternBackend::Postgres);
        env.push(json!({"name": "PRISM_DATABASE_TYPE", "value": "postgres"}));
        env.extend(config_env(PatternBackend::Postgres, connection));
        env.push(secret_env("POSTGRES_USER", &secret, "username"));
        env.push(secret_env("POSTGRES_PASSWORD", &secret, "password"));
    }
    container["env"] = Value::Array(env);
    pod["containers"] = json!([container]);
    // A sqlite file cannot be shared: never two admin pods at once.
    let strategy = if sqlite { "Recreate" } else { "RollingUpdate" };
    let mut objects = vec![
        (
            restricted(
                deployment(names::ADMIN, namespace, spec.replicas, pod, strategy),
                PRISM_IDENTITY,
            ),
            ReplicasPolicy::Owned,
        ),
        (
            metrics_service(names::ADMIN, namespace, &[("http", names::ADMIN_PORT)]),
            ReplicasPolicy::Owned,
        ),
    ];
    if sqlite || inputs.admin_claim_exists {
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(names::ADMIN_DATA, namespace, names::ADMIN),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.storage.size}}}});
        objects.insert(0, (claim, ReplicasPolicy::Owned));
    }
    objects
}

/// `prism-proxy`: Deployment, Service, and with autoscaling the HPA `prism-proxy-hpa` (then the
/// Deployment's replicas are the HPA's).
pub fn proxy(cluster: &PrismCluster, namespace: &str) -> Vec<(Value, ReplicasPolicy)> {
    let spec = &cluster.spec.proxy;
    let admin_url = format!(
        "http://{}:{}",
        names::host(names::ADMIN, namespace),
        names::ADMIN_PORT
    );
    let grpc_probe =
        |period: i32| json!({"grpc": {"port": names::PROXY_PORT}, "periodSeconds": period});
    let container = json!({"name": "proxy", "image": spec.image,
        "env": [{"name": "RUST_LOG", "value": "info"}, {"name": "PRISM_ADMIN_URL", "value": admin_url}],
        "ports": [{"name": "grpc", "containerPort": names::PROXY_PORT},
                  {"name": "metrics", "containerPort": names::METRICS_PORT}],
        "readinessProbe": grpc_probe(5), "livenessProbe": grpc_probe(10),
        "resources": container_resources(&spec.resources)});
    let autoscaling = spec.autoscaling.as_ref().filter(|a| a.enabled);
    let replicas = match autoscaling {
        Some(_) => ReplicasPolicy::Released,
        None => ReplicasPolicy::Owned,
    };
    let pod = json!({"containers": [container]});
    let mut objects = vec![
        (
            restricted(
                deployment(names::PROXY, namespace, spec.replicas, pod, "RollingUpdate"),
                PRISM_IDENTITY,
            ),
            replicas,
        ),
        (
            metrics_service(names::PROXY, namespace, &[("grpc", names::PROXY_PORT)]),
            ReplicasPolicy::Owned,
        ),
    ];
    if let Some(autoscaling) = autoscaling {
        let metrics = autoscaling.metrics.clone().map_or_else(
            || {
                utilization_metrics(
                    Some(autoscaling.target_cpu),
                    Some(autoscaling.target_memory),
                )
            },
            |metrics| serde_json::to_value(metrics).unwrap_or(Value::Null),
        );
        let target = ("Deployment", names::PROXY);
        let hpa = hpa(
            names::PROXY_HPA,
            namespace,
            names::PROXY,
            target,
            (autoscaling.min_replicas, autoscaling.max_replicas),
            metrics,
            autoscaling.behavior.as_ref(),
        );
        objects.push((hpa, ReplicasPolicy::Owned));
    }
    objects
}

/// A pattern's runner: its workload and Service, and its HPA or ScaledObject.
pub fn runner(
    cluster: &PrismCluster,
    namespace: &str,
    pattern: &PatternSpec,
    connection: &Connection,
    inputs: &PrismInputs,
    notes: &mut Vec<String>,
) -> Vec<(Value, ReplicasPolicy)> {
    let name = pattern.runner_name();
    let proxy = format!(
        "--proxy-addr={}:{}",
        names::host(names::PROXY, namespace),
        names::PROXY_PORT
    );
    let mut env = Vec::new();
    let mut consumed = Vec::new();
    for backend in &pattern.backends {
        for (key, value) in connection.get(backend).into_iter().flatten() {
            env.push(json!({"name": key, "valueFrom": {"configMapKeyRef": {"name": names::BACKENDS_CONFIG, "key": key}}}));
            consumed.push(format!("{key}={value}"));
        }
        let credentials = match backend {
            PatternBackend::Postgres => Some(("POSTGRES_USER", "POSTGRES_PASSWORD")),
            PatternBackend::Minio => Some(("S3_ACCESS_KEY", "S3_SECRET_KEY")),
            _ => None,
        };
        if let Some((user, password)) = credentials {
            let secret = credentials_secret_name(cluster, *backend);
            env.push(secret_env(user, &secret, "username"));
            env.push(secret_env(password, &secret, "password"));
            consumed.push(format!("{user}@{secret}"));
        }
    }
    let mut container = json!({"name": "runner", "image": pattern.image_or_default(), "args": [proxy],
        "ports": [{"name": "grpc", "containerPort": names::RUNNER_PORT}],
        "resources": container_resources(&pattern.resources)});
    if !env.is_empty() {
        container["env"] = Value::Array(env);
    }
    // The digest of exactly what this runner consumes: a change to another backend's settings
    // leaves it (and its pods) alone.
    let digest = format!("{:x}", Sha256::digest(consumed.join("\n").as_bytes()));
    let annotations = json!({names::BACKENDS_DIGEST: digest});
    let autoscaling = pattern.active_autoscaling();
    let replicas = match autoscaling {
        Some(_) => ReplicasPolicy::Released,
        None => ReplicasPolicy::Owned,
    };
    let ports = [("grpc", names::RUNNER_PORT)];
    let (workload, kind) = match pattern.workload {
        PatternType::StatefulSet => {
            let claim = pattern.storage.as_ref().map(|s| ("data", s.size.as_str()));
            if claim.is_some() {
                container["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
            }
            let workload = stateful_set(
                &name,
                namespace,
                &name,
                pattern.replicas,
                container,
                claim,
                annotations,
            );
            (workload, "StatefulSet")
        }
        PatternType::Deployment => {
            let mut workload = deployment(
                &name,
                namespace,
                pattern.replicas,
                json!({"containers": [container]}),
                "RollingUpdate",
            );
            workload["spec"]["template"]["metadata"]["annotations"] = annotations;
            (workload, "Deployment")
        }
    };
    let mut workload = restricted(workload, PRISM_IDENTITY);
    workload["metadata"]["labels"]["pattern"] = json!(pattern.name);
    let service = match pattern.workload {
        PatternType::StatefulSet => headless_service(&name, namespace, &name, &ports),
        PatternType::Deployment => service(&name, namespace, &name, &ports),
    };
    let mut objects = vec![(workload, replicas), (service, ReplicasPolicy::Owned)];
    if let Some(autoscaling) = autoscaling {
        let bounds = (autoscaling.min_replicas, autoscaling.max_replicas);
        match autoscaling.scaler {
            Scaler::Hpa => {
                let metrics = autoscaling.metrics.clone().map_or_else(
                    || utilization_metrics(autoscaling.target_cpu, autoscaling.target_memory),
                    |metrics| serde_json::to_value(metrics).unwrap_or(Value::Null),
                );
                let hpa = hpa(&name, namespace, &name, (kind, &name), bounds, metrics, autoscaling.behavior.as_ref());
                objects.push((hpa, ReplicasPolicy::Owned));
            }
            Scaler::Keda if inputs.scaled_objects => {
                objects.push((scaled_object(&name, namespace, kind, pattern), ReplicasPolicy::Owned));
            }
            Scaler::Keda => notes.push(format!(
                "pattern {}: scaler keda, but KEDA is not installed (no scaledobjects.keda.sh CRD); its runner runs unscaled until KEDA is installed",
                pattern.name
            )),
        }
    }
    objects
}

/// A KEDA ScaledObject scaling a runner workload.
fn scaled_object(name: &str, namespace: &str, kind: &str, pattern: &PatternSpec) -> Value {
    let Some(autoscaling) = pattern.autoscaling.as_ref() else {
        return Value::Null;
    };
    let triggers: Vec<Value> = autoscaling
        .triggers
        .iter()
        .flatten()
        .map(|trigger| {
            let mut out = json!({"type": trigger.trigger_type, "metadata": trigger.metadata});
            if let Some(reference) = &trigger.authentication_ref {
                out["authenticationRef"] = serde_json::to_value(reference).unwrap_or(Value::Null);
            }
            out
        })
        .collect();
    let mut spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name},
        "minReplicaCount": autoscaling.min_replicas, "maxReplicaCount": autoscaling.max_replicas,
        "pollingInterval": autoscaling.polling_interval_or_default(),
        "cooldownPeriod": autoscaling.cooldown_period_or_default(), "triggers": triggers});
    if let Some(behavior) = &autoscaling.behavior {
        spec["advanced"] = json!({"horizontalPodAutoscalerConfig": {"behavior": behavior}});
    }
    json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": metadata(name, namespace, name), "spec": spec})
}

/// An autoscaling/v2 HPA.
fn hpa(
    name: &str,
    namespace: &str,
    app: &str,
    (kind, target): (&str, &str),
    (min, max): (i32, i32),
    metrics: Value,
    behavior: Option<&k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior>,
) -> Value {
    let mut spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
        "minReplicas": min, "maxReplicas": max});
    if metrics.as_array().is_some_and(|m| !m.is_empty()) {
        spec["metrics"] = metrics;
    }
    if let Some(behavior) = behavior {
        spec["behavior"] = serde_json::to_value(behavior).unwrap_or(Value::Null);
    }
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, app), "spec": spec})
}

/// CPU and memory utilization targets (an empty list means the HPA default, 80% CPU).
fn utilization_metrics(cpu: Option<i32>, memory: Option<i32>) -> Value {
    let resource = |name: &str, target: i32| {
        json!({"type": "Resource", "resource": {"name": name,
            "target": {"type": "Utilization", "averageUtilization": target}}})
    };
    let metrics: Vec<Value> = [("cpu", cpu), ("memory", memory)]
        .into_iter()
        .filter_map(|(name, target)| target.map(|t| resource(name, t)))
        .collect();
    Value::Array(metrics)
}

/// A Service with a `metrics` port beside `ports`, labelled for the ServiceMonitor.
fn metrics_service(name: &str, namespace: &str, ports: &[(&str, i32)]) -> Value {
    let mut all = ports.to_vec();
    all.push(("metrics", names::METRICS_PORT));
    let mut body = service(name, namespace, name, &all);
    body["metadata"]["labels"][names::METRICS_LABEL] = json!("true");
    body
}

/// The connection variables of one backend, by reference to `prism-backends`.
fn config_env(backend: PatternBackend, connection: &Connection) -> Vec<Value> {
    connection
        .get(&backend)
        .into_iter()
        .flatten()
        .map(|(key, _)| json!({"name": key, "valueFrom": {"configMapKeyRef": {"name": names::BACKENDS_CONFIG, "key": key}}}))
        .collect()
}
