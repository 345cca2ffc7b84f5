//! The CustomResourceDefinitions fieldwise serves, as typed objects and as the YAML in `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::Value;

use crate::prism::PrismCluster;
use crate::v1::FeatureStore;

/// Every CRD fieldwise serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        finish(with_retired_v1alpha1(FeatureStore::crd())),
        finish(PrismCluster::crd()),
    ]
}

/// The Feast operator's older FeatureStore version, which fieldwise does not serve.
pub const RETIRED_FEATURE_STORE_VERSION: &str = "v1alpha1";

/// What a user of `feast.dev/v1alpha1` is told: v1 holds every field v1alpha1 had.
pub const RETIRED_VERSION_MESSAGE: &str = "feast.dev/v1alpha1 is not served by fieldwise: change apiVersion to feast.dev/v1, which accepts every v1alpha1 field";

/// Lists `v1alpha1` beside `v1`, neither served nor stored. A cluster that ran the Feast operator
/// still names `v1alpha1` in the CRD's `status.storedVersions`, and the API server refuses a CRD
/// that leaves out a stored version: without this entry, installing over it fails. Objects stored
/// at v1alpha1 read as v1 unchanged (the schemas differ only in what v1 adds), so no conversion
/// is needed.
fn with_retired_v1alpha1(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let schema: JSONSchemaProps = serde_json::from_value(serde_json::json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    }))
    .unwrap_or_default();
    crd.spec.versions.push(CustomResourceDefinitionVersion {
        name: RETIRED_FEATURE_STORE_VERSION.to_owned(),
        served: false,
        storage: false,
        deprecated: Some(true),
        deprecation_warning: Some(RETIRED_VERSION_MESSAGE.to_owned()),
        schema: Some(CustomResourceValidation {
            open_api_v3_schema: Some(schema),
        }),
        ..CustomResourceDefinitionVersion::default()
    });
    crd
}

/// Every CRD as multi-document YAML (each document starts with `---`), byte-for-byte deterministic.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_yaml).collect()
}

/// One CRD as a YAML document starting with `---`: the content of `crds/<name>.yaml`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    // Serialising a k8s-openapi CRD cannot fail: it is plain data with string keys. Should it ever,
    // the YAML says so instead of panicking.
    match serde_saphyr::to_string(crd) {
        Ok(yaml) => format!("---\n{yaml}"),
        Err(err) => format!(
            "---\n# could not render {}: {err}\n",
            crd.metadata.name.as_deref().unwrap_or("?")
        ),
    }
}

/// Applies the schema conventions kube's derive cannot express to every version of `crd`.
fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(validation) = version.schema.as_mut()
            && let Some(schema) = validation.open_api_v3_schema.take()
        {
            validation.open_api_v3_schema = Some(normalize(schema));
        }
    }
    crd
}

fn normalize(schema: JSONSchemaProps) -> JSONSchemaProps {
    let Ok(mut value) = serde_json::to_value(&schema) else {
        return schema;
    };
    normalize_node(&mut value);
    add_object_metadata_properties(&mut value);
    serde_json::from_value(value).unwrap_or(schema)
}

/// Rewrites one schema node and everything below it:
/// - drops `nullable: true`, which schemars adds to every `Option` field: Kubernetes' own types (and the
///   Feast CRD) never declare it, so a `null` is dropped by the API server instead of being stored;
/// - drops the `null` schemars lists among the values of an optional enum, for the same reason;
/// - spells int-or-string fields as the API server publishes them (`anyOf: [integer, string]`).
fn normalize_node(node: &mut Value) {
    let Some(object) = node.as_object_mut() else {
        return;
    };
    object.remove("nullable");
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|value| !value.is_null());
    }
    if object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        && !object.contains_key("anyOf")
    {
        object.insert(
            "anyOf".into(),
            serde_json::json!([{ "type": "integer" }, { "type": "string" }]),
        );
    }
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        properties.values_mut().for_each(normalize_node);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = object.get_mut(key) {
            normalize_node(child);
        }
    }
}

/// Declares `apiVersion`, `kind` and `metadata` at the root, as the API server's published schemas do.
fn add_object_metadata_properties(root: &mut Value) {
    let Some(Value::Object(properties)) = root.get_mut("properties") else {
        return;
    };
    let fields = [
        ("apiVersion", "string"),
        ("kind", "string"),
        ("metadata", "object"),
    ];
    for (name, schema_type) in fields {
        properties
            .entry(name)
            .or_insert_with(|| serde_json::json!({ "type": schema_type }));
    }
    // A rule reporting at `.metadata.name` needs the field declared: kube-apiserver checks that a
    // rule's fieldPath names a field of the schema (and lets the root's metadata declare only
    // `name` and `generateName`).
    let reports_at_name = root
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| rule.get("fieldPath").and_then(Value::as_str) == Some(".metadata.name"));
    if reports_at_name {
        root["properties"]["metadata"]["properties"] =
            serde_json::json!({ "name": { "type": "string" } });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_drops_nullable_and_null_enum_values_and_spells_int_or_string() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "level": {"type": "string", "enum": ["debug", null], "nullable": true},
                "budget": {"x-kubernetes-int-or-string": true, "nullable": true},
                "list": {"type": "array", "items": {"type": "object", "nullable": true}},
                "map": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}}
            }
        });
        normalize_node(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "level": {"type": "string", "enum": ["debug"]},
                    "budget": {
                        "x-kubernetes-int-or-string": true,
                        "anyOf": [{"type": "integer"}, {"type": "string"}]
                    },
                    "list": {"type": "array", "items": {"type": "object"}},
                    "map": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            })
        );
    }

    #[test]
    fn the_feature_store_crd_is_served_at_v1_only_and_lists_v1alpha1() {
        let crds = crds();
        let crd = &crds[0];
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("featurestores.feast.dev")
        );
        let versions: Vec<_> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1", true, true), ("v1alpha1", false, false)]);
        let scale = crd.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
    }
}
