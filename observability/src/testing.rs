//! Test helpers (feature `test-collector`): an in-process OTLP collector, a log capture, and HTTP(S)
//! GETs for the probe and metrics servers.
//!
//! ```no_run
//! # async fn t() {
//! use std::time::Duration;
//! use fieldwise_observability::{self as obs, testing::{Collector, LogCapture}};
//!
//! let collector = Collector::start_grpc().await.unwrap();
//! let logs = LogCapture::default();
//! let (dispatch, guard) =
//!     obs::dispatch_with_writer(&Default::default(), collector.env_lookup(), logs.clone()).unwrap();
//! {
//!     let _default = tracing::dispatcher::set_default(&dispatch);
//!     // ... run a reconcile ...
//! }
//! guard.flush().await.unwrap();
//! let spans = collector.wait_for_spans(3, Duration::from_secs(10)).await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as ProtoStatusCode;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tracing_subscriber::fmt::MakeWriter;

use crate::OtlpProtocol;

/// OTel span status as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    /// Not set.
    Unset,
    /// Explicitly OK.
    Ok,
    /// Failed.
    Error,
}

/// One span as the collector received it, with ids in lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    /// Span name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Attributes rendered as strings (ints and bools in their usual text form).
    pub attributes: BTreeMap<String, String>,
    /// Status code.
    pub status: SpanStatus,
    /// Status description.
    pub status_message: String,
    /// Attributes of the resource the span came with (`service.name`, ...).
    pub resource: BTreeMap<String, String>,
}

impl CollectedSpan {
    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Whether `self` is a direct child of `parent` (same trace, parent id matches).
    pub fn is_child_of(&self, parent: &CollectedSpan) -> bool {
        self.trace_id == parent.trace_id && self.parent_span_id.as_deref() == Some(&parent.span_id)
    }
}

/// `wait_for_spans` ran out of time; holds what had arrived.
#[derive(Debug, thiserror::Error)]
#[error("expected {expected} spans within {timeout:?}, got {}: {:?}", received.len(), received.iter().map(|s| &s.name).collect::<Vec<_>>())]
pub struct WaitTimeout {
    /// How many spans were awaited.
    pub expected: usize,
    /// How long.
    pub timeout: Duration,
    /// The spans received so far.
    pub received: Vec<CollectedSpan>,
}

#[derive(Debug, Clone, Default)]
struct Received {
    spans: Vec<CollectedSpan>,
    request_headers: Vec<BTreeMap<String, String>>,
}

/// Records export requests and wakes waiters.
#[derive(Clone)]
struct Sink(Arc<watch::Sender<Received>>);

impl Sink {
    fn record(&self, headers: &HeaderMap, request: ExportTraceServiceRequest) {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let spans = flatten(request);
        self.0.send_modify(|received| {
            received.request_headers.push(headers);
            received.spans.extend(spans);
        });
    }
}

/// An OTLP trace collector on 127.0.0.1 with a random port. Stops when dropped.
pub struct Collector {
    endpoint: String,
    protocol: OtlpProtocol,
    received: watch::Receiver<Received>,
    _stop: oneshot::Sender<()>,
}

