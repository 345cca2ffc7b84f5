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
    namespace: Option<NamespaceAlias>,
}

/// On a shared real API server, the namespace that stands for `default` of a fresh emulator: requests
/// and bodies name it instead of `default`, and answers name `default` again, so a test written for a
/// fresh emulator runs unchanged beside the leftovers of others.
#[derive(Clone, Debug)]
struct NamespaceAlias {
    name: String,
}

impl NamespaceAlias {
    /// `/namespaces/default/...` and `"namespace":"default"` (serde_json's compact form) name the alias.
    fn in_request(&self, text: &str) -> String {
        text.replace(
            "/namespaces/default/",
            &format!("/namespaces/{}/", self.name),
        )
        .replace(
            "\"namespace\":\"default\"",
            &format!("\"namespace\":\"{}\"", self.name),
        )
    }

    /// The alias (a name no test uses) reads as `default` again.
    fn in_answer(&self, text: &str) -> String {
        text.replace(&self.name, "default")
    }
}

impl RawClient {
    pub fn new(handle: &EmulatorHandle) -> Result<Self, TestError> {
        Ok(RawClient {
            client: handle.client()?,
            user_agent: None,
            namespace: None,
        })
    }

    /// A client of any API server (a real one, say) on which the namespace `namespace` stands for
    /// `default`: it must exist, and its name must occur nowhere else in the test's requests.
    pub fn with_default_namespace(client: kube::Client, namespace: &str) -> Self {
        RawClient {
            client,
            user_agent: None,
            namespace: Some(NamespaceAlias {
                name: namespace.to_owned(),
            }),
        }
    }

    fn to_server(&self, text: &str) -> String {
        match &self.namespace {
            Some(alias) => alias.in_request(text),
            None => text.to_owned(),
        }
    }

    /// Reads a finished response, naming `default` where the server named the alias.
    async fn finish(&self, resp: http::Response<Body>) -> Result<RawResponse, TestError> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let mut text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(alias) = &self.namespace {
            text = alias.in_answer(&text);
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(RawResponse {
            status,
            headers,
            body,
            text,
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
        let mut b = http::Request::builder()
            .method(method)
            .uri(self.to_server(path));
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(ua) = &self.user_agent {
            b = b.header(http::header::USER_AGENT, ua.as_str());
        }
        let body = match (&self.namespace, String::from_utf8(body)) {
            (Some(_), Ok(text)) => self.to_server(&text).into_bytes(),
            (_, Ok(text)) => text.into_bytes(),
            (_, Err(binary)) => binary.into_bytes(),
        };
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
        self.finish(resp).await
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
        self.finish(resp).await
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
            namespace: self.namespace.clone(),
        })
    }
}

/// Events of one watch, one JSON object per line.
pub struct WatchStream {
    body: Body,
    buf: Vec<u8>,
    namespace: Option<NamespaceAlias>,
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
                return Ok(Some(match &self.namespace {
                    Some(alias) => {
                        serde_json::from_str(&alias.in_answer(&String::from_utf8_lossy(&line)))?
                    }
                    None => serde_json::from_slice(&line)?,
                }));
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
