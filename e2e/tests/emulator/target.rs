//! Where a conformance test runs: the in-process emulator, or, when `E2E_CONFORMANCE_KUBECONFIG` names
//! a kubeconfig (`e2e/cluster/test` sets it), the real kube-apiserver behind it: the judge of every
//! behaviour the emulator claims.
//!
//! On the real server each test gets a fresh namespace standing for `default` (see
//! [`RawClient::with_default_namespace`]) and the namespaces and CRDs earlier tests left are deleted
//! first, so tests written for a fresh emulator run unchanged; they must run one at a time there
//! (`--test-threads=1`).

use std::path::{Path, PathBuf};

use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, EmulatorHandle, Options};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{conditions::is_deleted, wait::await_condition},
};

/// Prints to the process's stderr directly: libtest captures `eprintln!` of passing tests, and these
/// notices must show in every run.
macro_rules! notice {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Names the kubeconfig of the real API server to run against instead of the emulator.
pub const KUBECONFIG_VARIABLE: &str = "E2E_CONFORMANCE_KUBECONFIG";

/// Tests whose expectation is the real server's behaviour (as `e2e/cluster/test` found it against
/// kube-apiserver 1.33), which the emulator does not show yet: on the emulator they are not run, and
/// say why. Remove an entry once the emulator behaves like the real server.
pub const KNOWN_DIVERGENCES: &[(&str, &str)] = &[];

/// Tests that fail on the real server for reasons not yet turned into corrected expectations (what
/// the real server did is the reason): on the real target they run on an emulator, and say so.
const NOT_YET_CORRECTED: &[(&str, &str)] = &[];

/// Tests of the emulator's own machinery, which a real server has no equivalent of: on the real target
/// they run on an emulator, and say so.
const EMULATOR_ONLY: &[(&str, &str)] = &[
    (
        "conformance_more::request_counters",
        "request counters are the emulator's",
    ),
    (
        "conformance_more::hooks_can_fail_requests",
        "request hooks are the emulator's",
    ),
    (
        "conformance_more::a_kubeconfigs_token_names_the_requesting_user",
        "the emulator takes any bearer token as the user name",
    ),
    (
        "conformance_watch_history::stale_events_beyond_the_minimum_are_dropped_per_resource_type",
        "a history of 2 events with no fresh window is the emulator's setting; a real watch cache's \
         size cannot be set per test",
    ),
];

/// The server a test talks to.
pub enum Server {
    Emulator(EmulatorHandle),
    /// A real API server (the test's RawClient maps `default` to `namespace`).
    Real {
        kubeconfig: PathBuf,
        namespace: String,
    },
}

impl Server {
    /// The emulator (tests listed in `EMULATOR_ONLY` always get one).
    pub fn emulator(&self) -> &EmulatorHandle {
        match self {
            Server::Emulator(emulator) => emulator,
            Server::Real { .. } => panic!("an emulator-only test runs on the real server"),
        }
    }

    /// Writes a kubeconfig for the server whose default namespace stands for `default` (kubectl then
    /// works in it wherever a manifest names no namespace).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), TestError> {
        match self {
            Server::Emulator(emulator) => Ok(emulator.write_kubeconfig(path)?),
            Server::Real {
                kubeconfig,
                namespace,
            } => {
                let mut config = Kubeconfig::read_from(kubeconfig)?;
                for named in &mut config.contexts {
                    if let Some(context) = named.context.as_mut() {
                        context.namespace = Some(namespace.clone());
                    }
                }
                // JSON is YAML: kubectl reads it as a kubeconfig.
                std::fs::write(path, serde_json::to_string(&config)?)?;
                Ok(())
            }
        }
    }
}

/// The test running on this thread (libtest names each test's thread after it).
fn current_test() -> String {
    std::thread::current().name().unwrap_or("").to_owned()
}

fn listed<'a>(list: &'a [(&str, &'a str)], test: &str) -> Option<&'a str> {
    list.iter()
        .find(|(name, _)| *name == test)
        .map(|(_, reason)| *reason)
}

/// Starts the test's server: the real one when `E2E_CONFORMANCE_KUBECONFIG` is set (unless the test is
/// emulator-only), else an emulator with `options`.
pub async fn start(options: Options) -> Result<(Server, RawClient), TestError> {
    let test = current_test();
    match std::env::var_os(KUBECONFIG_VARIABLE) {
        Some(kubeconfig) => {
            if let Some(reason) = listed(EMULATOR_ONLY, &test) {
                notice!("{test}: runs on the emulator only ({reason})");
                return start_emulator(options).await;
            }
            if let Some(observed) = listed(NOT_YET_CORRECTED, &test) {
                notice!(
                    "NOT YET CORRECTED: {test} runs on the emulator; on the real server: {observed}"
                );
                return start_emulator(options).await;
            }
            start_real(Path::new(&kubeconfig)).await
        }
        None => start_emulator(options).await,
    }
}

/// Runs `start` (a test's setup) unless the test is in [`KNOWN_DIVERGENCES`] and would run on the
/// emulator: then `None`, after printing the divergence.
pub async fn unless_diverging<T>(
    start: impl std::future::Future<Output = Result<T, TestError>>,
) -> Result<Option<T>, TestError> {
    let test = current_test();
    match listed(KNOWN_DIVERGENCES, &test) {
        Some(reason) if std::env::var_os(KUBECONFIG_VARIABLE).is_none() => {
            notice!(
                "KNOWN DIVERGENCE: {test} is not run on the emulator, which differs from the real \
                 kube-apiserver: {reason}"
            );
            Ok(None)
        }
        _ => start.await.map(Some),
    }
}

async fn start_emulator(options: Options) -> Result<(Server, RawClient), TestError> {
    let emulator = Emulator::start(options).await?;
    let raw = RawClient::new(&emulator)?;
    Ok((Server::Emulator(emulator), raw))
}

async fn start_real(kubeconfig: &Path) -> Result<(Server, RawClient), TestError> {
    let path = kubeconfig.to_owned();
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    remove_leftovers(&client).await?;
    let namespace = unique_namespace();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let body: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {"fieldwise.dev/conformance": "true"}}
    }))?;
    namespaces.create(&PostParams::default(), &body).await?;
    await_root_ca(&client, &namespace).await?;
    let raw = RawClient::with_default_namespace(client.clone(), &namespace);
    Ok((
        Server::Real {
            kubeconfig: path,
            namespace,
        },
        raw,
    ))
}

