//! What the Feast operator leaves behind when fieldwise takes a FeatureStore over: its cluster-scoped
//! RBAC (spec §2), made with no owner, so garbage collection never removes it. fieldwise binds the
//! ClusterRoles shipped with its install through bindings named per namespace (`feast.<ns>.<cr>.…`),
//! so these are not adopted; it does not delete them either, as another Feast operator may still use
//! the shared ClusterRoles. It reports them once, in an Event on the FeatureStore, and the README says
//! how to remove them. The operator may read only these two ClusterRoles (`get` with `resourceNames`).

use fieldwise_api::v1::FeatureStore;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::{Api, Client, ResourceExt, runtime::events::EventType};
use tracing::warn;

use super::names::base_name;
use crate::runtime::Notice;

/// The Event's reason.
pub const REASON: &str = "FeastOperatorLeftovers";

/// The ClusterRoles the Feast operator shares between the FeatureStores it runs: token review for
/// Kubernetes authorization, and for OIDC. The only ClusterRoles the operator may read.
pub const FEAST_SHARED_CLUSTER_ROLES: [&str; 2] =
    ["feast-token-review-cluster-role", "feast-oidc-token-review"];

/// The bindings the Feast operator made for a FeatureStore `<cr>`: Kubernetes authorization, OIDC.
fn binding_names(cr_name: &str) -> [String; 2] {
    [
        format!("feast-{cr_name}-cluster-binding"),
        format!("feast-{cr_name}-oidc-token-review"),
    ]
}

/// The Event about the Feast operator's cluster-scoped objects for `fs`, if any are left. Only a
/// FeatureStore that already has a status when fieldwise first takes it on was run by another
/// operator; a new one costs no request.
pub async fn notices(fs: &FeatureStore, client: &Client) -> Vec<Notice> {
    if fs.status.is_none() {
        return Vec::new();
    }
    match find(fs, client).await {
        Ok(left) if left.is_empty() => Vec::new(),
        Ok(left) => vec![Notice {
            type_: EventType::Warning,
            reason: REASON,
            note: note(&left),
        }],
        Err(error) => {
            warn!(%error, "could not look for the Feast operator's cluster-scoped objects");
            Vec::new()
        }
    }
}

/// The Feast operator's bindings for `fs` and the ClusterRoles they grant, as `<Kind> <name>`.
async fn find(fs: &FeatureStore, client: &Client) -> Result<Vec<String>, kube::Error> {
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let mut left = Vec::new();
    for name in binding_names(&fs.name_any()) {
        let Some(binding) = bindings.get_opt(&name).await? else {
            continue;
        };
        if !is_feast_binding_of(fs, &binding) {
            continue;
        }
        left.push(format!("ClusterRoleBinding {name}"));
        let role = binding.role_ref.name.as_str();
        let shared =
            binding.role_ref.kind == "ClusterRole" && FEAST_SHARED_CLUSTER_ROLES.contains(&role);
        if shared && roles.get_opt(role).await?.is_some() {
            left.push(format!(
                "ClusterRole {role} (shared by every FeatureStore it ran)"
            ));
        }
    }
    Ok(left)
}

/// Whether a binding of the Feast operator's name is the one it made for `fs`: it binds the
/// FeatureStore's ServiceAccount in its namespace (the name alone is shared by FeatureStores of
/// the same name in other namespaces). One owned by `fs` is left to garbage collection.
fn is_feast_binding_of(fs: &FeatureStore, binding: &ClusterRoleBinding) -> bool {
    let (namespace, account) = (fs.namespace(), base_name(&fs.name_any()));
    let binds_ours = binding
        .subjects
        .iter()
        .flatten()
        .any(|s| s.kind == "ServiceAccount" && s.name == account && s.namespace == namespace);
    let owned_by_fs = binding
        .owner_references()
        .iter()
        .any(|r| Some(&r.uid) == fs.metadata.uid.as_ref());
    binds_ours && !owned_by_fs
}

fn note(left: &[String]) -> String {
    format!(
        "the Feast operator left cluster-scoped objects fieldwise does not use or delete: {}. \
         Delete the binding once the Feast operator is gone, and a shared ClusterRole once no \
         binding refers to it (README: Taking over from the Feast operator)",
        left.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature_store() -> FeatureStore {
        serde_json::from_value(json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": "sample", "namespace": "team-a", "uid": "fs-uid"},
            "spec": {"feastProject": "p"}}))
        .expect("a FeatureStore")
    }

    fn binding(namespace: &str, owner_uid: Option<&str>) -> ClusterRoleBinding {
        let mut binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "feast-sample-cluster-binding"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "feast-token-review-cluster-role"},
            "subjects": [{"kind": "ServiceAccount", "name": "feast-sample", "namespace": namespace}]});
        if let Some(uid) = owner_uid {
            binding["metadata"]["ownerReferences"] = json!([{"apiVersion": "feast.dev/v1",
                "kind": "FeatureStore", "name": "sample", "uid": uid}]);
        }
        serde_json::from_value(binding).expect("a binding")
    }

    #[test]
    fn the_binding_of_this_feature_store_is_a_leftover() {
        assert!(is_feast_binding_of(
            &feature_store(),
            &binding("team-a", None)
        ));
    }

    #[test]
    fn a_binding_of_a_namesake_in_another_namespace_is_not() {
        assert!(!is_feast_binding_of(
            &feature_store(),
            &binding("team-b", None)
        ));
    }

    #[test]
    fn a_binding_the_feature_store_owns_is_left_to_garbage_collection() {
        assert!(!is_feast_binding_of(
            &feature_store(),
            &binding("team-a", Some("fs-uid"))
        ));
        assert!(is_feast_binding_of(
            &feature_store(),
            &binding("team-a", Some("other"))
        ));
    }

    #[test]
    fn the_note_names_every_object_and_where_to_read_more() {
        let note = note(&[
            "ClusterRoleBinding feast-sample-cluster-binding".to_owned(),
            "ClusterRole feast-token-review-cluster-role (shared by every FeatureStore it ran)"
                .to_owned(),
        ]);
        assert!(note.contains("ClusterRoleBinding feast-sample-cluster-binding, ClusterRole feast-token-review-cluster-role"), "{note}");
        assert!(
            note.contains("Taking over from the Feast operator"),
            "{note}"
        );
    }
}
