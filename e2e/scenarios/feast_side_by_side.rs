//! Side by side with the Feast operator (issue 24): every reference sample is reconciled by the Feast
//! operator itself (built from its Go module by `e2e/feast-operator/build`), each in a namespace of
//! its own, until it settles, its objects are dumped, the Feast operator stops and its FeatureStores
//! go; then fieldwise reconciles the same manifests in other namespaces, and the two dumps are compared
//! object by object and field by field. A difference passes only when [`NORMALISATIONS`] names it,
//! each entry pointing at the README's "Where fieldwise deliberately differs from the Feast
//! operator"; any other fails with the object, the path and both values.
//!
//! Real control plane only, and one of its own: the Feast operator watches every namespace (it has
//! no flag to watch fewer), so the scenario refuses to start while any FeatureStore exists.
//! `e2e/feast-operator/README.md` says how to run it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Command as StdCommand, Stdio},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use fieldwise_api::v1::FeatureStore;
use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    batch::v1::CronJob,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams},
    discovery::ApiResource,
    runtime::{WatchStreamExt, wait::await_condition, watcher},
};
use serde_json::{Value, json};

use crate::feast_cases::chosen_cases;
use crate::harness::{
    Cluster, KUBECONFIG_VARIABLE, NAMESPACE_LABEL, Target, apply_namespace, patience, run_with,
};

/// Names the Feast operator's manager binary; else `e2e/feast-operator/build` builds (or finds) it.
const BINARY_VARIABLE: &str = "E2E_FEAST_OPERATOR";
/// The namespace the Feast operator keeps its cross-namespace registry ConfigMap in (not compared:
/// fieldwise does not make it, see the README's "Not supported").
pub(crate) const FEAST_SYSTEM_NAMESPACE: &str = "feast-operator-system";

/// One deliberate difference: every difference on an object whose `Kind name` matches `object` at a
/// path (a JSON pointer) that `path` matches, or below it, is this one (`|` separates alternatives in
/// both).
/// `*` matches any characters.
/// `path` "" covers an object that only one side has.
struct Normalisation {
    object: &'static str,
    path: &'static str,
    what: &'static str,
    /// Which differences at a matched path it covers.
    when: When,
    /// The README's deliberate difference (section "Where fieldwise deliberately differs from the
    /// Feast operator") that explains it.
    why: &'static str,
}

/// Which differences at a matched path a [`Normalisation`] covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// Any.
    Always,
    /// Only where both sides have the value at the matched path (the same thing made differently),
    /// not where one side lacks it.
    BothSides,
    /// Only where both values are strings and fieldwise's goes on from the Feast operator's (the same
    /// message with more said).
    FieldwiseSaysMore,
    /// Only where fieldwise made nothing for the FeatureStore (its dump holds the FeatureStore alone):
    /// its configuration could not be built.
    FieldwiseMadeNothing,
}

