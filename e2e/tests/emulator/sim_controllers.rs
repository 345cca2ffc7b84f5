//! The simulated controllers, observed through a kube client: workload status, the never-ready
//! switch, Job completion, the HPA formula and bounds, and KEDA's HPA scaling a custom resource
//! through its scale subresource. Every wait is a watch with a timeout.

use std::time::Duration;

use fieldwise_e2e::sim::{
    CONTROLLER_MANAGER, KEDA_MANAGER, NEVER_READY_ANNOTATION, SimOptions, Simulators,
};
use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, EmulatorHandle};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const NS: &str = "default";

async fn start(
    options: SimOptions,
) -> Result<(EmulatorHandle, Simulators, kube::Client), TestError> {
    let emu = Emulator::start(Default::default()).await?;
    let sims = Simulators::start(&emu, options);
    let client = emu.client()?;
    Ok((emu, sims, client))
}

fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn deployments(c: &kube::Client) -> Api<DynamicObject> {
    api(c, "apps", "v1", "Deployment", "deployments")
}

fn hpas(c: &kube::Client) -> Api<DynamicObject> {
    api(
        c,
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    )
}

async fn apply(
    api: &Api<DynamicObject>,
    name: &str,
    manager: &str,
    obj: Value,
) -> Result<(), TestError> {
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// Waits (by watch) until `cond` holds for the object's JSON, and returns that JSON.
async fn wait_for(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Result<Value, TestError> {
    let check = |o: Option<&DynamicObject>| {
        o.and_then(|o| serde_json::to_value(o).ok())
            .is_some_and(|v| cond(&v))
    };
    let found = tokio::time::timeout(WAIT, await_condition(api.clone(), name, check)).await;
    match found {
        Ok(Ok(Some(o))) => Ok(serde_json::to_value(o)?),
        Ok(Ok(None)) => Err(format!("{name} was deleted while waiting for {what}").into()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            let now = api
                .get_opt(name)
                .await?
                .map(|o| serde_json::to_value(o).unwrap_or_default());
            Err(format!("timed out waiting for {name}: {what}; last seen: {now:#?}").into())
        }
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn condition_is(obj: &Value, kind: &str, status: &str) -> bool {
    condition(obj, kind).is_some_and(|c| c["status"] == status)
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}})
}

fn managed_entry<'a>(obj: &'a Value, manager: &str, subresource: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e["manager"] == manager
                && e.get("subresource").and_then(Value::as_str).unwrap_or("") == subresource
        })
}

fn available(obj: &Value, n: i64) -> bool {
    obj["status"]["availableReplicas"] == n
        && obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        && condition_is(obj, "Available", "True")
}

#[tokio::test]
async fn deployment_becomes_available_and_follows_spec() -> Result<(), TestError> {
    let (_emu, _sims, c) = start(SimOptions::default()).await?;
    let d = deployments(&c);
    apply(&d, "web", "test", deployment("web", 2)).await?;
    let obj = wait_for(&d, "web", "2 available", |o| available(o, 2)).await?;
    assert_eq!(obj["status"]["readyReplicas"], 2);
    assert_eq!(obj["status"]["updatedReplicas"], 2);
    assert!(condition_is(&obj, "Progressing", "True"), "{obj:#}");
    assert_eq!(
        condition(&obj, "Progressing").map(|c| c["reason"].clone()),
        Some(json!("NewReplicaSetAvailable"))
    );
    let entry = managed_entry(&obj, CONTROLLER_MANAGER, "status")
        .ok_or("no status entry for kube-controller-manager")?;
    assert_eq!(entry["operation"], "Update");

    apply(&d, "web", "test", deployment("web", 5)).await?;
    let obj = wait_for(&d, "web", "5 available", |o| available(o, 5)).await?;
    assert_eq!(obj["metadata"]["generation"], 2);
    Ok(())
}

#[tokio::test]
async fn never_ready_switch_by_annotation_and_by_api() -> Result<(), TestError> {
    let (_emu, sims, c) = start(SimOptions::default()).await?;
    let d = deployments(&c);
    let mut stuck = deployment("stuck", 2);
    stuck["metadata"]["annotations"] = json!({NEVER_READY_ANNOTATION: "true"});
    apply(&d, "stuck", "test", stuck).await?;
    let obj = wait_for(&d, "stuck", "observed but unavailable", |o| {
        o["status"]["observedGeneration"] == 1 && condition_is(o, "Available", "False")
    })
    .await?;
    assert_eq!(obj["status"]["unavailableReplicas"], 2);
    assert!(obj["status"].get("readyReplicas").is_none(), "{obj:#}");
    assert_eq!(
        condition(&obj, "Available").map(|c| c["reason"].clone()),
        Some(json!("MinimumReplicasUnavailable"))
    );

    // Switched by the runtime API: stays unavailable through a spec change, recovers when released.
    sims.set_never_ready(NS, Some("api"), true);
    apply(&d, "api", "test", deployment("api", 1)).await?;
    wait_for(&d, "api", "observed but unavailable", |o| {
        o["status"]["observedGeneration"] == 1 && condition_is(o, "Available", "False")
    })
    .await?;
    apply(&d, "api", "test", deployment("api", 3)).await?;
    wait_for(&d, "api", "gen 2 observed, still unavailable", |o| {
        o["status"]["observedGeneration"] == 2 && o["status"]["unavailableReplicas"] == 3
    })
    .await?;
    sims.set_never_ready(NS, Some("api"), false);
    wait_for(&d, "api", "3 available", |o| available(o, 3)).await?;
    Ok(())
}

