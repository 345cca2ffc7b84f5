//! Black-box conformance of server-side apply, field ownership and defaulting over real HTTP
//! (spec §1–§3, §4.2–§4.3).

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};

use crate::target::Server;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

async fn setup() -> Result<(Server, RawClient), TestError> {
    let (emu, c) = crate::target::start(Options::default()).await?;
    Ok((emu, c))
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn deployment(replicas: Option<i64>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

#[tokio::test]
async fn apply_creates_then_noop() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"team": "a"}}, "data": {"a": "1"}});
    let r = c.apply(&format!("{CM}/c1"), "alice", false, &cfg).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = entry(&r.body, "alice").unwrap();
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].as_str().is_some());
    assert_eq!(
        e["fieldsV1"],
        json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:team": {}}}})
    );
    let again = c.apply(&format!("{CM}/c1"), "alice", false, &cfg).await?;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["metadata"]["resourceVersion"],
        r.body["metadata"]["resourceVersion"]
    );
    assert_eq!(
        again.body["metadata"]["managedFields"],
        r.body["metadata"]["managedFields"]
    );
    Ok(())
}

#[tokio::test]
async fn conflicts_shared_ownership_and_force() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{CM}/c1");
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": v}});
    c.apply(&path, "alice", false, &cfg("1")).await?;
    let conflict = c.apply(&path, "bob", false, &cfg("2")).await?;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"alice\": .data.a", "reason": "Conflict",
            "details": {"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".data.a"}]},
            "code": 409})
    );
    // Equal value: shared ownership, no conflict.
    let shared = c.apply(&path, "bob", false, &cfg("1")).await?;
    assert_eq!(shared.status, 200);
    assert!(entry(&shared.body, "alice").is_some() && entry(&shared.body, "bob").is_some());
    // Alice drops the field: bob still owns it, the value stays.
    let dropped = c
        .apply(
            &path,
            "alice",
            false,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}}),
        )
        .await?;
    assert_eq!(dropped.body["data"]["a"], "1");
    // Force takes the field.
    c.apply(&path, "alice", false, &cfg("1")).await?;
    let forced = c.apply(&path, "carol", true, &cfg("3")).await?;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.body["data"]["a"], "3");
    assert!(
        entry(&forced.body, "alice").is_none(),
        "alice lost her only field"
    );
    Ok(())
}

#[tokio::test]
async fn dropped_replicas_default_to_one() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{DEPLOY}/web");
    let r = c
        .apply(&path, "fieldwise", false, &deployment(Some(3)))
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["spec"]["replicas"], 3);
    let r = c
        .apply(&path, "fieldwise", false, &deployment(None))
        .await?;
    assert_eq!(
        r.body["spec"]["replicas"], 1,
        "the only owner dropped replicas: default comes back"
    );
    let fields = &entry(&r.body, "fieldwise").unwrap()["fieldsV1"];
    assert!(fields["f:spec"].get("f:replicas").is_none());
    Ok(())
}

