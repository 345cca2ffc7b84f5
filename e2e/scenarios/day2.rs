//! Day-2 behaviour a user meets (issue 25): a Secret without the key a store reads says which key
//! and how to choose another; every write of fieldwise, Events included, is managed by `fieldwise`
//! (its finalizer by server-side apply), never by `unknown`; a deletion reports no error; and a
//! FeatureStore admitted before the CRD's name rules is told which child name its name breaks.

use fieldwise_api::v1::{ConditionStatus, FeatureStore};
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;

use crate::harness::{
    Cluster, USER, block_on, deployments, on_every_target, patience, wait_for, wait_gone,
};

/// A FeatureStore whose online store reads the Secret `day2-db`, and that Secret without the key
/// the store reads by default (`postgres`).
const STORE_AND_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: day2-db
stringData:
  settings: |
    host: db.example.com
    port: 5432
---
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: day2
spec:
  feastProject: day2
  services:
    onlineStore:
      persistence:
        store:
          type: postgres
          secretRef:
            name: day2-db
"#;

on_every_target!(
    a_missing_secret_key_is_explained_and_every_write_is_managed_by_fieldwise,
    missing_key_and_managers
);

async fn missing_key_and_managers(cluster: Cluster) {
    let namespace = &cluster.namespace;
    cluster.apply_yaml(STORE_AND_SECRET, namespace).await;
    let stores = cluster.feature_stores(namespace);
    let expected = "Error: secret key postgres doesn't exist in secret day2-db: the store's \
                    parameters are read from the key named after its type (postgres) unless \
                    spec.services.onlineStore.persistence.store.secretKeyName names another; the \
                    Secret has the keys settings";
    let explained = |fs: Option<&FeatureStore>| {
        fs.and_then(|fs| fs.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    c.type_ == "FeatureStore"
                        && c.status == ConditionStatus::False
                        && c.message == expected
                })
            })
    };
    let fs = wait_for(&stores, "day2", explained, "explained").await;
    assert_no_unknown_manager("FeatureStore day2", &fs.metadata.managed_fields);
    let finalizer_owners: Vec<(String, String)> = finalizer_entries(&fs)
        .map(|entry| {
            (
                entry.manager.clone().unwrap_or_default(),
                entry.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        finalizer_owners,
        [("fieldwise".to_owned(), "Apply".to_owned())]
    );

    // The Warning Event says the same, and the API server names fieldwise as its manager.
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    let about_day2 = |event: &Event| {
        event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("day2")
            && event.reason.as_deref() == Some("InvalidSpec")
    };
    let event = tokio::time::timeout(
        patience(),
        watcher(events.clone(), watcher::Config::default())
            .applied_objects()
            .filter_map(|event| async move { event.ok() })
            .filter(|event| std::future::ready(about_day2(event)))
            .boxed()
            .next(),
    )
    .await
    .expect("an InvalidSpec Event within the patience")
    .expect("the watch runs");
    assert_eq!(
        event.note.as_deref(),
        expected.strip_prefix("Error: "),
        "the Event's note"
    );
    assert_eq!(event.reporting_controller.as_deref(), Some("fieldwise"));
    let managers: Vec<String> = event
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.clone())
        .collect();
    assert!(
        !managers.is_empty() && managers.iter().all(|m| m == "fieldwise"),
        "the Event's managers: {managers:?}"
    );

    // Choosing the key as the message says makes the FeatureStore Ready.
    let choose = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "day2"},
        "spec": {"feastProject": "day2", "services": {"onlineStore": {"persistence": {"store": {
            "type": "postgres", "secretRef": {"name": "day2-db"}, "secretKeyName": "settings"}}}}}});
    stores
        .patch(
            "day2",
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&choose),
        )
        .await
        .expect("secretKeyName applied");
    let fs = cluster.wait_ready(namespace, "day2").await;
    assert_no_unknown_manager("FeatureStore day2", &fs.metadata.managed_fields);

    // A deletion (finalizer removed, children collected) is no reconcile error.
    stores
        .delete("day2", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&stores, "day2").await;
    cluster.assert_no_reconcile_errors();
    let all_events = events.list(&ListParams::default()).await.expect("events");
    for event in all_events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("fieldwise"))
    {
        assert_no_unknown_manager(&event.name_any(), &event.metadata.managed_fields);
    }
}

