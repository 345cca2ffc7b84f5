//! CustomResourceDefinitions: the status the apiextensions controllers would write (names accepted,
//! established) and the registration of their custom resource types for serving and discovery.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use crate::ssa::TypeSchema;

use super::meta;
use super::registry::{CustomVersion, Registry, ResourceType, ScalePaths};

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message})
}

/// Fills `status` as the CRD controllers do once names are accepted: conditions, acceptedNames,
/// storedVersions. Keeps earlier transition times so an unchanged CRD stays unchanged.
pub fn set_status(crd: &mut Value) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage") == Some(&json!(true)))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let old_status = crd.get("status").cloned().unwrap_or(json!({}));
    let mut stored: Vec<Value> = old_status
        .get("storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in storage {
        if !stored.contains(&s) {
            stored.push(s);
        }
    }
    let now = meta::now();
    let keep_time = |t: &str| -> String {
        old_status
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            })
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .unwrap_or(&now)
            .to_string()
    };
    let terminating = meta::is_terminating(crd);
    let mut conditions = vec![
        condition(
            "NamesAccepted",
            "NoConflicts",
            "no conflicts found",
            &keep_time("NamesAccepted"),
        ),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            &keep_time("Established"),
        ),
    ];
    if terminating {
        conditions.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": keep_time("Terminating"),
            "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"}));
    }
    if let Some(o) = crd.as_object_mut() {
        o.insert(
            "status".into(),
            json!({"conditions": conditions, "acceptedNames": names, "storedVersions": stored}),
        );
    }
}

fn str_of<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The served versions of a CRD as resource types.
pub fn types_of(crd: &Value) -> Vec<ResourceType> {
    let group = str_of(crd, "/spec/group").to_string();
    let plural = str_of(crd, "/spec/names/plural").to_string();
    let kind = str_of(crd, "/spec/names/kind").to_string();
    let singular = match str_of(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_of(crd, "/spec/scope") != "Cluster";
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| {
            let props: Option<Arc<JSONSchemaProps>> = v
                .pointer("/schema/openAPIV3Schema")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .map(Arc::new);
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: str_of(s, "/specReplicasPath").to_string(),
                status_replicas: str_of(s, "/statusReplicasPath").to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
            ResourceType {
                group: group.clone(),
                version: str_of(v, "/name").to_string(),
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                short_names: strings(crd, "/spec/names/shortNames"),
                categories: strings(crd, "/spec/names/categories"),
                status: v.pointer("/subresources/status").is_some(),
                scale,
                custom: Some(CustomVersion {
                    crd_name: meta::name(crd).to_string(),
                    props: props.clone(),
                    type_schema: Arc::new(
                        props
                            .as_deref()
                            .map(TypeSchema::from_crd_schema)
                            .unwrap_or_else(TypeSchema::schemaless),
                    ),
                    scale: v
                        .pointer("/subresources/scale")
                        .and_then(|s| serde_json::from_value(s.clone()).ok()),
                    printer_columns: v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                }),
            }
        })
        .collect()
}

/// Serves (or re-serves, after an update) the CRD's custom resources.
pub fn register(registry: &Registry, crd: &Value) {
    registry.set_custom(meta::name(crd), types_of(crd));
}
