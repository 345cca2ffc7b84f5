//! Fields the API server refuses to change. Applying a change to one of them would fail with
//! 422 on every reconcile; instead each kind says, per field, what the engine does about a change
//! ([`ImmutableRule`], kept on the [`crate::KindSpec`]): recreate the object where that loses
//! neither data nor availability, or stop with an error naming the field and what to do.

use std::borrow::Cow;

use serde_json::Value;

/// What to do about a changed immutable field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// Delete (uid precondition, background propagation) and apply again: for objects whose
    /// dependents may go with them (a Job's pods).
    Recreate,
    /// Delete with orphan propagation and apply again: the dependents (a StatefulSet's pods and
    /// claims) keep running and the new object, with the same selector, adopts them.
    RecreateOrphaningDependents,
    /// Do not apply; report the error with this hint.
    Refuse(Cow<'static, str>),
}

/// Which fields a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImmutableField {
    /// One field path, compared as a subset of the live value (server defaults are ignored).
    Path(&'static [&'static str]),
    /// A PersistentVolumeClaim's `spec`: immutable but for growing `resources.requests.storage`.
    ClaimSpec,
}

/// One immutable field of a kind and the remedy for a change to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutableRule {
    pub field: ImmutableField,
    pub remedy: Remedy,
}

impl ImmutableRule {
    /// A rule for one field path.
    pub fn path(path: &'static [&'static str], remedy: Remedy) -> Self {
        Self {
            field: ImmutableField::Path(path),
            remedy,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub field: String,
    pub remedy: Remedy,
}

const SELECTOR_HINT: &str =
    "a workload's selector cannot change: delete the workload (its pods go with it) to change it";
const CLAIM_HINT: &str = "a PersistentVolumeClaim can only grow resources.requests.storage; migrate the data to a new claim";

fn refuse(hint: &'static str) -> Remedy {
    Remedy::Refuse(Cow::Borrowed(hint))
}

/// The immutable fields of the built-in kinds the engine knows, with their default remedies; a
/// controller may replace a remedy on its [`crate::KindSpec`].
pub(crate) fn default_rules(group: &str, kind: &str) -> Vec<ImmutableRule> {
    let rule = ImmutableRule::path;
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            vec![rule(&["spec", "selector"], refuse(SELECTOR_HINT))]
        }
        // The pods and their claims survive an orphaning delete and are adopted by the new
        // StatefulSet (same name, same selector): claim templates, service name and pod management
        // change without downtime. A new selector would leave the old pods orphaned for good.
        ("apps", "StatefulSet") => vec![
            rule(&["spec", "selector"], refuse(SELECTOR_HINT)),
            rule(
                &["spec", "volumeClaimTemplates"],
                Remedy::RecreateOrphaningDependents,
            ),
            rule(
                &["spec", "serviceName"],
                Remedy::RecreateOrphaningDependents,
            ),
            rule(
                &["spec", "podManagementPolicy"],
                Remedy::RecreateOrphaningDependents,
            ),
        ],
        ("batch", "Job") => vec![
            rule(&["spec", "template"], Remedy::Recreate),
            rule(&["spec", "selector"], Remedy::Recreate),
            rule(&["spec", "completionMode"], Remedy::Recreate),
        ],
        // Only a controller's own graph changes a Service's clusterIP (a runner re-typed as a
        // StatefulSet gets a headless Service): a new Service is what it asks for, and clients
        // reach it again through its DNS name.
        ("", "Service") => vec![rule(&["spec", "clusterIP"], Remedy::Recreate)],
        // The API server refuses a new roleRef ("cannot change roleRef"). A binding holds no data,
        // so it is deleted and created again, as `kubectl auth reconcile` does; its subjects lack the
        // grant only between the two requests.
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            vec![rule(&["roleRef"], Remedy::Recreate)]
        }
        ("", "PersistentVolumeClaim") => vec![ImmutableRule {
            field: ImmutableField::ClaimSpec,
            remedy: refuse(CLAIM_HINT),
        }],
        _ => Vec::new(),
    }
}

/// The first rule whose field `desired` (the apply body) changes in `live`.
pub(crate) fn violation(
    rules: &[ImmutableRule],
    desired: &Value,
    live: &Value,
) -> Option<Violation> {
    rules.iter().find_map(|rule| {
        let field = match &rule.field {
            ImmutableField::Path(path) => {
                let wanted = lookup(desired, path)?;
                let current = lookup(live, path)?;
                (!is_subset(wanted, current)).then(|| path.join("."))?
            }
            ImmutableField::ClaimSpec => claim_violation(desired, live)?,
        };
        Some(Violation {
            field,
            remedy: rule.remedy.clone(),
        })
    })
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Whether every value in `desired` is present and equal in `live`: what the server keeps
/// after defaulting. Lists must have the same length and match item by item.
fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| match l.get(k) {
            Some(lv) => is_subset(v, lv),
            None => v.is_null(),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (d, l) => d == l,
    }
}

