//! A small cluster for one scenario: fieldwise's CRDs and the operator, on the emulator (with its simulators)
//! or, for the scenarios that need no simulator, on a real cluster (`E2E_KUBECONFIG`, see e2e/README.md).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use fieldwise::{
    runtime::{RunOptions, client::controller_layers, run},
    settings::Settings,
};
use fieldwise_api::v1::FeatureStore;
use fieldwise_e2e::{
    Emulator, EmulatorHandle,
    sim::{SimOptions, Simulators},
};
use fieldwise_observability::{Health, Metrics};
use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Namespace, events::v1::Event},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, Resource, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::GroupVersionKind,
    discovery::{ApiResource, Discovery},
    runtime::{
        WatchStreamExt, conditions,
        wait::{Condition, await_condition},
        watcher,
    },
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

/// The field manager the scenarios write with, standing for a user's `kubectl apply --server-side`.
pub const USER: &str = "e2e-user";
/// Names the kubeconfig of the real cluster the `on_a_real_cluster` scenarios run against.
pub const KUBECONFIG_VARIABLE: &str = "E2E_KUBECONFIG";
/// Label on the namespaces the scenarios create in a real cluster (to find leftovers of a failed run).
pub const NAMESPACE_LABEL: &str = "fieldwise.dev/e2e";

/// How long any awaited condition may take before the scenario fails: `E2E_PATIENCE_SECONDS`, else 300 s
/// when a real cluster is configured (images are pulled, pods really start), else 30 s.
pub fn patience() -> Duration {
    let configured = std::env::var("E2E_PATIENCE_SECONDS")
        .ok()
        .and_then(|seconds| seconds.parse().ok());
    let default = if std::env::var_os(KUBECONFIG_VARIABLE).is_some() {
        300
    } else {
        30
    };
    Duration::from_secs(configured.unwrap_or(default))
}

/// Runs a scenario on a runtime with large stacks (see `fieldwise_e2e::testkit::block_on`).
pub use fieldwise_e2e::testkit::block_on;

/// Where a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The in-process emulator with every simulator on.
    Emulator,
    /// The cluster of `E2E_KUBECONFIG`, in a namespace of its own that is deleted afterwards.
    RealCluster,
}

/// Runs `scenario` on a fresh cluster of `target`. On a real cluster, whatever the outcome, the scenario's
/// FeatureStores are deleted (with an operator running, so their finalizer removes cluster-scoped
/// children) and then its namespace. The operator is started with the cluster when `operator`;
/// otherwise the scenario starts it (`Cluster::start_operator`) once it has set the cluster up.
pub fn run_with<F, Fut>(target: Target, operator: bool, scenario: F)
where
    F: FnOnce(Cluster) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    block_on(async move {
        let cluster = Cluster::start_on(target, SimOptions::default(), operator).await;
        let teardown = (target == Target::RealCluster).then(|| cluster.teardown());
        let outcome = tokio::spawn(scenario(cluster)).await;
        if let Some(teardown) = teardown {
            teardown.run().await;
        }
        if let Err(error) = outcome {
            std::panic::resume_unwind(error.into_panic());
        }
    });
}

/// Declares a scenario twice: `<name>::on_the_emulator`, run by `cargo test`, and `<name>::on_a_real_cluster`,
/// ignored unless asked for (`cargo test --test scenarios -- --ignored`, with `E2E_KUBECONFIG` set).
/// With `operator_started_by_scenario`, the scenario starts the operator itself.
macro_rules! on_every_target {
    ($name:ident, $scenario:ident) => {
        $crate::harness::on_every_target!($name, $scenario, true);
    };
    ($name:ident, $scenario:ident, operator_started_by_scenario) => {
        $crate::harness::on_every_target!($name, $scenario, false);
    };
    ($name:ident, $scenario:ident, $operator:literal) => {
        mod $name {
            #[test]
            fn on_the_emulator() {
                let target = $crate::harness::Target::Emulator;
                $crate::harness::run_with(target, $operator, super::$scenario);
            }

            #[test]
            #[ignore = "needs a real cluster: E2E_KUBECONFIG=path (see e2e/README.md)"]
            fn on_a_real_cluster() {
                let target = $crate::harness::Target::RealCluster;
                $crate::harness::run_with(target, $operator, super::$scenario);
            }
        }
    };
}
pub(crate) use on_every_target;

