//! Watches: newline-delimited `{"type":…,"object":…}` events. `resourceVersion` unset or `0` starts
//! with the current objects as ADDED; `N` replays retained events after N, or answers 410 Expired
//! inside the stream when N is older than the retained history. Bookmarks when
//! `allowWatchBookmarks=true`; the stream ends after `timeoutSeconds`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::super::errors::ApiError;
use super::super::events;
use super::super::registry::ResourceType;
use super::super::selectors::{FieldSelector, LabelSelector};
use super::super::server::{ApiServer, WatchInterrupt};
use super::super::store::{EventType, StoreEvent, TooOld, Txn};
use super::{HttpState, ResourcePath, stream_body};

struct Filter {
    rt: Arc<ResourceType>,
    /// `includeObject` when the client asked for Table events.
    table: Option<String>,
    /// Events carry PartialObjectMetadata only.
    partial: bool,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn in_scope(&self, ev: &StoreEvent) -> bool {
        let (group, plural) = self.rt.storage_key();
        ev.key.0 == group
            && ev.key.1 == plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| !self.rt.namespaced || &ev.key.2 == ns)
    }

    fn history_since(&self, txn: &Txn<'_>, rv: u64) -> Result<Vec<Arc<StoreEvent>>, TooOld> {
        let (group, plural) = self.rt.storage_key();
        txn.events_since(&group, &plural, rv)
    }

    /// Selectors see the object as this watch's version serves it.
    fn matches(&self, stored: &Value) -> bool {
        let obj = events::view(&self.rt, stored);
        self.labels.matches(&obj) && self.fields.matches(&obj)
    }

    /// The event a watcher with selectors sees: objects entering the selection are ADDED, leaving it
    /// DELETED.
    fn translate(&self, ev: &StoreEvent) -> Option<(EventType, Value)> {
        if !self.in_scope(ev) {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.previous.as_deref().is_some_and(|p| self.matches(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return None,
        };
        Some((kind, ApiServer::present(&self.rt, &ev.object)))
    }
}

impl Filter {
    /// One event line; objects become one-row Tables when asked (column definitions only once, as
    /// the API server sends them).
    fn event(&self, kind: &str, object: &Value, first: &mut bool) -> Bytes {
        if self.partial {
            return line(kind, &super::partial::object(object));
        }
        let Some(include) = &self.table else {
            return line(kind, object);
        };
        let rv = object
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let mut t = super::table::single(&self.rt, object, rv, include);
        if !*first {
            t["columnDefinitions"] = json!([]);
        }
        *first = false;
        line(kind, &t)
    }
}

/// Written straight from the object: `json!` would first serialise a copy of it into a new `Value`,
/// for every event and every watcher.
fn line(kind: &str, object: &Value) -> Bytes {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"type\":");
    // Writing JSON of a string or a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, kind);
    out.extend_from_slice(b",\"object\":");
    let _ = serde_json::to_writer(&mut out, object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(rt: &ResourceType, rv: u64) -> Bytes {
    let md = json!({"resourceVersion": rv.to_string()});
    line(
        "BOOKMARK",
        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": md}),
    )
}

pub async fn serve(
    state: &HttpState,
    rt: Arc<ResourceType>,
    rp: &ResourcePath,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let labels =
        match LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")) {
            Ok(l) => l,
            Err(e) => return e.into_response(),
        };
    let fields =
        match FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or("")) {
            Ok(f) => f,
            Err(e) => return e.into_response(),
        };
    let rv: Option<u64> = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(s) => match s.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                return ApiError::bad_request(format!("invalid resource version: {s}"))
                    .into_response();
            }
        },
    };
    let table = super::table::wants_table(headers).then(|| {
        q.get("includeObject")
            .cloned()
            .unwrap_or_else(|| "Metadata".into())
    });
    let filter = Filter {
        partial: super::partial::wants_partial(headers),
        rt: rt.clone(),
        table,
        namespace: rp.namespace.clone(),
        labels,
        fields,
    };
    let opts = WatchOpts {
        rv,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
        timeout: q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs),
        bookmark_interval: state.bookmark_interval,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run(state.server.clone(), filter, opts, tx));
    let mut resp = (StatusCode::OK, stream_body(rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A watch answered with one `ERROR` event and the end of the stream.
pub fn error_stream(err: &ApiError) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    // The channel has room for this one line.
    let _ = tx.try_send(line("ERROR", &err.body()));
    let mut resp = (StatusCode::OK, stream_body(rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

struct WatchOpts {
    rv: Option<u64>,
    bookmarks: bool,
    timeout: Option<Duration>,
    bookmark_interval: Duration,
}

async fn run(server: Arc<ApiServer>, filter: Filter, opts: WatchOpts, tx: mpsc::Sender<Bytes>) {
    let mut interrupts = server.watch_interrupts();
    let mut first = true;
    let start = {
        let txn = server.store.lock();
        let rx = txn.subscribe();
        let current = txn.current_rv();
        let initial: Result<Vec<Bytes>, ApiError> = match opts.rv {
            Some(n) if n > 0 => match filter.history_since(&txn, n) {
                // Replayed events are shaped like live ones (Table rows, partial metadata), with
                // the Table's column definitions in the first event only.
                Ok(evs) => Ok(evs
                    .iter()
                    .filter_map(|e| filter.translate(e))
                    .map(|(k, o)| filter.event(k.as_str(), &o, &mut first))
                    .collect()),
                Err(too_old) => Err(ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    too_old.asked, too_old.oldest_minus_one
                ))),
            },
            _ => {
                let ns = if filter.rt.namespaced {
                    filter.namespace.as_deref()
                } else {
                    None
                };
                let (group, plural) = filter.rt.storage_key();
                Ok(txn
                    .list(&group, &plural, ns)
                    .into_iter()
                    .filter(|o| filter.matches(o))
                    .map(|o| filter.event("ADDED", &ApiServer::present(&filter.rt, o), &mut first))
                    .collect())
            }
        };
        initial.map(|i| (i, rx, current))
    };
    let (initial, mut rx, mut last_rv) = match start {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(line("ERROR", &e.body())).await;
            return;
        }
    };
    for b in initial {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(
        opts.timeout
            .unwrap_or(Duration::from_secs(60 * 60 * 24 * 365)),
    );
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(opts.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => {
                    if ev.rv <= last_rv {
                        continue;
                    }
                    last_rv = ev.rv;
                    if let Some((k, o)) = filter.translate(&ev)
                        && tx.send(filter.event(k.as_str(), &o, &mut first)).await.is_err()
                    {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let e = ApiError::expired(format!("too old resource version: {last_rv} ({last_rv})"));
                    let _ = tx.send(line("ERROR", &e.body())).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = &mut deadline => return,
            i = interrupts.recv() => match i {
                Ok(WatchInterrupt::Expire) => {
                    let e = ApiError::expired(format!("too old resource version: {last_rv} ({last_rv})"));
                    let _ = tx.send(line("ERROR", &e.body())).await;
                    return;
                }
                Ok(WatchInterrupt::Drop) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            _ = ticker.tick(), if opts.bookmarks => {
                // Only as far as this watcher has seen: a client resuming from it must miss nothing.
                if tx.send(bookmark(&filter.rt, last_rv)).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}
