//! `fieldwise demo`: fieldwise working end to end with no cluster. Starts the in-process API emulator
//! with its simulated cluster controllers, installs the CRDs, runs the operator through the same
//! function as `fieldwise run`, applies a sample FeatureStore (and the Secrets in its file) or, with
//! `--prism`, the ADR's PrismCluster `prism-local`, with server-side apply, waits until each resource
//! is up (a FeatureStore `Ready`, a PrismCluster `Running`), and prints what the operator built.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fieldwise_e2e::emulator::WatchInterrupt;
use fieldwise_e2e::sim::{SimOptions, Simulators};
use fieldwise_e2e::{Emulator, EmulatorHandle, Options};
use fieldwise_observability::{Health, LogFormat, Metrics, TelemetryConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::runtime::{RunOptions, run as run_controller};

/// The sample applied when `--sample` is not given (embedded, so the demo runs from any directory).
pub const DEFAULT_SAMPLE: &str = include_str!("../../deploy/samples/featurestore-basic.yaml");
/// The sample `--prism` applies: ADR-059's `prism-local`, in its namespace `prism`.
pub const PRISM_SAMPLE: &str = include_str!("../../deploy/samples/prismcluster-local.yaml");

/// The field manager the demo applies the sample and the CRDs with, as a user's kubectl would.
const DEMO_MANAGER: &str = "fieldwise-demo";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the emulator and the operator running after Ready, and print the KUBECONFIG for kubectl.
    #[arg(long)]
    pub keep_running: bool,
    /// Apply the PrismCluster sample `prism-local` (ADR-059) instead of the basic FeatureStore.
    #[arg(long, conflicts_with = "sample")]
    pub prism: bool,
    /// Manifests to apply instead of the built-in basic sample: FeatureStores, PrismClusters, the
    /// Secrets they need, KEDA ScaledObjects. Repeat for several files.
    #[arg(long, value_name = "FILE")]
    pub sample: Vec<PathBuf>,
    /// How long to wait for each FeatureStore to become Ready and each PrismCluster Running.
    #[arg(long, default_value_t = 60)]
    pub timeout_seconds: u64,
    /// Where --keep-running writes the kubeconfig (default: fieldwise-demo.kubeconfig in the temp dir).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the emulator: {0}")]
    Emulator(#[from] std::io::Error),
    #[error("cannot read the sample: {0}")]
    Sample(String),
    #[error("Kubernetes API request failed: {}", crate::runtime::errors::message(.0))]
    Kube(#[from] kube::Error),
    #[error("the operator stopped: {0}")]
    Operator(String),
    #[error("{kind} {name} did not become {phase} within {seconds}s; {last}")]
    NotReady {
        kind: String,
        name: String,
        phase: &'static str,
        seconds: u64,
        last: String,
    },
}

/// A running demo: the emulator, the simulators and the operator, until [`Demo::shutdown`].
pub struct Demo {
    pub emulator: EmulatorHandle,
    pub simulators: Simulators,
    /// A client of the emulator (no retries, like the operator's).
    pub client: kube::Client,
    /// Every FeatureStore and PrismCluster in the sample, in sample order.
    pub owners: Vec<SampleOwner>,
    stop: Option<oneshot::Sender<()>>,
    operator: Option<JoinHandle<Result<(), String>>>,
}

/// A resource of the sample that a controller reconciles, which the demo waits for and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleOwner {
    /// `FeatureStore` or `PrismCluster`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The kinds a sample may hold: `(apiVersion, kind, plural)`, in the order they are applied
/// (Secrets first, so an owner finds them on its first reconcile; ScaledObjects after the owners).
const SAMPLE_KINDS: [(&str, &str, &str); 4] = [
    ("v1", "Secret", "secrets"),
    ("feast.dev/v1", "FeatureStore", "featurestores"),
    ("prism.io/v1alpha1", "PrismCluster", "prismclusters"),
    ("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
];

/// The phase that means an owner of `kind` is up.
fn ready_phase(kind: &str) -> Option<&'static str> {
    match kind {
        "FeatureStore" => Some("Ready"),
        "PrismCluster" => Some("Running"),
        _ => None,
    }
}

fn sample_resource(api_version: &str, kind: &str) -> Option<ApiResource> {
    let (_, _, plural) = SAMPLE_KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// One document of the sample file.
struct Manifest {
    resource: ApiResource,
    namespace: String,
    name: String,
    body: Value,
}

fn parse_sample(yaml: &str) -> Result<Vec<Manifest>, DemoError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| DemoError::Sample(e.to_string()))?;
    let mut out = Vec::new();
    for body in docs.into_iter().filter(|d| !d.is_null()) {
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        let kind = body["kind"].as_str().unwrap_or_default();
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(resource) = sample_resource(api_version, kind) else {
            return Err(DemoError::Sample(format!(
                "only FeatureStores (feast.dev/v1), PrismClusters (prism.io/v1alpha1), Secrets (v1) and ScaledObjects (keda.sh/v1alpha1) are applied; found {api_version} {kind} {name}"
            )));
        };
        if name.is_empty() {
            return Err(DemoError::Sample(format!("a {kind} has no metadata.name")));
        }
        let namespace = body["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        out.push(Manifest {
            resource,
            namespace,
            name,
            body,
        });
    }
    if !out.iter().any(|m| ready_phase(&m.resource.kind).is_some()) {
        return Err(DemoError::Sample(
            "the sample has no FeatureStore or PrismCluster".into(),
        ));
    }
    Ok(out)
}

