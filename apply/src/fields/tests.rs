use serde_json::{Value, json};

use super::*;

/// What fieldwise would apply for a small Deployment (ownerReference and labels included).
fn deployment_body() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "ns",
            "labels": {"app": "web", "app.kubernetes.io/managed-by": "fieldwise"},
            "ownerReferences": [{"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": "fs",
                                 "uid": "u1", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app", "image": "nginx:1", "args": ["--a", "--b"],
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "A", "value": "1"}]
                }]}
            }
        }
    })
}

/// The entry the API server records for [`deployment_body`] (shapes per spec §1.4).
fn our_fields() -> Value {
    json!({
        "f:metadata": {
            "f:labels": {"f:app": {}, "f:app.kubernetes.io/managed-by": {}},
            "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {".": {}, "f:apiVersion": {}, "f:blockOwnerDeletion": {},
                "f:controller": {}, "f:kind": {}, "f:name": {}, "f:uid": {}}}
        },
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                    ".": {}, "f:args": {},
                    "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                    "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}}
            }
        }
    })
}

fn entry(manager: &str, operation: &str, subresource: Option<&str>, fields: Value) -> Value {
    let mut e = json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
                       "time": "2026-11-20T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields});
    if let Some(s) = subresource {
        e["subresource"] = json!(s);
    }
    e
}

/// The live Deployment: our body plus server defaults, status and managedFields.
fn live_deployment(entries: Vec<Value>) -> Value {
    let mut live = deployment_body();
    live["metadata"]["uid"] = json!("d1");
    live["metadata"]["resourceVersion"] = json!("42");
    live["metadata"]["generation"] = json!(3);
    live["metadata"]["managedFields"] = Value::Array(entries);
    live["spec"]["revisionHistoryLimit"] = json!(10);
    live["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    let container = &mut live["spec"]["template"]["spec"]["containers"][0];
    container["ports"][0]["protocol"] = json!("TCP");
    container["terminationMessagePath"] = json!("/dev/termination-log");
    container["imagePullPolicy"] = json!("IfNotPresent");
    live["status"] =
        json!({"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]});
    live
}

fn controller_status_entry() -> Value {
    entry(
        "kube-controller-manager",
        "Update",
        Some("status"),
        json!({"f:status": {"f:replicas": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:type": {}}}}}),
    )
}

fn check(desired: &Value, live: &Value) -> bool {
    let ours = apply_entry(live, "fieldwise", None);
    let verdict = in_sync(&ownable_part(desired), ours, live);
    assert_eq!(
        body_in_sync(desired, ours, live),
        verdict,
        "body_in_sync must agree with in_sync of the ownable part"
    );
    verdict
}

#[test]
fn steady_state_deployment_is_in_sync() {
    let live = live_deployment(vec![
        entry("fieldwise", "Apply", None, our_fields()),
        controller_status_entry(),
    ]);
    assert!(check(&deployment_body(), &live));
}

#[test]
fn changed_value_is_not_in_sync() {
    let live = live_deployment(vec![entry("fieldwise", "Apply", None, our_fields())]);
    let mut desired = deployment_body();
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert!(!check(&desired, &live));
    let mut desired = deployment_body();
    desired["metadata"]["labels"]["app"] = json!("other");
    assert!(!check(&desired, &live));
}

#[test]
fn atomic_list_must_match_whole() {
    let live = live_deployment(vec![entry("fieldwise", "Apply", None, our_fields())]);
    let mut desired = deployment_body();
    desired["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--a"]);
    assert!(!check(&desired, &live));
    let mut desired = deployment_body();
    desired["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    assert!(!check(&desired, &live));
}

#[test]
fn field_pending_removal_is_not_in_sync() {
    let live = live_deployment(vec![entry("fieldwise", "Apply", None, our_fields())]);
    let mut desired = deployment_body();
    desired["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .map(|c| c.remove("env"));
    assert!(!check(&desired, &live));
    let mut desired = deployment_body();
    desired["spec"]
        .as_object_mut()
        .map(|s| s.remove("replicas"));
    assert!(!check(&desired, &live));
}

#[test]
fn missing_entry_or_other_managers_field_is_not_in_sync() {
    let live = live_deployment(vec![controller_status_entry()]);
    assert!(!check(&deployment_body(), &live));
    // Someone else (an Update manager) took the image: our entry no longer lists it.
    let mut ours = our_fields();
    ours["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
        .as_object_mut()
        .map(|c| c.remove("f:image"));
    let live = live_deployment(vec![entry("fieldwise", "Apply", None, ours)]);
    assert!(!check(&deployment_body(), &live));
}

#[test]
fn added_list_item_is_not_in_sync() {
    let live = live_deployment(vec![entry("fieldwise", "Apply", None, our_fields())]);
    let mut desired = deployment_body();
    desired["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    assert!(!check(&desired, &live));
    // A port with an explicit, different protocol is another item.
    let mut desired = deployment_body();
    desired["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80, "protocol": "UDP"}]);
    assert!(!check(&desired, &live));
}

#[test]
fn status_entry_is_separate_from_main_entry() {
    let live = live_deployment(vec![
        entry(
            "fieldwise",
            "Apply",
            Some("status"),
            json!({"f:status": {"f:replicas": {}}}),
        ),
        entry("fieldwise", "Apply", None, our_fields()),
    ]);
    let status_fields = apply_entry(&live, "fieldwise", Some("status")).expect("status entry");
    assert!(status_fields.contains_key("f:status"));
    assert!(owns_path(
        apply_entry(&live, "fieldwise", None).expect("main entry"),
        &["spec", "replicas"]
    ));
    assert!(!owns_path(status_fields, &["spec", "replicas"]));
    let status_body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                             "metadata": {"name": "web", "namespace": "ns"}, "status": {"replicas": 2}});
    assert!(in_sync(
        &ownable_part(&status_body),
        Some(status_fields),
        &live
    ));
    let changed = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"name": "web", "namespace": "ns"}, "status": {"replicas": 3}});
    assert!(!in_sync(
        &ownable_part(&changed),
        Some(status_fields),
        &live
    ));
}

#[test]
fn service_ports_keyed_by_port_and_defaulted_protocol() {
    let desired = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    let fields = json!({"f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:selector": {},
                   "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}}}});
    let mut live = desired.clone();
    live["metadata"]["managedFields"] = json!([entry("fieldwise", "Apply", None, fields)]);
    live["spec"]["ports"][0]["protocol"] = json!("TCP");
    live["spec"]["clusterIP"] = json!("10.0.0.7");
    live["spec"]["type"] = json!("ClusterIP");
    live["spec"]["sessionAffinity"] = json!("None");
    assert!(check(&desired, &live));
    let mut changed = desired.clone();
    changed["spec"]["ports"][0]["targetPort"] = json!(9090);
    assert!(!check(&changed, &live));
}

#[test]
fn configmap_data_is_a_granular_map() {
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "ns", "labels": {"team": "a"}}, "data": {"a": "1", "b": "2"}});
    let fields =
        json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:team": {}}}});
    let mut live = desired.clone();
    live["metadata"]["managedFields"] = json!([entry("fieldwise", "Apply", None, fields)]);
    assert!(check(&desired, &live));
    // A key another writer added does not matter; one we stop sending does.
    live["data"]["c"] = json!("3");
    assert!(check(&desired, &live));
    let mut fewer = desired.clone();
    fewer["data"].as_object_mut().map(|d| d.remove("b"));
    assert!(!check(&fewer, &live));
}

#[test]
fn set_elements_and_empty_members() {
    let desired = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/b"]},
        "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}});
    let fields = json!({"f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}},
        "f:spec": {"f:volumes": {"k:{\"name\":\"scratch\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}}});
    let mut live = desired.clone();
    live["metadata"]["managedFields"] = json!([entry("fieldwise", "Apply", None, fields)]);
    assert!(check(&desired, &live));
    let mut more = desired.clone();
    more["metadata"]["finalizers"] = json!(["a/b", "c/d"]);
    assert!(!check(&more, &live));
}

#[test]
fn taken_paths_name_what_a_force_apply_takes() {
    // kubectl edit changed the image: it now owns the field with a different value.
    let mut live = live_deployment(vec![]);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:hacked");
    live["spec"]["replicas"] = json!(5);
    let edit = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"app\"}": {"f:image": {}}}}}}});
    let edit = edit.as_object().expect("object").clone();
    let taken = taken_paths(&ownable_part(&deployment_body()), &edit, &live);
    assert_eq!(
        taken,
        [
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"app\"].image"
        ]
    );
    // Equal values are shared, not taken.
    let taken = taken_paths(
        &ownable_part(&deployment_body()),
        &edit,
        &live_deployment(vec![]),
    );
    assert!(taken.is_empty());
}

#[test]
fn body_without_ownable_metadata_is_compared_like_its_ownable_part() {
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1"}});
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                     "managedFields": [entry("fieldwise", "Apply", None, json!({"f:data": {"f:a": {}}}))]},
        "data": {"a": "1"}});
    assert!(check(&desired, &live));
    let mut changed = desired.clone();
    changed["data"]["a"] = json!("2");
    assert!(!check(&changed, &live));
    let mut labelled = desired.clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    assert!(!check(&labelled, &live), "a label we do not own yet");
}

