//! The security contexts of every pod fieldwise creates: each passes the `restricted` Pod Security
//! Standard by default, so FeatureStores and PrismClusters run in namespaces labelled
//! `pod-security.kubernetes.io/enforce: restricted`.
//!
//! The restricted profile asks, for a Linux pod: `runAsNonRoot: true` (pod or every container),
//! a `seccompProfile` of type `RuntimeDefault` or `Localhost` (pod or every container), and per
//! container, init containers included, `allowPrivilegeEscalation: false` and `capabilities.drop`
//! holding `ALL` (only `NET_BIND_SERVICE` may be added back); it also inherits the baseline rules
//! (no privileged containers, host namespaces, host ports or hostPath volumes, only the volume types
//! it lists), none of which fieldwise produces. The pod-level fields cover every container; the
//! container-level ones have no pod-level form, so each container carries them.
//!
//! Where a resource's API lets the user give a security context (FeatureStore
//! `services.securityContext`, a PodSecurityContext; the Feast API has no container-level one), the
//! user's fields win one by one and the defaults fill in the rest: setting only `fsGroup` still runs
//! restricted.
//!
//! `runAsNonRoot: true` makes the kubelet refuse to start a container whose user is root, or is a
//! name it cannot check (a non-numeric `USER`), unless `runAsUser` says otherwise. Images that start
//! as root, or name their user, therefore get a numeric `runAsUser` here, chosen per image (see the
//! PrismCluster backends). On OpenShift the platform assigns every pod a UID from its namespace's
//! range through the `restricted-v2` SecurityContextConstraints, and would refuse a fixed UID outside
//! it; fieldwise does not know yet whether it runs there (it reads no cluster fact about OpenShift),
//! so the fixed UIDs below are what a vanilla cluster needs.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};
use serde_json::{Value, json};

/// The seccomp profile the restricted standard accepts without a node-local file.
pub const SECCOMP_RUNTIME_DEFAULT: &str = "RuntimeDefault";

/// A pod-level numeric identity: `runAsUser`, `runAsGroup` and `fsGroup` (so volumes are writable
/// by the group the process runs with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodIdentity {
    pub user: i64,
    pub group: i64,
}

/// The restricted pod security context, with the user's fields (if any) over it field by field.
///
/// `runAsNonRoot` is left to the user's choice when they run the pod as root on purpose
/// (`runAsUser: 0`): the default would make the kubelet refuse to start it.
pub fn restricted_pod(user: Option<&PodSecurityContext>) -> PodSecurityContext {
    let mut context = user.cloned().unwrap_or_default();
    if context.run_as_non_root.is_none() && context.run_as_user != Some(0) {
        context.run_as_non_root = Some(true);
    }
    if context.seccomp_profile.is_none() {
        context.seccomp_profile = Some(SeccompProfile {
            type_: SECCOMP_RUNTIME_DEFAULT.to_owned(),
            localhost_profile: None,
        });
    }
    context
}

/// The restricted container security context: no privilege escalation, every capability dropped.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// [`restricted_pod`] without a user's context, running as `identity`, as JSON.
pub fn restricted_pod_json(identity: PodIdentity) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": identity.user,
        "runAsGroup": identity.group,
        "fsGroup": identity.group,
        "seccompProfile": {"type": SECCOMP_RUNTIME_DEFAULT},
    })
}

/// [`restricted_container`] as JSON.
pub fn restricted_container_json() -> Value {
    serde_json::to_value(restricted_container()).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_user_context_the_pod_is_restricted() {
        let context = restricted_pod(None);
        assert_eq!(context.run_as_non_root, Some(true));
        assert_eq!(
            context.seccomp_profile.map(|p| p.type_).as_deref(),
            Some(SECCOMP_RUNTIME_DEFAULT)
        );
        assert_eq!(context.run_as_user, None, "the image's own numeric user");
    }

    #[test]
    fn a_user_setting_only_fs_group_still_gets_the_defaults() {
        let user = PodSecurityContext {
            fs_group: Some(2000),
            ..PodSecurityContext::default()
        };
        let context = restricted_pod(Some(&user));
        assert_eq!(context.fs_group, Some(2000));
        assert_eq!(context.run_as_non_root, Some(true));
        assert!(context.seccomp_profile.is_some());
    }

    #[test]
    fn the_users_fields_win() {
        let user = PodSecurityContext {
            run_as_non_root: Some(false),
            seccomp_profile: Some(SeccompProfile {
                type_: "Localhost".to_owned(),
                localhost_profile: Some("profiles/feast.json".to_owned()),
            }),
            run_as_user: Some(1234),
            ..PodSecurityContext::default()
        };
        assert_eq!(restricted_pod(Some(&user)), user);
    }

    #[test]
    fn a_pod_run_as_root_on_purpose_is_not_made_unstartable() {
        let user = PodSecurityContext {
            run_as_user: Some(0),
            ..PodSecurityContext::default()
        };
        let context = restricted_pod(Some(&user));
        assert_eq!(context.run_as_non_root, None);
        assert!(context.seccomp_profile.is_some());
    }

    #[test]
    fn the_json_forms_match_the_typed_ones() {
        assert_eq!(
            restricted_container_json(),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
        let pod = restricted_pod_json(PodIdentity {
            user: 999,
            group: 1000,
        });
        assert_eq!(pod["runAsUser"], 999);
        assert_eq!(pod["fsGroup"], 1000);
        assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault");
    }
}
