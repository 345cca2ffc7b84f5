//! The Pod Security Standards (`privileged`, `baseline`, `restricted`), as kube-apiserver's
//! PodSecurity admission evaluates them: which checks a level runs, in which order, and the reason
//! and detail each failing check reports, worded as the real server words them (its messages are
//! what users, and the emulator's conformance tests, see).
//!
//! The levels are those of the Kubernetes documentation ("Pod Security Standards"). Each level is
//! evaluated at its latest version (kube-apiserver 1.33's); a namespace label asking for an older
//! version (`enforce-version: v1.24`) is accepted and named in messages, but its checks are the
//! latest ones. Linux pods only: the exemptions of `spec.os.name: windows` are applied, the Windows
//! checks themselves are the baseline's `hostProcess` one.
//!
//! Works on JSON (the emulator stores objects as JSON): [`evaluate`] takes the pod's (or pod
//! template's) metadata and spec.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The namespace labels of PodSecurity admission.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// A Pod Security Standard, least to most strict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// The level a label value names, or kube-apiserver's message for a bad one.
    pub fn parse(value: &str) -> Result<Level, &'static str> {
        match value {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err("must be one of privileged, baseline, restricted"),
        }
    }
}

/// A level at a version (`latest` or `v1.<minor>`), shown as `restricted:latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl LevelVersion {
    fn privileged() -> Self {
        LevelVersion {
            level: Level::Privileged,
            version: "latest".to_owned(),
        }
    }
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

fn valid_version(value: &str) -> bool {
    if value == "latest" {
        return true;
    }
    let Some(minor) = value.strip_prefix("v1.") else {
        return false;
    };
    !minor.is_empty()
        && minor.bytes().all(|b| b.is_ascii_digit())
        && (minor == "0" || !minor.starts_with('0'))
}

/// The levels a namespace's labels ask for: pods are rejected below `enforce`, and objects
/// with a pod template get warnings below `warn` (audit only annotates the audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

/// A label value kube-apiserver refuses: `(label, value, message)`.
pub type LabelError = (String, String, &'static str);

/// The policy of a namespace's labels (unlabelled: privileged everywhere, the API server's
/// default), and the labels that are invalid. As the API server does, a `warn` level left unset
/// follows an `enforce` level stricter than it (with its version, unless `warn-version` is set);
/// invalid audit and warn levels fall back to privileged, an invalid enforce level to restricted.
pub fn policy(labels: Option<&Map<String, Value>>) -> (Policy, Vec<LabelError>) {
    let mut policy = Policy {
        enforce: LevelVersion::privileged(),
        audit: LevelVersion::privileged(),
        warn: LevelVersion::privileged(),
    };
    let mut errors = Vec::new();
    let Some(labels) = labels else {
        return (policy, errors);
    };
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let mut error = |key: &str, value: &str, message: &'static str| {
        errors.push((key.to_owned(), value.to_owned(), message));
    };
    let mut has_enforce_level = false;
    let level_of = |key: &str, fallback: Level, error: &mut dyn FnMut(&str, &str, &'static str)| {
        label(key).map(|value| match Level::parse(value) {
            Ok(level) => (level, true),
            Err(message) => {
                error(key, value, message);
                (fallback, false)
            }
        })
    };
    let version_of = |key: &str, error: &mut dyn FnMut(&str, &str, &'static str)| {
        label(key).map(|value| {
            if valid_version(value) {
                value.to_owned()
            } else {
                error(key, value, "must be \"latest\" or \"v1.x\"");
                "latest".to_owned()
            }
        })
    };
    if let Some((level, valid)) = level_of(ENFORCE_LABEL, Level::Restricted, &mut error) {
        policy.enforce.level = level;
        has_enforce_level = valid;
    }
    if let Some(version) = version_of(ENFORCE_VERSION_LABEL, &mut error) {
        policy.enforce.version = version;
    }
    if let Some((level, _)) = level_of(AUDIT_LABEL, Level::Privileged, &mut error) {
        policy.audit.level = level;
    }
    if let Some(version) = version_of(AUDIT_VERSION_LABEL, &mut error) {
        policy.audit.version = version;
    }
    let has_warn_level = label(WARN_LABEL).is_some();
    if let Some((level, _)) = level_of(WARN_LABEL, Level::Privileged, &mut error) {
        policy.warn.level = level;
    }
    let has_warn_version = label(WARN_VERSION_LABEL).is_some();
    if let Some(version) = version_of(WARN_VERSION_LABEL, &mut error) {
        policy.warn.version = version;
    }
    if !has_warn_level && has_enforce_level && policy.enforce.level > policy.warn.level {
        policy.warn.level = policy.enforce.level;
        if !has_warn_version {
            policy.warn.version = policy.enforce.version.clone();
        }
    }
    (policy, errors)
}

