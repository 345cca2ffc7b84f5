//! Writes: create (POST), update (PUT), patch (merge, JSON, strategic, apply), on the main resource
//! and on `/status` and `/scale`. Every write runs the same pipeline: decode → (merge) → defaults →
//! strategy (metadata, status/spec reset) → managedFields → validation → generation → no-op check →
//! storage.

use serde_json::{Value, json};

use super::custom::{self, FieldValidation};
use super::defaults;
use super::errors::{ApiError, ApiResult, Cause};
use super::events;
use super::meta;
use super::ownership::{self, Sub, Writer};
use super::patch;
use super::registry::ResourceType;
use super::server::ApiServer;
use super::store::Txn;
use crate::ssa;

/// The kind of a PATCH body, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" => PatchType::Apply,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            PatchType::Json => "json",
            PatchType::Merge => "merge",
            PatchType::Strategic => "strategic",
            PatchType::Apply => "apply",
        }
    }
}

/// Where a write goes and who sends it.
#[derive(Debug, Clone)]
pub struct WriteRequest<'a> {
    pub rt: &'a ResourceType,
    pub namespace: &'a str,
    /// Empty for a create (taken from the body).
    pub name: &'a str,
    pub sub: Sub,
    pub manager: &'a str,
    pub validation: FieldValidation,
    pub force: bool,
    pub dry_run: bool,
}

/// The result of a successful write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The object (or Scale) to return.
    pub object: Value,
    /// 201 rather than 200.
    pub created: bool,
    /// `Warning` headers to send.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Update,
    Apply,
}

fn tracks_generation(rt: &ResourceType) -> bool {
    rt.is_custom()
        || matches!(
            rt.group.as_str(),
            "apps"
                | "batch"
                | "policy"
                | "networking.k8s.io"
                | "apiextensions.k8s.io"
                | "autoscaling"
        )
}

/// Everything outside metadata and status (plus annotations for a Deployment, as its strategy does).
fn generation_relevant(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        let annotations = m
            .get("metadata")
            .and_then(|md| md.get("annotations"))
            .cloned();
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
        if !rt.is_custom() && rt.kind == "Deployment" {
            m.insert("__annotations".into(), annotations.unwrap_or(Value::Null));
        }
    }
    v
}

/// Status a built-in type starts with on create.
fn initial_status(rt: &ResourceType) -> Option<Value> {
    if rt.is_custom() || !rt.status {
        return None;
    }
    Some(match rt.kind.as_str() {
        "Pod" => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "PersistentVolumeClaim" => json!({"phase": "Pending"}),
        "Service" => json!({"loadBalancer": {}}),
        "Namespace" => json!({"phase": "Active"}),
        _ => json!({}),
    })
}

fn check_type(rt: &ResourceType, sub: Sub, body: &Value) -> ApiResult<()> {
    let (want_av, want_kind) = if sub == Sub::Scale {
        ("autoscaling/v1".to_string(), "Scale")
    } else {
        (rt.api_version(), rt.kind.as_str())
    };
    let av = body.get("apiVersion").and_then(Value::as_str);
    let kind = body.get("kind").and_then(Value::as_str);
    let ok = av.is_none_or(|a| a == want_av) && kind.is_none_or(|k| k == want_kind);
    if ok {
        return Ok(());
    }
    let (g, v) = super::registry::split_api_version(av.unwrap_or(""));
    Err(ApiError::bad_request(format!(
        "invalid object type: {g}/{v}, Kind={}",
        kind.unwrap_or("")
    )))
}

/// The 400 of a create or update body with undeclared fields under `fieldValidation=Strict`, worded
/// as kube-apiserver's decoder (a strict patch is a 422 there, which the emulator does not copy).
fn strict_error(rt: &ResourceType, paths: &[String]) -> ApiError {
    let fields: Vec<String> = paths
        .iter()
        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
        .collect();
    ApiError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", "),
        kind = rt.kind,
        version = rt.version,
    ))
}

