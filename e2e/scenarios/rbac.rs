//! The RBAC a FeatureStore gets binds the ClusterRoles shipped with the install, and the operator holds
//! no more than its generated RBAC:
//!
//! - bindings made earlier with another `roleRef` (an earlier fieldwise bound a ClusterRole of its
//!   own per FeatureStore; a binding of that name made by a plain create) are replaced, since the API
//!   server refuses a new `roleRef` on an existing binding;
//! - on a real control plane (the emulator does not authorize requests), the operator runs with exactly
//!   the generated RBAC, impersonating its ServiceAccount: FeatureStores with Kubernetes authorization
//!   (and custom roles), OIDC and a CronJob become Ready with no request refused, their bindings refer
//!   to the shipped ClusterRoles, deleting one removes its ClusterRoleBinding, and the API server
//!   refuses what the operator no longer holds (so a graph that still made ClusterRoles would fail).

use fieldwise::{
    deploy::{files::Part, rbac},
    featurestore::{
        context::ImageDefaults,
        graph::{
            CRON_JOB_EXEC_CLUSTER_ROLE, OIDC_TOKEN_REVIEW_CLUSTER_ROLE, TOKEN_REVIEW_CLUSTER_ROLE,
            cluster_object_name, cron_job_exec_binding_name,
        },
        render::{Input, OFFLINE_UID, render},
    },
};
use fieldwise_api::v1::FeatureStore;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, Target, events_until, on_every_target, run_with, wait_gone};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

on_every_target!(
    bindings_with_another_role_are_replaced,
    bindings_replaced,
    operator_started_by_scenario
);

#[test]
#[ignore = "needs a real cluster: E2E_KUBECONFIG=path (see e2e/README.md)"]
fn the_operator_needs_no_more_than_its_generated_rbac_on_a_real_cluster() {
    run_with(Target::RealCluster, false, operator_with_generated_rbac);
}

/// A FeatureStore with Kubernetes authorization and custom roles (and, as every FeatureStore, a CronJob).
fn kubernetes_authz(name: &str, namespace: &str) -> Value {
    json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"feastProject": "rbac", "authz": {"kubernetes": {"roles": ["feast-reader", "feast-writer"]}}}})
}

/// A FeatureStore with OIDC authorization and the Secret it reads.
fn oidc_authz(name: &str, namespace: &str) -> [Value; 2] {
    [
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "oidc", "namespace": namespace},
            "stringData": {"client_id": "feast",
                "auth_discovery_url": "https://idp.example.com/.well-known/openid-configuration"}}),
        json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"feastProject": "rbac", "authz": {"oidc": {"secretRef": {"name": "oidc"}}}}}),
    ]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: RBAC_GROUP.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

async fn apply_as_user(cluster: &Cluster, documents: &[Value]) {
    let text: Vec<String> = documents.iter().map(Value::to_string).collect();
    cluster
        .apply_yaml(&text.join("\n---\n"), &cluster.namespace)
        .await;
}

/// The bindings an earlier graph left for the FeatureStore `name` (applied while no operator runs):
/// - the token-review ClusterRoleBinding as an earlier fieldwise applied it, bound to a ClusterRole
///   of its own per FeatureStore (`feast.<ns>.<name>.token-review`), labelled as its child;
/// - the CronJob's exec RoleBinding, made by a plain create (field manager `manager`, as the Feast
///   operator writes) and bound to the CronJob's Role.
///
/// Returns their uids.
async fn earlier_bindings(cluster: &Cluster, name: &str) -> (String, String) {
    let namespace = &cluster.namespace;
    let fs = cluster
        .feature_stores(namespace)
        .get(name)
        .await
        .expect("the FeatureStore");
    let uid = fs.uid().expect("a uid");
    let cluster_name = cluster_object_name(name, namespace, "token-review");
    let mut earlier = rendered(&fs, "ClusterRoleBinding", &cluster_name);
    earlier["roleRef"] = json!(role_ref("ClusterRole", &cluster_name));
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    // A binding of this name left by an interrupted run is replaced.
    let _ = bindings
        .delete(&cluster_name, &DeleteParams::default())
        .await;
    wait_gone(&bindings, &cluster_name).await;
    let applied = bindings
        .patch(
            &cluster_name,
            &PatchParams::apply("fieldwise").force(),
            &Patch::Apply(&earlier),
        )
        .await
        .expect("the earlier ClusterRoleBinding");

    let exec_name = cron_job_exec_binding_name(name);
    let created: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": exec_name, "namespace": namespace,
            "labels": {"feast.dev/name": name, "app.kubernetes.io/managed-by": "feast-operator"},
            "ownerReferences": [{"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": name,
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "roleRef": role_ref("Role", &format!("feast-{name}-cronjob")),
        "subjects": [{"kind": "ServiceAccount", "name": format!("feast-{name}-cronjob"),
            "namespace": namespace}],
    }))
    .expect("a RoleBinding");
    let params = PostParams {
        field_manager: Some("manager".to_owned()),
        ..PostParams::default()
    };
    let role_bindings: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), namespace);
    let created = role_bindings
        .create(&params, &created)
        .await
        .expect("the earlier RoleBinding");
    (applied.uid().expect("a uid"), created.uid().expect("a uid"))
}