#[tokio::test]
async fn statefulset_and_job() -> Result<(), TestError> {
    let (_emu, _sims, c) = start(SimOptions::default()).await?;
    let sts = api(&c, "apps", "v1", "StatefulSet", "statefulsets");
    let mut s = deployment("db", 3);
    s["kind"] = json!("StatefulSet");
    s["spec"]["serviceName"] = json!("db");
    apply(&sts, "db", "test", s).await?;
    let obj = wait_for(&sts, "db", "3 ready", |o| o["status"]["readyReplicas"] == 3).await?;
    assert_eq!(obj["status"]["currentReplicas"], 3);
    assert_eq!(obj["status"]["observedGeneration"], 1);

    let jobs = api(&c, "batch", "v1", "Job", "jobs");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "run", "image": "busybox"}]}}}});
    apply(&jobs, "once", "test", job).await?;
    let obj = wait_for(&jobs, "once", "Complete", |o| {
        condition_is(o, "Complete", "True")
    })
    .await?;
    assert_eq!(obj["status"]["succeeded"], 2);
    assert!(obj["status"]["completionTime"].is_string());
    Ok(())
}

/// A template change is reported as the statefulset controller does: first the rollout observed
/// (new generation, `updateRevision` new, `currentRevision` old, no replica updated, old pods still
/// ready), after the rollout time the new revision current on every replica.
#[tokio::test]
async fn statefulset_rolls_to_a_new_revision_on_template_change() -> Result<(), TestError> {
    // Simulated rollout time, long enough that the watch sees the rolling state before it ends.
    let options = SimOptions {
        ready_delay: Duration::from_secs(3),
        ..SimOptions::default()
    };
    let (_emu, _sims, c) = start(options).await?;
    let sts = api(&c, "apps", "v1", "StatefulSet", "statefulsets");
    let mut s = deployment("db", 2);
    s["kind"] = json!("StatefulSet");
    s["spec"]["serviceName"] = json!("db");
    apply(&sts, "db", "test", s.clone()).await?;
    let first = wait_for(&sts, "db", "2 ready", |o| o["status"]["readyReplicas"] == 2).await?;
    let old = first["status"]["currentRevision"].clone();
    assert_eq!(first["status"]["updateRevision"], old);

    s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    apply(&sts, "db", "test", s).await?;
    let rolling = wait_for(&sts, "db", "rollout observed", |o| {
        o["status"]["observedGeneration"] == 2 && o["status"]["updateRevision"] != old
    })
    .await?;
    let status = &rolling["status"];
    assert_eq!(status["currentRevision"], old, "{status}");
    assert!(status.get("updatedReplicas").is_none(), "{status}");
    assert_eq!(
        status["readyReplicas"], 2,
        "the old pods still serve: {status}"
    );
    let new = status["updateRevision"].clone();
    assert!(
        new.as_str().is_some_and(|r| r.starts_with("db-")),
        "{status}"
    );

    let done = wait_for(&sts, "db", "rolled out", |o| {
        o["status"]["currentRevision"] == o["status"]["updateRevision"]
    })
    .await?;
    let status = &done["status"];
    assert_eq!(status["currentRevision"], new, "{status}");
    assert_eq!(status["updatedReplicas"], 2, "{status}");
    assert_eq!(status["readyReplicas"], 2, "{status}");
    assert_eq!(status["observedGeneration"], 2, "{status}");
    Ok(())
}

fn hpa(name: &str, target: Value, min: i64, max: i64) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {"scaleTargetRef": target, "minReplicas": min, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]}})
}

fn replicas_is(n: i64) -> impl Fn(&Value) -> bool {
    move |o: &Value| o["spec"]["replicas"] == n
}

