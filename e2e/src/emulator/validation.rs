//! Built-in validation: object metadata and each kind's fields ([`super::rules`]), non-negative
//! replicas of workloads, and the immutable fields fieldwise's apply engine must respect (selectors,
//! Job templates, StatefulSet spec outside its mutable fields, Service clusterIP, PVC spec).
//! Messages follow kube-apiserver's wording; where it prints a Go value (`%#v`), the emulator
//! prints JSON instead.

use serde_json::Value;

use super::errors::Cause;
use super::meta;
use super::registry::ResourceType;

/// StatefulSet spec fields an update may change (apps/validation, 1.32).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Errors for a create (`old` None) or update of a built-in object.
pub fn builtin(rt: &ResourceType, new: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = super::rules::metadata(rt, new);
    causes.extend(replicas(rt, new));
    causes.extend(super::rules::spec(rt, new));
    if let Some(old) = old {
        causes.extend(immutable(rt, new, old));
    }
    // kube-apiserver reports identical errors once (a Job's two job-name labels, for example).
    let mut seen = std::collections::HashSet::new();
    causes.retain(|c| seen.insert((c.field.clone(), c.message.clone())));
    causes
}

fn replicas(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    if !matches!(
        rt.kind.as_str(),
        "Deployment" | "StatefulSet" | "ReplicaSet"
    ) {
        return Vec::new();
    }
    match meta::get_path(obj, ".spec.replicas").and_then(Value::as_i64) {
        Some(r) if r < 0 => vec![Cause::new(
            "FieldValueInvalid",
            "spec.replicas",
            format!("Invalid value: {r}: must be greater than or equal to 0"),
        )],
        _ => Vec::new(),
    }
}

fn immutable_field(new: &Value, old: &Value, path: &str) -> Option<Cause> {
    let (n, o) = (meta::get_path(new, path), meta::get_path(old, path));
    if n == o {
        return None;
    }
    let shown = n.map(Value::to_string).unwrap_or_else(|| "null".into());
    let field = path.trim_start_matches('.');
    Some(Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {shown}: field is immutable"),
    ))
}

fn immutable(rt: &ResourceType, new: &Value, old: &Value) -> Vec<Cause> {
    let fields: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet") => &[".spec.selector"],
        ("batch", "Job") => &[".spec.selector", ".spec.template", ".spec.completionMode"],
        ("", "Service") => &[".spec.clusterIP"],
        ("apps", "StatefulSet") => return stateful_set(new, old),
        ("", "PersistentVolumeClaim") => return pvc(new, old),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            return role_ref(new, old);
        }
        _ => &[],
    };
    fields
        .iter()
        .filter_map(|p| immutable_field(new, old, p))
        .collect()
}

/// rbac/validation's `ValidateRoleBindingUpdate` (and the ClusterRoleBinding one).
fn role_ref(new: &Value, old: &Value) -> Vec<Cause> {
    let (n, o) = (new.get("roleRef"), old.get("roleRef"));
    if n == o {
        return Vec::new();
    }
    let shown = n.map(Value::to_string).unwrap_or_else(|| "null".into());
    vec![Cause::new(
        "FieldValueInvalid",
        "roleRef",
        format!("Invalid value: {shown}: cannot change roleRef"),
    )]
}

fn spec_without(obj: &Value, keep_out: &[&str]) -> Value {
    let mut spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(m) = spec.as_object_mut() {
        m.retain(|k, _| !keep_out.contains(&k.as_str()));
    }
    spec
}

fn stateful_set(new: &Value, old: &Value) -> Vec<Cause> {
    if spec_without(new, STATEFULSET_MUTABLE) == spec_without(old, STATEFULSET_MUTABLE) {
        return Vec::new();
    }
    vec![Cause::new(
        "FieldValueForbidden",
        "spec",
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
         'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
    )]
}

fn pvc(new: &Value, old: &Value) -> Vec<Cause> {
    let strip = |v: &Value| {
        let mut spec = spec_without(v, &["volumeAttributesClassName"]);
        if let Some(r) = spec.get_mut("resources").and_then(Value::as_object_mut) {
            r.remove("requests");
        }
        spec
    };
    if strip(new) == strip(old) {
        return Vec::new();
    }
    vec![Cause::new(
        "FieldValueForbidden",
        "spec",
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::registry::Registry;
    use serde_json::json;

    fn rt(group: &str, version: &str, plural: &str) -> std::sync::Arc<ResourceType> {
        Registry::default().find(group, version, plural).unwrap()
    }

    #[test]
    fn a_bindings_role_ref_is_immutable() {
        for plural in ["rolebindings", "clusterrolebindings"] {
            let b = rt("rbac.authorization.k8s.io", "v1", plural);
            let binding = |kind: &str| {
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "r"},
                    "subjects": []})
            };
            let errs = immutable(&b, &binding("ClusterRole"), &binding("Role"));
            assert_eq!(errs.len(), 1, "{plural}");
            assert_eq!(errs[0].field, "roleRef");
            assert!(
                errs[0].message.ends_with(": cannot change roleRef"),
                "{}",
                errs[0].message
            );
            let relabelled =
                json!({"metadata": {"labels": {"a": "b"}}, "roleRef": binding("Role")["roleRef"]});
            assert!(immutable(&b, &relabelled, &binding("Role")).is_empty());
        }
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let d = rt("apps", "v1", "deployments");
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}, "replicas": 1}});
        let errs = immutable(&d, &new, &old);
        assert_eq!(
            errs[0].summary(),
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"b\"}}: field is immutable"
        );
        let scaled = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 5}});
        assert!(immutable(&d, &scaled, &old).is_empty());
    }

    #[test]
    fn statefulset_spec_outside_mutable_fields() {
        let s = rt("apps", "v1", "statefulsets");
        let old = json!({"spec": {"serviceName": "a", "replicas": 1}});
        assert!(
            immutable(
                &s,
                &json!({"spec": {"serviceName": "a", "replicas": 3}}),
                &old
            )
            .is_empty()
        );
        let errs = immutable(
            &s,
            &json!({"spec": {"serviceName": "b", "replicas": 1}}),
            &old,
        );
        assert_eq!(errs[0].field, "spec");
        assert!(
            errs[0]
                .message
                .starts_with("Forbidden: updates to statefulset spec")
        );
    }
}
