//! A FeatureStore whose remote registry is another FeatureStore (`registry.remote.feastRef`) follows
//! that FeatureStore's status: it is reconciled when the other one changes or goes away, though its
//! own spec does not change. The operator finds the FeatureStores to reconcile from an index of
//! references kept as it watches them (issue 23: a scan of every FeatureStore on each change made
//! its CPU per FeatureStore grow with their number).

use std::time::Duration;

use fieldwise_api::v1::FeatureStore;
use kube::{Api, api::DeleteParams, runtime::wait::await_condition};

use crate::harness::{Cluster, on_every_target, wait_for, wait_gone};

const REGISTRY: &str = r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: registry
spec:
  feastProject: shared
  services:
    registry:
      local:
        server: {}
"#;

const CLIENT: &str = r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: client
spec:
  feastProject: shared
  services:
    registry:
      remote:
        feastRef:
          name: registry
"#;

/// A rejected FeatureStore is looked at again after 60 s; well before that, only the change of the
/// FeatureStore it refers to can have reconciled it.
const BEFORE_THE_RETRY: Duration = Duration::from_secs(40);

on_every_target!(
    a_feature_store_follows_the_registry_it_refers_to,
    follows_its_registry
);

async fn follows_its_registry(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let stores = cluster.feature_stores(&namespace);
    cluster.apply_yaml(CLIENT, &namespace).await;
    wait_for(&stores, "client", failed_with("was not found"), "Failed").await;

    // The registry's status changes (its own spec does not): each change reconciles the client.
    cluster.apply_yaml(REGISTRY, &namespace).await;
    let client = before_the_retry(&stores, ready, "Ready once its registry is").await;
    let registry = stores.get("registry").await.expect("the registry");
    let hostname = |fs: &FeatureStore| {
        let hostnames = fs.status.as_ref()?.service_hostnames.as_ref()?;
        hostnames.registry.clone()
    };
    assert!(hostname(&registry).is_some(), "{:?}", registry.status);
    assert_eq!(
        hostname(&client),
        hostname(&registry),
        "the client uses the registry of the FeatureStore it refers to"
    );

    stores
        .delete("registry", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&stores, "registry").await;
    let gone = failed_with("was not found");
    before_the_retry(&stores, gone, "Failed once its registry is gone").await;
}

/// Waits for the client to meet `condition`, for less than the 60 s after which a rejected
/// FeatureStore is reconciled again anyway.
async fn before_the_retry(
    stores: &Api<FeatureStore>,
    condition: impl Fn(Option<&FeatureStore>) -> bool + Send + 'static,
    what: &str,
) -> FeatureStore {
    let met = await_condition(stores.clone(), "client", condition);
    let met = tokio::time::timeout(BEFORE_THE_RETRY, met).await;
    let met = met
        .unwrap_or_else(|_| panic!("the client did not become {what} within {BEFORE_THE_RETRY:?}"));
    met.expect("watch works").expect("the client exists")
}

fn ready(fs: Option<&FeatureStore>) -> bool {
    let status = fs.and_then(|fs| fs.status.as_ref());
    status.and_then(|s| s.phase.as_deref()) == Some("Ready")
}

fn failed_with(message: &'static str) -> impl Fn(Option<&FeatureStore>) -> bool + Send + 'static {
    move |fs: Option<&FeatureStore>| {
        let status = fs.and_then(|fs| fs.status.as_ref());
        let phase = status.and_then(|s| s.phase.as_deref());
        let conditions = status.and_then(|s| s.conditions.as_ref());
        let explained = conditions.is_some_and(|c| c.iter().any(|c| c.message.contains(message)));
        phase == Some("Failed") && explained
    }
}
