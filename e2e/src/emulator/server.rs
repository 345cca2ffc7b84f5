//! The emulated API server's state (types, objects, counters, hooks) and its read operations.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::counters::Counters;
use super::encoding;
use super::errors::{ApiError, ApiResult};
use super::events;
use super::meta;
use super::registry::{Registry, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{HistoryLimits, ObjKey, Store};

/// A request as the hooks see it, after routing.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`), or empty for non-resource paths (discovery, /version, /openapi).
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub field_manager: String,
    /// Who sent the request. The emulator authenticates nobody: a bearer token is taken as the user's
    /// name (so tests can tell clients apart, as an audit log would), and a request without one is
    /// `system:anonymous`.
    pub user: String,
}

/// A place to observe or short-circuit requests (fault injection, latency, auditing). Returning an
/// error answers the request with it instead of serving it.
pub trait RequestHook: Send + Sync {
    fn before(&self, req: &RequestInfo) -> Option<ApiError>;

    /// Extra time to wait before serving the request (latency injection).
    fn delay(&self, _req: &RequestInfo) -> Option<Duration> {
        None
    }
}

/// How open watch streams are ended by [`ApiServer::interrupt_watches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchInterrupt {
    /// The stream just ends, as when a connection or the API server goes away.
    Drop,
    /// An `ERROR` event with 410 Expired, then the end of the stream (history compacted).
    Expire,
}

/// Everything one emulated cluster holds.
pub struct ApiServer {
    pub registry: Registry,
    pub store: Store,
    pub counters: Counters,
    /// ServiceAccount tokens issued by TokenRequests ([`super::reviews`]).
    pub tokens: super::reviews::Tokens,
    hooks: RwLock<Vec<Arc<dyn RequestHook>>>,
    watch_interrupts: tokio::sync::broadcast::Sender<WatchInterrupt>,
}

/// A page of a list.
pub struct ListQuery<'a> {
    pub labels: Option<&'a str>,
    pub fields: Option<&'a str>,
    pub limit: Option<usize>,
    pub continue_token: Option<&'a str>,
}

impl ApiServer {
    pub fn new(history: HistoryLimits) -> Self {
        ApiServer {
            registry: Registry::default(),
            store: Store::new(history),
            counters: Counters::default(),
            tokens: super::reviews::Tokens::default(),
            hooks: RwLock::new(Vec::new()),
            watch_interrupts: tokio::sync::broadcast::channel(16).0,
        }
    }

    /// Ends every open watch stream (fault injection; a restart of the API server).
    pub fn interrupt_watches(&self, how: WatchInterrupt) {
        // No receivers is fine: nobody is watching.
        let _ = self.watch_interrupts.send(how);
    }

    /// Interruptions sent from now on; every watch stream listens to them.
    pub fn watch_interrupts(&self) -> tokio::sync::broadcast::Receiver<WatchInterrupt> {
        self.watch_interrupts.subscribe()
    }

    /// The longest delay any hook asks for this request.
    pub fn hook_delay(&self, req: &RequestInfo) -> Option<Duration> {
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        hooks.iter().filter_map(|h| h.delay(req)).max()
    }

