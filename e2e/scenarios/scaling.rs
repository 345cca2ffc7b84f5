//! Scaling and HA scenarios: fieldwise, the HPA and KEDA never fight over `spec.replicas`.
//!
//! Each scenario watches the feature-server Deployment from the start and asserts the whole sequence of
//! `spec.replicas` values it took, and who owns the field at the end.

use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, policy::v1::PodDisruptionBudget,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::harness::{
    Cluster, ReplicasHistory, USER, apply_keda_hpa, deployments, on_every_target, replicas_owners,
    wait_for, wait_gone, wait_replicas,
};

const NAME: &str = "fs";
const DEPLOYMENT: &str = "feast-fs";
const SECRETS: &str = include_str!("../../deploy/samples/feature-store-secrets.yaml");

/// A FeatureStore with DB-backed persistence (scaling requires it) and the given extra spec.
fn feature_store(namespace: &str, extra: Value) -> Value {
    let mut spec = json!({
        "feastProject": "p",
        "services": {
            "onlineStore": {"persistence": {"store": {"type": "postgres", "secretRef": {"name": "feast-data-stores"}}}},
            "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": "feast-data-stores"}}}}},
        },
    });
    merge(&mut spec, &extra);
    json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "metadata": {"name": NAME, "namespace": namespace}, "spec": spec})
}

fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                if value.is_null() {
                    base.remove(key);
                } else {
                    merge(base.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (base, extra) => *base = extra.clone(),
    }
}

async fn setup(cluster: &Cluster) {
    cluster.apply_yaml(SECRETS, &cluster.namespace).await;
}