/// Waits until kube-controller-manager has published the ConfigMap `kube-root-ca.crt` into the new
/// `namespace`, as into every real namespace: tests that list ConfigMaps expect it, and it arrives
/// asynchronously after the namespace is created.
async fn await_root_ca(client: &Client, namespace: &str) -> Result<(), TestError> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let published = |config_map: Option<&ConfigMap>| config_map.is_some();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        await_condition(config_maps, "kube-root-ca.crt", published),
    )
    .await
    .map_err(|_| format!("kube-root-ca.crt not published into {namespace} within 60 s"))??;
    Ok(())
}

/// Waits until the CRD `name` is Established (a real server serves its resources only then; the
/// emulator at once), watching it.
pub async fn await_established(client: &RawClient, name: &str) -> Result<(), TestError> {
    let established = |crd: &serde_json::Value| {
        crd["object"]["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
    };
    let mut watch = client
        .watch(&format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=true&fieldSelector=metadata.name%3D{name}"
        ))
        .await?;
    watch
        .until(std::time::Duration::from_secs(60), established)
        .await?;
    Ok(())
}

/// Waits until `/openapi/v3` lists `group_version` (`apis/feast.dev/v1`, say): a real server publishes
/// a new CRD's schema a moment after it is Established (the emulator at once), and nothing about that
/// can be watched, so the index is read again every 100 ms, for at most 30 s.
pub async fn await_openapi_v3(client: &RawClient, group_version: &str) -> Result<(), TestError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let index = client.get("/openapi/v3").await?;
        if index.body["paths"].get(group_version).is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("/openapi/v3 does not list {group_version} after 30 s").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Deletes the cluster-scoped objects at `paths` that a test is about to create: on a real server an
/// earlier test or run may have left them (only namespaces and CRDs are removed for every test); a
/// fresh emulator answers 404.
pub async fn remove_cluster_scoped(client: &RawClient, paths: &[&str]) -> Result<(), TestError> {
    for path in paths {
        let r = client.delete(path, None).await?;
        if r.status != 200 && r.status != 404 {
            return Err(format!("DELETE {path}: {} {}", r.status, r.text).into());
        }
    }
    Ok(())
}

/// Namespaces every test may reuse by name are never deleted.
const KEPT_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Deletes what earlier tests created outside their namespace (namespaces, CRDs other than fieldwise's)
/// and waits until it is gone, so a test can create the same names again. Earlier tests' own
/// namespaces go too, without waiting (no test uses their names).
async fn remove_leftovers(client: &Client) -> Result<(), TestError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut awaited_namespaces = Vec::new();
    for namespace in namespaces.list(&ListParams::default()).await? {
        let name = namespace.name_any();
        if KEPT_NAMESPACES.contains(&name.as_str()) || name.starts_with("fieldwise-e2e-") {
            continue;
        }
        if namespace.metadata.deletion_timestamp.is_none() {
            namespaces
                .delete(&name, &DeleteParams::background())
                .await?;
        }
        if !name.starts_with(NAMESPACE_PREFIX) {
            awaited_namespaces.push((name, uid(&namespace)));
        }
    }
    let kept_crds: Vec<String> = fieldwise_api::crds()
        .iter()
        .map(|crd| crd.name_any())
        .collect();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut awaited_crds = Vec::new();
    for crd in crds.list(&ListParams::default()).await? {
        let name = crd.name_any();
        if kept_crds.contains(&name) {
            continue;
        }
        if crd.metadata.deletion_timestamp.is_none() {
            crds.delete(&name, &DeleteParams::background()).await?;
        }
        awaited_crds.push((name, uid(&crd)));
    }
    let waited = async {
        for (name, uid) in &awaited_namespaces {
            await_condition(namespaces.clone(), name, is_deleted(uid)).await?;
        }
        for (name, uid) in &awaited_crds {
            await_condition(crds.clone(), name, is_deleted(uid)).await?;
        }
        Ok::<(), kube::runtime::wait::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), waited)
        .await
        .map_err(|_| "leftovers of earlier tests not deleted within 120 s")??;
    Ok(())
}

fn uid(object: &impl kube::Resource) -> String {
    object.meta().uid.clone().unwrap_or_default()
}

const NAMESPACE_PREFIX: &str = "conformance-";

/// A namespace name that occurs in no test (it is rewritten to `default` in every answer).
fn unique_namespace() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("{NAMESPACE_PREFIX}{:x}-{nanos:x}", std::process::id())
}