impl Collector {
    /// Starts an OTLP/gRPC collector (`TraceService`).
    pub async fn start_grpc() -> io::Result<Collector> {
        let (listener, addr) = bind().await?;
        let (sink, received) = sink();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = TraceServiceServer::new(GrpcSink(sink));
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
        });
        Ok(Collector {
            endpoint: format!("http://{addr}"),
            protocol: OtlpProtocol::Grpc,
            received,
            _stop: stop,
        })
    }

    /// Starts an OTLP/HTTP collector accepting protobuf bodies on `POST /v1/traces`.
    pub async fn start_http() -> io::Result<Collector> {
        let (listener, addr) = bind().await?;
        let (sink, received) = sink();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .route("/v1/traces", post(http_export))
            .with_state(sink);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Collector {
            endpoint: format!("http://{addr}"),
            protocol: OtlpProtocol::HttpProtobuf,
            received,
            _stop: stop,
        })
    }

    /// The base endpoint, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The protocol this collector speaks.
    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// The `OTEL_*` variables that point an exporter here (endpoint, protocol, always_on sampler).
    pub fn env(&self) -> BTreeMap<String, String> {
        let protocol = match self.protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        };
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// [`Collector::env`] as a lookup closure for [`crate::dispatch_with_writer`].
    pub fn env_lookup(&self) -> impl Fn(&str) -> Option<String> + Clone + Send + 'static {
        let env = self.env();
        move |name| env.get(name).cloned()
    }

    /// All spans received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.received.borrow().spans.clone()
    }

    /// The headers (gRPC metadata) of every export request received so far.
    pub fn request_headers(&self) -> Vec<BTreeMap<String, String>> {
        self.received.borrow().request_headers.clone()
    }

    /// Waits until at least `count` spans have arrived, or `timeout` passes. Call
    /// [`crate::TelemetryGuard::flush`] first, or the batch processor's 5 s delay applies.
    pub async fn wait_for_spans(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<CollectedSpan>, WaitTimeout> {
        self.wait_until(timeout, |spans| spans.len() >= count)
            .await
            .map_err(|received| WaitTimeout {
                expected: count,
                timeout,
                received,
            })
    }

    /// Waits until `done` holds for the spans received so far (re-checked on every export
    /// request), or `timeout` passes; the error holds the spans that did arrive.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[CollectedSpan]) -> bool,
    ) -> Result<Vec<CollectedSpan>, Vec<CollectedSpan>> {
        let mut received = self.received.clone();
        let arrived = tokio::time::timeout(timeout, received.wait_for(|r| done(&r.spans)));
        match arrived.await {
            Ok(Ok(state)) => Ok(state.spans.clone()),
            _ => Err(self.spans()),
        }
    }
}

async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn sink() -> (Sink, watch::Receiver<Received>) {
    let (sender, receiver) = watch::channel(Received::default());
    (Sink(Arc::new(sender)), receiver)
}

struct GrpcSink(Sink);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        self.0.record(&headers, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn http_export(
    State(sink): State<Sink>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            sink.record(&headers, request);
            let response = ExportTraceServiceResponse {
                partial_success: None,
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response.encode_to_vec(),
            )
        }
        Err(err) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            err.to_string().into_bytes(),
        ),
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<CollectedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let (status, status_message) = match span.status {
                    Some(s) => (status_of(s.code), s.message),
                    None => (SpanStatus::Unset, String::new()),
                };
                out.push(CollectedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    attributes: attributes(&span.attributes),
                    status,
                    status_message,
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn status_of(code: i32) -> SpanStatus {
    match ProtoStatusCode::try_from(code) {
        Ok(ProtoStatusCode::Ok) => SpanStatus::Ok,
        Ok(ProtoStatusCode::Error) => SpanStatus::Error,
        _ => SpanStatus::Unset,
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(render).unwrap_or_default(),
            )
        })
        .collect()
}

fn render(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Captures log output in memory; give a clone to [`crate::dispatch_with_writer`].
#[derive(Debug, Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn contents(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The written lines.
    pub fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_string).collect()
    }
}

/// The writer handed out per log line.
#[derive(Debug)]
pub struct LogCaptureWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = LogCaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogCaptureWriter(self.0.clone())
    }
}

/// An HTTP answer: status code, lower-cased head and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub headers: String,
    /// The body.
    pub body: String,
}

/// `GET path` over HTTPS to `addr`, trusting only `trusted` (e.g. a server's self-signed
/// certificate, [`crate::HttpServer::certificate_chain`]) for the name `server_name`, with
/// `Authorization: Bearer <token>` when a token is given. An error is a failed connection or handshake.
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    trusted: &[rustls::pki_types::CertificateDer<'static>],
    path: &str,
    token: Option<&str>,
) -> io::Result<Reply> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots.add(certificate.clone()).map_err(io::Error::other)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(io::Error::other)?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    http_exchange(tls, path, token).await
}

/// `GET path` over plain HTTP to `addr`, with `Authorization: Bearer <token>` when a token is given.
pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> io::Result<Reply> {
    http_exchange(tokio::net::TcpStream::connect(addr).await?, path, token).await
}

/// A minimal HTTP/1.1 GET with `Connection: close`, enough to check status, headers and body.
async fn http_exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    path: &str,
    token: Option<&str>,
) -> io::Result<Reply> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after `Connection: close`; what arrived counts.
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(error) => return Err(error),
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("no HTTP head in {raw:?}")))?;
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status in {head:?}")))?;
    Ok(Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}