/// The field of a PVC's spec a desired body changes, other than growing
/// `resources.requests.storage`. Losing the claim loses data, so nothing is ever recreated.
fn claim_violation(desired: &Value, live: &Value) -> Option<String> {
    let (Some(wanted), Some(current)) = (desired.get("spec"), live.get("spec")) else {
        return None;
    };
    const STORAGE: &str = "/resources/requests/storage";
    if let (Some(w), Some(c)) = (wanted.pointer(STORAGE), current.pointer(STORAGE)) {
        match (
            w.as_str().and_then(quantity_value),
            c.as_str().and_then(quantity_value),
        ) {
            (Some(w), Some(c)) if w < c => {
                return Some("spec.resources.requests.storage (shrinking)".into());
            }
            (Some(_), Some(_)) => {}
            _ if w != c => return Some("spec.resources.requests.storage".into()),
            _ => {}
        }
    }
    let mut wanted = wanted.clone();
    if let Some(requests) = wanted
        .pointer_mut("/resources/requests")
        .and_then(Value::as_object_mut)
    {
        requests.remove("storage");
    }
    let Value::Object(fields) = &wanted else {
        return None;
    };
    fields
        .iter()
        .find(|(k, v)| !current.get(k.as_str()).is_some_and(|c| is_subset(v, c)))
        .map(|(k, _)| format!("spec.{k}"))
}

/// Whether the rules are a claim's (only they make [`without_outgrown_storage`] do anything).
pub(crate) fn has_claim_rule(rules: &[ImmutableRule]) -> bool {
    rules.iter().any(|r| r.field == ImmutableField::ClaimSpec)
}

/// A claim grown beyond the body's size by someone else (by hand, the only way to grow a claim
/// a controller made from an immutable spec): the body without `resources.requests.storage`, so
/// the apply leaves their size alone instead of trying to shrink it. `None` when the body stands:
/// no claim rule, no growth, or the size is still ours (then a smaller body is a shrink the
/// controller's own spec asks for, refused as such).
pub(crate) fn without_outgrown_storage(
    rules: &[ImmutableRule],
    desired: &Value,
    live: &Value,
    ours: Option<&serde_json::Map<String, Value>>,
) -> Option<Value> {
    if !has_claim_rule(rules) {
        return None;
    }
    const STORAGE: [&str; 4] = ["spec", "resources", "requests", "storage"];
    let size = |v: &Value| lookup(v, &STORAGE)?.as_str().and_then(quantity_value);
    let outgrown = size(desired)? < size(live)?;
    if !outgrown || ours.is_some_and(|fields| crate::fields::owns_path(fields, &STORAGE)) {
        return None;
    }
    let mut body = desired.clone();
    let requests = body
        .pointer_mut("/spec/resources/requests")?
        .as_object_mut()?;
    requests.remove("storage");
    // Empty maps left behind would be applied as fields we own; drop them too.
    if requests.is_empty() {
        let resources = body.pointer_mut("/spec/resources")?.as_object_mut()?;
        resources.remove("requests");
        if resources.is_empty() {
            body.pointer_mut("/spec")?
                .as_object_mut()?
                .remove("resources");
        }
    }
    Some(body)
}

