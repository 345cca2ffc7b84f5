//! Black-box conformance over real HTTP: CRUD verbs, errors (spec §4), selectors and pagination.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

#[tokio::test]
async fn version_and_discovery() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let v = c.get("/version").await?;
    assert_eq!(v.body["major"], "1");
    assert_eq!(v.body["minor"], "33");
    let api = c.get("/api").await?;
    assert_eq!(api.body["versions"], json!(["v1"]));
    let apps = c.get("/apis/apps/v1").await?;
    let names: Vec<&str> = apps.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"deployments")
            && names.contains(&"deployments/status")
            && names.contains(&"deployments/scale")
    );
    let scale = apps.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap();
    assert_eq!(scale["group"], "autoscaling");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
    let deploy = apps.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    assert_eq!(deploy["categories"], json!(["all"]));
    let groups = c.get("/apis").await?;
    let gnames: Vec<&str> = groups.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(gnames.contains(&g), "missing group {g}");
    }
    Ok(())
}

#[tokio::test]
async fn create_get_update_delete() -> Result<(), TestError> {
    let Some((_emu, c)) =
        crate::target::unless_diverging(crate::target::start(Options::default())).await?
    else {
        return Ok(());
    };
    let created = c.post(CM, &cm("c1", json!({"a": "1"}))).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let meta = &created.body["metadata"];
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(
        meta["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let rv = meta["resourceVersion"].as_str().unwrap().to_string();

    let again = c.post(CM, &cm("c1", json!({}))).await?;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["reason"], "AlreadyExists");
    assert_eq!(again.body["message"], "configmaps \"c1\" already exists");

    let mut upd = created.body.clone();
    upd["data"]["a"] = json!("2");
    let ok = c.put(&format!("{CM}/c1"), &upd).await?;
    assert_eq!(ok.status, 200);
    assert_ne!(ok.body["metadata"]["resourceVersion"], json!(rv));

    // The same body again carries the old resourceVersion: stale.
    let stale = c.put(&format!("{CM}/c1"), &upd).await?;
    assert_eq!(stale.status, 409);
    assert_eq!(
        stale.body["message"],
        "Operation cannot be fulfilled on configmaps \"c1\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        stale.body["details"],
        json!({"name": "c1", "kind": "configmaps"})
    );

    let del = c.delete(&format!("{CM}/c1"), None).await?;
    assert_eq!(del.status, 200);
    let gone = c.get(&format!("{CM}/c1")).await?;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"c1\" not found", "reason": "NotFound",
            "details": {"name": "c1", "kind": "configmaps"}, "code": 404})
    );
    let dgone = c
        .get("/apis/apps/v1/namespaces/default/deployments/x")
        .await?;
    assert_eq!(dgone.body["message"], "deployments.apps \"x\" not found");
    assert_eq!(
        dgone.body["details"],
        json!({"name": "x", "group": "apps", "kind": "deployments"})
    );
    // An unknown group is not routed at all: Go's plain-text 404, no Status object.
    let unknown = c.get("/apis/nope.example.com/v1/things").await?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text, "404 page not found\n");
    assert_eq!(
        unknown.headers[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    for unrouted in ["/apis/nope.example.com", "/nope"] {
        let r = c.get(unrouted).await?;
        assert_eq!(
            (r.status, r.text.as_str()),
            (404, "404 page not found\n"),
            "{unrouted}"
        );
    }
    // A served group's handler answers for its unknown versions and resources: a Status.
    for unknown in ["/apis/apps/v9", "/apis/apps/v1/nope", "/api/v2/pods"] {
        let r = c.get(unknown).await?;
        assert_eq!(r.status, 404, "{unknown}");
        assert_eq!(
            r.body["message"], "the server could not find the requested resource",
            "{unknown}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn strict_field_validation_of_builtin_kinds() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let mut bogus = cm("s1", json!({}));
    bogus["spec"] = json!({"x": 1});
    let created = c
        .post(&format!("{CM}?fieldValidation=Strict"), &bogus)
        .await?;
    assert_eq!(created.status, 400);
    assert_eq!(created.body["reason"], "BadRequest");
    assert_eq!(
        created.body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""
    );
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s1"},
        "spec": {"x": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "a", "image": "b", "bogus": 1}]}}}});
    let created = c
        .post(
            "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
            &d,
        )
        .await?;
    assert_eq!(created.status, 400);
    assert_eq!(
        created.body["message"],
        "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.x\", unknown field \"spec.template.spec.containers[0].bogus\""
    );
    Ok(())
}

#[tokio::test]
async fn noop_update_keeps_resource_version() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let created = c.post(CM, &cm("c1", json!({"a": "1"}))).await?;
    let same = c.put(&format!("{CM}/c1"), &created.body).await?;
    assert_eq!(same.status, 200);
    assert_eq!(
        same.body["metadata"]["resourceVersion"],
        created.body["metadata"]["resourceVersion"]
    );
    let patched = c
        .patch(&format!("{CM}/c1"), "merge", &json!({"data": {"a": "1"}}))
        .await?;
    assert_eq!(
        patched.body["metadata"]["resourceVersion"],
        created.body["metadata"]["resourceVersion"]
    );
    Ok(())
}

