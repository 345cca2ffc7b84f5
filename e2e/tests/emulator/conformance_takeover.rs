//! What taking objects over from another controller relies on (fieldwise's engine, `takeover`):
//! how a controller-runtime client without a field manager is recorded, a JSON patch that rewrites
//! managedFields guarded by the resourceVersion it was computed from (spec §3), and an apply that
//! then removes what the previous manager set.

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};
use serde_json::{Value, json};

use crate::target::Server;

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";
/// The User-Agent of a controller-runtime binary named `manager` (client-go's default agent).
const MANAGER_AGENT: &str = "manager/v0.0.0 (linux/amd64) kubernetes/$Format";

async fn setup() -> Result<(Server, RawClient), TestError> {
    crate::target::start(Options::default()).await
}

/// A Deployment as the Feast operator writes it: the server config as a literal env value.
fn written_by_predecessor(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                "name": "online", "image": "feast:1",
                "env": [{"name": "CONFIG", "value": "cHJvamVjdDogcA=="}]}]}}}})
}

/// What the successor applies: the config from a Secret instead.
fn successor_config(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                "name": "online", "image": "feast:1",
                "env": [{"name": "CONFIG", "valueFrom": {"secretKeyRef": {"name": "config", "key": "yaml"}}}]}]}}}})
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `(manager, operation)` of every entry but kube-controller-manager's (on a real cluster it writes a
/// Deployment's revision annotation and status at its own pace).
fn managers(object: &Value) -> Vec<(String, String)> {
    entries(object)
        .iter()
        .filter(|e| e["manager"] != "kube-controller-manager")
        .map(|e| {
            let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
            (text("manager"), text("operation"))
        })
        .collect()
}

fn pair(manager: &str, operation: &str) -> (String, String) {
    (manager.to_owned(), operation.to_owned())
}

/// The object's managedFields with `manager`'s Update entry turned into `fieldwise`'s Apply entry.
fn taken_over(object: &Value) -> Vec<Value> {
    let mut list = entries(object);
    for entry in &mut list {
        if entry["manager"] == "manager" {
            entry["manager"] = json!("fieldwise");
            entry["operation"] = json!("Apply");
        }
    }
    list
}

fn takeover_patch(list: &[Value], resource_version: &Value) -> Value {
    json!([
        {"op": "replace", "path": "/metadata/managedFields", "value": list},
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
    ])
}

async fn create_as_predecessor(c: &RawClient, name: &str) -> Result<Value, TestError> {
    let agent = c.clone().with_user_agent(MANAGER_AGENT);
    let created = agent.post(DEPLOY, &written_by_predecessor(name)).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    Ok(created.body)
}

#[tokio::test]
async fn a_client_without_a_field_manager_is_named_after_its_binary() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    let created = create_as_predecessor(&c, "web").await?;
    assert_eq!(managers(&created), [pair("manager", "Update")]);
    Ok(())
}

#[tokio::test]
async fn an_apply_over_a_predecessors_literal_value_is_refused() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    create_as_predecessor(&c, "web").await?;
    let applied = c
        .apply(
            &format!("{DEPLOY}/web"),
            "fieldwise",
            true,
            &successor_config("web"),
        )
        .await?;
    assert_eq!(applied.status, 422, "{}", applied.text);
    let message = applied.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.template.spec.containers[0].env[0].valueFrom")
            && message.contains("may not be specified when `value` is not empty"),
        "{message}"
    );
    Ok(())
}

/// Takes `path` over from `manager` as fieldwise's engine does: read, patch at the version read,
/// and on a conflict (kube-controller-manager writes a new Deployment's status meanwhile) again.
async fn take_over(c: &RawClient, path: &str) -> Result<(Value, Value), TestError> {
    for _ in 0..10 {
        let live = c.get(path).await?.body;
        let version = live["metadata"]["resourceVersion"].clone();
        let patch = takeover_patch(&taken_over(&live), &version);
        let patched = c
            .patch(&format!("{path}?fieldManager=fieldwise"), "json", &patch)
            .await?;
        match patched.status {
            409 => continue,
            200 => return Ok((live, patched.body)),
            _ => panic!("takeover patch: {}", patched.text),
        }
    }
    panic!("{path} kept changing under the takeover")
}

#[tokio::test]
async fn taken_over_managed_fields_let_the_apply_remove_the_value() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    create_as_predecessor(&c, "web").await?;
    let path = format!("{DEPLOY}/web");
    let (before, patched) = take_over(&c, &path).await?;
    assert_ne!(
        patched["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        managers(&patched),
        [pair("fieldwise", "Apply")],
        "the supplied list replaced the stored one; the patch itself changed no field, so it has no entry"
    );
    let ours = entries(&patched)
        .into_iter()
        .find(|e| e["manager"] == "fieldwise");
    let theirs = entries(&before)
        .into_iter()
        .find(|e| e["manager"] == "manager");
    assert_eq!(
        ours.map(|e| e["fieldsV1"].clone()),
        theirs.map(|e| e["fieldsV1"].clone())
    );
    let applied = c
        .apply(&path, "fieldwise", true, &successor_config("web"))
        .await?;
    assert_eq!(applied.status, 200, "{}", applied.text);
    let env = &applied.body["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert!(env.get("value").is_none(), "{env}");
    assert_eq!(env["valueFrom"]["secretKeyRef"]["name"], "config");
    assert_eq!(managers(&applied.body), [pair("fieldwise", "Apply")]);
    Ok(())
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// A ConfigMap (no controller writes it, so versions change only when the test writes) created by
/// the predecessor.
async fn config_map_of_predecessor(c: &RawClient) -> Result<Value, TestError> {
    let agent = c.clone().with_user_agent(MANAGER_AGENT);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "client"},
        "data": {"feature_store.yaml": "project: p"}});
    let created = agent.post(CM, &body).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    Ok(created.body)
}

