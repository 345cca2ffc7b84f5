//! The emulator: an HTTP server on loopback speaking enough of the Kubernetes API for kubectl and
//! kube-rs (see e2e/README.md for what is and is not emulated).
//!
//! Layout: [`registry`] (served types) → [`store`] (objects, history, change broadcast) →
//! [`server`]/[`write`]/[`delete`] (verbs) → [`http`] (routing, discovery, watch, tables).
//! In-process controllers ([`gc`], [`root_ca`]) subscribe to the store like any simulated controller.

pub mod admission;
pub mod counters;
pub mod crd;
pub mod custom;
pub mod defaults;
pub mod delete;
pub mod encoding;
pub mod errors;
pub mod events;
pub mod gc;
pub mod http;
pub mod meta;
pub mod names;
pub mod ownership;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod reviews;
pub mod root_ca;
pub mod rules;
pub mod selectors;
pub mod server;
pub mod store;
pub mod validation;
pub mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use counters::{Counters, RequestKey};
pub use errors::ApiError;
pub use server::{ApiServer, RequestHook, RequestInfo, WatchInterrupt};
pub use store::{EventType, HistoryLimits, StoreEvent};

use custom::FieldValidation;
use ownership::Sub;
use write::WriteRequest;

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Change history each resource type keeps for watches resuming from a resourceVersion, as
    /// kube-apiserver's watch cache: at most `history_limit` events (102400), at least
    /// `history_min` (100) whatever their age, and every event younger than `history_fresh` (75 s).
    /// A watch from an older resourceVersion, or from before the emulator started, gets 410.
    pub history_limit: usize,
    pub history_min: usize,
    pub history_fresh: Duration,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: HistoryLimits::default().max,
            history_min: HistoryLimits::default().min,
            history_fresh: HistoryLimits::default().fresh,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Entry point: `Emulator::start(Options::default())`.
pub struct Emulator;

impl Emulator {
    /// Binds, seeds the initial namespaces (with their `kube-root-ca.crt`), and serves in the background until the handle is shut
    /// down or dropped.
    pub async fn start(options: Options) -> std::io::Result<EmulatorHandle> {
        let history = HistoryLimits {
            min: options.history_min,
            fresh: options.history_fresh,
            max: options.history_limit,
        };
        let server = Arc::new(ApiServer::new(history));
        seed(&server);
        server.store.lock().start_history();
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = http::HttpState {
            server: server.clone(),
            bookmark_interval: options.bookmark_interval,
        };
        let app = http::router(state);
        let mut rx = shutdown_rx.clone();
        let serve = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        let gc = tokio::spawn(gc::run(server.clone(), shutdown_rx.clone()));
        let root_ca = tokio::spawn(root_ca::run(server.clone(), shutdown_rx));
        Ok(EmulatorHandle {
            addr,
            url: format!("http://{addr}"),
            server,
            shutdown_tx,
            tasks: vec![gc, root_ca],
            serve: Some(serve),
        })
    }
}

fn seed(server: &ApiServer) {
    let Some(rt) = server.registry.find("", "v1", "namespaces") else {
        return;
    };
    for ns in INITIAL_NAMESPACES {
        let req = WriteRequest {
            rt: &rt,
            namespace: "",
            name: "",
            sub: Sub::Main,
            manager: "kube-apiserver",
            validation: FieldValidation::Strict,
            force: false,
            dry_run: false,
        };
        // Creating a fixed, valid namespace in an empty store cannot fail; ignore to stay panic-free.
        let _ = server.create(
            &req,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    // A ready cluster's namespaces hold it already; later ones get it from the publisher task.
    server.publish_root_ca_everywhere();
}

/// A running emulator. Dropping it stops serving (watch streams end when their client hangs up).
pub struct EmulatorHandle {
    addr: SocketAddr,
    url: String,
    server: Arc<ApiServer>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    serve: Option<JoinHandle<std::io::Result<()>>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client talking to this emulator.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.config()?)
    }

    /// The client configuration [`Self::client`] uses (namespace `default`), to build other clients from.
    pub fn config(&self) -> Result<kube::Config, kube::Error> {
        let uri: ::http::Uri = self
            .url
            .parse()
            .map_err(|e: ::http::uri::InvalidUri| kube::Error::Service(Box::new(e)))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        Ok(config)
    }

    /// Writes a kubeconfig pointing at this emulator (context `emulator`, namespace `default`).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        write_kubeconfig(path, &self.url)
    }

    /// Writes a kubeconfig whose requests come from `user` (its bearer token; see
    /// [`RequestInfo::user`](crate::emulator::RequestInfo::user)): to tell several clients apart.
    pub fn write_kubeconfig_as(&self, path: &Path, user: &str) -> std::io::Result<()> {
        write_file_atomically(path, &kubeconfig_yaml_as(&self.url, Some(user)))
    }

    /// Request counts by verb, resource, subresource and field manager.
    pub fn counters(&self) -> &Counters {
        &self.server.counters
    }

    /// The server state: store (with its change broadcast), registry, hooks.
    pub fn server(&self) -> &Arc<ApiServer> {
        &self.server
    }

    /// Adds a hook run before every resource request (fault injection, auditing).
    pub fn add_hook(&self, hook: Arc<dyn RequestHook>) {
        self.server.add_hook(hook);
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(serve) = self.serve.take() {
            let _ = serve.await;
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(serve) = self.serve.take() {
            serve.abort();
        }
    }
}

fn kubeconfig_yaml_as(url: &str, user: Option<&str>) -> String {
    let credentials = match user {
        Some(user) => format!("{{token: {}}}", serde_json::Value::from(user)),
        None => "{}".to_owned(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {url}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\nusers:\n- name: emulator\n  user: {credentials}\npreferences: {{}}\n"
    )
}

/// Writes the kubeconfig atomically (temporary file, then rename) so readers never see half a file.
pub fn write_kubeconfig(path: &Path, url: &str) -> std::io::Result<()> {
    write_file_atomically(path, &kubeconfig_yaml_as(url, None))
}

fn write_file_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-emulator");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Runs an emulator until `stop` completes: what `fieldwise emulator` does. The kubeconfig is
/// written once the listener is bound.
pub async fn serve(
    options: Options,
    kubeconfig: &Path,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let handle = Emulator::start(options).await?;
    handle.write_kubeconfig(kubeconfig)?;
    tracing::info!(url = handle.url(), kubeconfig = %kubeconfig.display(), "emulator ready");
    stop.await;
    handle.shutdown().await;
    Ok(())
}