/// One failing check: its id, the reason (`allowPrivilegeEscalation != false`) and the detail
/// naming the containers, volumes or fields at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub check: &'static str,
    pub reason: String,
    pub detail: String,
}

/// `reason (detail), reason (detail)`: the text after `violates PodSecurity "restricted:latest": `.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `reason, reason`: what the API server lists for each existing pod when a namespace's enforce
/// level is tightened.
pub fn forbidden_reason(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod template of an object that has one, as `(metadata, spec)`: a Pod itself, or the
/// template of the kinds PodSecurity admission reads (Deployment, ReplicaSet, StatefulSet,
/// DaemonSet, Job, ReplicationController, PodTemplate, CronJob). `None` for other kinds and for an
/// object without a template.
pub fn pod_of<'a>(kind: &str, object: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match kind {
        "Pod" => return Some((meta_or_null(object), spec_or_null(object))),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => object.pointer("/spec/template")?,
        "PodTemplate" => object.get("template")?,
        "CronJob" => object.pointer("/spec/jobTemplate/spec/template")?,
        _ => return None,
    };
    Some((meta_or_null(template), spec_or_null(template)))
}

/// Whether the API server evaluates objects of this kind (as pods, or as pod controllers).
pub fn has_pod_spec(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "ReplicationController"
            | "PodTemplate"
            | "CronJob"
    )
}

static NULL: Value = Value::Null;

fn meta_or_null(object: &Value) -> &Value {
    object.get("metadata").unwrap_or(&NULL)
}

fn spec_or_null(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&NULL)
}

type Check = fn(&Value, &Value) -> Option<Violation>;

/// The checks of the baseline level, ordered by id as the API server orders them.
const BASELINE: &[(&str, Check)] = &[
    ("appArmorProfile", app_armor_profile),
    ("capabilities_baseline", capabilities_baseline),
    ("hostNamespaces", host_namespaces),
    ("hostPathVolumes", host_path_volumes),
    ("hostPorts", host_ports),
    ("privileged", privileged),
    ("procMount", proc_mount),
    ("seLinuxOptions", se_linux_options),
    ("seccompProfile_baseline", seccomp_baseline),
    ("sysctls", sysctls),
    ("windowsHostProcess", windows_host_process),
];

/// The restricted level's own checks, ordered by id; they follow the baseline checks they do not
/// replace (a restricted check replaces the baseline check of the same subject).
const RESTRICTED: &[(&str, Check)] = &[
    ("allowPrivilegeEscalation", allow_privilege_escalation),
    ("capabilities_restricted", capabilities_restricted),
    ("restrictedVolumes", restricted_volumes),
    ("runAsNonRoot", run_as_non_root),
    ("runAsUser", run_as_user),
    ("seccompProfile_restricted", seccomp_restricted),
];

/// Baseline checks the restricted ones replace.
const REPLACED_BY_RESTRICTED: &[&str] = &[
    "capabilities_baseline",
    "hostPathVolumes",
    "seccompProfile_baseline",
];

/// Every check of `level` that the pod fails, in the API server's order.
pub fn evaluate(level: Level, pod_meta: &Value, pod_spec: &Value) -> Vec<Violation> {
    let checks: Vec<&(&str, Check)> = match level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => BASELINE.iter().collect(),
        Level::Restricted => BASELINE
            .iter()
            .filter(|(id, _)| !REPLACED_BY_RESTRICTED.contains(id))
            .chain(RESTRICTED)
            .collect(),
    };
    checks
        .into_iter()
        .filter_map(|(id, check)| {
            check(pod_meta, pod_spec).map(|mut violation| {
                violation.check = id;
                violation
            })
        })
        .collect()
}

// ---- helpers ----

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        check: "",
        reason: reason.into(),
        detail: detail.into(),
    })
}

/// `"a", "b"`
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|i| format!("\"{}\"", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pluralize(singular: &'static str, plural: &'static str, count: usize) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init containers, containers and ephemeral containers, in that order.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |list| {
            spec.get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
}

fn name(container: &Value) -> String {
    container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn pod_context(spec: &Value) -> Option<&Value> {
    spec.get("securityContext").filter(|c| c.is_object())
}

fn container_context(container: &Value) -> Option<&Value> {
    container.get("securityContext").filter(|c| c.is_object())
}

fn boolean(context: Option<&Value>, field: &str) -> Option<bool> {
    context?.get(field)?.as_bool()
}

fn text<'a>(value: Option<&'a Value>, pointer: &str) -> Option<&'a str> {
    value?.pointer(pointer)?.as_str()
}