/// The numeric value of a Kubernetes quantity (`10Gi`, `500M`, `1e3`, `250m`).
fn quantity_value(q: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let q = q.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    q.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bindings_new_role_ref_recreates_it() {
        let role_ref = |kind: &str, name: &str| json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}});
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            let rules = default_rules("rbac.authorization.k8s.io", kind);
            let live = role_ref("Role", "feast-fs-cronjob");
            let v = violation(&rules, &role_ref("ClusterRole", "exec"), &live).expect(kind);
            assert_eq!(v.field, "roleRef");
            assert_eq!(v.remedy, Remedy::Recreate);
            assert_eq!(violation(&rules, &live, &live), None);
        }
    }

    #[test]
    fn deployment_selector_change_is_refused() {
        let live = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
        let same = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 3}});
        assert_eq!(
            violation(&default_rules("apps", "Deployment"), &same, &live),
            None
        );
        let changed = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let v =
            violation(&default_rules("apps", "Deployment"), &changed, &live).expect("violation");
        assert_eq!(v.field, "spec.selector");
        assert!(matches!(v.remedy, Remedy::Refuse(_)));
    }

    #[test]
    fn job_template_change_recreates_and_defaults_are_ignored() {
        let live = json!({"spec": {"template": {"metadata": {"labels": {"job-name": "j", "a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "x:1", "terminationMessagePath": "/dev/termination-log"}],
                     "restartPolicy": "Never"}}}});
        let same = json!({"spec": {"template": {"metadata": {"labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "x:1"}], "restartPolicy": "Never"}}}});
        assert_eq!(
            violation(&default_rules("batch", "Job"), &same, &live),
            None
        );
        let mut changed = same.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        assert_eq!(
            violation(&default_rules("batch", "Job"), &changed, &live).map(|v| v.remedy),
            Some(Remedy::Recreate)
        );
    }

    #[test]
    fn a_claim_grown_by_someone_else_keeps_its_size() {
        let rules = default_rules("", "PersistentVolumeClaim");
        let desired = json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}}}});
        let grown = json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}}}});
        let theirs = json!({"f:spec": {"f:accessModes": {}}});
        let body = without_outgrown_storage(&rules, &desired, &grown, theirs.as_object())
            .expect("the size is left to whoever grew it");
        assert_eq!(body, json!({"spec": {"accessModes": ["ReadWriteOnce"]}}));
        assert_eq!(
            violation(&rules, &body, &grown),
            None,
            "no shrink left to refuse"
        );
        // Still ours: a smaller body is the spec asking to shrink, refused as before.
        let ours = json!({"f:spec": {"f:resources": {"f:requests": {"f:storage": {}}}}});
        assert_eq!(
            without_outgrown_storage(&rules, &desired, &grown, ours.as_object()),
            None
        );
        // Not grown: the body stands (growing it is ours to ask).
        assert_eq!(
            without_outgrown_storage(&rules, &grown, &desired, theirs.as_object()),
            None
        );
        let deployment = default_rules("apps", "Deployment");
        assert_eq!(
            without_outgrown_storage(&deployment, &desired, &grown, None),
            None
        );
    }

    #[test]
    fn pvc_may_only_grow_storage() {
        let live = json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "std", "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}}});
        let grow = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}});
        assert_eq!(
            violation(&default_rules("", "PersistentVolumeClaim"), &grow, &live),
            None
        );
        let shrink = json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}});
        assert!(
            violation(&default_rules("", "PersistentVolumeClaim"), &shrink, &live)
                .expect("shrink")
                .field
                .contains("shrinking")
        );
        let class = json!({"spec": {"storageClassName": "fast"}});
        assert_eq!(
            violation(&default_rules("", "PersistentVolumeClaim"), &class, &live)
                .expect("class")
                .field,
            "spec.storageClassName"
        );
    }

    #[test]
    fn statefulset_claim_templates_recreate_orphaning_pods_but_selectors_are_refused() {
        let rules = default_rules("apps", "StatefulSet");
        let live = json!({"spec": {"selector": {"matchLabels": {"app": "redis"}}, "serviceName": "redis",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]}});
        let bigger = json!({"spec": {"selector": {"matchLabels": {"app": "redis"}}, "serviceName": "redis",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "5Gi"}}}}]}});
        let v = violation(&rules, &bigger, &live).expect("claim templates changed");
        assert_eq!(v.field, "spec.volumeClaimTemplates");
        assert_eq!(v.remedy, Remedy::RecreateOrphaningDependents);
        let selector = json!({"spec": {"selector": {"matchLabels": {"app": "cache"}}}});
        let v = violation(&rules, &selector, &live).expect("selector changed");
        assert_eq!(v.field, "spec.selector");
        assert!(matches!(v.remedy, Remedy::Refuse(_)));
    }

    /// A controller replaces a kind's default remedy on its KindSpec.
    #[test]
    fn a_kind_spec_overrides_the_default_remedy() {
        use k8s_openapi::api::apps::v1::StatefulSet;
        let spec =
            crate::KindSpec::namespaced::<StatefulSet>().with_immutable(ImmutableRule::path(
                &["spec", "volumeClaimTemplates"],
                Remedy::Refuse("resize the claims by hand".into()),
            ));
        let live = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}]}});
        let desired = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "b"}}]}});
        let v = violation(&spec.immutable, &desired, &live).expect("changed");
        assert_eq!(v.remedy, Remedy::Refuse("resize the claims by hand".into()));
        assert_eq!(spec.immutable.len(), 4, "the other rules stay");
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(quantity_value("1Gi"), Some(1073741824.0));
        assert_eq!(quantity_value("1500M"), Some(1.5e9));
        assert_eq!(quantity_value("250m"), Some(0.25));
        assert_eq!(quantity_value("1e3"), Some(1000.0));
        assert_eq!(quantity_value("lots"), None);
    }
}