fn managed_fields(obj: &Value) -> Option<&Vec<Value>> {
    meta::meta(obj)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
}

impl ApiServer {
    pub fn create(&self, req: &WriteRequest<'_>, mut body: Value) -> ApiResult<WriteOutcome> {
        check_type(req.rt, Sub::Main, &body)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        let m = meta::meta_mut(&mut body);
        let name = match m.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    format!("{prefix}{}", &meta::new_uid()[27..32])
                }
                _ => {
                    return Err(ApiError::invalid(
                        &req.rt.kind,
                        &req.rt.group,
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            },
        };
        m.insert("name".into(), json!(name));
        self.set_namespace(req, &mut body)?;
        let mut txn = self.store.lock();
        self.check_namespace_open(&txn, req, &name)?;
        if txn.get(&Self::key(req.rt, req.namespace, &name)).is_some() {
            return Err(ApiError::already_exists(req.rt, &name));
        }
        let req = WriteRequest {
            name: &name,
            ..req.clone()
        };
        self.finish(&mut txn, &req, None, body, Op::Update)
    }

    /// PUT on the main resource, `/status` or `/scale`.
    pub fn update(&self, req: &WriteRequest<'_>, body: Value) -> ApiResult<WriteOutcome> {
        check_type(req.rt, req.sub, &body)?;
        check_name(req, &body)?;
        let mut body = body;
        if req.sub != Sub::Scale {
            meta::meta_mut(&mut body).insert("name".into(), json!(req.name));
        }
        let mut txn = self.store.lock();
        let old = stored_view(&txn, req).ok_or_else(|| ApiError::not_found(req.rt, req.name))?;
        check_resource_version(req, &old, &body)?;
        check_conditional_update(req, &body)?;
        let new = match req.sub {
            Sub::Scale => self.scale_to_parent(req, &old, &body)?,
            _ => {
                let mut new = body;
                self.set_namespace(req, &mut new)?;
                new
            }
        };
        self.finish(&mut txn, req, Some(&old), new, Op::Update)
    }

