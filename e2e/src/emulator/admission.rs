//! PodSecurity admission, as kube-apiserver 1.33 runs it with its default configuration (no
//! exemptions, privileged by default): the namespace labels `pod-security.kubernetes.io/*` pick the
//! levels ([`crate::pod_security::policy`]).
//!
//! - A Pod created, or updated in a way that matters (an image changed, containers added or
//!   removed), below the namespace's `enforce` level is refused: 403 `pods "x" is forbidden:
//!   violates PodSecurity "restricted:latest": ...`. Below `warn` it gets a Warning.
//! - An object with a pod template (Deployment, StatefulSet, ReplicaSet, Job, CronJob, ...) is
//!   never refused: below `warn` (which follows a stricter `enforce` unless set) its create or
//!   update gets the Warning `would violate PodSecurity "restricted:latest": ...`. Its pods are
//!   refused later, when its controller creates them.
//! - Subresources (`/status`, `/scale`) are not evaluated.
//! - A Namespace with an invalid level or version label is refused (422); tightening a
//!   namespace's `enforce` level warns about the existing pods that would violate it.
//!
//! Like the real server, admission runs after the object's own validation (a 422 comes first) and
//! also for dry runs and for updates that change nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult, Cause};
use super::meta;
use super::ownership::Sub;
use super::registry::ResourceType;
use super::store::Txn;
use crate::pod_security::{
    self, Level, LevelVersion, Policy, evaluate, forbidden_detail, forbidden_reason, has_pod_spec,
    pod_of,
};

/// The Warnings of an admitted write, or the error refusing it.
pub(crate) fn pod_security(
    txn: &Txn<'_>,
    rt: &ResourceType,
    sub: Sub,
    namespace: &str,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<Vec<String>> {
    if rt.is_custom() || !rt.group.is_empty() && !matches!(rt.group.as_str(), "apps" | "batch") {
        return Ok(Vec::new());
    }
    if sub != Sub::Main {
        return Ok(Vec::new());
    }
    if rt.kind == "Namespace" {
        return namespace_update(txn, old, new);
    }
    if !has_pod_spec(&rt.kind) {
        return Ok(Vec::new());
    }
    let (policy, errors) = namespace_policy(txn, namespace);
    let Some((pod_meta, pod_spec)) = pod_of(&rt.kind, new) else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    if rt.kind == "Pod" {
        if errors.is_empty() && fully_privileged(&policy) {
            return Ok(warnings);
        }
        if old.is_some_and(|old| !significant_pod_update(old, new)) {
            return Ok(warnings);
        }
        let violations = evaluate(policy.enforce.level, pod_meta, pod_spec);
        if !violations.is_empty() {
            return Err(ApiError::forbidden(
                rt,
                meta::name(new),
                &format!(
                    "violates PodSecurity \"{}\": {}",
                    policy.enforce,
                    forbidden_detail(&violations)
                ),
            ));
        }
    } else if errors.is_empty()
        && policy.warn.level == Level::Privileged
        && policy.audit.level == Level::Privileged
    {
        return Ok(warnings);
    }
    let violations = evaluate(policy.warn.level, pod_meta, pod_spec);
    if !violations.is_empty() {
        warnings.push(format!(
            "would violate PodSecurity \"{}\": {}",
            policy.warn,
            forbidden_detail(&violations)
        ));
    }
    Ok(warnings)
}

/// The message a controller gets when it creates the pod `pod_name` of a template in `namespace`,
/// if PodSecurity refuses it: `pods "x" is forbidden: violates PodSecurity ...`. The simulated
/// controllers keep no pods; this is how their pods would fare.
pub fn pod_refusal(
    txn: &Txn<'_>,
    namespace: &str,
    pod_name: &str,
    pod_meta: &Value,
    pod_spec: &Value,
) -> Option<String> {
    let (policy, _) = namespace_policy(txn, namespace);
    let violations = evaluate(policy.enforce.level, pod_meta, pod_spec);
    (!violations.is_empty()).then(|| {
        format!(
            "pods \"{pod_name}\" is forbidden: violates PodSecurity \"{}\": {}",
            policy.enforce,
            forbidden_detail(&violations)
        )
    })
}

fn namespace_labels<'a>(txn: &'a Txn<'_>, namespace: &str) -> Option<&'a Map<String, Value>> {
    let key = (
        String::new(),
        "namespaces".to_owned(),
        String::new(),
        namespace.to_owned(),
    );
    labels(txn.get(&key)?)
}

fn labels(object: &Value) -> Option<&Map<String, Value>> {
    object.pointer("/metadata/labels")?.as_object()
}

fn namespace_policy(txn: &Txn<'_>, namespace: &str) -> (Policy, Vec<pod_security::LabelError>) {
    pod_security::policy(namespace_labels(txn, namespace))
}

fn fully_privileged(policy: &Policy) -> bool {
    [&policy.enforce, &policy.audit, &policy.warn]
        .iter()
        .all(|lv| lv.level == Level::Privileged)
}

/// Whether a pod update is evaluated: containers added or removed, or an image changed (the only
/// pod spec fields an update may change that PodSecurity looks at).
fn significant_pod_update(old: &Value, new: &Value) -> bool {
    let images = |pod: &Value, list: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| c.get("image").cloned().unwrap_or(Value::Null))
            .collect()
    };
    let ephemeral = |pod: &Value| -> BTreeMap<String, Value> {
        pod.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    c.get("image").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    let old_ephemeral = ephemeral(old);
    images(old, "containers") != images(new, "containers")
        || images(old, "initContainers") != images(new, "initContainers")
        || ephemeral(new)
            .iter()
            .any(|(name, image)| old_ephemeral.get(name) != Some(image))
}

