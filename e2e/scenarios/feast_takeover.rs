//! Taking over from the real Feast operator at N FeatureStores (issue 24): the Feast operator runs N
//! FeatureStores (a mix of the samples, the scaled ones among them) until each is Ready and its
//! Deployment available; every Deployment is watched; the Feast operator stops and fieldwise starts.
//! Every FeatureStore must end Ready by fieldwise, no Deployment may be deleted or recreated (same
//! uid throughout), none may ask for other replicas than it had, a scaled one (RollingUpdate) may
//! never have fewer available replicas than before, and the API server may refuse none of fieldwise's
//! writes (counted on its client, with the answer of each).
//!
//! Real control plane only, one of its own (the Feast operator watches every namespace):
//! `e2e/feast-operator/README.md` says how to run it.

use std::{
    collections::{BTreeMap, BTreeSet},
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::Instant,
};

use fieldwise_api::v1::FeatureStore;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, wait::await_condition, watcher},
};

use crate::feast_cases::{Case, all_cases};
use crate::feast_side_by_side::{
    FEAST_SYSTEM_NAMESPACE, FeastOperator, apply_sample, create_namespace, delete_leaked_bindings,
    refuse_other_feature_stores, remove_fieldwise_run,
};
use crate::harness::{Cluster, Target, patience, run_with};

/// How many FeatureStores the Feast operator runs before the takeover (default [`DEFAULT_N`]).
const N_VARIABLE: &str = "E2E_FEAST_TAKEOVER_N";
const DEFAULT_N: usize = 20;

#[test]
#[ignore = "needs a real cluster of its own and the Feast operator: see e2e/feast-operator/README.md"]
fn feast_takeover_at_n() {
    run_with(Target::RealCluster, false, take_over_at_n);
}

