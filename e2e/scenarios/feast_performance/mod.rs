//! Performance of the Feast operator and of fieldwise, each alone on the same real control plane
//! (issue 24): N FeatureStores (a round-robin of reference samples) exist before the operator starts;
//! then time to all Ready, requests by verb during the cold start, requests over a steady window,
//! requests per spec change, and the operator process's CPU time and peak RSS. Requests are counted
//! from the API server's audit log by `User-Agent`, so the control plane must log reads
//! (`FIELDWISE_CLUSTER_AUDIT_READS=1 e2e/cluster/up`). The Feast operator runs first; its
//! FeatureStores and namespaces are deleted (and awaited) before fieldwise starts on fresh ones.
//! Prints markdown tables for docs/PERFORMANCE.md; asserts nothing about the figures.
//!
//! `e2e/feast-operator/README.md` ("Performance") says how to run it.

mod audit;
mod process;
mod report;

use std::{
    collections::{BTreeMap, HashSet},
    fmt::Debug,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fieldwise_api::v1::FeatureStore;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Namespace, rbac::v1::ClusterRoleBinding},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    discovery::ApiResource,
    runtime::{
        wait::await_condition,
        watcher::{self, Event},
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::{
    audit::{AuditLog, Counts},
    process::{ControlPlaneCpu, Cost, Kind, Operator},
};
use crate::{
    feast_side_by_side::{
        FEAST_SYSTEM_NAMESPACE, create_namespace, feast_operator_binary,
        refuse_other_feature_stores,
    },
    harness::{Cluster, KUBECONFIG_VARIABLE, Target, USER, run_with},
};

/// How many FeatureStores (default 100).
const N_VARIABLE: &str = "E2E_FEAST_PERF_N";
/// The samples, comma-separated file names of the reference corpus (default [`DEFAULT_MIX`]).
const SAMPLES_VARIABLE: &str = "E2E_FEAST_PERF_SAMPLES";
/// The steady window in seconds (default 60).
const STEADY_VARIABLE: &str = "E2E_FEAST_PERF_STEADY_SECONDS";
/// How many spec changes (default 5).
const CHANGES_VARIABLE: &str = "E2E_FEAST_PERF_CHANGES";
/// How long the cold start may take to reach all Ready, in seconds (default 1200).
const TIMEOUT_VARIABLE: &str = "E2E_FEAST_PERF_TIMEOUT_SECONDS";
/// `fieldwise`'s binary (default `target/release/fieldwise` of this workspace).
const FIELDWISE_VARIABLE: &str = "E2E_FIELDWISE_BINARY";

/// Samples that need no PersistentVolume (the control plane has 60) and share their Secrets when
/// several are in one namespace: file persistence, with UI, every remote server, database
/// persistence, three replicas with a PDB, debug log levels, a git feature repository.
const DEFAULT_MIX: [&str; 7] = [
    "v1_featurestore.yaml",
    "v1_featurestore_with_ui.yaml",
    "v1_featurestore_all_remote_servers.yaml",
    "v1_featurestore_db_persistence.yaml",
    "v1_featurestore_scaling_static.yaml",
    "v1_featurestore_services_loglevel.yaml",
    "v1_featurestore_git.yaml",
];
/// The spec changes add an env var to this sample's online server (which its spec already names).
const CHANGE_SAMPLE: &str = "v1_featurestore_services_loglevel.yaml";
/// FeatureStores per namespace.
const PER_NAMESPACE: usize = 10;
/// An operator has settled when it has sent no write for this long: longer than the Feast
/// operator's requeue after an error or an unavailable Deployment (`RequeueDelayError`, 5 s).
const QUIET: Duration = Duration::from_secs(10);
/// How long settling may take after all Ready or a change.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// How long deleting one run's FeatureStores and namespaces may take.
const CLEANUP_LIMIT: Duration = Duration::from_secs(900);
/// Concurrent requests while creating the FeatureStores (before the operator starts).
const SETUP_CONCURRENCY: usize = 8;

#[test]
#[ignore = "needs a real control plane of its own that audits reads, and the Feast operator: see \
            e2e/feast-operator/README.md"]
fn the_feast_operator_and_fieldwise_measured_alone() {
    run_with(Target::RealCluster, false, measure);
}

/// What the run is made of.
struct Setup {
    n: usize,
    samples: Vec<Sample>,
    steady: Duration,
    changes: usize,
    timeout: Duration,
}

/// A reference sample: its FeatureStore document and the Secrets it brings.
struct Sample {
    file: String,
    /// The FeatureStores' names: `<short>-<index>`.
    short: String,
    feature_store: Value,
    secrets: Vec<Value>,
}

/// One FeatureStore of the run.
struct Placed {
    namespace: String,
    name: String,
    sample: usize,
}

/// Everything measured of one operator.
pub struct Measured {
    kind: Kind,
    started_at: Timestamp,
    load_before: String,
    /// Time from start to every FeatureStore Ready; `None` if the timeout came first.
    ready: Option<Duration>,
    ready_count: usize,
    /// Time from start to its last write of the cold start, and whether it settled in time.
    last_write: Duration,
    /// Time from start to its last write of the cold start to anything but a FeatureStore: what
    /// it made is all there; the rest is the control plane's (pods) and the status.
    last_child_write: Duration,
    settled: bool,
    cold: Counts,
    cold_cost: Cost,
    /// The control plane's CPU during the cold start and during the whole run (until the changes
    /// were done).
    control_cold: ControlPlaneCpu,
    control_run: ControlPlaneCpu,
    steady: Counts,
    steady_seconds: f64,
    changes: Vec<Change>,
    end_cost: Cost,
}

/// One spec change: the operator's requests until it settled, and the time until the Deployment had it.
struct Change {
    counts: Counts,
    latency: Duration,
    settled: bool,
}

async fn measure(cluster: Cluster) {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let setup = Setup::from_env(&corpus);
    let kubeconfig = PathBuf::from(std::env::var_os(KUBECONFIG_VARIABLE).expect("E2E_KUBECONFIG"));
    let mut audit = AuditLog::beside(&kubeconfig);
    refuse_other_feature_stores(&cluster).await;
    cluster.namespace(FEAST_SYSTEM_NAMESPACE).await;
    let operators = [
        (Kind::Feast, feast_operator_binary()),
        (Kind::Fieldwise, fieldwise_binary()),
    ];
    let mut runs = Vec::new();
    for (kind, binary) in operators {
        let run = measure_one(&cluster, &setup, kind, &binary, &kubeconfig, &mut audit).await;
        runs.push(run);
    }
    println!("{}", report::markdown(&setup.describe(), &runs));
}

impl Setup {
    fn from_env(corpus: &Path) -> Self {
        let number = |variable: &str, default: u64| {
            std::env::var(variable)
                .ok()
                .map(|value| value.parse().unwrap_or_else(|e| panic!("{variable}: {e}")))
                .unwrap_or(default)
        };
        let files: Vec<String> = match std::env::var(SAMPLES_VARIABLE) {
            Ok(list) if !list.trim().is_empty() => {
                list.split(',').map(|s| s.trim().to_owned()).collect()
            }
            _ => DEFAULT_MIX.iter().map(|s| (*s).to_owned()).collect(),
        };
        Self {
            n: number(N_VARIABLE, 100) as usize,
            samples: files
                .iter()
                .map(|file| Sample::read(corpus, file))
                .collect(),
            steady: Duration::from_secs(number(STEADY_VARIABLE, 60)),
            changes: number(CHANGES_VARIABLE, 5) as usize,
            timeout: Duration::from_secs(number(TIMEOUT_VARIABLE, 1200)),
        }
    }

    fn describe(&self) -> String {
        let samples: Vec<&str> = self.samples.iter().map(|s| s.file.as_str()).collect();
        format!(
            "N = {} FeatureStores ({} per namespace), round-robin of {}; steady window {} s; {} \
             spec changes",
            self.n,
            PER_NAMESPACE,
            samples.join(", "),
            self.steady.as_secs(),
            self.changes
        )
    }

    /// FeatureStore `i` is of sample `i mod samples`, named `<short>-<i>`, in namespace
    /// `<prefix><i / PER_NAMESPACE>`.
    fn place(&self, prefix: &str) -> Vec<Placed> {
        (0..self.n)
            .map(|index| {
                let sample = index % self.samples.len();
                Placed {
                    namespace: format!("{prefix}{}", index / PER_NAMESPACE),
                    name: format!("{}-{index}", self.samples[sample].short),
                    sample,
                }
            })
            .collect()
    }
}

impl Sample {
    fn read(corpus: &Path, file: &str) -> Self {
        let path = corpus.join("samples").join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(
            &text,
            fieldwise::featurestore::render::kubernetes_yaml(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let of_kind = |kind: &str| {
            documents
                .iter()
                .filter(|d| d["kind"] == kind)
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut stores = of_kind("FeatureStore");
        assert_eq!(stores.len(), 1, "{file}: one FeatureStore");
        let short = file
            .trim_start_matches("v1_featurestore")
            .trim_end_matches(".yaml")
            .trim_start_matches('_')
            .replace('_', "-");
        Self {
            file: file.to_owned(),
            short: if short.is_empty() {
                "basic".into()
            } else {
                short
            },
            feature_store: stores.remove(0),
            secrets: of_kind("Secret"),
        }
    }
}

/// `E2E_FIELDWISE_BINARY`, else this workspace's release build.
fn fieldwise_binary() -> PathBuf {
    let path = std::env::var_os(FIELDWISE_VARIABLE).map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/release/fieldwise"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: cargo build --release --bin fieldwise, or set {FIELDWISE_VARIABLE}",
        path.display()
    );
    path
}

/// The whole run of one operator, from creating its FeatureStores to removing them.
async fn measure_one(
    cluster: &Cluster,
    setup: &Setup,
    kind: Kind,
    binary: &Path,
    kubeconfig: &Path,
    audit: &mut AuditLog,
) -> Measured {
    let prefix = format!("{}-{}", cluster.namespace, kind.letter());
    let placed = setup.place(&prefix);
    create_feature_stores(&cluster.client, setup, &placed).await;
    let load_before = load_average();
    let started_at = Timestamp::now();
    let started = Instant::now();
    let control_before = ControlPlaneCpu::now(kubeconfig);
    let mut operator = Operator::start(kind, binary, kubeconfig);
    let (ready, ready_count) =
        all_ready(&cluster.client, &prefix, setup.n, started, setup.timeout).await;
    eprintln!(
        "feast_performance: {}: {ready_count} of {} Ready after {:?}",
        kind.name(),
        setup.n,
        started.elapsed()
    );
    operator.assert_running();
    let (settled_at, settled) = audit
        .until_quiet(kind.agent(), started_at, QUIET, SETTLE_LIMIT)
        .await;
    let cold_cost = operator.cost();
    let control_cold = ControlPlaneCpu::now(kubeconfig).since(control_before);
    let cold = Counts::of(audit.of(kind.agent(), started_at, settled_at));
    let since_start = |at: Timestamp| at.duration_since(started_at).unsigned_abs();
    let last_write = since_start(audit.last_write(kind.agent(), started_at));
    let last_child_write = since_start(audit.last_child_write(kind.agent(), started_at));
    let (steady, steady_seconds) = steady_state(audit, kind, setup.steady).await;
    let mut changes = Vec::new();
    for (number, target) in change_targets(setup, &placed).into_iter().enumerate() {
        changes.push(one_change(cluster, audit, kind, setup, target, number).await);
    }
    operator.assert_running();
    let end_cost = operator.cost();
    let control_run = ControlPlaneCpu::now(kubeconfig).since(control_before);
    remove_run(cluster, operator, &placed, &prefix).await;
    Measured {
        kind,
        started_at,
        load_before,
        ready,
        ready_count,
        last_write,
        last_child_write,
        settled,
        cold,
        cold_cost,
        control_cold,
        control_run,
        steady,
        steady_seconds,
        changes,
        end_cost,
    }
}

/// `/proc/loadavg`'s three load averages.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The namespaces, each with the Secrets of every sample, then the FeatureStores, as the user.
async fn create_feature_stores(client: &Client, setup: &Setup, placed: &[Placed]) {
    let namespaces: Vec<&str> = placed
        .iter()
        .map(|p| p.namespace.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let secrets: BTreeMap<String, &Value> = setup
        .samples
        .iter()
        .flat_map(|sample| &sample.secrets)
        .map(|secret| {
            (
                secret["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                secret,
            )
        })
        .collect();
    let mut documents = Vec::new();
    for namespace in &namespaces {
        create_namespace(client, namespace).await;
        for secret in secrets.values() {
            documents.push(in_namespace(secret, namespace, None));
        }
    }
    for store in placed {
        let sample = &setup.samples[store.sample].feature_store;
        documents.push(in_namespace(sample, &store.namespace, Some(&store.name)));
    }
    futures::stream::iter(documents)
        .map(|document| apply(client, document))
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// The document in `namespace` (whatever it named), renamed to `name` if given.
fn in_namespace(document: &Value, namespace: &str, name: Option<&str>) -> Value {
    let mut document = document.clone();
    document["metadata"]["namespace"] = Value::from(namespace);
    if let Some(name) = name {
        document["metadata"]["name"] = Value::from(name);
    }
    document
}

/// Server-side apply of a Secret or a FeatureStore as the user.
async fn apply(client: &Client, document: Value) {
    let resource = if document["kind"] == "Secret" {
        ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&())
    } else {
        ApiResource::erase::<FeatureStore>(&())
    };
    let namespace = document["metadata"]["namespace"]
        .as_str()
        .expect("a namespace");
    let name = document["metadata"]["name"].as_str().expect("a name");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.patch(
        name,
        &PatchParams::apply(USER).force(),
        &Patch::Apply(&document),
    )
    .await
    .unwrap_or_else(|e| panic!("{namespace}/{name}: {e}"));
}

fn is_ready(fs: &FeatureStore) -> bool {
    fs.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
}

/// Watches every FeatureStore until the `n` in namespaces starting with `prefix` are Ready: the time
/// since `started`, or `None` when `limit` came first; and how many were Ready then.
async fn all_ready(
    client: &Client,
    prefix: &str,
    n: usize,
    started: Instant,
    limit: Duration,
) -> (Option<Duration>, usize) {
    let api: Api<FeatureStore> = Api::all(client.clone());
    let mut ready = HashSet::new();
    let watching = async {
        let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(event) = events.try_next().await.expect("FeatureStores watchable") {
            let (Event::Apply(fs) | Event::InitApply(fs)) = event else {
                continue;
            };
            if !fs.namespace().unwrap_or_default().starts_with(prefix) {
                continue;
            }
            let key = (fs.namespace(), fs.name_any());
            if is_ready(&fs) {
                ready.insert(key);
            } else {
                ready.remove(&key);
            }
            if ready.len() >= n {
                return started.elapsed();
            }
        }
        unreachable!("a watcher's stream does not end")
    };
    let outcome = tokio::time::timeout(limit, watching).await.ok();
    (outcome, ready.len())
}

/// The operator's requests over the steady window: nothing changes meanwhile, so the window is
/// simply waited out.
async fn steady_state(audit: &mut AuditLog, kind: Kind, window: Duration) -> (Counts, f64) {
    let from = Timestamp::now();
    tokio::time::sleep(window).await;
    let to = Timestamp::now();
    audit.read_new();
    let counts = Counts::of(audit.of(kind.agent(), from, to));
    (counts, to.duration_since(from).as_secs_f64())
}

/// The FeatureStores of [`CHANGE_SAMPLE`] that are changed, spread over the run.
fn change_targets<'a>(setup: &Setup, placed: &'a [Placed]) -> Vec<&'a Placed> {
    let candidates: Vec<&Placed> = placed
        .iter()
        .filter(|p| setup.samples[p.sample].file == CHANGE_SAMPLE)
        .collect();
    assert!(
        setup.changes == 0 || !candidates.is_empty(),
        "the spec changes need FeatureStores of {CHANGE_SAMPLE}"
    );
    let step = (candidates.len() / setup.changes.max(1)).max(1);
    candidates
        .into_iter()
        .step_by(step)
        .take(setup.changes)
        .collect()
}

/// Adds `PERF_CHANGE=<number>` to the online server of `target` (the user's apply), waits until the
/// operator has put it into the Deployment's pod template, then until it settled; counts the
/// operator's requests from the apply to then.
async fn one_change(
    cluster: &Cluster,
    audit: &mut AuditLog,
    kind: Kind,
    setup: &Setup,
    target: &Placed,
    number: usize,
) -> Change {
    let sample = &setup.samples[target.sample].feature_store;
    let mut document = in_namespace(sample, &target.namespace, Some(&target.name));
    let value = number.to_string();
    document["spec"]["services"]["onlineStore"]["server"]["env"] =
        json!([{"name": "PERF_CHANGE", "value": value}]);
    let from = Timestamp::now();
    let sent = Instant::now();
    apply(&cluster.client, document).await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &target.namespace);
    let name = format!("feast-{}", target.name);
    let changed = |deployment: Option<&Deployment>| has_env(deployment, "PERF_CHANGE", &value);
    tokio::time::timeout(SETTLE_LIMIT, await_condition(deployments, &name, changed))
        .await
        .unwrap_or_else(|_| panic!("{}: {name} never got the change", kind.name()))
        .expect("Deployments watchable");
    let latency = sent.elapsed();
    let (to, settled) = audit
        .until_quiet(kind.agent(), from, QUIET, SETTLE_LIMIT)
        .await;
    Change {
        counts: Counts::of(audit.of(kind.agent(), from, to)),
        latency,
        settled,
    }
}

fn has_env(deployment: Option<&Deployment>, name: &str, value: &str) -> bool {
    let containers = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|spec| spec.template.spec.as_ref())
        .map(|pod| pod.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .any(|env| env.name == name && env.value.as_deref() == Some(value))
}

/// Removes one run before the next starts, so the two never share the control plane's work: the
/// Feast operator sets no finalizer, so it stops first and the garbage collector removes the
/// children (and the ClusterRoleBindings it leaks are deleted here); fieldwise's finalizer needs
/// it running while its FeatureStores go. Then the namespaces, until they are gone.
async fn remove_run(cluster: &Cluster, operator: Operator, placed: &[Placed], prefix: &str) {
    let kind = operator.kind;
    let namespaces: std::collections::BTreeSet<&str> =
        placed.iter().map(|p| p.namespace.as_str()).collect();
    if kind == Kind::Feast {
        operator.stop().await;
        delete_feature_stores(&cluster.client, &namespaces).await;
        delete_leaked_bindings(&cluster.client).await;
    } else {
        delete_feature_stores(&cluster.client, &namespaces).await;
        let stores: Api<FeatureStore> = Api::all(cluster.client.clone());
        until_none_left(stores, prefix).await;
        operator.stop().await;
    }
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    for namespace in &namespaces {
        let _ = api.delete(namespace, &DeleteParams::background()).await;
    }
    until_none_left(api, prefix).await;
    eprintln!("feast_performance: {}'s run removed", kind.name());
}

async fn delete_feature_stores(client: &Client, namespaces: &std::collections::BTreeSet<&str>) {
    for namespace in namespaces {
        let api: Api<FeatureStore> = Api::namespaced(client.clone(), namespace);
        api.delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .expect("FeatureStores deleted");
    }
}

/// The ClusterRoleBindings the Feast operator made; this control plane has no others of it.
async fn delete_leaked_bindings(client: &Client) {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let labelled = ListParams::default().labels("app.kubernetes.io/managed-by=feast-operator");
    api.delete_collection(&DeleteParams::background(), &labelled)
        .await
        .expect("ClusterRoleBindings deleted");
}

/// Watches until no object whose namespace (or, for a Namespace, name) starts with `prefix` is
/// left, at most [`CLEANUP_LIMIT`].
async fn until_none_left<K>(api: Api<K>, prefix: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let of_run = |object: &K| {
        object
            .namespace()
            .unwrap_or_else(|| object.name_any())
            .starts_with(prefix)
    };
    let mut left = HashSet::new();
    let mut listed = false;
    let watching = async {
        let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(event) = events.try_next().await.expect("watchable") {
            match event {
                Event::Init => left.clear(),
                Event::InitDone => listed = true,
                Event::Apply(object) | Event::InitApply(object) if of_run(&object) => {
                    left.insert(object.name_any());
                }
                Event::Delete(object) => {
                    left.remove(&object.name_any());
                }
                _ => {}
            }
            if listed && left.is_empty() {
                return;
            }
        }
    };
    if tokio::time::timeout(CLEANUP_LIMIT, watching).await.is_err() {
        panic!("still left after {CLEANUP_LIMIT:?}: {} objects", left.len());
    }
}
