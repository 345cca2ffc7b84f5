//! Taking over from a running Feast operator: the objects it made for a FeatureStore, written as it
//! writes them (plain creates under the field manager `manager`, its labels and owner references, the
//! server config as a literal env value, a PodDisruptionBudget applied as `feast-operator`, its
//! cluster-scoped RBAC without an owner, its status), are adopted in place once fieldwise starts: no
//! request of the operator is refused, the Deployment is never recreated and never asks for fewer
//! replicas (a scaled one never has fewer available), nothing is duplicated and no field is left to the
//! Feast operator. Its cluster-scoped leftovers are reported once and outlive the FeatureStore, whose
//! deletion removes everything fieldwise adopted. An object another owner controls is left alone.

use std::collections::{BTreeMap, BTreeSet};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use fieldwise::featurestore::{
    context::ImageDefaults,
    graph::{CONFIG_HASH_ANNOTATION, CONFIG_SECRET_KEY, cron_job_exec_binding_name},
    leftovers,
    render::{Input, OFFLINE_UID, render},
};
use fieldwise_api::v1::FeatureStore;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::ConfigMap,
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, ReplicasHistory, events_until, on_every_target, wait_for};
use crate::samples::{api_for, await_gone, describe};

/// The Feast operator's field managers: its creates and updates, and its server-side applies.
const FEAST_UPDATES: &str = "manager";
const FEAST_APPLIES: &str = "feast-operator";
/// The ClusterRole the Feast operator shares between every FeatureStore it runs.
const SHARED_CLUSTER_ROLE: &str = "feast-token-review-cluster-role";

on_every_target!(
    the_base_sample_is_taken_over_from_the_feast_operator,
    base_sample,
    operator_started_by_scenario
);

on_every_target!(
    a_scaled_sample_is_taken_over_without_losing_availability,
    scaled_sample,
    operator_started_by_scenario
);

async fn base_sample(cluster: Cluster) {
    take_over(cluster, "v1_featurestore.yaml").await;
}

async fn scaled_sample(cluster: Cluster) {
    take_over(cluster, "v1_featurestore_scaling_static.yaml").await;
}

async fn take_over(mut cluster: Cluster, sample: &str) {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let namespace = cluster.namespace.clone();
    let inputs = in_scenario_namespace(&corpus.join("samples").join(sample), &namespace);
    let fs = apply_as_user(&cluster, &inputs).await;
    let (name, uid) = (fs.name_any(), fs.uid().expect("a uid"));
    let rendered = rendered_children(&inputs, &name, &uid);

    // The Feast operator's work, as it leaves it.
    let mut made = BTreeMap::new();
    for (object, write) in feast_operator_objects(&rendered, &name, &namespace) {
        let uid = write_as_feast_operator(&cluster, &object, write).await;
        made.insert(describe(&object), (object, uid));
    }
    write_feast_status(&cluster, &fs).await;
    let deployment = format!("feast-{name}");
    let replicas = desired_replicas(&rendered);
    let rolling = rendered
        .iter()
        .any(|o| o["kind"] == "Deployment" && o["spec"]["strategy"]["type"] == "RollingUpdate");
    wait_available(&cluster, &deployment, replicas).await;
    let history = ReplicasHistory::start(&cluster, &deployment);

    cluster.start_operator();
    wait_ready_by_fieldwise(&cluster, &name).await;

    let refused = cluster.operator_refusals();
    assert!(
        refused.is_empty(),
        "{sample}: requests refused: {refused:?}"
    );
    let rolled_out = crate::harness::deployments(&cluster)
        .get(&deployment)
        .await
        .expect("Deployment");
    let seen = history.until_seen(&rolled_out).await;
    let asked: BTreeSet<Option<i32>> = seen.iter().map(|(spec, _)| *spec).collect();
    assert_eq!(
        asked,
        BTreeSet::from([Some(replicas)]),
        "{sample}: {seen:?}"
    );
    if rolling {
        let fewest = seen.iter().filter_map(|(_, available)| *available).min();
        assert_eq!(
            fewest,
            Some(replicas),
            "{sample}: availability dipped: {seen:?}"
        );
    }
    for (key, (object, uid)) in &made {
        let live = crate::samples::live_object(&cluster, object)
            .await
            .unwrap_or_else(|| panic!("{sample}: {key} is gone"));
        assert_eq!(
            live.uid().as_ref(),
            Some(uid),
            "{sample}: {key} was recreated"
        );
        if object["kind"] == "Role" {
            assert_roles_narrowed(sample, key, &live, &rendered);
        }
        if object["metadata"]["namespace"].is_string() {
            assert_no_predecessor_fields(sample, key, &serde_json::to_value(&live).expect("JSON"));
        }
    }
    let fs = cluster
        .feature_stores(&namespace)
        .get(&name)
        .await
        .expect("fs");
    let fs = serde_json::to_value(&fs).expect("JSON");
    assert_no_predecessor_fields(sample, "its FeatureStore", &fs);
    let hostnames = &fs["status"]["serviceHostnames"];
    assert!(hostnames.get("ui").is_none(), "{sample}: {hostnames}");
    assert_config_from_secret(&cluster, sample, &deployment).await;
    assert_no_duplicates(&cluster, sample, &name, &rendered).await;
    assert_events(&cluster, &name, &uid).await;

    // A restarted operator does not take the FeatureStore on again: the leftovers were said once.
    let reconciles = cluster.reconciles();
    let settings = cluster.settings().clone();
    cluster.restart_operator_with(settings).await;
    cluster.wait_reconciles(reconciles + 1).await;
    let reported = leftover_events(&cluster, &uid).await;
    assert_eq!(reported.len(), 1, "{sample}: {reported:?}");

    delete_and_check(&cluster, sample, &name, &rendered, &made).await;
}