async fn apply_feature_store(cluster: &Cluster, extra: Value) {
    let body = feature_store(&cluster.namespace, extra);
    cluster
        .feature_stores(&cluster.namespace)
        .patch(
            NAME,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("applied");
}

on_every_target!(
    static_replicas_hand_over_to_the_hpa_without_dropping_and_come_back,
    handover
);

async fn handover(cluster: Cluster) {
    setup(&cluster).await;
    let history = ReplicasHistory::start(&cluster, DEPLOYMENT);
    apply_feature_store(&cluster, json!({"replicas": 3})).await;
    let deployment = wait_replicas(&cluster, DEPLOYMENT, 3).await;
    assert_eq!(replicas_owners(&deployment), ["fieldwise/"]);

    // 1. static 3 → autoscaling 2..10 while live is 3.
    apply_feature_store(&cluster, json!({"replicas": null, "services": {"scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}}}}))
        .await;
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    wait_for(
        &hpas,
        DEPLOYMENT,
        |h: Option<&HorizontalPodAutoscaler>| h.is_some(),
        "created",
    )
    .await;
    let released = wait_for(
        &deployments(&cluster),
        DEPLOYMENT,
        |d: Option<&Deployment>| {
            d.is_some_and(|d| !replicas_owners(d).contains(&"fieldwise/".to_owned()))
        },
        "released by fieldwise",
    )
    .await;
    assert_eq!(
        released.spec.as_ref().and_then(|s| s.replicas),
        Some(3),
        "replicas held while handing over"
    );

    // 2. The HPA acts. Simulated: 3 replicas at 200% of an 80% target → ceil(3 × 200 / 80) = 8. A real
    // cluster here has no metrics, but its HPA controller keeps replicas within the bounds: raise them.
    if cluster.is_emulated() {
        cluster
            .sims()
            .set_metric(&cluster.namespace, DEPLOYMENT, 200.0);
    } else {
        apply_feature_store(&cluster, json!({"replicas": null, "services": {"scaling": {"autoscaling": {"minReplicas": 8, "maxReplicas": 10}}}}))
            .await;
    }
    let scaled = wait_replicas(&cluster, DEPLOYMENT, 8).await;
    assert!(
        !replicas_owners(&scaled).contains(&"fieldwise/".to_owned()),
        "fieldwise does not own replicas: {:?}",
        replicas_owners(&scaled)
    );
    assert_eq!(
        history.values_ending(8).await,
        [Some(3), Some(8)],
        "replicas never passed through the default"
    );

    // 3. autoscaling → static 3: fieldwise takes replicas back and the HPA goes.
    if cluster.is_emulated() {
        cluster.sims().clear_metric(&cluster.namespace, DEPLOYMENT);
    }
    apply_feature_store(
        &cluster,
        json!({"replicas": 3, "services": {"scaling": null}}),
    )
    .await;
    let restored = wait_replicas(&cluster, DEPLOYMENT, 3).await;
    wait_gone(&hpas, DEPLOYMENT).await;
    assert!(replicas_owners(&restored).contains(&"fieldwise/".to_owned()));
    assert_eq!(history.values_ending(3).await, [Some(3), Some(8), Some(3)]);
}

on_every_target!(
    reconciles_while_the_hpa_holds_replicas_never_write_them,
    hpa_holds_replicas
);

/// The HPA keeps replicas within [5, 10] (a real one does so without metrics too).
async fn hpa_holds_replicas(cluster: Cluster) {
    setup(&cluster).await;
    let history = ReplicasHistory::start(&cluster, DEPLOYMENT);
    apply_feature_store(
        &cluster,
        json!({"services": {"scaling": {"autoscaling": {"minReplicas": 5, "maxReplicas": 10}}}}),
    )
    .await;
    // The HPA keeps replicas within [5, 10]: it raises the default 1 to 5.
    let deployment = wait_replicas(&cluster, DEPLOYMENT, 5).await;
    assert!(!replicas_owners(&deployment).contains(&"fieldwise/".to_owned()));
    cluster.wait_ready(&cluster.namespace, NAME).await;
    // Settled: the status reports all 5 ready replicas (its last legitimate write).
    let settled = |fs: Option<&fieldwise_api::v1::FeatureStore>| {
        fs.and_then(|fs| fs.status.as_ref())
            .and_then(|s| s.replicas)
            == Some(5)
    };
    wait_for(
        &cluster.feature_stores(&cluster.namespace),
        NAME,
        settled,
        "5 ready replicas",
    )
    .await;
    let writes_before = fieldwise_writes(&cluster);
    let reconciles_before = cluster.reconciles();
    // 2. Force 100 reconciles: each poke of an owned child triggers its owner.
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    for poke in 0..100 {
        let label = json!({"metadata": {"labels": {"e2e/poke": poke.to_string()}}});
        config_maps
            .patch(
                "feast-fs-client",
                &PatchParams::apply("poker"),
                &Patch::Apply(&with_identity(&cluster.namespace, label)),
            )
            .await
            .expect("poked");
        cluster.wait_reconciles(reconciles_before + poke + 1).await;
    }
    assert_eq!(
        fieldwise_writes(&cluster),
        writes_before,
        "no write by fieldwise at all"
    );
    let deployment = wait_replicas(&cluster, DEPLOYMENT, 5).await;
    assert!(!replicas_owners(&deployment).contains(&"fieldwise/".to_owned()));
    assert_eq!(
        history.values_ending(5).await[1..],
        [Some(5)],
        "after the HPA's first write replicas stayed 5"
    );
}

/// fieldwise's write requests so far, by verb, resource and subresource as the emulator counts them (and
/// as the operator's client counts them, on any cluster).
fn fieldwise_writes(cluster: &Cluster) -> Vec<(String, u64)> {
    let on_its_client = ("requests sent".to_owned(), cluster.operator_writes());
    if !cluster.is_emulated() {
        return vec![on_its_client];
    }
    let counted = cluster.emulator().counters().snapshot();
    counted
        .into_iter()
        .filter(|(key, _)| key.is_write() && key.field_manager == "fieldwise")
        .map(|(key, count)| {
            (
                format!("{} {}/{}", key.verb, key.resource, key.subresource),
                count,
            )
        })
        .chain([on_its_client])
        .collect()
}

fn with_identity(namespace: &str, mut patch: Value) -> Value {
    merge(
        &mut patch,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "feast-fs-client", "namespace": namespace}}),
    );
    patch
}

on_every_target!(
    keda_scales_the_feature_store_through_its_scale_subresource,
    keda
);

/// KEDA's HPA scales the FeatureStore through its `/scale`. Simulated: KEDA makes the HPA of a
/// ScaledObject and the HPA follows synthetic metrics. On a real cluster: the test makes that HPA as KEDA
/// would and the real HPA controller (reading the FeatureStore's `/scale` and `status.selector`) keeps
/// replicas within bounds the test moves.
async fn keda(cluster: Cluster) {
    setup(&cluster).await;
    if cluster.is_emulated() {
        cluster
            .sims()
            .install_keda_crd()
            .expect("KEDA CRD installed");
    }
    let history = ReplicasHistory::start(&cluster, DEPLOYMENT);
    apply_feature_store(&cluster, json!({"replicas": 1})).await;
    wait_replicas(&cluster, DEPLOYMENT, 1).await;
    let keda_hpa = format!("keda-hpa-{NAME}");
    if cluster.is_emulated() {
        let scaled_object = json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": NAME, "namespace": cluster.namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": NAME},
                "minReplicaCount": 1, "maxReplicaCount": 8,
                "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}],
            },
        });
        cluster
            .apply_yaml(&scaled_object.to_string(), &cluster.namespace)
            .await;
    } else {
        apply_keda_hpa(&cluster, &keda_hpa, feature_store_ref(), 1).await;
    }
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    wait_for(
        &hpas,
        &keda_hpa,
        |h: Option<&HorizontalPodAutoscaler>| h.is_some(),
        "created by KEDA",
    )
    .await;

    // 4. 1 → 4 → 2 through the FeatureStore's /scale: ceil(1 × 280 / 70) = 4, then ceil(4 × 35 / 70) = 2.
    for (metric, replicas) in [(280.0, 4), (35.0, 2)] {
        if cluster.is_emulated() {
            cluster
                .sims()
                .set_metric(&cluster.namespace, &keda_hpa, metric);
        } else {
            apply_keda_hpa(&cluster, &keda_hpa, feature_store_ref(), replicas).await;
        }
        wait_replicas(&cluster, DEPLOYMENT, replicas).await;
        let status_follows = move |fs: Option<&fieldwise_api::v1::FeatureStore>| {
            fs.and_then(|fs| fs.status.as_ref())
                .and_then(|s| s.replicas)
                == Some(replicas)
        };
        wait_for(
            &cluster.feature_stores(&cluster.namespace),
            NAME,
            status_follows,
            "status.replicas follows",
        )
        .await;
    }
    assert_eq!(history.values_ending(2).await, [Some(1), Some(4), Some(2)]);
    let conflicts = cluster.metrics.encode().expect("metrics");
    assert!(
        !conflicts
            .lines()
            .any(|l| l.contains("outcome=\"conflict\"") && !l.ends_with(" 0")),
        "no conflict errors"
    );
}

