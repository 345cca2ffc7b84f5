//! Request construction against a mock API server (tower-test): bodies, parameters, order,
//! retries. The mock answers from a per-test function and records every request.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use fieldwise_apply::{
    ApplyError, DesiredObject, Engine, EngineConfig, KindRegistry, KindSpec, Outcome, Owner,
    ReplicasPolicy,
};
use http::{Request, Response};
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{ConfigMap, Service},
    rbac::v1::ClusterRole,
};
use kube::{Client, api::DynamicObject, client::Body};
use serde_json::{Value, json};

const UID: &str = "0f0e0d0c-1111-2222-3333-444455556666";

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
}

struct Reply {
    code: u16,
    body: Value,
    retry_after: Option<&'static str>,
}

fn ok(code: u16, body: Value) -> Reply {
    Reply {
        code,
        body,
        retry_after: None,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    ok(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}),
    )
}

/// Echoes an apply body back as the stored object, with a new resourceVersion.
fn echo(req: &Recorded, code: u16) -> Reply {
    let mut obj = req.body.clone();
    obj["metadata"]["uid"] = json!("new-uid");
    obj["metadata"]["resourceVersion"] = json!("1000");
    ok(code, obj)
}

type Log = Arc<Mutex<Vec<Recorded>>>;

fn registry() -> KindRegistry {
    KindRegistry::new()
        .with(KindSpec::namespaced::<ConfigMap>())
        .with(KindSpec::namespaced::<Service>())
        .with(KindSpec::namespaced::<Deployment>().with_replicas())
        .with(KindSpec::namespaced::<Job>())
        .with(KindSpec::cluster::<ClusterRole>())
}

/// An engine whose client talks to a mock answering with `respond(request, index)`.
fn engine<F>(respond: F) -> (Engine, Log)
where
    F: Fn(&Recorded, usize) -> Reply + Send + 'static,
{
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let server_log = log.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let query = parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query,
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let index = {
                let mut log = server_log.lock().expect("log");
                log.push(recorded.clone());
                log.len() - 1
            };
            let reply = respond(&recorded, index);
            let mut response = Response::builder()
                .status(reply.code)
                .header("content-type", "application/json");
            if let Some(after) = reply.retry_after {
                response = response.header("retry-after", after);
            }
            send.send_response(
                response
                    .body(Body::from(reply.body.to_string().into_bytes()))
                    .expect("response"),
            );
        }
    });
    let client = Client::new(service, "default");
    (
        Engine::with_config(client, registry(), EngineConfig::default()),
        log,
    )
}

fn requests(log: &Log) -> Vec<Recorded> {
    log.lock().expect("log").clone()
}

fn owner() -> Owner {
    Owner {
        api_version: "feast.dev/v1".into(),
        kind: "FeatureStore".into(),
        name: "sample".into(),
        namespace: Some("ns".into()),
        uid: UID.into(),
        app_name: Some("feast".into()),
        adopting: false,
    }
}

fn configmap(name: &str) -> DesiredObject {
    DesiredObject::new(
        "config",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}),
    )
}

fn deployment(replicas: Option<u64>) -> DesiredObject {
    let mut body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}});
    match replicas {
        Some(r) => {
            body["spec"]["replicas"] = json!(r);
            DesiredObject::new("online", body)
        }
        None => DesiredObject::new("online", body).with_replicas(ReplicasPolicy::Released),
    }
}

fn standard_labels(component: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "fieldwise", "app.kubernetes.io/instance": "sample",
           "app.kubernetes.io/name": "feast", "app.kubernetes.io/component": component, "fieldwise.dev/owner-uid": UID})
}

fn owner_refs() -> Value {
    json!([{"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": "sample", "uid": UID,
            "controller": true, "blockOwnerDeletion": true}])
}