#[tokio::test]
async fn a_stale_resource_version_fails_the_takeover_with_a_conflict() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    let created = config_map_of_predecessor(&c).await?;
    let stale = created["metadata"]["resourceVersion"].clone();
    let path = format!("{CM}/client");
    let touched = c
        .patch(
            &format!("{path}?fieldManager=kubectl-annotate"),
            "merge",
            &json!({"metadata": {"annotations": {"team": "a"}}}),
        )
        .await?;
    assert_eq!(touched.status, 200, "{}", touched.text);
    let list = taken_over(&created);
    let replaced = c
        .patch(
            &format!("{path}?fieldManager=fieldwise"),
            "json",
            &takeover_patch(&list, &stale),
        )
        .await?;
    assert_eq!(replaced.status, 409, "{}", replaced.text);
    assert_eq!(replaced.body["reason"], "Conflict");
    assert_eq!(
        replaced.body["message"],
        "Operation cannot be fulfilled on configmaps \"client\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    // A `test` of the version fails as an invalid request instead: why fieldwise pins it by
    // `replace`, as client-go's csaupgrade does.
    let tested = c
        .patch(
            &format!("{path}?fieldManager=fieldwise"),
            "json",
            &json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
                {"op": "replace", "path": "/metadata/managedFields", "value": list},
            ]),
        )
        .await?;
    assert_eq!(tested.status, 422, "{}", tested.text);
    assert_eq!(tested.body["reason"], "Invalid");
    let unchanged = c.get(&path).await?;
    let mut left = managers(&unchanged.body);
    left.sort();
    assert_eq!(
        left,
        [
            pair("kubectl-annotate", "Update"),
            pair("manager", "Update")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_second_controller_reference_is_refused() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    // Real owners: on a real cluster the garbage collector deletes an object whose owners are gone.
    let mut owners = Vec::new();
    for name in ["first", "second"] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        let created = c.post(CM, &body).await?;
        assert_eq!(created.status, 201, "{}", created.text);
        owners.push(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": name,
            "uid": created.body["metadata"]["uid"], "controller": true}),
        );
    }
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "client", "ownerReferences": [owners[0]]}});
    let created = c.post(CM, &theirs).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let ours = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "client", "ownerReferences": [owners[1]]}});
    let applied = c
        .apply(&format!("{CM}/client"), "fieldwise", true, &ours)
        .await?;
    assert_eq!(applied.status, 422, "{}", applied.text);
    // kube-apiserver 1.33 repeats this cause (four times, for an apply); the emulator gives it once.
    let causes = applied.body["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!causes.is_empty(), "{}", applied.text);
    for cause in &causes {
        assert_eq!(cause, &causes[0], "{}", applied.text);
    }
    assert_eq!(causes[0]["field"], "metadata.ownerReferences");
    let message = causes[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references \
             for ConfigMap/first and ConfigMap/second"
        ),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_services_addresses_are_nobodys_and_survive_a_takeover() -> Result<(), TestError> {
    let (_server, c) = setup().await?;
    let services = "/api/v1/namespaces/default/services";
    let agent = c.clone().with_user_agent(MANAGER_AGENT);
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "online"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 6566}]}});
    let created = agent.post(services, &service).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let ip = created.body["spec"]["clusterIP"].clone();
    assert!(ip.is_string(), "{}", created.text);
    // The create owns what defaulting filled in, not what the Service storage allocated after it.
    let spec = &entries(&created.body)[0]["fieldsV1"]["f:spec"];
    for owned in ["f:internalTrafficPolicy", "f:sessionAffinity", "f:type"] {
        assert!(spec.get(owned).is_some(), "{owned} in {spec}");
    }
    for allocated in [
        "f:clusterIP",
        "f:clusterIPs",
        "f:ipFamilies",
        "f:ipFamilyPolicy",
    ] {
        assert!(spec.get(allocated).is_none(), "{allocated} in {spec}");
    }
    let path = format!("{services}/online");
    take_over(&c, &path).await?;
    let ours = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "online"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 6567}]}});
    let applied = c.apply(&path, "fieldwise", true, &ours).await?;
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_eq!(applied.body["spec"]["clusterIP"], ip);
    assert_eq!(applied.body["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(applied.body["spec"]["ports"][0]["targetPort"], 6567);
    Ok(())
}

#[tokio::test]
async fn an_apply_of_nothing_gives_an_untracked_objects_fields_to_before_first_apply()
-> Result<(), TestError> {
    let (_server, c) = setup().await?;
    config_map_of_predecessor(&c).await?;
    let path = format!("{CM}/client");
    let wiped = c
        .patch(
            &path,
            "merge",
            &json!({"metadata": {"managedFields": [{}]}}),
        )
        .await?;
    assert!(
        wiped.body["metadata"].get("managedFields").is_none(),
        "{}",
        wiped.text
    );
    let nothing = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "client"}});
    let applied = c.apply(&path, "fieldwise", true, &nothing).await?;
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_ne!(
        applied.body["metadata"]["resourceVersion"], wiped.body["metadata"]["resourceVersion"],
        "stored: the managedFields changed"
    );
    assert_eq!(
        managers(&applied.body),
        [pair("before-first-apply", "Update")]
    );
    assert_eq!(
        entries(&applied.body)[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:feature_store.yaml": {}}})
    );
    Ok(())
}
