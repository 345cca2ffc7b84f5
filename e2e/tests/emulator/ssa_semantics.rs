//! Behaviour of `fieldwise_e2e::ssa` the structured-merge-diff oracle does not model: the
//! apiserver's managedFields layer (encoding, ordering, times, subresources, before-first-apply,
//! wiping, the Update cap), conflict wording, defaults of list keys, and the replicas handover of
//! spec §2.3–2.4.

use fieldwise_e2e::ssa::{
    ApplyError, ApplyOptions, FieldSet, ManagedFieldsEntry, Operation, TypeSchema, UpdateOptions,
    apply, decode_managed_fields, fieldset_of_applied, merge, update,
};
use serde_json::{Value, json};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:00:01Z";
const T2: &str = "2026-01-01T00:00:02Z";

fn configmap() -> TypeSchema {
    TypeSchema::builtin("", "v1", "ConfigMap").expect("configmap schema")
}

fn deployment() -> TypeSchema {
    TypeSchema::builtin("apps", "v1", "Deployment").expect("deployment schema")
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "ns"}, "data": data})
}

fn applied(manager: &str, api_version: &str, now: &str) -> ApplyOptions {
    ApplyOptions {
        manager: manager.into(),
        api_version: api_version.into(),
        now: now.into(),
        ..ApplyOptions::default()
    }
}

fn updated(manager: &str, api_version: &str, now: &str) -> UpdateOptions {
    UpdateOptions {
        manager: manager.into(),
        api_version: api_version.into(),
        now: now.into(),
        ..UpdateOptions::default()
    }
}

fn do_apply(
    schema: &TypeSchema,
    live: Option<&Value>,
    config: &Value,
    opts: &ApplyOptions,
) -> Value {
    apply(schema, live, config, opts)
        .expect("apply succeeds")
        .object
}

fn entries(object: &Value) -> Vec<ManagedFieldsEntry> {
    decode_managed_fields(object).expect("managedFields decode")
}

fn fields_of(object: &Value, manager: &str) -> String {
    entries(object)
        .into_iter()
        .find(|e| e.manager == manager)
        .map(|e| e.fields.to_fields_v1().to_string())
        .unwrap_or_default()
}

fn conflict(
    result: Result<fieldwise_e2e::ssa::WriteOutcome, ApplyError>,
) -> fieldwise_e2e::ssa::ApplyConflict {
    match result {
        Err(ApplyError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn fields_v1_encoding_matches_spec_examples() {
    let schema = configmap();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "labels": {"team": "a"}}, "data": {"a": "1"}});
    let set = fieldset_of_applied(&schema, &config, &FieldSet::new()).expect("fieldset");
    assert_eq!(
        set.to_fields_v1().to_string(),
        r#"{"f:data":{"f:a":{}},"f:metadata":{"f:labels":{"f:team":{}}}}"#
    );

    let d = deployment();
    let config = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [
        {"name": "app", "image": "i", "args": ["x"], "ports": [{"containerPort": 80}]}]}}}});
    let text = fieldset_of_applied(&d, &config, &FieldSet::new())
        .expect("fieldset")
        .to_fields_v1()
        .to_string();
    assert_eq!(
        text,
        r#"{"f:spec":{"f:selector":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:args":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
    );
}

#[test]
fn fields_v1_round_trips_and_orders_elements() {
    let text = r#"{"f:a":{},"f:metadata":{"f:finalizers":{".":{},"v:\"x\"":{}}},"f:spec":{"f:list":{"i:0":{}},"f:ports":{"k:{\"containerPort\":9,\"protocol\":\"TCP\"}":{},"k:{\"containerPort\":10,\"protocol\":\"TCP\"}":{}}}}"#;
    let value: Value = serde_json::from_str(text).expect("json");
    let set = FieldSet::from_fields_v1(&value).expect("decode");
    assert_eq!(set.to_fields_v1().to_string(), text);
    let paths: Vec<String> = set.paths().iter().map(ToString::to_string).collect();
    assert!(
        paths.contains(&".spec.ports[containerPort=10,protocol=\"TCP\"]".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&".metadata.finalizers[=\"x\"]".to_string()),
        "{paths:?}"
    );
}

