//! Operator restarts: everything converges again, and an unchanged cluster costs zero writes.

use crate::harness::{Cluster, block_on};

const FEATURE_STORES: &str = r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: basic
spec:
  feastProject: basic
---
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: servers
spec:
  feastProject: servers
  services:
    offlineStore:
      server: {}
    registry:
      local:
        server: {}
    ui: {}
---
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: database
spec:
  feastProject: database
  services:
    onlineStore:
      persistence:
        store:
          type: postgres
          secretRef:
            name: feast-data-stores
    registry:
      local:
        persistence:
          store:
            type: sql
            secretRef:
              name: feast-data-stores
"#;

/// The Secrets the `database` FeatureStore reads: after a restart they must be in the cache before its
/// reconcile, or it would briefly turn Failed (and the status would be rewritten).
const SECRETS: &str = include_str!("../../deploy/samples/feature-store-secrets.yaml");

#[test]
fn a_restarted_operator_resyncs_everything_with_zero_writes() {
    block_on(async {
        let mut cluster = Cluster::start().await;
        cluster.apply_yaml(SECRETS, "default").await;
        cluster.apply_yaml(FEATURE_STORES, "default").await;
        for name in ["basic", "servers", "database"] {
            cluster.wait_ready("default", name).await;
        }

        cluster.stop_operator().await;
        cluster.emulator.counters().reset();
        let before = cluster.reconciles();
        cluster.start_operator();
        // A fresh operator reconciles every FeatureStore once from its initial list.
        cluster.wait_reconciles(before + 3).await;
        assert_eq!(
            cluster.emulator.counters().writes_by("fieldwise"),
            0,
            "a resync of an unchanged cluster writes nothing"
        );
        assert_eq!(
            cluster.emulator.counters().writes(),
            0,
            "no write request at all"
        );
    });
}

#[test]
fn an_operator_stopped_mid_reconcile_converges_after_restart() {
    block_on(async {
        let mut cluster = Cluster::start().await;
        cluster.apply_yaml(SECRETS, "default").await;
        cluster.apply_yaml(FEATURE_STORES, "default").await;
        // Stop as soon as the first child exists: the reconcile is cut off part-way.
        let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(cluster.client.clone(), "default");
        crate::harness::wait_for(
            &config_maps,
            "feast-servers-client",
            |c: Option<&_>| c.is_some(),
            "created",
        )
        .await;
        cluster.stop_operator().await;
        cluster.start_operator();
        let basic = cluster.wait_ready("default", "basic").await;
        let servers = cluster.wait_ready("default", "servers").await;
        for fs in [basic, servers] {
            let status = fs.status.expect("status");
            let hostnames = status.service_hostnames.clone().expect("hostnames");
            assert!(hostnames.online_store.is_some(), "{status:?}");
        }
        // Every child carries its owner: nothing is orphaned.
        let list = config_maps.list(&Default::default()).await.expect("list");
        let managed: Vec<_> = list
            .items
            .iter()
            .filter(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("feast.dev/name"))
            })
            .collect();
        assert_eq!(managed.len(), 3, "one client ConfigMap per FeatureStore");
        assert!(managed.iter().all(|c| {
            c.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| o.len() == 1)
        }));
    });
}
