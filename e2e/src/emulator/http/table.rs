//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` answers: Name, then the CRD's printer
//! columns (custom resources) or else Age; Events have kube-apiserver's Event columns.

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::super::registry::ResourceType;
use super::super::{events, meta};
use super::event_table;

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

/// Whether `rt` serves Events (either view), which have kube-apiserver's own printer.
fn is_event(rt: &ResourceType) -> bool {
    !rt.is_custom() && rt.plural == "events" && events::storage_group(rt).is_empty()
}

/// The printer columns a CRD version declares; none for built-in kinds.
fn printer_columns(rt: &ResourceType) -> &[Value] {
    rt.custom.as_ref().map_or(&[], |c| &c.printer_columns)
}

/// Name, then the CRD's printer columns, which replace the default Age column (kube-apiserver shows
/// Age for a custom resource only when its CRD declares no columns, or declares Age itself).
fn columns(rt: &ResourceType) -> Vec<Value> {
    if is_event(rt) {
        return event_table::columns();
    }
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

/// The time since `time` as kube-apiserver writes it into Tables (Age, Last Seen): `<unknown>` when
/// unset, `<invalid>` in the future, else 45s, 3m2s, 12m, 3h30m, 9h, 2d5h, 9d, 2y30d, 9y.
pub(super) fn since(time: &str) -> String {
    let Some(t) = meta::parse_time(time) else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - t)
}

fn human_duration(secs: i64) -> String {
    // A second's clock skew counts as now.
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (minutes, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    // The finer unit is shown while the coarser one is small, and only when it is not zero.
    let pair = |big: i64, big_unit: &str, small: i64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit}{small}{small_unit}"),
    };
    match () {
        () if secs < 120 => format!("{secs}s"),
        () if minutes < 10 => pair(minutes, "m", secs % 60, "s"),
        () if minutes < 180 => format!("{minutes}m"),
        () if hours < 8 => pair(hours, "h", minutes % 60, "m"),
        () if hours < 48 => format!("{hours}h"),
        () if hours < 24 * 8 => pair(days, "d", hours % 24, "h"),
        () if hours < 24 * 365 * 2 => format!("{days}d"),
        () if hours < 24 * 365 * 8 => pair(days / 365, "y", days % 365, "d"),
        () => format!("{}y", days / 365),
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
        (Some(Value::String(s)), "date") => json!(since(s)),
        (Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))), _) => v.clone(),
        (Some(v), _) => json!(v.to_string()),
    }
}

fn cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    if is_event(rt) {
        return event_table::cells(&events::to_storage(rt, obj.clone()));
    }
    let mut cells = vec![json!(meta::name(obj))];
    cells.extend(printer_columns(rt).iter().map(|pc| cell(obj, pc)));
    if printer_columns(rt).is_empty() {
        let created = meta::meta_str(obj, "creationTimestamp").unwrap_or_default();
        cells.push(json!(since(created)));
    }
    cells
}

fn row(rt: &ResourceType, obj: &Value, include: &str) -> Value {
    let mut r = json!({"cells": cells(rt, obj)});
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kube_apiserver_writes_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (45, "45s"),
            (119, "119s"),
            (182, "3m2s"),
            (300, "5m"),
            (12 * 60 + 5, "12m"),
            (3 * 3600 + 30 * 60, "3h30m"),
            (5 * 3600, "5h"),
            (13 * 3600 + 59, "13h"),
            (2 * 86_400 + 5 * 3600, "2d5h"),
            (9 * 86_400, "9d"),
            (2 * 365 * 86_400 + 30 * 86_400, "2y30d"),
            (9 * 365 * 86_400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs} s");
        }
    }

    #[test]
    fn an_unset_time_is_unknown() {
        assert_eq!(since(""), "<unknown>");
    }
}
