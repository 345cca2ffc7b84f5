use serde_json::{Value, json};

use super::*;

const PREDECESSORS: [&str; 3] = ["manager", "kubectl-client-side-apply", "feast-operator"];

fn predecessors() -> Vec<String> {
    PREDECESSORS.map(str::to_owned).to_vec()
}

fn entry(manager: &str, operation: &str, api_version: &str, time: &str, fields: Value) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": api_version, "time": time,
           "fieldsType": "FieldsV1", "fieldsV1": fields})
}

fn on_status(mut entry: Value) -> Value {
    entry["subresource"] = json!("status");
    entry
}

fn object(entries: Vec<Value>) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "feast-sample", "resourceVersion": "42", "managedFields": entries}})
}

/// What the Feast operator's create of a Deployment left owned by `manager` (an excerpt).
fn feast_create() -> Value {
    entry(
        "manager",
        "Update",
        "apps/v1",
        "2026-11-20T10:00:00Z",
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/managed-by": {}, "f:feast.dev/name": {}},
                "f:ownerReferences": {".": {}, "k:{\"uid\":\"fs-uid\"}": {}}},
            "f:spec": {"f:replicas": {}, "f:strategy": {"f:type": {}},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"online\"}": {".": {},
                    "f:env": {".": {}, "k:{\"name\":\"TMP_FEATURE_STORE_YAML_BASE64\"}": {".": {},
                        "f:name": {}, "f:value": {}}},
                    "f:image": {}, "f:name": {}}}}}}
        }),
    )
}

/// kube-controller-manager's revision annotation (an Update of the main resource) and status.
fn controller_manager_entries() -> Vec<Value> {
    vec![
        entry(
            "kube-controller-manager",
            "Update",
            "apps/v1",
            "2026-11-20T10:00:01Z",
            json!({"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}}),
        ),
        on_status(entry(
            "kube-controller-manager",
            "Update",
            "apps/v1",
            "2026-11-20T10:00:02Z",
            json!({"f:status": {"f:replicas": {}}}),
        )),
    ]
}

fn migrated(live: &Value) -> Migration {
    migrate(live, &predecessors(), "fieldwise", "apps/v1", None).expect("something to take over")
}

fn find<'a>(entries: &'a [Value], manager: &str, operation: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["manager"] == manager && e["operation"] == operation)
        .collect()
}

#[test]
fn without_an_apply_entry_one_is_created_at_the_applied_version() {
    let mut entries = vec![feast_create()];
    entries.extend(controller_manager_entries());
    let migration = migrated(&object(entries));
    let ours = find(&migration.managed_fields, "fieldwise", "Apply");
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["apiVersion"], "apps/v1");
    assert_eq!(ours[0]["fieldsType"], "FieldsV1");
    assert_eq!(ours[0]["fieldsV1"], feast_create()["fieldsV1"]);
    assert_eq!(ours[0]["time"], "2026-11-20T10:00:00Z");
    assert_eq!(
        migration.managed_fields[0]["manager"], "fieldwise",
        "Apply entries come first"
    );
    assert!(find(&migration.managed_fields, "manager", "Update").is_empty());
    assert_eq!(migration.managers, ["manager"]);
}

#[test]
fn kube_controller_manager_and_other_users_are_untouched() {
    let annotate = entry(
        "kubectl-annotate",
        "Update",
        "apps/v1",
        "2026-11-20T10:00:03Z",
        json!({"f:metadata": {"f:annotations": {"f:team": {}}}}),
    );
    let mut entries = vec![feast_create(), annotate.clone()];
    entries.extend(controller_manager_entries());
    let migration = migrated(&object(entries));
    let kept: Vec<&Value> = migration.managed_fields.iter().skip(1).collect();
    let mut expected = vec![&annotate];
    let controller = controller_manager_entries();
    expected.extend(controller.iter());
    assert_eq!(kept, expected, "in their order, unchanged");
}

#[test]
fn an_existing_apply_entry_is_united_with_the_predecessors() {
    let ours = entry(
        "fieldwise",
        "Apply",
        "apps/v1",
        "2026-11-21T09:00:00Z",
        json!({"f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}, "f:fieldwise.dev/owner-uid": {}}},
               "f:spec": {"f:strategy": {}}}),
    );
    let migration = migrated(&object(vec![ours, feast_create()]));
    let united = find(&migration.managed_fields, "fieldwise", "Apply");
    assert_eq!(united.len(), 1);
    assert_eq!(
        united[0]["time"], "2026-11-21T09:00:00Z",
        "our entry's own time"
    );
    let tree = &united[0]["fieldsV1"];
    assert_eq!(
        tree["f:metadata"]["f:labels"],
        json!({".": {}, "f:app.kubernetes.io/managed-by": {}, "f:feast.dev/name": {}, "f:fieldwise.dev/owner-uid": {}})
    );
    // We owned the strategy whole; they owned its type: the strategy is owned and keeps the child.
    assert_eq!(tree["f:spec"]["f:strategy"], json!({".": {}, "f:type": {}}));
    assert_eq!(
        tree["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"online\"}"]["f:env"]
            ["k:{\"name\":\"TMP_FEATURE_STORE_YAML_BASE64\"}"],
        json!({".": {}, "f:name": {}, "f:value": {}}),
        "the literal value becomes ours, so our apply without it removes it"
    );
    let keys: Vec<&String> = tree["f:spec"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["f:replicas", "f:strategy", "f:template"], "sorted");
}