/// The object `fieldwise render` shows for `fs`, with its uid.
fn rendered(fs: &FeatureStore, kind: &str, name: &str) -> Value {
    let input = Input {
        source_name: "scenario".to_owned(),
        text: serde_json::to_string(fs).expect("JSON"),
    };
    let text = render(&[input], &ImageDefaults::default()).expect("renders");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML parses");
    let uid = fs.uid().expect("a uid");
    let object = documents
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("render shows no {kind} {name}"));
    serde_json::from_str(&object.to_string().replace(OFFLINE_UID, &uid)).expect("JSON")
}

/// Both earlier bindings were replaced (new uids) by bindings to the shipped ClusterRoles, each with a
/// `ChildReplaced` Event naming `roleRef`.
async fn assert_replaced(cluster: &Cluster, name: &str, earlier: &(String, String)) {
    let namespace = &cluster.namespace;
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let binding = bindings
        .get(&cluster_object_name(name, namespace, "token-review"))
        .await
        .expect("the token-review ClusterRoleBinding");
    assert_eq!(
        binding.role_ref,
        role_ref("ClusterRole", TOKEN_REVIEW_CLUSTER_ROLE)
    );
    assert_ne!(binding.uid().as_ref(), Some(&earlier.0), "not replaced");
    let role_bindings: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), namespace);
    let exec = role_bindings
        .get(&cron_job_exec_binding_name(name))
        .await
        .expect("the exec RoleBinding");
    assert_eq!(
        exec.role_ref,
        role_ref("ClusterRole", CRON_JOB_EXEC_CLUSTER_ROLE)
    );
    assert_ne!(exec.uid().as_ref(), Some(&earlier.1), "not replaced");
    let fs = cluster
        .feature_stores(namespace)
        .get(name)
        .await
        .expect("the FeatureStore");
    let replaced = |notes: &[(String, String)]| {
        notes
            .iter()
            .filter(|(reason, note)| reason == "ChildReplaced" && note.contains("roleRef"))
            .count()
    };
    let notes = events_until(cluster, fs.uid().as_deref(), |notes| replaced(notes) >= 2).await;
    assert_eq!(replaced(&notes), 2, "{notes:?}");
}

async fn bindings_replaced(mut cluster: Cluster) {
    let name = "earlier-rbac";
    apply_as_user(&cluster, &[kubernetes_authz(name, &cluster.namespace)]).await;
    let earlier = earlier_bindings(&cluster, name).await;
    cluster.start_operator();
    cluster.wait_ready(&cluster.namespace, name).await;
    assert_replaced(&cluster, name, &earlier).await;
    // The binding made by a plain create was applied once blindly and refused for its roleRef (then
    // read and replaced); nothing else was refused.
    let exec_path = format!("/rolebindings/{}", cron_job_exec_binding_name(name));
    let refused = cluster.operator_refusals();
    assert!(
        refused
            .iter()
            .all(|r| r.ends_with(&format!("{exec_path} 422"))),
        "{refused:?}"
    );
}

/// The generated ServiceAccount, ClusterRole, leader-election Role, their bindings and the shipped
/// ClusterRoles, server-side applied as `kubectl apply --server-side -f deploy/default/rbac.yaml` would.
async fn install_generated_rbac(cluster: &Cluster) {
    cluster.namespace(fieldwise::deploy::NAMESPACE).await;
    let yaml = Part::Rbac
        .yaml(env!("CARGO_PKG_VERSION"))
        .expect("the RBAC part");
    cluster
        .apply_yaml(&yaml, fieldwise::deploy::NAMESPACE)
        .await;
}

fn operator_user() -> String {
    format!(
        "system:serviceaccount:{}:{}",
        fieldwise::deploy::NAMESPACE,
        rbac::SERVICE_ACCOUNT
    )
}

/// Whether the API server refused `request` with 403 Forbidden.
fn is_forbidden<T>(request: &Result<T, kube::Error>) -> bool {
    matches!(request, Err(kube::Error::Api(status)) if status.code == 403)
}

