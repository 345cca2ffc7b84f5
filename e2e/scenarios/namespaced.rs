//! An operator watching two namespaces (`fieldwise run --namespace a,b`): the FeatureStores there
//! become Ready, with their cluster-scoped children; the one in a third namespace is never touched
//! (no finalizer, no children, no status), and a change of a cluster-scoped child of that third
//! FeatureStore (as another operator watching it would make) enqueues nothing. At steady state the
//! operator writes nothing.

use fieldwise_apply::labels;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace, rbac::v1::ClusterRoleBinding};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    runtime::conditions,
};
use serde_json::json;

use crate::harness::{Cluster, NAMESPACE_LABEL, on_every_target, patience, wait_for};

on_every_target!(
    an_operator_watching_two_namespaces_leaves_a_third_alone,
    watching_two_namespaces,
    operator_started_by_scenario
);

/// The FeatureStore in each namespace: Kubernetes authorization, so it has cluster-scoped
/// children (its token-review ClusterRole and binding).
const STORE: &str = "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: store\nspec:\n  feastProject: scoped\n  authz:\n    kubernetes: {}\n";

async fn watching_two_namespaces(mut cluster: Cluster) {
    let a = cluster.namespace.clone();
    let (b, c) = (format!("{a}-b"), format!("{a}-c"));
    for namespace in [&b, &c] {
        labelled_namespace(&cluster, namespace).await;
    }
    cluster.start_operator_watching(&[&a, &b]);
    for namespace in [&a, &b, &c] {
        cluster.apply_yaml(STORE, namespace).await;
    }
    for namespace in [&a, &b] {
        let ready = cluster.wait_ready(namespace, "store").await;
        assert!(
            ready
                .finalizers()
                .iter()
                .any(|f| f == "feast.dev/fieldwise-cleanup")
        );
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let binding_of = |namespace: &str| format!("feast.{namespace}.store.token-review");
    bindings
        .get(&binding_of(&a))
        .await
        .expect("a's binding exists");
    untouched(&cluster, &c).await;
    assert!(
        bindings
            .get_opt(&binding_of(&c))
            .await
            .expect("get")
            .is_none()
    );

    // A child of c's FeatureStore, as another fieldwise watching c makes it.
    let fs_c = cluster
        .feature_stores(&c)
        .get("store")
        .await
        .expect("c's store");
    let foreign = foreign_binding(
        &binding_of(&c),
        &c,
        fs_c.uid().as_deref().unwrap_or_default(),
    );
    bindings
        .create(&PostParams::default(), &foreign)
        .await
        .expect("c's binding created");

    // Steady state: a change of that child and an unowned label on a's binding make a's
    // FeatureStore reconcile (a's change), and nothing is written.
    let (writes, reconciles) = (cluster.operator_writes(), cluster.reconciles());
    let label = |value: &str| json!({"metadata": {"labels": {"e2e.fieldwise.dev/touched": value}}});
    let merge = PatchParams::default();
    bindings
        .patch(&binding_of(&c), &merge, &Patch::Merge(label("1")))
        .await
        .expect("c's binding changed");
    bindings
        .patch(&binding_of(&a), &merge, &Patch::Merge(label("1")))
        .await
        .expect("a's binding changed");
    cluster.wait_reconciles(reconciles + 1).await;
    assert_eq!(
        cluster.operator_writes(),
        writes,
        "writes at steady state: {:?}",
        cluster.operator_requests_after(writes)
    );

    // Drift on a's binding, after another change of c's on the same watch: once a's is corrected,
    // c's change went through the operator's watch before it, and enqueued nothing (an enqueued
    // FeatureStore the operator does not cache would stay queued for ever).
    bindings
        .patch(&binding_of(&c), &merge, &Patch::Merge(label("2")))
        .await
        .expect("c's binding changed");
    let drift =
        json!({"subjects": [{"kind": "ServiceAccount", "name": "intruder", "namespace": a}]});
    bindings
        .patch(&binding_of(&a), &merge, &Patch::Merge(drift))
        .await
        .expect("a's binding drifted");
    let corrected = |binding: Option<&ClusterRoleBinding>| {
        binding
            .and_then(|b| b.subjects.as_ref())
            .is_some_and(|s| s.iter().all(|s| s.name == "feast-store"))
    };
    wait_for(&bindings, &binding_of(&a), corrected, "corrected").await;
    queue_empties(&cluster).await;
    untouched(&cluster, &c).await;

    clean_up(&mut cluster, &bindings, &binding_of(&c), &[&b, &c]).await;
}

/// Nothing of the operator's in `namespace`: its FeatureStore has no finalizer and no status,
/// and there is no child.
async fn untouched(cluster: &Cluster, namespace: &str) {
    let fs = cluster
        .feature_stores(namespace)
        .get("store")
        .await
        .expect("the store");
    assert!(
        fs.finalizers().is_empty(),
        "finalizers in {namespace}: {:?}",
        fs.finalizers()
    );
    assert!(
        fs.status.is_none(),
        "status in {namespace}: {:?}",
        fs.status
    );
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let managed = ListParams::default().labels(&labels::managed_selector());
    let children = deployments.list(&managed).await.expect("list");
    assert!(children.items.is_empty(), "children in {namespace}");
}

/// The featurestore work queue's depth, from the operator's metrics.
fn queue_depth(cluster: &Cluster) -> Option<f64> {
    let text = cluster.metrics.encode().expect("metrics encode");
    text.lines()
        .filter(|line| line.starts_with("fieldwise_work_queue_depth{"))
        .filter(|line| line.contains("controller=\"featurestore\""))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Waits until nothing is queued (metrics cannot be watched, so this polls them).
async fn queue_empties(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + patience();
    while queue_depth(cluster) != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the work queue keeps {:?} FeatureStores: one the operator does not watch was enqueued",
            queue_depth(cluster)
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn labelled_namespace(cluster: &Cluster, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}});
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    namespaces
        .patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("namespace applied");
}