/// A schema-free field set for the simple bodies of these tests: struct fields and map keys
/// become `f:`, ownerReferences are keyed by uid, containers by name, other lists are atomic.
fn fields_of(value: &Value, parent: &str) -> Value {
    match value {
        Value::Object(map) if !map.is_empty() && parent != "selector" => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), fields_of(v, k));
            }
            Value::Object(out)
        }
        Value::Array(items) if parent == "ownerReferences" || parent == "containers" => {
            let key = if parent == "ownerReferences" {
                "uid"
            } else {
                "name"
            };
            let mut out = serde_json::Map::new();
            for item in items {
                let mut sub = fields_of(item, "");
                sub["."] = json!({});
                out.insert(format!("k:{{\"{key}\":{}}}", item[key]), sub);
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// The live object as the server would hold it after our apply of `body`.
fn live_after_apply(body: &Value, uid: &str, extra_entries: Vec<Value>) -> DynamicObject {
    let mut ownable = body.clone();
    ownable.as_object_mut().map(|o| {
        o.remove("apiVersion");
        o.remove("kind")
    });
    ownable["metadata"].as_object_mut().map(|m| {
        m.remove("name");
        m.remove("namespace")
    });
    let mut entries = vec![
        json!({"manager": "fieldwise", "operation": "Apply", "apiVersion": body["apiVersion"],
        "fieldsType": "FieldsV1", "fieldsV1": fields_of(&ownable, "")}),
    ];
    entries.extend(extra_entries);
    let mut live = body.clone();
    live["metadata"]["uid"] = json!(uid);
    live["metadata"]["resourceVersion"] = json!("7");
    live["metadata"]["managedFields"] = Value::Array(entries);
    serde_json::from_value(live).expect("dynamic object")
}

/// The decorated body the engine sends for a desired object.
fn decorated(desired: &DesiredObject) -> Value {
    let mut body = desired.body.clone();
    body["metadata"]["namespace"] = json!("ns");
    body["metadata"]["labels"] = standard_labels(&desired.component);
    body["metadata"]["ownerReferences"] = owner_refs();
    if desired.replicas == ReplicasPolicy::Released {
        body["spec"].as_object_mut().map(|s| s.remove("replicas"));
    }
    body
}

fn assert_apply(req: &Recorded, path: &str, manager: &str, force: bool) {
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, path);
    assert_eq!(req.content_type, "application/apply-patch+yaml");
    assert_eq!(
        req.query.get("fieldManager").map(String::as_str),
        Some(manager)
    );
    assert_eq!(
        req.query.get("force").map(String::as_str),
        force.then_some("true")
    );
}

#[tokio::test]
async fn creates_fresh_minimal_objects_under_one_manager() {
    let (engine, log) = engine(|req, _| echo(req, 201));
    engine.preload(vec![]).expect("preload");
    let desired = vec![configmap("cfg"), deployment(Some(3))];
    let report = engine.reconcile(&owner(), desired.clone()).await;
    assert!(!report.has_errors(), "{report:?}");
    assert_eq!(
        report.outcome_of("ConfigMap", "cfg"),
        Some(&Outcome::Created)
    );
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::Created)
    );
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 2);
    assert_apply(
        &reqs[0],
        "/api/v1/namespaces/ns/configmaps/cfg",
        "fieldwise",
        true,
    );
    assert_eq!(reqs[0].body, decorated(&desired[0]));
    assert_apply(
        &reqs[1],
        "/apis/apps/v1/namespaces/ns/deployments/web",
        "fieldwise",
        true,
    );
    assert_eq!(reqs[1].body, decorated(&desired[1]));
    assert_eq!(reqs[1].body["spec"]["replicas"], json!(3));
}

#[tokio::test]
async fn steady_state_sends_nothing() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    let desired = vec![configmap("cfg"), deployment(Some(3))];
    let live: Vec<DynamicObject> = desired
        .iter()
        .map(|d| live_after_apply(&decorated(d), "u1", vec![]))
        .collect();
    engine.preload(live).expect("preload");
    let report = engine.reconcile(&owner(), desired).await;
    assert!(!report.has_errors(), "{report:?}");
    assert!(
        report
            .objects
            .iter()
            .all(|r| r.outcome == Outcome::Unchanged),
        "{report:?}"
    );
    assert!(requests(&log).is_empty(), "{:?}", requests(&log));
}