on_every_target!(scale_writes_obey_the_persistence_rule, persistence_rule);

async fn persistence_rule(cluster: Cluster) {
    setup(&cluster).await;
    let file_backed = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": "file", "namespace": cluster.namespace}, "spec": {"feastProject": "p"}});
    let stores = cluster.feature_stores(&cluster.namespace);
    stores
        .patch(
            "file",
            &PatchParams::apply(USER),
            &Patch::Apply(&file_backed),
        )
        .await
        .expect("applied");
    // 5. `kubectl scale` sends a merge patch of the scale subresource.
    let scale = json!({"spec": {"replicas": 3}});
    let error = stores
        .patch_scale("file", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect_err("rejected");
    let message = error.to_string();
    assert!(
            message.contains("Scaling requires DB-backed persistence for the online store. Configure services.onlineStore.persistence.store when using replicas > 1 or autoscaling."),
            "{message}"
        );
    apply_feature_store(&cluster, json!({})).await;
    wait_replicas(&cluster, DEPLOYMENT, 1).await;
    stores
        .patch_scale(NAME, &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .expect("accepted with DB persistence");
    wait_replicas(&cluster, DEPLOYMENT, 3).await;
}

on_every_target!(pdb_spread_and_affinity_follow_scaling, pdb_spread_affinity);

async fn pdb_spread_affinity(cluster: Cluster) {
    setup(&cluster).await;
    let pdbs: Api<PodDisruptionBudget> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    apply_feature_store(
        &cluster,
        json!({"replicas": 1, "services": {"podDisruptionBudgets": {"maxUnavailable": 1}}}),
    )
    .await;
    let single = wait_replicas(&cluster, DEPLOYMENT, 1).await;
    assert!(
        pod_spec(&single).get("affinity").is_none()
            && pod_spec(&single).get("topologySpreadConstraints").is_none()
    );
    assert!(
        pdbs.get_opt(DEPLOYMENT).await.expect("readable").is_none(),
        "no PDB for one replica"
    );

    // 6. Scaling starts: PDB, spread and anti-affinity appear; it stops: they go.
    let pdb = json!({"podDisruptionBudgets": {"maxUnavailable": 1}});
    apply_feature_store(&cluster, json!({"replicas": 3, "services": pdb.clone()})).await;
    wait_for(
        &pdbs,
        DEPLOYMENT,
        |p: Option<&PodDisruptionBudget>| p.is_some(),
        "created",
    )
    .await;
    let scaled = wait_replicas(&cluster, DEPLOYMENT, 3).await;
    assert_eq!(
        pod_spec(&scaled)["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(
        pod_spec(&scaled)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            [0]["weight"],
        100
    );

    apply_feature_store(&cluster, json!({"replicas": 1, "services": pdb})).await;
    wait_gone(&pdbs, DEPLOYMENT).await;
    let single = wait_replicas(&cluster, DEPLOYMENT, 1).await;
    assert!(
        pod_spec(&single).get("affinity").is_none(),
        "anti-affinity removed: {}",
        pod_spec(&single)
    );
    assert!(
        pod_spec(&single).get("topologySpreadConstraints").is_none(),
        "spread removed"
    );
}

fn pod_spec(deployment: &Deployment) -> Value {
    let value = serde_json::to_value(deployment).expect("JSON");
    value
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The FeatureStore as the `scaleTargetRef` of KEDA's HPA.
fn feature_store_ref() -> Value {
    json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": NAME})
}
