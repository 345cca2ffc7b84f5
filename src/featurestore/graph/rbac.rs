//! ServiceAccounts, Roles and bindings of a FeatureStore (spec §2 "Role and binding contents").
//!
//! Unlike the Feast operator, the cluster-scoped objects are per FeatureStore and named after its namespace
//! too (`feast.<ns>.<cr>.…`): no two FeatureStores share a name,
//! and deleting one FeatureStore removes its own ClusterRole and binding (through the finalizer) without
//! touching a shared object another FeatureStore still uses.

use fieldwise_api::v1::FeatureStoreSpec;
use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::Value;

use super::to_value;
use crate::featurestore::config::{AuthzMode, authz_mode};
use crate::featurestore::names::{
    ServiceType, base_labels, base_name, service_labels, service_name,
};

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
    let custom_roles = applied
        .authz
        .as_ref()
        .and_then(|a| a.kubernetes.as_ref())
        .and_then(|k| k.roles.clone());
    let mode = authz_mode(applied);
    if matches!(mode, AuthzMode::Kubernetes) {
        let name = base_name(cr_name);
        let labels = service_labels(cr_name, ServiceType::Authorization);
        objects.push(to_value(&Role {
            metadata: namespaced(&name, namespace, labels.clone()),
            rules: Some(token_review_rules(true)),
        }));
        objects.push(to_value(&RoleBinding {
            metadata: namespaced(&name, namespace, labels.clone()),
            role_ref: role_ref("Role", &name),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }));
        for role in custom_roles.iter().flatten() {
            // Feast permissions refer to these Roles by name; users bind them to their own subjects.
            objects.push(to_value(&Role {
                metadata: namespaced(role, namespace, labels.clone()),
                rules: None,
            }));
        }
        let cluster_name = cluster_object_name(cr_name, namespace, "token-review");
        objects.push(to_value(&ClusterRole {
            metadata: cluster_scoped(&cluster_name, labels.clone()),
            rules: Some(token_review_rules(false)),
            aggregation_rule: None,
        }));
        objects.push(to_value(&ClusterRoleBinding {
            metadata: cluster_scoped(&cluster_name, labels),
            role_ref: role_ref("ClusterRole", &cluster_name),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }));
    } else if matches!(mode, AuthzMode::Oidc(_)) {
        let labels = service_labels(cr_name, ServiceType::Authorization);
        let cluster_name = cluster_object_name(cr_name, namespace, "oidc-token-review");
        objects.push(to_value(&ClusterRole {
            metadata: cluster_scoped(&cluster_name, labels.clone()),
            rules: Some(vec![rule(
                "authentication.k8s.io",
                "tokenreviews",
                &["create"],
            )]),
            aggregation_rule: None,
        }));
        objects.push(to_value(&ClusterRoleBinding {
            metadata: cluster_scoped(&cluster_name, labels),
            role_ref: role_ref("ClusterRole", &cluster_name),
            subjects: Some(vec![service_account_subject(
                &base_name(cr_name),
                namespace,
            )]),
        }));
    }
    objects
}

/// Every rule a FeatureStore's ClusterRoles grant (Kubernetes and OIDC authorization): the
/// operator must hold them cluster-wide to create those roles.
pub fn cluster_role_rules() -> Vec<PolicyRule> {
    let mut rules = token_review_rules(false);
    rules.push(rule("authentication.k8s.io", "tokenreviews", &["create"]));
    rules
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

/// The ServiceAccount, Role and RoleBinding the CronJob's `kubectl exec` runs with (`feast-<cr>-cronjob`).
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
            rules: Some(vec![
                deployment_get,
                rule("", "pods", &["list"]),
                rule("", "pods/exec", &["create"]),
            ]),
        }),
        to_value(&RoleBinding {
            metadata: namespaced(&name, namespace, labels),
            role_ref: role_ref("Role", &name),
            subjects: Some(vec![service_account_subject(&name, namespace)]),
        }),
    ]
}

/// What the feature servers need to check Kubernetes identities and their Roles. The namespaced Role may
/// `get`/`watch` rolebindings; the cluster-wide one only lists them.
fn token_review_rules(namespaced_role: bool) -> Vec<PolicyRule> {
    let role_binding_verbs: &[&str] = if namespaced_role {
        &["get", "list", "watch"]
    } else {
        &["list"]
    };
    vec![
        rule(
            "rbac.authorization.k8s.io",
            "roles",
            &["get", "list", "watch"],
        ),
        rule(
            "rbac.authorization.k8s.io",
            "rolebindings",
            role_binding_verbs,
        ),
        rule("authentication.k8s.io", "tokenreviews", &["create"]),
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