/// The sample's documents, moved into the scenario's namespace (the scaling samples name `test`).
fn in_scenario_namespace(path: &std::path::Path, namespace: &str) -> Vec<Input> {
    let text = std::fs::read_to_string(path).expect("readable sample");
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(
        &text,
        fieldwise::featurestore::render::kubernetes_yaml(),
    )
    .expect("valid YAML");
    let moved: Vec<String> = documents
        .into_iter()
        .filter(Value::is_object)
        .map(|mut document| {
            document["metadata"]["namespace"] = Value::from(namespace);
            document.to_string()
        })
        .collect();
    vec![Input {
        source_name: path.display().to_string(),
        text: moved.join("\n---\n"),
    }]
}

/// Applies the FeatureStore and its Secrets as a user does; returns the FeatureStore.
async fn apply_as_user(cluster: &Cluster, inputs: &[Input]) -> FeatureStore {
    let mut name = None;
    for input in inputs {
        for document in cluster.apply_yaml(&input.text, &cluster.namespace).await {
            if document["kind"] == "FeatureStore" {
                name = document["metadata"]["name"].as_str().map(str::to_owned);
            }
        }
    }
    let name = name.expect("the sample has a FeatureStore");
    let stores = cluster.feature_stores(&cluster.namespace);
    stores.get(&name).await.expect("the FeatureStore")
}

/// The children `fieldwise render` shows for the FeatureStore, with its uid.
fn rendered_children(inputs: &[Input], name: &str, uid: &str) -> Vec<Value> {
    let text = render(inputs, &ImageDefaults::default()).expect("renders");
    let rendered: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML parses");
    rendered
        .iter()
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/instance"] == name)
        .map(|o| serde_json::from_str(&o.to_string().replace(OFFLINE_UID, uid)).expect("JSON"))
        .collect()
}

fn desired_replicas(rendered: &[Value]) -> i32 {
    let deployment = rendered.iter().find(|o| o["kind"] == "Deployment");
    let replicas = deployment.and_then(|d| d["spec"]["replicas"].as_i64());
    replicas.map_or(1, |r| r as i32)
}

/// How the Feast operator writes an object.
#[derive(Clone, Copy)]
enum Write {
    /// `controllerutil.CreateOrUpdate`: a create with no field manager, so the API server names it
    /// after the binary (`manager`; conformance_takeover shows it).
    Create,
    /// Server-side apply as `feast-operator`, forced (HPA, PodDisruptionBudget, ServiceMonitor).
    Apply,
}