#[test]
fn merge_keeps_live_order_and_places_new_items_after_their_predecessor() {
    let d = deployment();
    let c = |name: &str| json!({"name": name, "image": "i"});
    let live =
        json!({"spec": {"template": {"spec": {"containers": [c("a"), c("b"), c("c"), c("d")]}}}});
    let config =
        json!({"spec": {"template": {"spec": {"containers": [c("a"), c("a2"), c("c"), c("c2")]}}}});
    let merged = merge(&d, &live, &config);
    let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b", "a2", "c", "d", "c2"]);
}

#[test]
fn apply_creates_with_time_and_encodes_entry_in_server_key_order() {
    let object = do_apply(
        &configmap(),
        None,
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T0),
    );
    let managed = serde_json::to_string(&object["metadata"]["managedFields"]).expect("json");
    assert_eq!(
        managed,
        r#"[{"manager":"alice","operation":"Apply","apiVersion":"v1","time":"2026-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:data":{"f:a":{}}}}]"#
    );
}

#[test]
fn noop_apply_changes_nothing_and_second_sharer_gets_no_time() {
    let schema = configmap();
    let first = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T0),
    );
    let again = apply(
        &schema,
        Some(&first),
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T1),
    )
    .expect("apply");
    assert!(
        !again.changed,
        "same config from the same manager is a no-op"
    );
    assert_eq!(again.object, first);

    let shared = apply(
        &schema,
        Some(&first),
        &cm(json!({"a": "1"})),
        &applied("bob", "v1", T1),
    )
    .expect("apply");
    assert!(shared.changed, "managedFields changed");
    let bob = entries(&shared.object)
        .into_iter()
        .find(|e| e.manager == "bob")
        .expect("bob entry");
    assert_eq!(
        bob.time, None,
        "an apply that changes no value writes its entry without time"
    );
    let alice = entries(&shared.object)
        .into_iter()
        .find(|e| e.manager == "alice")
        .expect("alice entry");
    assert_eq!(alice.time.as_deref(), Some(T0));
}

#[test]
fn entries_sort_apply_first_then_by_time_then_manager() {
    let schema = configmap();
    let mut object = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1"})),
        &applied("zed", "v1", T1),
    );
    object = do_apply(
        &schema,
        Some(&object),
        &cm(json!({"b": "1"})),
        &applied("amy", "v1", T2),
    );
    let mut edited = object.clone();
    edited["data"]["c"] = json!("1");
    object = update(
        &schema,
        Some(&object),
        &edited,
        &updated("kubectl-edit", "v1", T0),
    )
    .expect("update")
    .object;
    let order: Vec<(String, Operation)> = entries(&object)
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect();
    assert_eq!(
        order,
        [
            ("zed".to_string(), Operation::Apply),
            ("amy".to_string(), Operation::Apply),
            ("kubectl-edit".to_string(), Operation::Update)
        ]
    );
}

