//! Drift is restored and reported; removing a part of a FeatureStore removes exactly its children.

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service, events::v1::Event};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{
    Api, Resource,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, USER, on_every_target, wait_for};

const SECRETS: &str = include_str!("../../deploy/samples/feature-store-secrets.yaml");

on_every_target!(
    another_managers_edits_are_restored_and_reported,
    edits_restored
);

async fn edits_restored(cluster: Cluster) {
    let namespace = cluster.namespace.as_str();
    let body = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "metadata": {"name": "drift", "namespace": namespace},
            "spec": {"feastProject": "p"}});
    cluster
        .feature_stores(namespace)
        .patch("drift", &PatchParams::apply(USER), &Patch::Apply(&body))
        .await
        .expect("applied");
    let fs = cluster.wait_ready(namespace, "drift").await;
    finalizer_is_applied_by_fieldwise(&fs);

    // Someone edits the image and the Service port (an Update, as `kubectl edit` sends).
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "online", "image": "evil/feature-server:1"}]}}}});
    deployments
        .patch(
            "feast-drift",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Strategic(&image),
        )
        .await
        .expect("edited");
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), namespace);
    let port = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 9999}]}});
    services
        .patch(
            "feast-drift-online",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Strategic(&port),
        )
        .await
        .expect("edited");

    let restored = |d: Option<&Deployment>| {
        let container = d
            .and_then(|d| d.spec.as_ref())
            .map(|s| &s.template)
            .and_then(|t| t.spec.as_ref())
            .map(|s| &s.containers[0]);
        container.and_then(|c| c.image.as_deref()) == Some("quay.io/feastdev/feature-server:0.66.0")
    };
    wait_for(&deployments, "feast-drift", restored, "restored").await;
    let port_restored = |s: Option<&Service>| {
        let ports = s
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_ref());
        ports.is_some_and(|p| {
            p[0].target_port
                == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(6566))
        })
    };
    wait_for(&services, "feast-drift-online", port_restored, "restored").await;

    // Events arrive through a watch: wait until both corrections have been reported.
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    let uid = fs.meta().uid.clone();
    let mut stream = watcher(events, watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut notes: Vec<String> = Vec::new();
    let reported = |notes: &[String]| {
        notes.iter().any(|n| {
            n.contains("Deployment feast-drift")
                && n.contains("kubectl-edit")
                && n.contains("image")
        }) && notes
            .iter()
            .any(|n| n.contains("Service feast-drift-online") && n.contains("kubectl-edit"))
    };
    let collect = async {
        while let Some(Ok(event)) = stream.next().await {
            let ours = event.reason.as_deref() == Some("DriftCorrected")
                && event.regarding.as_ref().and_then(|r| r.uid.clone()) == uid;
            if let (true, Some(note)) = (ours, event.note) {
                notes.push(note);
            }
            if reported(&notes) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(crate::harness::patience(), collect).await;
    assert!(
        notes.iter().any(|n| n.contains("Deployment feast-drift")
            && n.contains("kubectl-edit")
            && n.contains("image")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Service feast-drift-online") && n.contains("kubectl-edit")),
        "{notes:?}"
    );
}

/// The cleanup finalizer is server-side applied under `fieldwise` (no `Update` entry of an unnamed
/// manager owns `metadata.finalizers`).
fn finalizer_is_applied_by_fieldwise(fs: &fieldwise_api::v1::FeatureStore) {
    let finalizer = "feast.dev/fieldwise-cleanup";
    assert!(
        fs.meta()
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == finalizer),
        "{:?}",
        fs.meta().finalizers
    );
    let owners: Vec<(String, String)> = fs
        .meta()
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            let fields = entry.fields_v1.as_ref().map(|f| &f.0);
            fields
                .and_then(|f| f.pointer("/f:metadata/f:finalizers"))
                .is_some()
        })
        .map(|entry| {
            let manager = entry.manager.clone().unwrap_or_default();
            (manager, entry.operation.clone().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        owners,
        [("fieldwise".to_owned(), "Apply".to_owned())],
        "owners of metadata.finalizers"
    );
}

fn scaled_feature_store(namespace: &str, services: Value) -> Value {
    let mut all = json!({
        "onlineStore": {"persistence": {"store": {"type": "postgres", "secretRef": {"name": "feast-data-stores"}}}},
        "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": "feast-data-stores"}}}}},
    });
    for (key, value) in services.as_object().into_iter().flatten() {
        all[key] = value.clone();
    }
    json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "metadata": {"name": "parts", "namespace": namespace},
        "spec": {"feastProject": "p", "services": all}})
}