fn client_of(emulator: &EmulatorHandle) -> Result<kube::Client, DemoError> {
    let uri = match emulator.url().parse() {
        Ok(uri) => uri,
        Err(e) => {
            return Err(DemoError::Sample(format!(
                "emulator address {}: {e}",
                emulator.url()
            )));
        }
    };
    let mut config = kube::Config::new(uri);
    config.default_namespace = "default".into();
    // As in `fieldwise run`: no retries (the engine retries by itself), fieldwise's User-Agent.
    Ok(kube::Client::try_from(super::run::operator_config(config))?)
}

async fn install_crds(client: &kube::Client) -> Result<(), DemoError> {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in fieldwise_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply(DEMO_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    Ok(())
}

/// The ClusterRoles the install ships, which FeatureStores' bindings refer to (as `kubectl apply -k
/// deploy/default` would install them), so that the demo's bindings grant what they say.
async fn install_shipped_cluster_roles(client: &kube::Client) -> Result<(), DemoError> {
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    for role in crate::deploy::rbac::shipped_cluster_roles() {
        let name = role.metadata.name.clone().unwrap_or_default();
        roles
            .patch(
                &name,
                &PatchParams::apply(DEMO_MANAGER).force(),
                &Patch::Apply(&role),
            )
            .await?;
    }
    Ok(())
}

async fn apply_sample(client: &kube::Client, manifests: &[Manifest]) -> Result<(), DemoError> {
    create_namespaces(client, manifests).await?;
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| {
        SAMPLE_KINDS
            .iter()
            .position(|(_, kind, _)| *kind == m.resource.kind)
    });
    for m in ordered {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &m.namespace, &m.resource);
        api.patch(
            &m.name,
            &PatchParams::apply(DEMO_MANAGER).force(),
            &Patch::Apply(&m.body),
        )
        .await?;
    }
    Ok(())
}