#[test]
fn conflict_messages_and_causes_follow_the_server() {
    let schema = configmap();
    let object = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1", "b": "1"})),
        &applied("alice", "v1", T0),
    );
    let mut patched = object.clone();
    patched["data"]["c"] = json!("1");
    let object = update(
        &schema,
        Some(&object),
        &patched,
        &updated("kubectl-patch", "v1", T1),
    )
    .expect("update")
    .object;

    let one = conflict(apply(
        &schema,
        Some(&object),
        &cm(json!({"a": "2"})),
        &applied("bob", "v1", T2),
    ));
    assert_eq!(
        one.message(),
        r#"Apply failed with 1 conflict: conflict with "alice": .data.a"#
    );
    let status = one.to_status();
    assert_eq!(status["code"], 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"],
        json!({"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".data.a"}]})
    );

    let many = conflict(apply(
        &schema,
        Some(&object),
        &cm(json!({"a": "2", "b": "2", "c": "2"})),
        &applied("bob", "v1", T2),
    ));
    assert_eq!(
        many.message(),
        "Apply failed with 3 conflicts: conflicts with \"alice\":\n- .data.a\n- .data.b\nconflicts with \"kubectl-patch\" using v1:\n- .data.c"
    );
    assert_eq!(
        many.causes()[2].message,
        "conflict with \"kubectl-patch\" using v1"
    );
}

#[test]
fn force_transfers_only_conflicting_paths() {
    let schema = configmap();
    let object = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1", "b": "1"})),
        &applied("alice", "v1", T0),
    );
    let mut opts = applied("bob", "v1", T1);
    opts.force = true;
    let object = do_apply(
        &schema,
        Some(&object),
        &cm(json!({"a": "2", "b": "1"})),
        &opts,
    );
    assert_eq!(fields_of(&object, "alice"), r#"{"f:data":{"f:b":{}}}"#);
    assert_eq!(
        fields_of(&object, "bob"),
        r#"{"f:data":{"f:a":{},"f:b":{}}}"#
    );
    assert_eq!(object["data"], json!({"a": "2", "b": "1"}));
}

#[test]
fn dropping_a_field_removes_it_only_when_nobody_else_owns_it() {
    let schema = configmap();
    let object = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1", "b": "1"})),
        &applied("alice", "v1", T0),
    );
    let object = do_apply(
        &schema,
        Some(&object),
        &cm(json!({"a": "1"})),
        &applied("bob", "v1", T1),
    );
    let nothing = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "ns"}});
    let object = do_apply(
        &schema,
        Some(&object),
        &nothing,
        &applied("alice", "v1", T2),
    );
    assert_eq!(
        object["data"],
        json!({"a": "1"}),
        "a is still owned by bob, b is gone"
    );
    assert!(
        entries(&object).iter().all(|e| e.manager != "alice"),
        "alice owns nothing and disappears"
    );
}

#[test]
fn before_first_apply_owns_existing_fields_of_untracked_objects() {
    let schema = configmap();
    let legacy = cm(json!({"a": "1", "b": "2"}));
    let object = do_apply(
        &schema,
        Some(&legacy),
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T0),
    );
    let before = entries(&object)
        .into_iter()
        .find(|e| e.manager == "before-first-apply")
        .expect("synthetic entry");
    assert_eq!(before.operation, Operation::Update);
    assert_eq!(before.api_version, "v1");
    assert_eq!(
        before.fields.to_fields_v1().to_string(),
        r#"{"f:data":{".":{},"f:a":{},"f:b":{}}}"#
    );
    let err = conflict(apply(
        &schema,
        Some(&object),
        &cm(json!({"b": "3"})),
        &applied("carol", "v1", T1),
    ));
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.b"#
    );
}

#[test]
fn create_owns_new_nodes_and_defaults_but_not_zero_value_structs() {
    let d = deployment();
    let new = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "b"}},
        "spec": {"replicas": 1, "revisionHistoryLimit": 10, "selector": {"matchLabels": {"a": "b"}},
                 "strategy": {"type": "RollingUpdate"},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "i", "terminationMessagePath": "/dev/termination-log"}]}}}});
    let object = update(&d, None, &new, &updated("kubectl-create", "apps/v1", T0))
        .expect("create")
        .object;
    assert_eq!(
        fields_of(&object, "kubectl-create"),
        r#"{"f:metadata":{"f:labels":{".":{},"f:a":{}}},"f:spec":{"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"f:strategy":{"f:type":{}},"f:template":{"f:metadata":{"f:labels":{".":{},"f:a":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:terminationMessagePath":{}}}}}}}"#
    );
}

#[test]
fn unchanged_update_keeps_entry_and_time() {
    let schema = configmap();
    let object = update(
        &schema,
        None,
        &cm(json!({"a": "1"})),
        &updated("kubectl-create", "v1", T0),
    )
    .expect("create")
    .object;
    let again = update(
        &schema,
        Some(&object),
        &cm(json!({"a": "1"})),
        &updated("kubectl-replace", "v1", T1),
    )
    .expect("update");
    assert!(!again.changed);
    assert_eq!(again.object, object);
}

