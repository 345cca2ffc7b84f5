//! A small cluster for one scenario: the emulator, its simulators, fieldwise's CRDs and the operator.

use std::{sync::Arc, time::Duration};

use fieldwise::featurestore::run::{RunOptions, run};
use fieldwise_api::v1::FeatureStore;
use fieldwise_e2e::{
    Emulator, EmulatorHandle,
    sim::{SimOptions, Simulators},
};
use fieldwise_observability::{Health, Metrics};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::{ApiResource, Discovery},
    runtime::wait::{Condition, await_condition},
};
use serde_json::Value;
use tokio::{sync::oneshot, task::JoinHandle};

/// The field manager the scenarios write with, standing for a user's `kubectl apply --server-side`.
pub const USER: &str = "e2e-user";
/// How long any awaited condition may take before the scenario fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Stack of every runtime thread. The FeatureStore type is large (its status repeats the whole spec), and
/// unoptimised builds deserialise it in deep stack frames; 2 MiB, tokio's default, is not enough there.
pub const THREAD_STACK: usize = 16 << 20;

/// Runs a scenario on a multi-threaded runtime with [`THREAD_STACK`] stacks.
pub fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(scenario: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(THREAD_STACK)
        .enable_all()
        .build()
        .expect("a runtime");
    // On a worker (not the test's own 2 MiB thread), so the scenario gets the large stack too; a panic in
    // the scenario fails the test with its message.
    if let Err(error) = runtime.block_on(runtime.spawn(scenario)) {
        std::panic::resume_unwind(error.into_panic());
    }
}

pub struct Cluster {
    pub emulator: EmulatorHandle,
    pub sims: Simulators,
    pub client: Client,
    pub metrics: Arc<Metrics>,
    operator: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Cluster {
    /// A cluster with every simulator on, the CRDs installed and the operator running.
    pub async fn start() -> Self {
        Self::start_with(SimOptions::default()).await
    }

    pub async fn start_with(sims: SimOptions) -> Self {
        let emulator = Emulator::start(Default::default())
            .await
            .expect("the emulator starts");
        let sims = Simulators::start(&emulator, sims);
        let client = emulator.client().expect("a client for the emulator");
        let mut cluster = Self {
            emulator,
            sims,
            client,
            metrics: Arc::new(Metrics::new()),
            operator: None,
        };
        cluster.install_crds().await;
        cluster.start_operator();
        cluster
    }

    async fn install_crds(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in fieldwise_api::crds() {
            crds.patch(
                &crd.name_any(),
                &PatchParams::apply(USER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("CRD applied");
        }
    }

    /// Starts the operator through the same function `fieldwise run` calls.
    pub fn start_operator(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let options = RunOptions {
            debounce: Duration::from_millis(50),
            ..RunOptions::default()
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(run(
            self.client.clone(),
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

    /// Stops the operator and waits until it has.
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            let _ = stop.send(());
            task.await.expect("operator stopped");
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
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        api.patch(
            name,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("namespace applied");
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
        let deadline = tokio::time::Instant::now() + PATIENCE;
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

/// Waits, through a watch, until `condition` holds for the object; fails the scenario after [`PATIENCE`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, condition: impl Condition<K>, what: &str) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let waited =
        tokio::time::timeout(PATIENCE, await_condition(api.clone(), name, condition)).await;
    let object =
        waited.unwrap_or_else(|_| panic!("{name} did not become {what} within {PATIENCE:?}"));
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
