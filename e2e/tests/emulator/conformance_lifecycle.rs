//! Black-box conformance of deletion (spec §7): finalizers, deletionTimestamp, garbage collection
//! with background, foreground and orphan propagation, namespace cascade, delete preconditions.
//! Asynchronous effects are awaited through watches, never sleeps.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};

use crate::target::Server;
use serde_json::{Value, json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
/// How long an awaited event may take: the emulator sends it at once, a real cluster's garbage
/// collector and namespace controller take seconds.
const WAIT: Duration = Duration::from_secs(60);

async fn setup() -> Result<(Server, RawClient), TestError> {
    let (emu, c) = crate::target::start(Options::default()).await?;
    Ok((emu, c))
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
}

fn owned_by(name: &str, owner: &Value, block: bool) -> Value {
    let mut o = cm(name);
    o["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block}]);
    o
}

fn is_deleted(name: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["type"] == "DELETED" && e["object"]["metadata"]["name"] == name
}

#[tokio::test]
async fn finalizers_hold_deletion() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let mut o = cm("f1");
    // Finalizer names: qualified names, not both propagation finalizers, a domain unless standard.
    o["metadata"]["finalizers"] = json!([
        "x",
        "a/b",
        "Bad Name!",
        "kubernetes",
        "orphan",
        "foregroundDeletion"
    ]);
    let bad = c.post(CM, &o).await?;
    assert_eq!(bad.status, 422);
    assert_eq!(
        bad.body["message"],
        "ConfigMap \"f1\" is invalid: [metadata.finalizers: Invalid value: \"Bad Name!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'), metadata.finalizers: Invalid value: []string{\"x\", \"a/b\", \"Bad Name!\", \"kubernetes\", \"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set, metadata.finalizers[0]: Invalid value: \"x\": name is neither a standard finalizer name nor is it fully qualified, metadata.finalizers[2]: Invalid value: \"Bad Name!\": name is neither a standard finalizer name nor is it fully qualified]"
    );
    o["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let created = c.post(CM, &o).await?;
    let del = c.delete(&format!("{CM}/f1"), None).await?;
    assert_eq!(del.status, 200);
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(del.body["metadata"]["deletionGracePeriodSeconds"], 0);
    let still = c.get(&format!("{CM}/f1")).await?;
    assert_eq!(still.status, 200);
    // No new finalizers while terminating.
    let add = c
        .patch(
            &format!("{CM}/f1"),
            "merge",
            &json!({"metadata": {"finalizers": ["example.com/keep", "x"]}}),
        )
        .await?;
    assert_eq!(add.status, 422);
    assert_eq!(
        add.body["message"],
        "ConfigMap \"f1\" is invalid: [metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x\"}, metadata.finalizers[1]: Invalid value: \"x\": name is neither a standard finalizer name nor is it fully qualified]"
    );
    let rv = still.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = c
        .watch(&format!("{CM}?watch=true&resourceVersion={rv}"))
        .await?;
    let done = c
        .patch(
            &format!("{CM}/f1"),
            "merge",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await?;
    assert_eq!(done.status, 200, "{}", done.text);
    w.until(WAIT, is_deleted("f1")).await?;
    assert_eq!(c.get(&format!("{CM}/f1")).await?.status, 404);
    let _ = created;
    Ok(())
}

#[tokio::test]
async fn delete_preconditions() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let created = c.post(CM, &cm("p1")).await?;
    let bad = c
        .delete(
            &format!("{CM}/p1"),
            Some(&json!({"preconditions": {"uid": "nope"}})),
        )
        .await?;
    assert_eq!(bad.status, 409);
    assert_eq!(
        bad.body["message"],
        format!(
            "Operation cannot be fulfilled on ConfigMap \"p1\": the UID in the precondition (nope) does not match the UID in record ({}). The object might have been deleted and then recreated",
            created.body["metadata"]["uid"].as_str().unwrap()
        )
    );
    // Named by kind, unlike other conflicts.
    assert_eq!(
        bad.body["details"],
        json!({"name": "p1", "kind": "ConfigMap"})
    );
    let stale = c
        .delete(
            &format!("{CM}/p1"),
            Some(&json!({"preconditions": {"resourceVersion": "1"}})),
        )
        .await?;
    assert_eq!(stale.status, 409);
    assert_eq!(
        stale.body["message"],
        format!(
            "Operation cannot be fulfilled on ConfigMap \"p1\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({}). The object might have been modified",
            created.body["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
        )
    );
    let ok = c
        .delete(&format!("{CM}/p1"), Some(&json!({"preconditions": {"uid": created.body["metadata"]["uid"], "resourceVersion": created.body["metadata"]["resourceVersion"]}})))
        .await?;
    assert_eq!(ok.status, 200);
    Ok(())
}

#[tokio::test]
async fn background_propagation_collects_dependents() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let owner = c.post(CM, &cm("owner")).await?.body;
    let child = c.post(CM, &owned_by("child", &owner, false)).await?;
    let rv = child.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = c
        .watch(&format!("{CM}?watch=true&resourceVersion={rv}"))
        .await?;
    c.delete(
        &format!("{CM}/owner"),
        Some(&json!({"propagationPolicy": "Background"})),
    )
    .await?;
    w.until(WAIT, is_deleted("owner")).await?;
    w.until(WAIT, is_deleted("child")).await?;
    Ok(())
}

#[tokio::test]
async fn foreground_waits_for_blocking_dependents() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let owner = c.post(CM, &cm("owner")).await?.body;
    let mut child = owned_by("child", &owner, true);
    child["metadata"]["finalizers"] = json!(["example.com/slow"]);
    let child = c.post(CM, &child).await?;
    let rv = child.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = c
        .watch(&format!("{CM}?watch=true&resourceVersion={rv}"))
        .await?;
    let del = c
        .delete(
            &format!("{CM}/owner"),
            Some(&json!({"propagationPolicy": "Foreground"})),
        )
        .await?;
    assert_eq!(
        del.body["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    // The GC marks the blocking child for deletion; the owner stays while the child exists.
    w.until(WAIT, |e| {
        e["object"]["metadata"]["name"] == "child"
            && e["object"]["metadata"]["deletionTimestamp"].is_string()
    })
    .await?;
    assert_eq!(c.get(&format!("{CM}/owner")).await?.status, 200);
    c.patch(
        &format!("{CM}/child"),
        "merge",
        &json!({"metadata": {"finalizers": null}}),
    )
    .await?;
    w.until(WAIT, is_deleted("child")).await?;
    w.until(WAIT, is_deleted("owner")).await?;
    Ok(())
}

#[tokio::test]
async fn orphan_keeps_dependents() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let owner = c.post(CM, &cm("owner")).await?.body;
    let child = c.post(CM, &owned_by("child", &owner, false)).await?;
    let rv = child.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = c
        .watch(&format!("{CM}?watch=true&resourceVersion={rv}"))
        .await?;
    let del = c
        .delete(
            &format!("{CM}/owner"),
            Some(&json!({"propagationPolicy": "Orphan"})),
        )
        .await?;
    assert_eq!(del.body["metadata"]["finalizers"], json!(["orphan"]));
    w.until(WAIT, |e| {
        e["object"]["metadata"]["name"] == "child"
            && e["object"]["metadata"].get("ownerReferences").is_none()
    })
    .await?;
    w.until(WAIT, is_deleted("owner")).await?;
    assert_eq!(c.get(&format!("{CM}/child")).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn namespace_deletion_cascades() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let ns = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await?;
    assert_eq!(ns.status, 201);
    assert_eq!(ns.body["status"]["phase"], "Active");
    assert_eq!(ns.body["spec"]["finalizers"], json!(["kubernetes"]));
    let r = c
        .post("/api/v1/namespaces/team/configmaps", &cm("x"))
        .await?;
    assert_eq!(r.status, 201);
    let missing = c
        .post("/api/v1/namespaces/nope/configmaps", &cm("x"))
        .await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["message"], "namespaces \"nope\" not found");
    let rv = r.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = c
        .watch(&format!(
            "/api/v1/namespaces?watch=true&resourceVersion={rv}"
        ))
        .await?;
    let mut cms = c
        .watch(&format!(
            "/api/v1/namespaces/team/configmaps?watch=true&resourceVersion={rv}"
        ))
        .await?;
    let del = c.delete("/api/v1/namespaces/team", None).await?;
    assert_eq!(del.body["status"]["phase"], "Terminating");
    cms.until(WAIT, is_deleted("x")).await?;
    w.until(WAIT, is_deleted("team")).await?;
    Ok(())
}

#[tokio::test]
async fn owner_in_another_namespace_counts_as_absent() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    c.post(
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    )
    .await?;
    let owner = c
        .post("/api/v1/namespaces/other/configmaps", &cm("owner"))
        .await?
        .body;
    let child = c.post(CM, &owned_by("child", &owner, false)).await?;
    let rv = child.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut w = c
        .watch(&format!("{CM}?watch=true&resourceVersion={rv}"))
        .await?;
    w.until(WAIT, is_deleted("child")).await?;
    assert_eq!(
        c.get("/api/v1/namespaces/other/configmaps/owner")
            .await?
            .status,
        200
    );
    Ok(())
}
