//! A minimal OpenAPI v3: one document per group/version listing, for every kind, the PATCH operation
//! with its `x-kubernetes-group-version-kind` and the `fieldValidation` parameter. That is what
//! kubectl checks before sending `fieldValidation=Strict` (spec §6); schemas are not published.

use serde_json::{Map, Value, json};

use super::super::registry::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn root(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, vs) in registry.groups() {
        for v in vs {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=0")}),
            );
        }
    }
    json!({"paths": paths})
}

fn parameters() -> Value {
    let q = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    json!([
        {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}},
        q("dryRun"),
        q("fieldManager"),
        q("fieldValidation"),
        {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
    ])
}

pub fn document(registry: &Registry, gv: &str) -> Option<Value> {
    let mut paths = Map::new();
    for t in registry.all() {
        if gv_path(&t.group, &t.version) != gv {
            continue;
        }
        let ns = if t.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let path = format!("/{gv}{ns}/{}/{{name}}", t.plural);
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": parameters(),
                    "responses": {"200": {"description": "OK"}}
                }
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::discovery::RELEASE},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
