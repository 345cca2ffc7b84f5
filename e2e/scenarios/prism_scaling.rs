//! PrismCluster autoscaling: the proxy hands `spec.replicas` to its HPA and takes them back without
//! a dip; a KEDA-scaled runner follows KEDA's HPA 1 → 5 → 2 while fieldwise never writes its
//! replicas. Every `spec.replicas` value is watched from the start.

use k8s_openapi::api::{apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{Patch, PatchParams},
    runtime::{conditions, wait::await_condition},
};
use serde_json::{Value, json};

use crate::harness::{
    Cluster, ReplicasHistory, USER, apply_keda_hpa, deployments, on_every_target, patience,
    replicas_owners, wait_for, wait_gone, wait_replicas,
};
use crate::prism::{apply_prism, phase_is};
use fieldwise_api::prism::{Phase, PrismCluster};

const NAME: &str = "scaled";
const PROXY: &str = "prism-proxy";
const PROXY_HPA: &str = "prism-proxy-hpa";
const RUNNER: &str = "consumer-runner";

fn hpas(cluster: &Cluster) -> Api<HorizontalPodAutoscaler> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

fn fieldwise_owns_replicas(deployment: &Deployment) -> bool {
    replicas_owners(deployment).contains(&"fieldwise/".to_owned())
}

fn proxy_spec(proxy: Value) -> Value {
    json!({"proxy": proxy, "backends": {"nats": {"enabled": true}}, "patterns": []})
}

on_every_target!(
    prism_proxy_autoscaling_on_and_off_without_a_dip,
    proxy_autoscaling
);

async fn proxy_autoscaling(cluster: Cluster) {
    let history = ReplicasHistory::start(&cluster, PROXY);
    apply_prism(&cluster, NAME, proxy_spec(json!({"replicas": 3}))).await;
    let proxy = wait_replicas(&cluster, PROXY, 3).await;
    assert!(
        fieldwise_owns_replicas(&proxy),
        "{:?}",
        replicas_owners(&proxy)
    );

    // Autoscaling on, 2..10, while the proxy runs 3: replicas are released at 3.
    let autoscaled = |min: i32| {
        proxy_spec(
            json!({"replicas": 3, "autoscaling": {"enabled": true, "minReplicas": min,
            "maxReplicas": 10, "targetCPU": 80, "targetMemory": 80}}),
        )
    };
    apply_prism(&cluster, NAME, autoscaled(2)).await;
    wait_for(
        &hpas(&cluster),
        PROXY_HPA,
        |h: Option<&HorizontalPodAutoscaler>| h.is_some(),
        "made",
    )
    .await;
    let released = wait_for(
        &deployments(&cluster),
        PROXY,
        |d: Option<&Deployment>| d.is_some_and(|d| !fieldwise_owns_replicas(d)),
        "released by fieldwise",
    )
    .await;
    assert_eq!(
        released.spec.and_then(|s| s.replicas),
        Some(3),
        "held while handing over"
    );

    // The HPA acts. Simulated: 3 pods at 200% of an 80% target → ceil(3 × 200 / 80) = 8. A real
    // cluster has no metrics here, but its HPA keeps replicas within the bounds: raise them.
    if cluster.is_emulated() {
        cluster
            .sims()
            .set_metric(&cluster.namespace, PROXY_HPA, 200.0);
    } else {
        apply_prism(&cluster, NAME, autoscaled(8)).await;
    }
    let scaled = wait_replicas(&cluster, PROXY, 8).await;
    assert!(
        !fieldwise_owns_replicas(&scaled),
        "{:?}",
        replicas_owners(&scaled)
    );

    // Autoscaling off: fieldwise takes replicas back at 3 and the HPA goes.
    if cluster.is_emulated() {
        cluster.sims().clear_metric(&cluster.namespace, PROXY_HPA);
    }
    apply_prism(&cluster, NAME, proxy_spec(json!({"replicas": 3}))).await;
    let restored = wait_replicas(&cluster, PROXY, 3).await;
    wait_gone(&hpas(&cluster), PROXY_HPA).await;
    assert!(fieldwise_owns_replicas(&restored));
    assert_eq!(
        history.values_ending(3).await,
        [Some(3), Some(8), Some(3)],
        "replicas never passed through another value"
    );
}

on_every_target!(
    prism_keda_scales_a_runner_without_fieldwise_writing_its_replicas,
    keda_runner
);

