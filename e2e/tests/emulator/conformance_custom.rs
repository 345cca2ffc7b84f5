//! Black-box conformance of CustomResourceDefinitions and custom resources (spec §5): discovery,
//! pruning, defaults, schema and CEL validation (with transition rules), status and scale
//! subresources, generation, printer columns, deletion of the CRD.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};

use crate::target::Server;
use serde_json::{Value, json};

const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Image", "type": "string", "jsonPath": ".spec.image"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "x-kubernetes-validations": [{"rule": "self.replicas <= 10", "message": "at most 10 replicas"}],
                            "properties": {
                                "replicas": {"type": "integer", "minimum": 0},
                                "image": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "image is immutable"}]},
                                "mode": {"type": "string", "default": "auto", "enum": ["auto", "manual"]},
                                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                            }
                        },
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}}}
                    }
                }}
            }]
        }
    })
}

fn widget(name: &str, replicas: i64) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"replicas": replicas, "image": "img:1"}})
}

async fn setup() -> Result<(Server, RawClient), TestError> {
    let (emu, c) = crate::target::start(Options::default()).await?;
    let r = c
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd(),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    crate::target::await_established(&c, "widgets.example.com").await?;
    Ok((emu, c))
}

#[tokio::test]
async fn crd_established_and_discovered() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let crd = c
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await?;
    let conds = crd.body["status"]["conditions"].as_array().unwrap();
    for t in ["Established", "NamesAccepted"] {
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == t && c["status"] == "True"),
            "{t}"
        );
    }
    let list = c.get("/apis/example.com/v1").await?;
    let res = list.body["resources"].as_array().unwrap();
    let find = |n: &str| res.iter().find(|r| r["name"] == n).cloned();
    assert_eq!(find("widgets").unwrap()["shortNames"], json!(["wd"]));
    assert_eq!(find("widgets/status").unwrap()["kind"], "Widget");
    let scale = find("widgets/scale").unwrap();
    assert_eq!(
        (
            scale["group"].clone(),
            scale["version"].clone(),
            scale["kind"].clone()
        ),
        (json!("autoscaling"), json!("v1"), json!("Scale"))
    );
    let groups = c.get("/apis").await?;
    assert!(
        groups.body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
    Ok(())
}

#[tokio::test]
async fn pruning_and_defaults() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let mut w = widget("w1", 1);
    w["spec"]["bogus"] = json!(true);
    let strict = c
        .post(&format!("{WIDGETS}?fieldValidation=Strict"), &w)
        .await?;
    assert_eq!(strict.status, 400);
    assert_eq!(strict.body["reason"], "BadRequest");
    assert_eq!(
        strict.body["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.bogus\""
    );
    let ignored = c
        .post(&format!("{WIDGETS}?fieldValidation=Ignore"), &w)
        .await?;
    assert_eq!(ignored.status, 201, "{}", ignored.text);
    assert!(ignored.body["spec"].get("bogus").is_none());
    assert_eq!(ignored.body["spec"]["mode"], "auto", "schema default");
    let applied = c
        .apply(&format!("{WIDGETS}/w2"), "fieldwise", false, &{
            let mut w = widget("w2", 1);
            w["spec"]["bogus"] = json!(1);
            w
        })
        .await?;
    assert_eq!(applied.status, 500);
    assert_eq!(
        applied.body["message"],
        "failed to create typed patch object (/w2; example.com/v1, Kind=Widget): .spec.bogus: field not declared in schema"
    );
    let strategic = c
        .patch(
            &format!("{WIDGETS}/w1"),
            "strategic",
            &json!({"spec": {"replicas": 2}}),
        )
        .await?;
    assert_eq!(strategic.status, 415);
    assert!(strategic.body["message"].as_str().unwrap().starts_with(
        "the body of the request was in an unknown format - accepted media types include: "
    ));
    Ok(())
}

#[tokio::test]
async fn schema_and_cel_validation() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let neg = c.post(WIDGETS, &widget("w1", -1)).await?;
    assert_eq!(neg.status, 422);
    // The scale subresource's replica check adds its own error to the schema's.
    let msg = neg.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Widget.example.com \"w1\" is invalid: ["),
        "{msg}"
    );
    assert!(msg.contains("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"), "{msg}");
    assert_eq!(neg.body["details"]["kind"], "Widget");
    assert_eq!(neg.body["details"]["group"], "example.com");
    assert_eq!(neg.body["details"]["causes"][0]["field"], "spec.replicas");
    let many = c.post(WIDGETS, &widget("w1", 11)).await?;
    assert_eq!(many.status, 422);
    assert_eq!(
        many.body["message"],
        "Widget.example.com \"w1\" is invalid: spec: Invalid value: \"object\": at most 10 replicas"
    );
    let ok = c.post(WIDGETS, &widget("w1", 1)).await?;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let changed = c
        .patch(
            &format!("{WIDGETS}/w1"),
            "merge",
            &json!({"spec": {"image": "img:2"}}),
        )
        .await?;
    assert_eq!(changed.status, 422);
    assert_eq!(
        changed.body["message"],
        "Widget.example.com \"w1\" is invalid: spec.image: Invalid value: \"string\": image is immutable"
    );
    Ok(())
}