    pub fn patch(
        &self,
        req: &WriteRequest<'_>,
        ptype: PatchType,
        body: Value,
    ) -> ApiResult<WriteOutcome> {
        if ptype == PatchType::Apply {
            return self.apply(req, body);
        }
        if req.force {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::new(
                    "FieldValueForbidden",
                    "force",
                    "Forbidden: may not be specified for non-apply patch",
                )],
            ));
        }
        if ptype == PatchType::Strategic && req.rt.is_custom() {
            return Err(ApiError::unsupported_media(&[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]));
        }
        let mut txn = self.store.lock();
        let old = stored_view(&txn, req).ok_or_else(|| ApiError::not_found(req.rt, req.name))?;
        let mut target = if req.sub == Sub::Scale {
            Self::scale_of(req.rt, &old)?
        } else {
            Self::present(req.rt, &old)
        };
        match ptype {
            PatchType::Merge => patch::merge(&mut target, &body),
            PatchType::Json => patch::json(&mut target, &body)?,
            PatchType::Strategic => patch::strategic(&mut target, &body)?,
            PatchType::Apply => unreachable!("handled above"),
        }
        check_resource_version(req, &old, &target)?;
        let new = if req.sub == Sub::Scale {
            self.scale_to_parent(req, &old, &target)?
        } else {
            target
        };
        if meta::name(&new) != req.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                meta::name(&new),
                req.name
            )));
        }
        self.finish(&mut txn, req, Some(&old), new, Op::Update)
    }

    fn apply(&self, req: &WriteRequest<'_>, config: Value) -> ApiResult<WriteOutcome> {
        if req.manager.is_empty() {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "fieldManager",
                    "Required value: is required for apply patch",
                )],
            ));
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        check_type(req.rt, req.sub, &config)?;
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {}, Kind={}",
                if req.sub == Sub::Scale {
                    "autoscaling/v1".to_string()
                } else {
                    req.rt.api_version()
                },
                config.get("kind").and_then(Value::as_str).unwrap_or("")
            )));
        }
        check_name(req, &config)?;
        if meta::meta(&config).is_some_and(|m| m.get("managedFields").is_some_and(|v| !v.is_null()))
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut txn = self.store.lock();
        let old = stored_view(&txn, req);
        let writer = Writer {
            manager: req.manager,
            sub: req.sub,
            force: req.force,
        };
        let Some(old) = old else {
            if req.sub != Sub::Main {
                return Err(ApiError::not_found(req.rt, req.name));
            }
            if let Some(uid) = meta::meta_str(&config, "uid") {
                return Err(ApiError::conflict(
                    req.rt,
                    req.name,
                    &format!(
                        "uid mismatch: the provided object specified uid {uid}, and no existing object was found"
                    ),
                ));
            }
            self.check_namespace_open(&txn, req, req.name)?;
            // The configuration is converted as sent: its typed-conversion error names the body's
            // namespace (none: `/name`), and comes before a namespace mismatch, as from kube-apiserver.
            let mut merged = ownership::apply(req.rt, None, &config, &writer)?;
            self.set_namespace(req, &mut merged)?;
            meta::meta_mut(&mut merged).insert("name".into(), json!(req.name));
            let merged = refuse_stray_nulls(req.rt, merged, None)?;
            return self.finish(&mut txn, req, None, merged, Op::Apply);
        };
        check_resource_version(req, &old, &config)?;
        let config = if req.sub == Sub::Scale {
            self.scale_config_to_parent(req, &config)
        } else {
            config
        };
        let merged = ownership::apply(req.rt, Some(&old), &config, &writer)?;
        let merged = refuse_stray_nulls(req.rt, merged, Some(&old))?;
        self.finish(&mut txn, req, Some(&old), merged, Op::Apply)
    }

    /// The parent object with `spec.replicas` (or the CR's specReplicasPath) taken from a Scale.
    fn scale_to_parent(
        &self,
        req: &WriteRequest<'_>,
        old: &Value,
        scale: &Value,
    ) -> ApiResult<Value> {
        let paths = req.rt.scale.as_ref().ok_or_else(ApiError::path_not_found)?;
        let asked = meta::get_path(scale, ".spec.replicas").and_then(Value::as_i64);
        // A custom resource without its spec replicas field reads as 0, but a write must name a value.
        if req.rt.is_custom()
            && asked.is_none()
            && meta::get_path(old, &paths.spec_replicas).is_none()
        {
            return Err(ApiError::bad_request(format!(
                "the spec replicas field {:?} cannot be empty",
                paths.spec_replicas
            )));
        }
        let replicas = asked.unwrap_or(0);
        let mut new = Self::present(req.rt, old);
        meta::set_path(&mut new, &paths.spec_replicas, json!(replicas));
        Ok(new)
    }

    /// An applied Scale rewritten as a partial configuration of the parent.
    fn scale_config_to_parent(&self, req: &WriteRequest<'_>, scale: &Value) -> Value {
        let mut cfg = json!({"apiVersion": req.rt.api_version(), "kind": req.rt.kind, "metadata": {"name": req.name}});
        if req.rt.namespaced {
            meta::meta_mut(&mut cfg).insert("namespace".into(), json!(req.namespace));
        }
        if let (Some(paths), Some(r)) = (
            req.rt.scale.as_ref(),
            meta::get_path(scale, ".spec.replicas"),
        ) {
            meta::set_path(&mut cfg, &paths.spec_replicas, r.clone());
        }
        cfg
    }

    fn set_namespace(&self, req: &WriteRequest<'_>, body: &mut Value) -> ApiResult<()> {
        let m = meta::meta_mut(body);
        if !req.rt.namespaced {
            m.remove("namespace");
            return Ok(());
        }
        match m.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != req.namespace => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
            _ => {
                m.insert("namespace".into(), json!(req.namespace));
                Ok(())
            }
        }
    }

    fn check_namespace_open(
        &self,
        txn: &Txn<'_>,
        req: &WriteRequest<'_>,
        name: &str,
    ) -> ApiResult<()> {
        if !req.rt.namespaced {
            return Ok(());
        }
        let key = (
            String::new(),
            "namespaces".to_string(),
            String::new(),
            req.namespace.to_string(),
        );
        match txn.get(&key) {
            None => Err(ApiError::namespace_not_found(req.namespace)),
            Some(ns) if meta::is_terminating(ns) => Err(ApiError::forbidden(
                req.rt,
                name,
                &format!(
                    "unable to create new content in namespace {} because it is being terminated",
                    req.namespace
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// The shared tail of every write.
    fn finish(
        &self,
        txn: &mut Txn<'_>,
        req: &WriteRequest<'_>,
        old: Option<&Value>,
        mut new: Value,
        op: Op,
    ) -> ApiResult<WriteOutcome> {
        let rt = req.rt;
        let mut warnings = Vec::new();
        if rt.kind == "Secret" && !rt.is_custom() {
            defaults::fold_string_data(&mut new);
        }
        let pruned = if rt.is_custom() {
            custom::prune_and_default(rt, &mut new)
        } else if op == Op::Update {
            ownership::prune_undeclared(rt, &mut new)
        } else {
            Vec::new()
        };
        if !pruned.is_empty() && op == Op::Update {
            match req.validation {
                FieldValidation::Strict => return Err(strict_error(rt, &pruned)),
                FieldValidation::Warn => warnings.extend(
                    pruned
                        .iter()
                        .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.'))),
                ),
                FieldValidation::Ignore => {}
            }
        }
        if !rt.is_custom() {
            defaults::apply(&rt.group, &rt.kind, &mut new);
            // kube-apiserver decodes every resource.Quantity and serves it in canonical form.
            fieldwise_api::quantity::canonicalize(&mut new);
        }
        prepare(rt, req.sub, old, &mut new);
        drop_empty_meta(&mut new);
        if rt.kind == "CustomResourceDefinition" && !rt.is_custom() {
            super::crd::set_status(&mut new);
        }
        if op == Op::Update {
            let writer = Writer {
                manager: req.manager,
                sub: req.sub,
                force: false,
            };
            new = ownership::record_update(rt, old, &new, &writer)?;
        }
        // The strategy's own additions come after field management: nobody owns them.
        if old.is_none() && rt.kind == "Job" && rt.group == "batch" {
            defaults::job_selector(&mut new);
        }
        if rt.kind == "Service" && rt.group.is_empty() && !rt.is_custom() {
            defaults::service_addresses(&mut new, old);
        }
        self.validate(rt, req, old, &new)?;
        // Validating admission runs after the object's own validation, on dry runs too.
        warnings.extend(super::admission::pod_security(
            txn,
            rt,
            req.sub,
            req.namespace,
            old,
            &new,
        )?);
        if tracks_generation(rt) {
            let gen_old = old
                .and_then(|o| meta::meta(o)?.get("generation")?.as_i64())
                .unwrap_or(0);
            let generation = match old {
                None => 1,
                Some(o) if generation_relevant(rt, o) != generation_relevant(rt, &new) => {
                    gen_old + 1
                }
                Some(_) => gen_old,
            };
            meta::meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        let present = |obj: &Value| -> ApiResult<Value> {
            if req.sub == Sub::Scale {
                Self::scale_of(rt, obj)
            } else {
                Ok(Self::present(rt, obj))
            }
        };
        if let Some(o) = old
            && same_object(o, &new)
        {
            return Ok(WriteOutcome {
                object: present(o)?,
                created: false,
                warnings,
            });
        }
        let key = Self::key(rt, req.namespace, req.name);
        if req.dry_run {
            return Ok(WriteOutcome {
                object: present(&new)?,
                created: old.is_none(),
                warnings,
            });
        }
        let stored = txn.put(key.clone(), events::to_storage(rt, strip_type(new)));
        let done = meta::is_terminating(&stored)
            && meta::finalizers(&stored).is_empty()
            && rt.kind != "Namespace";
        let stored = if done {
            txn.remove(&key).unwrap_or(stored)
        } else {
            stored
        };
        self.after_commit(rt, &stored, done);
        Ok(WriteOutcome {
            object: present(&stored)?,
            created: old.is_none(),
            warnings,
        })
    }

    /// Hooks run after a committed change (CRDs register or unregister their types).
    pub(crate) fn after_commit(&self, rt: &ResourceType, stored: &Value, removed: bool) {
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            if removed {
                self.registry.remove_custom(meta::name(stored));
            } else {
                super::crd::register(&self.registry, stored);
            }
        }
    }

    /// Validates a write as kube-apiserver's update path does: the metadata checks common to every
    /// kind (finalizers added while terminating) first, then the kind's own validation, in one 422.
    fn validate(
        &self,
        rt: &ResourceType,
        req: &WriteRequest<'_>,
        old: Option<&Value>,
        new: &Value,
    ) -> ApiResult<()> {
        let mut causes: Vec<Cause> = finalizers_added_while_terminating(old, new)
            .into_iter()
            .collect();
        let _ = req;
        // Custom resources report it alone (their schema errors are worded elsewhere).
        if rt.is_custom() && !causes.is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                meta::name(new),
                causes,
            ));
        }
        if rt.is_custom() {
            let errors = custom::validate(rt, new, old);
            if errors.is_empty() {
                return Ok(());
            }
            return Err(ApiError::invalid_fields(
                &rt.kind,
                &rt.group,
                meta::name(new),
                &errors,
            ));
        }
        causes.extend(super::validation::builtin(rt, new, old));
        if causes.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(
            &rt.kind,
            &rt.group,
            meta::name(new),
            causes,
        ))
    }
}