#[test]
fn managed_fields_in_update_body_wipe_or_replace() {
    let schema = configmap();
    let object = do_apply(
        &schema,
        None,
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T0),
    );
    for wipe in [json!([{}]), json!([])] {
        let mut body = object.clone();
        body["metadata"]["managedFields"] = wipe.clone();
        let wiped = update(
            &schema,
            Some(&object),
            &body,
            &updated("kubectl-edit", "v1", T1),
        )
        .expect("update")
        .object;
        assert!(
            wiped["metadata"].get("managedFields").is_none(),
            "{wipe} wipes all entries"
        );
        let mut edited = wiped.clone();
        edited["data"]["b"] = json!("2");
        let untracked = update(
            &schema,
            Some(&wiped),
            &edited,
            &updated("kubectl-edit", "v1", T2),
        )
        .expect("update")
        .object;
        assert!(
            untracked["metadata"].get("managedFields").is_none(),
            "updates are not tracked until the next apply"
        );
    }
    let mut body = object.clone();
    body["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
    let replaced = update(
        &schema,
        Some(&object),
        &body,
        &updated("kubectl-edit", "v1", T1),
    )
    .expect("update")
    .object;
    let managers: Vec<String> = entries(&replaced).into_iter().map(|e| e.manager).collect();
    assert_eq!(managers, ["someone"]);
}