#[tokio::test]
async fn deployment_defaults_and_create_owns_them() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let r = c
        .post(
            &format!("{DEPLOY}?fieldManager=kubectl-create"),
            &deployment(None),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let spec = &r.body["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let ctr = &pod["containers"][0];
    assert_eq!(ctr["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(ctr["terminationMessagePolicy"], "File");
    assert_eq!(ctr["imagePullPolicy"], "IfNotPresent");
    assert_eq!(ctr["ports"][0]["protocol"], "TCP");
    assert_eq!(r.body["metadata"]["generation"], 1);
    let e = entry(&r.body, "kubectl-create").unwrap();
    assert_eq!(e["operation"], "Update");
    assert!(
        e["fieldsV1"]["f:spec"]
            .get("f:revisionHistoryLimit")
            .is_some(),
        "a create owns defaulted fields"
    );
    Ok(())
}

#[tokio::test]
async fn service_defaults() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}});
    let r = c
        .apply(
            "/api/v1/namespaces/default/services/s",
            "fieldwise",
            false,
            &svc,
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let spec = &r.body["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 80);
    let ip = spec["clusterIP"].as_str().unwrap().to_string();
    // Anywhere in the service range 10.96.0.0/12.
    let second_octet: u8 = ip.split('.').nth(1).unwrap().parse().unwrap();
    assert!(
        ip.starts_with("10.") && (96..112).contains(&second_octet),
        "{ip}"
    );
    let again = c
        .apply(
            "/api/v1/namespaces/default/services/s",
            "fieldwise",
            false,
            &svc,
        )
        .await?;
    assert_eq!(again.body["spec"]["clusterIP"], json!(ip));
    assert_eq!(
        again.body["metadata"]["resourceVersion"],
        r.body["metadata"]["resourceVersion"]
    );
    Ok(())
}

#[tokio::test]
async fn apply_request_errors() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "1"}});
    let no_manager = c.patch(&format!("{CM}/c1"), "apply", &cfg).await?;
    assert_eq!(no_manager.status, 422);
    assert_eq!(
        no_manager.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(no_manager.body["details"]["kind"], "PatchOptions");
    assert_eq!(no_manager.body["details"]["group"], "meta.k8s.io");

    let mut with_mf = cfg.clone();
    with_mf["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let r = c.apply(&format!("{CM}/c1"), "a", false, &with_mf).await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["message"], "metadata.managedFields must be nil");

    let wrong = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c1"}});
    let r = c.apply(&format!("{CM}/c1"), "a", false, &wrong).await?;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["message"],
        "invalid object type: apps/v1, Kind=Deployment"
    );

    let mut bogus = cfg.clone();
    bogus["spec"] = json!({"bogus": 1});
    let r = c.apply(&format!("{CM}/c1"), "a", false, &bogus).await?;
    assert_eq!(r.status, 500);
    assert!(r.body.get("reason").is_none());
    assert_eq!(
        r.body["message"],
        "failed to create typed patch object (/c1; /v1, Kind=ConfigMap): .spec: field not declared in schema"
    );

    let mut with_uid = cfg.clone();
    with_uid["metadata"]["uid"] = json!("1234");
    let r = c.apply(&format!("{CM}/c1"), "a", false, &with_uid).await?;
    assert_eq!(r.status, 409);
    assert!(r.body["message"].as_str().unwrap().ends_with(
        "uid mismatch: the provided object specified uid 1234, and no existing object was found"
    ));

    c.apply(&format!("{CM}/c1"), "a", false, &cfg).await?;
    let r = c
        .patch(
            &format!("{CM}/c1?force=true"),
            "merge",
            &json!({"data": {"b": "2"}}),
        )
        .await?;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    Ok(())
}

#[tokio::test]
async fn scale_subresource_ownership() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{DEPLOY}/web");
    c.apply(&path, "fieldwise", false, &deployment(Some(2)))
        .await?;
    let scale = c.get(&format!("{path}/scale")).await?;
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 2);
    assert_eq!(scale.body["status"]["replicas"], 0);
    assert_eq!(scale.body["status"]["selector"], "app=web");
    let r = c
        .patch(
            &format!("{path}/scale?fieldManager=kube-controller-manager"),
            "merge",
            &json!({"spec": {"replicas": 5}}),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["kind"], "Scale");
    assert_eq!(r.body["spec"]["replicas"], 5);
    let d = c.get(&path).await?;
    assert_eq!(d.body["spec"]["replicas"], 5);
    let e = entry(&d.body, "kube-controller-manager").unwrap();
    assert_eq!(e["subresource"], "scale");
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(d.body["metadata"]["generation"], 2);
    let conflict = c
        .apply(&path, "fieldwise", false, &deployment(Some(3)))
        .await?;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body["message"],
        "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    Ok(())
}

