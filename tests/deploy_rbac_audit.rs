//! Runs the operator against the emulator through FeatureStores that exercise every kind of child and the
//! finalizer, and checks every request it made is granted by the generated ClusterRole.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use fieldwise::{
    deploy::rbac::{self, Permission},
    runtime::{RunOptions, run},
};
use fieldwise_api::v1::FeatureStore;
use fieldwise_e2e::{Emulator, Options};
use fieldwise_observability::{Health, Metrics};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::json;

const NAMESPACE: &str = "team";
const PATIENCE: Duration = Duration::from_secs(60);

/// Kubernetes authorization (Roles, ClusterRoles and bindings), OIDC, HPA and PDB, a CronJob and PVCs.
fn feature_stores() -> Vec<serde_json::Value> {
    let kubernetes_auth = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "kube-auth", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "authz": {"kubernetes": {"roles": ["feast-reader"]}},
            "services": {"onlineStore": {"server": {}}, "registry": {"local": {"server": {}}}, "ui": {}},
        },
    });
    let oidc_scaled = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "oidc-scaled", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "authz": {"oidc": {"secretRef": {"name": "oidc-secret"}}},
            "services": {
                "scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
                "podDisruptionBudgets": {"minAvailable": 1},
                "onlineStore": {"persistence": {"store": {"type": "postgres", "secretRef": {"name": "stores"}}}},
                "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": "stores"}}}}},
            },
        },
    });
    let pvc = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "pvc", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "services": {"onlineStore": {"persistence": {"file": {
                "path": "online_store.db",
                "pvc": {"create": {}, "mountPath": "/data/online"},
            }}}},
        },
    });
    vec![kubernetes_auth, oidc_scaled, pvc]
}

fn secrets() -> Vec<Secret> {
    let secret = |name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": data,
        }))
        .expect("secret")
    };
    vec![
        secret(
            "oidc-secret",
            json!({"client_id": "id", "auth_discovery_url": "https://idp.example.com/.well-known"}),
        ),
        secret(
            "stores",
            json!({"postgres": "host: db\n", "sql": "path: postgresql://db\n"}),
        ),
    ]
}

#[test]
fn every_request_the_operator_makes_is_granted() {
    // The in-process emulator and the FeatureStore type need deep stacks in unoptimised builds.
    fieldwise_e2e::testkit::block_on(scenario());
}

async fn scenario() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    setup(&client).await;
    emulator.counters().reset();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        debounce: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let operator = tokio::spawn(run(
        client.clone(),
        options,
        Arc::new(Metrics::new()),
        Health::new(),
        async move {
            let _ = stopped.await;
        },
    ));
    let stores: Api<FeatureStore> = Api::namespaced(client.clone(), NAMESPACE);
    for store in feature_stores() {
        let store: FeatureStore = serde_json::from_value(store).expect("FeatureStore");
        stores
            .create(&PostParams::default(), &store)
            .await
            .expect("FeatureStore created");
    }
    for store in feature_stores() {
        let name = store["metadata"]["name"].as_str().expect("name").to_owned();
        let reconciled = |fs: Option<&FeatureStore>| {
            fs.and_then(|fs| fs.status.as_ref())
                .is_some_and(|s| s.phase.is_some())
        };
        let waited =
            tokio::time::timeout(PATIENCE, await_condition(stores.clone(), &name, reconciled))
                .await;
        waited.expect("reconciled in time").expect("watch");
    }
    // Deleting runs the finalizer: cluster-scoped children are removed by the operator.
    let deleted = stores
        .delete("kube-auth", &DeleteParams::default())
        .await
        .expect("delete");
    let uid = deleted
        .left()
        .and_then(|fs| fs.metadata.uid)
        .unwrap_or_default();
    let gone = await_condition(stores.clone(), "kube-auth", conditions::is_deleted(&uid));
    tokio::time::timeout(PATIENCE, gone)
        .await
        .expect("finalizer removed in time")
        .expect("watch");
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, operator)
        .await
        .expect("operator stops")
        .expect("joins")
        .expect("runs");

    let used = used_permissions(&emulator);
    let granted = rbac::permissions(&rbac::cluster_rules());
    let missing: Vec<&Permission> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the operator made requests its ClusterRole does not grant: {missing:?}"
    );
    // The graph binds the shipped ClusterRoles: the operator never touches a ClusterRole (it may only
    // bind those and read the Feast operator's, which a new FeatureStore does not look for).
    let on_cluster_roles: Vec<&Permission> = used
        .iter()
        .filter(|(_, r, _)| r == "clusterroles")
        .collect();
    assert!(
        on_cluster_roles.is_empty(),
        "the operator called {on_cluster_roles:?}"
    );
    // The scenario reached status writes and the finalizer's cleanup of cluster-scoped children.
    for expected in [
        ("feast.dev", "featurestores/status", "patch"),
        ("rbac.authorization.k8s.io", "clusterrolebindings", "patch"),
        ("rbac.authorization.k8s.io", "clusterrolebindings", "delete"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(
            used.contains(&expected),
            "the scenario did not exercise {expected:?}; used {used:?}"
        );
    }
}

async fn setup(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in fieldwise_api::crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD installs");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    for secret in secrets() {
        secret_api
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
}

/// What was called since the reset, minus the test's own FeatureStore creates and delete.
fn used_permissions(emulator: &fieldwise_e2e::EmulatorHandle) -> BTreeSet<Permission> {
    let test_calls = [
        ("feast.dev", "featurestores", "create"),
        ("feast.dev", "featurestores", "delete"),
    ];
    emulator
        .counters()
        .snapshot()
        .into_iter()
        .map(|(key, _)| {
            let resource = if key.subresource.is_empty() {
                key.resource
            } else {
                format!("{}/{}", key.resource, key.subresource)
            };
            (key.group, resource, key.verb)
        })
        .filter(|(group, resource, verb)| {
            !test_calls
                .iter()
                .any(|(g, r, v)| g == group && r == resource && v == verb)
        })
        .collect()
}
