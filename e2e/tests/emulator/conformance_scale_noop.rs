//! Writes through `/scale` that change nothing are no-ops, as on kube-apiserver: the same
//! resourceVersion and generation, and no managedFields entry for the writer (an Update manager
//! owns only what it changed). kubectl reports them as `(no change)`.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};
use serde_json::{Value, json};

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};
use crate::target::Server;

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}
        }
    })
}

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["manager"].as_str().map(str::to_owned))
        .collect()
}

/// Whether a watch event shows the Deployment's rollout complete: the deployment controller's last
/// write (it writes again only when something changes).
fn rolled_out(event: &Value) -> bool {
    let deployment = &event["object"];
    let status = &deployment["status"];
    let complete = status["conditions"].as_array().is_some_and(|conditions| {
        conditions
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable")
    });
    complete
        && status["observedGeneration"] == deployment["metadata"]["generation"]
        && status["availableReplicas"] == deployment["spec"]["replicas"]
}

/// The Deployment `web` once nothing else writes it. On a real server kube-controller-manager writes
/// its status (and revision annotation) until the rollout completes (kwok's nodes run the pods); a
/// no-op must be judged against that final object. The emulator runs no controllers: the applied
/// object is final.
async fn settled(server: &Server, c: &RawClient) -> Result<Value, TestError> {
    if let Server::Emulator(_) = server {
        return Ok(c.get(&format!("{DEPLOY}/web")).await?.body);
    }
    let mut watch = c
        .watch(&format!(
            "{DEPLOY}?watch=true&fieldSelector=metadata.name%3Dweb"
        ))
        .await?;
    let event = watch.until(Duration::from_secs(60), rolled_out).await?;
    Ok(event["object"].clone())
}

#[tokio::test]
async fn scale_writes_that_change_nothing_are_noops() -> Result<(), TestError> {
    let (server, c) = crate::target::start(Options::default()).await?;
    let path = format!("{DEPLOY}/web");
    c.apply(&path, "fieldwise", false, &deployment()).await?;
    let before = settled(&server, &c).await?;
    let rv = before["metadata"]["resourceVersion"].clone();

    // Only status.replicas, which a Scale write cannot change.
    let status_only = c
        .patch(
            &format!("{path}/scale?fieldManager=status-writer"),
            "merge",
            &json!({"status": {"replicas": 7}}),
        )
        .await?;
    assert_eq!(status_only.status, 200, "{}", status_only.text);
    assert_eq!(status_only.body["metadata"]["resourceVersion"], rv);
    let replicas = before["status"]["replicas"].as_i64().unwrap_or(0);
    assert_eq!(status_only.body["status"]["replicas"], replicas);

    // The replicas it already has, by merge patch and by PUT of the Scale as read.
    c.patch(
        &format!("{path}/scale?fieldManager=same-replicas"),
        "merge",
        &json!({"spec": {"replicas": 2}}),
    )
    .await?;
    let scale = c.get(&format!("{path}/scale")).await?.body;
    let put = c
        .put(&format!("{path}/scale?fieldManager=same-put"), &scale)
        .await?;
    assert_eq!(put.status, 200, "{}", put.text);

    // Applied: a manager applying only the Scale's status owns nothing and changes nothing.
    let applied = c
        .apply(
            &format!("{path}/scale"),
            "status-applier",
            false,
            &json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "web"}, "status": {"replicas": 4}}),
        )
        .await?;
    assert_eq!(applied.status, 200, "{}", applied.text);
    // A PUT whose status differs from the live one.
    let mut scale = scale;
    scale["status"]["replicas"] = json!(9);
    let put = c
        .put(&format!("{path}/scale?fieldManager=status-put"), &scale)
        .await?;
    assert_eq!(put.status, 200, "{}", put.text);

    let after = c.get(&path).await?.body;
    assert_eq!(after["metadata"]["resourceVersion"], rv);
    assert_eq!(
        after["metadata"]["generation"],
        before["metadata"]["generation"]
    );
    // No writer of the Scale became a manager (a real server's controller is one already).
    assert_eq!(managers(&after), managers(&before));
    assert!(managers(&after).contains(&"fieldwise".to_owned()));
    assert_eq!(
        after["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reports_a_noop_scale_patch_as_no_change() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    c.apply(&format!("{DEPLOY}/web"), "fieldwise", false, &deployment())
        .await?;
    settled(&server, &c).await?;
    let k = Kubectl::new(&server, "scale-noop")?;
    let out = k
        .ok(&[
            "patch",
            "deployment",
            "web",
            "--subresource=scale",
            "--type=merge",
            "-p",
            r#"{"status":{"replicas":3}}"#,
        ])
        .await?;
    // kubectl names the object the server answered with: the Scale.
    assert_eq!(out.trim(), "scale.autoscaling/web patched (no change)");
    Ok(())
}
