//! Raw HTTP access to an emulator for black-box tests: exact status codes, headers and bodies, and
//! watch streams read event by event with a timeout (never a sleep).

use std::time::Duration;

use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::Value;

use crate::emulator::EmulatorHandle;

pub type TestError = Box<dyn std::error::Error + Send + Sync>;

/// A finished response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    pub text: String,
}

/// Sends arbitrary requests through a kube client (so its User-Agent and connection handling apply).
#[derive(Clone)]
pub struct RawClient {
    client: kube::Client,
    user_agent: Option<String>,
}

impl RawClient {
    pub fn new(handle: &EmulatorHandle) -> Result<Self, TestError> {
        Ok(RawClient {
            client: handle.client()?,
            user_agent: None,
        })
    }

    /// Sends this User-Agent on every request (the server derives field managers from it).
    pub fn with_user_agent(mut self, ua: &str) -> Self {
        self.user_agent = Some(ua.to_string());
        self
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<http::Request<Body>, TestError> {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(ua) = &self.user_agent {
            b = b.header(http::header::USER_AGENT, ua.as_str());
        }
        Ok(b.body(Body::from(body))?)
    }

    /// Any request; `body` is sent as JSON text.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<RawResponse, TestError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.request_bytes(method, path, content_type, bytes).await
    }

    pub async fn request_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse, TestError> {
        let resp = self
            .client
            .send(self.build(method, path, content_type, body)?)
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(RawResponse {
            status,
            headers,
            body,
            text,
        })
    }

    pub async fn get(&self, path: &str) -> Result<RawResponse, TestError> {
        self.request("GET", path, None, None).await
    }

    /// GET with an explicit Accept header (e.g. the Table media type kubectl sends).
    pub async fn get_with_accept(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<RawResponse, TestError> {
        let resp = self.client.send(self.get_accepting(path, accept)?).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(RawResponse {
            status,
            headers,
            body,
            text,
        })
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<RawResponse, TestError> {
        self.request("POST", path, Some("application/json"), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<RawResponse, TestError> {
        self.request("PUT", path, Some("application/json"), Some(body))
            .await
    }

    /// `kind`: `merge`, `json`, `strategic` or `apply`.
    pub async fn patch(
        &self,
        path: &str,
        kind: &str,
        body: &Value,
    ) -> Result<RawResponse, TestError> {
        let ct = match kind {
            "json" => "application/json-patch+json",
            "strategic" => "application/strategic-merge-patch+json",
            "apply" => "application/apply-patch+yaml",
            _ => "application/merge-patch+json",
        };
        self.request("PATCH", path, Some(ct), Some(body)).await
    }

    /// Server-side apply as kubectl sends it.
    pub async fn apply(
        &self,
        path: &str,
        manager: &str,
        force: bool,
        body: &Value,
    ) -> Result<RawResponse, TestError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!("{path}{sep}fieldManager={manager}&force={force}");
        self.patch(&full, "apply", body).await
    }

    pub async fn delete(&self, path: &str, body: Option<&Value>) -> Result<RawResponse, TestError> {
        self.request("DELETE", path, body.map(|_| "application/json"), body)
            .await
    }

    /// Opens a watch (`path` must carry `watch=true`).
    pub async fn watch(&self, path: &str) -> Result<WatchStream, TestError> {
        self.send_watch(self.build("GET", path, None, Vec::new())?)
            .await
    }

    /// Opens a watch with an explicit Accept header (e.g. the Table media type `kubectl get -w` sends).
    pub async fn watch_with_accept(
        &self,
        path: &str,
        accept: &str,
    ) -> Result<WatchStream, TestError> {
        self.send_watch(self.get_accepting(path, accept)?).await
    }

    /// A GET with an explicit Accept header.
    fn get_accepting(&self, path: &str, accept: &str) -> Result<http::Request<Body>, TestError> {
        let mut req = self.build("GET", path, None, Vec::new())?;
        req.headers_mut()
            .insert(http::header::ACCEPT, http::HeaderValue::from_str(accept)?);
        Ok(req)
    }

    async fn send_watch(&self, req: http::Request<Body>) -> Result<WatchStream, TestError> {
        let resp = self.client.send(req).await?;
        if !resp.status().is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            return Err(format!("watch failed: {}", String::from_utf8_lossy(&bytes)).into());
        }
        Ok(WatchStream {
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// Events of one watch, one JSON object per line.
pub struct WatchStream {
    body: Body,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The next event, `Ok(None)` when the server ended the stream; an error after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Value>, TestError> {
        tokio::time::timeout(timeout, self.next_inner())
            .await
            .map_err(|_| -> TestError { "timed out waiting for a watch event".into() })?
    }

    async fn next_inner(&mut self) -> Result<Option<Value>, TestError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(serde_json::from_slice(&line)?));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Skips events until one satisfies `pred`; errors on timeout or end of stream.
    pub async fn until(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, TestError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(ev) if pred(&ev) => return Ok(ev),
                Some(_) => continue,
                None => return Err("watch ended before the expected event".into()),
            }
        }
    }
}

/// Stack of every runtime thread [`block_on`] makes. The FeatureStore type is large (its status repeats
/// the whole spec), and unoptimised builds deserialise and validate it in deep stack frames; 2 MiB,
/// tokio's default, is not enough there.
pub const THREAD_STACK: usize = 16 << 20;

/// Runs a test body on a two-worker runtime with [`THREAD_STACK`] stacks. The body runs on a worker (not
/// the test's own 2 MiB thread), so it gets the large stack too; its panic fails the test with its message.
pub fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(THREAD_STACK)
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("no test runtime: {error}"));
    if let Err(error) = runtime.block_on(runtime.spawn(body)) {
        std::panic::resume_unwind(error.into_panic());
    }
}