/// The emulator and its simulators, when the scenario runs on them.
pub struct Emulated {
    pub emulator: EmulatorHandle,
    pub sims: Simulators,
}

pub struct Cluster {
    emulated: Option<Emulated>,
    /// The scenario's own client (the user's).
    pub client: Client,
    /// The operator's client: every write request it sends is counted.
    pub operator_client: Client,
    operator_writes: Arc<AtomicU64>,
    /// The operator's write requests, as `METHOD path`, for messages.
    operator_requests: Arc<std::sync::Mutex<Vec<String>>>,
    /// The answers to the operator's write requests, as `(METHOD path, status code)`.
    operator_answers: Answers,
    /// Every request of the operator, reads too, the API server answered 403 Forbidden, as `METHOD path`.
    operator_forbidden: Arc<std::sync::Mutex<Vec<String>>>,
    /// The configuration the clients were made from (to make the operator's again, impersonating).
    config: Config,
    /// The namespace the scenario works in: `default` on the emulator, a fresh one on a real cluster.
    pub namespace: String,
    pub metrics: Arc<Metrics>,
    settings: Settings,
    /// The namespaces the operator watches: set by [`Self::start_operator_watching`]; else the
    /// scenario's own on a real cluster and all on the emulator.
    watched: Option<Vec<String>>,
    operator: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Cluster {
    /// An emulated cluster with every simulator on, the CRDs installed and the operator running.
    pub async fn start() -> Self {
        Self::start_with(SimOptions::default()).await
    }

    pub async fn start_with(sims: SimOptions) -> Self {
        Self::start_on(Target::Emulator, sims, true).await
    }

    /// A cluster of `target` with fieldwise's CRDs installed, and the operator running if `operator`.
    pub async fn start_on(target: Target, sims: SimOptions, operator: bool) -> Self {
        let operator_writes = Arc::new(AtomicU64::new(0));
        let operator_requests = Arc::default();
        let operator_answers = Answers::default();
        let (emulated, config, namespace) = match target {
            Target::Emulator => {
                let emulator = Emulator::start(Default::default())
                    .await
                    .expect("the emulator starts");
                let sims = Simulators::start(&emulator, sims);
                let config = emulator
                    .config()
                    .expect("the emulator's client configuration");
                (
                    Some(Emulated { emulator, sims }),
                    config,
                    "default".to_owned(),
                )
            }
            Target::RealCluster => (None, real_cluster_config().await, unique_namespace()),
        };
        let client = Client::try_from(config.clone()).expect("a client");
        let operator_forbidden = Arc::default();
        let metrics = Arc::new(Metrics::new());
        let operator_client = counting_client(
            config.clone(),
            operator_writes.clone(),
            Arc::clone(&operator_requests),
            operator_answers.clone(),
            Arc::clone(&operator_forbidden),
            &metrics,
        );
        let mut cluster = Self {
            emulated,
            client,
            operator_client,
            operator_writes,
            operator_requests,
            operator_answers,
            operator_forbidden,
            config,
            namespace,
            metrics,
            settings: Settings::default(),
            watched: None,
            operator: None,
        };
        cluster.install_crds().await;
        if target == Target::RealCluster {
            // What `fieldwise run` would use there (ServiceMonitor support, image overrides, whether
            // PrismCluster is served), discovered once the CRDs are established: on a fresh
            // cluster, discovering first found no PrismCluster and left its controller unstarted.
            cluster.settings = fieldwise::cli::run::settings(&cluster.client).await;
        }
        if target == Target::RealCluster {
            cluster.create_namespace().await;
        }
        if operator {
            cluster.start_operator();
        }
        cluster
    }

    /// The emulator, for scenarios that only run there.
    pub fn emulator(&self) -> &EmulatorHandle {
        &self.emulated().emulator
    }

    /// The simulators, for scenarios that only run on the emulator.
    pub fn sims(&self) -> &Simulators {
        &self.emulated().sims
    }

    fn emulated(&self) -> &Emulated {
        self.emulated
            .as_ref()
            .expect("this scenario needs the emulator")
    }

    pub fn is_emulated(&self) -> bool {
        self.emulated.is_some()
    }

    /// Write requests the operator has sent (counted on its client, so on any cluster).
    pub fn operator_writes(&self) -> u64 {
        self.operator_writes.load(Ordering::SeqCst)
    }

    /// The operator's write requests after the first `skip`, as `METHOD path` (for messages).
    pub fn operator_requests_after(&self, skip: u64) -> Vec<String> {
        let requests = self.operator_requests.lock().expect("requests lock");
        requests.iter().skip(skip as usize).cloned().collect()
    }

    /// The operator's write requests the API server refused (status 400 or above), as
    /// `METHOD path status`.
    pub fn operator_refusals(&self) -> Vec<String> {
        let answers = self.operator_answers.lock().expect("answers lock");
        let refused = answers.iter().filter(|(_, status)| *status >= 400);
        refused
            .map(|(request, status)| format!("{request} {status}"))
            .collect()
    }

    /// The operator's requests, reads too, the API server answered 403 Forbidden, as `METHOD path`.
    pub fn operator_forbidden(&self) -> Vec<String> {
        self.operator_forbidden
            .lock()
            .expect("forbidden lock")
            .clone()
    }

    /// The operator's client (requests made with it are counted as the operator's).
    pub fn operator_client(&self) -> Client {
        self.operator_client.clone()
    }

    /// Makes the operator started afterwards send every request as `user`, through
    /// the API server's impersonation (`Impersonate-User`): it then holds exactly what RBAC grants
    /// `user`, not the scenario's own credentials. For a ServiceAccount's user name the API server adds
    /// its groups (`system:serviceaccounts`, `system:serviceaccounts:<namespace>`).
    pub fn impersonate_operator(&mut self, user: &str) {
        assert!(
            self.operator.is_none(),
            "impersonate before starting the operator"
        );
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.to_owned());
        self.operator_client = counting_client(
            config,
            self.operator_writes.clone(),
            Arc::clone(&self.operator_requests),
            self.operator_answers.clone(),
            Arc::clone(&self.operator_forbidden),
            &self.metrics,
        );
    }