/// The deliberate differences. Anything the two operators make differently and no entry names fails.
const NORMALISATIONS: &[Normalisation] = &[
    Normalisation {
        object: "*",
        path: "*/labels/app.kubernetes.io~1managed-by",
        what: "managed-by is fieldwise, not feast-operator",
        when: When::BothSides,
        why: "Labels",
    },
    Normalisation {
        object: "*",
        path: "*/labels/app.kubernetes.io~1instance",
        what: "fieldwise's own labels",
        when: When::Always,
        why: "Labels",
    },
    Normalisation {
        object: "*",
        path: "*/labels/app.kubernetes.io~1name",
        what: "fieldwise's own labels",
        when: When::Always,
        why: "Labels",
    },
    Normalisation {
        object: "*",
        path: "*/labels/app.kubernetes.io~1component",
        what: "fieldwise's own labels",
        when: When::Always,
        why: "Labels",
    },
    Normalisation {
        object: "*",
        path: "*/labels/fieldwise.dev~1owner-uid",
        what: "fieldwise's own labels",
        when: When::Always,
        why: "Labels",
    },
    Normalisation {
        object: "*",
        path: "*/containers/*/securityContext",
        what: "restricted container security context",
        when: When::Always,
        why: "Restricted pods",
    },
    Normalisation {
        object: "*",
        path: "*/initContainers/*/securityContext",
        what: "restricted container security context",
        when: When::Always,
        why: "Restricted pods",
    },
    Normalisation {
        object: "Deployment *",
        path: "/spec/template/spec/securityContext",
        what: "restricted pod security context",
        when: When::Always,
        why: "Restricted pods",
    },
    Normalisation {
        object: "Deployment *",
        path: "*ontainers/*/env/TMP_FEATURE_STORE_YAML_BASE64",
        what: "the server config comes from a Secret (valueFrom) instead of a literal value, in the \
               containers and init containers that both give it; the decoded configs are compared \
               as the objects `ServerConfig <container>`",
        when: When::BothSides,
        why: "Credentials stay out of pod specs",
    },
    Normalisation {
        object: "Deployment *",
        path: "/spec/template/metadata/annotations/fieldwise.dev~1config-hash",
        what: "digest of the server config that rolls the pods",
        when: When::Always,
        why: "Credentials stay out of pod specs",
    },
    Normalisation {
        object: "Secret feast-*-server-config",
        path: "",
        what: "the Secret holding the server config",
        when: When::Always,
        why: "Credentials stay out of pod specs",
    },
    Normalisation {
        object: "ClusterRole feast-token-review-cluster-role",
        path: "",
        what: "the Feast operator's shared ClusterRole; fieldwise's install ships its own",
        when: When::Always,
        why: "Shipped ClusterRoles, bound per FeatureStore",
    },
    Normalisation {
        object: "ClusterRoleBinding feast-*-cluster-binding",
        path: "",
        what: "the Feast operator's token-review binding, leaked on deletion",
        when: When::Always,
        why: "No leaked cluster-scoped objects",
    },
    Normalisation {
        object: "ClusterRole feast-oidc-token-review",
        path: "",
        what: "the Feast operator's OIDC token-review ClusterRole; fieldwise's install ships its own",
        when: When::Always,
        why: "Shipped ClusterRoles, bound per FeatureStore",
    },
    Normalisation {
        object: "ClusterRoleBinding feast-*-oidc-token-review",
        path: "",
        what: "the Feast operator's OIDC token-review binding, leaked on deletion",
        when: When::Always,
        why: "No leaked cluster-scoped objects",
    },
    Normalisation {
        object: "ClusterRoleBinding feast.<namespace>.*.oidc-token-review",
        path: "",
        what: "fieldwise's per-FeatureStore OIDC token-review binding",
        when: When::Always,
        why: "No leaked cluster-scoped objects",
    },
    Normalisation {
        object: "Role *",
        path: "/metadata/labels/fieldwise.dev~1shared",
        what: "a custom Role (authz.kubernetes.roles) is shared by the FeatureStores that list it",
        when: When::Always,
        why: "Custom Roles are shared, not fought over",
    },
    // The custom Roles of the kubernetes_auth sample: one non-controller owner reference each, and no
    // feast.dev/name label.
    Normalisation {
        object: "Role feast-writer|Role feast-reader",
        path: "/metadata/ownerReferences",
        what: "a custom Role's owner reference is not the controller",
        when: When::Always,
        why: "Custom Roles are shared, not fought over",
    },
    Normalisation {
        object: "Role feast-writer|Role feast-reader",
        path: "/metadata/labels/feast.dev~1name",
        what: "a custom Role carries no feast.dev/name",
        when: When::Always,
        why: "Custom Roles are shared, not fought over",
    },
    Normalisation {
        object: "* feast-*-lineage",
        path: "",
        what: "the OpenLineage lineage server's Deployment and Service",
        when: When::Always,
        why: "Not supported (accepted, but no objects created): the OpenLineage lineage server",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/Lineage",
        what: "the lineage server's condition",
        when: When::Always,
        why: "Not supported (accepted, but no objects created): the OpenLineage lineage server",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/serviceHostnames/lineage",
        what: "the lineage server's hostname",
        when: When::Always,
        why: "Not supported (accepted, but no objects created): the OpenLineage lineage server",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/Unsupported",
        what: "fieldwise names the fields whose objects it does not make",
        when: When::Always,
        why: "Not supported (accepted, but no objects created)",
    },
    Normalisation {
        object: "ServerConfig *",
        path: "/openlineage/transport_*",
        what: "the lineage server forces the http transport to itself",
        when: When::Always,
        why: "Not supported (accepted, but no objects created): the OpenLineage lineage server",
    },
    Normalisation {
        object: "ServerConfig *",
        path: "/openlineage/consumer/standalone_server",
        what: "the lineage server forces standalone_server",
        when: When::Always,
        why: "Not supported (accepted, but no objects created): the OpenLineage lineage server",
    },
    Normalisation {
        object: "ClusterRoleBinding feast.<namespace>.*.token-review",
        path: "",
        what: "fieldwise's per-FeatureStore token-review binding",
        when: When::Always,
        why: "No leaked cluster-scoped objects",
    },
    Normalisation {
        object: "RoleBinding feast-*-cronjob-exec",
        path: "",
        what: "the CronJob's pods/exec through the shipped ClusterRole",
        when: When::Always,
        why: "Shipped ClusterRoles, bound per FeatureStore",
    },
    Normalisation {
        object: "Role feast-*-cronjob",
        path: "/rules",
        what: "the CronJob Role keeps only get on its Deployment",
        when: When::Always,
        why: "Shipped ClusterRoles, bound per FeatureStore",
    },
    Normalisation {
        object: "Role feast-*",
        path: "/rules",
        what: "the token-review Role keeps only what a Role can grant",
        when: When::Always,
        why: "Shipped ClusterRoles, bound per FeatureStore",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/*/observedGeneration",
        what: "each condition names the generation it was observed at",
        when: When::Always,
        why: "Conditions carry `observedGeneration`",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/*/message",
        what: "the missing-key message goes on to say what chose the key and which keys there are",
        when: When::FieldwiseSaysMore,
        why: "A Secret without the key a store reads",
    },
    Normalisation {
        object: "*",
        path: "",
        what: "what the Feast operator made before it met the error",
        when: When::FieldwiseMadeNothing,
        why: "A FeatureStore whose configuration cannot be built gets no children",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/Authorization|/status/conditions/Client|/status/conditions/CronJob|\
               /status/conditions/OfflineStore|/status/conditions/OnlineStore|\
               /status/conditions/Registry|/status/conditions/UI|/status/serviceHostnames",
        what: "the parts' conditions and hostnames describe what was made: nothing, but the failing \
               part's condition",
        when: When::FieldwiseMadeNothing,
        why: "A FeatureStore whose configuration cannot be built gets no children",
    },
    Normalisation {
        object: "FeatureStore *",
        path: "/status/conditions/Ready",
        what: "the Ready condition beside FeatureStore",
        when: When::Always,
        why: "A `Ready` condition",
    },
];

/// What differs between any two runs, whoever reconciles, and so is left out before comparing (not
/// differences between the operators): server-assigned metadata, the namespace and the FeatureStore's
/// uid (both written as placeholders), the status of every object but the FeatureStore, a Service's
/// cluster IPs, the volume a claim was bound to, and the annotations the control plane's own
/// controllers add.
const RUN_SPECIFIC_METADATA: [&str; 6] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "namespace",
];

#[test]
#[ignore = "needs a real cluster of its own and the Feast operator: see e2e/feast-operator/README.md"]
fn the_feast_operator_and_fieldwise_make_the_same_objects() {
    run_with(Target::RealCluster, false, side_by_side);
}

