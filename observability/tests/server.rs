//! `/metrics`, `/healthz` and `/readyz` over a real socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fieldwise_observability::{Error, Health, HttpServer, Metrics, ReconcileResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// A minimal HTTP/1.1 GET, enough to check status, headers and body.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head[9..12].parse().expect("status code");
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

#[tokio::test]
async fn endpoints_answer_and_readyz_flips_once_ready() {
    let metrics = Arc::new(Metrics::new());
    metrics.observe_reconcile(
        "featurestore",
        ReconcileResult::Success,
        Duration::from_millis(5),
        None,
    );
    let health = Health::new();
    let server = HttpServer::bind(([127, 0, 0, 1], 0).into(), metrics, health.clone())
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

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
    assert_eq!(get(addr, "/nope").await.status, 404);

    stop.send(()).expect("server still running");
    running
        .await
        .expect("joins")
        .expect("graceful shutdown is Ok");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn a_port_in_use_is_an_error_not_a_panic() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let result =
        fieldwise_observability::serve(addr, Arc::new(Metrics::new()), Health::new()).await;
    match result {
        Err(Error::Bind { addr: reported, .. }) => assert_eq!(reported, addr),
        other => panic!("expected a bind error, got {other:?}"),
    }
}