#[tokio::test]
async fn status_subresource_split() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{DEPLOY}/web");
    let created = c
        .apply(&path, "fieldwise", false, &deployment(Some(1)))
        .await?;
    // Status sent to the main resource is ignored.
    let mut with_status = deployment(Some(1));
    with_status["status"] = json!({"replicas": 7});
    let r = c.apply(&path, "fieldwise", false, &with_status).await?;
    assert!(r.body["status"].get("replicas").is_none());
    let mut obj = c.get(&path).await?.body;
    obj["status"] = json!({"replicas": 1, "readyReplicas": 1});
    obj["spec"]["replicas"] = json!(9);
    // Unconditional (no resourceVersion): on a real cluster the deployment controller writes the
    // status between the read and this update, which would make it a 409 Conflict.
    obj["metadata"]
        .as_object_mut()
        .ok_or("metadata")?
        .remove("resourceVersion");
    let r = c
        .request(
            "PUT",
            &format!("{path}/status?fieldManager=kube-controller-manager"),
            Some("application/json"),
            Some(&obj),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"]["readyReplicas"], 1);
    assert_eq!(r.body["spec"]["replicas"], 1, "/status ignores spec");
    assert_eq!(
        r.body["metadata"]["generation"],
        created.body["metadata"]["generation"]
    );
    let e = entry(&r.body, "kube-controller-manager").unwrap();
    assert_eq!(e["subresource"], "status");
    Ok(())
}

#[tokio::test]
async fn fields_v1_encodings_over_http() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    // The creator owns data.a, so the object has managedFields and later updates are tracked.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "1"}});
    c.post(&format!("{CM}?fieldManager=creator"), &cm).await?;
    let r = c
        .patch(
            &format!("{CM}/c1?fieldManager=labeller"),
            "merge",
            &json!({"metadata": {"labels": {"x": "1"}}}),
        )
        .await?;
    assert_eq!(
        entry(&r.body, "labeller").unwrap()["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    );
    let d = c
        .apply(
            &format!("{DEPLOY}/web"),
            "fieldwise",
            false,
            &deployment(Some(1)),
        )
        .await?;
    let spec = &entry(&d.body, "fieldwise").unwrap()["fieldsV1"]["f:spec"];
    assert_eq!(spec["f:selector"], json!({}), "LabelSelector is atomic");
    let ctr = &spec["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert_eq!(ctr["."], json!({}));
    assert_eq!(
        ctr["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"],
        json!({".": {}, "f:containerPort": {}})
    );
    Ok(())
}

#[tokio::test]
async fn managed_fields_order_reset_and_user_agent_manager() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{CM}/c1");
    let ua = c
        .clone()
        .with_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/abc");
    ua.post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "1"}})).await?;
    let r = c
        .apply(&path, "applier", false, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"b": "2"}}))
        .await?;
    let order: Vec<(&str, &str)> = r.body["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("applier", "Apply"), ("kubectl", "Update")],
        "Apply entries first; UA-derived manager"
    );
    let wiped = c
        .patch(
            &path,
            "merge",
            &json!({"metadata": {"managedFields": [{}]}}),
        )
        .await?;
    assert!(
        wiped.body["metadata"].get("managedFields").is_none(),
        "[{{}}] wipes every entry"
    );
    let untracked = c
        .patch(
            &format!("{path}?fieldManager=later"),
            "merge",
            &json!({"data": {"c": "3"}}),
        )
        .await?;
    assert!(
        untracked.body["metadata"].get("managedFields").is_none(),
        "updates untracked until the next apply"
    );
    Ok(())
}

#[tokio::test]
async fn field_manager_is_validated() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let long = "m".repeat(129);
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}});
    let r = c.apply(&format!("{CM}/c1"), &long, false, &cfg).await?;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"
    );
    let r = c.post(&format!("{CM}?fieldManager={long}"), &cfg).await?;
    assert_eq!(r.body["details"]["kind"], "CreateOptions");
    let ok = c
        .apply(&format!("{CM}/c1"), &"m".repeat(128), false, &cfg)
        .await?;
    assert_eq!(ok.status, 201);
    Ok(())
}