    /// Server-side applies fieldwise's CRDs and waits until they are served.
    async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in fieldwise_api::crds() {
            let name = crd.name_any();
            crds.patch(
                &name,
                &PatchParams::apply(USER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("CRD applied");
            let established =
                await_condition(crds.clone(), &name, conditions::is_crd_established());
            tokio::time::timeout(patience(), established)
                .await
                .unwrap_or_else(|_| panic!("CRD {name} not established within {:?}", patience()))
                .expect("CRD watch works");
        }
    }

    /// Creates the scenario's own namespace (on a real cluster), labelled so leftovers can be found.
    async fn create_namespace(&self) {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": {NAMESPACE_LABEL: "true"}}});
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.patch(
            &self.namespace,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("namespace applied");
    }

    /// Starts the operator through the same function `fieldwise run` calls (watching only the scenario's
    /// namespace on a real cluster, so scenarios running side by side do not meet).
    pub fn start_operator(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let own = || match self.is_emulated() {
            true => Vec::new(),
            false => vec![self.namespace.clone()],
        };
        let options = RunOptions {
            namespaces: self.watched.clone().unwrap_or_else(own),
            debounce: Duration::from_millis(50),
            settings: self.settings.clone(),
            ..RunOptions::default()
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(run(
            self.operator_client.clone(),
            options,
            self.metrics.clone(),
            Health::new(),
            shutdown,
        ));
        self.operator = Some((
            stop,
            tokio::spawn(async move { task.await.expect("operator task").expect("operator runs") }),
        ));
    }

    /// Starts the operator watching `namespaces` only (`fieldwise run --namespace a,b`).
    pub fn start_operator_watching(&mut self, namespaces: &[&str]) {
        self.watched = Some(namespaces.iter().map(|n| (*n).to_owned()).collect());
        self.start_operator();
    }

    /// Whether the operator runs (started and not stopped).
    pub fn operator_running(&self) -> bool {
        self.operator.is_some()
    }

    /// Stops the operator and waits until it has.
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            task.await.expect("operator stopped");
        }
    }

    /// Restarts the operator with other settings (a shorter resync period, say).
    pub async fn restart_operator_with(&mut self, settings: Settings) {
        self.stop_operator().await;
        self.settings = settings;
        self.start_operator();
    }

    /// The operator's settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What a real-cluster run needs to clean up after the scenario, whatever became of it.
    fn teardown(&self) -> Teardown {
        Teardown {
            client: self.client.clone(),
            operator_client: self.operator_client.clone(),
            namespace: self.namespace.clone(),
            settings: self.settings.clone(),
        }
    }

    /// Server-side applies every document of a YAML text as the user, filling in `namespace` where a
    /// namespaced document names none.
    pub async fn apply_yaml(&self, text: &str, namespace: &str) -> Vec<Value> {
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(
            text,
            fieldwise::featurestore::render::kubernetes_yaml(),
        )
        .expect("valid YAML");
        let discovery = Discovery::new(self.client.clone())
            .run()
            .await
            .expect("discovery");
        let mut applied = Vec::new();
        for mut document in documents.into_iter().filter(Value::is_object) {
            let (resource, namespaced) = resource_of(&discovery, &document);
            if namespaced && document.pointer("/metadata/namespace").is_none() {
                document["metadata"]["namespace"] = Value::from(namespace);
            }
            let name = document["metadata"]["name"]
                .as_str()
                .expect("a name")
                .to_owned();
            let api = self.dynamic_api(
                &resource,
                namespaced.then(|| {
                    document["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(namespace)
                }),
            );
            api.patch(
                &name,
                &PatchParams::apply(USER).force(),
                &Patch::Apply(&document),
            )
            .await
            .expect("applied");
            applied.push(document);
        }
        applied
    }

    pub fn dynamic_api(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    pub fn feature_stores(&self, namespace: &str) -> Api<FeatureStore> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Creates a namespace (server-side apply).
    pub async fn namespace(&self, name: &str) {
        apply_namespace(&self.client, name, &[]).await;
    }

    /// Asserts the operator counted no reconcile error (its metrics have no error series at all).
    pub fn assert_no_reconcile_errors(&self) {
        let metrics = self.metrics.encode().expect("metrics");
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("fieldwise_reconcile_errors_total{")),
            "reconcile errors counted:\n{metrics}"
        );
    }

    /// Reconciles the operator has finished, from its metrics.
    pub fn reconciles(&self) -> u64 {
        let text = self.metrics.encode().expect("metrics encode");
        text.lines()
            .filter(|line| line.starts_with("fieldwise_reconciles_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Waits until at least `count` reconciles have finished. Metrics cannot be watched, so this polls them.
    pub async fn wait_reconciles(&self, count: u64) {
        let deadline = tokio::time::Instant::now() + patience();
        while self.reconciles() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} reconciles not reached: {}",
                self.reconciles()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the FeatureStore reports `phase: Ready`.
    pub async fn wait_ready(&self, namespace: &str, name: &str) -> FeatureStore {
        let ready = |fs: Option<&FeatureStore>| {
            fs.and_then(|fs| fs.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Ready")
        };
        wait_for(&self.feature_stores(namespace), name, ready, "Ready").await
    }
}

/// Cleans up a real-cluster scenario: its FeatureStores (an operator runs meanwhile, so the finalizer
/// removes their cluster-scoped children), then its namespace.
struct Teardown {
    client: Client,
    operator_client: Client,
    namespace: String,
    settings: Settings,
}

impl Teardown {
    async fn run(self) {
        let stores: Api<FeatureStore> = Api::namespaced(self.client.clone(), &self.namespace);
        // Nothing to finalize: no operator. (One stopped right after it started never returned: its
        // shutdown waited forever; seen on a real cluster after the samples scenario.)
        let leftovers = stores.list(&ListParams::default().limit(1)).await;
        if leftovers.is_ok_and(|list| list.items.is_empty()) {
            delete_namespace(self.client, &self.namespace).await;
            return;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let options = RunOptions {
            namespaces: vec![self.namespace.clone()],
            settings: self.settings,
            ..RunOptions::default()
        };
        let operator = tokio::spawn(run(
            self.operator_client,
            options,
            Arc::new(Metrics::new()),
            Health::new(),
            async move {
                let _ = stopped.await;
            },
        ));
        let deleted = stores
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        if let Err(error) = deleted {
            eprintln!(
                "teardown: deleting the FeatureStores of {} failed: {error}",
                self.namespace
            );
        }
        let gone = async {
            loop {
                match stores.list(&ListParams::default()).await {
                    Ok(list) if list.items.is_empty() => break,
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        };
        if tokio::time::timeout(patience(), gone).await.is_err() {
            eprintln!(
                "teardown: FeatureStores of {} still exist; their cluster-scoped children may be left \
                 (kubectl get clusterrolebindings -l app.kubernetes.io/managed-by=fieldwise)",
                self.namespace
            );
        }
        let _ = stop.send(());
        let _ = operator.await;
        delete_namespace(self.client, &self.namespace).await;
    }
}

async fn delete_namespace(client: Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(client);
    if let Err(error) = namespaces
        .delete(namespace, &DeleteParams::background())
        .await
    {
        eprintln!("teardown: deleting namespace {namespace} failed: {error}");
    }
}

/// The configuration of the cluster `E2E_KUBECONFIG` names.
async fn real_cluster_config() -> Config {
    let path = std::env::var_os(KUBECONFIG_VARIABLE).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{KUBECONFIG_VARIABLE} must name the kubeconfig of the cluster to run against (see e2e/README.md)")
    });
    let kubeconfig =
        Kubeconfig::read_from(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A namespace name no other run uses.
fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("fieldwise-e2e-{:x}-{nanos:x}", std::process::id())
}

/// The answers to write requests, as `(METHOD path, status code)`.
type Answers = Arc<std::sync::Mutex<Vec<(String, u16)>>>;

/// A client as `fieldwise run` builds it (no retry layer), counting every write request it sends.
fn counting_client(
    config: Config,
    writes: Arc<AtomicU64>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    answers: Answers,
    forbidden: Arc<std::sync::Mutex<Vec<String>>>,
    metrics: &Arc<Metrics>,
) -> Client {
    // As `fieldwise run` configures its client (no retries, fieldwise's User-Agent, timed, writes
    // limited to the concurrency), counting what reaches the API server.
    let config = fieldwise::cli::run::operator_config(config);
    let counting = kube::client::ClientBuilder::try_from(config)
        .expect("a client")
        .with_layer(&tower::layer::layer_fn(move |inner| CountWrites {
            inner,
            writes: writes.clone(),
            requests: requests.clone(),
            answers: answers.clone(),
            forbidden: forbidden.clone(),
        }));
    let concurrency = RunOptions::default().concurrency;
    controller_layers(counting, metrics, concurrency, None).build()
}

/// Counts and notes the requests that are not reads (anything but GET, HEAD and OPTIONS), and
/// the status codes they were answered with; notes every request answered 403.
#[derive(Clone)]
struct CountWrites<S> {
    inner: S,
    writes: Arc<AtomicU64>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    answers: Answers,
    forbidden: Arc<std::sync::Mutex<Vec<String>>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for CountWrites<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let read = [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS];
        let noted = (!read.contains(request.method()))
            .then(|| format!("{} {}", request.method(), request.uri().path()));
        if let Some(noted) = &noted {
            if let Ok(mut requests) = self.requests.lock() {
                requests.push(noted.clone());
            }
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        let answers = self.answers.clone();
        let forbidden = self.forbidden.clone();
        let described = format!("{} {}", request.method(), request.uri().path());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if response.status() == http::StatusCode::FORBIDDEN
                && let Ok(mut forbidden) = forbidden.lock()
            {
                forbidden.push(described);
            }
            if let (Some(noted), Ok(mut answers)) = (noted, answers.lock()) {
                answers.push((noted, response.status().as_u16()));
            }
            Ok(response)
        })
    }
}

/// Waits, through a watch, until `condition` holds for the object; fails the scenario after [`patience`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, condition: impl Condition<K>, what: &str) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let waited =
        tokio::time::timeout(patience(), await_condition(api.clone(), name, condition)).await;
    let object =
        waited.unwrap_or_else(|_| panic!("{name} did not become {what} within {:?}", patience()));
    object
        .expect("watch works")
        .unwrap_or_else(|| panic!("{name} is gone while waiting for {what}"))
}

fn resource_of(discovery: &Discovery, document: &Value) -> (ApiResource, bool) {
    let api_version = document["apiVersion"].as_str().expect("an apiVersion");
    let kind = document["kind"].as_str().expect("a kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = discovery
        .resolve_gvk(&gvk)
        .unwrap_or_else(|| panic!("{api_version} {kind} is served"));
    (
        resource,
        capabilities.scope == kube::discovery::Scope::Namespaced,
    )
}

/// Every field of `expected` is in `actual` with the same value (lists element by element).
pub fn contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            expected.iter().try_for_each(|(key, value)| {
                let field = format!("{path}.{key}");
                actual
                    .get(key)
                    .ok_or_else(|| format!("{field} missing"))
                    .and_then(|a| contains(a, value, &field))
            })
        }
        (Value::Array(actual), Value::Array(expected)) if actual.len() == expected.len() => actual
            .iter()
            .zip(expected)
            .enumerate()
            .try_for_each(|(i, (a, e))| contains(a, e, &format!("{path}[{i}]"))),
        _ if actual == expected => Ok(()),
        _ => Err(format!("{path}: expected {expected}, found {actual}")),
    }
}

/// A Deployment's `(spec.replicas, status.availableReplicas)`.
pub type Replicas = (Option<i32>, Option<i32>);

/// Every [`Replicas`] a Deployment showed, consecutive repeats folded, recorded by a watch of its own
/// from the moment it starts, with the resourceVersion it last saw.
pub struct ReplicasHistory {
    values: tokio::sync::watch::Receiver<(Vec<Replicas>, u64)>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicasHistory {
    pub fn start(cluster: &Cluster, deployment: &str) -> Self {
        let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        let (record, values) = tokio::sync::watch::channel((Vec::new(), 0));
        let config = watcher::Config::default().fields(&format!("metadata.name={deployment}"));
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(deployment)) = stream.next().await {
                let spec = deployment.spec.as_ref().and_then(|s| s.replicas);
                let available = deployment
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas);
                let version = resource_version(&deployment);
                record.send_modify(|(values, seen)| {
                    if values.last() != Some(&(spec, available)) {
                        values.push((spec, available));
                    }
                    *seen = version;
                });
            }
        });
        Self { values, task }
    }

    /// Every `spec.replicas` value, repeats folded, once its own watch has seen `last` (another watch
    /// may have seen it first).
    pub async fn values_ending(&self, last: i32) -> Vec<Option<i32>> {
        let mut values = self.values.clone();
        let seen = values.wait_for(|(v, _)| v.last().map(|(spec, _)| *spec) == Some(Some(last)));
        let recorded = match tokio::time::timeout(patience(), seen).await {
            Ok(Ok(values)) => values.0.clone(),
            _ => self.values.borrow().0.clone(),
        };
        let mut asked: Vec<Option<i32>> = recorded.into_iter().map(|(spec, _)| spec).collect();
        asked.dedup();
        asked
    }

    /// The whole history once its watch has seen `deployment` (read after it) or a later version.
    pub async fn until_seen(&self, deployment: &Deployment) -> Vec<Replicas> {
        let version = resource_version(deployment);
        let mut values = self.values.clone();
        let seen = values.wait_for(|(_, seen)| *seen >= version);
        match tokio::time::timeout(patience(), seen).await {
            Ok(Ok(values)) => values.0.clone(),
            _ => panic!("the Deployment watch did not reach version {version}"),
        }
    }
}

