//! A real Kubernetes control plane on 127.0.0.1 for the tests: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and kwok (fake nodes spread over zones, whose pods become
//! Running and Ready without a kubelet), built from the Go modules pinned in `e2e/cluster/` by
//! `e2e/cluster/build`.
//!
//! [`up`] starts every process in the background (each in a process group of its own, so it outlives the
//! command that started it), waits until the cluster is usable and returns the kubeconfig path;
//! [`down`] stops them and removes the state directory. Everything a run leaves lives in that state
//! directory: `kubeconfig`, `logs/<component>.log`, `pids/`, `pki/`, `etcd/`.

mod components;
mod health;
mod process;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use components::Zone;
pub use process::stop_all;

/// Names the directory holding the binaries (what `e2e/cluster/build` prints).
pub const BINARIES_VARIABLE: &str = "FIELDWISE_CLUSTER_BIN";
/// Names the state directory (default: [`default_state_dir`]).
pub const STATE_VARIABLE: &str = "FIELDWISE_CLUSTER_STATE";
/// Set to `1`: the audit log also records reads (get, list, watch), for counting a client's
/// requests by verb (the `feast_performance` scenario); unset, it records writes only.
pub const AUDIT_READS_VARIABLE: &str = "FIELDWISE_CLUSTER_AUDIT_READS";
/// How many pods each fake node takes (default [`DEFAULT_PODS_PER_NODE`], a kubelet's default).
pub const PODS_PER_NODE_VARIABLE: &str = "FIELDWISE_CLUSTER_PODS_PER_NODE";
pub const DEFAULT_PODS_PER_NODE: u32 = 110;

/// What went wrong starting or stopping the control plane, with the log to read.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{component} did not become ready within {waited:?}: {reason}\n  its log: {log}{tail}")]
    NotReady {
        component: &'static str,
        waited: Duration,
        reason: String,
        log: String,
        tail: String,
    },
}

impl ClusterError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Where the control plane's binaries are and where its state goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directory `e2e/cluster/build` built into.
    pub binaries: PathBuf,
    /// Holds kubeconfig, logs, pids, keys and etcd's data; removed by [`down`].
    pub state: PathBuf,
    /// The fake nodes: one per zone entry.
    pub zones: Vec<Zone>,
    /// How long the whole start-up may take (a cold 2-core machine needs about a minute).
    pub patience: Duration,
    /// Whether the audit log records reads as well as writes.
    pub audit_reads: bool,
    /// The pods each fake node takes.
    pub pods_per_node: u32,
}

impl Options {
    /// Three fake nodes in three zones, state in [`default_state_dir`]; audit and node size as
    /// [`AUDIT_READS_VARIABLE`] and [`PODS_PER_NODE_VARIABLE`] say.
    pub fn new(binaries: PathBuf) -> Self {
        Self {
            binaries,
            state: default_state_dir(),
            zones: components::default_zones(),
            patience: Duration::from_secs(300),
            audit_reads: std::env::var(AUDIT_READS_VARIABLE).is_ok_and(|value| value == "1"),
            pods_per_node: std::env::var(PODS_PER_NODE_VARIABLE)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(DEFAULT_PODS_PER_NODE),
        }
    }
}

/// `$FIELDWISE_CLUSTER_STATE`, else `fieldwise-cluster` in the temporary directory.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os(STATE_VARIABLE)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("fieldwise-cluster"))
}

/// The kubeconfig of a control plane whose state is in `state`.
pub fn kubeconfig_path(state: &Path) -> PathBuf {
    state.join("kubeconfig")
}

/// The directory with every component's log.
pub fn logs_dir(state: &Path) -> PathBuf {
    state.join("logs")
}

/// Starts the control plane and waits until it is usable: API ready, controller manager and scheduler
/// leading, every fake node Ready, the `default` service account created. Returns the kubeconfig path.
/// Any state left in `options.state` by an earlier run is stopped and removed first. On failure the
/// processes already started are stopped; their logs stay.
pub async fn up(options: &Options) -> Result<PathBuf, ClusterError> {
    check_binaries(&options.binaries)?;
    stop_all(&options.state)?;
    remove_state(&options.state)?;
    let started = components::start(options).await;
    if started.is_err() {
        // Stop what runs; the logs stay for the report.
        let _ = stop_all(&options.state);
    }
    started
}

/// Stops every process of the control plane in `state` and removes the state directory.
pub fn down(state: &Path) -> Result<(), ClusterError> {
    stop_all(state)?;
    remove_state(state)
}

fn remove_state(state: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_dir_all(state) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(ClusterError::Io {
            what: format!("removing {}", state.display()),
            source: error,
        }),
        _ => Ok(()),
    }
}

fn check_binaries(binaries: &Path) -> Result<(), ClusterError> {
    let missing: Vec<&str> = components::BINARIES
        .iter()
        .copied()
        .filter(|name| !binaries.join(name).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ClusterError::Setup(format!(
        "{} lacks {} (build them with e2e/cluster/build, which prints the directory to pass)",
        binaries.display(),
        missing.join(", ")
    )))
}
