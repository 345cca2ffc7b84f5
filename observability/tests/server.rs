//! The probe server (`/healthz`, `/readyz`) and the metrics server (`/metrics` over HTTPS with reviewed
//! bearer tokens, or plain HTTP for development) over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fieldwise_observability::testing::{Reply, http_get, https_get};
use fieldwise_observability::{
    Access, CachePolicy, CachedReviewer, Certificate, Error, Health, HttpServer, Metrics,
    MetricsAccess, ReconcileResult, ReviewFuture, TokenReviewer,
};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

async fn get(addr: SocketAddr, path: &str) -> Reply {
    http_get(addr, path, None).await.expect("GET")
}

/// Serves `server` until the returned sender is dropped or fires.
fn spawn(
    server: HttpServer,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (stop, running)
}

fn counted_metrics() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    metrics.observe_reconcile(
        "featurestore",
        ReconcileResult::Success,
        Duration::from_millis(5),
        None,
    );
    metrics
}

#[tokio::test]
async fn probes_answer_and_readyz_flips_once_ready() {
    let health = Health::new();
    let server = HttpServer::probes(([127, 0, 0, 1], 0).into(), health.clone())
        .await
        .expect("bind");
    assert!(!server.is_https());
    let addr = server.local_addr().expect("addr");
    let (stop, running) = spawn(server);

    assert_eq!(get(addr, "/healthz").await.status, 200);
    let not_ready = get(addr, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(
        not_ready.body,
        "not ready: waiting for the initial lists of the caches\n"
    );
    health.set_not_ready_reason("the FeatureStore CRD is not installed");
    let not_ready = get(addr, "/readyz").await;
    assert_eq!(
        (not_ready.status, not_ready.body.as_str()),
        (503, "not ready: the FeatureStore CRD is not installed\n")
    );
    health.set_ready();
    assert_eq!(get(addr, "/readyz").await.status, 200);
    assert_eq!(get(addr, "/healthz").await.status, 200);
    // The metrics are not on the probe port.
    assert_eq!(get(addr, "/metrics").await.status, 404);

    stop.send(()).expect("server still running");
    running
        .await
        .expect("joins")
        .expect("graceful shutdown is Ok");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn insecure_metrics_are_plain_http_without_authentication() {
    let server = HttpServer::metrics(
        ([127, 0, 0, 1], 0).into(),
        counted_metrics(),
        MetricsAccess::Insecure,
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (_stop, _running) = spawn(server);

    let scrape = get(addr, "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .headers
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{}",
        scrape.headers
    );
    assert!(
        scrape.body.contains(
            "fieldwise_reconciles_total{controller=\"featurestore\",result=\"success\"} 1"
        ),
        "{}",
        scrape.body
    );
    assert!(scrape.body.ends_with("# EOF\n"));
    assert_eq!(get(addr, "/healthz").await.status, 404);
}

/// Tokens named after what they stand for; counts the reviews it makes.
#[derive(Default)]
struct FakeReviewer {
    reviews: AtomicUsize,
}

impl TokenReviewer for FakeReviewer {
    fn review<'a>(&'a self, token: &'a str, path: &'a str) -> ReviewFuture<'a> {
        self.reviews.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            assert_eq!(path, "/metrics");
            match token {
                "reader" => Ok(Access::Allowed),
                "stranger" => Ok(Access::Forbidden {
                    user: "system:serviceaccount:ml:stranger".to_owned(),
                }),
                "unreachable" => Err("the API server did not answer".to_owned()),
                _ => Ok(Access::Unauthenticated),
            }
        })
    }
}

async fn secure_server(
    certificate: Certificate,
) -> (HttpServer, Arc<FakeReviewer>, Arc<CachedReviewer>) {
    let fake = Arc::new(FakeReviewer::default());
    let reviewer = Arc::new(CachedReviewer::new(fake.clone(), CachePolicy::default()));
    let server = HttpServer::metrics(
        ([127, 0, 0, 1], 0).into(),
        counted_metrics(),
        MetricsAccess::Secure {
            certificate,
            reviewer: reviewer.clone(),
        },
    )
    .await
    .expect("bind");
    (server, fake, reviewer)
}

