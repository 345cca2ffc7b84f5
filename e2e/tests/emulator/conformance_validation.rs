//! Built-in validation as kube-apiserver 1.33 enforces it. `testdata/validation/real-v1.33.13.json`
//! holds invalid objects and what kubectl printed when each was created (`--dry-run=server`) on a
//! real kube-apiserver v1.33.13; the same commands against the test's server (the emulator, or the
//! real one in `e2e/cluster/test`) must print the same.

use std::io::Write;
use std::process::{Command, Stdio};

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::{Value, json};

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

/// Cases whose real message prints a Go value JSON cannot reproduce (pointer addresses): only the
/// text after that value is compared.
const GO_VALUE_CASES: &[&str] = &["pdb"];

/// Cases with errors about several keys of one map (labels): kube-apiserver reports them in Go's map
/// order, which changes from run to run, so their lines are compared in any order.
const MAP_ORDER_CASES: &[&str] = &["cm-label-keyprefix"];

fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// Whether the printed `text` is the recorded `want` for the case `name`.
fn same_refusal(name: &str, text: &str, want: &str) -> bool {
    if GO_VALUE_CASES.contains(&name) {
        let tail = |s: &str| s.rsplit(": ").next().unwrap_or_default().to_owned();
        return tail(text) == tail(want);
    }
    if MAP_ORDER_CASES.contains(&name) {
        return sorted_lines(text) == sorted_lines(want);
    }
    text == want
}

fn recorded() -> Result<Vec<Value>, TestError> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/validation/real-v1.33.13.json"
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut cases = file["cases"].as_array().cloned().unwrap_or_default();
    for case in &mut cases {
        // Stored small; the object itself carries 256 KiB of annotation.
        if case["name"] == "cm-ann-big" {
            case["object"]["metadata"]["annotations"] = json!({"a": "x".repeat(262_144)});
        }
    }
    Ok(cases)
}

/// `kubectl create --dry-run=server -f -` with `object` on stdin: exit code and output.
fn create_dry_run(kubectl: &Kubectl, object: &Value) -> Result<(i32, String), TestError> {
    let mut child = Command::new("kubectl")
        .args(kubectl.global_args())
        .args(["create", "--dry-run=server", "-f", "-", "-o", "name"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(object.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text.trim().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_objects_are_refused_as_kube_apiserver_refuses_them() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, _) = crate::target::start(Options::default()).await?;
    let kubectl = Kubectl::new(&server, "validation")?;
    let mut differences = Vec::new();
    for case in recorded()? {
        let name = case["name"].as_str().unwrap_or_default().to_owned();
        let object = case["object"].clone();
        let (code, text) = {
            let kubectl = &kubectl;
            tokio::task::block_in_place(|| create_dry_run(kubectl, &object))?
        };
        let want = case["kubectl"].as_str().unwrap_or_default();
        if code != 1 || !same_refusal(&name, &text, want) {
            differences.push(format!(
                "{name} (exit {code}):\n  server:   {text}\n  recorded: {want}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    Ok(())
}

#[tokio::test]
async fn an_invalid_object_gets_a_422_status_with_causes() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "name": "Http"}, {"port": 81}]},
    });
    let r = c
        .post("/api/v1/namespaces/default/services", &service)
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["reason"], "Invalid");
    assert_eq!(r.body["details"]["kind"], "Service");
    let causes = r.body["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let fields: Vec<&str> = causes.iter().filter_map(|c| c["field"].as_str()).collect();
    assert_eq!(fields, ["spec.ports[0].name", "spec.ports[1].name"]);
    assert_eq!(causes[1]["reason"], "FieldValueRequired");
    let label = "a".repeat(64);
    let configmap = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": label}},
    });
    let r = c
        .post("/api/v1/namespaces/default/configmaps", &configmap)
        .await?;
    assert_eq!(
        r.body["message"],
        format!(
            "ConfigMap \"c\" is invalid: metadata.labels: Invalid value: \"{label}\": must be no more than 63 characters"
        )
    );
    Ok(())
}

