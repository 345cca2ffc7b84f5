//! `spec.backends`: the backing services fieldwise runs, each a StatefulSet with a headless Service
//! named after it (`redis`, `nats`, `postgres`, `minio`, `kafka`; pods labelled `app=<name>`).

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::PatternBackend;
use super::defaults;
use super::rules;

/// The backing services. A backend that is absent, or has `enabled: false`, is not run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct BackendsSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minio: Option<MinioSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
}

impl BackendsSpec {
    /// Whether `backend` runs (`sqlite` always "runs": it is a local file).
    pub fn is_enabled(&self, backend: PatternBackend) -> bool {
        match backend {
            PatternBackend::Sqlite => true,
            other => self.settings(other).is_some_and(|s| s.enabled),
        }
    }

    /// The backends that run, in the order of [`PatternBackend::ALL`] (without `sqlite`).
    pub fn enabled(&self) -> Vec<PatternBackend> {
        PatternBackend::ALL
            .into_iter()
            .filter(|b| *b != PatternBackend::Sqlite && self.is_enabled(*b))
            .collect()
    }

    /// The settings every backend has, for the backends that need an object (not `sqlite`).
    pub fn settings(&self, backend: PatternBackend) -> Option<&BackendSettings> {
        match backend {
            PatternBackend::Redis => self.redis.as_ref().map(|b| &b.settings),
            PatternBackend::Nats => self.nats.as_ref().map(|b| &b.settings),
            PatternBackend::Postgres => self.postgres.as_ref().map(|b| &b.settings),
            PatternBackend::Minio => self.minio.as_ref().map(|b| &b.settings),
            PatternBackend::Kafka => self.kafka.as_ref().map(|b| &b.settings),
            PatternBackend::Sqlite => None,
        }
    }
}

/// What every backend has. `version` is the image tag; `image`, when set, replaces the whole image
/// reference (`<repository>:<version>` otherwise, see [`BackendSettings::image_or`]).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::resources)]
pub struct BackendSettings {
    /// The block runs the backend; `enabled: false` keeps the settings but removes it.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default = "defaults::one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl BackendSettings {
    /// The image: `image` when set, else `<repository>:<version>`.
    pub fn image_or(&self, repository: &str, version: &str) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{repository}:{version}"))
    }
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
            replicas: defaults::one(),
            image: None,
            resources: None,
        }
    }
}

/// A reference to a Secret in the PrismCluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct SecretReference {
    #[schemars(length(max = rules::MAX_DNS_SUBDOMAIN))]
    #[x_kube(validation = rules::dns_subdomain())]
    pub name: String,
}

/// Redis (`redis:<version>`, port 6379), data on a volume of `storage`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RedisSpec {
    #[serde(flatten)]
    pub settings: BackendSettings,
    #[serde(default = "defaults::redis_version")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::image_tag())]
    pub version: String,
    /// Size of each replica's volume `data`.
    #[serde(default = "defaults::redis_storage")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub storage: String,
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            settings: BackendSettings::default(),
            version: defaults::redis_version(),
            storage: defaults::redis_storage(),
        }
    }
}

impl RedisSpec {
    pub fn image(&self) -> String {
        self.settings
            .image_or(defaults::REDIS_REPOSITORY, &self.version)
    }
}

/// NATS with JetStream (`nats:<version>`, ports 4222, 6222 and monitoring 8222); JetStream data on
/// a volume when `storage` is set, else in the pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NatsSpec {
    #[serde(flatten)]
    pub settings: BackendSettings,
    #[serde(default = "defaults::nats_version")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::image_tag())]
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub storage: Option<String>,
}

impl Default for NatsSpec {
    fn default() -> Self {
        Self {
            settings: BackendSettings::default(),
            version: defaults::nats_version(),
            storage: None,
        }
    }
}

impl NatsSpec {
    pub fn image(&self) -> String {
        self.settings
            .image_or(defaults::NATS_REPOSITORY, &self.version)
    }
}