/// The merged object of an apply, nulls dropped. A custom resource keeps the nulls the merge left
/// (nulled by the configuration, or containers emptied by pruning) until validation, which refuses
/// them in non-nullable fields without a default, as kube-apiserver does
/// ([`custom::stray_nulls`]); built-in objects lose them in the conversion to their Go type.
fn refuse_stray_nulls(
    rt: &ResourceType,
    mut merged: Value,
    old: Option<&Value>,
) -> ApiResult<Value> {
    let stray = custom::stray_nulls(rt, &merged);
    ssa::drop_nulls(&mut merged);
    if stray.is_empty() {
        return Ok(merged);
    }
    let mut probe = merged.clone();
    custom::prune_and_default(rt, &mut probe);
    custom::put_nulls(&mut probe, &stray);
    let errors = custom::validate(rt, &probe, old);
    if errors.is_empty() {
        return Ok(merged);
    }
    Err(ApiError::invalid_fields(
        &rt.kind,
        &rt.group,
        meta::name(&merged),
        &errors,
    ))
}

/// The stored object a write addresses, in the form of the version written to.
fn stored_view(txn: &Txn<'_>, req: &WriteRequest<'_>) -> Option<Value> {
    txn.get(&ApiServer::key(req.rt, req.namespace, req.name))
        .map(|stored| events::view(req.rt, stored).into_owned())
}

