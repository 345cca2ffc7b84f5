//! Schema fix-ups for embedded Kubernetes types.
//!
//! k8s-openapi's generated schemas leave out what Kubernetes' own OpenAPI declares through markers:
//! list and map merge types (`x-kubernetes-list-type`, `x-kubernetes-map-type`), the Quantity pattern,
//! a few defaults, and the optional `name` of object references. The Feast CRD (generated from the Go
//! types) carries all of them, and they change how the API server validates, defaults and merges with
//! server-side apply. Each function here restores them for one Kubernetes type, at the paths where a
//! FeatureStore embeds it; `tests/feast_compat.rs` proves the result matches the Feast CRD.

use schemars::Schema;
use serde_json::{Value, json};

/// The pattern Kubernetes declares for `resource.Quantity`.
const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

type Fix = fn(&mut Value);

/// Applies `fix` to the node at `path` below `node`: dot-separated property names, where a trailing
/// `[]` steps into array items and `{}` into map values. Paths that do not exist are left alone (the
/// compatibility test reports any fix-up that failed to land).
fn at(node: &mut Value, path: &str, fix: Fix) {
    let mut current = node;
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (name, suffixes) = split_suffixes(step);
        if !name.is_empty() {
            let Some(next) = unwrap_option(current)
                .get_mut("properties")
                .and_then(|p| p.get_mut(name))
            else {
                return;
            };
            current = next;
        }
        for suffix in suffixes {
            let key = if suffix == "[]" {
                "items"
            } else {
                "additionalProperties"
            };
            let Some(next) = unwrap_option(current).get_mut(key) else {
                return;
            };
            current = next;
        }
    }
    fix(unwrap_option(current));
}

/// `"a[]{}"` → `("a", ["[]", "{}"])`.
fn split_suffixes(step: &str) -> (&str, Vec<&str>) {
    let mut name = step;
    let mut suffixes = Vec::new();
    while let Some(rest) = name.strip_suffix("[]").or_else(|| name.strip_suffix("{}")) {
        suffixes.insert(0, &name[rest.len()..]);
        name = rest;
    }
    (name, suffixes)
}

/// schemars wraps some optional schemas as `anyOf: [schema, {type: null}]`; the schema is the first branch.
fn unwrap_option(node: &mut Value) -> &mut Value {
    let wrapped = node
        .get("anyOf")
        .and_then(Value::as_array)
        .is_some_and(|branches| {
            branches.len() == 2
                && branches[1].get("type") == Some(&json!("null"))
                && node.get("properties").is_none()
        });
    if wrapped {
        // Checked just above: `anyOf` is an array with two branches.
        return &mut node["anyOf"][0];
    }
    node
}

fn set(node: &mut Value, key: &str, value: Value) {
    if let Some(object) = node.as_object_mut() {
        object.insert(key.into(), value);
    }
}

fn atomic_list(node: &mut Value) {
    set(node, "x-kubernetes-list-type", json!("atomic"));
}

fn set_list(node: &mut Value) {
    set(node, "x-kubernetes-list-type", json!("set"));
}

fn atomic_map(node: &mut Value) {
    set(node, "x-kubernetes-map-type", json!("atomic"));
}

fn quantity(node: &mut Value) {
    set(node, "pattern", json!(QUANTITY_PATTERN));
}

/// `core/v1 LocalObjectReference` and the key selectors embedding it: atomic, `name` optional with `""`.
fn object_reference(node: &mut Value) {
    atomic_map(node);
    at(node, "name", |name| set(name, "default", json!("")));
    remove_required(node, "name");
}

fn remove_required(node: &mut Value, field: &str) {
    let Some(object) = node.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|name| name != field);
        if required.is_empty() {
            object.remove("required");
        }
    }
}

fn resource_field_selector(node: &mut Value) {
    atomic_map(node);
    at(node, "divisor", quantity);
}

fn label_selector(node: &mut Value) {
    atomic_map(node);
    at(node, "matchExpressions", atomic_list);
    at(node, "matchExpressions[].values", atomic_list);
}

fn quantity_maps(node: &mut Value) {
    at(node, "limits{}", quantity);
    at(node, "requests{}", quantity);
}

/// `core/v1 EnvVar`.
pub(crate) fn env_var(node: &mut Value) {
    at(node, "valueFrom.configMapKeyRef", object_reference);
    at(node, "valueFrom.secretKeyRef", object_reference);
    at(node, "valueFrom.fieldRef", atomic_map);
    at(node, "valueFrom.resourceFieldRef", resource_field_selector);
    // Kubernetes 1.34+; a no-op while the workspace builds k8s-openapi for an older version.
    at(node, "valueFrom.fileKeyRef", |selector| {
        atomic_map(selector);
        at(selector, "optional", |optional| {
            set(optional, "default", json!(false))
        });
    });
}