#[tokio::test]
async fn patches_merge_json_strategic() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}}});
    let path = "/apis/apps/v1/namespaces/default/deployments";
    assert_eq!(c.post(path, &d).await?.status, 201);
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}});
    let r = c.patch(&format!("{path}/web"), "strategic", &smp).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let cs = r.body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(cs.len(), 2, "strategic merge keeps other containers");
    assert_eq!(cs[0]["image"], "nginx:2");
    let jp = json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]);
    let r = c.patch(&format!("{path}/web"), "json", &jp).await?;
    assert_eq!(r.body["spec"]["replicas"], 3);
    let r = c
        .patch(
            &format!("{path}/web"),
            "merge",
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await?;
    assert_eq!(r.body["metadata"]["labels"]["x"], "y");
    Ok(())
}

#[tokio::test]
async fn selectors_and_pagination() -> Result<(), TestError> {
    let Some((_emu, c)) =
        crate::target::unless_diverging(crate::target::start(Options::default())).await?
    else {
        return Ok(());
    };
    for (i, team) in ["a", "b", "a", "c", "a"].iter().enumerate() {
        let mut o = cm(&format!("c{i}"), json!({}));
        o["metadata"]["labels"] = json!({"team": team});
        c.post(CM, &o).await?;
    }
    let a = c.get(&format!("{CM}?labelSelector=team%3Da")).await?;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 3);
    let notin = c
        .get(&format!("{CM}?labelSelector=team%20notin%20(a,b)"))
        .await?;
    // `notin` also matches objects without the label: c3 and the namespace's kube-root-ca.crt, which
    // kube-controller-manager publishes into every namespace.
    let names: Vec<&str> = notin.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c3", "kube-root-ca.crt"]);
    let by_name = c
        .get(&format!("{CM}?fieldSelector=metadata.name%3Dc3"))
        .await?;
    assert_eq!(by_name.body["items"][0]["metadata"]["name"], "c3");
    let p1 = c.get(&format!("{CM}?limit=2")).await?;
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 2);
    let token = p1.body["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    let p2 = c.get(&format!("{CM}?limit=2&continue={token}")).await?;
    let p3token = p2.body["metadata"]["continue"]
        .as_str()
        .unwrap()
        .to_string();
    let p3 = c.get(&format!("{CM}?limit=2&continue={p3token}")).await?;
    // Six ConfigMaps with kube-root-ca.crt.
    assert_eq!(p3.body["items"].as_array().unwrap().len(), 2);
    assert!(p3.body["metadata"].get("continue").is_none());
    Ok(())
}

#[tokio::test]
async fn watch_from_version_and_expired() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let first = c.post(CM, &cm("w0", json!({}))).await?;
    let rv0 = first.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // kube-apiserver sends a watch its bookmarks about once a minute, and 2 s before its timeout:
    // the timeout brings one within the test's wait.
    let mut w = c
        .watch(&format!(
            "{CM}?watch=true&resourceVersion={rv0}&allowWatchBookmarks=true&timeoutSeconds=6"
        ))
        .await?;
    c.post(CM, &cm("w1", json!({}))).await?;
    let ev = w.next(Duration::from_secs(5)).await?.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "w1");
    c.delete(&format!("{CM}/w1"), None).await?;
    let ev = w
        .until(Duration::from_secs(5), |e| e["type"] != "BOOKMARK")
        .await?;
    assert_eq!(ev["type"], "DELETED");
    let bm = w
        .until(Duration::from_secs(6), |e| e["type"] == "BOOKMARK")
        .await?;
    assert!(
        bm["object"]["metadata"]["resourceVersion"]
            .as_str()
            .is_some()
    );
    for i in 0..10 {
        c.post(CM, &cm(&format!("x{i}"), json!({}))).await?;
    }
    // Resource version 1 is older than any server's watch history (it starts no earlier than the
    // server): 410 Expired, inside the stream.
    let mut old = c
        .watch(&format!("{CM}?watch=true&resourceVersion=1"))
        .await?;
    let err = old.next(Duration::from_secs(5)).await?.unwrap();
    assert_eq!(err["type"], "ERROR");
    assert_eq!(err["object"]["code"], 410);
    assert_eq!(err["object"]["reason"], "Expired");
    assert!(
        err["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1 (")
    );
    let mut t = c
        .watch(&format!(
            "{CM}?watch=true&timeoutSeconds=1&resourceVersion=0"
        ))
        .await?;
    let mut added = Vec::new();
    while let Some(ev) = t.next(Duration::from_secs(5)).await? {
        assert_eq!(ev["type"], "ADDED");
        added.push(
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    added.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    expected.extend(["kube-root-ca.crt".to_owned(), "w0".to_owned()]);
    expected.sort();
    assert_eq!(
        added, expected,
        "rv=0 lists current objects (the namespace's kube-root-ca.crt too), then the stream ends at timeoutSeconds"
    );
    Ok(())
}

#[tokio::test]
async fn version_is_the_release_of_the_real_control_plane() -> Result<(), TestError> {
    let (_emu, c) = crate::target::start(Options::default()).await?;
    let v = c.get("/version").await?;
    assert_eq!(v.body["gitVersion"], "v1.33.13");
    assert_eq!(v.body["emulationMinor"], "33");
    assert_eq!(v.body["minCompatibilityMinor"], "32");
    Ok(())
}
