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
use super::store::{EventType, ObjKey, StoreEvent, Txn};

const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Runs until `shutdown` flips to true. Each batch of changes gets the cheapest check that can
/// catch what it may have caused: a full pass after deletions or on terminating objects, else only
/// the owner references of the objects just written.
pub async fn run(server: Arc<ApiServer>, mut shutdown: watch::Receiver<bool>) {
    let mut rx = server.store.subscribe();
    server.collect_garbage();
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(first) => {
                    let mut batch = vec![first];
                    while let Ok(ev) = rx.try_recv() {
                        batch.push(ev);
                    }
                    server.collect_garbage_after(&batch);
                }
                Err(RecvError::Lagged(_)) => {
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
    /// Garbage collection for a batch of committed changes.
    pub fn collect_garbage_after(&self, batch: &[Arc<StoreEvent>]) {
        let needs_full = batch
            .iter()
            .any(|e| e.kind == EventType::Deleted || meta::is_terminating(&e.object));
        if needs_full {
            self.collect_garbage();
            return;
        }
        let dangling = {
            let txn = self.store.lock();
            batch.iter().any(|e| {
                txn.get(&e.key).is_some_and(|obj| {
                    owner_refs(obj)
                        .iter()
                        .any(|r| match txn.find_uid(ref_uid(r)) {
                            Some((owner, _)) => !(owner.2.is_empty() || owner.2 == e.key.2),
                            None => true,
                        })
                })
            })
        };
        if dangling {
            self.collect_garbage();
        }
    }

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

    /// Returns whether anything changed. Scans by reference and copies only the objects it acts
    /// on: this runs after every committed change.
    fn gc_pass(&self, txn: &mut Txn<'_>) -> bool {
        let terminating: Vec<(ObjKey, Value)> = txn
            .iter()
            .filter(|(_, v)| meta::is_terminating(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, obj) in &terminating {
            if self.finish_terminating(txn, key, obj) {
                return true;
            }
        }
        match find_dangling(txn) {
            Some((key, solid)) if solid.is_empty() => {
                self.delete_key(txn, &key, Propagation::Background);
                true
            }
            Some((key, solid)) => {
                if let Some(mut edited) = txn.get(&key).cloned() {
                    meta::meta_mut(&mut edited)
                        .insert("ownerReferences".into(), Value::Array(solid));
                    self.store_edit(txn, &key, edited);
                }
                true
            }
            None => false,
        }
    }

    fn dependents_of(txn: &Txn<'_>, uid: &str) -> Vec<(ObjKey, Value)> {
        txn.iter()
            .filter(|(_, v)| owner_refs(v).iter().any(|r| ref_uid(r) == uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn finish_terminating(&self, txn: &mut Txn<'_>, key: &ObjKey, obj: &Value) -> bool {
        let fins = meta::finalizers(obj);
        let uid = meta::uid(obj);
        if fins.iter().any(|f| f == ORPHAN) {
            for (dk, dv) in Self::dependents_of(txn, uid) {
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
            let deps = Self::dependents_of(txn, uid);
            let blocks = |dv: &Value| {
                owner_refs(dv)
                    .iter()
                    .any(|r| ref_uid(r) == uid && r.get("blockOwnerDeletion") == Some(&json!(true)))
            };
            let mut changed = false;
            for (dk, dv) in &deps {
                if !meta::is_terminating(dv) {
                    let policy = if blocks(dv) {
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
            if !deps.iter().any(|(_, dv)| blocks(dv)) {
                self.drop_finalizer(txn, key, obj, FOREGROUND);
                return true;
            }
            return false;
        }
        if key.0.is_empty() && key.1 == "namespaces" {
            return self.finish_namespace(txn, key);
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
            let instances: Vec<ObjKey> = txn
                .iter()
                .map(|(k, _)| k)
                .filter(|k| k.0 == group && k.1 == plural)
                .cloned()
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

    fn finish_namespace(&self, txn: &mut Txn<'_>, key: &ObjKey) -> bool {
        let ns = &key.3;
        let contents: Vec<ObjKey> = txn
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !k.2.is_empty() && &k.2 == ns)
            .cloned()
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
        keys: &[ObjKey],
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

/// The first live object with an owner reference to an absent owner (not stored, or namespaced in
/// another namespace), with its references that still resolve.
fn find_dangling(txn: &Txn<'_>) -> Option<(ObjKey, Vec<Value>)> {
    if !txn
        .iter()
        .any(|(_, v)| !meta::is_terminating(v) && v.pointer("/metadata/ownerReferences").is_some())
    {
        return None;
    }
    let by_uid: HashMap<&str, &str> = txn
        .iter()
        .map(|(k, v)| (meta::uid(v), k.2.as_str()))
        .collect();
    for (key, obj) in txn.iter() {
        if meta::is_terminating(obj) {
            continue;
        }
        let refs = owner_refs(obj);
        if refs.is_empty() {
            continue;
        }
        let present = |r: &Value| {
            by_uid
                .get(ref_uid(r))
                .is_some_and(|ns| ns.is_empty() || *ns == key.2)
        };
        let solid: Vec<Value> = refs.iter().filter(|r| present(r)).cloned().collect();
        if solid.len() < refs.len() {
            return Some((key.clone(), solid));
        }
    }
    None
}