/// One difference: `object` (`Kind name`) at `path` (a JSON pointer; "" for a whole object one side
/// lacks), with the Feast operator's and fieldwise's values.
struct Difference {
    sample: String,
    object: String,
    path: String,
    feast: Option<Value>,
    fieldwise: Option<Value>,
    /// The table entry that explains it, if any.
    normalisation: Option<&'static Normalisation>,
}

async fn side_by_side(mut cluster: Cluster) {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let cases = chosen_cases(&corpus);
    refuse_other_feature_stores(&cluster).await;
    cluster.namespace(FEAST_SYSTEM_NAMESPACE).await;
    // A namespace per case and side: two samples share a FeatureStore name (sample-db-ssl) and
    // several share Secret names.
    let namespace_of = |side: char, index: usize| format!("{}-{side}{index}", cluster.namespace);

    // The Feast operator alone.
    let feast = FeastOperator::start("side-by-side");
    let mut feast_dumps = BTreeMap::new();
    let mut feast_namespaces = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let namespace = namespace_of('f', index);
        create_namespace(&cluster.client, &namespace).await;
        feast_namespaces.push(namespace.clone());
        for fs in apply_sample(&cluster, &case.text(&namespace), &namespace).await {
            let dump = dump_when_settled(&cluster, &namespace, &fs).await;
            feast_dumps.insert((case.label.clone(), fs), dump);
        }
    }
    feast.stop().await;
    remove_feast_run(&cluster, &feast_namespaces).await;

    // fieldwise alone, on the same manifests.
    let fieldwise_namespaces: Vec<String> = (0..cases.len())
        .map(|index| namespace_of('w', index))
        .collect();
    let watched: Vec<&str> = fieldwise_namespaces.iter().map(String::as_str).collect();
    cluster.start_operator_watching(&watched);
    let mut differences = Vec::new();
    for (case, namespace) in cases.iter().zip(&fieldwise_namespaces) {
        create_namespace(&cluster.client, namespace).await;
        for fs in apply_sample(&cluster, &case.text(namespace), namespace).await {
            let fieldwise = dump_when_settled(&cluster, namespace, &fs).await;
            let feast = feast_dumps
                .remove(&(case.label.clone(), fs.clone()))
                .unwrap_or_default();
            differences.extend(compare(&case.label, &feast, &fieldwise));
        }
    }
    remove_fieldwise_run(&cluster, &fieldwise_namespaces).await;
    let labels: Vec<String> = cases.into_iter().map(|case| case.label).collect();
    judge(&labels, differences);
}

/// Applies a sample as the user; the names of its FeatureStores.
pub(crate) async fn apply_sample(cluster: &Cluster, text: &str, namespace: &str) -> Vec<String> {
    let applied = cluster.apply_yaml(text, namespace).await;
    applied
        .iter()
        .filter(|document| document["kind"] == "FeatureStore")
        .filter_map(|document| document["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// A namespace of this scenario, labelled so that a later run finds and removes it.
pub(crate) async fn create_namespace(client: &Client, name: &str) {
    apply_namespace(client, name, &[(NAMESPACE_LABEL, "true")]).await;
}

/// The Feast operator reconciles the FeatureStores of every namespace: any other would be fought over
/// (and the comparison spoilt), so the scenario needs a cluster without FeatureStores.
pub(crate) async fn refuse_other_feature_stores(cluster: &Cluster) {
    let all: Api<FeatureStore> = Api::all(cluster.client.clone());
    let list = all.list(&ListParams::default()).await.expect("listable");
    let others: Vec<String> = list
        .items
        .iter()
        .map(|fs| format!("{}/{}", fs.namespace().unwrap_or_default(), fs.name_any()))
        .collect();
    assert!(
        others.is_empty(),
        "the Feast operator would reconcile these FeatureStores too; run this scenario on a control \
         plane of its own: {others:?}"
    );
}

/// The Feast operator's manager, run outside the cluster against `E2E_KUBECONFIG` (controller-runtime
/// reads `--kubeconfig`), without leader election, metrics or probe listeners, with the default images
/// (no `RELATED_IMAGE_*`, as fieldwise here). Its log goes to a file named on start.
pub(crate) struct FeastOperator {
    child: tokio::process::Child,
}

impl FeastOperator {
    /// Starts it; `scenario` names its log file `feast-operator-<scenario>-<pid>.log`.
    pub(crate) fn start(scenario: &str) -> Self {
        let binary = feast_operator_binary();
        let kubeconfig = std::env::var_os(KUBECONFIG_VARIABLE).expect("E2E_KUBECONFIG");
        let log_path = std::env::temp_dir().join(format!(
            "feast-operator-{scenario}-{}.log",
            std::process::id()
        ));
        let log = std::fs::File::create(&log_path).expect("log file");
        eprintln!(
            "{scenario}: the Feast operator logs to {}",
            log_path.display()
        );
        let child = tokio::process::Command::new(&binary)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--leader-elect=false",
                "--metrics-bind-address=0",
                "--health-probe-bind-address=0",
                "--zap-devel=false",
            ])
            .env_remove("KUBECONFIG")
            .env_remove("RELATED_IMAGE_FEATURE_SERVER")
            .env_remove("RELATED_IMAGE_CRON_JOB")
            .env_remove("OIDC_ISSUER_URL")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        Self { child }
    }

    pub(crate) async fn stop(mut self) {
        self.child.kill().await.expect("the Feast operator stops");
    }
}

/// `E2E_FEAST_OPERATOR`, else what `e2e/feast-operator/build` prints (it builds only when the pinned
/// version is not in its cache).
pub(crate) fn feast_operator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BINARY_VARIABLE) {
        return PathBuf::from(path);
    }
    let output = StdCommand::new("e2e/feast-operator/build")
        .stderr(Stdio::inherit())
        .output()
        .expect("e2e/feast-operator/build runs");
    assert!(
        output.status.success(),
        "e2e/feast-operator/build failed (see above); or set {BINARY_VARIABLE}"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Deletes the Feast operator's FeatureStores (it has stopped; it sets no finalizer, so the garbage
/// collector removes their children), the ClusterRoleBindings it leaks, and the namespaces.
async fn remove_feast_run(cluster: &Cluster, namespaces: &[String]) {
    for namespace in namespaces {
        let stores: Api<FeatureStore> = Api::namespaced(cluster.client.clone(), namespace);
        stores
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
            .expect("FeatureStores deleted");
    }
    delete_leaked_bindings(cluster, namespaces).await;
    delete_namespaces(cluster, namespaces).await;
}

/// Deletes the ClusterRoleBindings the Feast operator made for FeatureStores of `namespaces` (they
/// have no owner, so nothing else removes them).
pub(crate) async fn delete_leaked_bindings(cluster: &Cluster, namespaces: &[String]) {
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let leaked = bindings
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=feast-operator"))
        .await
        .expect("listable");
    for binding in leaked.items {
        let ours = binding.subjects.iter().flatten().any(|subject| {
            subject
                .namespace
                .as_ref()
                .is_some_and(|namespace| namespaces.contains(namespace))
        });
        if ours {
            let _ = bindings
                .delete(&binding.name_any(), &DeleteParams::background())
                .await;
        }
    }
}

/// Deletes fieldwise's FeatureStores while it runs (its finalizer removes their ClusterRoleBindings),
/// waits until they are gone, then deletes the namespaces.
pub(crate) async fn remove_fieldwise_run(cluster: &Cluster, namespaces: &[String]) {
    for namespace in namespaces {
        let stores: Api<FeatureStore> = Api::namespaced(cluster.client.clone(), namespace);
        let _ = stores
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
        let gone = async {
            while !stores
                .list(&ListParams::default())
                .await
                .is_ok_and(|list| list.items.is_empty())
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        if tokio::time::timeout(patience(), gone).await.is_err() {
            eprintln!("feast_side_by_side: FeatureStores of {namespace} still exist");
        }
    }
    delete_namespaces(cluster, namespaces).await;
}

async fn delete_namespaces(cluster: &Cluster, namespaces: &[String]) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    for namespace in namespaces {
        let _ = api.delete(namespace, &DeleteParams::background()).await;
    }
}

/// How long a Failed FeatureStore may still take to become Ready before Failed is taken as where it
/// settles (a first reconcile can fail on what a later one finds, a referenced registry say).
const FAILED_GRACE: Duration = Duration::from_secs(20);

/// How long a settled FeatureStore must go unchanged before its objects are dumped: an operator can
/// still be writing after the phase turned (the ready replicas in the status, say).
const QUIET: Duration = Duration::from_secs(3);

/// Waits, through a watch, until the FeatureStore has not changed for [`QUIET`] (at most the
/// scenario's patience).
async fn until_quiet(api: &Api<FeatureStore>, name: &str) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let changes = watcher(api.clone(), config).applied_objects();
    let quiet = async {
        let mut changes = std::pin::pin!(changes);
        while let Ok(Some(_)) = tokio::time::timeout(QUIET, changes.next()).await {}
    };
    let _ = tokio::time::timeout(patience(), quiet).await;
}

