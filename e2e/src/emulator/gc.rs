//! In-process controllers that react to stored changes: the garbage collector (owner references,
//! background/foreground/orphan propagation), namespace cleanup and CRD instance cleanup. They run
//! asynchronously like kube-controller-manager, subscribed to the store's change broadcast.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::delete::{FOREGROUND, ORPHAN, Propagation};
use super::meta;
use super::registry::ResourceType;
use super::server::ApiServer;
use super::store::{ObjKey, Txn};

const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Runs until `shutdown` flips to true.
pub async fn run(server: Arc<ApiServer>, mut shutdown: watch::Receiver<bool>) {
    let mut rx = server.store.subscribe();
    server.collect_garbage();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    while rx.try_recv().is_ok() {}
                    server.collect_garbage();
                }
                Err(RecvError::Closed) => break,
            },
            _ = shutdown.changed() => break,
        }
    }
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or_default()
}

impl ApiServer {
    /// One garbage-collection round, repeated until nothing changes.
    pub fn collect_garbage(&self) {
        let mut txn = self.store.lock();
        for _ in 0..64 {
            if !self.gc_pass(&mut txn) {
                break;
            }
        }
    }

    fn type_of(&self, key: &ObjKey) -> Option<Arc<ResourceType>> {
        self.registry.find_any_version(&key.0, &key.1)
    }

    /// Stores an edited object; removes it when it is terminating with no finalizers left.
    fn store_edit(&self, txn: &mut Txn<'_>, key: &ObjKey, obj: Value) {
        let done = meta::is_terminating(&obj)
            && meta::finalizers(&obj).is_empty()
            && key.1 != "namespaces";
        txn.put(key.clone(), obj);
        if done {
            let removed = txn.remove(key);
            if let (Some(rt), Some(removed)) = (self.type_of(key), removed) {
                self.after_commit(&rt, &removed, true);
            }
        }
    }

    fn delete_key(&self, txn: &mut Txn<'_>, key: &ObjKey, policy: Propagation) {
        match self.type_of(key) {
            Some(rt) => {
                self.delete_in(txn, &rt, key, policy);
            }
            None => {
                txn.remove(key);
            }
        }
    }

    fn drop_finalizer(&self, txn: &mut Txn<'_>, key: &ObjKey, obj: &Value, name: &str) {
        let mut obj = obj.clone();
        let rest: Vec<String> = meta::finalizers(&obj)
            .into_iter()
            .filter(|f| f != name)
            .collect();
        meta::set_finalizers(&mut obj, &rest);
        self.store_edit(txn, key, obj);
    }

    /// Returns whether anything changed.
    fn gc_pass(&self, txn: &mut Txn<'_>) -> bool {
        let all = txn.all();
        let by_uid: HashMap<String, &ObjKey> = all
            .iter()
            .map(|(k, v)| (meta::uid(v).to_string(), k))
            .collect();
        let dependents_of = |uid: &str| -> Vec<(ObjKey, Value)> {
            all.iter()
                .filter(|(_, v)| owner_refs(v).iter().any(|r| ref_uid(r) == uid))
                .cloned()
                .collect()
        };
        for (key, obj) in &all {
            if meta::is_terminating(obj) {
                if self.finish_terminating(txn, key, obj, &dependents_of, &all) {
                    return true;
                }
                continue;
            }
            let refs = owner_refs(obj);
            if refs.is_empty() {
                continue;
            }
            let present = |r: &Value| -> bool {
                by_uid
                    .get(ref_uid(r))
                    .is_some_and(|owner_key| owner_key.2.is_empty() || owner_key.2 == key.2)
            };
            let solid: Vec<Value> = refs.iter().filter(|r| present(r)).cloned().collect();
            if solid.is_empty() {
                self.delete_key(txn, key, Propagation::Background);
                return true;
            }
            if solid.len() < refs.len() {
                let mut edited = obj.clone();
                meta::meta_mut(&mut edited).insert("ownerReferences".into(), Value::Array(solid));
                self.store_edit(txn, key, edited);
                return true;
            }
        }
        false
    }

