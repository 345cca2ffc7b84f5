//! Under failing writes and dropped watches, many FeatureStores still converge, with nothing missing and
//! nothing orphaned.

use std::{collections::BTreeSet, time::Duration};

use fieldwise::runtime::RunOptions;
use fieldwise_e2e::faults::{ErrorKind, ErrorRule, FaultConfig, Faults, LatencyRule};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, ResourceExt, api::ListParams};

use crate::harness::{Cluster, block_on};

const COUNT: usize = 50;

#[test]
fn fifty_feature_stores_converge_with_a_fifth_of_writes_failing_and_watches_dropping() {
    block_on(async {
        let cluster = Cluster::start().await;
        let faults = Faults::install(
            cluster.emulator(),
            FaultConfig {
                seed: 20261122,
                errors: vec![ErrorRule {
                    verbs: ["create", "update", "patch", "delete"]
                        .map(str::to_owned)
                        .to_vec(),
                    resource: None,
                    field_manager: Some("fieldwise".to_owned()),
                    rate: 0.2,
                    kind: ErrorKind::Internal,
                }],
                latency: Vec::new(),
                drop_watches_every: Some(Duration::from_secs(2)),
            },
        );
        let manifests: String = (0..COUNT)
            .map(|i| format!("---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: fs-{i}\nspec:\n  feastProject: p{i}\n"))
            .collect();
        cluster.apply_yaml(&manifests, "default").await;
        for i in 0..COUNT {
            cluster.wait_ready("default", &format!("fs-{i}")).await;
        }
        let injected = faults.stats();
        assert!(
            format!("{injected:?}")
                .chars()
                .any(|c| c.is_ascii_digit() && c != '0'),
            "faults were injected: {injected:?}"
        );
        faults.clear();

        // Every FeatureStore has its children, each owned by exactly that FeatureStore.
        let stores: BTreeSet<(String, String)> = cluster
            .feature_stores("default")
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .iter()
            .map(|fs| (fs.name_any(), fs.uid().unwrap_or_default()))
            .collect();
        assert_eq!(stores.len(), COUNT);
        let managed = ListParams::default().labels("app.kubernetes.io/managed-by=fieldwise");
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
        let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
        let owners_of =
            |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
                refs.into_iter()
                    .flatten()
                    .map(|r| (r.name.clone(), r.uid.clone()))
                    .collect::<Vec<_>>()
            };
        let deployment_owners: Vec<_> = deployments
            .list(&managed)
            .await
            .expect("list")
            .items
            .iter()
            .map(|d| owners_of(d.metadata.owner_references.as_ref()))
            .collect();
        let config_map_owners: Vec<_> = config_maps
            .list(&managed)
            .await
            .expect("list")
            .items
            .iter()
            .map(|c| owners_of(c.metadata.owner_references.as_ref()))
            .collect();
        assert_eq!(
            deployment_owners.len(),
            COUNT,
            "one Deployment per FeatureStore"
        );
        assert_eq!(
            config_map_owners.len(),
            COUNT,
            "one client ConfigMap per FeatureStore"
        );
        for owners in deployment_owners.iter().chain(&config_map_owners) {
            assert_eq!(owners.len(), 1, "exactly one owner: {owners:?}");
            assert!(
                stores.contains(&owners[0]),
                "owned by a live FeatureStore: {owners:?}"
            );
        }
    });
}

/// With every write slowed down, reconciles pile up behind the API server; still the operator never
/// has more writes in flight than its concurrency (what API Priority and Fairness sees from it).
#[test]
fn writes_in_flight_never_exceed_the_concurrency_when_the_api_server_is_slow() {
    block_on(async {
        let cluster = Cluster::start().await;
        let faults = Faults::install(
            cluster.emulator(),
            FaultConfig {
                latency: vec![LatencyRule {
                    verbs: ["create", "update", "patch", "delete"]
                        .map(str::to_owned)
                        .to_vec(),
                    resource: None,
                    delay: Duration::from_millis(50),
                }],
                ..FaultConfig::default()
            },
        );
        const STORES: usize = 16;
        let manifests: String = (0..STORES)
            .map(|i| format!("---\napiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: slow-{i}\nspec:\n  feastProject: p{i}\n"))
            .collect();
        cluster.apply_yaml(&manifests, "default").await;
        for i in 0..STORES {
            cluster.wait_ready("default", &format!("slow-{i}")).await;
        }
        assert!(faults.stats().delayed > 0, "writes were slowed down");
        let concurrency = u64::from(RunOptions::default().concurrency);
        let most = cluster
            .emulator()
            .counters()
            .most_writes_in_flight("fieldwise");
        assert!(
            most <= concurrency,
            "at most {concurrency} writes in flight at once, saw {most}"
        );
        assert!(
            most > 1,
            "the FeatureStores were reconciled side by side (else this proves nothing): {most}"
        );
        cluster.assert_no_reconcile_errors();
    });
}
