//! The write fence of a leader-elected operator: a mutating request leaves the process only while
//! the last confirmed renewal of the leader's lease is recent enough that no other replica can have
//! taken the lease over.
//!
//! The fence keeps time with the local monotonic clock. A process that was paused past its lease
//! (SIGSTOP, a frozen node, a long stall) finds on waking that its deadline has passed before it
//! sends anything, however stale the rest of its state is, and before it has had a chance to
//! notice that it lost the lease. [`FenceLayer`] puts the check in front of every request of a kube
//! `Client`, right before the request is handed to the connection, so no write path (applies,
//! status, finalizers, deletes, Events) can bypass it; reads pass.
//!
//! A request can still pass the layer's check and be held up before its bytes leave: the process
//! is paused right after the check, while the request waits for its connection's task. So writes
//! also travel over connections of their own whose tasks check the fence each time they are polled,
//! before they touch the socket ([`FencedExecutor`]): a process that wakes past its deadline closes
//! those connections instead of sending what they hold. What no client can cover: a pause between
//! that check and the system call that writes the bytes (microseconds), or a request held up on the
//! network. Only the API server could refuse those, and it has no notion of the lease.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::{sync::watch, time::Instant};
use tower::{BoxError, Layer, Service};

/// When writes were last allowed from, and whether they ended for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    /// When the newest renewal that confirmed this instance as the holder was sent.
    renewed_at: Option<Instant>,
    /// Leadership ended: no renewal opens the fence again.
    revoked: bool,
}

/// Whether this instance may write: see the module documentation. Shared between the lease keeper,
/// which reports renewals, and the clients' [`FenceLayer`]s.
#[derive(Debug)]
pub struct WriteFence {
    valid_for: Duration,
    state: watch::Sender<State>,
}

/// Why a write was refused before it was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FencedWrite {
    #[error(
        "write refused: this instance has not been confirmed as the holder of the leader lease"
    )]
    NeverRenewed,
    #[error(
        "write refused: the leader lease was last renewed {}ms ago, longer than the {}ms a leader \
         may write after a renewal; another replica may lead now",
        since.as_millis(),
        valid_for.as_millis()
    )]
    Expired {
        since: Duration,
        valid_for: Duration,
    },
    #[error("write refused: this instance no longer leads")]
    Revoked,
}

impl WriteFence {
    /// A closed fence that each confirmed renewal opens for `valid_for` from when it was sent.
    pub fn new(valid_for: Duration) -> Self {
        Self {
            valid_for,
            state: watch::Sender::new(State::default()),
        }
    }

    /// How long writes stay allowed after a renewal was sent.
    pub fn valid_for(&self) -> Duration {
        self.valid_for
    }

    /// A renewal sent at `sent_at` was answered with this instance as the holder: writes may go on
    /// until `sent_at + valid_for`. The send time, not the answer's arrival, counts, so a late answer
    /// opens nothing it should not; a renewal older than the last one moves nothing, and nothing
    /// moves after [`Self::revoke`].
    pub fn renewed(&self, sent_at: Instant) {
        self.state.send_if_modified(|state| {
            let newer = state.renewed_at.is_none_or(|last| sent_at > last);
            let moves = newer && !state.revoked;
            if moves {
                state.renewed_at = Some(sent_at);
            }
            moves
        });
    }

    /// Leadership ended: every later write is refused, whatever renewal is reported afterwards.
    pub fn revoke(&self) {
        self.state
            .send_if_modified(|state| !std::mem::replace(&mut state.revoked, true));
    }

    /// The instant writes stop being allowed, once a renewal was confirmed and until revoked.
    pub fn deadline(&self) -> Option<Instant> {
        let state = *self.state.borrow();
        let renewed_at = state.renewed_at.filter(|_| !state.revoked)?;
        Some(renewed_at + self.valid_for)
    }

