//! Simulated cluster controllers, so the emulator behaves like a small cluster: workload status
//! (Deployments, StatefulSets), Job completion, the HPA controller and KEDA's ScaledObject → HPA.
//!
//! Each simulator is an in-process task subscribed to the store's change broadcast (like the
//! emulator's garbage collector). It writes through the server's normal write pipeline
//! ([`ApiServer::update`]/[`ApiServer::create`]), so managedFields, validation, generation and the
//! change broadcast behave as for any client; its writes do not go through HTTP, so they are not
//! counted and fault injection never hits them.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fieldwise_e2e::sim::{SimOptions, Simulators};
//! let handle = fieldwise_e2e::Emulator::start(Default::default()).await?;
//! let sims = Simulators::start(&handle, SimOptions::default());
//! sims.set_metric("default", "web", 160.0); // HPA "web" sees 160 against its target
//! # Ok(()) }
//! ```

mod common;
mod hpa;
mod jobs;
mod keda;
mod workloads;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::emulator::{ApiError, ApiServer, EmulatorHandle};

pub use keda::{KEDA_HPA_PREFIX, KEDA_MANAGER, SCALED_OBJECT_CRD};

/// The field manager of kube-controller-manager's writes (workload status, HPA `/scale`).
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// Annotation (on a workload or on its namespace) that keeps Deployments and StatefulSets from ever
/// becoming ready: `sim.fieldwise.dev/never-ready: "true"`.
pub const NEVER_READY_ANNOTATION: &str = "sim.fieldwise.dev/never-ready";

/// Which simulators run, and how fast workloads settle.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Deployment and StatefulSet status follows spec.
    pub workloads: bool,
    /// Jobs complete.
    pub jobs: bool,
    /// The autoscaling/v2 HPA controller.
    pub hpa: bool,
    /// KEDA: ScaledObjects get an HPA (only acts when the ScaledObject CRD is installed).
    pub keda: bool,
    /// Time between a workload change and its status catching up (rollout time).
    pub ready_delay: Duration,
    /// Time a Job runs before it completes.
    pub job_duration: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            workloads: true,
            jobs: true,
            hpa: true,
            keda: true,
            ready_delay: Duration::from_millis(100),
            job_duration: Duration::from_millis(100),
        }
    }
}

impl SimOptions {
    /// Every simulator off; switch on the ones a test needs.
    pub fn none() -> Self {
        SimOptions {
            workloads: false,
            jobs: false,
            hpa: false,
            keda: false,
            ..SimOptions::default()
        }
    }
}

/// State the simulators share with the runtime API.
pub(crate) struct Shared {
    pub server: Arc<ApiServer>,
    pub options: SimOptions,
    /// `(namespace, Some(name))` for one workload, `(namespace, None)` for the whole namespace.
    never_ready: Mutex<HashSet<(String, Option<String>)>>,
    /// Synthetic metric sample per HPA `(namespace, name)`, in the unit of the HPA's first target,
    /// with a sample number: each sample is acted on once, as one HPA sync would.
    metrics: Mutex<HashMap<(String, String), (f64, u64)>>,
    samples: std::sync::atomic::AtomicU64,
    /// Bumped when runtime settings change, so every simulator re-examines everything.
    kick: watch::Sender<u64>,
}

impl Shared {
    pub fn never_ready_set(&self, namespace: &str, name: &str) -> bool {
        let set = self.never_ready.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(&(namespace.to_string(), None))
            || set.contains(&(namespace.to_string(), Some(name.to_string())))
    }

    pub fn metric(&self, namespace: &str, name: &str) -> Option<(f64, u64)> {
        let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(namespace.to_string(), name.to_string())).copied()
    }

    fn kick(&self) {
        self.kick.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The running simulators. Dropping the value stops them.
pub struct Simulators {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Simulators {
    /// Starts the simulators `options` switches on, against this emulator.
    pub fn start(handle: &EmulatorHandle, options: SimOptions) -> Simulators {
        Self::start_on(handle.server().clone(), options)
    }

    /// Starts them against a server directly.
    pub fn start_on(server: Arc<ApiServer>, options: SimOptions) -> Simulators {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            server,
            options: options.clone(),
            never_ready: Mutex::default(),
            metrics: Mutex::default(),
            samples: std::sync::atomic::AtomicU64::new(0),
            kick: watch::channel(0).0,
        });
        let mut tasks = Vec::new();
        let mut spawn = |ctl: Box<dyn common::Controller>| {
            tasks.push(tokio::spawn(common::run(
                shared.clone(),
                shutdown_rx.clone(),
                ctl,
            )));
        };
        if options.workloads {
            spawn(Box::<workloads::Workloads>::default());
        }
        if options.jobs {
            spawn(Box::<jobs::Jobs>::default());
        }
        if options.hpa {
            spawn(Box::<hpa::Hpa>::default());
        }
        if options.keda {
            spawn(Box::new(keda::Keda));
        }
        Simulators {
            shared,
            shutdown,
            tasks,
        }
    }

    /// Makes one workload (`name: Some`) or every workload of a namespace (`None`) never become
    /// ready (`on = true`), or lets it become ready again.
    pub fn set_never_ready(&self, namespace: &str, name: Option<&str>, on: bool) {
        {
            let mut set = self
                .shared
                .never_ready
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let key = (namespace.to_string(), name.map(str::to_string));
            if on {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
        self.shared.kick();
    }

    /// Sets the synthetic metric the HPA `namespace/name` sees, in the unit of its first metric's
    /// target (e.g. CPU utilisation percent for `averageUtilization: 80`). Each call is one new
    /// sample: the HPA applies the formula to it once (as one sync of the real controller would;
    /// the load does not follow the replicas here), and otherwise only keeps replicas in bounds.
    pub fn set_metric(&self, namespace: &str, name: &str, value: f64) {
        let n = self
            .shared
            .samples
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_string(), name.to_string()), (value, n));
        self.shared.kick();
    }

    /// Forgets the metric: the HPA then only keeps replicas within its bounds.
    pub fn clear_metric(&self, namespace: &str, name: &str) {
        self.shared
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
        self.shared.kick();
    }

    /// Installs KEDA's ScaledObject CRD ([`SCALED_OBJECT_CRD`]), as `kubectl apply` of KEDA would.
    pub fn install_keda_crd(&self) -> Result<(), ApiError> {
        keda::install_crd(&self.shared.server)
    }

    /// Stops every simulator and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Simulators {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