/// A body naming another object than the URL.
fn check_name(req: &WriteRequest<'_>, body: &Value) -> ApiResult<()> {
    let body_name = meta::name(body);
    if body_name.is_empty() || body_name == req.name {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "the name of the object ({body_name}) does not match the name on the URL ({})",
        req.name
    )))
}

fn check_resource_version(req: &WriteRequest<'_>, old: &Value, body: &Value) -> ApiResult<()> {
    match meta::meta_str(body, "resourceVersion") {
        Some(rv) if !rv.is_empty() && Some(rv) != meta::meta_str(old, "resourceVersion") => {
            Err(ApiError::modified(req.rt, req.name))
        }
        _ => Ok(()),
    }
}

/// Custom resources allow no unconditional update: a PUT must name the resourceVersion it read.
fn check_conditional_update(req: &WriteRequest<'_>, body: &Value) -> ApiResult<()> {
    let named = meta::meta_str(body, "resourceVersion").is_some_and(|rv| !rv.is_empty());
    if !req.rt.is_custom() || req.sub == Sub::Scale || named {
        return Ok(());
    }
    Err(ApiError::invalid(
        &req.rt.kind,
        &req.rt.group,
        req.name,
        vec![Cause::new(
            "FieldValueInvalid",
            "metadata.resourceVersion",
            "Invalid value: 0x0: must be specified for an update",
        )],
    ))
}

