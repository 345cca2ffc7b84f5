//! Schemas of the built-in types the emulator serves, derived from k8s-openapi's JSON schemas with
//! the list types, list-map keys, key defaults and atomic structs of the Kubernetes API markers
//! (spec §1.5) laid over them: the generated schemas carry no such markers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, events, networking, policy, rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use super::schema::{
    Atom, ListSchema, ListType, MapSchema, ScalarType, StructField, TypeRef, TypeSchema,
    UNTYPED_ATOMIC, UNTYPED_DEDUCED,
};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// (group, version, kind) → definition name of every served built-in.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Namespace", "io.k8s.api.core.v1.Namespace"),
    ("", "v1", "ConfigMap", "io.k8s.api.core.v1.ConfigMap"),
    ("", "v1", "Secret", "io.k8s.api.core.v1.Secret"),
    ("", "v1", "Service", "io.k8s.api.core.v1.Service"),
    (
        "",
        "v1",
        "ServiceAccount",
        "io.k8s.api.core.v1.ServiceAccount",
    ),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "io.k8s.api.core.v1.PersistentVolumeClaim",
    ),
    ("", "v1", "Pod", "io.k8s.api.core.v1.Pod"),
    ("", "v1", "Event", "io.k8s.api.core.v1.Event"),
    ("events.k8s.io", "v1", "Event", "io.k8s.api.events.v1.Event"),
    ("apps", "v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
    (
        "apps",
        "v1",
        "StatefulSet",
        "io.k8s.api.apps.v1.StatefulSet",
    ),
    ("apps", "v1", "ReplicaSet", "io.k8s.api.apps.v1.ReplicaSet"),
    ("batch", "v1", "Job", "io.k8s.api.batch.v1.Job"),
    ("batch", "v1", "CronJob", "io.k8s.api.batch.v1.CronJob"),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    ),
    (
        "autoscaling",
        "v1",
        "Scale",
        "io.k8s.api.autoscaling.v1.Scale",
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "io.k8s.api.policy.v1.PodDisruptionBudget",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "io.k8s.api.rbac.v1.Role",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "io.k8s.api.rbac.v1.RoleBinding",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "io.k8s.api.rbac.v1.ClusterRole",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "io.k8s.api.networking.v1.Ingress",
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "io.k8s.api.coordination.v1.Lease",
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    ),
];

/// Keyed lists: (type, field, keys).
const LIST_MAPS: &[(&str, &str, &[&str])] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", &["name"]),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", &["name"]),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        &["name"],
    ),
    ("io.k8s.api.core.v1.PodSpec", "volumes", &["name"]),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", &["name"]),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", &["ip"]),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", &["name"]),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", &["name"]),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        &["containerPort", "protocol"],
    ),
    ("io.k8s.api.core.v1.Container", "env", &["name"]),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        &["mountPath"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        &["devicePath"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        &["containerPort", "protocol"],
    ),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", &["name"]),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        &["mountPath"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        &["devicePath"],
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        "claims",
        &["name"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        &["port", "protocol"],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        &["uid"],
    ),
    ("io.k8s.api.core.v1.PodStatus", "conditions", &["type"]),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", &["ip"]),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", &["ip"]),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", &["name"]),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        &["type"],
    ),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", &["type"]),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        &["type"],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        "conditions",
        &["type"],
    ),
];

/// Lists of scalars owned per element: (type, field).
const SETS: &[(&str, &str)] = &[(
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "finalizers",
)];

/// Structs and maps owned as one leaf (`+structType=atomic`, `+mapType=atomic`).
const ATOMIC_TYPES: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.core.v1.TypedObjectReference",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.rbac.v1.RoleRef",
];

/// Free-key maps owned as one leaf: (type, field).
const ATOMIC_MAP_FIELDS: &[(&str, &str)] = &[("io.k8s.api.core.v1.ServiceSpec", "selector")];

/// Defaults of key fields, used to key items that omit them: (type, field, default).
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

fn definitions() -> &'static BTreeMap<String, Atom> {
    static DEFS: OnceLock<BTreeMap<String, Atom>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut generator = SchemaGenerator::default();
        register_all(&mut generator);
        generator
            .definitions()
            .iter()
            .map(|(name, schema)| (name.clone(), definition_to_atom(name, schema)))
            .collect()
    })
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