/// `core/v1 EnvFromSource`.
pub(crate) fn env_from_source(node: &mut Value) {
    at(node, "configMapRef", object_reference);
    at(node, "secretRef", object_reference);
}

/// `core/v1 ResourceRequirements`.
pub(crate) fn resource_requirements(node: &mut Value) {
    quantity_maps(node);
    at(node, "claims", |claims| {
        set(claims, "x-kubernetes-list-type", json!("map"));
        set(claims, "x-kubernetes-list-map-keys", json!(["name"]));
    });
}

/// `core/v1 VolumeResourceRequirements`.
pub(crate) fn volume_resource_requirements(node: &mut Value) {
    quantity_maps(node);
}

fn downward_api_items(node: &mut Value) {
    atomic_list(node);
    at(node, "[].fieldRef", atomic_map);
    at(node, "[].resourceFieldRef", resource_field_selector);
}

fn config_map_or_secret_projection(node: &mut Value) {
    object_reference(node);
    at(node, "items", atomic_list);
}

/// `core/v1 Volume`.
pub(crate) fn volume(node: &mut Value) {
    let defaults = [
        ("azureDisk.fsType", json!("ext4")),
        ("azureDisk.readOnly", json!(false)),
        ("iscsi.iscsiInterface", json!("default")),
        ("rbd.keyring", json!("/etc/ceph/keyring")),
        ("rbd.pool", json!("rbd")),
        ("rbd.user", json!("admin")),
        ("scaleIO.fsType", json!("xfs")),
        ("scaleIO.storageMode", json!("ThinProvisioned")),
    ];
    for (path, value) in defaults {
        let (parent, field) = path.split_once('.').unwrap_or(("", path));
        if let Some(node) = property(node, parent).and_then(|p| property(p, field)) {
            set(node, "default", value);
        }
    }
    for path in [
        "cephfs.monitors",
        "fc.targetWWNs",
        "fc.wwids",
        "iscsi.portals",
        "rbd.monitors",
        "secret.items",
    ] {
        at(node, path, atomic_list);
    }
    for path in [
        "cephfs.secretRef",
        "cinder.secretRef",
        "csi.nodePublishSecretRef",
        "flexVolume.secretRef",
        "iscsi.secretRef",
        "rbd.secretRef",
        "scaleIO.secretRef",
        "storageos.secretRef",
    ] {
        at(node, path, object_reference);
    }
    at(node, "configMap", config_map_or_secret_projection);
    at(node, "downwardAPI.items", downward_api_items);
    at(node, "emptyDir.sizeLimit", quantity);
    at(node, "ephemeral.volumeClaimTemplate.spec", |spec| {
        at(spec, "accessModes", atomic_list);
        at(spec, "dataSource", atomic_map);
        at(spec, "resources", volume_resource_requirements);
        at(spec, "selector", label_selector);
    });
    at(node, "projected.sources", atomic_list);
    at(node, "projected.sources[]", |source| {
        at(source, "clusterTrustBundle.labelSelector", label_selector);
        at(source, "configMap", config_map_or_secret_projection);
        at(source, "secret", config_map_or_secret_projection);
        at(source, "downwardAPI.items", downward_api_items);
    });
}

fn property<'a>(node: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    unwrap_option(node)
        .get_mut("properties")?
        .get_mut(name)
        .map(unwrap_option)
}

fn node_selector_term(node: &mut Value) {
    atomic_map(node);
    for list in [
        "matchExpressions",
        "matchExpressions[].values",
        "matchFields",
        "matchFields[].values",
    ] {
        at(node, list, atomic_list);
    }
}

fn pod_affinity_term(node: &mut Value) {
    at(node, "labelSelector", label_selector);
    at(node, "namespaceSelector", label_selector);
    for list in ["namespaces", "matchLabelKeys", "mismatchLabelKeys"] {
        at(node, list, atomic_list);
    }
}

fn pod_affinity(node: &mut Value) {
    at(
        node,
        "preferredDuringSchedulingIgnoredDuringExecution",
        atomic_list,
    );
    at(
        node,
        "preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm",
        pod_affinity_term,
    );
    at(
        node,
        "requiredDuringSchedulingIgnoredDuringExecution",
        atomic_list,
    );
    at(
        node,
        "requiredDuringSchedulingIgnoredDuringExecution[]",
        pod_affinity_term,
    );
}

