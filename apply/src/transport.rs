//! Sending one request with bounded retries: 429 (honouring Retry-After), 5xx, non-apply 409s,
//! timeouts and connection errors are retried with capped exponential backoff; everything else
//! comes back at once. A reconcile must never hang on one object, so every bound is small.

use std::time::Duration;

use http::{Request, header::RETRY_AFTER};
use kube::{Client, client::Body};
use serde_json::Value;

use crate::{
    fence::fenced,
    identity::{Identity, identity_of},
};

/// Retry and timeout bounds for each request the engine sends.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of the exponential delay.
    pub max_backoff: Duration,
    /// Upper bound of a server-requested `Retry-After` delay.
    pub max_retry_after: Duration,
    /// Time limit of a single attempt.
    pub request_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A 2xx answer. The body is kept as received and parsed only as far as the caller needs: most
/// callers want the resourceVersion alone, and parsing every applied object whole (managedFields
/// included) was a large part of a reconcile's CPU time.
#[derive(Debug)]
pub(crate) struct Success {
    pub code: u16,
    text: bytes::Bytes,
}

impl Success {
    /// The whole body as JSON (`Null` when it is not JSON).
    pub fn body(&self) -> Value {
        serde_json::from_slice(&self.text).unwrap_or(Value::Null)
    }

    /// The body as it came.
    pub fn text(&self) -> bytes::Bytes {
        self.text.clone()
    }

    /// `metadata.uid` and `metadata.resourceVersion` of the returned object, read without building
    /// (or reading) the rest.
    pub fn identity(&self) -> Identity {
        identity_of(&self.text)
    }
}

/// A non-2xx answer, decoded from the `Status` body.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// A server-side-apply field manager conflict (only possible without force).
    pub field_conflict: bool,
    pub retry_after: Option<Duration>,
}

#[derive(Debug)]
pub(crate) enum SendError {
    /// The server refused, and retrying would not help.
    Final(Failure),
    /// Retryable failures through every attempt.
    Exhausted { attempts: u32, last: String },
    /// The answer was not JSON or the request could not be built.
    Malformed(String),
    /// The client's write fence refused to send it: this instance may no longer lead. Not retried.
    Fenced(String),
}

/// Sends `request`, retrying as configured.
pub(crate) async fn send(
    client: &Client,
    request: Request<Vec<u8>>,
    cfg: &RetryConfig,
) -> Result<Success, SendError> {
    send_with(client, request, cfg, Conflicts::Retry).await
}

/// Sends a request that carries its own resourceVersion precondition: a 409 means the object
/// changed since it was read, and sending the same request again would fail the same way, so it
/// comes back at once for the caller to read the object again.
pub(crate) async fn send_guarded(
    client: &Client,
    request: Request<Vec<u8>>,
    cfg: &RetryConfig,
) -> Result<Success, SendError> {
    send_with(client, request, cfg, Conflicts::Answer).await
}

/// Whether a "the object has been modified" 409 is retried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflicts {
    Retry,
    Answer,
}

async fn send_with(
    client: &Client,
    request: Request<Vec<u8>>,
    cfg: &RetryConfig,
    conflicts: Conflicts,
) -> Result<Success, SendError> {
    let (parts, body) = request.into_parts();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Body::from(body.clone()))
            .map_err(|e| SendError::Malformed(e.to_string()))?;
        let (last, delay) =
            match tokio::time::timeout(cfg.request_timeout, exchange(client, request)).await {
                Err(_) => ("request timed out".to_string(), backoff(cfg, attempt)),
                Ok(Err(Unsent::Fenced(message))) => return Err(SendError::Fenced(message)),
                Ok(Err(Unsent::Failed(transport))) => (transport, backoff(cfg, attempt)),
                Ok(Ok(Ok(success))) => return Ok(success),
                Ok(Ok(Err(failure))) if failure.code == 409 && conflicts == Conflicts::Answer => {
                    return Err(SendError::Final(failure));
                }
                Ok(Ok(Err(failure))) => match retry_delay(&failure, attempt, cfg) {
                    Some(delay) => (
                        format!("{} {}: {}", failure.code, failure.reason, failure.message),
                        delay,
                    ),
                    None => return Err(SendError::Final(failure)),
                },
            };
        if attempt >= cfg.max_attempts {
            return Err(SendError::Exhausted {
                attempts: attempt,
                last,
            });
        }
        tracing::debug!(attempt, delay_ms = delay.as_millis() as u64, error = %last, "retrying request");
        tokio::time::sleep(delay).await;
    }
}

/// Why a request got no answer.
enum Unsent {
    /// A transport failure (retryable).
    Failed(String),
    /// The write fence refused it ([`crate::fence`]).
    Fenced(String),
}