/// A token-review binding labelled as the cluster-scoped child of FeatureStore `store` (uid
/// `uid`) in `namespace`.
fn foreign_binding(name: &str, namespace: &str, uid: &str) -> ClusterRoleBinding {
    let owner_kind = labels::owner_kind_value(
        &fieldwise_api::v1::FeatureStore::api_version(&()),
        &fieldwise_api::v1::FeatureStore::kind(&()),
    );
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            labels::MANAGED_BY: labels::MANAGED_BY_VALUE,
            labels::INSTANCE: "store",
            labels::OWNER_NAMESPACE: namespace,
            labels::OWNER_KIND: owner_kind,
            labels::OWNER_UID: uid,
        }},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "feast-store", "namespace": namespace}],
    }))
    .expect("a ClusterRoleBinding")
}

/// Removes what the scenario made beyond its own namespace (the harness cleans that one): the
/// FeatureStores in `namespaces` (the operator runs, so the watched one's finalizer runs), the
/// foreign binding, then the namespaces.
async fn clean_up(
    cluster: &mut Cluster,
    bindings: &Api<ClusterRoleBinding>,
    foreign: &str,
    namespaces: &[&str],
) {
    let _ = bindings.delete(foreign, &DeleteParams::default()).await;
    for namespace in namespaces {
        let stores = cluster.feature_stores(namespace);
        let deleted = stores.delete("store", &DeleteParams::default()).await;
        if let Ok(either) = deleted
            && let Some(uid) = either.left().and_then(|fs| fs.metadata.uid)
        {
            let gone = kube::runtime::wait::await_condition(
                stores.clone(),
                "store",
                conditions::is_deleted(&uid),
            );
            let _ = tokio::time::timeout(patience(), gone).await;
        }
    }
    cluster.stop_operator().await;
    if cluster.is_emulated() {
        return;
    }
    let all: Api<Namespace> = Api::all(cluster.client.clone());
    for namespace in namespaces {
        let _ = all.delete(namespace, &DeleteParams::background()).await;
    }
}