#[tokio::test]
async fn scale_runs_the_resource_rules() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    c.post(WIDGETS, &widget("w1", 2)).await?;
    let mut obj = c.get(&format!("{WIDGETS}/w1")).await?.body;
    obj["status"] = json!({"replicas": 2, "selector": "app=w1"});
    let st = c.put(&format!("{WIDGETS}/w1/status"), &obj).await?;
    assert_eq!(st.status, 200, "{}", st.text);
    assert_eq!(
        st.body["metadata"]["generation"], 1,
        "/status does not bump generation"
    );
    let scale = c.get(&format!("{WIDGETS}/w1/scale")).await?;
    assert_eq!(scale.body["spec"], json!({"replicas": 2}));
    assert_eq!(
        scale.body["status"],
        json!({"replicas": 2, "selector": "app=w1"})
    );
    let too_many = c
        .patch(
            &format!("{WIDGETS}/w1/scale"),
            "merge",
            &json!({"spec": {"replicas": 11}}),
        )
        .await?;
    assert_eq!(too_many.status, 422);
    assert_eq!(
        too_many.body["message"],
        "Widget.example.com \"w1\" is invalid: spec: Invalid value: \"object\": at most 10 replicas"
    );
    let ok = c
        .patch(
            &format!("{WIDGETS}/w1/scale?fieldManager=hpa"),
            "merge",
            &json!({"spec": {"replicas": 4}}),
        )
        .await?;
    assert_eq!(ok.status, 200);
    let w = c.get(&format!("{WIDGETS}/w1")).await?.body;
    assert_eq!(w["spec"]["replicas"], 4);
    assert_eq!(w["metadata"]["generation"], 2);
    let e = w["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "hpa")
        .unwrap()
        .clone();
    assert_eq!(e["subresource"], "scale");
    assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    Ok(())
}

#[tokio::test]
async fn generation_and_status_reset() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    let mut w = widget("w1", 1);
    w["status"] = json!({"replicas": 5});
    let r = c.post(WIDGETS, &w).await?;
    assert!(r.body.get("status").is_none(), "status dropped on create");
    assert_eq!(r.body["metadata"]["generation"], 1);
    let r = c
        .patch(
            &format!("{WIDGETS}/w1"),
            "merge",
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await?;
    assert_eq!(r.body["metadata"]["generation"], 1, "metadata-only change");
    let r = c
        .patch(
            &format!("{WIDGETS}/w1"),
            "merge",
            &json!({"spec": {"replicas": 3}}),
        )
        .await?;
    assert_eq!(r.body["metadata"]["generation"], 2);
    let r = c
        .patch(
            &format!("{WIDGETS}/w1"),
            "merge",
            &json!({"status": {"replicas": 3}}),
        )
        .await?;
    assert!(
        r.body.get("status").is_none(),
        "main endpoint ignores status"
    );
    assert_eq!(r.body["metadata"]["generation"], 2);
    Ok(())
}