fn phase(fs: Option<&FeatureStore>) -> Option<&str> {
    fs?.status.as_ref()?.phase.as_deref()
}

/// Waits until the FeatureStore is Ready (or Failed, and still Failed after [`FAILED_GRACE`]; or
/// whatever it is after the scenario's patience), then dumps every object made for it, normalised.
async fn dump_when_settled(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, Value> {
    let api = cluster.feature_stores(namespace);
    let settled = |fs: Option<&FeatureStore>| matches!(phase(fs), Some("Ready" | "Failed"));
    let waited =
        tokio::time::timeout(patience(), await_condition(api.clone(), name, settled)).await;
    let mut fs = match waited {
        Ok(Ok(Some(fs))) => fs,
        // Still Pending: compared as it is (the status says why).
        Err(_) => {
            eprintln!(
                "feast_side_by_side: {namespace}/{name} neither Ready nor Failed after {:?}",
                patience()
            );
            api.get(name).await.expect("readable")
        }
        Ok(other) => panic!("{namespace}/{name}: {other:?}"),
    };
    if phase(Some(&fs)) == Some("Failed") {
        let ready = |fs: Option<&FeatureStore>| phase(fs) == Some("Ready");
        let waited = tokio::time::timeout(FAILED_GRACE, await_condition(api.clone(), name, ready));
        if let Ok(Ok(Some(ready))) = waited.await {
            fs = ready;
        }
    }
    until_quiet(&api, name).await;
    let settled = api.get(name).await.expect("readable");
    eprintln!(
        "feast_side_by_side: {namespace}/{name} settled {}",
        phase(Some(&settled)).unwrap_or("without a phase")
    );
    let uid = fs.uid().expect("a uid");
    let mut raw = BTreeMap::new();
    for resource in namespaced_kinds() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), namespace, &resource);
        for object in api
            .list(&ListParams::default())
            .await
            .expect("listable")
            .items
        {
            let object = with_type(serde_json::to_value(&object).expect("JSON"), &resource);
            if made_for(&object, name, &uid) {
                raw.insert(key(&object), object);
            }
        }
    }
    let bindings = cluster_bindings(cluster, namespace, name).await;
    for binding in bindings {
        let role = binding.role_ref.name.clone();
        let binding = with_type(
            serde_json::to_value(&binding).expect("JSON"),
            &ApiResource::erase::<ClusterRoleBinding>(&()),
        );
        raw.insert(key(&binding), binding);
        let roles: Api<ClusterRole> = Api::all(cluster.client.clone());
        if let Some(role) = roles.get_opt(&role).await.expect("readable") {
            let role = with_type(
                serde_json::to_value(&role).expect("JSON"),
                &ApiResource::erase::<ClusterRole>(&()),
            );
            raw.insert(key(&role), role);
        }
    }
    let mut dump: BTreeMap<String, Value> = raw
        .values()
        .map(|object| normalised(object, namespace, &uid))
        .map(|object| (key(&object), object))
        .collect();
    for (container, config) in server_configs(&raw, name) {
        let config = replace_run_values(config, namespace, &uid);
        dump.insert(format!("ServerConfig {container}"), config);
    }
    // Read untyped: fieldwise's FeatureStore type would drop a status field it does not know.
    let stores: Api<DynamicObject> = Api::namespaced_with(
        cluster.client.clone(),
        namespace,
        &ApiResource::erase::<FeatureStore>(&()),
    );
    let live = stores.get(name).await.expect("readable");
    let status = live.data.get("status").cloned().unwrap_or_default();
    let status = replace_run_values(json!({"status": status}), namespace, &uid);
    dump.insert(
        format!("FeatureStore {name}"),
        without_condition_times(status),
    );
    dump
}

