//! Leader election on the `coordination.k8s.io` Lease `fieldwise-leader` in the operator's namespace, through
//! kube-lease-manager.
//!
//! Leadership is one-shot: an elector waits until it holds the lease and then reports when it stops holding
//! it. Once lost, it does not try again: the operator stops writing and exits so the pod restarts, which is
//! simpler to reason about than a controller that pauses and resumes. On [`LeaderElector::release`] (SIGTERM)
//! the lease is given up at once, so a standby replica takes over without waiting for it to expire.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tracing::{info, warn};

/// The Lease's name.
pub const LEASE_NAME: &str = "fieldwise-leader";

/// How long a lease is valid after its last renewal, and how long before expiry the leader renews it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    pub duration_seconds: u64,
    pub renew_before_expiry_seconds: u64,
}

impl Default for LeaseTiming {
    /// 15 s leases renewed 5 s before expiry: a crashed leader is replaced within 15 s, and 5 s of clock skew
    /// between nodes is tolerated.
    fn default() -> Self {
        Self {
            duration_seconds: 15,
            renew_before_expiry_seconds: 5,
        }
    }
}

/// Why leader election could not run.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "invalid lease timing: renewal ({renew}s before expiry) must be shorter than the lease ({duration}s), and both positive"
    )]
    Timing { duration: u64, renew: u64 },
    #[error("cannot use the Lease {LEASE_NAME}: {0}")]
    Lease(#[from] LeaseManagerError),
    #[error("leader election stopped before this instance became leader")]
    Stopped,
}

/// A running election: see the module documentation.
pub struct LeaderElector {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LeaderElector {
    /// Starts competing for the Lease in `namespace` (creating it if missing) as `identity`, which must be
    /// unique among the replicas (the pod name).
    pub async fn start(
        client: Client,
        namespace: &str,
        identity: &str,
    ) -> Result<Self, LeaderError> {
        Self::start_with(client, namespace, identity, LeaseTiming::default()).await
    }

    /// [`Self::start`] with explicit lease timing.
    pub async fn start_with(
        client: Client,
        namespace: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self, LeaderError> {
        let params = lease_params(identity, timing)?;
        let manager = LeaseManager::new(
            client,
            LEASE_NAME,
            namespace,
            params,
            LeaseCreateMode::AutoCreate,
        )
        .await?;
        let (state, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(elect(manager, state, stopped, identity.to_owned()));
        Ok(Self {
            leading,
            stop: Some(stop),
            task,
        })
    }

    /// Resolves once this instance leads; fails if the election stopped first.
    pub async fn acquired(&self) -> Result<(), LeaderError> {
        let mut leading = self.leading.clone();
        leading
            .wait_for(|leading| *leading)
            .await
            .map(|_| ())
            .map_err(|_| LeaderError::Stopped)
    }

    /// A receiver that is `true` while this instance leads and turns `false` for good when it stops leading.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Whether this instance leads right now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Resolves when leadership, once held, is lost (or the election stops).
    pub async fn lost(&self) {
        let mut leading = self.leading.clone();
        if leading.wait_for(|leading| *leading).await.is_ok() {
            let _ = leading.wait_for(|leading| !*leading).await;
        }
    }

    /// Gives the lease up (if held) and stops competing.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = (&mut self.task).await {
            warn!(error = %crate::runtime::errors::message(&error), "the leader election task failed");
        }
    }
}

fn lease_params(identity: &str, timing: LeaseTiming) -> Result<LeaseParams, LeaderError> {
    let LeaseTiming {
        duration_seconds: duration,
        renew_before_expiry_seconds: renew,
    } = timing;
    // LeaseParams::new panics on these, so they are checked first.
    if duration == 0 || renew == 0 || renew >= duration {
        return Err(LeaderError::Timing { duration, renew });
    }
    Ok(LeaseParams::new(identity, duration, renew))
}

/// Holds the lease until stopped or until leadership is lost; publishes the state on `state`.
async fn elect(
    manager: LeaseManager,
    state: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
    identity: String,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            changed = manager.changed() => match changed {
                Ok(true) => {
                    info!(%identity, lease = LEASE_NAME, "became leader");
                    state.send_replace(true);
                }
                Ok(false) => {
                    warn!(%identity, lease = LEASE_NAME, "lost leadership");
                    break;
                }
                Err(error) if *state.borrow() => {
                    // A renewal that fails may let the lease expire unnoticed: stop leading now.
                    let error = crate::runtime::errors::message(&error);
                    warn!(%identity, %error, "cannot renew the lease; giving up leadership");
                    break;
                }
                Err(error) => {
                    let error = crate::runtime::errors::message(&error);
                    warn!(%identity, %error, "cannot take part in leader election; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    state.send_replace(false);
    if let Err(error) = manager.release().await {
        let error = crate::runtime::errors::message(&error);
        warn!(%identity, %error, "could not release the lease; it expires by itself");
    }
}