/// The sample's namespaces other than `default` (which exists), as `kubectl create namespace`
/// would make them: the API server refuses objects in a namespace that does not exist.
async fn create_namespaces(client: &kube::Client, manifests: &[Manifest]) -> Result<(), DemoError> {
    let namespaces: BTreeSet<&str> = manifests.iter().map(|m| m.namespace.as_str()).collect();
    let api: Api<Namespace> = Api::all(client.clone());
    for namespace in namespaces.into_iter().filter(|ns| *ns != "default") {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace}});
        api.patch(
            namespace,
            &PatchParams::apply(DEMO_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    Ok(())
}

fn owner_api(client: &kube::Client, owner: &SampleOwner) -> Api<DynamicObject> {
    let resource = SAMPLE_KINDS
        .iter()
        .find(|(_, kind, _)| *kind == owner.kind)
        .and_then(|(api_version, kind, _)| sample_resource(api_version, kind))
        .expect("an owner of a sample kind");
    Api::namespaced_with(client.clone(), &owner.namespace, &resource)
}

fn phase(obj: &DynamicObject) -> Option<&str> {
    obj.data.pointer("/status/phase").and_then(Value::as_str)
}

/// Waits (by watch) for the owner's ready phase (FeatureStore `Ready`, PrismCluster `Running`).
async fn wait_ready(
    client: &kube::Client,
    owner: &SampleOwner,
    timeout: Duration,
) -> Result<(), DemoError> {
    let api = owner_api(client, owner);
    let wanted = ready_phase(&owner.kind).expect("an owner kind");
    let (kind, namespace, name) = (&owner.kind, &owner.namespace, &owner.name);
    let ready = |o: Option<&DynamicObject>| o.and_then(phase) == Some(wanted);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, ready)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(DemoError::Operator(format!(
            "watching {kind} {namespace}/{name} failed: {}",
            crate::runtime::errors::message(&e)
        ))),
        Err(_) => {
            let last = match api.get_opt(name).await? {
                Some(object) => format!("last status: {}", status_summary(&object.data)),
                None => "it does not exist".into(),
            };
            Err(DemoError::NotReady {
                kind: kind.clone(),
                name: format!("{namespace}/{name}"),
                phase: wanted,
                seconds: timeout.as_secs(),
                last,
            })
        }
    }
}

fn status_summary(fs: &Value) -> String {
    let mut s = format!(
        "phase {}",
        fs.pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
    );
    for c in fs
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        let _ = write!(
            s,
            "; {}={} ({}: {})",
            field("type"),
            field("status"),
            field("reason"),
            field("message")
        );
    }
    s
}

impl Demo {
    /// Starts everything, applies the sample and waits until every FeatureStore in it is Ready and
    /// every PrismCluster Running.
    pub async fn start(sample_yaml: &str, timeout: Duration) -> Result<Demo, DemoError> {
        let manifests = parse_sample(sample_yaml)?;
        let emulator = Emulator::start(Options::default()).await?;
        let simulators = Simulators::start(&emulator, SimOptions::default());
        let client = client_of(&emulator)?;
        install_crds(&client).await?;
        install_shipped_cluster_roles(&client).await?;
        // KEDA's CRD too, so samples with a ScaledObject work (the KEDA simulator serves them).
        simulators
            .install_keda_crd()
            .map_err(|e| DemoError::Operator(format!("installing KEDA's CRD: {}", e.message)))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let operator = tokio::spawn(run_operator(client.clone(), stopped));
        let mut demo = Demo {
            emulator,
            simulators,
            client,
            owners: manifests
                .iter()
                .filter(|m| ready_phase(&m.resource.kind).is_some())
                .map(|m| SampleOwner {
                    kind: m.resource.kind.clone(),
                    namespace: m.namespace.clone(),
                    name: m.name.clone(),
                })
                .collect(),
            stop: Some(stop),
            operator: Some(operator),
        };
        apply_sample(&demo.client, &manifests).await?;
        for owner in demo.owners.clone() {
            let client = demo.client.clone();
            let waited = tokio::select! {
                r = wait_ready(&client, &owner, timeout) => r,
                r = demo.operator_exit() => Err(r),
            };
            waited?;
        }
        Ok(demo)
    }