#[tokio::test]
async fn secure_metrics_need_a_token_whose_user_may_get_metrics() {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let (server, fake, reviewer) = secure_server(Certificate::SelfSigned(names)).await;
    assert!(server.is_https());
    let addr = server.local_addr().expect("addr");
    let trusted = server.certificate_chain().to_vec();
    assert_eq!(trusted.len(), 1, "one self-signed certificate");
    let (_stop, _running) = spawn(server);
    let scrape = |token: Option<&'static str>| {
        let trusted = trusted.clone();
        async move {
            https_get(addr, "localhost", &trusted, "/metrics", token)
                .await
                .expect("HTTPS GET")
        }
    };

    let anonymous = scrape(None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(anonymous.headers.contains("www-authenticate: bearer"));
    assert_eq!(fake.reviews.load(Ordering::SeqCst), 0, "nothing to review");
    assert_eq!(scrape(Some("forged")).await.status, 401);
    let forbidden = scrape(Some("stranger")).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.body,
        "user \"system:serviceaccount:ml:stranger\" may not get /metrics\n"
    );
    let allowed = scrape(Some("reader")).await;
    assert_eq!(allowed.status, 200);
    assert!(allowed.body.contains("fieldwise_reconciles_total"));
    let failed = scrape(Some("unreachable")).await;
    assert_eq!(failed.status, 500);
    assert!(
        !failed.body.contains("unreachable"),
        "the token is not echoed"
    );

    // Decisions are cached (failures are not): repeating each token reviews only the failing one again.
    let reviews = fake.reviews.load(Ordering::SeqCst);
    assert_eq!(reviews, 4);
    assert_eq!(reviewer.cached(), 3);
    for token in ["forged", "stranger", "reader"] {
        scrape(Some(token)).await;
    }
    assert_eq!(fake.reviews.load(Ordering::SeqCst), reviews);
    scrape(Some("unreachable")).await;
    assert_eq!(fake.reviews.load(Ordering::SeqCst), reviews + 1);

    // Plain HTTP on the HTTPS port gets no metrics.
    let plain = http_get(addr, "/metrics", Some("reader")).await;
    assert!(
        plain.as_ref().map_or(true, |reply| reply.status != 200),
        "{plain:?}"
    );
}

#[tokio::test]
async fn a_certificate_from_a_directory_is_served() {
    let generated = rcgen::generate_simple_self_signed(vec![
        "fieldwise-metrics.fieldwise-system.svc".to_owned(),
    ])
    .expect("certificate");
    let directory =
        std::env::temp_dir().join(format!("fieldwise-metrics-cert-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("directory");
    std::fs::write(directory.join("tls.crt"), generated.cert.pem()).expect("tls.crt");
    std::fs::write(
        directory.join("tls.key"),
        generated.signing_key.serialize_pem(),
    )
    .expect("tls.key");
    let (server, _fake, _reviewer) = secure_server(Certificate::Directory(directory.clone())).await;
    let addr = server.local_addr().expect("addr");
    assert_eq!(server.certificate_chain(), [generated.cert.der().clone()]);
    let (_stop, _running) = spawn(server);
    let trusted = [generated.cert.der().clone()];
    let reply = https_get(
        addr,
        "fieldwise-metrics.fieldwise-system.svc",
        &trusted,
        "/metrics",
        Some("reader"),
    )
    .await
    .expect("HTTPS GET");
    assert_eq!(reply.status, 200);

    // A missing key is an error naming the file, not a panic.
    std::fs::remove_file(directory.join("tls.key")).expect("removed");
    let fake = Arc::new(FakeReviewer::default());
    let failed = HttpServer::metrics(
        ([127, 0, 0, 1], 0).into(),
        Arc::new(Metrics::new()),
        MetricsAccess::Secure {
            certificate: Certificate::Directory(directory.clone()),
            reviewer: Arc::new(CachedReviewer::new(fake, CachePolicy::default())),
        },
    )
    .await;
    match failed {
        Err(Error::Tls(message)) => assert!(message.contains("tls.key"), "{message}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(directory);
}

#[tokio::test]
async fn the_review_cache_is_bounded() {
    let fake = Arc::new(FakeReviewer::default());
    let policy = CachePolicy {
        capacity: 3,
        ..CachePolicy::default()
    };
    let reviewer = CachedReviewer::new(fake.clone(), policy);
    for index in 0..10 {
        reviewer
            .review(&format!("token-{index}"), "/metrics")
            .await
            .expect("reviewed");
        assert!(reviewer.cached() <= 3, "{} cached", reviewer.cached());
    }
}

#[tokio::test]
async fn a_port_in_use_is_an_error_not_a_panic() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let result = HttpServer::probes(addr, Health::new()).await;
    match result {
        Err(Error::Bind { addr: reported, .. }) => assert_eq!(reported, addr),
        other => panic!("expected a bind error, got {other:?}"),
    }
}