async fn take_over_at_n(mut cluster: Cluster) {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let cases = mix(&all_cases(&corpus), n());
    refuse_other_feature_stores(&cluster).await;
    cluster.namespace(FEAST_SYSTEM_NAMESPACE).await;
    let namespaces: Vec<String> = (0..cases.len())
        .map(|index| format!("{}-t{index}", cluster.namespace))
        .collect();
    let outcome = AssertUnwindSafe(take_over(&mut cluster, &cases, &namespaces))
        .catch_unwind()
        .await;
    // Whatever became of it: the FeatureStores go while fieldwise runs (its finalizer removes its
    // ClusterRoleBindings), then the Feast operator's bindings and the namespaces.
    if !cluster.operator_running() {
        let watched: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        cluster.start_operator_watching(&watched);
    }
    remove_fieldwise_run(&cluster, &namespaces).await;
    delete_leaked_bindings(&cluster, &namespaces).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The Feast operator makes the FeatureStores of `cases` (one per namespace) Ready, then fieldwise
/// takes them over, watched.
async fn take_over(cluster: &mut Cluster, cases: &[Case], namespaces: &[String]) {
    let feast = FeastOperator::start("takeover-at-n");
    let mut stores = Vec::new();
    for (case, namespace) in cases.iter().zip(namespaces) {
        create_namespace(&cluster.client, namespace).await;
        for name in apply_sample(cluster, &case.text(namespace), namespace).await {
            stores.push((namespace.clone(), name, case.replicas()));
        }
    }
    for (namespace, name, replicas) in &stores {
        wait_ready_by_feast(cluster, namespace, name, *replicas).await;
    }
    let history = DeploymentHistory::start(cluster, namespaces).await;
    let before = history.latest();
    assert_eq!(
        before.len(),
        stores.len(),
        "one Deployment per FeatureStore: {before:?}"
    );
    feast.stop().await;

    let started = Instant::now();
    let watched: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    cluster.start_operator_watching(&watched);
    for (namespace, name, _) in &stores {
        wait_ready_by_fieldwise(cluster, namespace, name).await;
    }
    let ready_after = started.elapsed();
    let mut last_version = 0;
    for (namespace, name, _) in &stores {
        let rolled = wait_rolled_out(cluster, namespace, &format!("feast-{name}")).await;
        last_version = last_version.max(resource_version(&rolled));
    }
    let seen = history.until_seen(last_version).await;
    eprintln!(
        "feast_takeover_at_n: {} FeatureStores Ready by fieldwise {ready_after:?} after it started; \
         {} writes",
        stores.len(),
        cluster.operator_writes()
    );
    for (key, states) in &seen {
        eprintln!("feast_takeover_at_n: {key}: {}", shown(states));
    }
    let refused = cluster.operator_refusals();
    assert!(refused.is_empty(), "writes refused: {refused:?}");
    let problems = judge(&before, &seen);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `E2E_FEAST_TAKEOVER_N`, else [`DEFAULT_N`].
fn n() -> usize {
    std::env::var(N_VARIABLE)
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(DEFAULT_N)
}

/// `n` cases that become Ready under both operators, the scaled ones (more than one replica, or an
/// HPA) first so that any N above a handful has them, then the others, round again when N is larger
/// than the corpus (each FeatureStore has a namespace of its own).
fn mix(cases: &[Case], n: usize) -> Vec<Case> {
    let ready: Vec<&Case> = cases
        .iter()
        .filter(|case| !case.label.contains('#'))
        .collect();
    let (scaled, single): (Vec<&Case>, Vec<&Case>) =
        ready.into_iter().partition(|case| case.replicas() > 1);
    scaled
        .into_iter()
        .chain(single)
        .cycle()
        .take(n)
        .cloned()
        .collect()
}

/// Ready as the Feast operator reports it, and its Deployment's pods all available.
async fn wait_ready_by_feast(cluster: &Cluster, namespace: &str, name: &str, replicas: i32) {
    let ready = |fs: Option<&FeatureStore>| {
        fs.and_then(|fs| fs.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Ready")
    };
    await_patiently(cluster.feature_stores(namespace), name, ready, "Ready").await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let available = move |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(replicas)
    };
    let deployment = format!("feast-{name}");
    await_patiently(deployments, &deployment, available, "available").await;
}

/// Ready as fieldwise reports it: its status entry exists (the Feast operator's said Ready too).
async fn wait_ready_by_fieldwise(cluster: &Cluster, namespace: &str, name: &str) {
    let ready = |fs: Option<&FeatureStore>| {
        fs.is_some_and(|fs| {
            fieldwise_apply::owns_a_status(&fs.metadata)
                && fs.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
        })
    };
    await_patiently(
        cluster.feature_stores(namespace),
        name,
        ready,
        "Ready by fieldwise",
    )
    .await;
}

/// The Deployment once its rollout is over: the controller saw the last spec, and every pod is of
/// the current template and available.
async fn wait_rolled_out(cluster: &Cluster, namespace: &str, name: &str) -> Deployment {
    let done = |d: Option<&Deployment>| {
        d.is_some_and(|d| {
            let (Some(spec), Some(status)) = (d.spec.as_ref(), d.status.as_ref()) else {
                return false;
            };
            let wanted = spec.replicas.unwrap_or(1);
            status.observed_generation >= d.metadata.generation
                && status.updated_replicas == Some(wanted)
                && status.replicas == Some(wanted)
                && status.available_replicas == Some(wanted)
        })
    };
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    await_patiently(deployments, name, done, "rolled out").await
}

async fn await_patiently<K>(
    api: Api<K>,
    name: &str,
    condition: impl kube::runtime::wait::Condition<K>,
    what: &str,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let namespace = api.resource_url().to_owned();
    let waited = tokio::time::timeout(patience(), await_condition(api, name, condition)).await;
    waited
        .unwrap_or_else(|_| panic!("{namespace}/{name} not {what} within {:?}", patience()))
        .expect("watch works")
        .unwrap_or_else(|| panic!("{namespace}/{name} is gone"))
}

/// What the watch saw of one Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    State {
        uid: String,
        /// `metadata.generation`: each change of the spec (a new pod template rolls the pods).
        generation: i64,
        replicas: Option<i32>,
        available: Option<i32>,
        rolling: bool,
    },
    Deleted {
        uid: String,
    },
}