/// Simulated: KEDA makes the HPA of the runner's ScaledObject, which follows synthetic metrics. On a
/// real cluster: the KEDA CRD is installed (the operator restarted to see it) and the test makes
/// the HPA as KEDA would; the real HPA controller keeps replicas within bounds the test moves.
async fn keda_runner(mut cluster: Cluster) {
    install_keda(&mut cluster).await;
    let history = ReplicasHistory::start(&cluster, RUNNER);
    let spec = json!({"backends": {"nats": {"enabled": true}}, "patterns": [{
        "name": "consumer", "backends": ["nats"], "replicas": 1,
        "autoscaling": {"scaler": "keda", "minReplicas": 1, "maxReplicas": 8,
            "triggers": [{"type": "cpu", "metadata": {"type": "Utilization", "value": "70"}}]}}]});
    apply_prism(&cluster, NAME, spec).await;
    let clusters: Api<PrismCluster> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    wait_for(&clusters, NAME, phase_is(Phase::Running), "Running").await;
    let scaled_objects = cluster.dynamic_api(
        &fieldwise::prismcluster::kinds::scaled_object_resource(),
        Some(&cluster.namespace),
    );
    let scaled_object = scaled_objects
        .get(RUNNER)
        .await
        .expect("ScaledObject made by fieldwise");
    assert_eq!(scaled_object.data["spec"]["scaleTargetRef"]["name"], RUNNER);
    assert_eq!(scaled_object.data["spec"]["pollingInterval"], 10);
    assert_eq!(scaled_object.data["spec"]["cooldownPeriod"], 300);
    let keda_hpa = format!("{}{RUNNER}", fieldwise_e2e::sim::KEDA_HPA_PREFIX);
    if !cluster.is_emulated() {
        apply_keda_hpa(&cluster, &keda_hpa, runner_ref(), 1).await;
    }
    wait_for(
        &hpas(&cluster),
        &keda_hpa,
        |h: Option<&HorizontalPodAutoscaler>| h.is_some(),
        "made by KEDA",
    )
    .await;

    let writes_before = runner_writes(&cluster);
    // 1 → 5 → 2: ceil(1 × 350 / 70) = 5, then ceil(5 × 28 / 70) = 2.
    for (metric, replicas) in [(350.0, 5), (28.0, 2)] {
        if cluster.is_emulated() {
            cluster
                .sims()
                .set_metric(&cluster.namespace, &keda_hpa, metric);
        } else {
            apply_keda_hpa(&cluster, &keda_hpa, runner_ref(), replicas).await;
        }
        let runner = wait_replicas(&cluster, RUNNER, replicas).await;
        assert!(
            !fieldwise_owns_replicas(&runner),
            "{:?}",
            replicas_owners(&runner)
        );
    }
    assert_eq!(history.values_ending(2).await, [Some(1), Some(5), Some(2)]);
    assert_eq!(
        runner_writes(&cluster),
        writes_before,
        "fieldwise wrote the runner while KEDA scaled it"
    );
}

/// fieldwise's writes to Deployments (counted by the emulator; on a real cluster replicas
/// ownership and the watched history stand for it).
fn runner_writes(cluster: &Cluster) -> u64 {
    if !cluster.is_emulated() {
        return 0;
    }
    let counted = cluster.emulator().counters().snapshot();
    counted
        .into_iter()
        .filter(|(key, _)| {
            key.is_write() && key.field_manager == "fieldwise" && key.resource == "deployments"
        })
        .map(|(_, count)| count)
        .sum()
}

/// Makes KEDA's ScaledObject kind known to the operator: the simulator's CRD on the emulator; on a
/// real cluster the same CRD, then the operator restarted with the settings `fieldwise run` would
/// discover (it looks for KEDA once, at start).
async fn install_keda(cluster: &mut Cluster) {
    if cluster.is_emulated() {
        cluster
            .sims()
            .install_keda_crd()
            .expect("KEDA CRD installed");
    } else {
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(fieldwise_e2e::sim::SCALED_OBJECT_CRD).expect("CRD");
        let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
        crds.patch(
            "scaledobjects.keda.sh",
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("KEDA CRD applied");
        let established = await_condition(
            crds,
            "scaledobjects.keda.sh",
            conditions::is_crd_established(),
        );
        tokio::time::timeout(patience(), established)
            .await
            .expect("KEDA CRD established in time")
            .expect("CRD watch works");
    }
    let settings = fieldwise::cli::run::settings(&cluster.client).await;
    assert!(settings.keda_available, "the operator sees KEDA");
    cluster.restart_operator_with(settings).await;
}

/// The runner as the `scaleTargetRef` of KEDA's HPA.
fn runner_ref() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": RUNNER})
}