/// PostgreSQL (`postgres:<version>`, port 5432) with database `database`. Credentials come from
/// `credentialsSecretRef` (keys `username` and `password`) or from a Secret fieldwise generates once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    #[serde(flatten)]
    pub settings: BackendSettings,
    #[serde(default = "defaults::postgres_version")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::image_tag())]
    pub version: String,
    #[serde(default = "defaults::postgres_storage")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub storage: String,
    #[serde(default = "defaults::postgres_database")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')")
        .message("must be a PostgreSQL identifier: letters, digits and '_', not starting with a digit"))]
    pub database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

impl Default for PostgresSpec {
    fn default() -> Self {
        Self {
            settings: BackendSettings::default(),
            version: defaults::postgres_version(),
            storage: defaults::postgres_storage(),
            database: defaults::postgres_database(),
            credentials_secret_ref: None,
        }
    }
}

impl PostgresSpec {
    pub fn image(&self) -> String {
        self.settings
            .image_or(defaults::POSTGRES_REPOSITORY, &self.version)
    }
}

/// MinIO (`minio/minio:<version>`, API 9000, console 9001). Credentials come from
/// `credentialsSecretRef` (keys `username` and `password`) or from a Secret fieldwise generates once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MinioSpec {
    #[serde(flatten)]
    pub settings: BackendSettings,
    #[serde(default = "defaults::minio_version")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::image_tag())]
    pub version: String,
    #[serde(default = "defaults::minio_storage")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub storage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

impl Default for MinioSpec {
    fn default() -> Self {
        Self {
            settings: BackendSettings::default(),
            version: defaults::minio_version(),
            storage: defaults::minio_storage(),
            credentials_secret_ref: None,
        }
    }
}

impl MinioSpec {
    pub fn image(&self) -> String {
        self.settings
            .image_or(defaults::MINIO_REPOSITORY, &self.version)
    }
}

/// Kafka in KRaft mode (`apache/kafka:<version>`, ports 9092 and controller 9093); every replica is
/// a broker and a controller, so the count is odd (a quorum needs a majority).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new("self.replicas <= 1 || self.replicas % 2 == 1")
    .message("kafka replicas must be 1 or an odd number: every replica is a KRaft controller, and the quorum needs a majority"))]
pub struct KafkaSpec {
    #[serde(flatten)]
    pub settings: BackendSettings,
    #[serde(default = "defaults::kafka_version")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::image_tag())]
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub storage: Option<String>,
}

impl Default for KafkaSpec {
    fn default() -> Self {
        Self {
            settings: BackendSettings::default(),
            version: defaults::kafka_version(),
            storage: None,
        }
    }
}

impl KafkaSpec {
    pub fn image(&self) -> String {
        self.settings
            .image_or(defaults::KAFKA_REPOSITORY, &self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_runs_when_its_block_is_present_and_not_switched_off() {
        let switched_off = BackendSettings {
            enabled: false,
            ..Default::default()
        };
        let backends = BackendsSpec {
            redis: Some(RedisSpec::default()),
            kafka: Some(KafkaSpec {
                settings: switched_off,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(backends.is_enabled(PatternBackend::Redis));
        assert!(!backends.is_enabled(PatternBackend::Kafka));
        assert!(!backends.is_enabled(PatternBackend::Nats));
        assert!(backends.is_enabled(PatternBackend::Sqlite));
        assert_eq!(backends.enabled(), [PatternBackend::Redis]);
    }

    #[test]
    fn images_come_from_the_version_unless_overridden() {
        let mut redis = RedisSpec::default();
        assert_eq!(redis.image(), "redis:7-alpine");
        redis.version = "7.4".into();
        assert_eq!(redis.image(), "redis:7.4");
        redis.settings.image = Some("mirror.example/redis:7".into());
        assert_eq!(redis.image(), "mirror.example/redis:7");
        assert_eq!(NatsSpec::default().image(), "nats:2.10-alpine");
        assert_eq!(PostgresSpec::default().image(), "postgres:16-alpine");
        assert_eq!(MinioSpec::default().image(), "minio/minio:latest");
        assert_eq!(KafkaSpec::default().image(), "apache/kafka:3.7.0");
    }
}
