//! Two FeatureStores of one namespace that list the same custom Roles (`authz.kubernetes.roles`, as
//! the Feast sample and a copy of it do) share them (issue 22): one Role each, owned by both (two
//! non-controller ownerReferences), written by neither once it is as both want it, kept while
//! either still lists it and deleted with the last. Measured before: the Roles changed owner every
//! ~0.5 s forever, and deleting one FeatureStore deleted the Roles the other still used.

use std::time::Duration;

use fieldwise_api::v1::FeatureStore;
use k8s_openapi::api::rbac::v1::Role;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;

use crate::harness::{Cluster, on_every_target, wait_for, wait_gone};
use fieldwise::settings::Settings;

const ROLES: [&str; 2] = ["feast-reader", "feast-writer"];

fn store(name: &str) -> String {
    format!(
        r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: {name}
spec:
  feastProject: {name}
  authz:
    kubernetes:
      roles:
      - feast-writer
      - feast-reader
"#
    )
}

on_every_target!(
    two_feature_stores_share_their_custom_roles_in_either_order,
    share_in_both_orders
);

async fn share_in_both_orders(mut cluster: Cluster) {
    // Created alpha then beta, the first created deleted first; then the other way round, the
    // last created deleted first.
    share(&mut cluster, ["alpha", "beta"], ["alpha", "beta"]).await;
    share(&mut cluster, ["gamma", "delta"], ["delta", "gamma"]).await;
}

async fn share(cluster: &mut Cluster, created: [&str; 2], deleted: [&str; 2]) {
    let namespace = cluster.namespace.clone();
    let stores = cluster.feature_stores(&namespace);
    let roles: Api<Role> = Api::namespaced(cluster.client.clone(), &namespace);
    let mut uids = Vec::new();
    for name in created {
        cluster.apply_yaml(&store(name), &namespace).await;
        uids.push(
            cluster
                .wait_ready(&namespace, name)
                .await
                .uid()
                .expect("uid"),
        );
    }
    let mut both = uids.clone();
    both.sort();
    let mut role_uids = Vec::new();
    for role in ROLES {
        let shared = wait_for(&roles, role, owned_by(&both), "shared by both").await;
        let labels = shared.labels();
        assert_eq!(
            labels.get("fieldwise.dev/shared").map(String::as_str),
            Some("true")
        );
        assert!(!labels.contains_key("feast.dev/name"), "{labels:?}");
        role_uids.push(shared.uid());
    }

    assert_zero_writes_while_both_reconcile(cluster).await;

    // One stops listing feast-reader: it takes only its own reference out of that Role.
    let (gone, kept) = (deleted[0], deleted[1]);
    let kept_uid = stores.get(kept).await.expect("kept").uid().expect("uid");
    let writer_only = json!({"spec": {"authz": {"kubernetes": {"roles": ["feast-writer"]}}}});
    stores
        .patch(gone, &PatchParams::default(), &Patch::Merge(&writer_only))
        .await
        .expect("patch");
    let reader = wait_for(
        &roles,
        ROLES[0],
        owned_by(std::slice::from_ref(&kept_uid)),
        "left",
    )
    .await;
    assert_eq!(
        reader.uid(),
        role_uids[0],
        "feast-reader was never deleted or recreated"
    );
    wait_for(&roles, ROLES[1], owned_by(&both), "still shared by both").await;

    delete(&stores, gone).await;
    for (role, uid) in ROLES.iter().zip(&role_uids) {
        let left = wait_for(
            &roles,
            role,
            owned_by(std::slice::from_ref(&kept_uid)),
            "left to one",
        )
        .await;
        assert_eq!(&left.uid(), uid, "{role} was never deleted or recreated");
    }
    cluster.wait_ready(&namespace, kept).await;
    delete(&stores, kept).await;
    for role in ROLES {
        wait_gone(&roles, role).await;
    }
}

/// A condition: the Role's ownerReferences are exactly these FeatureStores (sorted uids), none of
/// them its controller.
fn owned_by(uids: &[String]) -> impl Fn(Option<&Role>) -> bool + Send + 'static {
    let uids = uids.to_vec();
    move |role: Option<&Role>| {
        let references = role.and_then(|r| r.metadata.owner_references.as_ref());
        let mut found: Vec<String> = references
            .into_iter()
            .flatten()
            .filter(|r| r.kind == "FeatureStore" && r.controller != Some(true))
            .map(|r| r.uid.clone())
            .collect();
        found.sort();
        let all_shared = references.is_some_and(|r| r.len() == found.len());
        all_shared && found == uids
    }
}

/// Restarts the operator with a 1 s resync and lets each FeatureStore reconcile several times:
/// before the fix each reconcile took the Roles from the other, a write every time.
async fn assert_zero_writes_while_both_reconcile(cluster: &mut Cluster) {
    let resyncing = Settings {
        resync_period: Duration::from_secs(1),
        ..cluster.settings().clone()
    };
    let writes_before = cluster.operator_writes();
    cluster.restart_operator_with(resyncing).await;
    let restarted = cluster.reconciles();
    cluster.wait_reconciles(restarted + 8).await;
    let writes = cluster.operator_writes() - writes_before;
    assert_eq!(
        writes,
        0,
        "writes while two FeatureStores share Roles: {:?}",
        cluster.operator_requests_after(cluster.operator_writes() - writes)
    );
}

async fn delete(stores: &Api<FeatureStore>, name: &str) {
    stores
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(stores, name).await;
}
