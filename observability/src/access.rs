//! Who may read `/metrics`: a bearer token is reviewed (in the operator, by a TokenReview and a
//! SubjectAccessReview against the API server) and the answer is cached briefly, keyed by a hash of the
//! token. Tokens are never logged, stored or echoed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// What a review of a bearer token decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The token's user may `get` the path.
    Allowed,
    /// The token authenticates nobody (401).
    Unauthenticated,
    /// The token's user (named) may not `get` the path (403).
    Forbidden {
        /// The authenticated user's name.
        user: String,
    },
}

/// A boxed review in flight.
pub type ReviewFuture<'a> = Pin<Box<dyn Future<Output = Result<Access, String>> + Send + 'a>>;

/// Decides whether a bearer token may `get` a non-resource path. An `Err` means no decision could be
/// made (the API server could not be asked); it is never cached. Implementations must not log the token.
pub trait TokenReviewer: Send + Sync + 'static {
    /// Reviews `token` for `get` on `path`.
    fn review<'a>(&'a self, token: &'a str, path: &'a str) -> ReviewFuture<'a>;
}

/// How long decisions are kept and how many.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// How long an `Allowed` is reused.
    pub allowed_ttl: Duration,
    /// How long a refusal (401 or 403) is reused: short, so a new binding takes effect soon.
    pub denied_ttl: Duration,
    /// At most this many tokens are remembered; past it, expired entries go first, then all.
    pub capacity: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        // kube-rbac-proxy and controller-runtime cache for minutes; a scrape every 30 s then costs
        // two API calls per minute at most.
        CachePolicy {
            allowed_ttl: Duration::from_secs(60),
            denied_ttl: Duration::from_secs(10),
            capacity: 256,
        }
    }
}

type TokenHash = [u8; 32];

/// A [`TokenReviewer`] whose decisions are cached by token hash and path.
pub struct CachedReviewer {
    inner: Arc<dyn TokenReviewer>,
    policy: CachePolicy,
    decisions: Mutex<HashMap<(TokenHash, String), (Access, Instant)>>,
}

impl CachedReviewer {
    /// Caches `inner`'s decisions as `policy` says.
    pub fn new(inner: Arc<dyn TokenReviewer>, policy: CachePolicy) -> Self {
        CachedReviewer {
            inner,
            policy,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The cached decision, or a fresh review (cached unless it failed).
    pub async fn review(&self, token: &str, path: &str) -> Result<Access, String> {
        let key = (hash(token), path.to_owned());
        let now = Instant::now();
        if let Some((access, expires)) = self.lock().get(&key)
            && *expires > now
        {
            return Ok(access.clone());
        }
        let access = self.inner.review(token, path).await?;
        let ttl = match access {
            Access::Allowed => self.policy.allowed_ttl,
            _ => self.policy.denied_ttl,
        };
        let mut decisions = self.lock();
        if decisions.len() >= self.policy.capacity {
            decisions.retain(|_, (_, expires)| *expires > now);
            if decisions.len() >= self.policy.capacity {
                decisions.clear();
            }
        }
        decisions.insert(key, (access.clone(), now + ttl));
        Ok(access)
    }

    /// How many decisions are cached now (for tests).
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TokenHash, String), (Access, Instant)>> {
        // Entries are inserted whole: a panic elsewhere cannot leave one half-written.
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The bearer token of an `Authorization: Bearer <token>` header, if any.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Axum middleware: 401 without a token or with one that authenticates nobody, 403 when its user may
/// not `get` the path, 500 when no review could be made; otherwise the request goes on.
pub async fn require_access(
    State(reviewer): State<Arc<CachedReviewer>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(&request) else {
        return unauthorized("a bearer token is required\n");
    };
    let path = request.uri().path().to_owned();
    match reviewer.review(token, &path).await {
        Ok(Access::Allowed) => next.run(request).await,
        Ok(Access::Unauthenticated) => unauthorized("the bearer token was not accepted\n"),
        Ok(Access::Forbidden { user }) => (
            StatusCode::FORBIDDEN,
            format!("user {user:?} may not get {path}\n"),
        )
            .into_response(),
        Err(message) => {
            tracing::error!(%path, "cannot review a metrics request: {message}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot review the request's credentials; see the operator's log\n",
            )
                .into_response()
        }
    }
}

fn unauthorized(body: &'static str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