/// One round trip. Outer error: no answer; inner: the server's answer.
async fn exchange(
    client: &Client,
    request: Request<Body>,
) -> Result<Result<Success, Failure>, Unsent> {
    let response = client.send(request).await.map_err(|e| match fenced(&e) {
        Some(fenced) => Unsent::Fenced(fenced.to_string()),
        None => Unsent::Failed(format!("transport error: {e}")),
    })?;
    let code = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| Unsent::Failed(format!("reading response: {e}")))?;
    if (200..300).contains(&code) {
        return Ok(Ok(Success { code, text: bytes }));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Err(decode_failure(code, &body, retry_after)))
}

fn decode_failure(code: u16, body: &Value, retry_after: Option<Duration>) -> Failure {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let field_conflict = body
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .is_some_and(|causes| {
            causes
                .iter()
                .any(|c| c.get("reason").and_then(Value::as_str) == Some("FieldManagerConflict"))
        });
    let retry_after = retry_after.or_else(|| {
        body.pointer("/details/retryAfterSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
    });
    Failure {
        code,
        reason: text("reason"),
        message: text("message"),
        field_conflict,
        retry_after,
    }
}

fn backoff(cfg: &RetryConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    cfg.initial_backoff
        .saturating_mul(factor)
        .min(cfg.max_backoff)
}

/// The delay before retrying a failure, or `None` when it must not be retried.
fn retry_delay(failure: &Failure, attempt: u32, cfg: &RetryConfig) -> Option<Duration> {
    let exponential = backoff(cfg, attempt);
    match failure.code {
        429 => Some(
            failure
                .retry_after
                .map_or(exponential, |d| d.min(cfg.max_retry_after)),
        ),
        // A field manager conflict or a failed precondition is an answer, not a transient state;
        // so is an apply naming a uid no live object has (the object is gone: kube-apiserver's
        // "uid mismatch: … no existing object was found"). Other conflicts ("the object has been
        // modified") are storage races worth retrying.
        409 if failure.field_conflict
            || failure.message.contains("Precondition failed")
            || failure.message.contains("uid mismatch") =>
        {
            None
        }
        409 => Some(exponential),
        // The apply body does not fit the schema (spec §2.1): permanent, though reported as 500.
        500 if failure
            .message
            .contains("failed to create typed patch object") =>
        {
            None
        }
        500..=599 => Some(
            failure
                .retry_after
                .map_or(exponential, |d| d.min(cfg.max_retry_after)),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: u16, message: &str) -> Failure {
        Failure {
            code,
            reason: String::new(),
            message: message.into(),
            field_conflict: false,
            retry_after: None,
        }
    }

    #[test]
    fn classifies_status_codes() {
        let cfg = RetryConfig::default();
        assert_eq!(
            retry_delay(&failure(503, "x"), 1, &cfg),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            retry_delay(&failure(500, "etcd"), 3, &cfg),
            Some(Duration::from_millis(800))
        );
        assert_eq!(
            retry_delay(&failure(504, "x"), 10, &cfg),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_delay(&failure(409, "the object has been modified"), 1, &cfg),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            retry_delay(
                &failure(409, "Precondition failed: UID in precondition"),
                1,
                &cfg
            ),
            None
        );
        // What kube-apiserver answers an apply with the uid of an object that is gone.
        let gone = "Operation cannot be fulfilled on featurestores.feast.dev \"x\": uid mismatch: \
                    the provided object specified uid 1, and no existing object was found";
        assert_eq!(retry_delay(&failure(409, gone), 1, &cfg), None);
        let mut conflict = failure(409, "Apply failed with 1 conflict");
        conflict.field_conflict = true;
        assert_eq!(retry_delay(&conflict, 1, &cfg), None);
        for code in [400, 403, 404, 422] {
            assert_eq!(retry_delay(&failure(code, "x"), 1, &cfg), None, "{code}");
        }
        assert_eq!(
            retry_delay(
                &failure(
                    500,
                    "failed to create typed patch object (ns/x): .spec.bogus"
                ),
                1,
                &cfg
            ),
            None
        );
        let mut throttled = failure(429, "slow down");
        throttled.retry_after = Some(Duration::from_secs(3));
        assert_eq!(
            retry_delay(&throttled, 1, &cfg),
            Some(Duration::from_secs(3))
        );
        throttled.retry_after = Some(Duration::from_secs(600));
        assert_eq!(
            retry_delay(&throttled, 1, &cfg),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn decodes_status_bodies() {
        let body = serde_json::json!({"kind": "Status", "reason": "Conflict", "code": 409,
            "message": "Apply failed with 1 conflict: conflict with \"hpa\": .spec.replicas",
            "details": {"causes": [{"reason": "FieldManagerConflict", "field": ".spec.replicas"}]}});
        let f = decode_failure(409, &body, None);
        assert!(f.field_conflict);
        assert_eq!(f.reason, "Conflict");
        let body = serde_json::json!({"kind": "Status", "reason": "TooManyRequests", "details": {"retryAfterSeconds": 2}});
        assert_eq!(
            decode_failure(429, &body, None).retry_after,
            Some(Duration::from_secs(2))
        );
    }
}