fn namespaced_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<PersistentVolumeClaim>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<CronJob>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<HorizontalPodAutoscaler>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
    ]
}

/// A list's items lack apiVersion and kind; the key and the comparison want them.
fn with_type(mut object: Value, resource: &ApiResource) -> Value {
    object["apiVersion"] = Value::from(resource.api_version.clone());
    object["kind"] = Value::from(resource.kind.clone());
    object
}

fn key(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Owned by the FeatureStore, or labelled with its name (objects made without an owner).
fn made_for(object: &Value, name: &str, uid: &str) -> bool {
    let owned = object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|owner| owner["uid"] == uid));
    owned || object["metadata"]["labels"]["feast.dev/name"] == name
}

/// The ClusterRoleBindings that bind the FeatureStore's ServiceAccount `feast-<name>`.
async fn cluster_bindings(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Vec<ClusterRoleBinding> {
    let service_account = format!("feast-{name}");
    let api: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let list = api.list(&ListParams::default()).await.expect("listable");
    list.items
        .into_iter()
        .filter(|binding| {
            binding.subjects.iter().flatten().any(|subject| {
                subject.kind == "ServiceAccount"
                    && subject.name == service_account
                    && subject.namespace.as_deref() == Some(namespace)
            })
        })
        .collect()
}

/// The object without what differs between any two runs ([`RUN_SPECIFIC_METADATA`]), with the
/// namespace and the FeatureStore's uid as placeholders, and each ConfigMap's feature_store.yaml parsed
/// (compared as data, not as text: the Feast operator writes it with Go's yaml.v3).
fn normalised(object: &Value, namespace: &str, uid: &str) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in RUN_SPECIFIC_METADATA {
            metadata.remove(field);
        }
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.retain(|key, _| !added_by_control_plane(key));
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
    }
    if let Some(object) = object.as_object_mut() {
        object.remove("status");
    }
    let kind = object_kind(&object).to_owned();
    if let Some(spec) = object["spec"].as_object_mut() {
        match kind.as_str() {
            "Service" => {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            // Which free volume the binder picked.
            "PersistentVolumeClaim" => {
                spec.remove("volumeName");
            }
            _ => {}
        }
    }
    if let Some(data) = object
        .get_mut("data")
        .and_then(|data| data.get_mut("feature_store.yaml"))
        && let Some(parsed) = data.as_str().and_then(parse_yaml)
    {
        *data = parsed;
    }
    replace_run_values(object, namespace, uid)
}

fn object_kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// Annotations the Deployment and PVC controllers write, whoever made the object.
fn added_by_control_plane(key: &str) -> bool {
    key == "deployment.kubernetes.io/revision"
        || key.starts_with("pv.kubernetes.io/")
        || key.starts_with("volume.kubernetes.io/")
        || key.starts_with("volume.beta.kubernetes.io/")
}

fn replace_run_values(value: Value, namespace: &str, uid: &str) -> Value {
    let text = value
        .to_string()
        .replace(namespace, "<namespace>")
        .replace(uid, "<uid>");
    serde_json::from_str(&text).expect("still JSON")
}

fn parse_yaml(text: &str) -> Option<Value> {
    serde_saphyr::from_str::<Value>(text).ok()
}

/// The status without condition timestamps (they differ between any two runs).
fn without_condition_times(mut value: Value) -> Value {
    if let Some(conditions) = value["status"]["conditions"].as_array_mut() {
        for condition in conditions {
            if let Some(condition) = condition.as_object_mut() {
                condition.remove("lastTransitionTime");
            }
        }
    }
    value
}

/// The server feature_store.yaml each main container of `feast-<name>` gets, decoded and parsed: from
/// the literal `TMP_FEATURE_STORE_YAML_BASE64` (the Feast operator) or from the Secret it refers to
/// (fieldwise).
fn server_configs(raw: &BTreeMap<String, Value>, name: &str) -> Vec<(String, Value)> {
    let Some(deployment) = raw.get(&format!("Deployment feast-{name}")) else {
        return Vec::new();
    };
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    containers
        .iter()
        .filter_map(|container| {
            let env = container["env"].as_array()?;
            let variable = env
                .iter()
                .find(|variable| variable["name"] == "TMP_FEATURE_STORE_YAML_BASE64")?;
            let encoded = match variable["value"].as_str() {
                Some(value) => value.to_owned(),
                None => secret_value(raw, &variable["valueFrom"]["secretKeyRef"])?,
            };
            let decoded = BASE64.decode(encoded.trim()).ok()?;
            let config = parse_yaml(&String::from_utf8_lossy(&decoded))?;
            Some((container["name"].as_str()?.to_owned(), config))
        })
        .collect()
}