/// A namespace's PodSecurity labels are valid (on create, and on an update that changes the
/// errors); tightening its enforce level lists the existing pods that would violate it.
fn namespace_update(txn: &Txn<'_>, old: Option<&Value>, new: &Value) -> ApiResult<Vec<String>> {
    let (new_policy, new_errors) = pod_security::policy(labels(new));
    let invalid = |errors: Vec<pod_security::LabelError>| {
        let causes = errors
            .into_iter()
            .map(|(label, value, message)| {
                Cause::new(
                    "FieldValueInvalid",
                    &format!("metadata.labels[{label}]"),
                    format!(
                        "Invalid value: {}: {message}",
                        serde_json::to_string(&value).unwrap_or_default()
                    ),
                )
            })
            .collect();
        ApiError::invalid("Namespace", "", meta::name(new), causes)
    };
    let Some(old) = old else {
        if !new_errors.is_empty() {
            return Err(invalid(new_errors));
        }
        return Ok(Vec::new());
    };
    let (old_policy, old_errors) = pod_security::policy(labels(old));
    if !new_errors.is_empty() && (old_errors.is_empty() || new_errors != old_errors) {
        return Err(invalid(new_errors));
    }
    let (new_enforce, old_enforce) = (&new_policy.enforce, &old_policy.enforce);
    if new_enforce == old_enforce
        || new_enforce.level == Level::Privileged
        || new_enforce.version == old_enforce.version && new_enforce.level <= old_enforce.level
    {
        return Ok(Vec::new());
    }
    Ok(existing_pods(txn, meta::name(new), new_enforce))
}

/// The Warnings about the namespace's pods that violate `enforce`: one per distinct list of
/// reasons, naming the first pod (by name) and how many others share it, sorted.
fn existing_pods(txn: &Txn<'_>, namespace: &str, enforce: &LevelVersion) -> Vec<String> {
    let mut by_reason: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for pod in txn.list("", "pods", Some(namespace)) {
        let (pod_meta, pod_spec) = pod_of("Pod", pod).unwrap_or((&Value::Null, &Value::Null));
        let violations = evaluate(enforce.level, pod_meta, pod_spec);
        if violations.is_empty() {
            continue;
        }
        let name = meta::name(pod).to_owned();
        let entry = by_reason
            .entry(forbidden_reason(&violations))
            .or_insert_with(|| (name.clone(), 0));
        if name < entry.0 {
            entry.0 = name;
        }
        entry.1 += 1;
    }
    if by_reason.is_empty() {
        return Vec::new();
    }
    let mut pods: Vec<String> = by_reason
        .into_iter()
        .map(|(reason, (first, count))| match count {
            1 => format!("{first}: {reason}"),
            2 => format!("{first} (and 1 other pod): {reason}"),
            n => format!("{first} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    pods.sort();
    let mut warnings = vec![format!(
        "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
    )];
    warnings.extend(pods);
    warnings
}
