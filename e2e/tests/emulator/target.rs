//! Where a conformance test runs: the in-process emulator, or, when `E2E_CONFORMANCE_KUBECONFIG` names
//! a kubeconfig (`e2e/cluster/test` sets it), the real kube-apiserver behind it: the judge of every
//! behaviour the emulator claims.
//!
//! On the real server each test gets a fresh namespace standing for `default` (see
//! [`RawClient::with_default_namespace`]) and the namespaces and CRDs earlier tests left are deleted
//! first, so tests written for a fresh emulator run unchanged; they must run one at a time there
//! (`--test-threads=1`).

use std::path::Path;

use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, EmulatorHandle, Options};
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{conditions::is_deleted, wait::await_condition},
};

/// Names the kubeconfig of the real API server to run against instead of the emulator.
pub const KUBECONFIG_VARIABLE: &str = "E2E_CONFORMANCE_KUBECONFIG";

/// Tests whose expectation is the real server's behaviour, which the emulator does not show yet
/// (`e2e/cluster/test` found them): on the emulator they are not run, and say why when they would be.
/// Remove an entry once the emulator behaves like the real server.
pub const KNOWN_DIVERGENCES: &[(&str, &str)] = &[];

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
];

/// The server a test talks to.
pub enum Server {
    Emulator(EmulatorHandle),
    /// A real API server; `namespace` stands for `default`.
    Real {
        client: Client,
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
        Some(kubeconfig) => match listed(EMULATOR_ONLY, &test) {
            Some(reason) => {
                eprintln!("{test}: runs on the emulator only ({reason})");
                start_emulator(options).await
            }
            None => start_real(Path::new(&kubeconfig)).await,
        },
        None => start_emulator(options).await,
    }
}

/// As [`start`], but a test in [`KNOWN_DIVERGENCES`] does not run on the emulator: `None`, after
/// printing the divergence.
pub async fn start_unless_diverging(
    options: Options,
) -> Result<Option<(Server, RawClient)>, TestError> {
    let test = current_test();
    match listed(KNOWN_DIVERGENCES, &test) {
        Some(reason) if std::env::var_os(KUBECONFIG_VARIABLE).is_none() => {
            eprintln!(
                "KNOWN DIVERGENCE: {test} is not run on the emulator, which differs from the real \
                 kube-apiserver: {reason}"
            );
            Ok(None)
        }
        _ => start(options).await.map(Some),
    }
}

async fn start_emulator(options: Options) -> Result<(Server, RawClient), TestError> {
    let emulator = Emulator::start(options).await?;
    let raw = RawClient::new(&emulator)?;
    Ok((Server::Emulator(emulator), raw))
}

async fn start_real(kubeconfig: &Path) -> Result<(Server, RawClient), TestError> {
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
    let raw = RawClient::with_default_namespace(client.clone(), &namespace);
    Ok((Server::Real { client, namespace }, raw))
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