    pub fn add_hook(&self, hook: Arc<dyn RequestHook>) {
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    pub fn run_hooks(&self, req: &RequestInfo) -> Option<ApiError> {
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        hooks.iter().find_map(|h| h.before(req))
    }

    pub fn key(rt: &ResourceType, namespace: &str, name: &str) -> ObjKey {
        let ns = if rt.namespaced { namespace } else { "" };
        let (group, plural) = rt.storage_key();
        (group, plural, ns.to_string(), name.to_string())
    }

    /// The stored object as served at `rt`'s version, in kube-apiserver's key order
    /// ([`encoding`]). Custom resources get their schema defaults on read too, as from
    /// kube-apiserver (a default added to the CRD later shows on existing objects).
    pub fn present(rt: &ResourceType, obj: &Value) -> Value {
        let mut out = events::view(rt, obj).into_owned();
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), json!(rt.api_version()));
            m.insert("kind".into(), json!(rt.kind));
        }
        if let Some(props) = rt.custom.as_ref().and_then(|c| c.props.as_deref()) {
            fieldwise_api::schema::apply_defaults(props, &mut out);
        }
        if rt.is_custom() {
            encoding::order_custom(&mut out);
        } else {
            encoding::order_builtin(&mut out);
        }
        out
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Value> {
        let txn = self.store.lock();
        txn.get(&Self::key(rt, namespace, name))
            .map(|o| Self::present(rt, o))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        q: &ListQuery<'_>,
    ) -> ApiResult<Value> {
        let labels = LabelSelector::parse(q.labels.unwrap_or(""))?;
        let fields = FieldSelector::parse(q.fields.unwrap_or(""))?;
        let after = q.continue_token.map(decode_continue).transpose()?;
        let txn = self.store.lock();
        let rv = txn.current_rv();
        let ns = if rt.namespaced { namespace } else { None };
        let (group, plural) = rt.storage_key();
        let mut stored = txn
            .list_after(&group, &plural, ns, after.as_ref())
            .peekable();
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<Value> = stored
            .by_ref()
            .filter(|o| {
                let view = events::view(rt, o);
                labels.matches(&view) && fields.matches(&view)
            })
            .take(limit)
            .map(|o| Self::present(rt, o))
            .collect();
        // As kube-apiserver's etcd store: a full page continues while stored objects remain after
        // it (matching or not), and counts them only without selectors (it cannot count matches
        // without reading them; reading them here made each page cost the rest of the list).
        let mut list_meta = Map::new();
        list_meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if page.len() == limit
            && stored.peek().is_some()
            && let Some(last) = page.last()
        {
            list_meta.insert("continue".into(), json!(encode_continue(&position(last))));
            if labels.is_empty() && fields.is_empty() {
                list_meta.insert("remainingItemCount".into(), json!(stored.count()));
            }
        }
        // Built by moving the items in: `json!` would serialise a copy of every one.
        let mut list = Map::new();
        list.insert("kind".into(), json!(format!("{}List", rt.kind)));
        list.insert("apiVersion".into(), json!(rt.api_version()));
        list.insert("metadata".into(), Value::Object(list_meta));
        list.insert("items".into(), Value::Array(page));
        Ok(Value::Object(list))
    }

    /// The Scale a GET of `/scale` answers: a custom resource without its spec replicas field has
    /// none (kube-apiserver's 500; writes through `/scale` read that field as 0 instead).
    pub fn read_scale(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
        if let Some(paths) = rt.scale.as_ref().filter(|_| rt.is_custom())
            && meta::get_path(obj, &paths.spec_replicas).is_none()
        {
            return Err(ApiError::internal_error(format!(
                "the spec replicas field {:?} does not exist",
                paths.spec_replicas
            )));
        }
        Self::scale_of(rt, obj)
    }

    /// The autoscaling/v1 Scale view of an object with a scale subresource.
    pub fn scale_of(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
        let paths = rt.scale.as_ref().ok_or_else(ApiError::path_not_found)?;
        let spec = meta::get_path(obj, &paths.spec_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = meta::get_path(obj, &paths.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let selector = if rt.is_custom() {
            paths
                .label_selector
                .as_deref()
                .and_then(|p| meta::get_path(obj, p))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        } else {
            meta::get_path(obj, ".spec.selector")
                .map(LabelSelector::format_object)
                .unwrap_or_default()
        };
        let m = meta::meta(obj).cloned().unwrap_or_default();
        let mut smeta = Map::new();
        for k in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            if let Some(v) = m.get(k) {
                smeta.insert(k.into(), v.clone());
            }
        }
        let mut spec_obj = Map::new();
        if spec != 0 {
            spec_obj.insert("replicas".into(), json!(spec));
        }
        let mut status_obj = Map::new();
        status_obj.insert("replicas".into(), json!(status));
        if !selector.is_empty() {
            status_obj.insert("selector".into(), json!(selector));
        }
        Ok(
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": smeta, "spec": spec_obj, "status": status_obj}),
        )
    }
}

/// Sort position of an object in a list: namespace, then name.
fn position(o: &Value) -> (String, String) {
    (
        meta::meta_str(o, "namespace").unwrap_or("").to_string(),
        meta::name(o).to_string(),
    )
}

fn encode_continue(pos: &(String, String)) -> String {
    let raw = json!([pos.0, pos.1]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice::<(String, String)>(&raw).map_err(|_| bad())
}
