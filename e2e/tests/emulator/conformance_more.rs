//! More black-box conformance: the HPA handover procedure (spec §2.4), watches with selectors,
//! initial-events bookmarks, request accounting and request hooks.

use std::sync::Arc;
use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::emulator::{ApiError, RequestHook, RequestInfo};
use fieldwise_e2e::testkit::{RawClient, TestError};

use crate::target::Server;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";
const WAIT: Duration = Duration::from_secs(5);

async fn setup() -> Result<(Server, RawClient), TestError> {
    let (emu, c) = crate::target::start(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    })
    .await?;
    Ok((emu, c))
}

fn deployment(replicas: Option<i64>) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}});
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

fn managers(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["manager"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn hpa_handover_without_reset_to_one() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let path = format!("{DEPLOY}/web");
    c.apply(&path, "kubectl", false, &deployment(Some(3)))
        .await?;
    let handover = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let r = c.apply(&path, "handover-to-hpa", false, &handover).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c.apply(&path, "kubectl", false, &deployment(None)).await?;
    assert_eq!(
        r.body["spec"]["replicas"], 3,
        "replicas stays: handover-to-hpa still owns it"
    );
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 5}});
    let r = c
        .put(
            &format!("{path}/scale?fieldManager=kube-controller-manager"),
            &scale,
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = c.get(&path).await?.body;
    assert_eq!(d["spec"]["replicas"], 5);
    let ms = managers(&d);
    assert!(
        !ms.contains(&"handover-to-hpa".to_string()),
        "the handover manager lost its only field: {ms:?}"
    );
    assert!(ms.contains(&"kube-controller-manager".to_string()));
    Ok(())
}

#[tokio::test]
async fn watch_selector_transitions_and_initial_events() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let created = c.post(CM, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s1", "labels": {"app": "x"}}})).await?;
    let mut w = c
        .watch(&format!(
            "{CM}?watch=true&labelSelector=app%3Dy&resourceVersion={}",
            created.body["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
        ))
        .await?;
    c.patch(
        &format!("{CM}/s1"),
        "merge",
        &json!({"metadata": {"labels": {"app": "y"}}}),
    )
    .await?;
    let ev = w.next(WAIT).await?.ok_or("stream ended")?;
    assert_eq!(ev["type"], "ADDED", "entering the selection");
    c.patch(
        &format!("{CM}/s1"),
        "merge",
        &json!({"metadata": {"labels": {"app": "z"}}}),
    )
    .await?;
    let ev = w.next(WAIT).await?.ok_or("stream ended")?;
    assert_eq!(ev["type"], "DELETED", "leaving the selection");

    let mut s = c.watch(&format!("{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")).await?;
    let first = s.next(WAIT).await?.ok_or("stream ended")?;
    assert_eq!(first["type"], "ADDED");
    let bm = s.next(WAIT).await?.ok_or("stream ended")?;
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    Ok(())
}

#[tokio::test]
async fn request_counters() -> Result<(), TestError> {
    let (emu, c) = setup().await?;
    let path = format!("{DEPLOY}/web");
    c.apply(&path, "fieldwise", false, &deployment(Some(2)))
        .await?;
    c.apply(&path, "fieldwise", false, &deployment(Some(2)))
        .await?;
    c.get(&path).await?;
    c.patch(
        &format!("{path}/scale?fieldManager=hpa"),
        "merge",
        &json!({"spec": {"replicas": 3}}),
    )
    .await?;
    let counters = emu.emulator().counters();
    assert_eq!(counters.writes_by("fieldwise"), 2);
    assert_eq!(
        counters
            .count(|k| k.verb == "patch" && k.patch_type == "apply" && k.resource == "deployments"),
        2
    );
    assert_eq!(
        counters.count(|k| k.verb == "get" && k.resource == "deployments"),
        1
    );
    assert_eq!(
        counters.count(|k| k.subresource == "scale" && k.field_manager == "hpa"),
        1
    );
    counters.reset();
    assert_eq!(counters.writes(), 0);
    Ok(())
}

struct FailConfigMapCreates;

impl RequestHook for FailConfigMapCreates {
    fn before(&self, req: &RequestInfo) -> Option<ApiError> {
        (req.verb == "create" && req.resource == "configmaps")
            .then(|| ApiError::internal("injected fault"))
    }
}

#[tokio::test]
async fn hooks_can_fail_requests() -> Result<(), TestError> {
    let (emu, c) = setup().await?;
    emu.emulator().add_hook(Arc::new(FailConfigMapCreates));
    let r = c
        .post(
            CM,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}}),
        )
        .await?;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["message"], "injected fault");
    assert_eq!(c.get(&format!("{CM}/h")).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn dry_run_writes_nothing() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let r = c
        .post(
            &format!("{CM}?dryRun=All"),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}),
        )
        .await?;
    assert_eq!(r.status, 201);
    assert_eq!(c.get(&format!("{CM}/d")).await?.status, 404);
    Ok(())
}

/// Records who sent each request.
#[derive(Default)]
struct Users(std::sync::Mutex<Vec<String>>);

impl RequestHook for Users {
    fn before(&self, req: &RequestInfo) -> Option<ApiError> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(req.user.clone());
        None
    }
}

#[tokio::test]
async fn a_kubeconfigs_token_names_the_requesting_user() -> Result<(), TestError> {
    let (emu, _) = setup().await?;
    let users = Arc::new(Users::default());
    emu.emulator().add_hook(users.clone());
    let path =
        std::env::temp_dir().join(format!("emulator-user-{}.kubeconfig", std::process::id()));
    emu.emulator().write_kubeconfig_as(&path, "operator-a")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let _ = std::fs::remove_file(&path);
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let as_operator = kube::Client::try_from(config)?;
    let anonymous = emu.emulator().client()?;
    for client in [as_operator, anonymous] {
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::default_namespaced(client);
        api.list(&Default::default()).await?;
    }
    let seen = users.0.lock().expect("not poisoned").clone();
    assert_eq!(seen, ["operator-a", "system:anonymous"]);
    Ok(())
}