fn secret_value(raw: &BTreeMap<String, Value>, reference: &Value) -> Option<String> {
    let secret = raw.get(&format!("Secret {}", reference["name"].as_str()?))?;
    let data = secret["data"][reference["key"].as_str()?].as_str()?;
    String::from_utf8(BASE64.decode(data).ok()?).ok()
}

fn compare(
    sample: &str,
    feast: &BTreeMap<String, Value>,
    fieldwise: &BTreeMap<String, Value>,
) -> Vec<Difference> {
    let objects: BTreeSet<&String> = feast.keys().chain(fieldwise.keys()).collect();
    let made_nothing = fieldwise
        .keys()
        .all(|object| object.starts_with("FeatureStore "));
    let mut differences = Vec::new();
    for object in objects {
        let (feast, fieldwise) = (feast.get(object), fieldwise.get(object));
        let mut found = Vec::new();
        match (feast, fieldwise) {
            (Some(_), Some(_)) => diff(feast, fieldwise, "", &mut found),
            _ => found.push((String::new(), feast.cloned(), fieldwise.cloned())),
        }
        for (path, feast_value, fieldwise_value) in found {
            let normalisation = NORMALISATIONS
                .iter()
                .find(|entry| entry.covers(object, &path, (feast, fieldwise), made_nothing));
            differences.push(Difference {
                sample: sample.to_owned(),
                object: object.clone(),
                path,
                feast: feast_value,
                fieldwise: fieldwise_value,
                normalisation,
            });
        }
    }
    differences
}

/// A difference found: the path and the two values (`None`: absent on that side).
type Found = (String, Option<Value>, Option<Value>);

/// Every path where the two values differ, down to the leaves, also where one side lacks a whole map
/// or list (each of the other side's leaves is then a difference). Lists whose items all have a
/// distinct `name` (containers, env, ports, volumes) or `type` (conditions) are compared item by item
/// under that key; the order of the items both sides have is compared too for `name` lists (path
/// `<list>/(order)`: init containers run and env variables resolve in order), not for conditions, a
/// map by type. Other lists are compared index by index.
fn diff(feast: Option<&Value>, fieldwise: Option<&Value>, path: &str, out: &mut Vec<Found>) {
    if feast == fieldwise {
        return;
    }
    let same_shape = match (feast, fieldwise) {
        (Some(Value::Object(_)), Some(Value::Object(_))) => true,
        (Some(Value::Array(_)), Some(Value::Array(_))) => true,
        (Some(_), Some(_)) => false,
        _ => true,
    };
    let (feast_children, fieldwise_children) = (feast.map(children), fieldwise.map(children));
    let non_empty = |children: &Option<Option<Vec<(String, &Value)>>>| {
        children
            .as_ref()
            .is_some_and(|c| c.as_ref().is_some_and(|c| !c.is_empty()))
    };
    let descend = match (&feast_children, &fieldwise_children) {
        (Some(Some(_)), Some(Some(_))) => same_shape,
        (Some(Some(_)), None) | (None, Some(Some(_))) => true,
        _ => false,
    } && (non_empty(&feast_children) || non_empty(&fieldwise_children));
    if descend {
        let feast_children = feast_children.flatten().unwrap_or_default();
        let fieldwise_children = fieldwise_children.flatten().unwrap_or_default();
        compare_order(&feast_children, &fieldwise_children, feast, path, out);
        let feast_map: BTreeMap<&str, &Value> = feast_children
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let fieldwise_map: BTreeMap<&str, &Value> = fieldwise_children
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let keys: BTreeSet<&str> = feast_map
            .keys()
            .chain(fieldwise_map.keys())
            .copied()
            .collect();
        for key in keys {
            let child = format!("{path}/{key}");
            diff(
                feast_map.get(key).copied(),
                fieldwise_map.get(key).copied(),
                &child,
                out,
            );
        }
    } else if let (Some(Value::Array(feast_items)), Some(Value::Array(fieldwise_items))) =
        (feast, fieldwise)
    {
        for index in 0..feast_items.len().max(fieldwise_items.len()) {
            let child = format!("{path}/{index}");
            diff(
                feast_items.get(index),
                fieldwise_items.get(index),
                &child,
                out,
            );
        }
    } else {
        out.push((path.to_owned(), feast.cloned(), fieldwise.cloned()));
    }
}

/// For lists keyed by `name`: the order of the items both sides have.
fn compare_order(
    feast: &[(String, &Value)],
    fieldwise: &[(String, &Value)],
    feast_value: Option<&Value>,
    path: &str,
    out: &mut Vec<Found>,
) {
    let by_name = feast_value
        .and_then(Value::as_array)
        .and_then(|items| items.first())
        .is_some_and(|item| item["name"].is_string());
    if !by_name || fieldwise.is_empty() {
        return;
    }
    let names = |items: &[(String, &Value)], other: &[(String, &Value)]| -> Vec<String> {
        let other: BTreeSet<&String> = other.iter().map(|(k, _)| k).collect();
        items
            .iter()
            .map(|(k, _)| k)
            .filter(|k| other.contains(k))
            .cloned()
            .collect()
    };
    let (feast_order, fieldwise_order) = (names(feast, fieldwise), names(fieldwise, feast));
    if feast_order != fieldwise_order {
        out.push((
            format!("{path}/(order)"),
            Some(Value::from(feast_order)),
            Some(Value::from(fieldwise_order)),
        ));
    }
}

/// The children to compare one by one: a map's entries, or a keyed list's items (see [`keyed`]; an
/// empty list counts as keyed), under their JSON-pointer-escaped keys.
fn children(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Array(items) if items.is_empty() => Some(Vec::new()),
        Value::Object(map) => Some(
            map.iter()
                .map(|(key, value)| (escaped(key), value))
                .collect(),
        ),
        Value::Array(items) => keyed(items).map(|keyed| {
            keyed
                .into_iter()
                .map(|(key, item)| (escaped(&key), item))
                .collect()
        }),
        _ => None,
    }
}