/// Every state of the FeatureStores' feature-server Deployments (`namespace/name`), consecutive
/// repeats folded, from one cluster-wide watch, with the highest resourceVersion it saw. The label
/// `feast.dev/service-type` leaves out the Feast operator's lineage-server Deployment.
struct DeploymentHistory {
    seen: Arc<Mutex<BTreeMap<String, Vec<Seen>>>>,
    version: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl DeploymentHistory {
    /// Starts the watch and returns once its initial list is recorded.
    async fn start(cluster: &Cluster, namespaces: &[String]) -> Self {
        let api: Api<Deployment> = Api::all(cluster.client.clone());
        let ours: BTreeSet<String> = namespaces.iter().cloned().collect();
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let (version_tx, version) = tokio::sync::watch::channel(0);
        let (listed_tx, listed) = tokio::sync::oneshot::channel();
        let record = Arc::clone(&seen);
        let config = watcher::Config::default().labels("feast.dev/name,!feast.dev/service-type");
        let task = tokio::spawn(async move {
            let mut listed_tx = Some(listed_tx);
            let mut events = watcher(api, config).default_backoff().boxed();
            while let Some(Ok(event)) = events.next().await {
                let (deployment, deleted) = match event {
                    watcher::Event::Apply(d) | watcher::Event::InitApply(d) => (d, false),
                    watcher::Event::Delete(d) => (d, true),
                    watcher::Event::InitDone => {
                        if let Some(listed) = listed_tx.take() {
                            let _ = listed.send(());
                        }
                        continue;
                    }
                    watcher::Event::Init => continue,
                };
                if !ours.contains(&deployment.namespace().unwrap_or_default()) {
                    continue;
                }
                let key = format!(
                    "{}/{}",
                    deployment.namespace().unwrap_or_default(),
                    deployment.name_any()
                );
                let states = &mut *record.lock().expect("history lock");
                let states = states.entry(key).or_insert_with(Vec::new);
                let now = observed(&deployment, deleted);
                if states.last() != Some(&now) {
                    states.push(now);
                }
                version_tx.send_modify(|v| *v = (*v).max(resource_version(&deployment)));
            }
        });
        tokio::time::timeout(patience(), listed)
            .await
            .expect("the Deployment watch lists within the patience")
            .expect("the watch runs");
        Self {
            seen,
            version,
            task,
        }
    }

    /// The last state of each Deployment.
    fn latest(&self) -> BTreeMap<String, Seen> {
        let seen = self.seen.lock().expect("history lock");
        seen.iter()
            .filter_map(|(key, states)| Some((key.clone(), states.last()?.clone())))
            .collect()
    }

    /// The whole history once the watch has seen `version` or a later one.
    async fn until_seen(&self, version: u64) -> BTreeMap<String, Vec<Seen>> {
        let mut seen_version = self.version.clone();
        let caught_up = seen_version.wait_for(|seen| *seen >= version);
        tokio::time::timeout(patience(), caught_up)
            .await
            .unwrap_or_else(|_| panic!("the Deployment watch did not reach version {version}"))
            .expect("the watch runs");
        self.seen.lock().expect("history lock").clone()
    }
}

impl Drop for DeploymentHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn observed(deployment: &Deployment, deleted: bool) -> Seen {
    let uid = deployment.uid().unwrap_or_default();
    if deleted {
        return Seen::Deleted { uid };
    }
    let spec = deployment.spec.as_ref();
    let strategy = spec.and_then(|s| s.strategy.as_ref());
    Seen::State {
        uid,
        generation: deployment.metadata.generation.unwrap_or_default(),
        replicas: spec.and_then(|s| s.replicas),
        available: deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas),
        rolling: strategy.and_then(|s| s.type_.as_deref()) == Some("RollingUpdate"),
    }
}

/// The states as `g<generation>:replicas/available` (`R`: RollingUpdate), `deleted`, or `uid …`
/// when it changes.
fn shown(states: &[Seen]) -> String {
    let mut uid_before = None;
    let mut shown = Vec::new();
    for state in states {
        match state {
            Seen::Deleted { .. } => shown.push("deleted".to_owned()),
            Seen::State {
                uid,
                generation,
                replicas,
                available,
                rolling,
            } => {
                if uid_before.is_some_and(|before| before != uid) {
                    shown.push(format!("uid {uid}"));
                }
                uid_before = Some(uid);
                let count = |n: &Option<i32>| n.map_or("-".to_owned(), |n| n.to_string());
                let strategy = if *rolling { "R" } else { "" };
                shown.push(format!(
                    "g{generation}:{}/{}{strategy}",
                    count(replicas),
                    count(available)
                ));
            }
        }
    }
    shown.join(" ")
}

fn resource_version(deployment: &Deployment) -> u64 {
    let version = deployment.metadata.resource_version.as_deref();
    version.and_then(|v| v.parse().ok()).unwrap_or_default()
}