#[test]
fn entries_at_another_version_are_dropped_not_united() {
    let ours = entry(
        "fieldwise",
        "Apply",
        "apps/v1",
        "2026-11-21T09:00:00Z",
        json!({"f:spec": {"f:paused": {}}}),
    );
    let old = entry(
        "manager",
        "Update",
        "extensions/v1beta1",
        "2019-01-01T00:00:00Z",
        json!({"f:spec": {"f:rollbackTo": {}}}),
    );
    let migration = migrated(&object(vec![ours, feast_create(), old]));
    assert_eq!(migration.managed_fields.len(), 1);
    let tree = &migration.managed_fields[0]["fieldsV1"];
    assert!(tree.pointer("/f:spec/f:rollbackTo").is_none(), "{tree}");
    assert!(tree.pointer("/f:spec/f:replicas").is_some(), "{tree}");
}

#[test]
fn without_a_predecessor_at_our_version_the_newest_entry_becomes_ours() {
    let older = entry(
        "manager",
        "Update",
        "autoscaling/v1",
        "2026-01-01T00:00:00Z",
        json!({"f:spec": {"f:a": {}}}),
    );
    let newer = entry(
        "kubectl-client-side-apply",
        "Update",
        "autoscaling/v2beta2",
        "2026-02-01T00:00:00Z",
        json!({"f:spec": {"f:b": {}}}),
    );
    let live = object(vec![older, newer]);
    let migration =
        migrate(&live, &predecessors(), "fieldwise", "autoscaling/v2", None).expect("taken over");
    assert_eq!(
        migration.managed_fields.len(),
        1,
        "never left without an entry"
    );
    let ours = &migration.managed_fields[0];
    assert_eq!(ours["apiVersion"], "autoscaling/v2beta2");
    assert_eq!(ours["fieldsV1"], json!({"f:spec": {"f:b": {}}}));
    assert_eq!(migration.managers, ["manager", "kubectl-client-side-apply"]);
}

#[test]
fn subresource_entries_of_predecessors_are_untouched() {
    let status = on_status(entry(
        "manager",
        "Update",
        "apps/v1",
        "2026-11-20T10:00:05Z",
        json!({"f:status": {"f:conditions": {}}}),
    ));
    let migration = migrated(&object(vec![feast_create(), status.clone()]));
    let theirs = find(&migration.managed_fields, "manager", "Update");
    assert_eq!(theirs, [&status]);
    let tree = &find(&migration.managed_fields, "fieldwise", "Apply")[0]["fieldsV1"];
    assert!(tree.get("f:status").is_none());
}

#[test]
fn a_predecessors_apply_entry_is_taken_over_too() {
    let feast_ssa = entry(
        "feast-operator",
        "Apply",
        "policy/v1",
        "2026-11-20T10:00:00Z",
        json!({"f:spec": {"f:maxUnavailable": {}, "f:selector": {}}}),
    );
    let live = object(vec![feast_ssa]);
    let migration =
        migrate(&live, &predecessors(), "fieldwise", "policy/v1", None).expect("taken over");
    assert_eq!(migration.managed_fields.len(), 1);
    assert_eq!(migration.managed_fields[0]["manager"], "fieldwise");
    assert_eq!(migration.managers, ["feast-operator"]);
}

#[test]
fn nothing_to_take_over() {
    let mut entries = controller_manager_entries();
    entries.push(entry(
        "fieldwise",
        "Apply",
        "apps/v1",
        "2026-11-21T09:00:00Z",
        json!({"f:spec": {}}),
    ));
    assert_eq!(
        migrate(
            &object(entries),
            &predecessors(),
            "fieldwise",
            "apps/v1",
            None
        ),
        None
    );
    assert_eq!(
        migrate(
            &object(vec![]),
            &predecessors(),
            "fieldwise",
            "apps/v1",
            None
        ),
        None
    );
    let untracked = json!({"metadata": {"name": "x"}});
    assert_eq!(
        migrate(&untracked, &predecessors(), "fieldwise", "apps/v1", None),
        None
    );
    // Only the configured names: the same entries with no predecessors configured stay.
    let live = object(vec![feast_create()]);
    assert_eq!(migrate(&live, &[], "fieldwise", "apps/v1", None), None);
}