    /// Resolves only if the operator task ends (it should not before shutdown).
    async fn operator_exit(&mut self) -> DemoError {
        let Some(task) = self.operator.as_mut() else {
            return std::future::pending().await;
        };
        let why = match task.await {
            Ok(Ok(())) => "it returned".to_string(),
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        self.operator = None;
        DemoError::Operator(why)
    }

    /// The object graph, status and conditions of every FeatureStore and PrismCluster, and where
    /// traces went.
    pub async fn report(&self, traces: &str) -> Result<String, DemoError> {
        let mut out = String::new();
        for owner in &self.owners {
            let object = owner_api(&self.client, owner).get(&owner.name).await?;
            let (kind, namespace, name) = (&owner.kind, &owner.namespace, &owner.name);
            let _ = writeln!(out, "{kind} {namespace}/{name}");
            let _ = writeln!(out, "  objects (kind/name  owner  field managers):");
            let uid = object.metadata.uid.as_deref().unwrap_or("");
            for line in object_graph(&self.emulator, uid) {
                let _ = writeln!(out, "    {line}");
            }
            let _ = writeln!(
                out,
                "  status: phase {}",
                phase(&object).unwrap_or("<none>")
            );
            if let Some(summary) = ready_counts(&object.data) {
                let _ = writeln!(out, "    {summary}");
            }
            for c in object
                .data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
                let _ = writeln!(
                    out,
                    "    {}={}  {}: {}",
                    field("type"),
                    field("status"),
                    field("reason"),
                    field("message")
                );
            }
        }
        let _ = writeln!(out, "traces: {traces}");
        Ok(out)
    }

    /// Stops the operator, the simulators and the emulator.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.operator.take() {
            let _ = task.await;
        }
        self.simulators.shutdown().await;
        // The operator's engine keeps its watches open after `run` returns, and a graceful server
        // shutdown waits for every open stream: end them, and give up waiting after a moment.
        self.emulator
            .server()
            .interrupt_watches(WatchInterrupt::Drop);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.emulator.shutdown()).await;
    }
}

/// Runs the operator as `fieldwise run` does (same function, settings from the environment), until
/// `stopped`.
async fn run_operator(client: kube::Client, stopped: oneshot::Receiver<()>) -> Result<(), String> {
    let settings = super::run::settings(&client).await;
    let options = RunOptions {
        instance: "fieldwise-demo".into(),
        settings,
        ..RunOptions::default()
    };
    let shutdown = async move {
        let _ = stopped.await;
    };
    run_controller(
        client,
        options,
        Arc::new(Metrics::new()),
        Health::new(),
        shutdown,
    )
    .await
    .map_err(|e| crate::runtime::errors::message(&e))
}

/// `Kind/name  owner  managers` for every object the FeatureStore owns (transitively) or that
/// fieldwise wrote, read from the emulator's store.
fn object_graph(emulator: &EmulatorHandle, fs_uid: &str) -> Vec<String> {
    let objects = emulator.server().store.lock().all();
    let kinds: BTreeMap<(String, String), String> = emulator
        .server()
        .registry
        .all()
        .iter()
        .map(|rt| ((rt.group.clone(), rt.plural.clone()), rt.kind.clone()))
        .collect();
    let uid_of = |o: &Value| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut owned: HashSet<String> = HashSet::from([fs_uid.to_string()]);
    // Owner chains are short; repeat until no new object joins.
    loop {
        let before = owned.len();
        for (_, o) in &objects {
            if owner_refs(o)
                .iter()
                .any(|r| owned.contains(r.get("uid").and_then(Value::as_str).unwrap_or("")))
            {
                owned.insert(uid_of(o));
            }
        }
        if owned.len() == before {
            break;
        }
    }
    let mut lines: Vec<String> = objects
        .iter()
        .filter(|(_, o)| {
            let uid = uid_of(o);
            uid != fs_uid
                && (owned.contains(&uid) || managers(o).iter().any(|m| m.starts_with("fieldwise ")))
        })
        .map(|(key, o)| {
            let kind = kinds
                .get(&(key.0.clone(), key.1.clone()))
                .cloned()
                .unwrap_or_else(|| key.1.clone());
            let ns = if key.2.is_empty() {
                String::new()
            } else {
                format!("{}/", key.2)
            };
            let owner = owner_refs(o)
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let owner = if owner.is_empty() {
                "-".to_string()
            } else {
                owner
            };
            format!(
                "{kind}/{ns}{}  owner: {owner}  managers: {}",
                key.3,
                managers(o).join(", ")
            )
        })
        .collect();
    lines.sort();
    lines
}

