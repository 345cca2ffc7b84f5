//! `/metrics`, `/healthz` and `/readyz` over HTTP (axum).

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

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Health,
}

/// The routes, for embedding in another axum server.
pub fn router(metrics: Arc<Metrics>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// `ready`, or 503 with `not ready: <why>` (one line, for `kubectl describe pod` and curl).
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    match state.health.not_ready_reason() {
        None => (StatusCode::OK, "ready".to_owned()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// A bound listener, so the caller learns the port (e.g. after binding port 0) before serving.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
}

impl HttpServer {
    /// Binds `addr`; a port in use comes back as [`Error::Bind`].
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(HttpServer {
            listener,
            router: router(metrics, health),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)
    }
}

/// Binds `addr` and serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, health: Health) -> Result<(), Error> {
    serve_with_shutdown(addr, metrics, health, std::future::pending()).await
}

/// [`serve`] with graceful shutdown when `shutdown` completes.
pub async fn serve_with_shutdown(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    HttpServer::bind(addr, metrics, health)
        .await?
        .run(shutdown)
        .await
}