/// What went wrong for each Deployment since `before`: a deletion, another uid, other replicas asked
/// for, more than the one roll the takeover makes (the generation moves on at most once), or
/// (RollingUpdate under the Feast operator) fewer available than before.
fn judge(before: &BTreeMap<String, Seen>, seen: &BTreeMap<String, Vec<Seen>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, first) in before {
        let Seen::State {
            uid,
            generation,
            replicas,
            available,
            rolling,
        } = first
        else {
            problems.push(format!("{key}: deleted before the takeover"));
            continue;
        };
        let states = seen.get(key).map(Vec::as_slice).unwrap_or_default();
        let after = states.iter().skip_while(|state| *state != first);
        for state in after {
            match state {
                Seen::Deleted { .. } => problems.push(format!("{key}: deleted: {states:?}")),
                Seen::State {
                    uid: other,
                    generation: spec_change,
                    replicas: asked,
                    available: now,
                    ..
                } => {
                    if *spec_change > generation + 1 {
                        problems.push(format!("{key}: rolled more than once: {states:?}"));
                    }
                    if other != uid {
                        problems.push(format!("{key}: recreated: {states:?}"));
                    }
                    if asked != replicas {
                        problems.push(format!("{key}: replicas {asked:?}: {states:?}"));
                    }
                    if *rolling && now.unwrap_or(0) < available.unwrap_or(0) {
                        problems.push(format!("{key}: availability dipped: {states:?}"));
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn the_mix_puts_the_scaled_samples_first_and_goes_round() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let cases = all_cases(&corpus);
    let mixed = mix(&cases, 60);
    assert_eq!(mixed.len(), 60);
    assert!(mixed[0].replicas() > 1, "{}", mixed[0].label);
    assert!(mixed.iter().all(|case| !case.label.contains('#')));
    let scaled = mixed.iter().take(20).filter(|c| c.replicas() > 1).count();
    assert!(scaled >= 4, "{scaled} scaled among the first 20");
}

#[test]
fn a_takeover_fails_on_a_recreate_a_replica_change_or_a_dip_when_rolling() {
    let state = |uid: &str, replicas: i32, available: i32, rolling: bool| Seen::State {
        uid: uid.to_owned(),
        generation: 1,
        replicas: Some(replicas),
        available: Some(available),
        rolling,
    };
    let before = BTreeMap::from([
        ("a/rolling".to_owned(), state("u1", 3, 3, true)),
        ("a/recreate".to_owned(), state("u2", 1, 1, false)),
    ]);
    let fine = BTreeMap::from([
        (
            "a/rolling".to_owned(),
            vec![
                state("u1", 3, 3, true),
                state("u1", 3, 4, true),
                state("u1", 3, 3, true),
            ],
        ),
        (
            "a/recreate".to_owned(),
            vec![
                state("u2", 1, 1, false),
                state("u2", 1, 0, false),
                state("u2", 1, 1, false),
            ],
        ),
    ]);
    assert_eq!(judge(&before, &fine), Vec::<String>::new());
    let dipped = BTreeMap::from([(
        "a/rolling".to_owned(),
        vec![state("u1", 3, 3, true), state("u1", 3, 2, true)],
    )]);
    assert_eq!(
        judge(&before, &dipped).len(),
        1,
        "{:?}",
        judge(&before, &dipped)
    );
    let recreated = BTreeMap::from([(
        "a/recreate".to_owned(),
        vec![
            state("u2", 1, 1, false),
            Seen::Deleted { uid: "u2".into() },
            state("u3", 1, 0, false),
        ],
    )]);
    assert_eq!(judge(&before, &recreated).len(), 2);
    let rescaled = BTreeMap::from([(
        "a/recreate".to_owned(),
        vec![state("u2", 1, 1, false), state("u2", 0, 0, false)],
    )]);
    assert_eq!(judge(&before, &rescaled).len(), 1);
    let rolled = |generation| Seen::State {
        uid: "u2".to_owned(),
        generation,
        replicas: Some(1),
        available: Some(1),
        rolling: false,
    };
    let twice = BTreeMap::from([(
        "a/recreate".to_owned(),
        vec![rolled(1), rolled(2), rolled(3)],
    )]);
    assert_eq!(
        judge(&before, &twice).len(),
        1,
        "{:?}",
        judge(&before, &twice)
    );
    let once = BTreeMap::from([("a/recreate".to_owned(), vec![rolled(1), rolled(2)])]);
    assert_eq!(judge(&before, &once), Vec::<String>::new());
}