/// Kind/name of every object carrying the FeatureStore's instance label.
async fn children(cluster: &Cluster) -> BTreeSet<String> {
    let selector = ListParams::default().labels("app.kubernetes.io/instance=parts");
    let mut names = BTreeSet::new();
    macro_rules! collect {
        ($($kind:ty),*) => {$(
            let api: Api<$kind> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
            for object in api.list(&selector).await.expect("list").items {
                names.insert(format!("{}/{}", <$kind>::kind(&()), object.meta().name.clone().unwrap_or_default()));
            }
        )*};
    }
    collect!(
        Deployment,
        Service,
        k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
        k8s_openapi::api::policy::v1::PodDisruptionBudget,
        k8s_openapi::api::core::v1::ConfigMap
    );
    names
}

on_every_target!(removing_a_part_removes_exactly_its_children, parts_removed);

async fn parts_removed(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    cluster.apply_yaml(SECRETS, &namespace).await;
    let stores = cluster.feature_stores(&namespace);
    let apply = |services: Value| {
        let stores = stores.clone();
        let namespace = namespace.clone();
        async move {
            let body = scaled_feature_store(&namespace, services);
            stores
                .patch(
                    "parts",
                    &PatchParams::apply(USER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("applied");
        }
    };
    let autoscaling = json!({"autoscaling": {"minReplicas": 2, "maxReplicas": 4}});
    let pdb = json!({"minAvailable": 1});
    apply(json!({"ui": {}, "offlineStore": {"server": {}, "persistence": {"store": {"type": "postgres", "secretRef": {"name": "feast-data-stores"}}}},
            "scaling": autoscaling, "podDisruptionBudgets": pdb}))
        .await;
    // Not Ready on a real cluster (the Secrets point at no real database): wait until the graph is
    // applied, which the first status write follows.
    let applied = |fs: Option<&fieldwise_api::v1::FeatureStore>| {
        fs.and_then(|fs| fs.status.as_ref())
            .is_some_and(|status| matches!(status.phase.as_deref(), Some("Pending" | "Ready")))
    };
    wait_for(&stores, "parts", applied, "applied").await;
    let full = children(&cluster).await;
    for expected in [
        "Service/feast-parts-ui",
        "Service/feast-parts-offline",
        "HorizontalPodAutoscaler/feast-parts",
        "PodDisruptionBudget/feast-parts",
    ] {
        assert!(full.contains(expected), "{expected} missing from {full:?}");
    }

    let steps: [(Value, &str); 3] = [
        (
            json!({"offlineStore": {"server": {}, "persistence": {"store": {"type": "postgres", "secretRef": {"name": "feast-data-stores"}}}},
                "scaling": autoscaling, "podDisruptionBudgets": pdb}),
            "Service/feast-parts-ui",
        ),
        (
            json!({"scaling": autoscaling, "podDisruptionBudgets": pdb}),
            "Service/feast-parts-offline",
        ),
        (
            json!({"podDisruptionBudgets": pdb}),
            "HorizontalPodAutoscaler/feast-parts",
        ),
    ];
    let mut expected = full.clone();
    for (services, removed) in steps {
        apply(services).await;
        expected.remove(removed);
        if removed.starts_with("HorizontalPodAutoscaler") {
            // Without autoscaling (and one replica) there is no scaling, so the PDB goes too.
            expected.remove("PodDisruptionBudget/feast-parts");
        }
        wait_until_children(&cluster, &expected).await;
    }
}

/// Waits for the child set to become `expected`, re-checking whenever a Deployment or Service changes.
async fn wait_until_children(cluster: &Cluster, expected: &BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + crate::harness::patience();
    loop {
        let now = children(cluster).await;
        if &now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "children {now:?}, expected {expected:?}"
        );
        // Pruning is asynchronous to the apply; poll the lists (there is no single object to watch).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
