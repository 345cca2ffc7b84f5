//! What every simulator shares: the event loop, reads from the store, and writes through the
//! server's write pipeline with kube-controller-manager's (or KEDA's) field manager.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::Shared;
use crate::emulator::custom::FieldValidation;
use crate::emulator::ownership::Sub;
use crate::emulator::registry::ResourceType;
use crate::emulator::store::ObjKey;
use crate::emulator::write::WriteRequest;
use crate::emulator::{ApiError, ApiServer, StoreEvent, meta};

/// A simulated controller: reacts to stored changes, and re-examines everything on `resync`
/// (start, missed events, runtime setting changes).
pub(crate) trait Controller: Send {
    fn on_event(&mut self, shared: &Arc<Shared>, ev: &StoreEvent);
    fn resync(&mut self, shared: &Arc<Shared>);
}

/// Runs `ctl` until `shutdown` flips to true.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    mut ctl: Box<dyn Controller>,
) {
    let mut rx = shared.server.store.subscribe();
    let mut kick = shared.kick.subscribe();
    ctl.resync(&shared);
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => ctl.on_event(&shared, &ev),
                Err(RecvError::Lagged(_)) => ctl.resync(&shared),
                Err(RecvError::Closed) => break,
            },
            k = kick.changed() => {
                if k.is_err() {
                    break;
                }
                ctl.resync(&shared);
            }
            _ = shutdown.changed() => break,
        }
    }
}

pub(crate) fn key(group: &str, plural: &str, namespace: &str, name: &str) -> ObjKey {
    (
        group.to_string(),
        plural.to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

/// The stored object, if any.
pub(crate) fn get(server: &ApiServer, key: &ObjKey) -> Option<Value> {
    server.store.lock().get(key).cloned()
}

/// Keys of every stored object of one group/resource.
pub(crate) fn keys_of(server: &ApiServer, group: &str, plural: &str) -> Vec<ObjKey> {
    server
        .store
        .lock()
        .list(group, plural, None)
        .into_iter()
        .map(|o| {
            key(
                group,
                plural,
                meta::meta_str(o, "namespace").unwrap_or(""),
                meta::name(o),
            )
        })
        .collect()
}

pub(crate) fn type_of(server: &ApiServer, key: &ObjKey) -> Option<Arc<ResourceType>> {
    server.registry.find_any_version(&key.0, &key.1)
}

/// An annotation of the object or of its namespace says `"true"`.
pub(crate) fn annotated(server: &ApiServer, obj: &Value, namespace: &str, name: &str) -> bool {
    let on = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            == Some("true")
    };
    if on(obj) {
        return true;
    }
    get(server, &key("", "namespaces", "", namespace)).is_some_and(|ns| on(&ns))
}

/// A PUT of `obj` (at its current resourceVersion) to the main resource, `/status` or `/scale`.
pub(crate) fn update(
    server: &ApiServer,
    key: &ObjKey,
    sub: Sub,
    manager: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let rt = type_of(server, key).ok_or_else(ApiError::path_not_found)?;
    let req = WriteRequest {
        rt: &rt,
        namespace: &key.2,
        name: &key.3,
        sub,
        manager,
        validation: FieldValidation::Warn,
        force: false,
        dry_run: false,
    };
    server.update(&req, body).map(|o| o.object)
}

/// A POST of `obj` into `key`'s resource and namespace.
pub(crate) fn create(
    server: &ApiServer,
    key: &ObjKey,
    manager: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let rt = type_of(server, key).ok_or_else(ApiError::path_not_found)?;
    let req = WriteRequest {
        rt: &rt,
        namespace: &key.2,
        name: "",
        sub: Sub::Main,
        manager,
        validation: FieldValidation::Warn,
        force: false,
        dry_run: false,
    };
    server.create(&req, body).map(|o| o.object)
}

/// Replaces the object's status with `desired(obj)` through `/status`, unless it already is that
/// (times of unchanged conditions are kept by the caller). Retries on a concurrent change.
pub(crate) fn write_status(
    server: &ApiServer,
    key: &ObjKey,
    manager: &str,
    desired: impl Fn(&Value) -> Option<Value>,
) {
    for _ in 0..5 {
        let Some(obj) = get(server, key) else { return };
        if meta::is_terminating(&obj) {
            return;
        }
        let Some(status) = desired(&obj) else { return };
        if obj.get("status") == Some(&status) {
            return;
        }
        let mut body = obj;
        body["status"] = status;
        match update(server, key, Sub::Status, manager, body) {
            Ok(_) => return,
            Err(e) if e.code == 409 => continue,
            Err(e) => {
                tracing::warn!(?key, error = %e.message, "simulator could not write status");
                return;
            }
        }
    }
}

/// A condition, keeping the times of `old`'s condition of the same type when nothing about it
/// changed (status, reason, message), as controllers do.
pub(crate) fn condition(
    old_status: Option<&Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    with_update_time: bool,
) -> Value {
    let status_str = if status { "True" } else { "False" };
    let old = old_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        });
    let now = meta::now();
    let same_status =
        old.is_some_and(|c| c.get("status").and_then(Value::as_str) == Some(status_str));
    let unchanged = same_status
        && old.is_some_and(|c| {
            c.get("reason").and_then(Value::as_str) == Some(reason)
                && c.get("message").and_then(Value::as_str) == Some(message)
        });
    let time_of = |field: &str, keep: bool| {
        old.filter(|_| keep)
            .and_then(|c| c.get(field))
            .cloned()
            .unwrap_or_else(|| json!(now))
    };
    let mut c = json!({
        "type": kind,
        "status": status_str,
        "lastTransitionTime": time_of("lastTransitionTime", same_status),
        "reason": reason,
        "message": message,
    });
    if with_update_time {
        c["lastUpdateTime"] = time_of("lastUpdateTime", unchanged);
    }
    c
}

/// `spec.replicas`, defaulting to 1 as the API server does.
pub(crate) fn spec_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(crate) fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// A short stable hash of a value, spelled like the pod-template-hash of a ReplicaSet.
pub(crate) fn template_hash(v: Option<&Value>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let text = v.map(Value::to_string).unwrap_or_default();
    // FNV-1a: stable across runs, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|i| {
            let idx = (h >> (i * 6)) as usize % ALPHABET.len();
            char::from(ALPHABET[idx])
        })
        .collect()
}
