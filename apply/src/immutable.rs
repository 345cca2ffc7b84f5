//! Fields the API server refuses to change. Applying a change to one of them would fail with
//! 422 on every reconcile; instead the engine recreates the object where that loses neither data
//! nor availability (Jobs), and otherwise stops with an error naming the field.

use serde_json::Value;

/// What to do about a changed immutable field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remedy {
    /// Delete (uid precondition) and apply again.
    Recreate,
    /// Do not apply; report the error with a hint.
    Refuse(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub field: String,
    pub remedy: Remedy,
}

const RENAME_HINT: &str = "delete the object (or give it a new name) to change it";

/// `(group, kind, field path, remedy)`.
const RULES: &[(&str, &str, &[&str], Remedy)] = &[
    (
        "apps",
        "Deployment",
        &["spec", "selector"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "ReplicaSet",
        &["spec", "selector"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "DaemonSet",
        &["spec", "selector"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "StatefulSet",
        &["spec", "selector"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "StatefulSet",
        &["spec", "serviceName"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "StatefulSet",
        &["spec", "volumeClaimTemplates"],
        Remedy::Refuse(RENAME_HINT),
    ),
    (
        "apps",
        "StatefulSet",
        &["spec", "podManagementPolicy"],
        Remedy::Refuse(RENAME_HINT),
    ),
    ("batch", "Job", &["spec", "template"], Remedy::Recreate),
    ("batch", "Job", &["spec", "selector"], Remedy::Recreate),
    (
        "batch",
        "Job",
        &["spec", "completionMode"],
        Remedy::Recreate,
    ),
    (
        "",
        "Service",
        &["spec", "clusterIP"],
        Remedy::Refuse(RENAME_HINT),
    ),
];

/// The first immutable field in which `desired` (the apply body) differs from `live`.
pub(crate) fn violation(
    group: &str,
    kind: &str,
    desired: &Value,
    live: &Value,
) -> Option<Violation> {
    if group.is_empty() && kind == "PersistentVolumeClaim" {
        return pvc_violation(desired, live);
    }
    RULES
        .iter()
        .filter(|(g, k, _, _)| *g == group && *k == kind)
        .find_map(|(_, _, path, remedy)| {
            let wanted = lookup(desired, path)?;
            let current = lookup(live, path)?;
            (!is_subset(wanted, current)).then(|| Violation {
                field: path.join("."),
                remedy: remedy.clone(),
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

/// A PVC's spec is immutable except growing `resources.requests.storage`. Losing the claim
/// loses data, so nothing is ever recreated.
fn pvc_violation(desired: &Value, live: &Value) -> Option<Violation> {
    const HINT: &str = "a PersistentVolumeClaim can only grow resources.requests.storage; migrate the data to a new claim";
    let refuse = |field: String| {
        Some(Violation {
            field,
            remedy: Remedy::Refuse(HINT),
        })
    };
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
                return refuse("spec.resources.requests.storage (shrinking)".into());
            }
            (Some(_), Some(_)) => {}
            _ if w != c => return refuse("spec.resources.requests.storage".into()),
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
        .and_then(|(k, _)| refuse(format!("spec.{k}")))
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
    fn deployment_selector_change_is_refused() {
        let live = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
        let same = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 3}});
        assert_eq!(violation("apps", "Deployment", &same, &live), None);
        let changed = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let v = violation("apps", "Deployment", &changed, &live).expect("violation");
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
        assert_eq!(violation("batch", "Job", &same, &live), None);
        let mut changed = same.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        assert_eq!(
            violation("batch", "Job", &changed, &live).map(|v| v.remedy),
            Some(Remedy::Recreate)
        );
    }

    #[test]
    fn pvc_may_only_grow_storage() {
        let live = json!({"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "std", "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}}});
        let grow = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}});
        assert_eq!(violation("", "PersistentVolumeClaim", &grow, &live), None);
        let shrink = json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}});
        assert!(
            violation("", "PersistentVolumeClaim", &shrink, &live)
                .expect("shrink")
                .field
                .contains("shrinking")
        );
        let class = json!({"spec": {"storageClassName": "fast"}});
        assert_eq!(
            violation("", "PersistentVolumeClaim", &class, &live)
                .expect("class")
                .field,
            "spec.storageClassName"
        );
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
