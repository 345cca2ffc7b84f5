//! The recommended defaults of the Prism spec (`shared/spec/prism-operator.md` §4): images, versions,
//! storage sizes, resources and autoscaling bounds. The serde defaults of the PrismCluster types call
//! these, and schemars copies their values into the CRD, so this is the single place they are set.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};

/// Image of `prism-admin` when the spec names none.
pub const ADMIN_IMAGE: &str = "prism-admin:latest";
/// Image of `prism-proxy` when the spec names none.
pub const PROXY_IMAGE: &str = "prism-proxy:latest";
/// Size of the admin's sqlite volume (`prism-admin-data`).
pub const ADMIN_STORAGE_SIZE: &str = "1Gi";
/// Size of a StatefulSet pattern's volume.
pub const PATTERN_STORAGE_SIZE: &str = "1Gi";

/// Proxy HPA bounds and targets.
pub const PROXY_MIN_REPLICAS: i32 = 2;
pub const PROXY_MAX_REPLICAS: i32 = 10;
pub const PROXY_TARGET_CPU: i32 = 70;
pub const PROXY_TARGET_MEMORY: i32 = 80;
/// Pattern autoscaling bounds.
pub const PATTERN_MIN_REPLICAS: i32 = 1;
pub const PATTERN_MAX_REPLICAS: i32 = 10;
/// KEDA's polling interval and cooldown (seconds) when a `scaler: keda` pattern sets none.
pub const KEDA_POLLING_INTERVAL: i32 = 10;
pub const KEDA_COOLDOWN_PERIOD: i32 = 300;

/// Backend images are `<repository>:<version>`.
pub const REDIS_REPOSITORY: &str = "redis";
pub const REDIS_VERSION: &str = "7-alpine";
pub const REDIS_STORAGE: &str = "1Gi";
pub const NATS_REPOSITORY: &str = "nats";
pub const NATS_VERSION: &str = "2.10-alpine";
pub const POSTGRES_REPOSITORY: &str = "postgres";
pub const POSTGRES_VERSION: &str = "16-alpine";
pub const POSTGRES_STORAGE: &str = "2Gi";
pub const POSTGRES_DATABASE: &str = "prism";
pub const MINIO_REPOSITORY: &str = "minio/minio";
pub const MINIO_VERSION: &str = "latest";
pub const MINIO_STORAGE: &str = "5Gi";
pub const KAFKA_REPOSITORY: &str = "apache/kafka";
pub const KAFKA_VERSION: &str = "3.7.0";

/// Ingress defaults (MEMO-035): nginx with gRPC backends, host `prism.local`.
pub const INGRESS_CLASS: &str = "nginx";
pub const INGRESS_HOST: &str = "prism.local";
pub const INGRESS_ANNOTATIONS: [(&str, &str); 2] = [
    ("nginx.ingress.kubernetes.io/backend-protocol", "GRPC"),
    ("nginx.ingress.kubernetes.io/grpc-backend", "true"),
];
/// Prometheus scrape interval of the ServiceMonitor.
pub const SCRAPE_INTERVAL: &str = "30s";

/// The suffix of every pattern runner's objects: pattern `consumer` runs as `consumer-runner`.
pub const RUNNER_SUFFIX: &str = "-runner";

/// Requests and limits of the admin and of every pattern runner: 128Mi/100m → 256Mi/500m.
pub fn small_resources() -> ResourceRequirements {
    resources(("128Mi", "100m"), ("256Mi", "500m"))
}

/// Requests and limits of the proxy: 256Mi/200m → 512Mi/1000m.
pub fn proxy_resources() -> ResourceRequirements {
    resources(("256Mi", "200m"), ("512Mi", "1000m"))
}

fn resources(requests: (&str, &str), limits: (&str, &str)) -> ResourceRequirements {
    let amounts = |(memory, cpu): (&str, &str)| {
        BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
        ])
    };
    ResourceRequirements {
        requests: Some(amounts(requests)),
        limits: Some(amounts(limits)),
        ..Default::default()
    }
}

pub(crate) fn ingress_annotations() -> BTreeMap<String, String> {
    INGRESS_ANNOTATIONS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// serde `default = "…"` needs functions.
pub(crate) fn enabled() -> bool {
    true
}
pub(crate) fn one() -> i32 {
    1
}
pub(crate) fn admin_image() -> String {
    ADMIN_IMAGE.to_owned()
}
pub(crate) fn proxy_image() -> String {
    PROXY_IMAGE.to_owned()
}
pub(crate) fn admin_storage_size() -> String {
    ADMIN_STORAGE_SIZE.to_owned()
}
pub(crate) fn pattern_storage_size() -> String {
    PATTERN_STORAGE_SIZE.to_owned()
}
pub(crate) fn proxy_min_replicas() -> i32 {
    PROXY_MIN_REPLICAS
}
pub(crate) fn proxy_max_replicas() -> i32 {
    PROXY_MAX_REPLICAS
}
pub(crate) fn proxy_target_cpu() -> i32 {
    PROXY_TARGET_CPU
}
pub(crate) fn proxy_target_memory() -> i32 {
    PROXY_TARGET_MEMORY
}
pub(crate) fn pattern_min_replicas() -> i32 {
    PATTERN_MIN_REPLICAS
}
pub(crate) fn pattern_max_replicas() -> i32 {
    PATTERN_MAX_REPLICAS
}
pub(crate) fn redis_version() -> String {
    REDIS_VERSION.to_owned()
}
pub(crate) fn redis_storage() -> String {
    REDIS_STORAGE.to_owned()
}
pub(crate) fn nats_version() -> String {
    NATS_VERSION.to_owned()
}
pub(crate) fn postgres_version() -> String {
    POSTGRES_VERSION.to_owned()
}
pub(crate) fn postgres_storage() -> String {
    POSTGRES_STORAGE.to_owned()
}
pub(crate) fn postgres_database() -> String {
    POSTGRES_DATABASE.to_owned()
}
pub(crate) fn minio_version() -> String {
    MINIO_VERSION.to_owned()
}
pub(crate) fn minio_storage() -> String {
    MINIO_STORAGE.to_owned()
}
pub(crate) fn kafka_version() -> String {
    KAFKA_VERSION.to_owned()
}
pub(crate) fn ingress_class() -> String {
    INGRESS_CLASS.to_owned()
}
pub(crate) fn ingress_host() -> String {
    INGRESS_HOST.to_owned()
}
pub(crate) fn scrape_interval() -> String {
    SCRAPE_INTERVAL.to_owned()
}
