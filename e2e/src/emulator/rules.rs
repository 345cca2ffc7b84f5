//! Built-in validation kube-apiserver 1.33 enforces on the kinds fieldwise writes (and the other
//! served built-ins where the rule is shared): object names per kind, labels, annotations, pod
//! templates (containers, ports, env, volumes), selectors that must match template labels, and the
//! required fields of Services, PVCs, RBAC objects, HPAs, PDBs, Ingresses and CronJobs.
//!
//! Messages are the real server's, checked against kube-apiserver v1.33.13 with
//! `kubectl create --dry-run=server` (see `tests/emulator/conformance_validation.rs`). Where the
//! real server prints a Go value (`%#v`) that JSON cannot reproduce (pointers), the emulator prints
//! JSON; `map[string]string` and `intstr.IntOrString` are printed as Go prints them.

use serde_json::{Map, Value};

use super::errors::Cause;
use super::names;
use super::registry::ResourceType;

/// The total size of all annotations (keys and values) an object may carry.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn invalid(field: &str, shown: &str, message: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {shown}: {message}"),
    )
}

fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_owned()
    } else {
        format!("Required value: {detail}")
    };
    Cause::new("FieldValueRequired", field, message)
}

fn forbidden(field: &str, detail: &str) -> Cause {
    Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

fn not_supported(field: &str, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| quoted(s)).collect();
    Cause::new(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {}: supported values: {}",
            quoted(value),
            list.join(", ")
        ),
    )
}

/// One cause per message of a format check on a string value.
fn format_causes(field: &str, value: &str, messages: Vec<String>) -> Vec<Cause> {
    messages
        .iter()
        .map(|m| invalid(field, &quoted(value), m))
        .collect()
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn entries(value: Option<&Value>) -> Vec<(&String, &Value)> {
    let mut out: Vec<_> = value
        .and_then(Value::as_object)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// The rules on a built-in object's own fields (after [`metadata`], as kube-apiserver reports them).
pub fn spec(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => deployment(spec),
        ("apps", "StatefulSet") => stateful_set(spec),
        ("apps", "ReplicaSet") => selected_template(spec, &[], "deployment"),
        ("batch", "Job") => job_template(spec, "spec"),
        ("batch", "CronJob") => cron_job(spec),
        ("", "Pod") => pod_spec(spec, "spec"),
        ("", "Service") => service(spec),
        ("", "ConfigMap") => data_keys(obj, &["data", "binaryData"]),
        ("", "Secret") => data_keys(obj, &["data"]),
        ("", "PersistentVolumeClaim") => pvc(spec),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => rbac_rules(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => binding(obj, &["Role", "ClusterRole"]),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => binding(obj, &["ClusterRole"]),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(spec),
        ("policy", "PodDisruptionBudget") => pdb(spec),
        ("networking.k8s.io", "Ingress") => ingress(spec),
        _ => Vec::new(),
    }
}

/// ObjectMeta: the name in the kind's format, label and annotation keys and values.
pub fn metadata(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let name = str_at(meta, "name");
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        causes.extend(format_causes("metadata.name", name, name_rule(rt, name)));
    }
    causes.extend(labels("metadata.labels", meta.get("labels")));
    causes.extend(annotations(meta.get("annotations")));
    causes.extend(owner_references(meta));
    causes.extend(finalizers(meta));
    causes
}

/// At most one owner reference may be the object's controller. kube-apiserver prints the list as
/// a Go value (with pointers); the emulator prints it as JSON.
fn owner_references(meta: &Value) -> Option<Cause> {
    let references = items(meta, "ownerReferences");
    let controllers: Vec<String> = references
        .iter()
        .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| format!("{}/{}", str_at(r, "kind"), str_at(r, "name")))
        .collect();
    let [first, second, ..] = controllers.as_slice() else {
        return None;
    };
    Some(invalid(
        "metadata.ownerReferences",
        &Value::from(references.to_vec()).to_string(),
        &format!(
            "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {second}"
        ),
    ))
}