#[tokio::test]
async fn changed_object_is_applied_and_unchanged_one_skipped() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    let live = vec![
        live_after_apply(&decorated(&configmap("cfg")), "u1", vec![]),
        live_after_apply(&decorated(&deployment(Some(3))), "u2", vec![]),
    ];
    engine.preload(live).expect("preload");
    let report = engine
        .reconcile(&owner(), vec![configmap("cfg"), deployment(Some(4))])
        .await;
    assert_eq!(
        report.outcome_of("ConfigMap", "cfg"),
        Some(&Outcome::Unchanged)
    );
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated)
    );
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["spec"]["replicas"], json!(4));
}

#[tokio::test]
async fn prunes_after_applies_with_uid_precondition() {
    let (engine, log) = engine(|req, _| {
        if req.method == "DELETE" {
            ok(200, json!({"kind": "Status", "status": "Success"}))
        } else {
            echo(req, 201)
        }
    });
    let orphan = live_after_apply(&decorated(&configmap("old")), "old-uid", vec![]);
    // Same labels but no ownerReference to the owner: not ours to delete.
    let mut copied = decorated(&configmap("copied"));
    copied["metadata"]
        .as_object_mut()
        .map(|m| m.remove("ownerReferences"));
    engine
        .preload(vec![orphan, live_after_apply(&copied, "c-uid", vec![])])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![configmap("new")]).await;
    assert!(!report.has_errors(), "{report:?}");
    assert_eq!(
        report.outcome_of("ConfigMap", "new"),
        Some(&Outcome::Created)
    );
    assert_eq!(
        report.outcome_of("ConfigMap", "old"),
        Some(&Outcome::Pruned)
    );
    assert_eq!(report.outcome_of("ConfigMap", "copied"), None);
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "PATCH");
    assert_eq!(reqs[1].method, "DELETE");
    assert_eq!(reqs[1].path, "/api/v1/namespaces/ns/configmaps/old");
    assert_eq!(reqs[1].body["propagationPolicy"], json!("Background"));
    assert_eq!(reqs[1].body["preconditions"]["uid"], json!("old-uid"));
}

#[tokio::test]
async fn no_prune_after_a_failed_apply_and_422_is_not_retried() {
    let (engine, log) = engine(|req, _| {
        if req.path.ends_with("/bad") {
            status(
                422,
                "Invalid",
                "ConfigMap \"bad\" is invalid: data[x y]: Invalid value: \"x y\"",
            )
        } else {
            echo(req, 201)
        }
    });
    engine
        .preload(vec![live_after_apply(
            &decorated(&configmap("old")),
            "old-uid",
            vec![],
        )])
        .expect("preload");
    let report = engine
        .reconcile(&owner(), vec![configmap("bad"), configmap("good")])
        .await;
    assert!(report.has_errors());
    assert!(report.prune_skipped);
    let Some(Outcome::Failed(error)) = report.outcome_of("ConfigMap", "bad") else {
        panic!("{report:?}")
    };
    assert_eq!(error.code(), Some(422));
    let text = error.to_string();
    assert!(
        text.contains("ConfigMap ns/bad") && text.contains("is invalid: data[x y]"),
        "{text}"
    );
    let reqs = requests(&log);
    assert_eq!(
        reqs.iter()
            .map(|r| (r.method.as_str(), r.path.rsplit('/').next().unwrap_or("")))
            .collect::<Vec<_>>(),
        // One read of the refused object (someone else's, to take over?), no second apply.
        [("PATCH", "bad"), ("GET", "bad"), ("PATCH", "good")]
    );
}

#[tokio::test]
async fn invalid_desired_object_blocks_prune_without_requests_for_it() {
    let (engine, log) = engine(|req, _| echo(req, 201));
    engine
        .preload(vec![live_after_apply(
            &decorated(&configmap("old")),
            "old-uid",
            vec![],
        )])
        .expect("preload");
    let mut bad = configmap("bad");
    bad.body["metadata"]["resourceVersion"] = json!("5");
    let report = engine
        .reconcile(&owner(), vec![bad, configmap("good")])
        .await;
    assert!(matches!(
        report.outcome_of("ConfigMap", "bad"),
        Some(Outcome::Failed(ApplyError::InvalidObject { .. }))
    ));
    assert!(report.prune_skipped);
    assert_eq!(requests(&log).len(), 1);
}