fn register_all(g: &mut SchemaGenerator) {
    register::<core::v1::Namespace>(g);
    register::<core::v1::ConfigMap>(g);
    register::<core::v1::Secret>(g);
    register::<core::v1::Service>(g);
    register::<core::v1::ServiceAccount>(g);
    register::<core::v1::PersistentVolumeClaim>(g);
    register::<core::v1::Pod>(g);
    register::<core::v1::Event>(g);
    register::<events::v1::Event>(g);
    register::<apps::v1::Deployment>(g);
    register::<apps::v1::StatefulSet>(g);
    register::<apps::v1::ReplicaSet>(g);
    register::<batch::v1::Job>(g);
    register::<batch::v1::CronJob>(g);
    register::<autoscaling::v2::HorizontalPodAutoscaler>(g);
    register::<autoscaling::v1::Scale>(g);
    register::<policy::v1::PodDisruptionBudget>(g);
    register::<rbac::v1::Role>(g);
    register::<rbac::v1::RoleBinding>(g);
    register::<rbac::v1::ClusterRole>(g);
    register::<rbac::v1::ClusterRoleBinding>(g);
    register::<networking::v1::Ingress>(g);
    register::<coordination::v1::Lease>(g);
    register::<CustomResourceDefinition>(g);
}

fn ref_name(reference: &str) -> String {
    reference
        .rsplit('/')
        .next()
        .unwrap_or(reference)
        .replace("~1", "/")
        .replace("~0", "~")
}

fn definition_to_atom(name: &str, schema: &Value) -> Atom {
    let mut atom = json_to_atom(name, schema);
    if ATOMIC_TYPES.contains(&name)
        && let Some(map) = atom.map.as_mut()
    {
        map.atomic = true;
    }
    atom
}

fn json_to_type(owner: &str, field: &str, schema: &Value) -> TypeRef {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return TypeRef::Named(ref_name(reference));
    }
    let mut atom = json_to_atom(owner, schema);
    if let Some(list) = atom.list.as_mut() {
        if let Some((_, _, keys)) = LIST_MAPS
            .iter()
            .find(|(t, f, _)| *t == owner && *f == field)
        {
            list.list_type = ListType::Map {
                keys: keys.iter().map(|k| (*k).to_string()).collect(),
            };
        } else if SETS.iter().any(|(t, f)| *t == owner && *f == field) {
            list.list_type = ListType::Set;
        }
    }
    if ATOMIC_MAP_FIELDS
        .iter()
        .any(|(t, f)| *t == owner && *f == field)
        && let Some(map) = atom.map.as_mut()
    {
        map.atomic = true;
    }
    TypeRef::Inline(Box::new(atom))
}

fn json_to_atom(owner: &str, schema: &Value) -> Atom {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Atom {
            scalar: Some(ScalarType::Untyped),
            ..Atom::default()
        };
    }
    let kind = match schema.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or(""),
        _ => "",
    };
    match kind {
        "object" => object_atom(owner, schema),
        "array" => {
            let element = match schema.get("items") {
                Some(items) => json_to_type(owner, "", items),
                None => TypeRef::Named(UNTYPED_ATOMIC.into()),
            };
            Atom {
                list: Some(ListSchema {
                    element_type: element,
                    list_type: ListType::Atomic,
                }),
                ..Atom::default()
            }
        }
        "string" => Atom {
            scalar: Some(ScalarType::String),
            ..Atom::default()
        },
        "integer" | "number" => Atom {
            scalar: Some(ScalarType::Numeric),
            ..Atom::default()
        },
        "boolean" => Atom {
            scalar: Some(ScalarType::Boolean),
            ..Atom::default()
        },
        _ => untyped(),
    }
}

fn untyped() -> Atom {
    Atom {
        scalar: Some(ScalarType::Untyped),
        list: Some(ListSchema {
            element_type: TypeRef::Named(UNTYPED_ATOMIC.into()),
            list_type: ListType::Atomic,
        }),
        map: Some(MapSchema {
            fields: Vec::new(),
            element_type: Some(TypeRef::Named(UNTYPED_DEDUCED.into())),
            atomic: false,
        }),
    }
}

fn object_atom(owner: &str, schema: &Value) -> Atom {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|v| v.is_object());
    if properties.is_none() && additional.is_none() {
        // RawExtension, JSON, FieldsV1: schemaless.
        return untyped();
    }
    let fields = properties
        .into_iter()
        .flatten()
        .map(|(name, child)| StructField {
            name: name.clone(),
            type_ref: json_to_type(owner, name, child),
            default: KEY_DEFAULTS
                .iter()
                .find(|(t, f, _)| *t == owner && f == name)
                .map(|(_, _, d)| json!(d)),
        })
        .collect();
    let element_type = additional.map(|a| json_to_type(owner, "", a));
    Atom {
        map: Some(MapSchema {
            fields,
            element_type,
            atomic: false,
        }),
        ..Atom::default()
    }
}

/// The ObjectMeta type, inline, for custom resources and embedded resources.
pub(crate) fn object_meta_ref() -> TypeRef {
    match definitions().get(OBJECT_META) {
        Some(atom) => TypeRef::Inline(Box::new(inline_named(atom, 0))),
        None => TypeRef::Named(UNTYPED_DEDUCED.into()),
    }
}