fn assert_no_unknown_manager(
    what: &str,
    entries: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>,
) {
    let managers: Vec<&str> = entries
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.as_deref())
        .collect();
    assert!(
        managers.iter().all(|m| !m.is_empty() && *m != "unknown"),
        "{what} managers: {managers:?}"
    );
}

/// A FeatureStore created while the CRD had no name rules (an older fieldwise, or the Feast
/// operator's CRD) with a name too long for its Services gets no children and a status naming the
/// Service, the limit and the longest name that fits. Emulator only: it changes the CRD.
#[test]
fn a_feature_store_admitted_before_the_name_rules_is_told_why_nothing_is_made() {
    block_on(async {
        let cluster = Cluster::start().await;
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(cluster.client.clone());
        let mut crd = fieldwise_api::crds()
            .into_iter()
            .find(|crd| crd.spec.names.kind == "FeatureStore")
            .expect("the FeatureStore CRD");
        let schema = crd.spec.versions[0]
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("a schema");
        assert!(schema.x_kubernetes_validations.take().is_some());
        crds.patch(
            "featurestores.feast.dev",
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("the CRD without its rules");

        let name = "n".repeat(fieldwise_api::v1::MAX_NAME_LENGTH + 7);
        cluster
            .apply_yaml(
                &format!(
                    "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: {name}\nspec:\n  feastProject: p\n"
                ),
                "default",
            )
            .await;
        let told = |fs: Option<&FeatureStore>| {
            fs.and_then(|fs| fs.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "FeatureStore" && c.reason == "InvalidName")
                })
        };
        let fs = wait_for(
            &cluster.feature_stores("default"),
            &name,
            told,
            "InvalidName",
        )
        .await;
        let status = fs.status.expect("a status");
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let conditions = status.conditions.expect("conditions");
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "FeatureStore")
            .expect("the FeatureStore condition");
        assert_eq!(ready.status, ConditionStatus::False);
        let expected = fieldwise::featurestore::names::check_derived_names(&name, "default")
            .expect_err("the name is too long");
        assert_eq!(ready.message, format!("Error: {}", expected.message));
        assert!(
            ready.message.contains(&format!(
                "a FeatureStore name may have at most {} characters",
                fieldwise_api::v1::MAX_NAME_LENGTH
            )),
            "{}",
            ready.message
        );
        assert!(
            deployments(&cluster)
                .get_opt(&format!("feast-{name}"))
                .await
                .expect("readable")
                .is_none(),
            "no children are made"
        );
    });
}

on_every_target!(
    a_finalizer_another_manager_also_applied_is_still_removed_on_deletion,
    co_owned_finalizer
);

/// The one write to a FeatureStore that is not a server-side apply: when another manager also
/// applied fieldwise's finalizer (an operator before it, say), fieldwise's apply without it leaves
/// it in place, so a JSON patch removes it, and the deletion completes.
async fn co_owned_finalizer(cluster: Cluster) {
    let namespace = &cluster.namespace;
    cluster
        .apply_yaml(
            "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: shared\nspec:\n  feastProject: shared\n",
            namespace,
        )
        .await;
    let fs = cluster.wait_ready(namespace, "shared").await;
    let stores = cluster.feature_stores(namespace);
    let finalizer = fieldwise::featurestore::controller::FINALIZER;
    let earlier = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "shared", "uid": fs.uid(), "finalizers": [finalizer]}});
    let shared = stores
        .patch(
            "shared",
            &PatchParams::apply("earlier-operator").force(),
            &Patch::Apply(&earlier),
        )
        .await
        .expect("the other manager applies the finalizer");
    let mut owners: Vec<String> = finalizer_entries(&shared)
        .filter_map(|entry| entry.manager.clone())
        .collect();
    owners.sort();
    assert_eq!(owners, ["earlier-operator", "fieldwise"]);
    stores
        .delete("shared", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&stores, "shared").await;
    cluster.assert_no_reconcile_errors();
}

/// The managedFields entries that own some of `fs`'s finalizers.
fn finalizer_entries(
    fs: &FeatureStore,
) -> impl Iterator<Item = &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> {
    fs.metadata.managed_fields.iter().flatten().filter(|entry| {
        entry
            .fields_v1
            .as_ref()
            .is_some_and(|f| f.0.pointer("/f:metadata/f:finalizers").is_some())
    })
}