fn windows(spec: &Value) -> bool {
    text(Some(spec), "/os/name") == Some("windows")
}

/// Go's `%q` of a string, for the ASCII text the API deals in.
fn go_quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// Collects the setters at fault: `pod` first, then the containers, joined with ` and `.
fn setters(pod: bool, containers: &[String]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod {
        setters.push("pod".to_owned());
    }
    if !containers.is_empty() {
        setters.push(containers_named(containers));
    }
    setters
}

// ---- baseline ----

fn app_armor_profile(meta: &Value, spec: &Value) -> Option<Violation> {
    let allowed = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    if let Some(profile) = pod_context(spec).and_then(|c| c.get("appArmorProfile")) {
        let t = text(Some(profile), "/type").unwrap_or_default();
        if !allowed(t) {
            pod_bad = true;
            bad_values.insert(t.to_owned());
        }
    }
    let mut bad_containers = Vec::new();
    for container in containers(spec) {
        if let Some(profile) = container_context(container).and_then(|c| c.get("appArmorProfile")) {
            let t = text(Some(profile), "/type").unwrap_or_default();
            if !allowed(t) {
                bad_containers.push(name(container));
                bad_values.insert(t.to_owned());
            }
        }
    }
    let mut setters = setters(pod_bad, &bad_containers);
    let mut values: Vec<String> = bad_values.into_iter().collect();
    const PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
    let mut annotations: Vec<String> = meta
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(PREFIX))
        .filter_map(|(key, value)| {
            let value = value.as_str().unwrap_or_default();
            let allowed =
                value.is_empty() || value == "runtime/default" || value.starts_with("localhost/");
            (!allowed).then(|| format!("{key}={}", go_quote(value)))
        })
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()).to_owned());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn added_capabilities(container: &Value) -> Vec<&str> {
    container_context(container)
        .and_then(|c| c.pointer("/capabilities/add"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn capabilities_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let mut bad_containers = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in containers(spec) {
        let bad: Vec<&str> = added_capabilities(container)
            .into_iter()
            .filter(|c| !ALLOWED.contains(c))
            .collect();
        if !bad.is_empty() {
            bad_containers.push(name(container));
            forbidden.extend(bad.into_iter().map(str::to_owned));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    let forbidden: Vec<String> = forbidden.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad_containers),
            join_quote(&forbidden)
        ),
    )
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<Violation> {
    let on: Vec<&str> = [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(field, _)| spec.get(*field).and_then(Value::as_bool) == Some(true))
    .map(|(_, shown)| shown)
    .collect();
    if on.is_empty() {
        return None;
    }
    violation("host namespaces", on.join(", "))
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn host_path_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let names: Vec<String> = volumes(spec)
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(name)
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    )
}

fn host_ports(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut ports = BTreeSet::new();
    for container in containers(spec) {
        let used: Vec<i64> = container
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad_containers.push(name(container));
            // A set of strings: sorted as text, as the API server sorts them.
            ports.extend(used.into_iter().map(|p| p.to_string()));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_named(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| boolean(container_context(c), "privileged") == Some(true))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for container in containers(spec) {
        if let Some(mount) = text(container_context(container), "/procMount")
            && mount != "Default"
        {
            bad.push(name(container));
            types.insert(mount.to_owned());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_named(&bad),
            join_quote(&types)
        ),
    )
}

fn se_linux_options(_: &Value, spec: &Value) -> Option<Violation> {
    const ALLOWED_TYPES: &[&str] = &[
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |options: &Value| {
        let mut ok = true;
        let t = text(Some(options), "/type").unwrap_or_default();
        if !ALLOWED_TYPES.contains(&t) {
            ok = false;
            bad_types.insert(t.to_owned());
        }
        if !text(Some(options), "/user").unwrap_or_default().is_empty() {
            ok = false;
            set_user = true;
        }
        if !text(Some(options), "/role").unwrap_or_default().is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_bad = pod_context(spec)
        .and_then(|c| c.get("seLinuxOptions"))
        .is_some_and(|o| !valid(o));
    let mut bad_containers = Vec::new();
    for container in containers(spec) {
        if let Some(options) = container_context(container).and_then(|c| c.get("seLinuxOptions"))
            && !valid(options)
        {
            bad_containers.push(name(container));
        }
    }
    let setters = setters(pod_bad, &bad_containers);
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_owned());
    }
    if set_role {
        data.push("role may not be set".to_owned());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// The seccomp setters with an explicit type other than RuntimeDefault or Localhost, the bad
/// types, whether the pod sets a good one, and the containers that set none.
struct Seccomp {
    pod_bad: bool,
    pod_set: bool,
    bad_containers: Vec<String>,
    unset_containers: Vec<String>,
    bad_values: BTreeSet<String>,
}

fn seccomp(spec: &Value) -> Seccomp {
    let mut result = Seccomp {
        pod_bad: false,
        pod_set: false,
        bad_containers: Vec::new(),
        unset_containers: Vec::new(),
        bad_values: BTreeSet::new(),
    };
    if let Some(profile) = pod_context(spec).and_then(|c| c.get("seccompProfile")) {
        let t = text(Some(profile), "/type").unwrap_or_default();
        if valid_seccomp(t) {
            result.pod_set = true;
        } else {
            result.pod_bad = true;
            result.bad_values.insert(t.to_owned());
        }
    }
    for container in containers(spec) {
        match container_context(container).and_then(|c| c.get("seccompProfile")) {
            Some(profile) => {
                let t = text(Some(profile), "/type").unwrap_or_default();
                if !valid_seccomp(t) {
                    result.bad_containers.push(name(container));
                    result.bad_values.insert(t.to_owned());
                }
            }
            None => result.unset_containers.push(name(container)),
        }
    }
    result
}

fn explicit_seccomp_violation(found: &Seccomp) -> Option<Violation> {
    let setters = setters(found.pod_bad, &found.bad_containers);
    if setters.is_empty() {
        return None;
    }
    let values: Vec<&String> = found.bad_values.iter().collect();
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn seccomp_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    explicit_seccomp_violation(&seccomp(spec))
}

fn sysctls(_: &Value, spec: &Value) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    ];
    let forbidden: Vec<&str> = pod_context(spec)
        .and_then(|c| c.get("sysctls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !ALLOWED.contains(n))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

fn windows_host_process(_: &Value, spec: &Value) -> Option<Violation> {
    let host_process = |c: Option<&Value>| {
        c.and_then(|c| c.pointer("/windowsOptions/hostProcess")) == Some(&Value::Bool(true))
    };
    let bad: Vec<String> = containers(spec)
        .filter(|c| host_process(container_context(c)))
        .map(name)
        .collect();
    let setters = setters(host_process(pod_context(spec)), &bad);
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

// ---- restricted ----

fn allow_privilege_escalation(_: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| boolean(container_context(c), "allowPrivilegeEscalation") != Some(false))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        ),
    )
}

fn capabilities_restricted(_: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    let mut missing_drop_all = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in containers(spec) {
        let capabilities = container_context(container).and_then(|c| c.get("capabilities"));
        let Some(capabilities) = capabilities.filter(|c| !c.is_null()) else {
            missing_drop_all.push(name(container));
            continue;
        };
        let dropped_all = capabilities
            .get("drop")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.as_str() == Some("ALL"));
        if !dropped_all {
            missing_drop_all.push(name(container));
        }
        let bad: Vec<&str> = added_capabilities(container)
            .into_iter()
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            adding.push(name(container));
            forbidden.extend(bad.into_iter().map(str::to_owned));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// Volume sources the restricted level allows.
const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Restricted volume sources, in the order the API server tests for them.
const RESTRICTED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in volumes(spec) {
        let has = |source: &&str| volume.get(*source).is_some_and(|s| !s.is_null());
        if ALLOWED_VOLUMES.iter().any(has) {
            continue;
        }
        bad.push(name(volume));
        let kind = RESTRICTED_VOLUMES
            .iter()
            .find(|source| has(source))
            .copied()
            .unwrap_or("unknown");
        types.insert(kind.to_owned());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root(_: &Value, spec: &Value) -> Option<Violation> {
    let pod = boolean(pod_context(spec), "runAsNonRoot");
    let pod_bad = pod == Some(false);
    let pod_non_root = pod == Some(true);
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for container in containers(spec) {
        match boolean(container_context(container), "runAsNonRoot") {
            Some(false) => explicitly_bad.push(name(container)),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(name(container)),
            None => {}
        }
    }
    let setters = setters(pod_bad, &explicitly_bad);
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicitly_bad.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_named(&implicitly_bad)
            ),
        );
    }
    None
}

fn run_as_user(_: &Value, spec: &Value) -> Option<Violation> {
    let root =
        |c: Option<&Value>| c.and_then(|c| c.get("runAsUser")).and_then(Value::as_i64) == Some(0);
    let bad: Vec<String> = containers(spec)
        .filter(|c| root(container_context(c)))
        .map(name)
        .collect();
    let setters = setters(root(pod_context(spec)), &bad);
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn seccomp_restricted(_: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    let found = seccomp(spec);
    if let Some(explicit) = explicit_seccomp_violation(&found) {
        return Some(explicit);
    }
    if found.pod_set || found.unset_containers.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_named(&found.unset_containers)
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn restricted(spec: Value) -> String {
        forbidden_detail(&evaluate(Level::Restricted, &json!({}), &spec))
    }

    #[test]
    fn a_bare_pod_fails_the_four_restricted_basics() {
        assert_eq!(
            restricted(json!({"containers": [{"name": "web", "image": "nginx"}]})),
            "allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"web\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"web\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"web\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(
            evaluate(
                Level::Baseline,
                &json!({}),
                &json!({"containers": [{"name": "web"}]})
            )
            .is_empty()
        );
    }

    #[test]
    fn a_restricted_pod_passes() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "containers": [{"name": "web", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}, {"name": "tmp", "emptyDir": {}}],
        });
        assert_eq!(restricted(spec), "");
    }

    #[test]
    fn init_containers_count_and_are_named_first() {
        let ok = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "a"}, {"name": "b", "securityContext": ok}],
            "containers": [{"name": "c"}],
        });
        assert_eq!(
            restricted(spec),
            "allowPrivilegeEscalation != false (containers \"a\", \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (containers \"a\", \"c\" must set securityContext.capabilities.drop=[\"ALL\"])"
        );
    }

    #[test]
    fn baseline_violations_come_first_and_volumes_are_named_with_their_types() {
        let spec = json!({
            "hostNetwork": true,
            "securityContext": {"runAsNonRoot": false, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 90, "hostPort": 10000}],
                "securityContext": {"privileged": true, "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN", "NET_ADMIN"]}}}],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}}],
        });
        assert_eq!(
            restricted(spec.clone()),
            "host namespaces (hostNetwork=true), \
             hostPort (container \"c\" uses hostPorts 10000, 8080), \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             unrestricted capabilities (container \"c\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
             restricted volume types (volumes \"host\", \"n\" use restricted volume types \"hostPath\", \"nfs\"), \
             runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), \
             runAsUser=0 (pod must not set runAsUser=0), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
        assert_eq!(
            forbidden_detail(&evaluate(Level::Baseline, &json!({}), &spec)),
            "non-default capabilities (container \"c\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true), \
             hostPath volumes (volume \"host\"), \
             hostPort (container \"c\" uses hostPorts 10000, 8080), \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn labels_make_the_policy_and_warn_follows_a_stricter_enforce() {
        let labels = json!({ENFORCE_LABEL: "restricted"});
        let (policy, errors) = policy(labels.as_object());
        assert!(errors.is_empty());
        assert_eq!(policy.enforce.to_string(), "restricted:latest");
        assert_eq!(policy.warn.to_string(), "restricted:latest");
        assert_eq!(policy.audit.to_string(), "privileged:latest");
        let labels = json!({ENFORCE_LABEL: "baseline", WARN_LABEL: "restricted", ENFORCE_VERSION_LABEL: "v1.30"});
        let (policy, _) = super::policy(labels.as_object());
        assert_eq!(policy.enforce.to_string(), "baseline:v1.30");
        assert_eq!(policy.warn.to_string(), "restricted:latest");
        let labels = json!({ENFORCE_LABEL: "strict", WARN_VERSION_LABEL: "1.30"});
        let (policy, errors) = super::policy(labels.as_object());
        assert_eq!(policy.enforce.level, Level::Restricted, "fails closed");
        assert_eq!(
            policy.warn.level,
            Level::Privileged,
            "an invalid enforce does not set warn"
        );
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn templates_of_workloads_are_found() {
        let cron =
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        assert!(pod_of("CronJob", &cron).is_some());
        assert!(pod_of("ConfigMap", &cron).is_none());
        let pod = json!({"spec": {"containers": []}});
        let (_, spec) = pod_of("Pod", &pod).expect("a pod");
        assert!(spec.get("containers").is_some());
    }
}
