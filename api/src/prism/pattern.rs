//! `spec.patterns[]`: pattern runners, each a Deployment or StatefulSet `<name>-runner` with a Service,
//! scaled statically, by an HPA or by KEDA.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec},
    core::v1::ResourceRequirements,
};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::rules;

/// One pattern runner.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::resources)]
#[x_kube(validation = kube::core::Rule::new("!has(self.storage) || self.type == 'StatefulSet'")
    .field_path(".storage")
    .message("storage needs type StatefulSet: the replicas of a Deployment cannot each have a volume of their own"))]
pub struct PatternSpec {
    /// The pattern, e.g. `keyvalue`; its objects are called `<name>-runner`.
    #[schemars(length(max = rules::MAX_DNS_LABEL))]
    #[x_kube(validation = rules::dns_label(), validation = rules::pattern_name_length())]
    pub name: String,
    #[serde(rename = "type", default)]
    pub workload: PatternType,
    /// Replicas while autoscaling is off; with autoscaling on, the autoscaler owns the count.
    #[serde(default = "defaults::one")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// The backing services the runner connects to; each must be enabled in `spec.backends`
    /// (`sqlite` is a local file and needs none).
    #[serde(default)]
    #[schemars(length(max = PatternBackend::ALL.len()))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Set)]
    pub backends: Vec<PatternBackend>,
    /// A volume per replica (`type: StatefulSet` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<PatternStorage>,
    #[serde(default = "defaults::small_resources")]
    pub resources: ResourceRequirements,
    /// Defaults to `<name>-runner:latest` ([`PatternSpec::image_or_default`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<PatternAutoscaling>,
}

impl PatternSpec {
    /// A pattern called `name` with every default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workload: PatternType::default(),
            replicas: defaults::one(),
            backends: Vec::new(),
            storage: None,
            resources: defaults::small_resources(),
            image: None,
            autoscaling: None,
        }
    }

    /// `<name>-runner`: the name of the runner's workload, Service and autoscaler.
    pub fn runner_name(&self) -> String {
        format!("{}{}", self.name, defaults::RUNNER_SUFFIX)
    }

    /// The image, or `<name>-runner:latest`.
    pub fn image_or_default(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{}:latest", self.runner_name()))
    }

    /// The autoscaling block when it is switched on.
    pub fn active_autoscaling(&self) -> Option<&PatternAutoscaling> {
        self.autoscaling.as_ref().filter(|a| a.enabled)
    }
}

/// The runner's workload kind.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PatternType {
    #[default]
    Deployment,
    StatefulSet,
}

/// A backend a pattern uses.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PatternBackend {
    Redis,
    Nats,
    Postgres,
    Minio,
    Kafka,
    /// A local sqlite file: no backend object.
    Sqlite,
}

impl PatternBackend {
    /// Every backend, in the order of `spec.backends`.
    pub const ALL: [PatternBackend; 6] = [
        Self::Redis,
        Self::Nats,
        Self::Postgres,
        Self::Minio,
        Self::Kafka,
        Self::Sqlite,
    ];

    /// The name as written in the spec (and of the backend's objects).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Nats => "nats",
            Self::Postgres => "postgres",
            Self::Minio => "minio",
            Self::Kafka => "kafka",
            Self::Sqlite => "sqlite",
        }
    }
}

/// The per-replica volume of a StatefulSet pattern.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PatternStorage {
    #[serde(default = "defaults::pattern_storage_size")]
    #[schemars(length(max = rules::MAX_SHORT_STRING))]
    #[x_kube(validation = rules::storage_size())]
    pub size: String,
}

impl Default for PatternStorage {
    fn default() -> Self {
        Self {
            size: defaults::pattern_storage_size(),
        }
    }
}

/// Autoscaling of one runner by an HPA (`scaler: hpa`) or a KEDA ScaledObject (`scaler: keda`),
/// as in the Go prototype's AutoscalingSpec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = super::schema::autoscaling)]
#[x_kube(validation = rules::min_not_above_max())]
#[x_kube(validation = kube::core::Rule::new("self.scaler != 'keda' || (has(self.triggers) && size(self.triggers) > 0)")
    .message("scaler keda needs at least one trigger"))]
#[x_kube(validation = kube::core::Rule::new("self.scaler == 'keda' || !(has(self.triggers) || has(self.pollingInterval) || has(self.cooldownPeriod))")
    .message("triggers, pollingInterval and cooldownPeriod are KEDA settings: they need scaler keda"))]
#[x_kube(validation = kube::core::Rule::new("self.scaler == 'hpa' || !(has(self.targetCPU) || has(self.targetMemory) || has(self.metrics))")
    .message("targetCPU, targetMemory and metrics are HPA settings: with scaler keda, scale on triggers (such as type cpu or memory)"))]
#[x_kube(validation = kube::core::Rule::new("self.minReplicas >= 1 || self.scaler == 'keda'")
    .message("minReplicas 0 (scale to zero) needs scaler keda: an HPA keeps at least one replica"))]
