//! Leader election on the `coordination.k8s.io` Lease `fieldwise-leader` in the operator's namespace, through
//! kube-lease-manager.
//!
//! Leadership is one-shot: an elector waits until it holds the lease and then reports when it stops holding
//! it. Once lost, it does not try again: the operator stops writing and exits so the pod restarts, which is
//! simpler to reason about than a controller that pauses and resumes. On [`LeaderElector::release`] (SIGTERM)
//! the lease is given up at once, so a standby replica takes over without waiting for it to expire.
//!
//! Writes are fenced ([`fieldwise_apply::fence`]): the elector's own client notes when each renewal
//! that confirmed this instance as the holder was sent (by the local monotonic clock), and the
//! controller's client sends a write only within [`LeaseTiming::writes_valid_for`] of that. A leader
//! paused past its lease (SIGSTOP, a frozen node) therefore sends no write on waking, before it has
//! even noticed that another replica took over; and a leader that cannot renew in time stops
//! leading, as it does when it sees the lease lost.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use fieldwise_apply::WriteFence;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Either, Full};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::ClientBuilder;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerError, LeaseParams};
use tokio::{
    sync::{oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tower::{BoxError, Layer, Service};
use tracing::{info, warn};

/// The Lease's name.
pub const LEASE_NAME: &str = "fieldwise-leader";

/// The election's timing, in the terms of client-go's leader election (and kube-controller-manager's
/// `--leader-elect-*` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long the lease is valid after its last renewal: a standby takes it over after that.
    pub lease_duration_seconds: u64,
    /// How long after its last confirmed renewal was sent the leader may write; past it, it stops
    /// writing and leading. Shorter than the lease: the rest is room for clock skew between nodes
    /// (a standby judges expiry by its own clock) and for a write already on its way.
    pub renew_deadline_seconds: u64,
    /// How often the leader renews. Shorter than the renew deadline, so a renewal is due before
    /// writes stop.
    pub retry_period_seconds: u64,
}

impl Default for LeaseTiming {
    /// 15 s leases renewed every 5 s; writes stop 10 s after the last renewal was sent. A crashed
    /// leader is replaced within 15 s, a slow renewal has 5 s before writes stop, and 5 s of clock
    /// skew between nodes is tolerated.
    fn default() -> Self {
        Self {
            lease_duration_seconds: 15,
            renew_deadline_seconds: 10,
            retry_period_seconds: 5,
        }
    }
}

impl LeaseTiming {
    /// How long after a renewal was sent the leader may write.
    pub fn writes_valid_for(&self) -> Duration {
        Duration::from_secs(self.renew_deadline_seconds)
    }
}

/// Why leader election could not run.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "invalid lease timing: the retry period ({retry}s) must be shorter than the renew deadline \
         ({deadline}s), which must be shorter than the lease duration ({duration}s), all positive"
    )]
    Timing {
        duration: u64,
        deadline: u64,
        retry: u64,
    },
    #[error("cannot use the Lease {LEASE_NAME}: {0}")]
    Lease(#[from] LeaseManagerError),
    #[error("cannot build the leader election's client: {0}")]
    Client(#[from] kube::Error),
    #[error("leader election stopped before this instance became leader")]
    Stopped,
}

/// A running election: see the module documentation.
pub struct LeaderElector {
    leading: watch::Receiver<bool>,
    fence: Arc<WriteFence>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl LeaderElector {
    /// Starts competing for the Lease in `namespace` (creating it if missing) as `identity`, which must be
    /// unique among the replicas (the pod name), with a client of its own made from `config`.
    pub async fn start(
        config: kube::Config,
        namespace: &str,
        identity: &str,
    ) -> Result<Self, LeaderError> {
        Self::start_with(config, namespace, identity, LeaseTiming::default()).await
    }

    /// [`Self::start`] with explicit lease timing.
    pub async fn start_with(
        config: kube::Config,
        namespace: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self, LeaderError> {
        let params = lease_params(identity, timing)?;
        let fence = Arc::new(WriteFence::new(timing.writes_valid_for()));
        let renewals = RenewalLayer::new(fence.clone(), namespace, identity);
        let client = ClientBuilder::try_from(config)?
            .with_layer(&renewals)
            .build();
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
        let election = Election {
            manager,
            state,
            fence: fence.clone(),
            identity: identity.to_owned(),
        };
        let task = tokio::spawn(election.run(stopped));
        Ok(Self {
            leading,
            fence,
            stop: Some(stop),
            task,
        })
    }

    /// The fence of this instance's writes: give it to the controller's client
    /// ([`fieldwise_apply::FenceLayer`]). Closed until this instance leads, and for good once it
    /// stopped leading.
    pub fn fence(&self) -> Arc<WriteFence> {
        self.fence.clone()
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
        lease_duration_seconds: duration,
        renew_deadline_seconds: deadline,
        retry_period_seconds: retry,
    } = timing;
    if retry == 0 || retry >= deadline || deadline >= duration {
        return Err(LeaderError::Timing {
            duration,
            deadline,
            retry,
        });
    }
    // kube-lease-manager renews `grace` seconds before expiry, that is every `retry` seconds (it
    // panics on a grace of 0 or not below the duration, both excluded above).
    Ok(LeaseParams::new(identity, duration, duration - retry))
}

/// The election task's state.
struct Election {
    manager: LeaseManager,
    /// Published leadership.
    state: watch::Sender<bool>,
    fence: Arc<WriteFence>,
    identity: String,
}

impl Election {
    /// Holds the lease until stopped, until leadership is lost, or until a renewal did not come
    /// through before the fence closed; publishes the state on `state`.
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        let identity = &self.identity;
        // The lease manager says this instance holds the lease.
        let mut holds = false;
        loop {
            tokio::select! {
                biased;
                _ = &mut stopped => break,
                () = self.fence.closed() => {
                    let seconds = self.fence.valid_for().as_secs();
                    warn!(%identity, lease = LEASE_NAME, "the lease was not renewed within {seconds}s; writes stop and leadership is given up");
                    break;
                }
                // Leading starts with a renewal the fence has seen: a lease still held from before a
                // restart (same identity) is led only once it was renewed.
                () = self.fence.opened(), if holds && !*self.state.borrow() => {
                    info!(%identity, lease = LEASE_NAME, "became leader");
                    self.state.send_replace(true);
                }
                changed = self.manager.changed() => match changed {
                    Ok(true) => holds = true,
                    Ok(false) => {
                        warn!(%identity, lease = LEASE_NAME, "lost leadership");
                        break;
                    }
                    Err(error) if *self.state.borrow() => {
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
        // Writes end before anything else: leadership is over from here on.
        self.fence.revoke();
        self.state.send_replace(false);
        if let Err(error) = self.manager.release().await {
            let error = crate::runtime::errors::message(&error);
            warn!(%identity, %error, "could not release the lease; it expires by itself");
        }
    }
}

/// A tower layer for the elector's client: it watches the requests that write the Lease and tells
/// the fence when one was answered with this instance as the holder, counting from when it was sent.
#[derive(Clone)]
struct RenewalLayer {
    renewals: Arc<Renewals>,
}

/// What [`RenewalLayer`] looks for.
struct Renewals {
    fence: Arc<WriteFence>,
    /// The Lease's URL path.
    path: String,
    identity: String,
}

impl RenewalLayer {
    fn new(fence: Arc<WriteFence>, namespace: &str, identity: &str) -> Self {
        let path =
            format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE_NAME}");
        let identity = identity.to_owned();
        Self {
            renewals: Arc::new(Renewals {
                fence,
                path,
                identity,
            }),
        }
    }
}

impl<S> Layer<S> for RenewalLayer {
    type Service = RenewalWatch<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RenewalWatch {
            inner,
            renewals: self.renewals.clone(),
        }
    }
}

/// The service [`RenewalLayer`] makes.
#[derive(Clone)]
struct RenewalWatch<S> {
    inner: S,
    renewals: Arc<Renewals>,
}

impl<S, Req, B> Service<http::Request<Req>> for RenewalWatch<S>
where
    S: Service<http::Request<Req>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Either<B, Full<Bytes>>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Req>) -> Self::Future {
        let lease_write =
            request.method() == http::Method::PATCH && request.uri().path() == self.renewals.path;
        // Taken before the request leaves: a renewal counts from when it was sent, never from when
        // its answer arrived (which may be long after, when the process was paused meanwhile).
        let sent = (Instant::now(), SystemTime::now());
        let renewals = self.renewals.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await.map_err(Into::into)?;
            if !lease_write || !response.status().is_success() {
                return Ok(response.map(Either::Left));
            }
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            renewals.observe(&body, sent);
            Ok(http::Response::from_parts(
                parts,
                Either::Right(Full::new(body)),
            ))
        })
    }
}

