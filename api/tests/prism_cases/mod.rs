//! Invalid PrismClusters and the API server's exact message for each. Shared by
//! `api/tests/prism_invalid.rs` (the `fieldwise validate` code path) and the emulator's
//! `prism_cluster` tests (a create through the HTTP API), so both judge the same table.

/// A PrismCluster named `sample` in a document of its own, whose spec is the given flow-style
/// YAML mapping body.
pub fn manifest(spec: &str) -> String {
    format!(
        "apiVersion: prism.io/v1alpha1\nkind: PrismCluster\nmetadata:\n  name: sample\nspec: {{{spec}}}\n"
    )
}

/// What the API server's message starts with for [`manifest`].
pub const PREFIX: &str = r#"PrismCluster.prism.io "sample" is invalid: "#;

const CEL_SKIPPED: &str = "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
const QUANTITY: &str =
    "Invalid value: \"string\": must be a positive quantity, such as 1Gi or 500Mi";
const DNS_1035: &str = "Invalid value: \"string\": must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit): it names the pattern's <name>-runner Service and workload";
const MIN_MAX: &str = "Invalid value: \"object\": minReplicas must not be greater than maxReplicas";
const KEDA_ONLY: &str = "Invalid value: \"object\": triggers, pollingInterval and cooldownPeriod are KEDA settings: they need scaler keda";
const HPA_ONLY: &str = "Invalid value: \"object\": targetCPU, targetMemory and metrics are HPA settings: with scaler keda, scale on triggers (such as type cpu or memory)";
const NEEDS_TRIGGER: &str = "Invalid value: \"object\": scaler keda needs at least one trigger";

/// One invalid PrismCluster.
pub struct Case {
    pub name: &'static str,
    /// The spec body for [`manifest`].
    pub spec: String,
    /// The message after [`PREFIX`].
    pub expected: String,
}

fn case(name: &'static str, spec: impl Into<String>, expected: impl Into<String>) -> Case {
    Case {
        name,
        spec: spec.into(),
        expected: expected.into(),
    }
}

fn backend_not_enabled(backend: &str, pattern: &str) -> String {
    format!(
        "spec: Invalid value: \"object\": backend {backend} is not enabled (spec.backends.{backend}.enabled), but pattern {pattern} lists it"
    )
}

