//! The controllers' client stack: every request timed by verb and counted in flight
//! ([`ApiMetricsLayer`]), and writes limited to the configured concurrency ([`WriteLimitLayer`]),
//! under the leader's fence when there is one.
//!
//! Why a write limit although reconciles already run at most `--concurrency` at a time and each
//! sends one request at a time: the bound then holds by construction, whatever a reconcile or the
//! Event recorder does, so an API server under Priority and Fairness never sees more than
//! `--concurrency` mutating requests from the operator at once (reads, watches among them, are
//! not limited: a watch stays open for minutes).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use fieldwise_apply::{FenceLayer, FencedConnector, FencedExecutor, WriteFence, fence::Fenced};
use fieldwise_observability::Metrics;
use futures::future::BoxFuture;
use kube::client::ClientBuilder;
use tokio::sync::Semaphore;
use tower::util::{Either, option_layer};
use tower::{BoxError, Layer, Service};

/// Builds the client the controllers write with ([`controller_layers`] over `config`). Under a
/// fence, over [`fenced_transport`].
pub fn controller_client(
    config: kube::Config,
    metrics: &Arc<Metrics>,
    concurrency: u16,
    fence: Option<Arc<WriteFence>>,
) -> Result<kube::Client, kube::Error> {
    let Some(fence) = fence else {
        let builder = kube::client::ClientBuilder::try_from(config)?;
        return Ok(controller_layers(builder, metrics, concurrency, None).build());
    };
    let builder = fenced_transport(config, &fence)?;
    Ok(controller_layers(builder, metrics, concurrency, Some(fence)).build())
}

/// Two clients over `config`, for a leader-elected operator: kube's own for reads, and for writes
/// one whose connections refuse to send once `fence` closes ([`write_client`]), the backstop for
/// a write held up between [`FenceLayer`]'s check and the socket (a process paused in that
/// instant sends nothing of it on waking).
fn fenced_transport(
    config: kube::Config,
    fence: &Arc<WriteFence>,
) -> Result<ClientBuilder<SplitByVerb>, kube::Error> {
    let default_namespace = config.default_namespace.clone();
    let writes = write_client(config.clone(), fence)?;
    let reads = kube::Client::try_from(config)?;
    let split = SplitByVerb { reads, writes };
    Ok(ClientBuilder::new(split, default_namespace))
}

/// kube's client stack for writes, over [`FencedConnector`]'s connections (each write to the
/// socket checks the fence) whose tasks run on [`FencedExecutor`] (a closed fence ends them). With
/// a proxy in the kubeconfig, kube's own connector is kept and only the executor is fenced (the
/// fence is then checked each time a connection's task runs, not at each write to its socket).
fn write_client(
    config: kube::Config,
    fence: &Arc<WriteFence>,
) -> Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt;
    let executor = FencedExecutor::new(fence.clone());
    if config.proxy_url.is_some() {
        return Ok(ClientBuilder::try_from((config, executor))?.build());
    }
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    let tls =
        config.rustls_https_connector_with_connector(FencedConnector::new(tcp, fence.clone()))?;
    // The timeouts kube's own client sets.
    let mut connector = hyper_timeout::TimeoutConnector::new(tls);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Builder::new(executor).build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Sends reads with one client and writes with the other.
#[derive(Clone)]
struct SplitByVerb {
    reads: kube::Client,
    writes: kube::Client,
}

impl Service<http::Request<kube::client::Body>> for SplitByVerb {
    type Response = http::Response<kube::client::Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each client waits for its own readiness in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let client = if is_write(request.method()) {
            self.writes.clone()
        } else {
            self.reads.clone()
        };
        Box::pin(async move { client.send(request).await.map_err(BoxError::from) })
    }
}

/// The service [`controller_layers`] makes of `S`.
pub type ControllerService<S> = WriteLimit<Either<Fenced<ApiMetrics<S>>, ApiMetrics<S>>>;

/// The controllers' layers over `builder`: [`WriteLimitLayer`] outermost (a write waits for its
/// slot before anything else), then the fence if any (checked as late as possible, after the
/// wait), then [`ApiMetricsLayer`] (so the latency it records is the API server's, not the
/// queue's). Tests put their own counting layer under it.
pub fn controller_layers<S>(
    builder: ClientBuilder<S>,
    metrics: &Arc<Metrics>,
    concurrency: u16,
    fence: Option<Arc<WriteFence>>,
) -> ClientBuilder<ControllerService<S>> {
    builder
        .with_layer(&ApiMetricsLayer::new(metrics.clone()))
        .with_layer(&option_layer(fence.map(FenceLayer::new)))
        .with_layer(&WriteLimitLayer::new(
            usize::from(concurrency.max(1)),
            metrics.clone(),
        ))
}