impl Renewals {
    /// Opens the fence for a Lease write answered with `lease`, sent at `sent`, when the answer
    /// names this instance as the holder. kube-lease-manager writes without a resourceVersion
    /// precondition, so only the answer tells whether the lease is still ours: a renewal that went
    /// out after another replica took over is answered with that replica as the holder.
    fn observe(&self, lease: &[u8], (sent_at, sent_wall): (Instant, SystemTime)) {
        let Ok(lease) = serde_json::from_slice::<Lease>(lease) else {
            return;
        };
        let Some(spec) = lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let Some(renewed) = spec.renew_time else {
            return;
        };
        if let Some(sent_at) = counted_from(sent_at, sent_wall, SystemTime::from(renewed.0)) {
            self.fence.renewed(sent_at);
        }
    }
}

/// When a renewal sent at `sent_at` (`sent_wall` by the wall clock) that wrote `renew_time` counts
/// from. kube-lease-manager stamps `renewTime` before the request reaches the client: were the
/// process paused in between, the standbys would see an older renewal than `sent_at`, so the
/// difference is taken off. A wall clock that jumped forward meanwhile only shortens the fence.
fn counted_from(
    sent_at: Instant,
    sent_wall: SystemTime,
    renew_time: SystemTime,
) -> Option<Instant> {
    let stamped_before = sent_wall
        .duration_since(renew_time)
        .unwrap_or(Duration::ZERO);
    sent_at.checked_sub(stamped_before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_renews_before_writes_stop_and_stops_them_before_expiry() {
        let timing = LeaseTiming::default();
        let params = lease_params("pod", timing).expect("valid");
        // 15 s leases renewed 10 s before they expire: every 5 s.
        assert_eq!(params, LeaseParams::new("pod", 15, 10));
        assert_eq!(timing.writes_valid_for(), Duration::from_secs(10));
    }

    #[test]
    fn timing_needs_retries_within_the_deadline_within_the_lease() {
        for (duration, deadline, retry) in [(15, 10, 0), (15, 10, 10), (15, 15, 5), (0, 0, 0)] {
            let timing = LeaseTiming {
                lease_duration_seconds: duration,
                renew_deadline_seconds: deadline,
                retry_period_seconds: retry,
            };
            let refused = lease_params("pod", timing);
            assert!(
                matches!(refused, Err(LeaderError::Timing { .. })),
                "{timing:?}"
            );
        }
    }

    #[test]
    fn a_renewal_counts_from_when_its_time_was_stamped() {
        let sent_at = Instant::now();
        let wall = SystemTime::now();
        assert_eq!(counted_from(sent_at, wall, wall), Some(sent_at));
        // Stamped 3 s before it was sent (a pause in between): counted 3 s earlier.
        let three = Duration::from_secs(3);
        assert_eq!(
            counted_from(sent_at, wall, wall - three),
            sent_at.checked_sub(three)
        );
        // A stamp after the sending (the wall clock stepped back): the sending counts.
        assert_eq!(counted_from(sent_at, wall, wall + three), Some(sent_at));
    }

    fn lease(holder: &str, renewed: SystemTime) -> Vec<u8> {
        let renewed = k8s_openapi::jiff::Timestamp::try_from(renewed).expect("a timestamp");
        let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "ns"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                     "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renewed)}});
        serde_json::to_vec(&lease).expect("json")
    }

    #[tokio::test]
    async fn only_answers_naming_this_instance_as_holder_open_the_fence() {
        const VALID_FOR: Duration = Duration::from_secs(10);
        let fence = Arc::new(WriteFence::new(VALID_FOR));
        let layer = RenewalLayer::new(fence.clone(), "ns", "pod-a");
        let sent = (Instant::now(), SystemTime::now());
        // A renewal that went out after pod-b took over is answered with pod-b as the holder.
        layer.renewals.observe(&lease("pod-b", sent.1), sent);
        assert!(fence.check().is_err());
        layer.renewals.observe(b"not a lease", sent);
        assert!(fence.check().is_err());
        // The answer to a renewal sent 10 s ago arrives only now: too late to let anything through.
        let late = (
            sent.0.checked_sub(VALID_FOR).expect("an instant"),
            sent.1 - VALID_FOR,
        );
        layer.renewals.observe(&lease("pod-a", late.1), late);
        assert!(fence.check().is_err());
        layer.renewals.observe(&lease("pod-a", sent.1), sent);
        // renewTime keeps microseconds: the part cut off counts as stamped before the sending.
        let deadline = fence.deadline().expect("open");
        let latest = sent.0 + VALID_FOR;
        assert!(
            deadline <= latest && latest - deadline < Duration::from_micros(1),
            "{deadline:?}"
        );
        assert_eq!(fence.check(), Ok(()));
    }
}
