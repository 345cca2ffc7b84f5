//! PrismCluster day 2: patterns added, removed, re-typed and resized, a backend enabled (rolling
//! exactly the runners that list it); a deleted or edited child restored with an Event that says
//! so; deleting the PrismCluster removes everything it made.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::Service,
};
use kube::{
    Api, Resource,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    core::{ApiResource, DynamicObject},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, events_until, on_every_target, patience, wait_for, wait_gone};
use crate::prism::{apply_prism, phase_is};
use fieldwise_api::prism::{Phase, PrismCluster};

const NAME: &str = "day2";

fn clusters(cluster: &Cluster) -> Api<PrismCluster> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
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
    let awaited = kube::runtime::wait::await_condition(clusters(cluster), NAME, running);
    match tokio::time::timeout(patience(), awaited).await {
        Ok(Ok(Some(running))) => running,
        other => {
            let now = clusters(cluster)
                .get(NAME)
                .await
                .ok()
                .and_then(|c| c.status);
            panic!("{NAME} not Running with {patterns} runners ({other:?}); status: {now:#?}")
        }
    }
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
        NAME,
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
        NAME,
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
        NAME,
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
        NAME,
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
        NAME,
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
    apply_prism(
        &cluster,
        NAME,
        spec(&["redis"], vec![pattern("kv", &["redis"])]),
    )
    .await;
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

on_every_target!(prism_adopts_a_stack_installed_by_hand, adoption);

/// A Prism stack installed by hand from manifests (the ADR's names and labels, no owner) is taken
/// over: what matches is adopted in place (same object, so no downtime), and a StatefulSet whose
/// claim templates differ is replaced by its kind's remedy (its pods kept) with an Event saying so.
async fn adoption(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let hand_made = [
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "prism-admin", "namespace": namespace, "labels": {"app": "prism-admin"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "prism-admin"}},
                "template": {"metadata": {"labels": {"app": "prism-admin"}},
                    "spec": {"containers": [{"name": "admin", "image": "prism-admin:hand-made"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "prism-admin", "namespace": namespace},
            "spec": {"selector": {"app": "prism-admin"}, "ports": [{"name": "grpc", "port": 8981}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "redis", "namespace": namespace, "labels": {"app": "redis"}},
            "spec": {"replicas": 1, "serviceName": "redis", "selector": {"matchLabels": {"app": "redis"}},
                "template": {"metadata": {"labels": {"app": "redis"}},
                    "spec": {"containers": [{"name": "redis", "image": "redis:6"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "redis", "namespace": namespace},
            "spec": {"clusterIP": "None", "selector": {"app": "redis"}, "ports": [{"name": "redis", "port": 6379}]}}),
    ];
    for object in &hand_made {
        cluster.apply_yaml(&object.to_string(), &namespace).await;
    }
    let mut uids = BTreeMap::new();
    for (resource, name) in hand_made_objects() {
        let uid = uid_of(&cluster, &resource, &name).await;
        uids.insert(format!("{}/{name}", resource.kind), uid);
    }

    apply_prism(
        &cluster,
        NAME,
        spec(&["redis"], vec![pattern("kv", &["redis"])]),
    )
    .await;
    let prism = wait_running(&cluster, "1").await;
    let owner_uid = prism.meta().uid.clone().unwrap_or_default();

    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &namespace);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &namespace);
    let admin = deployments.get("prism-admin").await.expect("admin");
    let admin_service = services.get("prism-admin").await.expect("admin Service");
    let redis_service = services.get("redis").await.expect("redis Service");
    for (key, meta) in [
        ("Deployment/prism-admin", &admin.metadata),
        ("Service/prism-admin", &admin_service.metadata),
        ("Service/redis", &redis_service.metadata),
    ] {
        assert_eq!(
            meta.uid.as_ref(),
            uids.get(key),
            "{key} was replaced, not adopted"
        );
        assert_owned_by_fieldwise(key, meta, &owner_uid);
    }
    let image = admin
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_ne!(
        image.as_deref(),
        Some("prism-admin:hand-made"),
        "the admin runs fieldwise's image"
    );

    let redis = stateful_sets.get("redis").await.expect("redis");
    assert_ne!(
        redis.metadata.uid.as_ref(),
        uids.get("StatefulSet/redis"),
        "claim templates differ: replaced"
    );
    assert_owned_by_fieldwise("StatefulSet/redis", &redis.metadata, &owner_uid);
    let notes = events_until(&cluster, Some(&owner_uid), |notes| {
        notes
            .iter()
            .any(|(reason, note)| reason == "ChildReplaced" && note.contains("StatefulSet redis"))
    })
    .await;
    let replaced = notes.iter().find(|(reason, _)| reason == "ChildReplaced");
    assert!(
        replaced.is_some_and(|(_, note)| note.contains("volumeClaimTemplates")),
        "no Event naming the replaced StatefulSet's field: {notes:?}"
    );
}

/// `meta` is managed by fieldwise's apply and owned by the PrismCluster `owner_uid`.
fn assert_owned_by_fieldwise(
    key: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    owner_uid: &str,
) {
    let owners: Vec<&str> = meta
        .owner_references
        .iter()
        .flatten()
        .map(|o| o.uid.as_str())
        .collect();
    assert_eq!(owners, [owner_uid], "{key}: owner references");
    let applied_by_fieldwise = meta.managed_fields.iter().flatten().any(|e| {
        e.manager.as_deref() == Some("fieldwise") && e.operation.as_deref() == Some("Apply")
    });
    assert!(applied_by_fieldwise, "{key}: no apply entry of fieldwise");
}

/// The hand-made objects of the adoption scenario.
fn hand_made_objects() -> Vec<(ApiResource, String)> {
    let resource = |api_version: &str, kind: &str, plural: &str| {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        }
    };
    vec![
        (
            resource("apps/v1", "Deployment", "deployments"),
            "prism-admin".to_owned(),
        ),
        (
            resource("v1", "Service", "services"),
            "prism-admin".to_owned(),
        ),
        (
            resource("apps/v1", "StatefulSet", "statefulsets"),
            "redis".to_owned(),
        ),
        (resource("v1", "Service", "services"), "redis".to_owned()),
    ]
}

async fn uid_of(cluster: &Cluster, resource: &ApiResource, name: &str) -> String {
    let api = cluster.dynamic_api(resource, Some(&cluster.namespace));
    let object = api.get(name).await.expect("hand-made object");
    object.metadata.uid.unwrap_or_default()
}