    /// Whether a write may be sent now.
    pub fn check(&self) -> Result<(), FencedWrite> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), FencedWrite> {
        let state = *self.state.borrow();
        match state.renewed_at {
            _ if state.revoked => Err(FencedWrite::Revoked),
            None => Err(FencedWrite::NeverRenewed),
            Some(renewed_at) if now < renewed_at + self.valid_for => Ok(()),
            Some(renewed_at) => Err(FencedWrite::Expired {
                since: now.saturating_duration_since(renewed_at),
                valid_for: self.valid_for,
            }),
        }
    }

    /// Resolves once a write would pass: a renewal was confirmed within `valid_for` and the fence
    /// was not revoked. Pending while that is not so (a revoked fence never opens).
    pub async fn opened(&self) {
        let mut changes = self.state.subscribe();
        while self.check().is_err() {
            // The sender lives in `self`: `changed` fails only once it is gone.
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once writes are refused for good or by time: revoked, or a renewal was confirmed
    /// and `valid_for` passed without a newer one. Pending while no renewal was confirmed yet.
    pub async fn closed(&self) {
        let mut changes = self.state.subscribe();
        loop {
            let state = *changes.borrow_and_update();
            if state.revoked {
                return;
            }
            match self.deadline() {
                Some(deadline) if Instant::now() >= deadline => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        _ = changes.changed() => {}
                    }
                }
                // The sender lives in `self`: `changed` fails only once it is gone.
                None => {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A tower layer for the kube `Client` of a leader-elected operator: every request that is not a
/// read (GET, HEAD, OPTIONS) passes [`WriteFence::check`] right before it is sent, and fails with
/// [`FencedWrite`] (as `kube::Error::Service`) when the fence is closed.
#[derive(Clone, Debug)]
pub struct FenceLayer {
    fence: Arc<WriteFence>,
}

impl FenceLayer {
    pub fn new(fence: Arc<WriteFence>) -> Self {
        Self { fence }
    }
}

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fenced {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// The service [`FenceLayer`] makes.
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Arc<WriteFence>,
}

impl<S, B> Service<http::Request<B>> for Fenced<S>
where
    S: Service<http::Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let reads = [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS];
        let fence = (!reads.contains(request.method())).then(|| self.fence.clone());
        if let Some(Err(refused)) = fence.as_ref().map(|fence| fence.check()) {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let response = self.inner.call(request);
        // kube's stack sends nothing until its future is polled, which may be a while after this
        // call (the client's buffer hands the future back to the caller's task): checking again
        // before the first poll is checking as late as a layer can.
        Box::pin(async move {
            if let Some(fence) = fence {
                fence.check()?;
            }
            response.await.map_err(Into::into)
        })
    }
}

/// A hyper executor for the connection tasks of a client that only writes: each task checks the
/// fence every time it is polled, before it reads its queue of requests or touches its socket, and
/// ends once the fence is closed, which closes the connection and fails the requests it held (they
/// reach the API server not at all). [`FenceLayer`] refuses writes with a clear error first; this
/// is the backstop for a write that passed that check just before the process was paused.
///
/// Only for a client of writes: a closed fence stops every connection of the executor's client,
/// reads included.
#[derive(Clone, Debug)]
pub struct FencedExecutor {
    fence: Arc<WriteFence>,
}

impl FencedExecutor {
    pub fn new(fence: Arc<WriteFence>) -> Self {
        Self { fence }
    }
}

impl<F> hyper::rt::Executor<F> for FencedExecutor
where
    F: Future<Output = ()> + Send + Unpin + 'static,
{
    fn execute(&self, task: F) {
        let fence = self.fence.clone();
        let mut task = task;
        tokio::spawn(std::future::poll_fn(move |cx| {
            if fence.check().is_err() {
                return Poll::Ready(());
            }
            Pin::new(&mut task).poll(cx)
        }));
    }
}

/// A connector for a client that only writes: its connections refuse to send once the fence is
/// closed, checked in every write to the socket (under TLS: of the encrypted records), right
/// before the bytes are handed to the kernel ([`FencedIo`]).
#[derive(Clone, Debug)]
pub struct FencedConnector<C> {
    inner: C,
    fence: Arc<WriteFence>,
}

impl<C> FencedConnector<C> {
    pub fn new(inner: C, fence: Arc<WriteFence>) -> Self {
        Self { inner, fence }
    }
}

impl<C> Service<http::Uri> for FencedConnector<C>
where
    C: Service<http::Uri>,
    C::Future: Send + 'static,
{
    type Response = FencedIo<C::Response>;
    type Error = C::Error;
    type Future = BoxFuture<'static, Result<Self::Response, C::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let fence = self.fence.clone();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(FencedIo { io, fence })
        })
    }
}

