//! OpenAPI v3: one document per group/version listing, for every kind, the PATCH operation with its
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter (what kubectl checks before
//! sending `fieldValidation=Strict`, spec §6), and the kinds' schemas in `components.schemas` (what
//! `kubectl explain` and kubectl's client-side validation read): built-ins from k8s-openapi's
//! schemas, custom resources from their CRD's structural schema with the standard ObjectMeta.

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::autoscaling::{v1 as autoscaling_v1, v2 as autoscaling};
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::super::registry::{Registry, ResourceType};

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
        "components": {"schemas": schemas(registry, gv)}
    }))
}

/// The schemas of the kinds served at `gv` and of everything they reference.
fn schemas(registry: &Registry, gv: &str) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    for t in registry.all() {
        if gv_path(&t.group, &t.version) != gv {
            continue;
        }
        let name = match &t.custom {
            Some(custom) => custom_schema(&mut generator, &t, custom.props.as_deref()),
            None => builtin_schema(&mut generator, &t),
        };
        if let Some(name) = name {
            kinds.push((name, t));
        }
    }
    let mut out: Map<String, Value> = generator.take_definitions(true);
    for (name, t) in kinds {
        if let Some(Value::Object(schema)) = out.get_mut(&name) {
            let gvk = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
            schema.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    out
}

/// Adds a built-in kind's schema (and the ones it references); returns its definition name.
fn builtin_schema(generator: &mut SchemaGenerator, t: &ResourceType) -> Option<String> {
    fn add<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> Option<String> {
        generator.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    let g = generator;
    match (t.group.as_str(), t.version.as_str(), t.kind.as_str()) {
        ("", "v1", "Namespace") => add::<core::Namespace>(g),
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>(g),
        ("", "v1", "Secret") => add::<core::Secret>(g),
        ("", "v1", "Service") => add::<core::Service>(g),
        ("", "v1", "ServiceAccount") => add::<core::ServiceAccount>(g),
        ("", "v1", "PersistentVolumeClaim") => add::<core::PersistentVolumeClaim>(g),
        ("", "v1", "Pod") => add::<core::Pod>(g),
        ("", "v1", "Event") => add::<core::Event>(g),
        ("apps", "v1", "Deployment") => add::<apps::Deployment>(g),
        ("apps", "v1", "StatefulSet") => add::<apps::StatefulSet>(g),
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>(g),
        ("batch", "v1", "Job") => add::<batch::Job>(g),
        ("batch", "v1", "CronJob") => add::<batch::CronJob>(g),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            add::<autoscaling::HorizontalPodAutoscaler>(g)
        }
        ("autoscaling", "v1", "Scale") => add::<autoscaling_v1::Scale>(g),
        ("policy", "v1", "PodDisruptionBudget") => add::<policy::PodDisruptionBudget>(g),
        ("rbac.authorization.k8s.io", "v1", "Role") => add::<rbac::Role>(g),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => add::<rbac::RoleBinding>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => add::<rbac::ClusterRole>(g),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            add::<rbac::ClusterRoleBinding>(g)
        }
        ("networking.k8s.io", "v1", "Ingress") => add::<networking::Ingress>(g),
        ("coordination.k8s.io", "v1", "Lease") => add::<coordination::Lease>(g),
        ("events.k8s.io", "v1", "Event") => add::<events::Event>(g),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            add::<apiextensions::CustomResourceDefinition>(g)
        }
        _ => None,
    }
}

/// Adds a custom resource's schema, named as kube-apiserver names it (`dev.feast.v1.FeatureStore`:
/// the group reversed), with the standard `apiVersion`, `kind` and ObjectMeta `metadata`.
fn custom_schema(
    generator: &mut SchemaGenerator,
    t: &ResourceType,
    props: Option<&apiextensions::JSONSchemaProps>,
) -> Option<String> {
    let mut schema = props
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let meta_ref = generator.subschema_for::<ObjectMeta>();
    let object = schema.as_object_mut()?;
    let properties = object
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    properties.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
    properties.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
    properties.insert(
        "metadata".into(),
        json!({"allOf": [meta_ref], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
    );
    let reversed: Vec<&str> = t.group.split('.').rev().collect();
    let name = format!("{}.{}.{}", reversed.join("."), t.version, t.kind);
    generator.definitions_mut().insert(name.clone(), schema);
    Some(name)
}