/// What the Feast operator made for the FeatureStore (spec/feast-operator.md §2): fieldwise's objects
/// under the same names with its labels and the config as a literal env value; not fieldwise's
/// server-config Secret and per-namespace cluster RBAC, but its own shared ClusterRole and binding.
fn feast_operator_objects(rendered: &[Value], name: &str, namespace: &str) -> Vec<(Value, Write)> {
    let server_config = server_config(rendered, name);
    // fieldwise binds the shipped ClusterRole for the CronJob's exec; the Feast operator has no such binding.
    let exec_binding = cron_job_exec_binding_name(name);
    let mut objects: Vec<(Value, Write)> = rendered
        .iter()
        .filter(|o| o["metadata"]["namespace"].is_string() && o["kind"] != "Secret")
        .filter(|o| !(o["kind"] == "RoleBinding" && o["metadata"]["name"] == exec_binding.as_str()))
        .map(|o| {
            let write = match o["kind"].as_str() {
                Some("PodDisruptionBudget" | "HorizontalPodAutoscaler" | "ServiceMonitor") => {
                    Write::Apply
                }
                _ => Write::Create,
            };
            let mut object = as_feast_operator_writes(o, &server_config);
            feast_role_rules(&mut object, name);
            (object, write)
        })
        .collect();
    objects.extend(
        feast_cluster_rbac(name, namespace)
            .into_iter()
            .map(|o| (o, Write::Create)),
    );
    objects
}

/// The rules the Feast operator gives its Roles (spec §2 "Role and binding contents"): the CronJob's
/// Role also lists pods and execs into them, the token-review Role also holds cluster-wide rules.
fn feast_role_rules(object: &mut Value, name: &str) {
    if object["kind"] != "Role" {
        return;
    }
    let rule = |group: &str, resource: &str, verbs: &[&str]| json!({"apiGroups": [group], "resources": [resource], "verbs": verbs});
    let rbac = "rbac.authorization.k8s.io";
    let role = object["metadata"]["name"].as_str().unwrap_or_default();
    if role == format!("feast-{name}-cronjob") {
        object["rules"] = json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [format!("feast-{name}")],
                "verbs": ["get"]},
            rule("", "pods", &["list"]),
            rule("", "pods/exec", &["create"]),
        ]);
    } else if role == format!("feast-{name}") {
        object["rules"] = json!([
            rule(rbac, "roles", &["get", "list", "watch"]),
            rule(rbac, "rolebindings", &["get", "list", "watch"]),
            rule("authentication.k8s.io", "tokenreviews", &["create"]),
            rule("", "namespaces", &["get", "list", "watch"]),
            rule(rbac, "clusterroles", &["get", "list"]),
            rule(rbac, "clusterrolebindings", &["get", "list"]),
        ]);
    }
}

/// A Role the Feast operator made holds fieldwise's rules once taken over: only what fieldwise grants
/// (the rest comes from the shipped ClusterRoles, or cannot be granted by a Role).
fn assert_roles_narrowed(
    sample: &str,
    key: &str,
    live: &kube::api::DynamicObject,
    rendered: &[Value],
) {
    let name = live.name_any();
    let wanted = rendered
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == name.as_str())
        .map(|o| o["rules"].clone())
        .unwrap_or_default();
    assert_eq!(live.data["rules"], wanted, "{sample}: {key}");
}

/// The base64 server feature_store.yaml, as the Feast operator puts it into the pod spec.
fn server_config(rendered: &[Value], name: &str) -> String {
    let secret_name = format!("feast-{name}-server-config");
    let secret = rendered
        .iter()
        .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == secret_name.as_str())
        .expect("the server config Secret");
    let encoded = secret["data"][CONFIG_SECRET_KEY]
        .as_str()
        .expect("the config");
    String::from_utf8(BASE64.decode(encoded).expect("base64")).expect("UTF-8")
}

/// `object` with the Feast operator's labels (L0/LT: `feast.dev/*` and `managed-by: feast-operator`)
/// and, for the Deployment, the literal config, its pod labels and its bare strategy type.
fn as_feast_operator_writes(object: &Value, server_config: &str) -> Value {
    let mut object = object.clone();
    feast_labels(&mut object["metadata"]);
    if object["kind"] == "Deployment" {
        let strategy = object["spec"]["strategy"]["type"].clone();
        object["spec"]["strategy"] = json!({"type": strategy});
        let template = &mut object["spec"]["template"];
        feast_labels(&mut template["metadata"]);
        if let Some(annotations) = template["metadata"]["annotations"].as_object_mut() {
            annotations.remove(CONFIG_HASH_ANNOTATION);
        }
        for list in ["containers", "initContainers"] {
            for container in template["spec"][list].as_array_mut().into_iter().flatten() {
                literal_config(container, server_config);
            }
        }
    }
    object
}

