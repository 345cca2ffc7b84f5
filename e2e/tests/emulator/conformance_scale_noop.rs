//! Writes through `/scale` that change nothing are no-ops, as on kube-apiserver: the same
//! resourceVersion and generation, and no managedFields entry for the writer (an Update manager
//! owns only what it changed). kubectl reports them as `(no change)`.

use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, Options};
use serde_json::{Value, json};

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

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

#[tokio::test]
async fn scale_writes_that_change_nothing_are_noops() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let c = RawClient::new(&emu)?;
    let path = format!("{DEPLOY}/web");
    c.apply(&path, "fieldwise", false, &deployment()).await?;
    let before = c.get(&path).await?.body;
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
    assert_eq!(status_only.body["status"]["replicas"], 0);

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
    assert_eq!(managers(&after), ["fieldwise"]);
    assert_eq!(
        after["metadata"]["managedFields"],
        before["metadata"]["managedFields"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reports_a_noop_scale_patch_as_no_change() -> Result<(), TestError> {
    skip_without_kubectl!();
    let emu = Emulator::start(Options::default()).await?;
    let c = RawClient::new(&emu)?;
    c.apply(&format!("{DEPLOY}/web"), "fieldwise", false, &deployment())
        .await?;
    let k = Kubectl::new(&emu, "scale-noop")?;
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
