//! `/healthz` and `/readyz` over plain HTTP for the kubelet, and `/metrics` on its own port over HTTPS
//! with authentication and authorization (or plain HTTP for development), with axum.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use rustls::pki_types::CertificateDer;

use crate::access::{self, CachedReviewer};
use crate::tls::{self, Certificate, TlsListener};
use crate::{Error, Metrics};

/// Content type of `/metrics` (OpenMetrics text 1.0.0).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/readyz` says before the process is ready and before anything more specific is known.
pub const STARTING: &str = "waiting for the initial lists of the caches";

/// Readiness shared between the controller and `/readyz`. Clones share one flag and one reason.
#[derive(Debug, Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// Why the process is not ready (`None`: [`STARTING`]).
    reason: Arc<Mutex<Option<String>>>,
}

impl Health {
    /// Not ready yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the process ready (call once the caches have synced); `/readyz` answers 200 after.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
        *self.lock_reason() = None;
    }

    /// Says why the process is not ready yet; `/readyz` answers 503 with `not ready: <reason>`.
    /// Ignored once ready.
    pub fn set_not_ready_reason(&self, reason: impl Into<String>) {
        if !self.is_ready() {
            *self.lock_reason() = Some(reason.into());
        }
    }

    /// Forgets a reason given earlier (the problem went away; the process is still starting).
    pub fn clear_not_ready_reason(&self) {
        *self.lock_reason() = None;
    }

    /// Whether [`Health::set_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Why the process is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.is_ready() {
            return None;
        }
        Some(
            self.lock_reason()
                .clone()
                .unwrap_or_else(|| STARTING.to_owned()),
        )
    }

    fn lock_reason(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A reason is a whole string: a panic elsewhere cannot leave it half-written.
        self.reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The probe routes, `/healthz` and `/readyz` (plain HTTP, for the kubelet).
pub fn probe_router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// The `/metrics` route; with `reviewer`, every request must carry a bearer token it allows.
pub fn metrics_router(metrics: Arc<Metrics>, reviewer: Option<Arc<CachedReviewer>>) -> Router {
    let router = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    match reviewer {
        Some(reviewer) => router.layer(axum::middleware::from_fn_with_state(
            reviewer,
            access::require_access,
        )),
        None => router,
    }
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// `ready`, or 503 with `not ready: <why>` (one line, for `kubectl describe pod` and curl).
async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    match health.not_ready_reason() {
        None => (StatusCode::OK, "ready".to_owned()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// How `/metrics` is served.
#[derive(Clone)]
pub enum MetricsAccess {
    /// HTTPS with `certificate`; every request needs a bearer token `reviewer` allows (the default).
    Secure {
        /// The serving certificate.
        certificate: Certificate,
        /// Decides who may read; cache it with [`CachedReviewer`].
        reviewer: Arc<CachedReviewer>,
    },
    /// Plain HTTP without authentication (development only).
    Insecure,
}

enum Bound {
    Plain(TcpListener),
    Tls(TlsListener),
}

/// A bound listener, so the caller learns the port (e.g. after binding port 0) before serving.
pub struct HttpServer {
    listener: Bound,
    router: Router,
    local_addr: SocketAddr,
    certificate_chain: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("https", &matches!(self.listener, Bound::Tls(_)))
            .finish()
    }
}

impl HttpServer {
    /// `/healthz` and `/readyz` over plain HTTP on `addr`; a port in use comes back as [`Error::Bind`].
    pub async fn probes(addr: SocketAddr, health: Health) -> Result<Self, Error> {
        Self::plain(addr, probe_router(health)).await
    }

    /// `/metrics` on `addr`, over HTTPS with authentication and authorization unless `access` is
    /// [`MetricsAccess::Insecure`]. Call inside a Tokio runtime.
    pub async fn metrics(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        access: MetricsAccess,
    ) -> Result<Self, Error> {
        match access {
            MetricsAccess::Insecure => Self::plain(addr, metrics_router(metrics, None)).await,
            MetricsAccess::Secure {
                certificate,
                reviewer,
            } => {
                let (config, certificate_chain) = tls::server_config(&certificate)?;
                let listener = bind(addr).await?;
                let local_addr = listener.local_addr().map_err(Error::Serve)?;
                Ok(HttpServer {
                    listener: Bound::Tls(TlsListener::new(listener, config).map_err(Error::Serve)?),
                    router: metrics_router(metrics, Some(reviewer)),
                    local_addr,
                    certificate_chain,
                })
            }
        }
    }

    async fn plain(addr: SocketAddr, router: Router) -> Result<Self, Error> {
        let listener = bind(addr).await?;
        let local_addr = listener.local_addr().map_err(Error::Serve)?;
        Ok(HttpServer {
            listener: Bound::Plain(listener),
            router,
            local_addr,
            certificate_chain: Vec::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local_addr)
    }

    /// Whether the server speaks HTTPS.
    pub fn is_https(&self) -> bool {
        matches!(self.listener, Bound::Tls(_))
    }

    /// The certificate chain served over HTTPS (leaf first); empty for plain HTTP.
    pub fn certificate_chain(&self) -> &[CertificateDer<'static>] {
        &self.certificate_chain
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        match self.listener {
            Bound::Plain(listener) => axum::serve(listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(Error::Serve),
            Bound::Tls(listener) => axum::serve(listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(Error::Serve),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}