/// kube-apiserver 1.33 records an owner reference (an atomic struct) as its key alone, `{}` under
/// `k:{"uid":…}` (found by e2e/cluster/test: every edit by another manager made fieldwise apply again).
#[test]
fn owner_references_recorded_as_atomic_elements_are_in_sync() {
    let mut fields = our_fields();
    fields["f:metadata"]["f:ownerReferences"] = json!({"k:{\"uid\":\"u1\"}": {}});
    let live = live_deployment(vec![
        entry("fieldwise", "Apply", None, fields),
        controller_status_entry(),
    ]);
    assert!(check(&deployment_body(), &live));
    let mut other_owner = live.clone();
    other_owner["metadata"]["ownerReferences"][0]["name"] = json!("another");
    assert!(
        !check(&deployment_body(), &other_owner),
        "the element is compared whole"
    );
}

/// An atomic list (a StatefulSet's claim templates) as the API server keeps it: a null field it
/// leaves in place (`creationTimestamp: null`) is the same as absent; any other difference is not.
#[test]
fn atomic_values_compare_nulls_as_absent() {
    let template = |extra: serde_json::Value| {
        let mut item = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"}, "spec": {"volumeMode": "Filesystem"}});
        if let Some(fields) = extra.as_object() {
            for (k, v) in fields {
                item["metadata"][k] = v.clone();
            }
        }
        item
    };
    let desired = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"volumeClaimTemplates": [template(json!({}))]}});
    let owned = json!({"f:spec": {"f:volumeClaimTemplates": {}}});
    let live_with = |item: serde_json::Value| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "s", "namespace": "ns",
                         "managedFields": [entry("fieldwise", "Apply", None, owned.clone())]},
            "spec": {"volumeClaimTemplates": [item]}})
    };
    assert!(check(
        &desired,
        &live_with(template(json!({"creationTimestamp": null})))
    ));
    assert!(check(&desired, &live_with(template(json!({})))));
    assert!(!check(
        &desired,
        &live_with(template(json!({"labels": {"a": "b"}})))
    ));
}