fn resource_version(deployment: &Deployment) -> u64 {
    let version = deployment.metadata.resource_version.as_deref();
    version.and_then(|v| v.parse().ok()).unwrap_or_default()
}

impl Drop for ReplicasHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The managers owning `spec.replicas` on a Deployment, as `manager/subresource`.
pub fn replicas_owners(deployment: &Deployment) -> Vec<String> {
    let entries = deployment.metadata.managed_fields.iter().flatten();
    entries
        .filter(|entry| {
            let fields = entry.fields_v1.as_ref().map(|f| &f.0);
            fields
                .and_then(|f| f.pointer("/f:spec/f:replicas"))
                .is_some()
        })
        .map(|entry| {
            format!(
                "{}/{}",
                entry.manager.as_deref().unwrap_or("?"),
                entry.subresource.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// Waits, through a watch, until the object is deleted (returns at once when it is absent).
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let Some(live) = api.get_opt(name).await.expect("readable") else {
        return;
    };
    let uid = live.meta().uid.clone().unwrap_or_default();
    let deleted = kube::runtime::wait::await_condition(
        api.clone(),
        name,
        kube::runtime::conditions::is_deleted(&uid),
    );
    tokio::time::timeout(patience(), deleted)
        .await
        .unwrap_or_else(|_| panic!("{name} not deleted within {:?}", patience()))
        .expect("watch works");
}

/// The Deployments of the scenario's namespace.
pub fn deployments(cluster: &Cluster) -> Api<Deployment> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

/// Waits, through a watch, until the Deployment `name` asks for `replicas`.
pub async fn wait_replicas(cluster: &Cluster, name: &str, replicas: i32) -> Deployment {
    let has = move |d: Option<&Deployment>| {
        d.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) == Some(replicas)
    };
    wait_for(
        &deployments(cluster),
        name,
        has,
        &format!("replicas {replicas}"),
    )
    .await
}

/// The HPA KEDA makes for a ScaledObject scaling `target` (a `scaleTargetRef`), with both bounds
/// at `replicas`: on a real cluster, where no KEDA runs, the test stands in for it.
pub async fn apply_keda_hpa(cluster: &Cluster, name: &str, target: Value, replicas: i32) {
    let hpa = serde_json::json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": cluster.namespace},
        "spec": {
            "scaleTargetRef": target,
            "minReplicas": replicas, "maxReplicas": replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    });
    Api::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>::namespaced(
        cluster.client.clone(),
        &cluster.namespace,
    )
    .patch(
        name,
        &PatchParams::apply("keda-operator").force(),
        &Patch::Apply(&hpa),
    )
    .await
    .expect("KEDA's HPA applied");
}

/// The (reason, note) of Events about the object `uid` (an owner), watched until `enough` holds (or
/// the patience runs out).
pub async fn events_until(
    cluster: &Cluster,
    uid: Option<&str>,
    enough: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut stream = watcher(events, watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut notes = Vec::new();
    let collect = async {
        while let Some(Ok(event)) = stream.next().await {
            let about = event.regarding.as_ref().and_then(|r| r.uid.as_deref()) == uid;
            if let (true, Some(reason), Some(note)) = (about, event.reason, event.note) {
                notes.push((reason, note));
            }
            if enough(&notes) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(patience(), collect).await;
    notes
}

/// Creates (or labels) the namespace `name` by server-side apply, with `labels`.
pub async fn apply_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let mut metadata = serde_json::json!({"name": name});
    if !labels.is_empty() {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::from(*value)))
            .collect();
        metadata["labels"] = Value::Object(labels);
    }
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata});
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.patch(
        name,
        &PatchParams::apply(USER).force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("namespace applied");
}