/// A connection [`FencedConnector`] made: reads pass; a write fails with [`FencedWrite`] (as an
/// I/O error) once the fence is closed, and nothing of it is sent.
#[derive(Debug)]
pub struct FencedIo<T> {
    io: T,
    fence: Arc<WriteFence>,
}

impl<T> FencedIo<T> {
    fn refused(&self) -> Option<std::io::Error> {
        self.fence.check().err().map(std::io::Error::other)
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for FencedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for FencedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(refused) = self.refused() {
            return Poll::Ready(Err(refused));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(refused) = self.refused() {
            return Poll::Ready(Err(refused));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for FencedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// The [`FencedWrite`] a client error carries, if the fence refused the request.
pub fn fenced(error: &kube::Error) -> Option<&FencedWrite> {
    match error {
        kube::Error::Service(source) => source.downcast_ref::<FencedWrite>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    const VALID_FOR: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn writes_pass_only_within_the_validity_of_the_last_renewal_sent() {
        let fence = WriteFence::new(VALID_FOR);
        assert_eq!(fence.check(), Err(FencedWrite::NeverRenewed));
        let sent = Instant::now();
        // The answer arrives 2 s after the renewal was sent: the 10 s count from the sending.
        tokio::time::advance(Duration::from_secs(2)).await;
        fence.renewed(sent);
        assert_eq!(fence.deadline(), Some(sent + VALID_FOR));
        assert_eq!(fence.check(), Ok(()));
        tokio::time::advance(Duration::from_millis(7_999)).await;
        assert_eq!(fence.check(), Ok(()), "1 ms before the deadline");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(
            fence.check(),
            Err(FencedWrite::Expired {
                since: VALID_FOR,
                valid_for: VALID_FOR
            }),
            "at the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_or_older_renewal_does_not_reopen_the_fence() {
        let fence = WriteFence::new(VALID_FOR);
        let first = Instant::now();
        fence.renewed(first);
        tokio::time::advance(Duration::from_secs(3)).await;
        let second = Instant::now();
        tokio::time::advance(Duration::from_secs(9)).await;
        // The answer to `second` comes 9 s late, and an answer to `first` after it.
        fence.renewed(second);
        fence.renewed(first);
        assert_eq!(fence.deadline(), Some(second + VALID_FOR));
        tokio::time::advance(Duration::from_secs(1)).await;
        let refused = fence.check();
        assert!(
            matches!(refused, Err(FencedWrite::Expired { since, .. }) if since == Duration::from_secs(10)),
            "{refused:?}"
        );
        // Only a renewal sent later opens it again.
        fence.renewed(Instant::now());
        assert_eq!(fence.check(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_fence_stays_closed() {
        let fence = WriteFence::new(VALID_FOR);
        fence.renewed(Instant::now());
        fence.revoke();
        assert_eq!(fence.check(), Err(FencedWrite::Revoked));
        fence.renewed(Instant::now() + Duration::from_secs(1));
        assert_eq!(fence.check(), Err(FencedWrite::Revoked));
        assert_eq!(fence.deadline(), None);
        fence.closed().await;
    }

    #[tokio::test(start_paused = true)]
    async fn opened_resolves_with_the_first_renewal_and_never_after_revoke() {
        let fence = Arc::new(WriteFence::new(VALID_FOR));
        let opened = tokio::spawn({
            let fence = fence.clone();
            async move { fence.opened().await }
        });
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!opened.is_finished(), "no renewal yet");
        fence.renewed(Instant::now());
        opened.await.expect("opened by the renewal");
        fence.opened().await;

        fence.revoke();
        let never = tokio::time::timeout(Duration::from_secs(60), fence.opened()).await;
        assert!(never.is_err(), "a revoked fence does not open");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_resolves_at_the_deadline_of_the_last_renewal() {
        let fence = Arc::new(WriteFence::new(VALID_FOR));
        let start = Instant::now();
        let closed = tokio::spawn({
            let fence = fence.clone();
            async move {
                fence.closed().await;
                Instant::now()
            }
        });
        // Pending until a first renewal; each renewal moves the deadline.
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!closed.is_finished());
        fence.renewed(start + Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(5)).await;
        fence.renewed(start + Duration::from_secs(35));
        let closed_at = closed.await.expect("joins");
        assert_eq!(closed_at, start + Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_refuses_writes_and_lets_reads_through() {
        let fence = Arc::new(WriteFence::new(VALID_FOR));
        let (service, mut handle) = tower_test::mock::pair::<http::Request<()>, &'static str>();
        let mut service = FenceLayer::new(fence.clone()).layer(service);
        handle.allow(10);
        let answer = tokio::spawn(async move {
            let (_, respond) = handle.next_request().await.expect("the read is sent");
            respond.send_response("read");
            handle
        });
        let read = http::Request::get("/api/v1/namespaces/a/configmaps/b")
            .body(())
            .expect("request");
        assert_eq!(
            service
                .ready()
                .await
                .expect("ready")
                .call(read)
                .await
                .expect("a read passes"),
            "read"
        );
        let mut handle = answer.await.expect("joins");

        let write = || {
            http::Request::patch("/api/v1/namespaces/a/configmaps/b")
                .body(())
                .expect("request")
        };
        let error = service
            .ready()
            .await
            .expect("ready")
            .call(write())
            .await
            .expect_err("fenced");
        let fenced = error.downcast_ref::<FencedWrite>().expect("a FencedWrite");
        assert_eq!(fenced, &FencedWrite::NeverRenewed);
        // Dropped unsent: nothing reached the inner service.
        assert!(futures::poll!(Box::pin(handle.next_request())).is_pending());

        fence.renewed(Instant::now());
        let call = service.ready().await.expect("ready").call(write());
        let answer = tokio::spawn(async move {
            let (request, respond) = handle.next_request().await.expect("the write is sent");
            respond.send_response("written");
            assert_eq!(request.method(), http::Method::PATCH);
            handle
        });
        assert_eq!(call.await.expect("a write within the lease"), "written");
        let mut handle = answer.await.expect("joins");

        // A write that passed `call` but is polled only after the deadline is refused then.
        let late = service.ready().await.expect("ready").call(write());
        tokio::time::advance(VALID_FOR).await;
        let error = late.await.expect_err("fenced when first polled");
        let fenced = error.downcast_ref::<FencedWrite>().expect("a FencedWrite");
        assert!(matches!(fenced, FencedWrite::Expired { .. }), "{fenced:?}");
        drop(handle.next_request().await);
    }

    #[test]
    fn a_fenced_client_error_is_recognised() {
        let error = kube::Error::Service(Box::new(FencedWrite::Revoked));
        assert_eq!(fenced(&error), Some(&FencedWrite::Revoked));
        let other = kube::Error::Service("connection refused".into());
        assert_eq!(fenced(&other), None);
    }

    #[tokio::test]
    async fn a_fenced_connection_sends_nothing_once_the_fence_is_closed() {
        use hyper::rt::Write;
        use tokio::io::AsyncReadExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let address = listener.local_addr().expect("address");
        let received = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.expect("accepted");
            let mut bytes = Vec::new();
            peer.read_to_end(&mut bytes).await.expect("read");
            bytes
        });
        let fence = Arc::new(WriteFence::new(VALID_FOR));
        fence.renewed(Instant::now());
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.enforce_http(false);
        let mut connector = FencedConnector::new(tcp, fence.clone());
        let uri: http::Uri = format!("http://{address}").parse().expect("uri");
        let mut io = connector
            .ready()
            .await
            .expect("ready")
            .call(uri)
            .await
            .expect("connected");

        let sent = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"in time"));
        assert_eq!(sent.await.expect("sent"), 7);
        fence.revoke();
        let late = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"too late"));
        let refused = late.await.expect_err("refused");
        assert_eq!(
            refused.to_string(),
            FencedWrite::Revoked.to_string(),
            "the error names the fence"
        );
        drop(io);
        assert_eq!(received.await.expect("joined"), b"in time");
    }
}