#[tokio::test]
async fn handover_precedes_the_replicaless_apply() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    let mut live_body = decorated(&deployment(Some(5)));
    live_body["spec"]["replicas"] = json!(5);
    engine
        .preload(vec![live_after_apply(&live_body, "d-uid", vec![])])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::HandedOver),
        "{report:?}"
    );
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 2);
    assert_apply(
        &reqs[0],
        "/apis/apps/v1/namespaces/ns/deployments/web",
        "fieldwise-handover",
        false,
    );
    assert_eq!(
        reqs[0].body,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"}, "spec": {"replicas": 5}})
    );
    assert_apply(
        &reqs[1],
        "/apis/apps/v1/namespaces/ns/deployments/web",
        "fieldwise",
        true,
    );
    assert!(reqs[1].body["spec"].get("replicas").is_none());
}

#[tokio::test]
async fn handover_conflict_means_the_autoscaler_already_owns_replicas() {
    let (engine, log) = engine(|req, _| {
        if req.query.get("fieldManager").map(String::as_str) == Some("fieldwise-handover") {
            let mut reply = status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with \"kube-controller-manager\" with subresource \"scale\" using apps/v1: .spec.replicas",
            );
            reply.body["details"] =
                json!({"causes": [{"reason": "FieldManagerConflict", "field": ".spec.replicas"}]});
            reply
        } else {
            echo(req, 200)
        }
    });
    engine
        .preload(vec![live_after_apply(
            &decorated(&deployment(Some(5))),
            "d-uid",
            vec![],
        )])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::HandedOver),
        "{report:?}"
    );
    assert_eq!(requests(&log).len(), 2);
}

#[tokio::test]
async fn failed_handover_stops_the_replicaless_apply() {
    let (engine, log) =
        engine(|_, _| status(403, "Forbidden", "deployments.apps \"web\" is forbidden"));
    engine
        .preload(vec![live_after_apply(
            &decorated(&deployment(Some(5))),
            "d-uid",
            vec![],
        )])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert!(matches!(
        report.outcome_of("Deployment", "web"),
        Some(Outcome::Failed(ApplyError::HandoverFailed { .. }))
    ));
    assert_eq!(
        requests(&log).len(),
        1,
        "403 is not retried and the apply is not sent"
    );
}

#[tokio::test]
async fn released_replicas_without_our_ownership_need_no_handover() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    engine
        .preload(vec![live_after_apply(
            &decorated(&deployment(None)),
            "d-uid",
            vec![],
        )])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::Unchanged)
    );
    assert!(requests(&log).is_empty());
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_retry_after() {
    let (engine, log) = engine(|req, index| match index {
        0 => status(503, "ServiceUnavailable", "etcd leader changed"),
        1 => Reply {
            retry_after: Some("1"),
            ..status(429, "TooManyRequests", "slow down")
        },
        2 => status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on configmaps \"cfg\": the object has been modified",
        ),
        _ => echo(req, 201),
    });
    engine.preload(vec![]).expect("preload");
    let started = tokio::time::Instant::now();
    let report = engine.reconcile(&owner(), vec![configmap("cfg")]).await;
    assert_eq!(
        report.outcome_of("ConfigMap", "cfg"),
        Some(&Outcome::Created),
        "{report:?}"
    );
    assert_eq!(requests(&log).len(), 4);
    // 200 ms backoff, then the server's 1 s, then 800 ms.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    let (engine, log) =
        engine(|_, _| status(500, "InternalError", "etcdserver: request timed out"));
    engine.preload(vec![]).expect("preload");
    let report = engine.reconcile(&owner(), vec![configmap("cfg")]).await;
    let Some(Outcome::Failed(ApplyError::RetriesExhausted { attempts, .. })) =
        report.outcome_of("ConfigMap", "cfg")
    else {
        panic!("{report:?}")
    };
    assert_eq!(*attempts, 4);
    assert_eq!(requests(&log).len(), 4);
}