/// Whether a request changes anything (everything but GET, HEAD and OPTIONS).
fn is_write(method: &http::Method) -> bool {
    ![http::Method::GET, http::Method::HEAD, http::Method::OPTIONS].contains(method)
}

/// The Kubernetes verb of a request, as the API server's audit log names it.
pub fn verb<B>(request: &http::Request<B>) -> &'static str {
    let uri = request.uri();
    let target = PathTarget::of(uri.path());
    match *request.method() {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if target == PathTarget::Object => "delete",
        http::Method::DELETE => "deletecollection",
        _ if is_watch(uri.query()) => "watch",
        _ if target == PathTarget::Collection => "list",
        _ => "get",
    }
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    })
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
enum PathTarget {
    /// One object or its subresource: `namespaces/<ns>`, `<resource>/<name>`,
    /// `namespaces/<ns>/<resource>/<name>[/<subresource>]`.
    Object,
    /// `<resource>`, `namespaces/<ns>/<resource>`.
    Collection,
    /// Not under `/api/<version>` or `/apis/<group>/<version>` (discovery, `/version`, `/openapi/...`).
    Other,
}

impl PathTarget {
    fn of(path: &str) -> Self {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match segments.as_slice() {
            ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
            _ => return PathTarget::Other,
        };
        let object = match rest {
            [] => return PathTarget::Other,
            ["namespaces", _namespace, _resource, ..] => rest.len() >= 4,
            _ => rest.len() >= 2,
        };
        if object {
            PathTarget::Object
        } else {
            PathTarget::Collection
        }
    }
}

/// A tower layer that records [`Metrics::observe_api_request`] and the in-flight gauges for
/// every request.
#[derive(Clone, Debug)]
pub struct ApiMetricsLayer {
    metrics: Arc<Metrics>,
}

impl ApiMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ApiMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct ApiMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for ApiMetrics<S>
where
    S: Service<http::Request<B>>,
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
        let verb = verb(&request);
        let class = if is_write(request.method()) {
            "write"
        } else {
            "read"
        };
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let in_flight = metrics.api_request_in_flight(class);
            let started = Instant::now();
            let result = response.await;
            metrics.observe_api_request(verb, started.elapsed());
            drop(in_flight);
            result.map_err(Into::into)
        })
    }
}

/// A tower layer that lets at most `limit` writes be in flight at once; more wait, in order, for
/// a slot (counted by [`Metrics::count_api_write_wait`]). Reads pass straight through.
#[derive(Clone, Debug)]
pub struct WriteLimitLayer {
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl WriteLimitLayer {
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            metrics,
        }
    }
}