    fn finish_terminating(
        &self,
        txn: &mut Txn<'_>,
        key: &ObjKey,
        obj: &Value,
        dependents_of: &dyn Fn(&str) -> Vec<(ObjKey, Value)>,
        all: &[(ObjKey, Value)],
    ) -> bool {
        let fins = meta::finalizers(obj);
        let uid = meta::uid(obj);
        if fins.iter().any(|f| f == ORPHAN) {
            for (dk, dv) in dependents_of(uid) {
                let mut edited = dv.clone();
                let rest: Vec<Value> = owner_refs(&dv)
                    .into_iter()
                    .filter(|r| ref_uid(r) != uid)
                    .collect();
                let m = meta::meta_mut(&mut edited);
                if rest.is_empty() {
                    m.remove("ownerReferences");
                } else {
                    m.insert("ownerReferences".into(), Value::Array(rest));
                }
                self.store_edit(txn, &dk, edited);
            }
            self.drop_finalizer(txn, key, obj, ORPHAN);
            return true;
        }
        if fins.iter().any(|f| f == FOREGROUND) {
            let deps = dependents_of(uid);
            let mut changed = false;
            for (dk, dv) in &deps {
                if !meta::is_terminating(dv) {
                    let blocking = owner_refs(dv).iter().any(|r| {
                        ref_uid(r) == uid && r.get("blockOwnerDeletion") == Some(&json!(true))
                    });
                    let policy = if blocking {
                        Propagation::Foreground
                    } else {
                        Propagation::Background
                    };
                    self.delete_key(txn, dk, policy);
                    changed = true;
                }
            }
            if changed {
                return true;
            }
            let blocked = deps.iter().any(|(_, dv)| {
                owner_refs(dv)
                    .iter()
                    .any(|r| ref_uid(r) == uid && r.get("blockOwnerDeletion") == Some(&json!(true)))
            });
            if !blocked {
                self.drop_finalizer(txn, key, obj, FOREGROUND);
                return true;
            }
            return false;
        }
        if key.0.is_empty() && key.1 == "namespaces" {
            return self.finish_namespace(txn, key, all);
        }
        if key.1 == "customresourcedefinitions" && fins.iter().any(|f| f == CRD_CLEANUP) {
            let group = obj
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = obj
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let instances: Vec<&ObjKey> = all
                .iter()
                .map(|(k, _)| k)
                .filter(|k| k.0 == group && k.1 == plural)
                .collect();
            return self.drain(txn, &instances, |s, t| {
                s.drop_finalizer(t, key, obj, CRD_CLEANUP)
            });
        }
        if fins.is_empty() {
            self.store_edit(txn, key, obj.clone());
            return true;
        }
        false
    }

    fn finish_namespace(&self, txn: &mut Txn<'_>, key: &ObjKey, all: &[(ObjKey, Value)]) -> bool {
        let ns = &key.3;
        let contents: Vec<&ObjKey> = all
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !k.2.is_empty() && &k.2 == ns)
            .collect();
        self.drain(txn, &contents, |s, t| {
            if let Some(removed) = t.remove(key)
                && let Some(rt) = s.type_of(key)
            {
                s.after_commit(&rt, &removed, true);
            }
        })
    }

    /// Deletes every key; when none remain, runs `done`. Returns whether anything changed.
    fn drain(
        &self,
        txn: &mut Txn<'_>,
        keys: &[&ObjKey],
        done: impl FnOnce(&Self, &mut Txn<'_>),
    ) -> bool {
        if keys.is_empty() {
            done(self, txn);
            return true;
        }
        let mut changed = false;
        for k in keys {
            if txn.get(k).is_some_and(|v| !meta::is_terminating(v)) {
                self.delete_key(txn, k, Propagation::Background);
                changed = true;
            }
        }
        changed
    }
}
