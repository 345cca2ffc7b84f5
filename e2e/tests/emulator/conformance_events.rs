//! Events have one storage and two views (core `v1` and `events.k8s.io/v1`), as in a real cluster:
//! an Event written through either is read, listed, selected and watched through both, and kubectl's
//! `get events`, `events` and `describe` (all core v1) show Events that controllers wrote through
//! events.k8s.io (as kube-rs's `Recorder` does).

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::{Value, json};

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

const CORE: &str = "/api/v1/namespaces/default/events";
const EVENTS_V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}
        }
    })
}

fn recorder_event(uid: &Value) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.scaled"},
        "eventTime": "2026-12-04T10:00:00.000000Z",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                      "namespace": "default", "uid": uid},
        "reason": "ReplicasChanged",
        "note": "scaled web to 3 replicas",
        "type": "Normal",
        "action": "Scale",
        "reportingController": "fieldwise",
        "reportingInstance": "fieldwise-0",
    })
}

#[tokio::test]
async fn an_event_has_one_storage_and_two_views() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let written = c.post(EVENTS_V1, &recorder_event(&json!("u-1"))).await?;
    assert_eq!(written.status, 201, "{}", written.text);
    assert_eq!(written.body["note"], "scaled web to 3 replicas");

    let core = c.get(&format!("{CORE}/web.scaled")).await?;
    assert_eq!(core.status, 200, "{}", core.text);
    assert_eq!(core.body["apiVersion"], "v1");
    assert_eq!(core.body["message"], "scaled web to 3 replicas");
    assert_eq!(core.body["involvedObject"]["name"], "web");
    assert_eq!(core.body["reportingComponent"], "fieldwise");
    assert_eq!(core.body["reportingInstance"], "fieldwise-0");
    assert!(core.body.get("note").is_none() && core.body.get("regarding").is_none());
    assert_eq!(
        core.body["metadata"]["uid"],
        written.body["metadata"]["uid"]
    );
    assert_eq!(
        core.body["metadata"]["resourceVersion"],
        written.body["metadata"]["resourceVersion"]
    );

    let selected = c
        .get(&format!("{CORE}?fieldSelector=involvedObject.name%3Dweb"))
        .await?;
    assert_eq!(selected.body["items"].as_array().map(Vec::len), Some(1));
    let selected = c
        .get(&format!("{EVENTS_V1}?fieldSelector=regarding.name%3Dweb"))
        .await?;
    assert_eq!(selected.body["items"].as_array().map(Vec::len), Some(1));

    // The other way: a core Event (client-go's old recorder) read through events.k8s.io.
    let legacy = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.legacy"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "Old", "message": "from the core API", "count": 4,
        "source": {"component": "old-controller"},
    });
    assert_eq!(c.post(CORE, &legacy).await?.status, 201);
    let v1 = c.get(&format!("{EVENTS_V1}/web.legacy")).await?;
    assert_eq!(v1.body["note"], "from the core API");
    assert_eq!(v1.body["deprecatedCount"], 4);
    assert_eq!(v1.body["deprecatedSource"]["component"], "old-controller");
    assert_eq!(v1.body["regarding"]["name"], "web");

    // Patching through one view changes what the other serves.
    let patched = c
        .patch(
            &format!("{EVENTS_V1}/web.scaled"),
            "merge",
            &json!({"series": {"count": 2, "lastObservedTime": "2026-12-04T10:01:00.000000Z"}}),
        )
        .await?;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let core = c.get(&format!("{CORE}/web.scaled")).await?;
    assert_eq!(core.body["series"]["count"], 2);
    assert_eq!(core.body["message"], "scaled web to 3 replicas");
    Ok(())
}

#[tokio::test]
async fn core_watchers_see_events_k8s_io_writes() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let mut watch = c.watch(&format!("{CORE}?watch=true")).await?;
    c.post(EVENTS_V1, &recorder_event(&json!("u-1"))).await?;
    let seen = watch
        .until(Duration::from_secs(10), |ev| {
            ev["type"] == "ADDED" && ev["object"]["metadata"]["name"] == "web.scaled"
        })
        .await?;
    assert_eq!(seen["object"]["message"], "scaled web to 3 replicas");
    assert_eq!(seen["object"]["apiVersion"], "v1");
    Ok(())
}

/// The line of kubectl's output showing `reason` (a real cluster's controllers add their own Events).
fn event_line<'a>(output: &'a str, reason: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(reason))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_events_written_through_events_k8s_io() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    let web = c.post(DEPLOY, &deployment()).await?;
    assert_eq!(web.status, 201, "{}", web.text);
    let uid = web.body["metadata"]["uid"].clone();
    c.post(EVENTS_V1, &recorder_event(&uid)).await?;
    let k = Kubectl::new(&server, "events")?;

    // `get events` prints the server's Event table: the object's kind in lower case, and its name
    // and source only in the wide columns.
    let listed = k.ok(&["get", "events"]).await?;
    let line = event_line(&listed, "ReplicasChanged");
    assert!(line.contains("deployment/web"), "{listed}");
    assert!(line.contains("scaled web to 3 replicas"), "{listed}");
    assert!(!line.contains("web.scaled"), "{listed}");
    let wide = k.ok(&["get", "events", "-o", "wide"]).await?;
    let line = event_line(&wide, "ReplicasChanged");
    assert!(line.contains("fieldwise, fieldwise-0"), "{wide}");
    let count_and_name: Vec<&str> = line.split_whitespace().rev().take(2).collect();
    assert_eq!(count_and_name, ["web.scaled", "1"], "{wide}");
    // `kubectl events` prints on its own, the kind as written.
    let events = k.ok(&["events"]).await?;
    let line = event_line(&events, "ReplicasChanged");
    assert!(line.contains("Deployment/web"), "{events}");
    assert!(line.contains("scaled web to 3 replicas"), "{events}");
    let described = k.ok(&["describe", "deployment", "web"]).await?;
    let section = described.split("Events:").nth(1).unwrap_or_default();
    assert!(section.contains("ReplicasChanged"), "{described}");
    assert!(section.contains("scaled web to 3 replicas"), "{described}");
    Ok(())
}