/// Finalizers kube-apiserver knows without a domain: namespaces' and the garbage collector's.
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Finalizer names: qualified names (the generic ObjectMeta check), not both propagation
/// finalizers, and, for built-in kinds, a domain unless standard (reported per index, last).
fn finalizers(meta: &Value) -> Vec<Cause> {
    let field = "metadata.finalizers";
    let names: Vec<&str> = items(meta, "finalizers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut causes = Vec::new();
    for name in &names {
        causes.extend(format_causes(field, name, names::qualified_name(name)));
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        causes.push(invalid(
            field,
            &go_string_slice(&names),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if !name.contains('/') && !STANDARD_FINALIZERS.contains(name) {
            causes.push(invalid(
                &format!("{field}[{i}]"),
                &quoted(name),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    causes
}

/// Go's `%#v` of a `[]string`.
pub(crate) fn go_string_slice(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn name_rule(rt: &ResourceType, name: &str) -> Vec<String> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Service") => names::dns1035_label(name),
        ("", "Namespace") => names::namespace_name(name),
        ("rbac.authorization.k8s.io", _) => names::path_segment(name),
        ("batch", "CronJob") if name.len() > 52 => {
            vec!["must be no more than 52 characters".to_owned()]
        }
        ("apiextensions.k8s.io", _) => Vec::new(),
        _ => names::dns1123_subdomain(name),
    }
}

fn labels(field: &str, labels: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (key, value) in entries(labels) {
        causes.extend(format_causes(field, key, names::qualified_name(key)));
        let value = value.as_str().unwrap_or("");
        causes.extend(format_causes(field, value, names::label_value(value)));
    }
    causes
}

fn annotations(annotations: Option<&Value>) -> Vec<Cause> {
    let field = "metadata.annotations";
    let mut causes = Vec::new();
    let mut total = 0;
    for (key, value) in entries(annotations) {
        // Annotation keys are checked lower-cased: upper case letters are allowed.
        let messages = names::qualified_name(&key.to_lowercase());
        causes.extend(format_causes(field, key, messages));
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        causes.push(Cause::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
    causes
}

/// Go's `%#v` of a `map[string]string`: keys sorted.
fn go_string_map(map: Option<&Value>) -> String {
    let pairs: Vec<String> = entries(map)
        .into_iter()
        .map(|(k, v)| format!("{}:{}", quoted(k), quoted(v.as_str().unwrap_or(""))))
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// Go's `%#v` of an empty `v1.LabelSelector`, as kube-apiserver prints it in the empty-selector
/// error (only ever printed for a selector without labels or expressions).
fn go_label_selector(selector: Option<&Value>) -> String {
    let labels = match selector.and_then(|s| s.get("matchLabels")) {
        Some(Value::Object(_)) => "map[string]string{}",
        _ => "map[string]string(nil)",
    };
    let expressions = match selector.and_then(|s| s.get("matchExpressions")) {
        Some(Value::Array(_)) => "[]v1.LabelSelectorRequirement{}",
        _ => "[]v1.LabelSelectorRequirement(nil)",
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

/// Whether a LabelSelector object selects these labels.
fn selects(selector: &Value, labels: &Map<String, Value>) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = entries(selector.get("matchLabels"))
        .into_iter()
        .all(|(k, v)| label(k) == v.as_str());
    let expressions = items(selector, "matchExpressions").iter().all(|e| {
        let key = str_at(e, "key");
        let values: Vec<&str> = items(e, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match (str_at(e, "operator"), label(key)) {
            ("In", Some(v)) => values.contains(&v),
            ("NotIn", Some(v)) => !values.contains(&v),
            ("NotIn", None) | ("DoesNotExist", None) | ("Exists", Some(_)) => true,
            _ => false,
        }
    });
    match_labels && expressions
}

/// Deployments, ReplicaSets and StatefulSets: a selector that selects the template's labels.
/// `claim_volumes` are the StatefulSet's claim template names, which its containers may mount
/// without a volume of that name in the template (kube-apiserver accepts them).
/// `workload` names the kind in the empty-selector message (kube-apiserver says `deployment` for
/// ReplicaSets too).
fn selected_template(spec: &Value, claim_volumes: &[&str], workload: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let template_labels = spec.pointer("/template/metadata/labels");
    let empty = Map::new();
    let labels_map = template_labels.and_then(Value::as_object).unwrap_or(&empty);
    let selector = spec.get("selector").filter(|s| !s.is_null());
    if selector.is_none() {
        causes.push(required("spec.selector", ""));
    }
    // An empty selector is refused as such; the template is then not matched against it.
    let selects_nothing = selector.is_some_and(|s| {
        entries(s.get("matchLabels")).is_empty() && items(s, "matchExpressions").is_empty()
    });
    if selects_nothing {
        causes.push(invalid(
            "spec.selector",
            &go_label_selector(selector),
            &format!("empty selector is invalid for {workload}"),
        ));
    } else if selector.is_none_or(|s| !selects(s, labels_map)) {
        causes.push(invalid(
            "spec.template.metadata.labels",
            &go_string_map(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    causes.extend(labels("spec.template.labels", template_labels));
    let pod = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    causes.extend(pod_spec_with(pod, "spec.template.spec", claim_volumes));
    causes
}

fn deployment(spec: &Value) -> Vec<Cause> {
    let mut causes = selected_template(spec, &[], "deployment");
    let strategy = spec.get("strategy").unwrap_or(&Value::Null);
    if str_at(strategy, "type") == "Recreate"
        && strategy.get("rollingUpdate").is_some_and(|r| !r.is_null())
    {
        causes.push(forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        ));
    }
    causes
}

fn stateful_set(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let service = str_at(spec, "serviceName");
    if !service.is_empty() {
        causes.extend(format_causes(
            "spec.serviceName",
            service,
            names::dns1123_label(service),
        ));
    }
    let claims: Vec<&str> = items(spec, "volumeClaimTemplates")
        .iter()
        .map(|claim| {
            claim
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        })
        .collect();
    causes.extend(selected_template(spec, &claims, "statefulset"));
    causes
}

/// A Job's pod template, at `path` (`spec`, or `spec.jobTemplate.spec` in a CronJob).
fn job_template(job_spec: &Value, path: &str) -> Vec<Cause> {
    let pod = job_spec.pointer("/template/spec").unwrap_or(&Value::Null);
    let pod_path = format!("{path}.template.spec");
    let template_labels = job_spec.pointer("/template/metadata/labels");
    let mut causes = labels(&format!("{path}.template.labels"), template_labels);
    causes.extend(pod_spec(pod, &pod_path));
    if !matches!(str_at(pod, "restartPolicy"), "OnFailure" | "Never") {
        causes.push(required(
            &format!("{pod_path}.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        ));
    }
    causes
}

fn cron_job(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let schedule = str_at(spec, "schedule");
    if schedule.is_empty() {
        causes.push(required("spec.schedule", ""));
    } else if !schedule.starts_with('@') {
        let fields: Vec<&str> = schedule.split_whitespace().collect();
        // A TZ=/CRON_TZ= prefix is its own (rejected) case; only the field count is checked here.
        if fields.len() != 5 && !schedule.contains("TZ=") {
            causes.push(invalid(
                "spec.schedule",
                &quoted(schedule),
                &format!(
                    "expected exactly 5 fields, found {}: [{}]",
                    fields.len(),
                    fields.join(" ")
                ),
            ));
        }
    }
    let job = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    causes.extend(job_template(job, "spec.jobTemplate.spec"));
    causes
}

/// A PodSpec at `path`: volumes, then containers and init containers.
fn pod_spec(pod: &Value, path: &str) -> Vec<Cause> {
    pod_spec_with(pod, path, &[])
}

/// A pod spec whose containers may also mount `extra_volumes`.
fn pod_spec_with(pod: &Value, path: &str, extra_volumes: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut volume_names = Vec::new();
    for (i, volume) in items(pod, "volumes").iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        let name = str_at(volume, "name");
        if name.is_empty() {
            causes.push(required(&field, ""));
        } else if volume_names.contains(&name) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                &field,
                format!("Duplicate value: {}", quoted(name)),
            ));
        } else {
            causes.extend(format_causes(&field, name, names::dns1123_label(name)));
        }
        volume_names.push(name);
    }
    volume_names.extend(extra_volumes.iter().copied());
    let containers = items(pod, "containers");
    if containers.is_empty() {
        causes.push(required(&format!("{path}.containers"), ""));
    }
    let mut seen = Vec::new();
    for list in ["containers", "initContainers"] {
        for (i, c) in items(pod, list).iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            causes.extend(container(c, &at, &mut seen, &volume_names));
        }
    }
    causes
}

fn container<'a>(c: &'a Value, at: &str, seen: &mut Vec<&'a str>, volumes: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = str_at(c, "name");
    let name_field = format!("{at}.name");
    if name.is_empty() {
        causes.push(required(&name_field, ""));
    } else if seen.contains(&name) {
        causes.push(Cause::new(
            "FieldValueDuplicate",
            &name_field,
            format!("Duplicate value: {}", quoted(name)),
        ));
    } else {
        causes.extend(format_causes(&name_field, name, names::dns1123_label(name)));
    }
    seen.push(name);
    if str_at(c, "image").is_empty() {
        causes.push(required(&format!("{at}.image"), ""));
    }
    causes.extend(container_ports(c, at));
    causes.extend(env(c, at));
    for (i, mount) in items(c, "volumeMounts").iter().enumerate() {
        let mount_at = format!("{at}.volumeMounts[{i}]");
        let volume = str_at(mount, "name");
        if volume.is_empty() {
            causes.push(required(&format!("{mount_at}.name"), ""));
        } else if !volumes.contains(&volume) {
            causes.push(Cause::new(
                "FieldValueNotFound",
                &format!("{mount_at}.name"),
                format!("Not found: {}", quoted(volume)),
            ));
        }
        if str_at(mount, "mountPath").is_empty() {
            causes.push(required(&format!("{mount_at}.mountPath"), ""));
        }
    }
    causes
}

fn port_range(field: &str, port: Option<i64>) -> Option<Cause> {
    match port {
        Some(p) if !(1..=65535).contains(&p) => Some(invalid(
            field,
            &p.to_string(),
            "must be between 1 and 65535, inclusive",
        )),
        _ => None,
    }
}

fn container_ports(c: &Value, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, port) in items(c, "ports").iter().enumerate() {
        let port_at = format!("{at}.ports[{i}]");
        let name = str_at(port, "name");
        if !name.is_empty() {
            causes.extend(format_causes(
                &format!("{port_at}.name"),
                name,
                names::port_name(name),
            ));
        }
        let number = port.get("containerPort").and_then(Value::as_i64);
        if number.unwrap_or(0) == 0 {
            causes.push(required(&format!("{port_at}.containerPort"), ""));
        } else {
            causes.extend(port_range(&format!("{port_at}.containerPort"), number));
        }
    }
    causes
}

fn env(c: &Value, at: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, var) in items(c, "env").iter().enumerate() {
        let var_at = format!("{at}.env[{i}]");
        if str_at(var, "name").is_empty() {
            causes.push(required(&format!("{var_at}.name"), ""));
        }
        let has_value = !str_at(var, "value").is_empty();
        if has_value && var.get("valueFrom").is_some_and(|v| !v.is_null()) {
            causes.push(invalid(
                &format!("{var_at}.valueFrom"),
                "\"\"",
                "may not be specified when `value` is not empty",
            ));
        }
    }
    causes
}

fn service(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ports = items(spec, "ports");
    let headless = str_at(spec, "clusterIP") == "None";
    if ports.is_empty() && str_at(spec, "type") != "ExternalName" && !headless {
        causes.push(required("spec.ports", ""));
    }
    let mut seen = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let name = str_at(port, "name");
        if name.is_empty() && ports.len() > 1 {
            causes.push(required(&format!("{at}.name"), ""));
        } else if !name.is_empty() && seen.contains(&name) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                &format!("{at}.name"),
                format!("Duplicate value: {}", quoted(name)),
            ));
        } else if !name.is_empty() {
            causes.extend(format_causes(
                &format!("{at}.name"),
                name,
                names::dns1123_label(name),
            ));
        }
        seen.push(name);
        let number = port.get("port").and_then(Value::as_i64).or(Some(0));
        causes.extend(port_range(&format!("{at}.port"), number));
        match port.get("targetPort") {
            Some(Value::String(target)) => causes.extend(format_causes(
                &format!("{at}.targetPort"),
                target,
                names::port_name(target),
            )),
            Some(target) => causes.extend(port_range(&format!("{at}.targetPort"), target.as_i64())),
            None => {}
        }
    }
    causes
}

fn data_keys(obj: &Value, fields: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in fields {
        for (key, _) in entries(obj.get(*field)) {
            causes.extend(format_causes(
                &format!("{field}[{key}]"),
                key,
                names::config_key(key),
            ));
        }
    }
    causes
}

fn pvc(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if items(spec, "accessModes").is_empty() {
        causes.push(required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if spec.pointer("/resources/requests/storage").is_none() {
        causes.push(required("spec.resources[storage]", ""));
    }
    causes
}

fn rbac_rules(obj: &Value) -> Vec<Cause> {
    items(obj, "rules")
        .iter()
        .enumerate()
        .filter(|(_, rule)| items(rule, "verbs").is_empty())
        .map(|(i, _)| {
            required(
                &format!("rules[{i}].verbs"),
                "verbs must contain at least one value",
            )
        })
        .collect()
}

fn binding(obj: &Value, kinds: &[&str]) -> Vec<Cause> {
    let mut causes = Vec::new();
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let group = str_at(role_ref, "apiGroup");
    if group != "rbac.authorization.k8s.io" {
        causes.push(not_supported(
            "roleRef.apiGroup",
            group,
            &["rbac.authorization.k8s.io"],
        ));
    }
    let kind = str_at(role_ref, "kind");
    if !kinds.contains(&kind) {
        causes.push(not_supported("roleRef.kind", kind, kinds));
    }
    let role = str_at(role_ref, "name");
    if role.is_empty() {
        causes.push(required("roleRef.name", ""));
    } else {
        causes.extend(format_causes(
            "roleRef.name",
            role,
            names::path_segment(role),
        ));
    }
    let cluster_wide = kinds == ["ClusterRole"];
    for (i, subject) in items(obj, "subjects").iter().enumerate() {
        let at = format!("subjects[{i}]");
        if str_at(subject, "name").is_empty() {
            causes.push(required(&format!("{at}.name"), ""));
        }
        if cluster_wide
            && str_at(subject, "kind") == "ServiceAccount"
            && str_at(subject, "namespace").is_empty()
        {
            causes.push(required(&format!("{at}.namespace"), ""));
        }
    }
    causes
}

fn hpa(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let min = spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if min < 1 {
        causes.push(invalid(
            "spec.minReplicas",
            &min.to_string(),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        causes.push(invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than 0",
        ));
    } else if max < min {
        causes.push(invalid(
            "spec.maxReplicas",
            &max.to_string(),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    for key in ["kind", "name"] {
        if str_at(target, key).is_empty() {
            causes.push(required(&format!("spec.scaleTargetRef.{key}"), ""));
        }
    }
    let scales_on_objects = items(spec, "metrics")
        .iter()
        .any(|m| matches!(str_at(m, "type"), "Object" | "External"));
    if min == 0 && !scales_on_objects {
        causes.push(forbidden(
            "spec.metrics",
            "must specify at least one Object or External metric to support scaling to zero replicas",
        ));
    }
    causes
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            quoted(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

fn pdb(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let present = |k: &str| spec.get(k).filter(|v| !v.is_null());
    if present("minAvailable").is_some() && present("maxUnavailable").is_some() {
        causes.push(invalid(
            "spec",
            &spec.to_string(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for key in ["minAvailable", "maxUnavailable"] {
        let Some(value) = present(key) else { continue };
        let field = format!("spec.{key}");
        let problem = match value {
            Value::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
                Some(pct) if pct > 100 => Some("must not be greater than 100%"),
                Some(pct) if pct < 0 => Some("must be greater than or equal to 0"),
                Some(_) => None,
                None => Some(
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ),
            },
            other if other.as_i64().is_some_and(|n| n < 0) => {
                Some("must be greater than or equal to 0")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            causes.push(invalid(&field, &go_int_or_string(value), problem));
        }
    }
    causes
}

fn ingress(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rules = items(spec, "rules");
    if rules.is_empty() && spec.get("defaultBackend").is_none_or(Value::is_null) {
        causes.push(invalid(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let host = str_at(rule, "host");
        if !host.is_empty() {
            let checked = host.strip_prefix("*.").unwrap_or(host);
            causes.extend(format_causes(
                &format!("{at}.host"),
                host,
                names::dns1123_subdomain(checked),
            ));
        }
        let paths = rule.pointer("/http/paths").and_then(Value::as_array);
        for (j, path) in paths.into_iter().flatten().enumerate() {
            let p = str_at(path, "path");
            if str_at(path, "pathType") != "ImplementationSpecific" && !p.starts_with('/') {
                causes.push(invalid(
                    &format!("{at}.http.paths[{j}].path"),
                    &quoted(p),
                    "must be an absolute path",
                ));
            }
        }
    }
    causes
}
