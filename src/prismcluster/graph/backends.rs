//! Backing services: each enabled backend is a StatefulSet with a headless Service of its name
//! (`redis`, `nats`, `postgres`, `minio`, `kafka`), pods labelled `app=<name>`. Credentials reach
//! containers by `secretKeyRef` only.

use fieldwise_api::prism::{BackendSettings, PatternBackend, PrismCluster};
use serde_json::{Value, json};

use super::{container_resources, headless_service, restricted, stateful_set};
use crate::prismcluster::{inputs::references_secret, names};
use crate::security::PodIdentity;

/// The enabled backends, in dependency order (Redis and NATS first, as in the ADR).
pub fn backends(cluster: &PrismCluster, namespace: &str) -> Vec<Value> {
    let spec = &cluster.spec.backends;
    let mut out = Vec::new();
    if let Some(redis) = spec.redis.as_ref().filter(|b| b.settings.enabled) {
        let container = json!({"name": "redis", "image": redis.image(),
            "ports": [{"name": "redis", "containerPort": 6379}],
            "readinessProbe": exec_probe(&["redis-cli", "ping"], 5),
            "livenessProbe": exec_probe(&["redis-cli", "ping"], 10),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]});
        let claim = Some(("data", redis.storage.as_str()));
        out.push(backend(
            PatternBackend::Redis,
            namespace,
            &redis.settings,
            container,
            claim,
            &[("redis", 6379)],
        ));
    }
    if let Some(nats) = spec.nats.as_ref().filter(|b| b.settings.enabled) {
        let mut args = vec!["--js".to_owned(), "--http_port=8222".to_owned()];
        if nats.storage.is_some() {
            args.push("--store_dir=/data".to_owned());
        }
        if nats.settings.replicas > 1 {
            args.push("--cluster_name=nats".to_owned());
            args.push("--cluster=nats://0.0.0.0:6222".to_owned());
            let routes: Vec<String> = (0..nats.settings.replicas)
                .map(|i| format!("nats://nats-{i}.{}:6222", names::host("nats", namespace)))
                .collect();
            args.push(format!("--routes={}", routes.join(",")));
        }
        let mut container = json!({"name": "nats", "image": nats.image(), "args": args,
            "ports": [{"name": "client", "containerPort": 4222}, {"name": "monitor", "containerPort": 8222},
                      {"name": "cluster", "containerPort": 6222}],
            "readinessProbe": http_probe("/healthz", 8222, 5),
            "livenessProbe": http_probe("/healthz", 8222, 10)});
        if nats.storage.is_some() {
            container["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
        }
        let claim = nats.storage.as_deref().map(|size| ("data", size));
        let ports = [("client", 4222), ("monitor", 8222), ("cluster", 6222)];
        out.push(backend(
            PatternBackend::Nats,
            namespace,
            &nats.settings,
            container,
            claim,
            &ports,
        ));
    }
    if let Some(postgres) = spec.postgres.as_ref().filter(|b| b.settings.enabled) {
        let secret = credentials_secret_name(cluster, PatternBackend::Postgres);
        let check = [
            "sh",
            "-c",
            "pg_isready -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"",
        ];
        let container = json!({"name": "postgres", "image": postgres.image(),
            "env": [{"name": "POSTGRES_DB", "value": postgres.database},
                    secret_env("POSTGRES_USER", &secret, "username"),
                    secret_env("POSTGRES_PASSWORD", &secret, "password"),
                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
            "ports": [{"name": "postgres", "containerPort": 5432}],
            "readinessProbe": exec_probe(&check, 5), "livenessProbe": exec_probe(&check, 10),
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]});
        let claim = Some(("data", postgres.storage.as_str()));
        out.push(backend(
            PatternBackend::Postgres,
            namespace,
            &postgres.settings,
            container,
            claim,
            &[("postgres", 5432)],
        ));
    }
    if let Some(minio) = spec.minio.as_ref().filter(|b| b.settings.enabled) {
        let secret = credentials_secret_name(cluster, PatternBackend::Minio);
        let container = json!({"name": "minio", "image": minio.image(),
            "args": ["server", "/data", "--console-address", ":9001"],
            "env": [secret_env("MINIO_ROOT_USER", &secret, "username"),
                    secret_env("MINIO_ROOT_PASSWORD", &secret, "password")],
            "ports": [{"name": "api", "containerPort": 9000}, {"name": "console", "containerPort": 9001}],
            "readinessProbe": http_probe("/minio/health/ready", 9000, 5),
            "livenessProbe": http_probe("/minio/health/live", 9000, 10),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]});
        let claim = Some(("data", minio.storage.as_str()));
        out.push(backend(
            PatternBackend::Minio,
            namespace,
            &minio.settings,
            container,
            claim,
            &[("api", 9000), ("console", 9001)],
        ));
    }
    if let Some(kafka) = spec.kafka.as_ref().filter(|b| b.settings.enabled) {
        let container = kafka_container(
            cluster,
            namespace,
            kafka.image(),
            &kafka.settings,
            kafka.storage.is_some(),
        );
        let claim = kafka.storage.as_deref().map(|size| ("data", size));
        out.push(backend(
            PatternBackend::Kafka,
            namespace,
            &kafka.settings,
            container,
            claim,
            &[("kafka", 9092), ("controller", 9093)],
        ));
    }
    out.into_iter().flatten().collect()
}

