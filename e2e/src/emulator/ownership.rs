//! The bridge to the server-side-apply algebra in [`crate::ssa`]: managedFields for non-apply writes
//! and the merge + ownership of apply requests, with the endpoint's reset fields and the HTTP
//! errors kube-apiserver gives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::errors::ApiError;
use super::meta;
use super::registry::ResourceType;
use crate::ssa::{self, ApplyError, FieldSet, Path, PathElement, SchemaError, TypeSchema};

/// Which endpoint a write came through; recorded as the managedFields entry's `subresource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
    Scale,
}

impl Sub {
    pub fn name(self) -> Option<&'static str> {
        match self {
            Sub::Main => None,
            Sub::Status => Some("status"),
            Sub::Scale => Some("scale"),
        }
    }
}

/// Who is writing, through which endpoint.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub sub: Sub,
    pub force: bool,
}

type SchemaCache = Mutex<HashMap<(String, String, String), Arc<TypeSchema>>>;

/// The SSA schema of a type: the CRD's for custom resources, the built-in one (cached, as building
/// it is not free), or a schemaless one for built-ins the ssa module does not describe.
pub fn schema_of(rt: &ResourceType) -> Arc<TypeSchema> {
    if let Some(c) = &rt.custom {
        return c.type_schema.clone();
    }
    static CACHE: OnceLock<SchemaCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .entry((rt.group.clone(), rt.version.clone(), rt.kind.clone()))
        .or_insert_with(|| {
            Arc::new(
                TypeSchema::builtin(&rt.group, &rt.version, &rt.kind)
                    .unwrap_or_else(TypeSchema::schemaless),
            )
        })
        .clone()
}

/// Fields the endpoint never owns: `status` on the main resource of a type with a status
/// subresource; everything but `status` on `/status`.
fn reset_fields(rt: &ResourceType, sub: Sub) -> FieldSet {
    match sub {
        Sub::Main if rt.status => FieldSet::from_field_paths(&[&["status"]]),
        Sub::Status => FieldSet::from_field_paths(&[&["spec"]]),
        Sub::Scale => FieldSet::from_field_paths(&[&["status"]]),
        _ => FieldSet::new(),
    }
}

/// `<ns>/<name>; <group>/<version>, Kind=<Kind>` as the typed-conversion error prints it.
fn typed_error(rt: &ResourceType, obj_ns: &str, name: &str, e: &SchemaError) -> ApiError {
    let msg = e.to_string();
    ApiError::internal_no_reason(format!(
        "failed to create typed patch object ({obj_ns}/{name}; {}/{}, Kind={}): {msg}",
        rt.group, rt.version, rt.kind
    ))
}

/// Records a create/update/patch by `writer` (`new` is defaulted); returns the object with its new
/// managedFields.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &Value,
    writer: &Writer<'_>,
) -> Result<Value, ApiError> {
    let opts = ssa::UpdateOptions {
        manager: writer.manager.to_string(),
        api_version: rt.api_version(),
        subresource: writer.sub.name().map(str::to_string),
        now: meta::now(),
        reset_fields: reset_fields(rt, writer.sub),
    };
    let schema = schema_of(rt);
    ssa::update(&schema, old, new, &opts)
        .map(|o| o.object)
        .map_err(|e| {
            typed_error(
                rt,
                meta::meta_str(new, "namespace").unwrap_or(""),
                meta::name(new),
                &e,
            )
        })
}

/// Merges an applied configuration into `live` (or into nothing, for a create) and returns the merged
/// object carrying the new managedFields (not yet defaulted). Conflicts come back as the 409 of
/// spec §4.2, undeclared fields as the reason-less 500 of §2.1.
pub fn apply(
    rt: &ResourceType,
    live: Option<&Value>,
    config: &Value,
    writer: &Writer<'_>,
) -> Result<Value, ApiError> {
    let opts = ssa::ApplyOptions {
        manager: writer.manager.to_string(),
        force: writer.force,
        api_version: rt.api_version(),
        subresource: writer.sub.name().map(str::to_string),
        now: meta::now(),
        reset_fields: reset_fields(rt, writer.sub),
    };
    let schema = schema_of(rt);
    match ssa::apply(&schema, live, config, &opts) {
        // Nulls left by the merge stay: the caller checks and then drops them, as kube-apiserver
        // validates the merged object and then stores it.
        Ok(out) => Ok(out.object),
        Err(ApplyError::Conflict(c)) => Err(ApiError::from_status(&c.to_status())),
        Err(ApplyError::Schema(e)) => Err(typed_error(
            rt,
            meta::meta_str(config, "namespace").unwrap_or(""),
            meta::name(config),
            &e,
        )),
        Err(ApplyError::ManagedFields(e)) => Err(ApiError::internal(e.to_string())),
    }
}

/// Paths (`.spec.bogus`, `.spec.containers[0].bogus`: list items by position, as kube-apiserver's
/// strict decoder names them) a built-in object carries that its schema does not declare; removed
/// from `obj` so the write can proceed (the caller fails first under strict field validation).
pub fn prune_undeclared(rt: &ResourceType, obj: &mut Value) -> Vec<String> {
    let schema = schema_of(rt);
    let mut pruned = Vec::new();
    for _ in 0..256 {
        let Err(e) = ssa::validate(&schema, obj) else {
            break;
        };
        if !e.message.contains("not declared") {
            break;
        }
        match remove(obj, &e.path) {
            Some(shown) => pruned.push(shown),
            None => break,
        }
    }
    pruned
}

/// Removes the node at `path`, returning its path with list items by position; `None` when it
/// cannot be found.
fn remove(obj: &mut Value, path: &Path) -> Option<String> {
    let (last, parents) = path.0.split_last()?;
    let mut cur = obj;
    let mut shown = String::new();
    for el in parents {
        cur = match (el, cur) {
            (PathElement::Field(f), Value::Object(m)) => {
                shown.push_str(&format!(".{f}"));
                m.get_mut(f)?
            }
            (el, Value::Array(a)) => {
                let i = item_position(el, a)?;
                shown.push_str(&format!("[{i}]"));
                a.get_mut(i)?
            }
            _ => return None,
        };
    }
    match (last, cur) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.remove(f)?;
            Some(format!("{shown}.{f}"))
        }
        _ => None,
    }
}

/// The position in `items` a list path element names.
fn item_position(el: &PathElement, items: &[Value]) -> Option<usize> {
    match el {
        PathElement::Index(i) => (*i < items.len()).then_some(*i),
        PathElement::Value(v) => items.iter().position(|x| x == v),
        PathElement::Key(keys) => items
            .iter()
            .position(|x| keys.iter().all(|(k, kv)| x.get(k) == Some(kv))),
        PathElement::Field(_) => None,
    }
}