/// ObjectMeta is a Go struct for every kind: its empty `omitempty` maps and lists are not stored.
fn drop_empty_meta(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|key, value| {
            let empty = match value {
                Value::Object(map) => map.is_empty(),
                Value::Array(items) => items.is_empty(),
                _ => false,
            };
            !(empty
                && matches!(
                    key.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                ))
        });
    }
}

/// The object as stored: the group/version lives in the type, not in the stored body.
fn strip_type(mut obj: Value) -> Value {
    if let Some(m) = meta::meta(&obj)
        && m.contains_key("selfLink")
    {
        meta::meta_mut(&mut obj).remove("selfLink");
    }
    obj
}

/// Equal apart from resourceVersion and the type fields.
fn same_object(old: &Value, new: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        meta::meta_mut(&mut v).remove("resourceVersion");
        v
    };
    norm(old) == norm(new)
}

const PRESERVED_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "name",
    "namespace",
];

/// The registry strategy: server-owned metadata, and the status/spec split between endpoints.
fn prepare(rt: &ResourceType, sub: Sub, old: Option<&Value>, new: &mut Value) {
    let Some(old) = old else {
        let m = meta::meta_mut(new);
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
            "generation",
            "uid",
        ] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(meta::new_uid()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        if rt.status
            && let Some(o) = new.as_object_mut()
        {
            match initial_status(rt) {
                Some(s) if rt.kind == "Namespace" => {
                    o.entry("status").or_insert(s);
                }
                Some(s) => {
                    o.insert("status".into(), s);
                }
                None => {
                    o.remove("status");
                }
            }
        }
        return;
    };
    if sub == Sub::Status {
        let status = new.get("status").cloned();
        let mf = managed_fields(new).cloned();
        *new = old.clone();
        if let Some(o) = new.as_object_mut() {
            match status {
                Some(s) => o.insert("status".into(), s),
                None => o.remove("status"),
            };
        }
        match mf {
            Some(mf) => meta::meta_mut(new).insert("managedFields".into(), Value::Array(mf)),
            None => meta::meta_mut(new).remove("managedFields"),
        };
        return;
    }
    let old_meta = meta::meta(old).cloned().unwrap_or_default();
    let m = meta::meta_mut(new);
    for k in PRESERVED_META {
        match old_meta.get(*k) {
            Some(v) => m.insert(k.to_string(), v.clone()),
            None => m.remove(*k),
        };
    }
    m.remove("selfLink");
    if rt.status
        && let Some(o) = new.as_object_mut()
    {
        match old.get("status") {
            Some(s) => o.insert("status".into(), s.clone()),
            None => o.remove("status"),
        };
    }
}

/// The Forbidden cause of finalizers added to an object being deleted (their names sorted, as
/// kube-apiserver lists the set).
fn finalizers_added_while_terminating(old: Option<&Value>, new: &Value) -> Option<Cause> {
    let old = old.filter(|o| meta::is_terminating(o))?;
    let before = meta::finalizers(old);
    let mut added: Vec<String> = meta::finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return None;
    }
    added.sort();
    added.dedup();
    let added: Vec<&str> = added.iter().map(String::as_str).collect();
    Some(Cause::new(
        "FieldValueForbidden",
        "metadata.finalizers",
        format!(
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {}",
            super::rules::go_string_slice(&added)
        ),
    ))
}