#[test]
fn subresource_writes_ignore_body_managed_fields_and_record_subresource() {
    let d = deployment();
    let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let object = do_apply(&d, None, &base, &applied("kubectl", "apps/v1", T0));
    let mut scaled = object.clone();
    scaled["spec"]["replicas"] = json!(5);
    scaled["metadata"]["managedFields"] = json!([{}]);
    let mut opts = updated("kube-controller-manager", "apps/v1", T1);
    opts.subresource = Some("scale".into());
    let object = update(&d, Some(&object), &scaled, &opts)
        .expect("scale")
        .object;
    let hpa = entries(&object)
        .into_iter()
        .find(|e| e.manager == "kube-controller-manager")
        .expect("entry");
    assert_eq!(hpa.subresource.as_deref(), Some("scale"));
    assert_eq!(
        hpa.fields.to_fields_v1().to_string(),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert_eq!(
        hpa.to_json()["subresource"],
        json!("scale"),
        "subresource is encoded last in the entry"
    );
    let err = conflict(apply(
        &d,
        Some(&object),
        &base,
        &applied("other", "apps/v1", T2),
    ));
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "kube-controller-manager" with subresource "scale" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn replicas_handover_to_hpa_never_drops_replicas() {
    let d = deployment();
    let full = |replicas: Option<i64>| {
        let mut spec = json!({"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}});
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
    };
    // Sole owner dropping replicas: the field goes (defaulting then makes it 1, unowned).
    let object = do_apply(&d, None, &full(Some(3)), &applied("kubectl", "apps/v1", T0));
    let dropped = do_apply(
        &d,
        Some(&object),
        &full(None),
        &applied("kubectl", "apps/v1", T1),
    );
    assert!(dropped["spec"].get("replicas").is_none());

    // Documented handover.
    let handover = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let object = do_apply(
        &d,
        Some(&object),
        &handover,
        &applied("handover-to-hpa", "apps/v1", T1),
    );
    let object = do_apply(
        &d,
        Some(&object),
        &full(None),
        &applied("kubectl", "apps/v1", T1),
    );
    assert_eq!(
        object["spec"]["replicas"], 3,
        "replicas stays, owned by handover-to-hpa"
    );
    assert_eq!(
        fields_of(&object, "handover-to-hpa"),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    let mut scaled = object.clone();
    scaled["spec"]["replicas"] = json!(6);
    let mut opts = updated("kube-controller-manager", "apps/v1", T2);
    opts.subresource = Some("scale".into());
    let object = update(&d, Some(&object), &scaled, &opts)
        .expect("scale")
        .object;
    assert!(
        entries(&object)
            .iter()
            .all(|e| e.manager != "handover-to-hpa"),
        "handover-to-hpa lost its only field"
    );
    assert_eq!(object["spec"]["replicas"], 6);
    // The user's manifest without replicas keeps applying cleanly.
    let object = do_apply(
        &d,
        Some(&object),
        &full(None),
        &applied("kubectl", "apps/v1", T2),
    );
    assert_eq!(object["spec"]["replicas"], 6);
}

#[test]
fn more_than_ten_update_managers_fold_into_ancient_changes() {
    let schema = configmap();
    let mut object = update(
        &schema,
        None,
        &cm(json!({"k0": "v"})),
        &updated("m0", "v1", "2026-01-01T00:00:00Z"),
    )
    .expect("create")
    .object;
    for i in 1..=11 {
        let mut next = object.clone();
        next["data"][format!("k{i}")] = json!("v");
        object = update(
            &schema,
            Some(&object),
            &next,
            &updated(&format!("m{i}"), "v1", &format!("2026-01-01T00:00:{i:02}Z")),
        )
        .expect("update")
        .object;
    }
    let list = entries(&object);
    assert_eq!(list.len(), 10);
    let ancient = list
        .iter()
        .find(|e| e.manager == "ancient-changes")
        .expect("ancient-changes entry");
    assert_eq!(
        ancient.fields.to_fields_v1().to_string(),
        r#"{"f:data":{".":{},"f:k0":{},"f:k1":{},"f:k2":{}}}"#
    );
    assert!(
        list.iter()
            .all(|e| !["m0", "m1", "m2"].contains(&e.manager.as_str()))
    );
}

#[test]
fn undeclared_fields_fail_like_the_typed_conversion() {
    let d = deployment();
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"bogus": 1}});
    match apply(&d, None, &config, &applied("kubectl", "apps/v1", T0)) {
        Err(ApplyError::Schema(e)) => {
            assert_eq!(e.to_string(), ".spec.bogus: field not declared in schema")
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn reset_fields_are_neither_owned_nor_compared() {
    let d = deployment();
    let mut opts = applied("kubectl", "apps/v1", T0);
    opts.reset_fields = FieldSet::from_field_paths(&[&["status"]]);
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
    let object = do_apply(&d, None, &config, &opts);
    assert_eq!(
        fields_of(&object, "kubectl"),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
}

#[test]
fn crd_schema_markers_drive_ownership() {
    let props = serde_json::from_value(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "servers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"],
            "items": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer", "default": 80}}}},
        "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}))
    .expect("props");
    let schema = TypeSchema::from_crd_schema(&props);
    let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"x": "y"}},
        "spec": {"servers": [{"host": "h"}], "sel": {"a": "b"}, "free": {"any": {"thing": [1]}}}});
    let set = fieldset_of_applied(&schema, &config, &FieldSet::new()).expect("fieldset");
    assert_eq!(
        set.to_fields_v1().to_string(),
        r#"{"f:metadata":{"f:labels":{"f:x":{}}},"f:spec":{"f:free":{"f:any":{".":{},"f:thing":{}}},"f:sel":{},"f:servers":{"k:{\"host\":\"h\"}":{".":{},"f:host":{}}}}}"#
    );
    let bogus = json!({"spec": {"nope": 1}});
    assert!(fieldset_of_applied(&schema, &bogus, &FieldSet::new()).is_err());
}

#[test]
fn every_builtin_kind_has_a_schema() {
    for (group, version, kind) in TypeSchema::builtin_kinds() {
        let schema = TypeSchema::builtin(group, version, kind);
        assert!(schema.is_some(), "{group}/{version} {kind}");
    }
    let svc = TypeSchema::builtin("", "v1", "Service").expect("service");
    let config = json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}});
    assert_eq!(
        fieldset_of_applied(&svc, &config, &FieldSet::new())
            .expect("fieldset")
            .to_fields_v1()
            .to_string(),
        r#"{"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{}}},"f:selector":{}}}"#
    );
}