#[tokio::test]
async fn forbidden_is_not_retried() {
    let (engine, log) = engine(|_, _| {
        status(
            403,
            "Forbidden",
            "configmaps \"cfg\" is forbidden: User cannot patch",
        )
    });
    engine.preload(vec![]).expect("preload");
    let report = engine.reconcile(&owner(), vec![configmap("cfg")]).await;
    let Some(Outcome::Failed(error)) = report.outcome_of("ConfigMap", "cfg") else {
        panic!("{report:?}")
    };
    assert!(
        error
            .to_string()
            .contains("is forbidden: User cannot patch"),
        "{error}"
    );
    assert_eq!(requests(&log).len(), 1);
}

#[tokio::test]
async fn drift_from_another_manager_is_reported() {
    let (engine, _log) = engine(|req, _| echo(req, 200));
    let desired = deployment(Some(3));
    let mut live_body = decorated(&desired);
    live_body["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:hacked");
    let edit = json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}}});
    let mut live = live_after_apply(&live_body, "d-uid", vec![edit]);
    // kubectl edit took the image from us.
    if let Some(entries) = live.metadata.managed_fields.as_mut() {
        let ours = entries[0].fields_v1.as_mut().expect("fields");
        ours.0["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
            .as_object_mut()
            .map(|c| c.remove("f:image"));
    }
    engine.preload(vec![live]).expect("preload");
    let report = engine.reconcile(&owner(), vec![desired]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated)
    );
    assert_eq!(report.drift.len(), 1, "{report:?}");
    assert_eq!(report.drift[0].manager, "kubectl-edit");
    assert_eq!(report.drift[0].operation, "Update");
    assert_eq!(
        report.drift[0].fields,
        [".spec.template.spec.containers[name=\"app\"].image"]
    );
}

#[tokio::test]
async fn immutable_selector_change_is_refused_without_requests() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    engine
        .preload(vec![live_after_apply(
            &decorated(&deployment(Some(3))),
            "d-uid",
            vec![],
        )])
        .expect("preload");
    let mut changed = deployment(Some(3));
    changed.body["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
    let report = engine.reconcile(&owner(), vec![changed]).await;
    let Some(Outcome::Failed(ApplyError::ImmutableField { field, .. })) =
        report.outcome_of("Deployment", "web")
    else {
        panic!("{report:?}")
    };
    assert_eq!(field, "spec.selector");
    assert!(requests(&log).is_empty());
}

fn job(image: &str) -> DesiredObject {
    DesiredObject::new(
        "init",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "init"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}}}),
    )
}

#[tokio::test]
async fn changed_job_template_recreates_the_job() {
    let (engine, log) = engine(|req, _| {
        if req.method == "DELETE" {
            ok(200, json!({"kind": "Status", "status": "Success"}))
        } else {
            echo(req, 201)
        }
    });
    engine
        .preload(vec![live_after_apply(
            &decorated(&job("x:1")),
            "job-uid",
            vec![],
        )])
        .expect("preload");
    let report = engine.reconcile(&owner(), vec![job("x:2")]).await;
    let replaced = Outcome::Replaced {
        field: "spec.template".to_owned(),
    };
    assert_eq!(
        report.outcome_of("Job", "init"),
        Some(&replaced),
        "{report:?}"
    );
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "DELETE");
    assert_eq!(reqs[0].body["preconditions"]["uid"], json!("job-uid"));
    assert_eq!(reqs[1].method, "PATCH");
}

