//! What a user switching over from the Feast operator does to a running FeatureStore: grow a claim
//! by hand, wait on conditions, install the CRD over one that stored `v1alpha1`.

use std::time::Duration;

use fieldwise::settings::Settings;
use k8s_openapi::{
    api::core::v1::PersistentVolumeClaim,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    core::DynamicObject,
    discovery::ApiResource,
};
use serde_json::json;

use crate::harness::{Cluster, Target, USER, on_every_target, run_with, wait_for};

on_every_target!(a_claim_grown_by_hand_stays_grown, claim_grown_by_hand);

/// The claim's requested storage.
fn requested(claim: Option<&PersistentVolumeClaim>) -> Option<String> {
    let requests = claim?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?;
    requests.get("storage").map(|q| q.0.clone())
}

async fn claim_grown_by_hand(cluster: Cluster) {
    let namespace = cluster.namespace.as_str();
    let body = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
    "metadata": {"name": "grown", "namespace": namespace},
    "spec": {"feastProject": "p", "services": {"offlineStore": {"persistence": {"file": {
        "type": "duckdb",
        "pvc": {"create": {"resources": {"requests": {"storage": "1Gi"}}}, "mountPath": "/data/offline"},
    }}}}}});
    let feature_stores = cluster.feature_stores(namespace);
    feature_stores
        .patch("grown", &PatchParams::apply(USER), &Patch::Apply(&body))
        .await
        .expect("applied");
    let fs = cluster.wait_ready(namespace, "grown").await;
    // `kubectl wait --for=condition=Ready` and `--for=condition=OfflineStore` have what they wait for.
    let conditions = fs.status.and_then(|s| s.conditions).unwrap_or_default();
    for type_ in ["Ready", "FeatureStore", "OfflineStore"] {
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == fieldwise_api::v1::ConditionStatus::True),
            "no {type_}=True among {conditions:?}"
        );
    }

    // A claim can grow only when its class allows expansion and it is bound: the real API server
    // refuses anything else (the emulator serves no storage classes and does not check).
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client.clone(), namespace);
    let claim = "feast-grown-offline";
    if !cluster.is_emulated() {
        let classes = ApiResource::erase::<k8s_openapi::api::storage::v1::StorageClass>(&());
        let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard"}, "provisioner": "kubernetes.io/no-provisioner",
            "allowVolumeExpansion": true});
        Api::<DynamicObject>::all_with(cluster.client.clone(), &classes)
            .patch("standard", &PatchParams::apply(USER), &Patch::Apply(&class))
            .await
            .expect("the class allows expansion");
        let bound = |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        };
        wait_for(&claims, claim, bound, "bound").await;
    }

    // Grown by hand, as `kubectl patch` does it.
    let reconciles = cluster.reconciles();
    let grow = json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}});
    let by_hand = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..PatchParams::default()
    };
    claims
        .patch(claim, &by_hand, &Patch::Merge(&grow))
        .await
        .expect("grown");
    // The watch brings the change to the operator; then a restarted operator resyncs the
    // FeatureStore again and again over the grown claim: neither writes anything.
    cluster.wait_reconciles(reconciles + 1).await;
    let writes = cluster.operator_writes();
    let settled = Settings {
        resync_period: Duration::from_millis(250),
        ..cluster.settings().clone()
    };
    let mut cluster = cluster;
    cluster.restart_operator_with(settled).await;
    let restarted = cluster.reconciles();
    cluster.wait_reconciles(restarted + 8).await;
    let after = cluster.operator_writes() - writes;
    assert_eq!(
        after,
        0,
        "the operator kept writing after the claim was grown: {:?}",
        cluster.operator_requests_after(writes)
    );
    let live = claims.get(claim).await.expect("the claim");
    assert_eq!(
        requested(Some(&live)).as_deref(),
        Some("2Gi"),
        "kept as grown"
    );
    let fs = feature_stores.get("grown").await.expect("the FeatureStore");
    let status = fs.status.expect("a status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Ready"),
        "{:#?}",
        status.conditions
    );
}

/// A cluster that ran the Feast operator names `v1alpha1` in the CRD's `status.storedVersions`; the
/// API server refuses a CRD that leaves out a stored version. fieldwise's CRD lists it (unserved), so
/// it installs over such a cluster, and the listing is what makes the difference.
#[test]
#[ignore = "needs a real cluster: E2E_KUBECONFIG=path (see e2e/README.md)"]
fn the_crd_installs_over_a_cluster_that_stored_v1alpha1() {
    run_with(Target::RealCluster, true, stored_v1alpha1);
}

async fn stored_v1alpha1(cluster: Cluster) {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let ours = fieldwise_api::crds()
        .into_iter()
        .find(|crd| crd.name_any() == "featurestores.feast.dev")
        .expect("the FeatureStore CRD");
    let name = ours.name_any();
    let stored = |versions: &[&str]| json!({"status": {"storedVersions": versions}});
    crds.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&stored(&["v1alpha1", "v1"])),
    )
    .await
    .expect("v1alpha1 can be a stored version: the CRD lists it");
    let installed = crds
        .patch(
            &name,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&ours),
        )
        .await;
    let mut without = ours.clone();
    without.spec.versions.retain(|v| v.name != "v1alpha1");
    let refused = crds
        .patch(
            &name,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&without),
        )
        .await;
    // Put things back before asserting, so other scenarios find the cluster as it was.
    crds.patch(
        &name,
        &PatchParams::apply(USER).force(),
        &Patch::Apply(&ours),
    )
    .await
    .expect("reinstalled");
    crds.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&stored(&["v1"])),
    )
    .await
    .expect("storedVersions restored");
    installed.expect("fieldwise's CRD installs over a stored v1alpha1");
    let message = match refused {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("a CRD without v1alpha1 was not refused: {other:?}"),
    };
    assert!(
        message.contains("storedVersions") && message.contains("missing from spec.versions"),
        "{message}"
    );
}