#[test]
fn updates_tolerate_duplicate_keys_but_applies_do_not() {
    let d = deployment();
    let env = json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]);
    let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i", "env": env}]}}}});
    assert!(update(&d, None, &object, &updated("kubectl-create", "apps/v1", T0)).is_ok());
    assert!(matches!(
        apply(&d, None, &object, &applied("kubectl", "apps/v1", T0)),
        Err(ApplyError::Schema(_))
    ));
}

#[test]
fn existing_ancient_changes_bucket_absorbs_later_overflow() {
    let schema = configmap();
    let mut object = update(
        &schema,
        None,
        &cm(json!({"k0": "v"})),
        &updated("m0", "v1", T0),
    )
    .expect("create")
    .object;
    for i in 1..=13 {
        let mut next = object.clone();
        next["data"][format!("k{i}")] = json!("v");
        let opts = updated(&format!("m{i}"), "v1", &format!("2026-01-01T00:01:{i:02}Z"));
        object = update(&schema, Some(&object), &next, &opts)
            .expect("update")
            .object;
    }
    let list = entries(&object);
    assert_eq!(list.len(), 10);
    let buckets: Vec<&ManagedFieldsEntry> = list
        .iter()
        .filter(|e| e.manager == "ancient-changes")
        .collect();
    assert_eq!(buckets.len(), 1, "one bucket per apiVersion");
    assert_eq!(
        buckets[0].fields.to_fields_v1().to_string(),
        r#"{"f:data":{".":{},"f:k0":{},"f:k1":{},"f:k2":{},"f:k3":{},"f:k4":{}}}"#
    );
}

#[test]
fn status_endpoint_owns_only_status() {
    let d = deployment();
    let reset =
        fieldwise_e2e::ssa::endpoint_reset_fields("apps", "Deployment", Some("status"), true);
    let mut opts = applied("status-writer", "apps/v1", T0);
    opts.subresource = Some("status".into());
    opts.reset_fields = reset;
    let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
    let live = do_apply(&d, None, &base, &applied("kubectl", "apps/v1", T0));
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"x": "y"}},
        "spec": {"replicas": 4}, "status": {"replicas": 1}});
    let object = do_apply(&d, Some(&live), &config, &opts);
    let entry = entries(&object)
        .into_iter()
        .find(|e| e.manager == "status-writer")
        .expect("entry");
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(
        entry.fields.to_fields_v1().to_string(),
        r#"{"f:status":{"f:replicas":{}}}"#
    );
}

#[test]
fn kubectl_applies_keep_the_client_side_annotation_in_step() {
    let schema = configmap();
    let mut legacy = cm(json!({"a": "1"}));
    legacy["metadata"]["annotations"] =
        json!({fieldwise_e2e::ssa::LAST_APPLIED: "{}", "keep": "me"});
    let config = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c1", "namespace": "ns"}, "data": {"b": "2"}});
    let object = do_apply(
        &schema,
        Some(&legacy),
        &config,
        &applied("kubectl", "v1", T0),
    );
    assert_eq!(
        object["metadata"]["annotations"][fieldwise_e2e::ssa::LAST_APPLIED],
        r#"{"apiVersion":"v1","data":{"b":"2"},"kind":"ConfigMap","metadata":{"name":"c1","namespace":"ns"}}"#
    );
    let other = do_apply(
        &schema,
        Some(&legacy),
        &config,
        &applied("fieldwise", "v1", T0),
    );
    assert_eq!(
        other["metadata"]["annotations"][fieldwise_e2e::ssa::LAST_APPLIED],
        "{}"
    );
}

#[test]
fn several_schema_errors_are_listed_like_the_library() {
    let d = deployment();
    let config = json!({"spec": {"bogus": 1, "replicas": "three", "template": {"spec": {"containers": [{"name": "a", "nope": true}]}}}});
    let err = fieldset_of_applied(&d, &config, &FieldSet::new()).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "errors:\n  .spec.bogus: field not declared in schema\n  .spec.replicas: expected numeric (int or float), got string\n  .spec.template.spec.containers[name=\"a\"].nope: field not declared in schema"
    );
}