pub struct PatternAutoscaling {
    /// The block switches autoscaling on; `enabled: false` keeps the settings but turns it off.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub scaler: Scaler,
    #[serde(default = "defaults::pattern_min_replicas")]
    #[schemars(range(min = 0))]
    pub min_replicas: i32,
    #[serde(default = "defaults::pattern_max_replicas")]
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation target in percent (HPA).
    #[serde(rename = "targetCPU", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_cpu: Option<i32>,
    /// Average memory utilisation target in percent (HPA).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_memory: Option<i32>,
    /// Further HPA metrics, after the CPU and memory targets; with none at all the HPA scales on 80% CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
    /// Scaling behaviour (the HPA's, or KEDA's `advanced.horizontalPodAutoscalerConfig.behavior`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    /// KEDA triggers, carried to the ScaledObject as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = rules::MAX_TRIGGERS))]
    pub triggers: Option<Vec<KedaTrigger>>,
    /// Seconds between KEDA's checks of the triggers (KEDA: 10 when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,
    /// Seconds KEDA waits after the last active trigger before scaling to `minReplicas` 0 (KEDA: 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cooldown_period: Option<i32>,
}

impl PatternAutoscaling {
    /// The polling interval KEDA gets: the spec's, or [`defaults::KEDA_POLLING_INTERVAL`].
    pub fn polling_interval_or_default(&self) -> i32 {
        self.polling_interval
            .unwrap_or(defaults::KEDA_POLLING_INTERVAL)
    }

    /// The cooldown period KEDA gets: the spec's, or [`defaults::KEDA_COOLDOWN_PERIOD`].
    pub fn cooldown_period_or_default(&self) -> i32 {
        self.cooldown_period
            .unwrap_or(defaults::KEDA_COOLDOWN_PERIOD)
    }
}

impl Default for PatternAutoscaling {
    fn default() -> Self {
        Self {
            enabled: defaults::enabled(),
            scaler: Scaler::default(),
            min_replicas: defaults::pattern_min_replicas(),
            max_replicas: defaults::pattern_max_replicas(),
            target_cpu: None,
            target_memory: None,
            metrics: None,
            behavior: None,
            triggers: None,
            polling_interval: None,
            cooldown_period: None,
        }
    }
}

/// Who scales a runner.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scaler {
    /// An `autoscaling/v2` HorizontalPodAutoscaler owned by the PrismCluster.
    #[default]
    Hpa,
    /// A KEDA ScaledObject (`keda.sh/v1alpha1`) owned by the PrismCluster.
    Keda,
}

/// A KEDA trigger (`ScaledObject.spec.triggers[]`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KedaTrigger {
    /// The scaler, e.g. `nats-jetstream`, `kafka`, `cpu`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub trigger_type: String,
    /// The scaler's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<KedaAuthenticationRef>,
}

/// A KEDA TriggerAuthentication (or ClusterTriggerAuthentication) holding the trigger's credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KedaAuthenticationRef {
    #[schemars(length(min = 1))]
    pub name: String,
    /// `TriggerAuthentication` (KEDA's default) or `ClusterTriggerAuthentication`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<KedaAuthenticationKind>,
}

/// The kind of a KEDA authentication reference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KedaAuthenticationKind {
    TriggerAuthentication,
    ClusterTriggerAuthentication,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_is_named_and_imaged_after_its_pattern() {
        let mut pattern = PatternSpec::new("consumer");
        assert_eq!(pattern.runner_name(), "consumer-runner");
        assert_eq!(pattern.image_or_default(), "consumer-runner:latest");
        pattern.image = Some("ghcr.io/prism/consumer-runner:1.2".into());
        assert_eq!(
            pattern.image_or_default(),
            "ghcr.io/prism/consumer-runner:1.2"
        );
    }

    #[test]
    fn keda_timing_defaults_apply_only_where_unset() {
        let mut autoscaling = PatternAutoscaling {
            scaler: Scaler::Keda,
            ..Default::default()
        };
        assert_eq!(autoscaling.polling_interval_or_default(), 10);
        assert_eq!(autoscaling.cooldown_period_or_default(), 300);
        autoscaling.polling_interval = Some(30);
        autoscaling.cooldown_period = Some(0);
        assert_eq!(autoscaling.polling_interval_or_default(), 30);
        assert_eq!(autoscaling.cooldown_period_or_default(), 0);
    }

    #[test]
    fn switched_off_autoscaling_is_not_active() {
        let mut pattern = PatternSpec::new("kv");
        assert!(pattern.active_autoscaling().is_none());
        pattern.autoscaling = Some(PatternAutoscaling::default());
        assert!(pattern.active_autoscaling().is_some());
        pattern.autoscaling = Some(PatternAutoscaling {
            enabled: false,
            ..Default::default()
        });
        assert!(pattern.active_autoscaling().is_none());
    }

    #[test]
    fn backend_names_are_the_spec_spelling() {
        for backend in PatternBackend::ALL {
            let spelled = serde_json::to_value(backend).expect("serialises");
            assert_eq!(spelled, backend.as_str());
        }
    }
}
