//! Operator restarts and resyncs: everything converges again, and an unchanged cluster costs zero writes.

use std::time::Duration;

use fieldwise::settings::Settings;
use fieldwise_e2e::faults::{FaultConfig, Faults, LatencyRule};

use crate::harness::{Cluster, block_on, on_every_target};

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

/// More FeatureStores reading the Secrets than the operator reconciles at once (4).
const SECRET_READERS: usize = 8;

/// `SECRET_READERS` copies of the `database` FeatureStore.
fn secret_readers() -> String {
    let database = &FEATURE_STORES[FEATURE_STORES.find("  name: database").expect("database")..];
    (0..SECRET_READERS)
        .map(|i| {
            let body = database.replacen("  name: database", &format!("  name: reader-{i}"), 1);
            format!("---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n{body}")
        })
        .collect()
}

#[test]
fn a_restarted_operator_resyncs_everything_with_zero_writes() {
    block_on(async {
        let mut cluster = Cluster::start().await;
        cluster.apply_yaml(SECRETS, "default").await;
        cluster.apply_yaml(FEATURE_STORES, "default").await;
        cluster.apply_yaml(&secret_readers(), "default").await;
        let readers = (0..SECRET_READERS).map(|i| format!("reader-{i}"));
        let names: Vec<String> = ["basic", "servers", "database"]
            .map(str::to_owned)
            .into_iter()
            .chain(readers)
            .collect();
        for name in &names {
            cluster.wait_ready("default", name).await;
        }

        cluster.stop_operator().await;
        cluster.emulator().counters().reset();
        // The Secrets are listed last, so the first reconciles all wait for the Secret cache at once
        // (they once waited forever: only the last waiter was woken).
        let _slow_secret_list = Faults::install(
            cluster.emulator(),
            FaultConfig {
                latency: vec![LatencyRule {
                    verbs: vec!["list".to_owned()],
                    resource: Some("secrets".to_owned()),
                    delay: Duration::from_secs(1),
                }],
                ..FaultConfig::default()
            },
        );
        let before = cluster.reconciles();
        cluster.start_operator();
        // A fresh operator reconciles every FeatureStore once from its initial list.
        cluster.wait_reconciles(before + names.len() as u64).await;
        assert_eq!(
            cluster.emulator().counters().writes_by("fieldwise"),
            0,
            "a resync of an unchanged cluster writes nothing"
        );
        assert_eq!(
            cluster.emulator().counters().writes(),
            0,
            "no write request at all"
        );
    });
}

on_every_target!(
    an_operator_stopped_mid_reconcile_converges_after_restart,
    stopped_mid_reconcile
);

async fn stopped_mid_reconcile(mut cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &namespace);
    // kube-controller-manager publishes it into every namespace; it belongs to no FeatureStore.
    let root_ca = crate::harness::wait_for(
        &config_maps,
        "kube-root-ca.crt",
        |c: Option<&_>| c.is_some(),
        "published",
    )
    .await;
    cluster.apply_yaml(SECRETS, &namespace).await;
    cluster.apply_yaml(FEATURE_STORES, &namespace).await;
    // Stop as soon as the first child exists: the reconcile is cut off part-way.
    crate::harness::wait_for(
        &config_maps,
        "feast-servers-client",
        |c: Option<&_>| c.is_some(),
        "created",
    )
    .await;
    cluster.stop_operator().await;
    cluster.start_operator();
    let basic = cluster.wait_ready(&namespace, "basic").await;
    let servers = cluster.wait_ready(&namespace, "servers").await;
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
    // The operator, which applies and prunes ConfigMaps here, never touched the root CA.
    let untouched = list
        .items
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("kube-root-ca.crt"))
        .expect("kube-root-ca.crt is kept");
    assert_eq!(
        untouched.metadata.resource_version, root_ca.metadata.resource_version,
        "kube-root-ca.crt was written"
    );
    assert!(managed.iter().all(|c| {
        c.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.len() == 1)
    }));
}

on_every_target!(
    sixty_seconds_of_resyncs_write_nothing,
    resyncs_write_nothing
);

/// Every FeatureStore is resynced every 2 s (on the emulator, watches are dropped every 10 s too) for a
/// 60 s window, which must cost zero write requests.
async fn resyncs_write_nothing(mut cluster: Cluster) {
    const RESYNC: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(60);
    let namespace = cluster.namespace.clone();
    cluster.apply_yaml(SECRETS, &namespace).await;
    cluster.apply_yaml(FEATURE_STORES, &namespace).await;
    // Every FeatureStore must have settled before the window, or its last transition (Pending to
    // Ready, a status write) can land inside it on a loaded machine. On a real cluster `database` never
    // gets Ready (it needs a Postgres outside the cluster); only the others are awaited there.
    let all = ["basic", "servers", "database"];
    let settled = if cluster.is_emulated() {
        &all[..]
    } else {
        &all[..2]
    };
    for name in settled {
        cluster.wait_ready(&namespace, name).await;
    }
    let resyncing = Settings {
        resync_period: RESYNC,
        ..cluster.settings().clone()
    };
    cluster.restart_operator_with(resyncing).await;
    let restarted = cluster.reconciles();
    // The restarted operator reconciles every one of them once before the window.
    cluster.wait_reconciles(restarted + all.len() as u64).await;
    let _dropping_watches = cluster.is_emulated().then(|| {
        Faults::install(
            cluster.emulator(),
            FaultConfig {
                drop_watches_every: Some(Duration::from_secs(10)),
                ..FaultConfig::default()
            },
        )
    });

    let writes_before = cluster.operator_writes();
    let reconciles_before = cluster.reconciles();
    if cluster.is_emulated() {
        cluster.emulator().counters().reset();
    }
    // The window itself is what is measured: nothing to await but time.
    tokio::time::sleep(WINDOW).await;
    let resyncs = cluster.reconciles() - reconciles_before;
    let writes = cluster.operator_writes() - writes_before;

    // Each of the three FeatureStores comes back every RESYNC (plus reconcile time); demand a third of that.
    let expected = 3 * WINDOW.as_secs() / RESYNC.as_secs() / 3;
    assert!(
        resyncs >= expected,
        "only {resyncs} reconciles in {WINDOW:?}, expected at least {expected}"
    );
    // On the emulator, name the write requests first: they say what was written.
    if cluster.is_emulated() {
        let counted = cluster.emulator().counters().snapshot();
        let requests: Vec<_> = counted.iter().filter(|(key, _)| key.is_write()).collect();
        assert!(
            requests.is_empty(),
            "write requests during the window ({writes} by the operator, {resyncs} resyncs): {requests:?}"
        );
    }
    assert_eq!(
        writes, 0,
        "the operator wrote {writes} times in {resyncs} resyncs of an unchanged cluster"
    );
}

/// An operator told to stop before its first list of owners stops at once (kube's applier waits
/// for the owner store, which a graceful shutdown leaves unfilled: it used to wait forever).
#[tokio::test]
async fn an_operator_stopped_right_after_starting_stops() {
    let mut cluster = Cluster::start().await;
    let stopped = cluster.stop_operator();
    tokio::time::timeout(crate::harness::patience(), stopped)
        .await
        .expect("the operator stopped");
}