fn escaped(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The value at `path` (as [`diff`] writes paths: keyed list items under their key).
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for segment in path.split('/').skip(1) {
        if segment == "(order)" {
            continue;
        }
        let key = segment.replace("~1", "/").replace("~0", "~");
        at = match at {
            Value::Object(map) => map.get(&key)?,
            Value::Array(items) => match keyed(items) {
                Some(keyed) => keyed.into_iter().find(|(k, _)| *k == key)?.1,
                None => items.get(key.parse::<usize>().ok()?)?,
            },
            _ => return None,
        };
    }
    Some(at)
}

/// [`lookup`] on one side's object, if it has one.
fn at<'a>(side: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    side.and_then(|value| lookup(value, path))
}

/// The items under their `name` (or, for conditions, `type`), when every item has a distinct one.
fn keyed(items: &[Value]) -> Option<Vec<(String, &Value)>> {
    let field = ["name", "type"]
        .into_iter()
        .find(|field| items.iter().all(|item| item[*field].is_string()))?;
    let keyed: Vec<(String, &Value)> = items
        .iter()
        .map(|item| (item[field].as_str().unwrap_or_default().to_owned(), item))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = keyed.iter().map(|(k, _)| k).collect();
    (!items.is_empty() && distinct.len() == keyed.len()).then_some(keyed)
}

/// `*` in `pattern` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(text) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=text.len())
                .filter(|at| text.is_char_boundary(*at))
                .any(|at| glob(rest, &text[at..]))
        }
    }
}

impl Normalisation {
    /// Whether this entry explains the difference at `path` of `object` (`Kind name`): the object
    /// matches, and the path or one of its ancestors matches (with [`When::BothSides`], one that both
    /// sides have; with [`When::FieldwiseSaysMore`], the path itself, where fieldwise's string starts
    /// with the Feast operator's).
    fn covers(
        &self,
        object: &str,
        path: &str,
        (feast, fieldwise): (Option<&Value>, Option<&Value>),
        fieldwise_made_nothing: bool,
    ) -> bool {
        let matches = |pattern: &str, text: &str| pattern.split('|').any(|p| glob(p, text));
        if !matches(self.object, object) {
            return false;
        }
        match self.when {
            When::FieldwiseMadeNothing if !fieldwise_made_nothing => return false,
            When::FieldwiseSaysMore => {
                let (Some(said), Some(more)) = (at(feast, path), at(fieldwise, path)) else {
                    return false;
                };
                let longer = matches!((said.as_str(), more.as_str()),
                    (Some(said), Some(more)) if more.starts_with(said));
                return matches(self.path, path) && longer;
            }
            _ => {}
        }
        // The path and its ancestors; "" (the whole object) only for an object one side lacks.
        let mut prefixes: Vec<&str> = path
            .match_indices('/')
            .filter(|(at, _)| *at > 0)
            .map(|(at, _)| &path[..at])
            .collect();
        prefixes.push(path);
        prefixes.into_iter().any(|prefix| {
            matches(self.path, prefix)
                && (self.when != When::BothSides
                    || (at(feast, prefix).is_some() && at(fieldwise, prefix).is_some()))
        })
    }
}

fn shown(value: &Option<Value>) -> String {
    let text = match value {
        None => "(absent)".to_owned(),
        Some(value) => value.to_string(),
    };
    if text.len() > 400 {
        let end = (0..=400)
            .rev()
            .find(|at| text.is_char_boundary(*at))
            .unwrap_or(0);
        format!("{}… ({} characters)", &text[..end], text.len())
    } else {
        text
    }
}

/// Prints the normalised differences (for the record) and fails on any other, per sample.
fn judge(samples: &[String], differences: Vec<Difference>) {
    let mut unexplained: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for difference in &differences {
        let line = format!(
            "{} {}: Feast operator {} / fieldwise {}",
            difference.object,
            if difference.path.is_empty() {
                "(whole object)"
            } else {
                &difference.path
            },
            shown(&difference.feast),
            shown(&difference.fieldwise)
        );
        match difference.normalisation {
            Some(entry) => eprintln!(
                "feast_side_by_side: {}: normalised ({}: {}): {line}",
                difference.sample, entry.why, entry.what
            ),
            None => unexplained
                .entry(&difference.sample)
                .or_default()
                .push(line),
        }
    }
    let passed: Vec<&String> = samples
        .iter()
        .filter(|sample| !unexplained.contains_key(sample.as_str()))
        .collect();
    eprintln!("feast_side_by_side: samples without unexplained differences: {passed:?}");
    let mut by_kind_and_path: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for difference in differences.iter().filter(|d| d.normalisation.is_none()) {
        let kind = difference.object.split(' ').next().unwrap_or_default();
        let samples = by_kind_and_path
            .entry((kind, difference.path.as_str()))
            .or_default();
        if samples.last() != Some(&difference.sample.as_str()) {
            samples.push(&difference.sample);
        }
    }
    for ((kind, path), samples) in &by_kind_and_path {
        eprintln!(
            "feast_side_by_side: unexplained in {} sample(s): {kind} {path}",
            samples.len()
        );
    }
    let report: Vec<String> = unexplained
        .iter()
        .map(|(sample, lines)| format!("{sample}:\n  {}", lines.join("\n  ")))
        .collect();
    assert!(
        report.is_empty(),
        "differences the normalisation table does not name:\n{}",
        report.join("\n")
    );
}

#[test]
fn a_star_matches_any_run_of_characters() {
    assert!(glob("feast-*-cronjob", "feast-sample-cronjob"));
    assert!(glob("*/labels/a~1b", "/spec/template/metadata/labels/a~1b"));
    assert!(!glob("feast-*-cronjob", "feast-sample-cronjob-exec"));
    assert!(glob("", ""));
    assert!(!glob("", "/spec"));
}