fn feast_labels(metadata: &mut Value) {
    if let Some(labels) = metadata["labels"].as_object_mut() {
        labels.retain(|key, _| key.starts_with("feast.dev/"));
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            json!("feast-operator"),
        );
    }
}

fn literal_config(container: &mut Value, server_config: &str) {
    for env in container["env"].as_array_mut().into_iter().flatten() {
        if env["name"] == CONFIG_SECRET_KEY {
            *env = json!({"name": CONFIG_SECRET_KEY, "value": server_config});
        }
    }
}

/// The Feast operator's shared token-review ClusterRole and the FeatureStore's binding to it, both
/// without an owner.
fn feast_cluster_rbac(name: &str, namespace: &str) -> [Value; 2] {
    let labels = json!({"feast.dev/name": name, "feast.dev/service-type": "authorization",
        "app.kubernetes.io/managed-by": "feast-operator"});
    let rule = |group: &str, resource: &str, verbs: &[&str]| json!({"apiGroups": [group], "resources": [resource], "verbs": verbs});
    [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": SHARED_CLUSTER_ROLE,
                "labels": {"feast.dev/service-type": "authorization",
                    "app.kubernetes.io/managed-by": "feast-operator"}},
            "rules": [rule("rbac.authorization.k8s.io", "roles", &["get", "list", "watch"]),
                rule("rbac.authorization.k8s.io", "rolebindings", &["list"]),
                rule("authentication.k8s.io", "tokenreviews", &["create"])]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("feast-{name}-cluster-binding"), "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": SHARED_CLUSTER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": format!("feast-{name}"),
                "namespace": namespace}]}),
    ]
}

/// Writes `object` as the Feast operator would and returns its uid. The shared ClusterRole may exist
/// already (another scenario's); a binding of this name left by an interrupted run is replaced.
async fn write_as_feast_operator(cluster: &Cluster, object: &Value, write: Write) -> String {
    let (api, name) = api_for(cluster, object);
    let body: kube::api::DynamicObject = serde_json::from_value(object.clone()).expect("object");
    let written = match write {
        Write::Create => {
            if object["kind"] == "ClusterRoleBinding" {
                let _ = api.delete(&name, &DeleteParams::default()).await;
                crate::harness::wait_gone(&api, &name).await;
            }
            let params = PostParams {
                field_manager: Some(FEAST_UPDATES.to_owned()),
                ..PostParams::default()
            };
            match api.create(&params, &body).await {
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    api.get(&name).await.expect("the shared object")
                }
                created => created.unwrap_or_else(|e| panic!("{}: {e}", describe(object))),
            }
        }
        Write::Apply => api
            .patch(
                &name,
                &PatchParams::apply(FEAST_APPLIES).force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", describe(object))),
    };
    written.uid().expect("a uid")
}

/// The status the Feast operator reports for a ready FeatureStore (`Status().Update` as `manager`).
async fn write_feast_status(cluster: &Cluster, fs: &FeatureStore) {
    let stores = cluster.feature_stores(&cluster.namespace);
    let mut current =
        serde_json::to_value(stores.get(&fs.name_any()).await.expect("fs")).expect("JSON");
    let ready = |type_: &str, message: &str| {
        json!({"type": type_, "status": "True", "reason": "Ready", "message": message,
            "lastTransitionTime": "2026-11-20T10:00:00Z"})
    };
    current["status"] = json!({
        "phase": "Ready",
        "feastVersion": "0.66.0",
        "applied": current["spec"].clone(),
        "clientConfigMap": format!("feast-{}-client", fs.name_any()),
        // What fieldwise does not report (as of a UI since removed): gone once it has taken over.
        "serviceHostnames": {"ui": format!("feast-{}-ui.{}.svc.cluster.local:80",
            fs.name_any(), cluster.namespace)},
        "conditions": [ready("FeatureStore", "FeatureStore installation complete"),
            ready("OnlineStore", "Online Store installation complete"),
            ready("Client", "Client installation complete")],
    });
    let params = PostParams {
        field_manager: Some(FEAST_UPDATES.to_owned()),
        ..PostParams::default()
    };
    let with_status: FeatureStore = serde_json::from_value(current).expect("a FeatureStore");
    stores
        .replace_status(&fs.name_any(), &params, &with_status)
        .await
        .expect("the Feast operator's status");
}