#[tokio::test]
async fn hpa_scales_a_deployment_within_bounds_with_the_formula() -> Result<(), TestError> {
    let (_emu, sims, c) = start(SimOptions::default()).await?;
    let d = deployments(&c);
    let h = hpas(&c);
    apply(&d, "web", "test", deployment("web", 1)).await?;
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    apply(&h, "web", "test", hpa("web", target, 2, 5)).await?;

    // Below minReplicas: raised to the minimum, with no metric at all.
    let obj = wait_for(&d, "web", "replicas 2 (min)", replicas_is(2)).await?;
    let entry = managed_entry(&obj, CONTROLLER_MANAGER, "scale").ok_or("no scale entry")?;
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(
        managed_entry(&obj, "test", "")
            .is_some_and(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_none()),
        "the /scale write took spec.replicas from the applier: {obj:#}"
    );

    // 100% against a 50% target: ceil(2 × 2) = 4.
    sims.set_metric(NS, "web", 100.0);
    wait_for(&d, "web", "replicas 4", replicas_is(4)).await?;
    let status = wait_for(&h, "web", "desired 4", |o| {
        o["status"]["desiredReplicas"] == 4
    })
    .await?;
    assert_eq!(
        status["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        100
    );

    // Within the 10% tolerance (ratio 1.08): no change, reported as such.
    sims.set_metric(NS, "web", 54.0);
    let status = wait_for(&h, "web", "metric 54 seen", |o| {
        o["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] == 54
    })
    .await?;
    assert_eq!(status["status"]["desiredReplicas"], 4);
    assert_eq!(d.get("web").await?.data["spec"]["replicas"], 4);

    // ceil(4 × 10) = 40, capped at maxReplicas.
    sims.set_metric(NS, "web", 500.0);
    wait_for(&d, "web", "replicas 5 (max)", replicas_is(5)).await?;
    let status = wait_for(&h, "web", "limited", |o| {
        condition_is(o, "ScalingLimited", "True")
    })
    .await?;
    assert_eq!(
        condition(&status, "ScalingLimited").map(|c| c["reason"].clone()),
        Some(json!("TooManyReplicas"))
    );

    // ceil(5 × 0.2) = 1, raised to minReplicas.
    sims.set_metric(NS, "web", 10.0);
    wait_for(&d, "web", "replicas 2 (min)", replicas_is(2)).await?;
    // The HPA status reports the workload's replicas once the simulated rollout is done.
    wait_for(&h, "web", "current 2", |o| {
        o["status"]["currentReplicas"] == 2 && o["status"]["desiredReplicas"] == 2
    })
    .await?;
    Ok(())
}

const WIDGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {"group": "example.com", "scope": "Namespaced",
    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}}]}}"#;

#[tokio::test]
async fn keda_hpa_scales_a_custom_resource_through_scale() -> Result<(), TestError> {
    let (_emu, sims, c) = start(SimOptions::default()).await?;
    let crds = Api::<DynamicObject>::all_with(
        c.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.patch(
        "widgets.example.com",
        &PatchParams::apply("test"),
        &Patch::Apply(serde_json::from_str::<Value>(WIDGET_CRD)?),
    )
    .await?;
    sims.install_keda_crd().map_err(|e| e.message)?;
    let widgets = api(&c, "example.com", "v1", "Widget", "widgets");
    apply(&widgets, "w", "test", json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"replicas": 1}})).await?;

    let so_api = api(&c, "keda.sh", "v1alpha1", "ScaledObject", "scaledobjects");
    let so = json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "w-scaler"},
        "spec": {"scaleTargetRef": {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"},
            "minReplicaCount": 1, "maxReplicaCount": 6,
            "triggers": [{"type": "prometheus", "metadata": {"threshold": "10", "query": "sum(rate(x[1m]))"}}]}});
    apply(&so_api, "w-scaler", "test", so).await?;

    let h = hpas(&c);
    let hpa = wait_for(&h, "keda-hpa-w-scaler", "created", |_| true).await?;
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"})
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    let owner = &hpa["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("ScaledObject"), Some("w-scaler"), Some(true))
    );
    assert!(managed_entry(&hpa, KEDA_MANAGER, "").is_some(), "{hpa:#}");

    // 40 against a threshold of 10: ceil(1 × 4) = 4, then 5: ceil(4 × 0.5) = 2.
    sims.set_metric(NS, "keda-hpa-w-scaler", 40.0);
    let w = wait_for(&widgets, "w", "replicas 4", replicas_is(4)).await?;
    let entry =
        managed_entry(&w, CONTROLLER_MANAGER, "scale").ok_or("no scale entry on the widget")?;
    assert_eq!(
        (entry["operation"].as_str(), &entry["fieldsV1"]),
        (Some("Update"), &json!({"f:spec": {"f:replicas": {}}}))
    );
    sims.set_metric(NS, "keda-hpa-w-scaler", 5.0);
    wait_for(&widgets, "w", "replicas 2", replicas_is(2)).await?;

    let so = wait_for(&so_api, "w-scaler", "status", |o| {
        o["status"]["hpaName"] == "keda-hpa-w-scaler"
    })
    .await?;
    assert!(condition_is(&so, "Ready", "True"), "{so:#}");
    Ok(())
}

#[tokio::test]
async fn switched_off_simulators_do_nothing() -> Result<(), TestError> {
    let (_emu, sims, c) = start(SimOptions {
        hpa: true,
        ..SimOptions::none()
    })
    .await?;
    let d = deployments(&c);
    apply(&d, "web", "test", deployment("web", 1)).await?;
    let h = hpas(&c);
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    apply(&h, "web", "test", hpa("web", target, 3, 5)).await?;
    // The HPA acts (its simulator is on); the Deployment's status stays empty (workloads are off).
    let obj = wait_for(&d, "web", "replicas 3", replicas_is(3)).await?;
    sims.shutdown().await;
    assert!(obj["status"].get("observedGeneration").is_none(), "{obj:#}");
    Ok(())
}
