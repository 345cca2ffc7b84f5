//! PrismCluster day 2: patterns added, removed, re-typed and resized, a backend enabled (rolling
//! exactly the runners that list it); a deleted or edited child restored with an Event that says
//! so; deleting the PrismCluster removes everything it made.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Service,
    events::v1::Event,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{
    Api, Resource,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    core::{ApiResource, DynamicObject},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, USER, on_every_target, patience, wait_for, wait_gone};
use crate::prism::phase_is;
use fieldwise_api::prism::{Phase, PrismCluster};

const NAME: &str = "day2";

fn clusters(cluster: &Cluster) -> Api<PrismCluster> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

/// Applies the PrismCluster with `spec`, as a user's `kubectl apply --server-side` would.
async fn apply_prism(cluster: &Cluster, spec: Value) {
    let body = json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismCluster",
        "metadata": {"name": NAME, "namespace": cluster.namespace}, "spec": spec});
    clusters(cluster)
        .patch(
            NAME,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("PrismCluster applied");
}

/// Waits until the PrismCluster is Running with `patterns` runners ready.
async fn wait_running(cluster: &Cluster, patterns: &str) -> PrismCluster {
    let expected = format!("{patterns}/{patterns}");
    let running = move |c: Option<&PrismCluster>| {
        phase_is(Phase::Running)(c)
            && c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.patterns_ready.as_deref())
                == Some(expected.as_str())
    };
    wait_for(&clusters(cluster), NAME, running, "Running").await
}

fn pattern(name: &str, backends: &[&str]) -> Value {
    json!({"name": name, "backends": backends})
}

fn spec(backends: &[&str], patterns: Vec<Value>) -> Value {
    let enabled: serde_json::Map<String, Value> = backends
        .iter()
        .map(|b| ((*b).to_owned(), json!({"enabled": true})))
        .collect();
    json!({"backends": enabled, "patterns": patterns})
}

/// The generation and the backends digest of a runner Deployment's pod template.
fn revision(deployment: &Deployment) -> (Option<i64>, Option<String>) {
    let digest = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("prism.io/backends-digest").cloned());
    (deployment.metadata.generation, digest)
}

async fn revisions(
    cluster: &Cluster,
    names: &[&str],
) -> BTreeMap<String, (Option<i64>, Option<String>)> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut found = BTreeMap::new();
    for name in names {
        let deployment = deployments.get(name).await.expect("runner Deployment");
        found.insert((*name).to_owned(), revision(&deployment));
    }
    found
}

on_every_target!(prism_runners_follow_their_patterns, runners_follow_patterns);

async fn runners_follow_patterns(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &namespace);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &namespace);
    let kv = |replicas: i32, type_: &str| json!({"name": "kv", "type": type_, "replicas": replicas, "backends": ["redis"]});
    let consumer = pattern("consumer", &["nats"]);
    let producer = pattern("producer", &["nats"]);
    apply_prism(
        &cluster,
        spec(
            &["redis", "nats"],
            vec![kv(2, "Deployment"), consumer.clone(), producer.clone()],
        ),
    )
    .await;
    wait_running(&cluster, "3").await;

    // Pattern replicas 2 → 3.
    apply_prism(
        &cluster,
        spec(
            &["redis", "nats"],
            vec![kv(3, "Deployment"), consumer.clone(), producer.clone()],
        ),
    )
    .await;
    let three = |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) == Some(3)
    };
    wait_for(&deployments, "kv-runner", three, "3 replicas").await;

    // Enabling Kafka, listed by `consumer` and by a new pattern, rolls exactly `consumer`.
    let before = revisions(
        &cluster,
        &["kv-runner", "consumer-runner", "producer-runner"],
    )
    .await;
    let consumer_with_kafka = pattern("consumer", &["nats", "kafka"]);
    let stream = pattern("stream", &["kafka"]);
    apply_prism(
        &cluster,
        spec(
            &["redis", "nats", "kafka"],
            vec![
                kv(3, "Deployment"),
                consumer_with_kafka.clone(),
                producer.clone(),
                stream.clone(),
            ],
        ),
    )
    .await;
    wait_running(&cluster, "4").await;
    let after = revisions(
        &cluster,
        &["kv-runner", "consumer-runner", "producer-runner"],
    )
    .await;
    for untouched in ["kv-runner", "producer-runner"] {
        assert_eq!(
            after[untouched], before[untouched],
            "{untouched} was rolled"
        );
    }
    assert_ne!(
        after["consumer-runner"].1, before["consumer-runner"].1,
        "consumer-runner lists kafka: its digest changes"
    );
    let consumer_env =
        serde_json::to_string(&deployments.get("consumer-runner").await.expect("consumer"))
            .expect("json");
    assert!(consumer_env.contains("KAFKA_BROKERS"), "{consumer_env}");
    deployments
        .get("stream-runner")
        .await
        .expect("stream runner made once Kafka is ready");

    // Re-typing `kv` as a StatefulSet replaces its Deployment; its Service becomes headless.
    apply_prism(
        &cluster,
        spec(
            &["redis", "nats", "kafka"],
            vec![
                kv(3, "StatefulSet"),
                consumer_with_kafka.clone(),
                producer,
                stream.clone(),
            ],
        ),
    )
    .await;
    wait_gone(&deployments, "kv-runner").await;
    wait_for(
        &stateful_sets,
        "kv-runner",
        |s: Option<&StatefulSet>| s.is_some(),
        "made",
    )
    .await;
    let headless = |s: Option<&Service>| {
        s.and_then(|s| s.spec.as_ref())
            .and_then(|s| s.cluster_ip.as_deref())
            == Some("None")
    };
    wait_for(&services, "kv-runner", headless, "headless").await;

    // Removing `producer` removes its runner and Service, nothing else.
    apply_prism(
        &cluster,
        spec(
            &["redis", "nats", "kafka"],
            vec![kv(3, "StatefulSet"), consumer_with_kafka, stream],
        ),
    )
    .await;
    wait_gone(&deployments, "producer-runner").await;
    wait_gone(&services, "producer-runner").await;
    let running = wait_running(&cluster, "3").await;
    let components = running.status.and_then(|s| s.patterns_ready);
    assert_eq!(components.as_deref(), Some("3/3"));
}

