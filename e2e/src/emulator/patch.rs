//! Non-apply patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge
//! patch for built-in types (lists merged by their `patchMergeKey`, directives `$patch`,
//! `$deleteFromPrimitiveList/…`; `$setElementOrder/…` and `$retainKeys` are accepted and ignored).

use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};

pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

pub fn json(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let mut ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal patch: {e}")))?;
    // kube-apiserver's JSON patch (evanphx/json-patch) lets `test` of a missing path against
    // `null` pass; kube-rs's finalizer helper relies on it when an object has no finalizers yet.
    ops.0.retain(|op| !is_null_test_of_missing_path(op, target));
    json_patch::patch(target, &ops).map_err(|e| {
        ApiError::new(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        )
    })
}

fn is_null_test_of_missing_path(op: &json_patch::PatchOperation, target: &Value) -> bool {
    match op {
        json_patch::PatchOperation::Test(test) => {
            test.value.is_null() && target.pointer(test.path.as_str()).is_none()
        }
        _ => false,
    }
}

/// Merge key of a list field of a built-in type; `None` means the list is replaced.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Primitive lists that merge as sets.
fn is_merged_primitive_list(field: &str) -> bool {
    field == "finalizers"
}

pub fn strategic(target: &mut Value, patch: &Value) -> ApiResult<()> {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            merge_map(t, p);
            Ok(())
        }
        _ => Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        )),
    }
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = patch.clone();
        target.remove("$patch");
        return;
    }
    for (k, pv) in patch {
        if k == "$patch" || k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (target.get_mut(field), pv.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if pv.is_null() {
            target.remove(k);
            continue;
        }
        if let Some(pm) = pv.as_object()
            && pm.get("$patch").and_then(Value::as_str) == Some("delete")
        {
            target.remove(k);
            continue;
        }
        match (target.get_mut(k), pv) {
            (Some(Value::Object(tm)), Value::Object(pm)) => merge_map(tm, pm),
            (Some(Value::Array(tl)), Value::Array(pl)) => merge_list(k, tl, pl),
            _ => {
                let mut v = pv.clone();
                strip_directives(&mut v);
                target.insert(k.clone(), v);
            }
        }
    }
}

fn merge_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    if is_merged_primitive_list(field) {
        for item in patch {
            if !target.contains(item) {
                target.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field, patch) else {
        let mut v = Value::Array(patch.to_vec());
        strip_directives(&mut v);
        if let Value::Array(a) = v {
            *target = a;
        }
        return;
    };
    for item in patch {
        let Some(pm) = item.as_object() else { continue };
        let id = pm.get(key);
        let pos = target.iter().position(|t| t.get(key) == id);
        let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(tm) = target[i].as_object_mut() {
                    merge_map(tm, pm);
                }
            }
            (None, false) => {
                let mut v = item.clone();
                strip_directives(&mut v);
                target.push(v);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_lists_by_key_and_honours_directives() {
        let mut target = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}],
            "args": ["x"], "finalizers": ["f1"]}});
        let patch = json!({"spec": {
            "containers": [{"name": "b", "image": "2"}, {"name": "a", "$patch": "delete"}, {"name": "c", "image": "3"}],
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
            "args": ["y"], "finalizers": ["f2"]}});
        strategic(&mut target, &patch).unwrap();
        assert_eq!(
            target["spec"]["containers"],
            json!([{"name": "b", "image": "2"}, {"name": "c", "image": "3"}])
        );
        assert_eq!(
            target["spec"]["args"],
            json!(["y"]),
            "lists without a merge key are replaced"
        );
        assert_eq!(target["spec"]["finalizers"], json!(["f1", "f2"]));
        assert!(target["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_replace_and_delete_maps() {
        let mut target = json!({"a": {"x": 1, "y": 2}, "b": {"z": 1}, "c": 1});
        strategic(
            &mut target,
            &json!({"a": {"$patch": "replace", "q": 1}, "b": {"$patch": "delete"}, "c": null}),
        )
        .unwrap();
        assert_eq!(target, json!({"a": {"q": 1}}));
    }

    #[test]
    fn json_patch_errors_are_422() {
        let mut target = json!({"a": 1});
        let err = json(&mut target, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert_eq!(err.code, 422);
    }
}
