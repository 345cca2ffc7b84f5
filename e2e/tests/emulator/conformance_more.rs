//! More black-box conformance: the HPA handover procedure (spec §2.4), watches with selectors,
//! the refused streaming of initial events, the root CA every namespace holds, request accounting
//! and request hooks.

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

    // kube-apiserver 1.33 has the WatchList feature gate off by default: a watch asking for its
    // initial events as a stream is refused, whatever else it asks for.
    let streamed = c
        .get(&format!(
            "{CM}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
        ))
        .await?;
    assert_eq!(streamed.status, 422, "{}", streamed.text);
    assert_eq!(streamed.body["reason"], "Invalid");
    assert_eq!(
        streamed.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is \
         forbidden for watch unless the WatchList feature gate is enabled"
    );
    assert_eq!(
        streamed.body["details"],
        json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": [{
            "reason": "FieldValueForbidden", "field": "sendInitialEvents",
            "message": "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"}]})
    );
    let unmatched = c
        .get(&format!("{CM}?watch=true&sendInitialEvents=false"))
        .await?;
    assert_eq!(
        unmatched.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents \
         requires setting resourceVersionMatch to NotOlderThan, sendInitialEvents: Forbidden: \
         sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled]"
    );
    let listed = c
        .get(&format!(
            "{CM}?sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        ))
        .await?;
    assert_eq!(
        listed.body["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: \
         resourceVersionMatch is forbidden unless resourceVersion is provided, sendInitialEvents: \
         Forbidden: sendInitialEvents is forbidden for list]"
    );
    Ok(())
}

const ROOT_CA: &str = "kube-root-ca.crt";

/// Whether a watch event shows the root CA ConfigMap as published: the certificate its only data.
fn published_root_ca(event: &Value) -> bool {
    let config_map = &event["object"];
    config_map["metadata"]["name"] == ROOT_CA
        && event["type"] != "DELETED"
        && config_map["data"]
            .as_object()
            .is_some_and(|data| data.len() == 1)
        && config_map["data"]["ca.crt"]
            .as_str()
            .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----\n"))
}

/// Every namespace holds kube-root-ca.crt, published (and restored when deleted or changed) by
/// kube-controller-manager, and owned by nothing.
#[tokio::test]
async fn every_namespace_holds_the_root_ca() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let path = format!("/api/v1/namespaces/{namespace}/configmaps/{ROOT_CA}");
        let found = c.get(&path).await?;
        assert_eq!(found.status, 200, "{namespace}: {}", found.text);
    }
    let root_ca = c.get(&format!("{CM}/{ROOT_CA}")).await?.body;
    assert!(
        published_root_ca(&json!({"type": "ADDED", "object": root_ca})),
        "{root_ca}"
    );
    assert!(
        root_ca["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .is_some_and(|d| d
                .starts_with("Contains a CA bundle that can be used to verify the kube-apiserver"))
    );
    assert!(root_ca["metadata"].get("ownerReferences").is_none());
    assert_eq!(managers(&root_ca), ["kube-controller-manager"]);

    let watch_from = |rv: &Value| {
        format!(
            "{CM}?watch=true&fieldSelector=metadata.name%3D{ROOT_CA}&resourceVersion={}",
            rv.as_str().unwrap_or("")
        )
    };
    let changed = c
        .patch(
            &format!("{CM}/{ROOT_CA}"),
            "merge",
            &json!({"data": {"ca.crt": "x", "extra": "y"}}),
        )
        .await?;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let mut w = c
        .watch(&watch_from(&changed.body["metadata"]["resourceVersion"]))
        .await?;
    w.until(Duration::from_secs(30), published_root_ca).await?;
    let deleted = c.delete(&format!("{CM}/{ROOT_CA}"), None).await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let mut w = c
        .watch(&watch_from(&deleted.body["metadata"]["resourceVersion"]))
        .await?;
    let restored = w.until(Duration::from_secs(30), published_root_ca).await?;
    assert_eq!(restored["type"], "ADDED");

    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "root-ca-probe"}});
    assert_eq!(c.post("/api/v1/namespaces", &namespace).await?.status, 201);
    let mut w = c
        .watch("/api/v1/namespaces/root-ca-probe/configmaps?watch=true")
        .await?;
    w.until(Duration::from_secs(30), published_root_ca).await?;
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