on_every_target!(
    prism_children_deleted_or_edited_by_hand_are_restored_and_reported,
    repairs_reported
);

async fn repairs_reported(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    apply_prism(&cluster, spec(&["redis"], vec![pattern("kv", &["redis"])])).await;
    let prism = wait_running(&cluster, "1").await;
    let uid = prism.meta().uid.clone();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &namespace);
    let first = deployments.get("prism-proxy").await.expect("proxy");

    // Someone deletes the proxy Deployment: it comes back, and an Event says why.
    deployments
        .delete("prism-proxy", &DeleteParams::default())
        .await
        .expect("deleted by hand");
    let old_uid = first.metadata.uid.clone();
    let recreated = move |d: Option<&Deployment>| d.is_some_and(|d| d.metadata.uid != old_uid);
    wait_for(&deployments, "prism-proxy", recreated, "recreated").await;

    // Someone edits its image: restored, and the Event names who changed it.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "evil/proxy:1"}]}}}});
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    deployments
        .patch("prism-proxy", &edit, &Patch::Strategic(&image))
        .await
        .expect("edited");
    let restored = |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref())
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.as_deref())
            .is_some_and(|image| image != "evil/proxy:1")
    };
    wait_for(&deployments, "prism-proxy", restored, "image restored").await;
    let notes = events_until(&cluster, uid.as_deref(), |notes| {
        notes.iter().any(|(reason, note)| {
            reason == "ChildRecreated" && note.contains("Deployment prism-proxy")
        }) && notes.iter().any(|(reason, note)| {
            reason == "DriftCorrected"
                && note.contains("Deployment prism-proxy")
                && note.contains("kubectl-edit")
                && note.contains("image")
        })
    })
    .await;
    assert!(
        notes.iter().any(|(reason, _)| reason == "ChildRecreated"),
        "no Event about the recreated proxy: {notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|(reason, note)| reason == "DriftCorrected" && note.contains("kubectl-edit")),
        "no Event naming the editor: {notes:?}"
    );

    // Deleting the PrismCluster removes everything it made.
    let children = owned_children(&cluster, uid.as_deref().unwrap_or_default()).await;
    assert!(children.len() > 5, "children before deletion: {children:?}");
    clusters(&cluster)
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&clusters(&cluster), NAME).await;
    for (resource, name) in children {
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &namespace, &resource);
        wait_gone(&api, &name).await;
    }
}

/// The (reason, note) of Events about the PrismCluster `uid`, watched until `enough` holds (or
/// the patience runs out).
async fn events_until(
    cluster: &Cluster,
    uid: Option<&str>,
    enough: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut stream = watcher(events, watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut notes = Vec::new();
    let collect = async {
        while let Some(Ok(event)) = stream.next().await {
            let about = event.regarding.as_ref().and_then(|r| r.uid.as_deref()) == uid;
            if let (true, Some(reason), Some(note)) = (about, event.reason, event.note) {
                notes.push((reason, note));
            }
            if enough(&notes) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(patience(), collect).await;
    notes
}

/// Every namespaced object labelled as a child of `owner_uid`, with its resource.
async fn owned_children(cluster: &Cluster, owner_uid: &str) -> Vec<(ApiResource, String)> {
    let kinds = [
        ("apps/v1", "StatefulSet", "statefulsets"),
        ("apps/v1", "Deployment", "deployments"),
        ("v1", "Service", "services"),
        ("v1", "ConfigMap", "configmaps"),
        ("v1", "Secret", "secrets"),
        ("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
    ];
    let selector = ListParams::default().labels(&format!("fieldwise.dev/owner-uid={owner_uid}"));
    let mut children = Vec::new();
    for (api_version, kind, plural) in kinds {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        };
        let api = cluster.dynamic_api(&resource, Some(&cluster.namespace));
        for object in api.list(&selector).await.expect("list").items {
            children.push((resource.clone(), object.metadata.name.unwrap_or_default()));
        }
    }
    children
}