#[tokio::test]
async fn status_is_applied_to_the_subresource_and_skipped_when_unchanged() {
    let (engine, log) = engine(|req, _| echo(req, 200));
    let mut owner_obj: Deployment =
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "resourceVersion": "3"}}))
        .expect("deployment");
    let status =
        json!({"observedGeneration": 2, "conditions": [{"type": "Available", "status": "True"}]});
    let outcome = engine
        .apply_status(&owner_obj, status.clone())
        .await
        .expect("status");
    assert_eq!(outcome, Outcome::Updated);
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 1);
    assert_apply(
        &reqs[0],
        "/apis/apps/v1/namespaces/ns/deployments/web/status",
        "fieldwise",
        true,
    );
    assert_eq!(
        reqs[0].body,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns"}, "status": status})
    );
    // The owner as read back: status owned by our status entry.
    owner_obj.status = serde_json::from_value(status.clone()).ok();
    owner_obj.metadata.managed_fields = serde_json::from_value(json!([{"manager": "fieldwise", "operation": "Apply",
        "apiVersion": "apps/v1", "subresource": "status", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:observedGeneration": {}, "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:type": {}, "f:status": {}}}}}}]))
    .ok();
    let outcome = engine
        .apply_status(&owner_obj, status)
        .await
        .expect("status");
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(requests(&log).len(), 1);
}

#[tokio::test]
async fn cluster_scoped_children_are_deleted_for_the_finalizer() {
    let (engine, log) = engine(|_, _| ok(200, json!({"kind": "Status", "status": "Success"})));
    let role = DesiredObject::new(
        "rbac",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "sample-reader", "labels": standard_labels("rbac")}, "rules": []}),
    );
    engine
        .preload(vec![live_after_apply(&role.body, "role-uid", vec![])])
        .expect("preload");
    assert!(
        engine
            .delete_cluster_scoped_children(&owner())
            .await
            .expect("cleanup")
    );
    let reqs = requests(&log);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "DELETE");
    assert_eq!(
        reqs[0].path,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/sample-reader"
    );
}

#[tokio::test]
async fn released_workload_missing_from_cache_is_read_before_the_replicaless_apply() {
    let live_body = decorated(&deployment(Some(4)));
    let live = serde_json::to_value(live_after_apply(&live_body, "d-uid", vec![])).expect("json");
    let (engine, log) = engine(move |req, _| {
        if req.method == "GET" {
            ok(200, live.clone())
        } else {
            echo(req, 200)
        }
    });
    engine.preload(vec![]).expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::HandedOver),
        "{report:?}"
    );
    let reqs = requests(&log);
    assert_eq!(
        reqs.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "PATCH", "PATCH"]
    );
    assert_eq!(
        reqs[1].query.get("fieldManager").map(String::as_str),
        Some("fieldwise-handover")
    );
    assert_eq!(reqs[1].body["spec"], json!({"replicas": 4}));
    assert!(reqs[2].body["spec"].get("replicas").is_none());
}

#[tokio::test]
async fn released_workload_is_created_without_replicas() {
    let (engine, log) = engine(|req, _| {
        if req.method == "GET" {
            status(404, "NotFound", "deployments.apps \"web\" not found")
        } else {
            echo(req, 201)
        }
    });
    engine.preload(vec![]).expect("preload");
    let report = engine.reconcile(&owner(), vec![deployment(None)]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::Created),
        "{report:?}"
    );
    let reqs = requests(&log);
    assert_eq!(
        reqs.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "PATCH"]
    );
    assert_eq!(
        reqs[1].query.get("fieldManager").map(String::as_str),
        Some("fieldwise")
    );
}

#[tokio::test(start_paused = true)]
async fn lost_connections_and_timeouts_are_retried() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let served = Arc::new(Mutex::new(0usize));
    let count = served.clone();
    tokio::spawn(async move {
        let mut parked = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let n = {
                let mut c = count.lock().expect("count");
                *c += 1;
                *c
            };
            match n {
                // The connection breaks: no answer at all.
                1 => drop(send),
                // The server hangs: the answer never comes (the engine's timeout fires).
                2 => parked.push(send),
                _ => {
                    let bytes = request.into_body().collect_bytes().await.expect("body");
                    let mut obj: Value = serde_json::from_slice(&bytes).expect("json");
                    obj["metadata"]["resourceVersion"] = json!("1");
                    send.send_response(
                        Response::builder()
                            .status(201)
                            .body(Body::from(obj.to_string().into_bytes()))
                            .expect("response"),
                    );
                }
            }
        }
    });
    let engine = Engine::new(Client::new(service, "default"), registry());
    engine.preload(vec![]).expect("preload");
    let report = engine.reconcile(&owner(), vec![configmap("cfg")]).await;
    assert_eq!(
        report.outcome_of("ConfigMap", "cfg"),
        Some(&Outcome::Created),
        "{report:?}"
    );
    assert_eq!(*served.lock().expect("count"), 3);
}