/// What the operator does not hold is refused: creating a ClusterRole at all (the earlier graph made
/// one with `tokenreviews` per FeatureStore), a Role with `pods/exec` (the earlier CronJob Role), and
/// binding a ClusterRole other than the shipped ones. Binding a shipped one is allowed.
async fn assert_refused_beyond_generated_rbac(client: &Client, namespace: &str) {
    let token_review: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": format!("fieldwise-e2e.{namespace}.token-review")},
        "rules": [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
            "verbs": ["create"]}],
    }))
    .expect("a ClusterRole");
    let created = Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &token_review)
        .await;
    assert!(is_forbidden(&created), "a ClusterRole: {created:?}");

    let exec: Role = serde_json::from_value(json!({
        "metadata": {"name": "exec", "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}],
    }))
    .expect("a Role");
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    let created = roles.create(&PostParams::default(), &exec).await;
    assert!(is_forbidden(&created), "a Role with pods/exec: {created:?}");

    let bind = |role: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": {"name": format!("e2e-{role}"), "namespace": namespace},
            "roleRef": role_ref("ClusterRole", role),
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        }))
        .expect("a RoleBinding")
    };
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    for other in ["view", "edit"] {
        let created = bindings.create(&PostParams::default(), &bind(other)).await;
        assert!(is_forbidden(&created), "binding {other}: {created:?}");
    }
    bindings
        .create(&PostParams::default(), &bind(CRON_JOB_EXEC_CLUSTER_ROLE))
        .await
        .expect("binding a shipped ClusterRole is allowed");
    bindings
        .delete(
            &format!("e2e-{CRON_JOB_EXEC_CLUSTER_ROLE}"),
            &DeleteParams::default(),
        )
        .await
        .expect("deleted");
}

async fn operator_with_generated_rbac(mut cluster: Cluster) {
    install_generated_rbac(&cluster).await;
    cluster.impersonate_operator(&operator_user());
    let namespace = cluster.namespace.clone();
    assert_refused_beyond_generated_rbac(&cluster.operator_client(), &namespace).await;
    // The refusals were seen where the operator's are recorded, so "none refused" below means none.
    assert_eq!(
        cluster.operator_forbidden().len(),
        4,
        "{:?}",
        cluster.operator_forbidden()
    );
    let forbidden_before = cluster.operator_forbidden().len();

    let (kube_auth, oidc) = ("kube-auth", "oidc-auth");
    let mut documents = vec![kubernetes_authz(kube_auth, &namespace)];
    documents.extend(oidc_authz(oidc, &namespace));
    apply_as_user(&cluster, &documents).await;
    let earlier = earlier_bindings(&cluster, kube_auth).await;
    cluster.start_operator();
    for name in [kube_auth, oidc] {
        cluster.wait_ready(&namespace, name).await;
    }
    let forbidden = cluster.operator_forbidden();
    assert_eq!(
        forbidden.len(),
        forbidden_before,
        "refused: {:?}",
        &forbidden[forbidden_before..]
    );
    cluster.assert_no_reconcile_errors();
    assert_replaced(&cluster, kube_auth, &earlier).await;

    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    let oidc_binding = cluster_object_name(oidc, &namespace, "oidc-token-review");
    let binding = bindings.get(&oidc_binding).await.expect("the OIDC binding");
    assert_eq!(
        binding.role_ref,
        role_ref("ClusterRole", OIDC_TOKEN_REVIEW_CLUSTER_ROLE)
    );
    let roles: Api<Role> = Api::namespaced(cluster.client.clone(), &namespace);
    for custom in ["feast-reader", "feast-writer"] {
        roles.get(custom).await.expect("a custom role");
    }
    let role_bindings: Api<RoleBinding> = Api::namespaced(cluster.client.clone(), &namespace);
    let exec = role_bindings
        .get(&cron_job_exec_binding_name(oidc))
        .await
        .expect("the OIDC FeatureStore's exec binding");
    assert_eq!(
        exec.role_ref,
        role_ref("ClusterRole", CRON_JOB_EXEC_CLUSTER_ROLE)
    );

    // Deleting a FeatureStore removes its ClusterRoleBinding through the finalizer, as the operator.
    let stores = cluster.feature_stores(&namespace);
    stores
        .delete(oidc, &DeleteParams::default())
        .await
        .expect("deleted");
    wait_gone(&stores, oidc).await;
    wait_gone(&bindings, &oidc_binding).await;
    let forbidden = cluster.operator_forbidden();
    assert_eq!(forbidden.len(), forbidden_before, "refused: {forbidden:?}");
}
