//! In a namespace labelled `pod-security.kubernetes.io/enforce: restricted` (enforced by the real
//! kube-apiserver's PodSecurity admission, and by the emulator's), a FeatureStore with its init
//! containers becomes Ready and a Job made from its CronJob completes, and a PrismCluster with five
//! backends and six pattern runners becomes Running: every pod fieldwise's objects make is admitted.

use fieldwise_api::prism::{Phase, PrismCluster};
use k8s_openapi::api::{
    batch::v1::{CronJob, Job},
    core::v1::{Event, Namespace, Pod, ServiceAccount},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::conditions,
};
use serde_json::json;

use crate::harness::{Cluster, NAMESPACE_LABEL, on_every_target, wait_for};
use crate::prism::{apply_prism, phase_is};

/// The field manager of the namespace's labels (the harness applies its own as the user).
const ADMIN: &str = "e2e-namespace-admin";

on_every_target!(
    a_feature_store_and_a_prism_cluster_run_in_a_restricted_namespace,
    restricted_namespace
);

async fn restricted_namespace(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let labels = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace,
        "labels": {NAMESPACE_LABEL: "true", "pod-security.kubernetes.io/enforce": "restricted"}}});
    namespaces
        .patch(
            &namespace,
            &PatchParams::apply(ADMIN).force(),
            &Patch::Apply(&labels),
        )
        .await
        .expect("namespace labelled");
    enforcement_is_on(&cluster).await;

    // A FeatureStore with the init containers (feast-init, feast-apply) and its CronJob.
    cluster
        .apply_yaml(
            "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: locked\nspec:\n  feastProject: locked_down\n  services:\n    securityContext:\n      fsGroup: 2000\n",
            &namespace,
        )
        .await;
    let ready = cluster.wait_ready(&namespace, "locked").await;
    assert!(ready.status.is_some());
    let cron_jobs: Api<CronJob> = Api::namespaced(cluster.client.clone(), &namespace);
    let cron_job = cron_jobs.get("feast-locked").await.expect("the CronJob");
    let template = cron_job
        .spec
        .expect("a spec")
        .job_template
        .spec
        .expect("a job spec");
    let pod_spec = template.template.spec.as_ref().expect("a pod spec");
    assert!(
        pod_spec
            .init_containers
            .as_ref()
            .is_some_and(|c| !c.is_empty()),
        "the default commands run as an init container and a container"
    );
    // As `kubectl create job --from=cronjob/feast-locked` would: its pods are admitted and run.
    let job: Job = serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "feast-locked-manual",
                     "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
        "spec": template}))
    .expect("a Job");
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &namespace);
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("the Job is created");
    wait_for(
        &jobs,
        "feast-locked-manual",
        conditions::is_job_completed(),
        "Complete",
    )
    .await;

    // A PrismCluster with every backend and runners of both kinds.
    let spec = json!({
        "admin": {"storage": {"type": "postgres"}},
        "backends": {"redis": {}, "nats": {}, "postgres": {}, "minio": {}, "kafka": {}},
        "patterns": [
            {"name": "keyvalue", "backends": ["redis"]},
            {"name": "consumer", "backends": ["nats"]},
            {"name": "mailbox", "type": "StatefulSet", "backends": ["nats", "sqlite"], "storage": {}},
            {"name": "timeseries", "backends": ["postgres"]},
            {"name": "claimcheck", "backends": ["minio", "redis"]},
            {"name": "stream", "backends": ["kafka"]},
        ],
    });
    apply_prism(&cluster, "locked", spec).await;
    let prism_clusters: Api<PrismCluster> = Api::namespaced(cluster.client.clone(), &namespace);
    let running = wait_for(
        &prism_clusters,
        "locked",
        phase_is(Phase::Running),
        "Running",
    )
    .await;
    let status = running.status.expect("a status");
    assert_eq!(status.backends_ready.as_deref(), Some("5/5"));
    assert_eq!(status.patterns_ready.as_deref(), Some("6/6"));

    // No pod creation was refused (kube-controller-manager records each refusal as an Event).
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &namespace);
    let refused: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .map(|e| e.message.unwrap_or_default())
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// The namespace refuses a bare pod, with PodSecurity's message: the level is enforced.
async fn enforcement_is_on(cluster: &Cluster) {
    let namespace = &cluster.namespace;
    if !cluster.is_emulated() {
        // Pods name the `default` ServiceAccount, which the cluster's controller makes.
        let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
        wait_for(
            &accounts,
            "default",
            |sa: Option<&ServiceAccount>| sa.is_some(),
            "created",
        )
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let bare: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/app:1"}]}}))
    .expect("a Pod");
    match pods.create(&PostParams::default(), &bare).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.starts_with(
                    "pods \"bare\" is forbidden: violates PodSecurity \"restricted:latest\": "
                ),
                "{}",
                status.message
            );
        }
        other => panic!("a bare pod was not refused: {other:?}"),
    }
}
