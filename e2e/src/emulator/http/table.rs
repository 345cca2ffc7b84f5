//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` answers: Name, then the CRD's printer
//! columns (custom resources) or else Age.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::super::meta;
use super::super::registry::ResourceType;

pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

/// The printer columns a CRD version declares; none for built-in kinds.
fn printer_columns(rt: &ResourceType) -> &[Value] {
    rt.custom.as_ref().map_or(&[], |c| &c.printer_columns)
}

/// Name, then the CRD's printer columns, which replace the default Age column (kube-apiserver shows
/// Age for a custom resource only when its CRD declares no columns, or declares Age itself).
fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut cols = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for pc in printer_columns(rt) {
        cols.push(json!({
            "name": pc.get("name").and_then(Value::as_str).unwrap_or_default(),
            "type": pc.get("type").cloned().unwrap_or(json!("string")),
            "format": pc.get("format").cloned().unwrap_or(json!("")),
            "description": pc.get("description").cloned().unwrap_or(json!("")),
            "priority": pc.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    if printer_columns(rt).is_empty() {
        cols.push(json!({"name": "Age", "type": "date", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            "priority": 0}));
    }
    cols
}

/// Human age as kubectl prints it: 45s, 3m2s, 12m, 5h, 3d.
fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(meta::parse_time) else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Evaluates the simple JSONPath forms printer columns use: `.a.b`, `.a[0].b`,
/// `.a[?(@.type=="Ready")].status`.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = r[end + 1..].trim_start_matches('.');
            let arr = cur.as_array()?;
            cur = if let Some(filter) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (k, v) = filter.split_once("==")?;
                let want = v.trim().trim_matches('"').trim_matches('\'');
                arr.iter()
                    .find(|i| i.get(k.trim()).and_then(Value::as_str) == Some(want))?
            } else {
                arr.get(inner.parse::<usize>().ok()?)?
            };
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        cur = cur.get(&rest[..end])?;
        rest = rest[end..].trim_start_matches('.');
    }
    Some(cur)
}

fn cell(obj: &Value, pc: &Value) -> Value {
    let path = pc
        .get("jsonPath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ty = pc.get("type").and_then(Value::as_str).unwrap_or("string");
    match (json_path(obj, path), ty) {
        (None, _) => Value::Null,
        (Some(Value::String(s)), "date") => json!(age(Some(s))),
        (Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))), _) => v.clone(),
        (Some(v), _) => json!(v.to_string()),
    }
}

fn row(rt: &ResourceType, obj: &Value, include: &str) -> Value {
    let mut cells = vec![json!(meta::name(obj))];
    cells.extend(printer_columns(rt).iter().map(|pc| cell(obj, pc)));
    if printer_columns(rt).is_empty() {
        cells.push(json!(age(meta::meta_str(obj, "creationTimestamp"))));
    }
    let mut r = json!({"cells": cells});
    match include {
        "None" => {}
        "Object" => r["object"] = obj.clone(),
        _ => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
        }
    }
    r
}

fn table(
    rt: &ResourceType,
    items: &[Value],
    rv: Value,
    cont: Option<Value>,
    include: &str,
) -> Value {
    let mut md = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        md["continue"] = c;
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": md,
        "columnDefinitions": columns(rt),
        "rows": items.iter().map(|o| row(rt, o, include)).collect::<Vec<_>>(),
    })
}

pub fn single(rt: &ResourceType, obj: &Value, rv: Value, include: &str) -> Value {
    table(rt, std::slice::from_ref(obj), rv, None, include)
}

pub fn list(rt: &ResourceType, list: &Value, include: &str) -> Value {
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rv = list
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    table(
        rt,
        &items,
        rv,
        list.pointer("/metadata/continue").cloned(),
        include,
    )
}