#[tokio::test]
async fn valid_objects_of_every_validated_kind_are_accepted() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    crate::target::remove_cluster_scoped(
        &c,
        &["/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/system:fieldwise"],
    )
    .await?;
    let pod = json!({"containers": [{"name": "app", "image": "nginx",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}]});
    let template = json!({"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": pod});
    let selector = json!({"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]});
    let mut job_pod = pod.clone();
    job_pod["restartPolicy"] = json!("Never");
    let objects = [
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web.v1"},
                "spec": {"selector": selector, "template": template}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
                "spec": {"serviceName": "db", "selector": selector, "template": template}}),
        ),
        (
            // Containers mount a claim template's volume, which the pod template does not list.
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis"},
                "spec": {"serviceName": "redis", "selector": {"matchLabels": {"app": "redis"}},
                    "template": {"metadata": {"labels": {"app": "redis"}},
                        "spec": {"containers": [{"name": "redis", "image": "redis",
                            "volumeMounts": [{"name": "claimed", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "claimed"},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c".repeat(52)},
                "spec": {"schedule": "*/5 * * * *",
                         "jobTemplate": {"spec": {"template": {"spec": job_pod}}}}}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "w".repeat(63)},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                   {"name": "grpc", "port": 81}]}}),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "labels": {"app.kubernetes.io/name": "x"},
                             "annotations": {"Example.COM/Note": "upper case is fine"}},
                "data": {"KEY_name.1": "v"}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "system:fieldwise"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
                "spec": {"rules": [{"host": "*.example.com", "http": {"paths": [{"path": "/",
                    "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}}),
        ),
    ];
    for (path, object) in objects {
        let r = c.post(path, &object).await?;
        assert_eq!(r.status, 201, "{path}: {}", r.text);
    }
    Ok(())
}

/// A workload whose selector selects nothing is refused as such (and its template is not then
/// matched against it); kube-apiserver names ReplicaSets "deployment" here too.
#[tokio::test]
async fn an_empty_workload_selector_is_refused() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let pod = json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}});
    let selector = "v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}";
    for (plural, kind, workload) in [
        ("deployments", "Deployment", "deployment"),
        ("statefulsets", "StatefulSet", "statefulset"),
        ("replicasets", "ReplicaSet", "deployment"),
    ] {
        let body = json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "empty"},
            "spec": {"selector": {"matchLabels": {}}, "template": pod}});
        let r = c
            .post(&format!("/apis/apps/v1/namespaces/default/{plural}"), &body)
            .await?;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(
            r.body["message"],
            format!(
                "{kind}.apps \"empty\" is invalid: spec.selector: Invalid value: {selector}: empty selector is invalid for {workload}"
            ),
            "{kind}"
        );
    }
    Ok(())
}

/// A binding's `roleRef` cannot change (rbac validation's `cannot change roleRef`), whatever the patch:
/// the apply engine replaces such a binding instead. kube-apiserver prints the new roleRef as a Go
/// value, the emulator as JSON, so only the field and the reason are compared.
#[tokio::test]
async fn a_bindings_role_ref_cannot_change() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings";
    let role_ref = |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "conformance-role-ref"},
        "roleRef": role_ref("Role", "conformance-role"),
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
    let _ = c
        .delete(&format!("{path}/conformance-role-ref"), None)
        .await?;
    let r = c.post(path, &binding).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut changed = binding.clone();
    changed["roleRef"] = role_ref("ClusterRole", "view");
    let r = c
        .apply(
            &format!("{path}/conformance-role-ref"),
            "conformance",
            true,
            &changed,
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("RoleBinding.rbac.authorization.k8s.io \"conformance-role-ref\" is invalid: roleRef: Invalid value: ")
            && message.ends_with(": cannot change roleRef"),
        "{message}"
    );
    let relabelled = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "conformance-role-ref", "labels": {"changed": "yes"}}});
    let r = c
        .apply(
            &format!("{path}/conformance-role-ref"),
            "conformance",
            true,
            &relabelled,
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    c.delete(&format!("{path}/conformance-role-ref"), None)
        .await?;
    Ok(())
}