/// Replaces named references by their definitions (ObjectMeta is not recursive, a small depth
/// bound keeps this safe anyway).
fn inline_named(atom: &Atom, depth: usize) -> Atom {
    let inline = |tref: &TypeRef| -> TypeRef {
        match tref {
            TypeRef::Named(name) if depth < 8 && !name.starts_with("__") => {
                match definitions().get(name) {
                    Some(def) => TypeRef::Inline(Box::new(inline_named(def, depth + 1))),
                    None => tref.clone(),
                }
            }
            TypeRef::Inline(inner) => TypeRef::Inline(Box::new(inline_named(inner, depth + 1))),
            other => other.clone(),
        }
    };
    Atom {
        scalar: atom.scalar,
        list: atom.list.as_ref().map(|l| ListSchema {
            element_type: inline(&l.element_type),
            list_type: l.list_type.clone(),
        }),
        map: atom.map.as_ref().map(|m| MapSchema {
            fields: m
                .fields
                .iter()
                .map(|f| StructField {
                    name: f.name.clone(),
                    type_ref: inline(&f.type_ref),
                    default: f.default.clone(),
                })
                .collect(),
            element_type: m.element_type.as_ref().map(inline),
            atomic: m.atomic,
        }),
    }
}

impl TypeSchema {
    /// The schema of a built-in type the emulator serves (group `""` for core), or `None`.
    pub fn builtin(group: &str, version: &str, kind: &str) -> Option<TypeSchema> {
        let (_, _, _, name) = KINDS
            .iter()
            .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)?;
        let defs = definitions();
        defs.get(*name)?;
        let mut schema = TypeSchema::new(TypeRef::Named((*name).to_string()), defs.clone());
        schema.empty_object = zero_object(kind, group);
        Some(schema)
    }

    /// (group, version, kind) of every built-in [`TypeSchema::builtin`] knows.
    pub fn builtin_kinds() -> Vec<(&'static str, &'static str, &'static str)> {
        KINDS.iter().map(|(g, v, k, _)| (*g, *v, *k)).collect()
    }
}

/// The Go zero value of a served kind as the apiserver's converter renders it (only the parts that
/// change what a create owns: non-pointer structs and non-omitempty nil lists).
fn zero_object(kind: &str, group: &str) -> Value {
    let pod_template = json!({ "metadata": {}, "spec": { "containers": null } });
    match (group, kind) {
        ("apps", "Deployment") => json!({
            "metadata": {},
            "spec": { "selector": null, "template": pod_template, "strategy": {} },
            "status": {}
        }),
        ("apps", "StatefulSet") => json!({
            "metadata": {},
            "spec": { "selector": null, "template": pod_template, "updateStrategy": {} },
            "status": { "replicas": 0, "availableReplicas": 0 }
        }),
        ("apps", "ReplicaSet") => json!({
            "metadata": {},
            "spec": { "selector": null, "template": pod_template },
            "status": { "replicas": 0 }
        }),
        ("batch", "Job") => {
            json!({ "metadata": {}, "spec": { "template": pod_template }, "status": {} })
        }
        ("batch", "CronJob") => json!({
            "metadata": {},
            "spec": { "jobTemplate": { "metadata": {}, "spec": { "template": pod_template } } },
            "status": {}
        }),
        ("", "Pod") => json!({ "metadata": {}, "spec": { "containers": null }, "status": {} }),
        ("", "Service") | ("networking.k8s.io", "Ingress") => {
            json!({ "metadata": {}, "spec": {}, "status": { "loadBalancer": {} } })
        }
        ("", "Namespace") => json!({ "metadata": {}, "spec": {}, "status": {} }),
        ("", "PersistentVolumeClaim") => {
            json!({ "metadata": {}, "spec": { "resources": {} }, "status": {} })
        }
        ("", "Event") => json!({
            "metadata": {}, "involvedObject": {}, "source": {},
            "firstTimestamp": null, "lastTimestamp": null, "eventTime": null
        }),
        ("events.k8s.io", "Event") => json!({
            "metadata": {}, "eventTime": null, "regarding": {}, "deprecatedSource": {},
            "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            json!({ "metadata": {}, "spec": { "scaleTargetRef": {} }, "status": {} })
        }
        ("autoscaling", "Scale") => {
            json!({ "metadata": {}, "spec": {}, "status": { "replicas": 0 } })
        }
        ("policy", "PodDisruptionBudget") => json!({
            "metadata": {}, "spec": {},
            "status": { "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0 }
        }),
        (_, "Role" | "ClusterRole") => json!({ "metadata": {}, "rules": null }),
        (_, "RoleBinding" | "ClusterRoleBinding") => json!({ "metadata": {}, "roleRef": {} }),
        ("coordination.k8s.io", "Lease") => json!({ "metadata": {}, "spec": {} }),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => json!({
            "metadata": {},
            "spec": { "names": {}, "versions": null },
            "status": { "acceptedNames": {}, "storedVersions": null }
        }),
        _ => json!({ "metadata": {} }),
    }
}