/// `core/v1 Affinity`.
pub(crate) fn affinity(node: &mut Value) {
    at(
        node,
        "nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",
        atomic_list,
    );
    at(
        node,
        "nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].preference",
        node_selector_term,
    );
    at(
        node,
        "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
        atomic_map,
    );
    at(
        node,
        "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
        atomic_list,
    );
    at(
        node,
        "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[]",
        node_selector_term,
    );
    at(node, "podAffinity", pod_affinity);
    at(node, "podAntiAffinity", pod_affinity);
}

/// `core/v1 TopologySpreadConstraint`.
pub(crate) fn topology_spread_constraint(node: &mut Value) {
    at(node, "labelSelector", label_selector);
    at(node, "matchLabelKeys", atomic_list);
}

/// `core/v1 PodSecurityContext`.
pub(crate) fn pod_security_context(node: &mut Value) {
    at(node, "supplementalGroups", atomic_list);
    at(node, "sysctls", atomic_list);
}

/// `autoscaling/v2 MetricSpec`.
pub(crate) fn metric_spec(node: &mut Value) {
    for source in [
        "containerResource",
        "external",
        "object",
        "pods",
        "resource",
    ] {
        at(node, &format!("{source}.target.averageValue"), quantity);
        at(node, &format!("{source}.target.value"), quantity);
    }
    for source in ["external", "object", "pods"] {
        at(node, &format!("{source}.metric.selector"), label_selector);
    }
}

/// `autoscaling/v2 HorizontalPodAutoscalerBehavior`.
pub(crate) fn hpa_behavior(node: &mut Value) {
    for direction in ["scaleDown", "scaleUp"] {
        at(node, &format!("{direction}.policies"), atomic_list);
        at(node, &format!("{direction}.tolerance"), quantity);
    }
}

/// `batch/v1 PodFailurePolicy`.
pub(crate) fn pod_failure_policy(node: &mut Value) {
    at(node, "rules", atomic_list);
    at(node, "rules[].onExitCodes.values", set_list);
    at(node, "rules[].onPodConditions", atomic_list);
    // Kubernetes 1.34 made `status` optional (it defaults to True); k8s-openapi still marks it required.
    at(node, "rules[].onPodConditions[]", |pattern| {
        remove_required(pattern, "status")
    });
}

/// Applies `fix` at `path` of a struct's schema; the building block of the container transforms below.
pub(crate) fn fix_schema(schema: &mut Schema, fixes: &[(&str, Fix)]) {
    let mut value = std::mem::take(schema).to_value();
    for (path, fix) in fixes {
        at(&mut value, path, *fix);
    }
    // The value came from a schema and only gained keywords, so it is still an object schema.
    *schema = Schema::try_from(value).unwrap_or_default();
}

/// Container transform of [`super::ContainerConfigs`] and [`super::GitCloneOptions`].
pub(crate) fn container(schema: &mut Schema) {
    fix_schema(
        schema,
        &[
            ("env[]", env_var),
            ("envFrom[]", env_from_source),
            ("resources", resource_requirements),
        ],
    );
}

/// Container transform of [`super::FeatureStoreServices`].
pub(crate) fn services(schema: &mut Schema) {
    fix_schema(
        schema,
        &[
            ("volumes[]", volume),
            ("affinity", affinity),
            ("topologySpreadConstraints[]", topology_spread_constraint),
            ("securityContext", pod_security_context),
        ],
    );
}

/// Container transform of [`super::AutoscalingConfig`].
pub(crate) fn autoscaling(schema: &mut Schema) {
    fix_schema(
        schema,
        &[("metrics[]", metric_spec), ("behavior", hpa_behavior)],
    );
}

/// Container transform of [`super::JobSpec`].
pub(crate) fn job_spec(schema: &mut Schema) {
    fix_schema(schema, &[("podFailurePolicy", pod_failure_policy)]);
}

/// Container transform of [`super::PvcCreate`].
pub(crate) fn pvc_create(schema: &mut Schema) {
    fix_schema(schema, &[("resources", volume_resource_requirements)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_steps_through_properties_items_maps_and_option_wrappers() {
        let mut schema = json!({"properties": {"a": {"anyOf": [
            {"type": "array", "items": {"properties": {"b": {"type": "object", "additionalProperties": {"type": "string"}}}}},
            {"type": "null"}
        ]}}});
        at(&mut schema, "a[].b{}", quantity);
        assert_eq!(
            schema["properties"]["a"]["anyOf"][0]["items"]["properties"]["b"]["additionalProperties"]
                ["pattern"],
            QUANTITY_PATTERN
        );
    }

    #[test]
    fn object_reference_makes_name_optional_with_empty_default() {
        let mut schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
        object_reference(&mut schema);
        assert_eq!(
            schema,
            json!({"type": "object", "properties": {"name": {"type": "string", "default": ""}}, "x-kubernetes-map-type": "atomic"})
        );
    }
}