async fn wait_available(cluster: &Cluster, name: &str, replicas: i32) {
    let available = move |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(replicas)
    };
    wait_for(
        &crate::harness::deployments(cluster),
        name,
        available,
        "available",
    )
    .await;
}

/// Ready as fieldwise reports it: after its first reconcile has applied the status (the Feast
/// operator's said Ready too).
async fn wait_ready_by_fieldwise(cluster: &Cluster, name: &str) -> FeatureStore {
    cluster.wait_reconciles(1).await;
    let ready = |fs: Option<&FeatureStore>| {
        fs.is_some_and(|fs| {
            fieldwise_apply::owns_a_status(&fs.metadata)
                && fs.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
        })
    };
    let stores = cluster.feature_stores(&cluster.namespace);
    wait_for(&stores, name, ready, "Ready by fieldwise").await
}

fn assert_no_predecessor_fields(sample: &str, key: &str, live: &Value) {
    let entries = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let left: Vec<&Value> = entries
        .iter()
        .filter(|e| e["manager"] == FEAST_UPDATES || e["manager"] == FEAST_APPLIES)
        .collect();
    assert!(
        left.is_empty(),
        "{sample}: {key} keeps fields of the Feast operator: {left:?}"
    );
    let ours = entries
        .iter()
        .any(|e| e["manager"] == "fieldwise" && e["operation"] == "Apply");
    assert!(ours, "{sample}: {key} is not applied by fieldwise");
}

async fn assert_config_from_secret(cluster: &Cluster, sample: &str, name: &str) {
    let live = crate::harness::deployments(cluster)
        .get(name)
        .await
        .expect("the Deployment");
    let pod = live.spec.and_then(|s| s.template.spec).expect("a pod spec");
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for container in containers {
        for env in container
            .env
            .iter()
            .flatten()
            .filter(|e| e.name == CONFIG_SECRET_KEY)
        {
            assert_eq!(
                env.value, None,
                "{sample}: {} keeps the literal config",
                container.name
            );
            assert!(env.value_from.is_some(), "{sample}: {}", container.name);
        }
    }
}

/// Each kind's objects of the FeatureStore (`feast.dev/name`) are exactly the rendered ones: the
/// Feast operator's were adopted, none made beside them.
async fn assert_no_duplicates(cluster: &Cluster, sample: &str, name: &str, rendered: &[Value]) {
    let mut expected: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for object in rendered
        .iter()
        .filter(|o| o["metadata"]["namespace"].is_string())
    {
        let kind = (object["apiVersion"].to_string(), object["kind"].to_string());
        let names = expected.entry(kind).or_default();
        names.insert(
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let selector = ListParams::default().labels(&format!("feast.dev/name={name}"));
    for object in rendered
        .iter()
        .filter(|o| o["metadata"]["namespace"].is_string())
    {
        let kind = (object["apiVersion"].to_string(), object["kind"].to_string());
        let (api, _) = api_for(cluster, object);
        let listed = api.list(&selector).await.expect("list");
        let names: BTreeSet<String> = listed.items.iter().map(ResourceExt::name_any).collect();
        assert_eq!(names, expected[&kind], "{sample}: {}", kind.1);
    }
}

async fn assert_events(cluster: &Cluster, name: &str, uid: &str) {
    let deployment = format!("Deployment feast-{name}");
    let binding = format!("ClusterRoleBinding feast-{name}-cluster-binding");
    let role = format!("ClusterRole {SHARED_CLUSTER_ROLE}");
    let said = |notes: &[(String, String)], reason: &str, parts: &[&str]| {
        notes
            .iter()
            .any(|(r, note)| r == reason && parts.iter().all(|p| note.contains(p)))
    };
    let notes = events_until(cluster, Some(uid), |notes| {
        said(notes, "ChildTakenOver", &[&deployment, FEAST_UPDATES])
            && said(notes, leftovers::REASON, &[&binding, &role])
    })
    .await;
    assert!(
        said(&notes, "ChildTakenOver", &[&deployment, FEAST_UPDATES]),
        "no takeover Event: {notes:?}"
    );
    assert!(
        said(&notes, leftovers::REASON, &[&binding, &role]),
        "no Event naming the leftovers: {notes:?}"
    );
}

/// The Events about the leftovers, each with the number of times it was reported.
async fn leftover_events(cluster: &Cluster, uid: &str) -> Vec<(String, i32)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let all = events.list(&ListParams::default()).await.expect("events");
    all.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(leftovers::REASON))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid))
        .map(|e| {
            let count = e.series.as_ref().map_or(1, |s| s.count);
            (e.note.unwrap_or_default(), count)
        })
        .collect()
}