/// A PrismCluster's ready/desired summaries (what `kubectl get prism` prints), if it has them.
fn ready_counts(status: &Value) -> Option<String> {
    let fields = [
        ("admin", "adminReady"),
        ("proxy", "proxyReady"),
        ("patterns", "patternsReady"),
        ("backends", "backendsReady"),
    ];
    let counts: Vec<String> = fields
        .iter()
        .filter_map(|(label, field)| {
            let value = status.get("status")?.get(*field)?.as_str()?;
            Some(format!("{label} {value}"))
        })
        .collect();
    (!counts.is_empty()).then(|| counts.join(", "))
}

fn owner_refs(o: &Value) -> Vec<Value> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `manager (Operation[/subresource])` per managedFields entry.
fn managers(o: &Value) -> Vec<String> {
    o.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
            let sub = if field("subresource").is_empty() {
                String::new()
            } else {
                format!("/{}", field("subresource"))
            };
            format!("{} ({}{sub})", field("manager"), field("operation"))
        })
        .collect()
}

fn read_sample(args: &Args) -> Result<String, DemoError> {
    if args.prism {
        return Ok(PRISM_SAMPLE.to_string());
    }
    if args.sample.is_empty() {
        return Ok(DEFAULT_SAMPLE.to_string());
    }
    let mut docs = Vec::new();
    for path in &args.sample {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DemoError::Sample(format!("{}: {e}", path.display())))?;
        docs.push(text);
    }
    Ok(docs.join("\n---\n"))
}

async fn demo(args: Args, traces: String) -> Result<(), DemoError> {
    let sample = read_sample(&args)?;
    let demo = Demo::start(&sample, Duration::from_secs(args.timeout_seconds)).await?;
    println!("{}", demo.report(&traces).await?);
    if args.keep_running {
        let path = args
            .kubeconfig
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("fieldwise-demo.kubeconfig"));
        demo.emulator.write_kubeconfig(&path)?;
        println!("The emulator and the operator keep running; press Ctrl-C to stop. For kubectl:");
        println!("export KUBECONFIG={}", path.display());
        super::run::shutdown_signal().await;
    }
    demo.shutdown().await;
    Ok(())
}

/// Stack of every runtime thread: the in-process emulator validates and the operator deserialises the
/// large FeatureStore type in deep frames, more than tokio's 2 MiB default in unoptimised builds.
pub const THREAD_STACK: usize = 16 << 20;

/// The runtime the demo runs on (multi-threaded, [`THREAD_STACK`] stacks).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(THREAD_STACK)
        .enable_all()
        .build()
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker thread, so everything gets the large stack (block_on runs on the caller's thread).
    let task = runtime.spawn(async move {
        let telemetry = TelemetryConfig {
            log_format: LogFormat::Text,
            // The demo's output is the report; logs only for problems unless RUST_LOG says otherwise.
            log_filter: Some(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())),
            trace_filter: None,
        };
        let guard = match fieldwise_observability::init(&telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        let code = match demo(args, guard.export_description()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
        let _ = guard.shutdown().await;
        code
    });
    runtime.block_on(task).unwrap_or_else(|error| {
        eprintln!("error: the demo failed: {error}");
        ExitCode::FAILURE
    })
}