#[test]
fn our_own_updates_are_not_taken_over_unless_named() {
    let our_patch = entry(
        "fieldwise",
        "Update",
        "apps/v1",
        "2026-11-21T09:00:00Z",
        json!({"f:spec": {"f:strategy": {}}}),
    );
    let live = object(vec![our_patch]);
    assert_eq!(
        migrate(&live, &predecessors(), "fieldwise", "apps/v1", None),
        None
    );
}

#[test]
fn the_patch_replaces_the_list_and_pins_the_resource_version() {
    let migration = migrated(&object(vec![feast_create()]));
    let patch = patch(&migration, "42");
    assert_eq!(
        patch,
        json!([
            {"op": "replace", "path": "/metadata/managedFields", "value": migration.managed_fields},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"},
        ])
    );
}

#[test]
fn union_marks_owned_nodes_that_gain_children() {
    let leaf = json!({"f:a": {}, "f:list": {"k:{\"name\":\"x\"}": {".": {}, "f:name": {}}}});
    let deeper = json!({"f:a": {"f:b": {}}, "f:list": {"k:{\"name\":\"x\"}": {"f:value": {}},
        "k:{\"name\":\"y\"}": {}}, "f:set": {"v:\"z\"": {}}});
    let united = union(leaf.as_object().unwrap(), deeper.as_object().unwrap());
    assert_eq!(
        Value::Object(united),
        json!({"f:a": {".": {}, "f:b": {}},
               "f:list": {"k:{\"name\":\"x\"}": {".": {}, "f:name": {}, "f:value": {}}, "k:{\"name\":\"y\"}": {}},
               "f:set": {"v:\"z\"": {}}})
    );
    let empty = Map::new();
    assert_eq!(
        union(&empty, &empty),
        Map::new(),
        "the root is never a member"
    );
}

#[test]
fn untracked_objects_are_told_apart() {
    assert!(is_untracked(&json!({"metadata": {"name": "x"}})));
    assert!(is_untracked(&object(vec![])));
    assert!(!is_untracked(&object(vec![feast_create()])));
}

#[test]
fn before_first_apply_is_taken_over_when_named() {
    let recorded = entry(
        BEFORE_FIRST_APPLY,
        "Update",
        "apps/v1",
        "2026-11-20T10:00:00Z",
        json!({"f:spec": {"f:replicas": {}}}),
    );
    let live = object(vec![recorded]);
    assert_eq!(
        migrate(&live, &predecessors(), "fieldwise", "apps/v1", None),
        None
    );
    let mut names = predecessors();
    names.push(BEFORE_FIRST_APPLY.to_owned());
    let migration = migrate(&live, &names, "fieldwise", "apps/v1", None).expect("taken over");
    assert_eq!(migration.managers, [BEFORE_FIRST_APPLY]);
    assert_eq!(migration.managed_fields[0]["manager"], "fieldwise");
}

#[test]
fn a_subresources_entries_are_taken_over_into_our_entry_for_it() {
    let status = |manager: &str, operation: &str, fields: Value| {
        on_status(entry(
            manager,
            operation,
            "feast.dev/v1",
            "2026-11-20T10:00:00Z",
            fields,
        ))
    };
    let theirs = status(
        "manager",
        "Update",
        json!({"f:status": {"f:serviceHostnames": {"f:ui": {}}}}),
    );
    let ours = status("fieldwise", "Apply", json!({"f:status": {"f:phase": {}}}));
    let user = entry(
        "e2e-user",
        "Apply",
        "feast.dev/v1",
        "2026-11-20T09:00:00Z",
        json!({"f:spec": {}}),
    );
    let live = object(vec![user.clone(), ours, theirs, feast_create()]);
    let migration = migrate(
        &live,
        &predecessors(),
        "fieldwise",
        "feast.dev/v1",
        Some("status"),
    )
    .expect("taken over");
    assert_eq!(migration.managed_fields.len(), 3);
    assert_eq!(migration.managed_fields[0], user);
    let united = &migration.managed_fields[1];
    assert_eq!(united["subresource"], "status");
    assert_eq!(
        united["fieldsV1"],
        json!({"f:status": {"f:phase": {}, "f:serviceHostnames": {"f:ui": {}}}})
    );
    assert_eq!(
        migration.managed_fields[2],
        feast_create(),
        "the main resource's stay"
    );
    let only_status = object(vec![on_status(feast_create())]);
    let created = migrate(
        &only_status,
        &predecessors(),
        "fieldwise",
        "apps/v1",
        Some("status"),
    )
    .expect("taken over");
    assert_eq!(
        created.managed_fields[0]["subresource"], "status",
        "a new entry for it"
    );
}