/// Deleting the FeatureStore removes every child, adopted ones included; the Feast operator's
/// cluster-scoped objects stay, and are then removed as the README says.
async fn delete_and_check(
    cluster: &Cluster,
    sample: &str,
    name: &str,
    rendered: &[Value],
    made: &BTreeMap<String, (Value, String)>,
) {
    let stores = cluster.feature_stores(&cluster.namespace);
    stores
        .delete(name, &DeleteParams::background())
        .await
        .expect("deleted");
    for child in rendered {
        await_gone(cluster, child)
            .await
            .unwrap_or_else(|| panic!("{sample}: {} outlived its FeatureStore", describe(child)));
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let binding = format!("feast-{name}-cluster-binding");
    let left = bindings.get_opt(&binding).await.expect("readable");
    assert!(
        left.is_some_and(|b| made.values().any(|(_, uid)| b.uid().as_ref() == Some(uid))),
        "{sample}: fieldwise must not delete the Feast operator's binding"
    );
    // The README's removal: the binding, then the shared ClusterRole once nothing refers to it.
    bindings
        .delete(&binding, &DeleteParams::default())
        .await
        .expect("binding deleted");
    let all = bindings
        .list(&ListParams::default())
        .await
        .expect("bindings");
    if !all
        .items
        .iter()
        .any(|b| b.role_ref.name == SHARED_CLUSTER_ROLE)
    {
        let roles: Api<ClusterRole> = Api::all(cluster.client.clone());
        let _ = roles
            .delete(SHARED_CLUSTER_ROLE, &DeleteParams::default())
            .await;
    }
}

on_every_target!(
    an_object_another_owner_controls_is_left_alone_and_reported,
    controlled_by_another
);

/// A child's name taken by an object another owner controls: fieldwise applies nothing to it (a second
/// controller reference would be refused), reports it in the part's condition and a Warning Event
/// naming the object and its controller, and leaves it as it was.
async fn controlled_by_another(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &namespace);
    let other: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "someone-else"}})).expect("a ConfigMap");
    let other = config_maps
        .create(&PostParams::default(), &other)
        .await
        .expect("another owner");
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "feast-taken-client", "ownerReferences": [{"apiVersion": "v1",
            "kind": "ConfigMap", "name": "someone-else", "uid": other.uid(), "controller": true}]},
        "data": {"feature_store.yaml": "theirs"}}))
    .expect("a ConfigMap");
    let theirs = config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("their object");
    let fs = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "taken", "namespace": namespace}, "spec": {"feastProject": "p"}});
    cluster.apply_yaml(&fs.to_string(), &namespace).await;
    let reported = |fs: Option<&FeatureStore>| {
        let conditions = fs.and_then(|fs| fs.status.as_ref()?.conditions.clone());
        conditions.into_iter().flatten().any(|c| {
            c.type_ == "Client"
                && c.status == fieldwise_api::v1::ConditionStatus::False
                && c.message
                    .contains("is controlled by ConfigMap someone-else")
        })
    };
    let stores = cluster.feature_stores(&namespace);
    let fs = wait_for(&stores, "taken", reported, "reporting the Client ConfigMap").await;
    let uid = fs.uid().expect("a uid");
    let warned = |notes: &[(String, String)]| {
        notes.iter().any(|(reason, note)| {
            reason == "ChildControlledByAnother"
                && note.contains("ConfigMap")
                && note.contains("feast-taken-client")
                && note.contains("ConfigMap someone-else")
        })
    };
    let notes = events_until(&cluster, Some(&uid), warned).await;
    assert!(warned(&notes), "no Warning Event naming both: {notes:?}");
    let left = config_maps
        .get("feast-taken-client")
        .await
        .expect("still there");
    assert_eq!(left.uid(), theirs.uid());
    let data = left.data.unwrap_or_default();
    assert_eq!(
        data.get("feature_store.yaml").map(String::as_str),
        Some("theirs")
    );
    let labels = left.metadata.labels.unwrap_or_default();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "{labels:?}"
    );
    let controllers = left.metadata.owner_references.unwrap_or_default();
    assert_eq!(controllers.len(), 1, "{controllers:?}");
}
