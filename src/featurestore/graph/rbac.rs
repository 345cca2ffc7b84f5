//! ServiceAccounts, Roles and bindings of a FeatureStore (spec §2 "Role and binding contents").
//!
//! The permissions the Feast operator puts into a ClusterRole it creates (`feast-token-review-cluster-role`,
//! `feast-oidc-token-review`) or into the CronJob's Role (`pods/exec`) live here in ClusterRoles shipped
//! with the install ([`SHIPPED_CLUSTER_ROLES`], generated into it by `crate::deploy::rbac`); a
//! FeatureStore's graph only binds them. The operator therefore never holds those permissions itself:
//! it may bind exactly these ClusterRoles (`bind` with `resourceNames`), and the API server lets a
//! holder of `bind` grant a role without holding what it grants.
//!
//! The bindings are per FeatureStore and the cluster-scoped ones are named after its namespace too
//! (`feast.<ns>.<cr>.…`): no two FeatureStores share one, and deleting a FeatureStore removes its own
//! (through the finalizer) without touching another FeatureStore's.

use std::collections::BTreeMap;

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec};
use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::Value;

use super::to_value;
use crate::featurestore::config::{AuthzMode, authz_mode};
use crate::featurestore::context::{CoOwner, GraphContext};
use crate::featurestore::names::{
    SERVICE_TYPE_LABEL, ServiceType, base_labels, base_name, service_labels, service_name,
};
use crate::featurestore::references;

/// What the feature servers need cluster-wide for Kubernetes authorization: reviewing tokens and
/// reading namespaces, Roles, ClusterRoles and their bindings (the rules of the Feast operator's
/// `feast-token-review-cluster-role`, plus reading namespaces, ClusterRoles and ClusterRoleBindings).
pub const TOKEN_REVIEW_CLUSTER_ROLE: &str = "fieldwise-feast-token-review";
/// What the feature servers need for OIDC authorization: reviewing tokens (the Feast operator's
/// `feast-oidc-token-review`).
pub const OIDC_TOKEN_REVIEW_CLUSTER_ROLE: &str = "fieldwise-feast-oidc-token-review";
/// What the CronJob's `kubectl exec` into the feature server needs, bound by a RoleBinding in the
/// FeatureStore's namespace only: listing pods and exec into them.
pub const CRON_JOB_EXEC_CLUSTER_ROLE: &str = "fieldwise-feast-cronjob-exec";
/// Every ClusterRole the graph binds, all shipped with the install.
pub const SHIPPED_CLUSTER_ROLES: [&str; 3] = [
    TOKEN_REVIEW_CLUSTER_ROLE,
    OIDC_TOKEN_REVIEW_CLUSTER_ROLE,
    CRON_JOB_EXEC_CLUSTER_ROLE,
];

/// The rules of a shipped ClusterRole (`None` for a name that is not one).
pub fn shipped_cluster_role_rules(name: &str) -> Option<Vec<PolicyRule>> {
    match name {
        TOKEN_REVIEW_CLUSTER_ROLE => Some(cluster_token_review_rules()),
        OIDC_TOKEN_REVIEW_CLUSTER_ROLE => Some(vec![tokenreviews_create()]),
        CRON_JOB_EXEC_CLUSTER_ROLE => Some(vec![
            rule("", "pods", &["list"]),
            rule("", "pods/exec", &["create"]),
        ]),
        _ => None,
    }
}

/// The ServiceAccount of the feature-server pod, `feast-<cr>`.
pub fn service_account(cr_name: &str, namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: namespaced(&base_name(cr_name), namespace, base_labels(cr_name)),
        ..Default::default()
    }
}

/// The authorization children as JSON bodies: Kubernetes RBAC (the default, and what `noAuth: false` means),
/// OIDC token review, or none for `noAuth: true`.
pub fn authorization_objects(
    cr_name: &str,
    namespace: &str,
    applied: &FeatureStoreSpec,
) -> Vec<Value> {
    let mut objects = Vec::new();
    let mode = authz_mode(applied);
    if matches!(mode, AuthzMode::Kubernetes) {
        let name = base_name(cr_name);
        let labels = service_labels(cr_name, ServiceType::Authorization);
        objects.push(to_value(&Role {
            metadata: namespaced(&name, namespace, labels.clone()),
            rules: Some(namespaced_token_review_rules()),
        }));
        objects.push(to_value(&RoleBinding {
            metadata: namespaced(&name, namespace, labels.clone()),
            role_ref: role_ref("Role", &name),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }));
        objects.push(cluster_role_binding(
            cr_name,
            namespace,
            "token-review",
            TOKEN_REVIEW_CLUSTER_ROLE,
        ));
    } else if matches!(mode, AuthzMode::Oidc(_)) {
        objects.push(cluster_role_binding(
            cr_name,
            namespace,
            "oidc-token-review",
            OIDC_TOKEN_REVIEW_CLUSTER_ROLE,
        ));
    }
    objects
}