impl<S> Layer<S> for WriteLimitLayer {
    type Service = WriteLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WriteLimit {
            inner,
            slots: self.slots.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`WriteLimitLayer`] makes.
#[derive(Clone, Debug)]
pub struct WriteLimit<S> {
    inner: S,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for WriteLimit<S>
where
    S: Service<http::Request<B>>,
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
        if !is_write(request.method()) {
            let response = self.inner.call(request);
            return Box::pin(async move { response.await.map_err(Into::into) });
        }
        // kube's stack sends nothing until the future it returns is polled (the fence relies on
        // the same), so holding that future back until a slot is free is holding the write back.
        let response = self.inner.call(request);
        let slots = self.slots.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    metrics.count_api_write_wait();
                    slots.acquire_owned().await?
                }
            };
            let response = response.await;
            drop(slot);
            response.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    fn request(method: http::Method, uri: &str) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .expect("a valid test request")
    }

    #[test]
    fn verbs_are_named_as_the_audit_log_names_them() {
        use http::Method;
        let cases = [
            (Method::GET, "/api/v1/namespaces/a/secrets/s", "get"),
            (Method::GET, "/api/v1/namespaces/a/secrets", "list"),
            (Method::GET, "/api/v1/secrets?limit=500", "list"),
            (Method::GET, "/api/v1/namespaces/a", "get"),
            (Method::GET, "/api/v1/namespaces", "list"),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/a/deployments?watch=true&resourceVersion=5",
                "watch",
            ),
            (
                Method::GET,
                "/apis/feast.dev/v1/namespaces/a/featurestores/f/status",
                "get",
            ),
            (Method::GET, "/apis/apps/v1", "get"),
            (Method::GET, "/version", "get"),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                "create",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
                "update",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/d?fieldManager=fieldwise",
                "patch",
            ),
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/a/deployments/d",
                "delete",
            ),
            (
                Method::DELETE,
                "/apis/apps/v1/namespaces/a/deployments",
                "deletecollection",
            ),
            (
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/b",
                "delete",
            ),
        ];
        for (method, uri, expected) in cases {
            assert_eq!(
                verb(&request(method.clone(), uri)),
                expected,
                "{method} {uri}"
            );
        }
    }

    /// An inner service that records how many calls are in it at once and answers each when the
    /// test lets it.
    #[derive(Clone)]
    struct Gate {
        inside: Arc<AtomicUsize>,
        most_inside: Arc<AtomicUsize>,
        open: Arc<Notify>,
        served: Arc<Mutex<Vec<http::Method>>>,
    }

    impl Gate {
        fn new() -> Self {
            Self {
                inside: Arc::default(),
                most_inside: Arc::default(),
                open: Arc::new(Notify::new()),
                served: Arc::default(),
            }
        }
    }

    impl Service<http::Request<()>> for Gate {
        type Response = ();
        type Error = BoxError;
        type Future = BoxFuture<'static, Result<(), BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            let gate = self.clone();
            Box::pin(async move {
                let now = gate.inside.fetch_add(1, Ordering::SeqCst) + 1;
                gate.most_inside.fetch_max(now, Ordering::SeqCst);
                gate.open.notified().await;
                gate.inside.fetch_sub(1, Ordering::SeqCst);
                gate.served
                    .lock()
                    .expect("unpoisoned")
                    .push(request.method().clone());
                Ok(())
            })
        }
    }

    /// Polls every pending call once more, until nothing changes: the calls that can enter the
    /// gate have entered it.
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn at_most_the_limit_of_writes_is_in_flight_and_reads_never_wait() {
        let gate = Gate::new();
        let metrics = Arc::new(Metrics::new());
        let service = WriteLimitLayer::new(2, metrics.clone()).layer(gate.clone());
        let mut calls = Vec::new();
        for _ in 0..6 {
            let mut service = service.clone();
            calls.push(tokio::spawn(async move {
                service
                    .ready()
                    .await?
                    .call(request(
                        http::Method::PATCH,
                        "/api/v1/namespaces/a/configmaps/c",
                    ))
                    .await
            }));
        }
        settle().await;
        assert_eq!(
            gate.inside.load(Ordering::SeqCst),
            2,
            "two writes sent, four waiting"
        );
        let mut read = service.clone();
        let reading = tokio::spawn(async move {
            read.ready()
                .await?
                .call(request(
                    http::Method::GET,
                    "/api/v1/namespaces/a/configmaps/c",
                ))
                .await
        });
        settle().await;
        assert_eq!(
            gate.inside.load(Ordering::SeqCst),
            3,
            "the read went past the waiting writes"
        );
        // Let everything through, one answer at a time.
        for _ in 0..7 {
            gate.open.notify_one();
            settle().await;
        }
        for call in calls {
            call.await.expect("joined").expect("answered");
        }
        reading.await.expect("joined").expect("answered");
        assert_eq!(gate.served.lock().expect("unpoisoned").len(), 7);
        assert_eq!(
            gate.most_inside.load(Ordering::SeqCst),
            3,
            "never more than two writes (plus the read) at once"
        );
        let text = metrics.encode().expect("encoded");
        assert!(text.contains("fieldwise_api_write_waits_total 4"), "{text}");
    }

    #[tokio::test]
    async fn requests_are_timed_by_verb_and_counted_in_flight() {
        let gate = Gate::new();
        let metrics = Arc::new(Metrics::new());
        let mut service = ApiMetricsLayer::new(metrics.clone()).layer(gate.clone());
        let call = service.ready().await.expect("ready").call(request(
            http::Method::PATCH,
            "/api/v1/namespaces/a/configmaps/c",
        ));
        let answer = tokio::spawn(call);
        settle().await;
        let text = metrics.encode().expect("encoded");
        assert!(
            text.contains("fieldwise_api_requests_in_flight{class=\"write\"} 1"),
            "{text}"
        );
        gate.open.notify_one();
        answer.await.expect("joined").expect("answered");
        let text = metrics.encode().expect("encoded");
        assert!(
            text.contains("fieldwise_api_requests_in_flight{class=\"write\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("fieldwise_api_request_duration_seconds_count{verb=\"patch\"} 1"),
            "{text}"
        );
    }

    /// Holds back the write of the object named `held` until `fence` is closed, then sends it: a
    /// process paused right after [`FenceLayer`]'s check, which wakes past its deadline.
    #[derive(Clone)]
    struct HeldUntilClosed<S> {
        inner: S,
        fence: Arc<WriteFence>,
        held: &'static str,
    }

    impl<S, B> Service<http::Request<B>> for HeldUntilClosed<S>
    where
        S: Service<http::Request<B>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        B: Send + 'static,
    {
        type Response = S::Response;
        type Error = BoxError;
        type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<B>) -> Self::Future {
            let path = request.uri().path();
            let hold = is_write(request.method()) && path.ends_with(&format!("/{}", self.held));
            let fence = hold.then(|| self.fence.clone());
            let inner = self.inner.clone();
            Box::pin(async move {
                if let Some(fence) = fence {
                    fence.closed().await;
                }
                inner.oneshot(request).await.map_err(Into::into)
            })
        }
    }

    fn hold_until_closed<S>(
        fence: &Arc<WriteFence>,
        held: &'static str,
    ) -> impl Layer<S, Service = HeldUntilClosed<S>> {
        let fence = fence.clone();
        tower::layer::layer_fn(move |inner| HeldUntilClosed {
            inner,
            fence: fence.clone(),
            held,
        })
    }

    async fn apply_config_map(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Api, Patch, PatchParams};
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}});
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .patch(name, &PatchParams::apply("fieldwise"), &Patch::Apply(&body))
            .await
            .map(|_| ())
    }

    async fn config_map_exists(client: &kube::Client, name: &str) -> bool {
        use k8s_openapi::api::core::v1::ConfigMap;
        let config_maps = kube::api::Api::<ConfigMap>::namespaced(client.clone(), "default");
        config_maps.get_opt(name).await.expect("read").is_some()
    }

    #[tokio::test]
    async fn a_write_held_up_past_the_fence_after_its_check_never_reaches_the_api_server() {
        use fieldwise_e2e::emulator::{Emulator, Options};
        let emulator = Emulator::start(Options::default()).await.expect("emulator");
        let observer = emulator.client().expect("client");
        let metrics = Arc::new(Metrics::new());
        let fence = Arc::new(WriteFence::new(std::time::Duration::from_secs(1)));
        let config = emulator.config().expect("config");
        let transport = fenced_transport(config.clone(), &fence).expect("transport");
        let held = transport.with_layer(&hold_until_closed(&fence, "late"));
        let client = controller_layers(held, &metrics, 4, Some(fence.clone())).build();

        // Within the lease a write goes through, and leaves its connection pooled for the next.
        fence.renewed(tokio::time::Instant::now());
        apply_config_map(&client, "in-time")
            .await
            .expect("a write within the lease");
        assert!(config_map_exists(&observer, "in-time").await);

        // This one passes the fence's check, then waits past the deadline before its connection.
        fence.renewed(tokio::time::Instant::now());
        let refused = apply_config_map(&client, "late")
            .await
            .expect_err("a write sent past the fence");
        assert!(
            fieldwise_apply::fence::fenced(&refused).is_none(),
            "refused by its connection, not by the layer's check: {refused:?}"
        );
        assert!(
            !config_map_exists(&observer, "late").await,
            "none of the write may reach the API server"
        );
        assert!(
            config_map_exists(&client, "in-time").await,
            "reads still go through once the fence closed"
        );

        // The same over one plain transport: the late write goes out. What the fenced
        // connections prevent.
        let plain = ClientBuilder::new(
            SplitByVerb {
                reads: kube::Client::try_from(config.clone()).expect("client"),
                writes: kube::Client::try_from(config).expect("client"),
            },
            "default",
        );
        let held = plain.with_layer(&hold_until_closed(&fence, "late"));
        let client = controller_layers(held, &metrics, 4, Some(fence.clone())).build();
        fence.renewed(tokio::time::Instant::now());
        apply_config_map(&client, "late")
            .await
            .expect("sent past the fence");
        assert!(config_map_exists(&observer, "late").await);
    }
}