#[test]
fn applier_dropping_a_value_created_by_kubectl_create_keeps_it() {
    let schema = configmap();
    let object = update(
        &schema,
        None,
        &cm(json!({"a": "1"})),
        &updated("kubectl-create", "v1", T0),
    )
    .expect("create")
    .object;
    let object = do_apply(
        &schema,
        Some(&object),
        &cm(json!({"a": "1"})),
        &applied("alice", "v1", T1),
    );
    let nothing = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1", "namespace": "ns"}});
    let object = do_apply(
        &schema,
        Some(&object),
        &nothing,
        &applied("alice", "v1", T2),
    );
    assert_eq!(object["data"], json!({"a": "1"}));
    assert_eq!(
        fields_of(&object, "kubectl-create"),
        r#"{"f:data":{".":{},"f:a":{}}}"#
    );
}

#[test]
fn metadata_list_types_follow_the_api_markers() {
    let pod = TypeSchema::builtin("", "v1", "Pod").expect("pod");
    let config = json!({"metadata": {"finalizers": ["a.io/x"], "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1"}]},
        "spec": {"imagePullSecrets": [{"name": "reg"}], "tolerations": [{"key": "k"}],
                 "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                                 "volumeMounts": [{"name": "v", "mountPath": "/d"}], "command": ["sh"]}],
                 "topologySpreadConstraints": [{"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1,
                                                "labelSelector": {"matchLabels": {"a": "b"}}}]}});
    let text = fieldset_of_applied(&pod, &config, &FieldSet::new())
        .expect("fieldset")
        .to_fields_v1()
        .to_string();
    assert_eq!(
        text,
        concat!(
            r#"{"f:metadata":{"f:finalizers":{"v:\"a.io/x\"":{}},"f:ownerReferences":{"k:{\"uid\":\"u1\"}":{".":{},"f:apiVersion":{},"f:kind":{},"f:name":{},"f:uid":{}}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:command":{},"f:env":{"k:{\"name\":\"E\"}":{".":{},"f:name":{},"f:valueFrom":{"f:secretKeyRef":{}}}},"f:name":{},"f:volumeMounts":{"k:{\"mountPath\":\"/d\"}":{".":{},"f:mountPath":{},"f:name":{}}}}},"#,
            r#""f:imagePullSecrets":{"k:{\"name\":\"reg\"}":{}},"f:tolerations":{},"#,
            r#""f:topologySpreadConstraints":{"k:{\"topologyKey\":\"zone\",\"whenUnsatisfiable\":\"DoNotSchedule\"}":{".":{},"f:labelSelector":{},"f:maxSkew":{},"f:topologyKey":{},"f:whenUnsatisfiable":{}}}}}"#
        )
    );
}

#[test]
fn duplicated_keys_are_owned_and_replaced_as_a_whole() {
    let d = deployment();
    let with_env = |env: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "i", "env": env}]}}}})
    };
    let dup = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "x"}, {"name": "A", "value": "2"}]);
    let object = update(
        &d,
        None,
        &with_env(dup),
        &updated("kubectl-create", "apps/v1", T0),
    )
    .expect("create")
    .object;
    let owned = fields_of(&object, "kubectl-create");
    assert!(
        owned.contains(r#""f:env":{".":{},"k:{\"name\":\"A\"}":{},"k:{\"name\":\"B\"}":{".":{},"f:name":{},"f:value":{}}}"#),
        "{owned}"
    );
    let mut opts = applied("fixer", "apps/v1", T1);
    opts.force = true;
    let object = do_apply(
        &d,
        Some(&object),
        &with_env(json!([{"name": "A", "value": "3"}])),
        &opts,
    );
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "3"}, {"name": "B", "value": "x"}])
    );
}

#[test]
fn before_first_apply_starts_from_the_zero_value() {
    let d = deployment();
    let legacy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": "i"}]}}}});
    let config = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let object = do_apply(
        &d,
        Some(&legacy),
        &config,
        &applied("kubectl", "apps/v1", T0),
    );
    assert_eq!(
        fields_of(&object, "before-first-apply"),
        r#"{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );
}