/// The custom Roles of Kubernetes authorization (`authz.kubernetes.roles`), each with the
/// FeatureStores that share it: Feast permissions refer to these Roles by name and users bind them
/// to their own subjects, so two FeatureStores of a namespace that list one name want the same empty
/// Role. Their labels are those every sharer agrees on (no `feast.dev/name`).
pub fn custom_roles(
    fs: &FeatureStore,
    applied: &FeatureStoreSpec,
    context: &GraphContext,
) -> Vec<(Value, Vec<CoOwner>)> {
    let namespace = fs.metadata.namespace.as_deref().unwrap_or("default");
    let this = CoOwner {
        name: fs.metadata.name.clone().unwrap_or_default(),
        uid: fs.metadata.uid.clone().unwrap_or_default(),
    };
    let labels = BTreeMap::from([(
        SERVICE_TYPE_LABEL.to_owned(),
        ServiceType::Authorization.as_str().to_owned(),
    )]);
    references::custom_roles(applied)
        .into_iter()
        .map(|role| {
            let mut sharers = context.role_sharers.get(&role).cloned().unwrap_or_default();
            sharers.push(this.clone());
            let body = to_value(&Role {
                metadata: namespaced(&role, namespace, labels.clone()),
                rules: None,
            });
            (body, sharers)
        })
        .collect()
}

/// `feast.<ns>.<cr>.<suffix>`, binding the FeatureStore's ServiceAccount to the shipped ClusterRole `role`.
fn cluster_role_binding(cr_name: &str, namespace: &str, suffix: &str, role: &str) -> Value {
    let labels = service_labels(cr_name, ServiceType::Authorization);
    to_value(&ClusterRoleBinding {
        metadata: cluster_scoped(&cluster_object_name(cr_name, namespace, suffix), labels),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![service_account_subject(
            &base_name(cr_name),
            namespace,
        )]),
    })
}

/// Whether an authorization object is cluster-scoped (a ClusterRole or ClusterRoleBinding).
pub fn is_cluster_scoped(object: &Value) -> bool {
    object.pointer("/metadata/namespace").is_none()
}

/// `<Kind> <name>` of an authorization object, for the status.
pub fn kind_and_name(object: &Value) -> String {
    let text = |pointer| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    format!("{} {}", text("/kind"), text("/metadata/name"))
}

/// The ServiceAccount, Role and RoleBinding the CronJob's `kubectl exec` runs with (`feast-<cr>-cronjob`):
/// the Role reads its own Deployment only; listing pods and exec come from the shipped ClusterRole, bound
/// in the FeatureStore's namespace only.
pub fn cron_job_rbac(cr_name: &str, namespace: &str) -> Vec<Value> {
    let name = service_name(cr_name, ServiceType::CronJob);
    let labels = service_labels(cr_name, ServiceType::CronJob);
    let deployment_get = PolicyRule {
        api_groups: Some(vec!["apps".to_owned()]),
        resources: Some(vec!["deployments".to_owned()]),
        resource_names: Some(vec![base_name(cr_name)]),
        verbs: vec!["get".to_owned()],
        non_resource_urls: None,
    };
    vec![
        to_value(&ServiceAccount {
            metadata: namespaced(&name, namespace, labels.clone()),
            ..Default::default()
        }),
        to_value(&Role {
            metadata: namespaced(&name, namespace, labels.clone()),
            rules: Some(vec![deployment_get]),
        }),
        to_value(&RoleBinding {
            metadata: namespaced(&name, namespace, labels.clone()),
            role_ref: role_ref("Role", &name),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }),
        to_value(&RoleBinding {
            metadata: namespaced(&cron_job_exec_binding_name(cr_name), namespace, labels),
            role_ref: role_ref("ClusterRole", CRON_JOB_EXEC_CLUSTER_ROLE),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }),
    ]
}

/// `feast-<cr>-cronjob-exec`: the RoleBinding of the CronJob's ServiceAccount to
/// [`CRON_JOB_EXEC_CLUSTER_ROLE`].
pub fn cron_job_exec_binding_name(cr_name: &str) -> String {
    format!("{}-exec", service_name(cr_name, ServiceType::CronJob))
}

/// What the feature servers read in their own namespace: Roles and RoleBindings.
fn namespaced_token_review_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "rbac.authorization.k8s.io",
            "roles",
            &["get", "list", "watch"],
        ),
        rule(
            "rbac.authorization.k8s.io",
            "rolebindings",
            &["get", "list", "watch"],
        ),
    ]
}

/// The rules of [`TOKEN_REVIEW_CLUSTER_ROLE`]: token reviews, and reading namespaces and RBAC
/// everywhere (RoleBindings are only listed).
fn cluster_token_review_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "rbac.authorization.k8s.io",
            "roles",
            &["get", "list", "watch"],
        ),
        rule("rbac.authorization.k8s.io", "rolebindings", &["list"]),
        tokenreviews_create(),
        rule("", "namespaces", &["get", "list", "watch"]),
        rule(
            "rbac.authorization.k8s.io",
            "clusterroles",
            &["get", "list"],
        ),
        rule(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            &["get", "list"],
        ),
    ]
}

fn tokenreviews_create() -> PolicyRule {
    rule("authentication.k8s.io", "tokenreviews", &["create"])
}

/// `feast.<namespace>.<cr>.<suffix>`: unique cluster-wide. Dashes would not do: namespace `a-b`
/// with FeatureStore `c` and namespace `a` with `b-c` gave the same name. A dot appears in neither
/// part (a namespace is a DNS label; the CRD refuses FeatureStore names with one, and one admitted
/// before that rule gets no children).
pub fn cluster_object_name(cr_name: &str, namespace: &str, suffix: &str) -> String {
    format!("feast.{namespace}.{cr_name}.{suffix}")
}

fn rule(group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
        resource_names: None,
        non_resource_urls: None,
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn service_account_subject(name: &str, namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        api_group: None,
    }
}

fn namespaced(
    name: &str,
    namespace: &str,
    labels: std::collections::BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn cluster_scoped(name: &str, labels: std::collections::BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}