/// `kubectl get -w` lists, then watches from the list's resourceVersion. An object written between
/// the two comes as a replayed event, which must be a Table row like a live one, and only the watch's
/// first event carries the column definitions (kubectl prints the header again when they come back).
#[tokio::test]
async fn table_watches_replay_rows_and_send_columns_once() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let list = c.get_with_accept(WIDGETS, accept).await?;
    let rv = list.body["metadata"]["resourceVersion"]
        .as_str()
        .ok_or("list resourceVersion")?
        .to_owned();
    c.post(WIDGETS, &widget("w1", 1)).await?;
    let mut watch = c
        .watch_with_accept(
            &format!("{WIDGETS}?watch=true&resourceVersion={rv}"),
            accept,
        )
        .await?;
    let replayed = watch
        .next(Duration::from_secs(5))
        .await?
        .ok_or("no replayed event")?;
    c.post(WIDGETS, &widget("w2", 2)).await?;
    let live = watch
        .next(Duration::from_secs(5))
        .await?
        .ok_or("no live event")?;
    for (event, name) in [(&replayed, "w1"), (&live, "w2")] {
        assert_eq!(event["type"], "ADDED", "{event}");
        assert_eq!(event["object"]["kind"], "Table", "{event}");
        assert_eq!(event["object"]["rows"][0]["cells"][0], name, "{event}");
    }
    let column_count = |event: &Value| {
        event["object"]["columnDefinitions"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(column_count(&replayed), 3, "{replayed}");
    assert_eq!(column_count(&live), 0, "{live}");
    Ok(())
}

#[tokio::test]
async fn printer_columns_in_tables() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    c.post(WIDGETS, &widget("w1", 3)).await?;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let resp = c.get_with_accept(WIDGETS, accept).await?;
    assert_eq!(resp.body["kind"], "Table");
    let cols: Vec<&str> = resp.body["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The CRD's printer columns replace the default ones (Age included) after Name.
    assert_eq!(cols, ["Name", "Replicas", "Image"]);
    let cells = &resp.body["rows"][0]["cells"];
    assert_eq!(cells[0], "w1");
    assert_eq!(cells[1], 3);
    assert_eq!(cells[2], "img:1");
    assert_eq!(
        resp.body["rows"][0]["object"]["kind"],
        "PartialObjectMetadata"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_the_crd_removes_resources_and_discovery() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    c.post(WIDGETS, &widget("w1", 1)).await?;
    let mut w = c
        .watch(&format!("{WIDGETS}?watch=true&resourceVersion=0"))
        .await?;
    w.until(Duration::from_secs(5), |e| e["type"] == "ADDED")
        .await?;
    let r = c
        .delete(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            None,
        )
        .await?;
    assert_eq!(r.status, 200);
    w.until(Duration::from_secs(5), |e| e["type"] == "DELETED")
        .await?;
    let mut crds = c
        .watch(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=true&resourceVersion=0",
        )
        .await?;
    let gone = c
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await?;
    if gone.status != 404 {
        crds.until(Duration::from_secs(5), |e| e["type"] == "DELETED")
            .await?;
    }
    assert_eq!(c.get("/apis/example.com/v1").await?.status, 404);
    assert_eq!(c.get(WIDGETS).await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn status_apply_owns_only_status() -> Result<(), TestError> {
    let (_emu, c) = setup().await?;
    c.apply(
        &format!("{WIDGETS}/w1"),
        "fieldwise",
        false,
        &widget("w1", 2),
    )
    .await?;
    let status = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
        "spec": {"replicas": 9}, "status": {"replicas": 2}});
    let r = c
        .apply(&format!("{WIDGETS}/w1/status"), "fieldwise", false, &status)
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"]["replicas"], 2);
    assert_eq!(r.body["spec"]["replicas"], 2, "/status ignores spec");
    assert_eq!(r.body["metadata"]["generation"], 1);
    let entries = r.body["metadata"]["managedFields"].as_array().unwrap();
    let st = entries
        .iter()
        .find(|e| e["subresource"] == "status")
        .unwrap();
    assert_eq!(st["manager"], "fieldwise");
    assert_eq!(st["operation"], "Apply");
    assert_eq!(st["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    let again = c
        .apply(&format!("{WIDGETS}/w1/status"), "fieldwise", false, &status)
        .await?;
    assert_eq!(
        again.body["metadata"]["resourceVersion"], r.body["metadata"]["resourceVersion"],
        "no-op"
    );
    Ok(())
}

#[tokio::test]
async fn defaults_on_read_and_scale_without_replicas() -> Result<(), TestError> {
    let Some((_emu, c)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    // Without the replicas rule, a widget may omit spec.replicas.
    let mut crd = c.get(crd_path).await?.body;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        .as_object_mut()
        .ok_or("spec schema")?
        .remove("x-kubernetes-validations");
    assert_eq!(c.put(crd_path, &crd).await?.status, 200);
    let r = c
        .post(WIDGETS, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"image": "i"}}))
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let scale = c.get(&format!("{WIDGETS}/w1/scale")).await?;
    // Without spec.replicas the scale subresource cannot be read at all.
    assert_eq!(scale.status, 500, "{}", scale.text);
    assert_eq!(scale.body["reason"], "InternalError");
    assert_eq!(
        scale.body["message"],
        "Internal error occurred: the spec replicas field \".spec.replicas\" does not exist"
    );
    let empty = c
        .patch(
            &format!("{WIDGETS}/w1/scale"),
            "merge",
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await?;
    assert_eq!(empty.status, 400);
    assert_eq!(
        empty.body["message"],
        "the spec replicas field \".spec.replicas\" cannot be empty"
    );
    // A default added to the CRD later shows on the stored object when read.
    let mut crd = c
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .await?
        .body;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["color"] =
        json!({"type": "string", "default": "blue"});
    let r = c
        .put(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            &crd,
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    // A real server serves the changed schema a moment after the update (the emulator at once), and
    // nothing about it can be watched: read until the default shows, for at most 30 s.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut w = c.get(&format!("{WIDGETS}/w1")).await?;
    while w.body["spec"]["color"] != "blue" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        w = c.get(&format!("{WIDGETS}/w1")).await?;
    }
    assert_eq!(w.body["spec"]["color"], "blue");
    Ok(())
}
