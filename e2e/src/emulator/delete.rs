//! Deletion: preconditions, propagation policy (turned into the `orphan`/`foregroundDeletion`
//! finalizers the garbage collector acts on), graceful marking while finalizers remain.

use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::meta;
use super::registry::ResourceType;
use super::server::ApiServer;
use super::store::{ObjKey, Txn};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// The parts of a `DeleteOptions` body (or query) the emulator honours.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` JSON body; `orphanDependents` is the deprecated spelling of Orphan.
    pub fn from_body(body: &Value) -> ApiResult<Self> {
        let mut o = DeleteOptions::default();
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = parse_propagation(p)?;
        } else if let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool) {
            o.propagation = if orphan {
                Propagation::Orphan
            } else {
                Propagation::Background
            };
        }
        o.precondition_uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.precondition_rv = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        o.dry_run = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        Ok(o)
    }
}

pub fn parse_propagation(p: &str) -> ApiResult<Propagation> {
    match p {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

impl ApiServer {
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let mut txn = self.store.lock();
        let key = Self::key(rt, namespace, name);
        let obj = txn
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        check_preconditions(rt, name, &obj, opts)?;
        if opts.dry_run {
            return Ok(Self::present(rt, &obj));
        }
        let out = self.delete_in(&mut txn, rt, &key, opts.propagation);
        Ok(Self::present(rt, &out))
    }

    /// Deletes (or marks for deletion) one stored object. Used by requests and by the in-process
    /// controllers (garbage collector, namespace and CRD cleanup).
    pub(crate) fn delete_in(
        &self,
        txn: &mut Txn<'_>,
        rt: &ResourceType,
        key: &ObjKey,
        policy: Propagation,
    ) -> Value {
        let Some(mut obj) = txn.get(key).cloned() else {
            return Value::Null;
        };
        if meta::is_terminating(&obj) {
            return obj;
        }
        let mut finalizers = meta::finalizers(&obj);
        let extra = match policy {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
        };
        if let Some(f) = extra
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_string());
        }
        if rt.kind == "CustomResourceDefinition" && !rt.is_custom() {
            finalizers.push("customresourcecleanup.apiextensions.k8s.io".into());
        }
        let is_namespace = rt.kind == "Namespace" && rt.group.is_empty();
        if finalizers.is_empty() && !is_namespace {
            let removed = txn.remove(key).unwrap_or(obj);
            self.after_commit(rt, &removed, true);
            return removed;
        }
        meta::set_finalizers(&mut obj, &finalizers);
        let m = meta::meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(meta::now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if let Some(g) = m.get("generation").and_then(Value::as_i64)
            && g > 0
        {
            m.insert("generation".into(), json!(g + 1));
        }
        if is_namespace {
            meta::set_path(&mut obj, ".status.phase", json!("Terminating"));
        }
        if rt.kind == "CustomResourceDefinition" && !rt.is_custom() {
            super::crd::set_status(&mut obj);
        }
        txn.put(key.clone(), obj)
    }
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    obj: &Value,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    let uid = meta::uid(obj);
    if let Some(asked) = opts.precondition_uid.as_deref().filter(|u| *u != uid) {
        return Err(ApiError::precondition_failed(
            rt,
            name,
            &format!(
                "the UID in the precondition ({asked}) does not match the UID in record ({uid}). \
                 The object might have been deleted and then recreated"
            ),
        ));
    }
    let rv = meta::meta_str(obj, "resourceVersion").unwrap_or("");
    if let Some(asked) = opts.precondition_rv.as_deref().filter(|r| *r != rv) {
        return Err(ApiError::precondition_failed(
            rt,
            name,
            &format!(
                "the ResourceVersion in the precondition ({asked}) does not match the \
                 ResourceVersion in record ({rv}). The object might have been modified"
            ),
        ));
    }
    Ok(())
}