/// The Secret a backend's credentials are read from: the user's, or the one fieldwise generates.
pub fn credentials_secret_name(cluster: &PrismCluster, backend: PatternBackend) -> String {
    let backends = &cluster.spec.backends;
    let referenced = match backend {
        PatternBackend::Postgres => backends
            .postgres
            .as_ref()
            .and_then(|p| p.credentials_secret_ref.as_ref()),
        PatternBackend::Minio => backends
            .minio
            .as_ref()
            .and_then(|m| m.credentials_secret_ref.as_ref()),
        _ => None,
    };
    match referenced {
        Some(reference) if references_secret(cluster, backend) => reference.name.clone(),
        _ => names::credentials_secret(backend),
    }
}

/// Kafka in KRaft mode: every replica is a broker and a controller; the voters are all replicas
/// (the API requires an odd count for a majority quorum). The node id is the pod's ordinal.
fn kafka_container(
    cluster: &PrismCluster,
    namespace: &str,
    image: String,
    settings: &BackendSettings,
    storage: bool,
) -> Value {
    let pod_host = |i: i32| format!("kafka-{i}.{}", names::host("kafka", namespace));
    let voters: Vec<String> = (0..settings.replicas.max(1))
        .map(|i| format!("{i}@{}:9093", pod_host(i)))
        .collect();
    let replication = settings.replicas.clamp(1, 3).to_string();
    let env = json!([
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CLUSTER_ID", "value": kafka_cluster_id(cluster)},
        {"name": "KAFKA_PROCESS_ROLES", "value": "broker,controller"},
        {"name": "KAFKA_CONTROLLER_QUORUM_VOTERS", "value": voters.join(",")},
        {"name": "KAFKA_LISTENERS", "value": "PLAINTEXT://:9092,CONTROLLER://:9093"},
        {"name": "KAFKA_ADVERTISED_LISTENERS",
         "value": format!("PLAINTEXT://$(POD_NAME).{}:9092", names::host("kafka", namespace))},
        {"name": "KAFKA_CONTROLLER_LISTENER_NAMES", "value": "CONTROLLER"},
        {"name": "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "value": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"},
        {"name": "KAFKA_INTER_BROKER_LISTENER_NAME", "value": "PLAINTEXT"},
        {"name": "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "value": replication},
        {"name": "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "value": replication},
        {"name": "KAFKA_LOG_DIRS", "value": "/var/lib/kafka/data"},
    ]);
    let check = [
        "sh",
        "-c",
        "/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:9092",
    ];
    let mut container = json!({"name": "kafka", "image": image,
        // The node id is the ordinal of the StatefulSet pod (`kafka-<n>`).
        "command": ["sh", "-c", "export KAFKA_NODE_ID=${POD_NAME##*-}; exec /etc/kafka/docker/run"],
        "env": env,
        "ports": [{"name": "kafka", "containerPort": 9092}, {"name": "controller", "containerPort": 9093}],
        "readinessProbe": exec_probe(&check, 10),
        "livenessProbe": {"tcpSocket": {"port": 9092}, "periodSeconds": 10}});
    if storage {
        container["volumeMounts"] = json!([{"name": "data", "mountPath": "/var/lib/kafka/data"}]);
    }
    container
}

/// A stable KRaft cluster id: the PrismCluster's uid as a URL-safe base64 UUID (22 characters).
fn kafka_cluster_id(cluster: &PrismCluster) -> String {
    use base64::Engine as _;
    let uid = cluster
        .metadata
        .uid
        .as_deref()
        .unwrap_or_default()
        .replace('-', "");
    let bytes: Vec<u8> = (0..uid.len() / 2)
        .filter_map(|i| u8::from_str_radix(uid.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let mut id = [0u8; 16];
    for (slot, byte) in id.iter_mut().zip(bytes) {
        *slot = byte;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn backend(
    backend: PatternBackend,
    namespace: &str,
    settings: &BackendSettings,
    mut container: Value,
    claim: Option<(&str, &str)>,
    ports: &[(&str, i32)],
) -> [Value; 2] {
    let name = backend.as_str();
    if let Some(resources) = &settings.resources {
        container["resources"] = container_resources(resources);
    }
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    let workload = stateful_set(
        name,
        namespace,
        name,
        settings.replicas,
        container,
        claim,
        Value::Null,
    );
    let workload = restricted(workload, identity(backend, &image));
    let service = headless_service(name, namespace, name, ports);
    [workload, service]
}

/// The numeric user and group a backend's image runs as under `runAsNonRoot: true`.
///
/// The official images of Redis, PostgreSQL, NATS and MinIO start as root (Redis and PostgreSQL
/// then step down to their own user in the entrypoint), and `apache/kafka` names its user
/// (`USER appuser`), which the kubelet cannot check: each gets the numeric identity the image
/// supports, and `fsGroup` the same group, so the data volume is writable by it. On OpenShift the
/// platform assigns UIDs instead (see [`crate::security`]).
fn identity(backend: PatternBackend, image: &str) -> PodIdentity {
    // The tag decides between the Alpine and Debian variants of the official images, whose users
    // differ (`redis:7-alpine`, `postgres:16-alpine` are the defaults).
    let alpine = image
        .rsplit_once(':')
        .is_some_and(|(_, tag)| tag.contains("alpine"));
    let (user, group) = match backend {
        // The image's `redis` user: uid 999 in both variants; its group is 1000 on Alpine (which
        // already has a gid 999) and 999 on Debian. The entrypoint runs `redis-server` directly
        // when started as that user.
        PatternBackend::Redis => (999, if alpine { 1000 } else { 999 }),
        // The image's `postgres` user: 70:70 on Alpine (Alpine's standard postgres uid), 999:999
        // on Debian. The entrypoint initialises `PGDATA` (a subdirectory of the volume) as the
        // user it runs as, which must exist in /etc/passwd for initdb: the image's own does.
        PatternBackend::Postgres if alpine => (70, 70),
        PatternBackend::Postgres => (999, 999),
        // `nats-server` is a static binary that runs as any user; JetStream writes only to its
        // store directory (the volume, or /tmp without storage).
        PatternBackend::Nats => (1000, 1000),
        // MinIO documents running as a non-root user (`--user 1000:1000`) with a data directory
        // that user can write; its operator runs pools as 1000:1000.
        PatternBackend::Minio => (1000, 1000),
        // `apache/kafka` creates `appuser` (uid 1000 on its Alpine base) and owns /opt/kafka,
        // /etc/kafka and /var/lib/kafka/data by it; `USER appuser` is a name, so it is given as
        // a number here.
        PatternBackend::Kafka => (1000, 1000),
        // No workload of its own (pattern runners keep their data in sqlite on their volume).
        PatternBackend::Sqlite => (PRISM_USER, PRISM_USER),
    };
    PodIdentity { user, group }
}

/// The user of Prism's own components (admin, proxy, pattern runners): their images document no
/// user, so a fixed non-root one lets the kubelet verify `runAsNonRoot` whatever their `USER` is
/// (root or a name would be refused). 65532 is the conventional unprivileged uid of distroless
/// images ("nonroot"); the Go and Rust binaries write only to their volumes, which `fsGroup` makes
/// writable.
pub const PRISM_USER: i64 = 65532;

/// The identity of Prism's own components.
pub const PRISM_IDENTITY: PodIdentity = PodIdentity {
    user: PRISM_USER,
    group: PRISM_USER,
};

pub(super) fn secret_env(name: &str, secret: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

fn exec_probe(command: &[&str], period: i32) -> Value {
    json!({"exec": {"command": command}, "periodSeconds": period})
}

pub(super) fn http_probe(path: &str, port: i32, period: i32) -> Value {
    json!({"httpGet": {"path": path, "port": port}, "periodSeconds": period})
}