#[test]
fn named_lists_are_compared_by_name_and_order_apart() {
    let feast = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
    let fieldwise =
        json!({"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "3"}], "x": {"y": 1}});
    let mut found = Vec::new();
    diff(Some(&feast), Some(&fieldwise), "", &mut found);
    let paths: Vec<&str> = found.iter().map(|(path, _, _)| path.as_str()).collect();
    assert_eq!(paths, ["/env/(order)", "/env/A/value", "/x/y"]);
    assert_eq!(found[1].1, Some(json!("1")));
    assert_eq!(found[1].2, Some(json!("3")));
    assert_eq!(found[2].1, None);
}

#[test]
fn only_the_table_explains_a_difference() {
    let dump = |deployment: Value| BTreeMap::from([("Deployment feast-s".to_owned(), deployment)]);
    let pod =
        |containers: Value| json!({"spec": {"template": {"spec": {"containers": containers}}}});
    let literal = json!({"name": "TMP_FEATURE_STORE_YAML_BASE64", "value": "eQ=="});
    let from_secret = json!({"name": "TMP_FEATURE_STORE_YAML_BASE64", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}});
    let feast = dump(pod(
        json!([{"name": "online", "image": "a", "env": [literal]},
        {"name": "ui", "env": []}]),
    ));
    let fieldwise = dump(pod(
        json!([{"name": "online", "image": "b", "env": [from_secret.clone()],
        "securityContext": {"runAsNonRoot": true}}, {"name": "ui", "env": [from_secret]}]),
    ));
    let explained: Vec<(String, Option<&str>)> = compare("s", &feast, &fieldwise)
        .into_iter()
        .map(|d| (d.path, d.normalisation.map(|n| n.why)))
        .collect();
    let containers = "/spec/template/spec/containers";
    let variable = "env/TMP_FEATURE_STORE_YAML_BASE64";
    let expected = [
        (
            format!("{containers}/online/{variable}/value"),
            Some("Credentials stay out of pod specs"),
        ),
        (
            format!("{containers}/online/{variable}/valueFrom/secretKeyRef/key"),
            Some("Credentials stay out of pod specs"),
        ),
        (
            format!("{containers}/online/{variable}/valueFrom/secretKeyRef/name"),
            Some("Credentials stay out of pod specs"),
        ),
        (format!("{containers}/online/image"), None),
        (
            format!("{containers}/online/securityContext/runAsNonRoot"),
            Some("Restricted pods"),
        ),
        // The variable only fieldwise gives a container is a difference of its own.
        (format!("{containers}/ui/{variable}/name"), None),
        (
            format!("{containers}/ui/{variable}/valueFrom/secretKeyRef/key"),
            None,
        ),
        (
            format!("{containers}/ui/{variable}/valueFrom/secretKeyRef/name"),
            None,
        ),
    ];
    let expected: Vec<(String, Option<&str>)> = expected.into_iter().collect();
    assert_eq!(explained, expected);
}

#[test]
fn a_longer_message_is_explained_only_where_it_goes_on_from_the_feast_operators() {
    let status = |message: &str| {
        let conditions = json!([{"type": "OnlineStore", "message": message}]);
        // With a Deployment: fieldwise made the FeatureStore's objects.
        BTreeMap::from([
            (
                "FeatureStore s".to_owned(),
                json!({"status": {"conditions": conditions}}),
            ),
            ("Deployment feast-s".to_owned(), json!({})),
        ])
    };
    let explained = |feast: &str, fieldwise: &str| -> Vec<Option<&str>> {
        compare("s", &status(feast), &status(fieldwise))
            .into_iter()
            .map(|d| d.normalisation.map(|n| n.why))
            .collect()
    };
    let missing_key = "Error: secret key postgres doesn't exist in secret db";
    assert_eq!(
        explained(missing_key, &format!("{missing_key}; it has: sql")),
        [Some("A Secret without the key a store reads")]
    );
    assert_eq!(explained(missing_key, "Error: something else"), [None]);
}

#[test]
fn a_failed_feature_store_is_excused_only_where_fieldwise_made_nothing() {
    let failed =
        |conditions: Value| json!({"status": {"phase": "Failed", "conditions": conditions}});
    let feast = BTreeMap::from([
        (
            "FeatureStore s".to_owned(),
            failed(json!([{"type": "FeatureStore", "message": "Error: x"},
                {"type": "Authorization", "status": "True"}])),
        ),
        ("ServiceAccount feast-s".to_owned(), json!({"metadata": {}})),
    ]);
    let fieldwise_status = failed(json!([{"type": "FeatureStore", "message": "Error: y"}]));
    let nothing = BTreeMap::from([("FeatureStore s".to_owned(), fieldwise_status.clone())]);
    let explained = |fieldwise: &BTreeMap<String, Value>| -> Vec<(String, bool)> {
        compare("s", &feast, fieldwise)
            .into_iter()
            .map(|d| {
                (
                    format!("{} {}", d.object, d.path),
                    d.normalisation.is_some(),
                )
            })
            .collect()
    };
    let conditions = "FeatureStore s /status/conditions";
    assert_eq!(
        explained(&nothing),
        [
            (format!("{conditions}/Authorization/status"), true),
            (format!("{conditions}/Authorization/type"), true),
            // The FeatureStore condition is always compared.
            (format!("{conditions}/FeatureStore/message"), false),
            ("ServiceAccount feast-s ".to_owned(), true),
        ]
    );
    let mut something = nothing.clone();
    something.insert("Service feast-s-online".to_owned(), json!({}));
    let excused: Vec<(String, bool)> = explained(&something)
        .into_iter()
        .filter(|(_, explained)| *explained)
        .collect();
    assert!(excused.is_empty(), "{excused:?}");
}