/// Every case; at least 25.
pub fn cases() -> Vec<Case> {
    let long_name = "a".repeat(46);
    let too_long_name = "a".repeat(64);
    let many_patterns: Vec<String> = (0..65).map(|i| format!("{{name: p{i}}}")).collect();
    vec![
        case(
            "a pattern lists a backend that is absent",
            "patterns: [{name: kv, backends: [redis]}]",
            backend_not_enabled("redis", "kv"),
        ),
        case(
            "a pattern lists a backend that is switched off",
            "backends: {nats: {enabled: false}}, patterns: [{name: a}, {name: consumer, backends: [sqlite, nats]}]",
            backend_not_enabled("nats", "consumer"),
        ),
        case(
            "the first of several patterns listing a missing backend is named",
            "backends: {redis: {}}, patterns: [{name: cache, backends: [redis]}, {name: stream, backends: [kafka]}, {name: replay, backends: [kafka]}]",
            backend_not_enabled("kafka", "stream"),
        ),
        case(
            "each missing backend is reported",
            "patterns: [{name: claimcheck, backends: [minio, postgres]}]",
            format!(
                "[{}, {}]",
                backend_not_enabled("postgres", "claimcheck"),
                backend_not_enabled("minio", "claimcheck")
            ),
        ),
        case(
            "admin on postgres without the postgres backend",
            "admin: {storage: {type: postgres}}",
            "spec: Invalid value: \"object\": admin.storage.type postgres needs the postgres backend: enable spec.backends.postgres",
        ),
        case(
            "admin on postgres with the postgres backend switched off",
            "admin: {storage: {type: postgres}}, backends: {postgres: {enabled: false}}",
            "spec: Invalid value: \"object\": admin.storage.type postgres needs the postgres backend: enable spec.backends.postgres",
        ),
        case(
            "two admin replicas on sqlite",
            "admin: {replicas: 2}",
            "spec.admin: Invalid value: \"object\": replicas > 1 needs storage.type postgres: admin replicas cannot share one sqlite file",
        ),
        case(
            "two patterns with one name",
            "patterns: [{name: kv}, {name: mailbox}, {name: kv, type: StatefulSet}]",
            "spec.patterns[2]: Duplicate value: map[string]interface {}{\"name\":\"kv\"}",
        ),
        case(
            "a pattern name with capitals and an underscore",
            "patterns: [{name: Key_Value}]",
            format!("spec.patterns[0].name: {DNS_1035}"),
        ),
        case(
            "a pattern name starting with a digit",
            "patterns: [{name: 1kv}]",
            format!("spec.patterns[0].name: {DNS_1035}"),
        ),
        case(
            "a pattern name ending with a dash",
            "patterns: [{name: kv-}]",
            format!("spec.patterns[0].name: {DNS_1035}"),
        ),
        case(
            "a pattern name too long for its StatefulSet's revision label",
            format!("patterns: [{{name: {long_name}}}]"),
            "spec.patterns[0].name: Invalid value: \"string\": must be at most 45 characters: a StatefulSet <name>-runner labels its pods controller-revision-hash=<name>-runner-<hash of up to 10 characters>, and label values are at most 63 characters",
        ),
        case(
            "a pattern name longer than a DNS label",
            format!("patterns: [{{name: {too_long_name}}}]"),
            format!(
                "[spec.patterns[0].name: Too long: may not be more than 63 bytes, {CEL_SKIPPED}]"
            ),
        ),
        case(
            "a pattern without a name",
            "patterns: [{replicas: 2}]",
            format!("[spec.patterns[0].name: Required value, {CEL_SKIPPED}]"),
        ),
        case(
            "more patterns than the bound",
            format!("patterns: [{}]", many_patterns.join(", ")),
            format!("[spec.patterns: Too many: 65: must have at most 64 items, {CEL_SKIPPED}]"),
        ),
        case(
            "a backend listed twice",
            "patterns: [{name: mailbox, backends: [sqlite, sqlite]}]",
            "spec.patterns[0].backends[1]: Duplicate value: \"sqlite\"",
        ),
        case(
            "an unknown backend",
            "patterns: [{name: kv, backends: [mysql]}]",
            format!(
                "[spec.patterns[0].backends[0]: Unsupported value: \"mysql\": supported values: \"redis\", \"nats\", \"postgres\", \"minio\", \"kafka\", \"sqlite\", {CEL_SKIPPED}]"
            ),
        ),
        case(
            "an unknown workload type",
            "patterns: [{name: kv, type: DaemonSet}]",
            format!(
                "[spec.patterns[0].type: Unsupported value: \"DaemonSet\": supported values: \"Deployment\", \"StatefulSet\", {CEL_SKIPPED}]"
            ),
        ),
        case(
            "storage on a Deployment pattern",
            "patterns: [{name: mailbox, backends: [sqlite], storage: {size: 1Gi}}]",
            "spec.patterns[0].storage: Invalid value: \"object\": storage needs type StatefulSet: the replicas of a Deployment cannot each have a volume of their own",
        ),
        case(
            "a pattern storage size that is no quantity",
            "patterns: [{name: mailbox, type: StatefulSet, storage: {size: lots}}]",
            format!("spec.patterns[0].storage.size: {QUANTITY}"),
        ),
        case(
            "a pattern storage size of zero",
            "patterns: [{name: mailbox, type: StatefulSet, storage: {size: '0'}}]",
            format!("spec.patterns[0].storage.size: {QUANTITY}"),
        ),
        case(
            "a negative admin storage size",
            "admin: {storage: {size: -1Gi}}",
            format!("spec.admin.storage.size: {QUANTITY}"),
        ),
        case(
            "a backend storage in bytes with a unit Kubernetes does not know",
            "backends: {redis: {storage: 1GB}}",
            format!("spec.backends.redis.storage: {QUANTITY}"),
        ),
        case(
            "negative pattern replicas",
            "patterns: [{name: kv, replicas: -1}]",
            "spec.patterns[0].replicas: Invalid value: -1: spec.patterns[0].replicas in body should be greater than or equal to 0",
        ),
        case(
            "negative proxy replicas",
            "proxy: {replicas: -2}",
            "spec.proxy.replicas: Invalid value: -2: spec.proxy.replicas in body should be greater than or equal to 0",
        ),
        case(
            "negative backend replicas",
            "backends: {minio: {replicas: -1}}",
            "spec.backends.minio.replicas: Invalid value: -1: spec.backends.minio.replicas in body should be greater than or equal to 0",
        ),
        case(
            "proxy autoscaling with minReplicas above maxReplicas",
            "proxy: {autoscaling: {minReplicas: 5, maxReplicas: 3}}",
            format!("spec.proxy.autoscaling: {MIN_MAX}"),
        ),
        case(
            "proxy autoscaling whose maxReplicas is below the default minReplicas",
            "proxy: {autoscaling: {maxReplicas: 1}}",
            format!("spec.proxy.autoscaling: {MIN_MAX}"),
        ),
        case(
            "pattern autoscaling with minReplicas above maxReplicas",
            "patterns: [{name: kv, autoscaling: {minReplicas: 4, maxReplicas: 2}}]",
            format!("spec.patterns[0].autoscaling: {MIN_MAX}"),
        ),
        case(
            "KEDA without triggers",
            "backends: {nats: {}}, patterns: [{name: consumer, backends: [nats], autoscaling: {scaler: keda}}]",
            format!("spec.patterns[0].autoscaling: {NEEDS_TRIGGER}"),
        ),
        case(
            "KEDA with an empty trigger list",
            "patterns: [{name: consumer, autoscaling: {scaler: keda, triggers: []}}]",
            format!("spec.patterns[0].autoscaling: {NEEDS_TRIGGER}"),
        ),
        case(
            "triggers with the HPA scaler",
            "patterns: [{name: consumer, autoscaling: {triggers: [{type: cpu, metadata: {value: '60'}}]}}]",
            format!("spec.patterns[0].autoscaling: {KEDA_ONLY}"),
        ),
        case(
            "a polling interval with the HPA scaler",
            "patterns: [{name: consumer, autoscaling: {scaler: hpa, pollingInterval: 30}}]",
            format!("spec.patterns[0].autoscaling: {KEDA_ONLY}"),
        ),
        case(
            "a CPU target with the KEDA scaler",
            "patterns: [{name: consumer, autoscaling: {scaler: keda, targetCPU: 70, triggers: [{type: cpu, metadata: {value: '70'}}]}}]",
            format!("spec.patterns[0].autoscaling: {HPA_ONLY}"),
        ),
        case(
            "scale to zero with the HPA scaler",
            "patterns: [{name: consumer, autoscaling: {minReplicas: 0}}]",
            "spec.patterns[0].autoscaling: Invalid value: \"object\": minReplicas 0 (scale to zero) needs scaler keda: an HPA keeps at least one replica",
        ),
        case(
            "an unknown scaler",
            "patterns: [{name: consumer, autoscaling: {scaler: vpa}}]",
            format!(
                "[spec.patterns[0].autoscaling.scaler: Unsupported value: \"vpa\": supported values: \"hpa\", \"keda\", {CEL_SKIPPED}]"
            ),
        ),
        case(
            "an even number of Kafka replicas",
            "backends: {kafka: {replicas: 2}}",
            "spec.backends.kafka: Invalid value: \"object\": kafka replicas must be 1 or an odd number: every replica is a KRaft controller, and the quorum needs a majority",
        ),
        case(
            "four Kafka replicas, even while switched off",
            "backends: {kafka: {enabled: false, replicas: 4}}",
            "spec.backends.kafka: Invalid value: \"object\": kafka replicas must be 1 or an odd number: every replica is a KRaft controller, and the quorum needs a majority",
        ),
        case(
            "a backend version that is no image tag",
            "backends: {redis: {version: '7 alpine'}}",
            "spec.backends.redis.version: Invalid value: \"string\": must be an image tag (letters, digits, '_', '.' and '-', not starting with '.' or '-'), such as 7-alpine",
        ),
        case(
            "a postgres database name that is no identifier",
            "backends: {postgres: {database: 1st-db}}",
            "spec.backends.postgres.database: Invalid value: \"string\": must be a PostgreSQL identifier: letters, digits and '_', not starting with a digit",
        ),
        case(
            "a credentials Secret name that is no DNS subdomain",
            "backends: {minio: {credentialsSecretRef: {name: Minio_Creds}}}",
            "spec.backends.minio.credentialsSecretRef.name: Invalid value: \"string\": must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.'), the name of an object in this namespace",
        ),
        case(
            "an ingress host with a port",
            "ingress: {host: 'prism.local:443'}",
            "spec.ingress.host: Invalid value: \"string\": must be a lowercase DNS name such as prism.local, optionally starting with '*.'; no IP address or port",
        ),
        case(
            "a scrape interval Prometheus cannot parse",
            "observability: {prometheus: {scrapeInterval: 30 seconds}}",
            "spec.observability.prometheus.scrapeInterval: Invalid value: \"string\": must be a Prometheus duration such as 30s, 1m or 1h30m",
        ),
        case(
            "an unknown admin storage type",
            "admin: {storage: {type: etcd}}",
            format!(
                "[spec.admin.storage.type: Unsupported value: \"etcd\": supported values: \"sqlite\", \"postgres\", {CEL_SKIPPED}]"
            ),
        ),
    ]
}
