//! Least-privilege RBAC of the operator, generated from the kind registry plus short, explained lists of the
//! calls the controller makes itself. The kustomize install and the OLM bundle both take their RBAC from here.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::{NAMESPACE, labels};

/// The ServiceAccount the operator runs as.
pub const SERVICE_ACCOUNT: &str = "fieldwise";
/// The ClusterRole (and its binding) with everything the controller needs.
pub const CLUSTER_ROLE: &str = "fieldwise-manager";
/// The Role (and its binding) in the operator's namespace for leader election.
pub const LEADER_ELECTION_ROLE: &str = "fieldwise-leader-election";

/// API calls of one resource, and why they are made.
#[derive(Clone, Copy, Debug)]
pub struct Calls {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub why: &'static str,
}

/// What the controller calls itself, beyond applying, watching and pruning the registry's child kinds.
pub const CONTROLLER_CALLS: &[Calls] = &[
    Calls {
        group: "feast.dev",
        resource: "featurestores",
        verbs: &["get", "list", "watch"],
        why: "reflectors",
    },
    Calls {
        group: "feast.dev",
        resource: "featurestores",
        verbs: &["patch"],
        why: "adding and removing the finalizer",
    },
    Calls {
        group: "feast.dev",
        resource: "featurestores/status",
        verbs: &["patch"],
        why: "server-side apply of status",
    },
    Calls {
        group: "feast.dev",
        resource: "featurestores/finalizers",
        verbs: &["update"],
        why: "blockOwnerDeletion on children's ownerReferences",
    },
    Calls {
        group: "",
        resource: "secrets",
        verbs: &["list", "watch"],
        why: "referenced Secrets' data",
    },
    Calls {
        group: "",
        resource: "configmaps",
        verbs: &["get"],
        why: "batch-engine configuration",
    },
    Calls {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        why: "kube's event Recorder",
    },
];

/// Permissions the operator hands out in the Roles and ClusterRoles of a FeatureStore's graph. The API server
/// only lets it create those (and bind them) when it holds the same permissions cluster-wide; holding them is
/// narrower than the `escalate` and `bind` verbs, which would let it grant anything.
pub const DELEGATED_CALLS: &[Calls] = &[
    Calls {
        group: "",
        resource: "namespaces",
        verbs: &["get", "list", "watch"],
        why: "token-review roles",
    },
    Calls {
        group: "",
        resource: "pods",
        verbs: &["list"],
        why: "CronJob role",
    },
    Calls {
        group: "",
        resource: "pods/exec",
        verbs: &["create"],
        why: "CronJob role",
    },
    Calls {
        group: "apps",
        resource: "deployments",
        verbs: &["get"],
        why: "CronJob role",
    },
    Calls {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        why: "token-review roles",
    },
    Calls {
        group: "rbac.authorization.k8s.io",
        resource: "roles",
        verbs: &["get", "list", "watch"],
        why: "token review",
    },
    Calls {
        group: "rbac.authorization.k8s.io",
        resource: "rolebindings",
        verbs: &["get", "list", "watch"],
        why: "token review",
    },
    Calls {
        group: "rbac.authorization.k8s.io",
        resource: "clusterroles",
        verbs: &["get", "list"],
        why: "token review",
    },
    Calls {
        group: "rbac.authorization.k8s.io",
        resource: "clusterrolebindings",
        verbs: &["get", "list"],
        why: "token review",
    },
];

/// What kube-lease-manager calls on the leader Lease: it reads it, creates it when missing, and takes and
/// renews it with (server-side-apply and strategic-merge) patches. It never updates, lists or watches.
pub const LEADER_ELECTION_CALLS: &[Calls] = &[Calls {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["create", "get", "patch"],
    why: "leader election",
}];

/// Every rule of the operator's ClusterRole: every controller's registry (with ServiceMonitors and KEDA
/// ScaledObjects, so the role works wherever those CRDs are installed), the controllers' own calls and
/// the delegated permissions.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let registry = crate::runtime::all_kinds().policy_rules();
    let own = CONTROLLER_CALLS
        .iter()
        .chain(DELEGATED_CALLS)
        .map(Calls::rule);
    merge(registry.into_iter().chain(own))
}

/// The rules of the leader-election Role.
pub fn leader_election_rules() -> Vec<PolicyRule> {
    merge(LEADER_ELECTION_CALLS.iter().map(Calls::rule))
}

impl Calls {
    /// These calls as one policy rule.
    pub fn rule(&self) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![self.group.to_owned()]),
            resources: Some(vec![self.resource.to_owned()]),
            verbs: self.verbs.iter().map(|verb| (*verb).to_owned()).collect(),
            ..PolicyRule::default()
        }
    }
}

/// One permission: API group, resource (with subresource) and verb.
pub type Permission = (String, String, String);

/// Every permission the rules grant, one by one (rules with resource names or URLs are kept out: the
/// generated roles have none).
pub fn permissions(rules: &[PolicyRule]) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in rules.iter().filter(|rule| rule.resource_names.is_none()) {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

/// Deduplicates rules and regroups them: one rule per API group and verb set, resources and verbs sorted.
pub fn merge(rules: impl IntoIterator<Item = PolicyRule>) -> Vec<PolicyRule> {
    let rules: Vec<PolicyRule> = rules.into_iter().collect();
    let mut verbs_by_resource: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (group, resource, verb) in permissions(&rules) {
        verbs_by_resource
            .entry((group, resource))
            .or_default()
            .insert(verb);
    }
    let mut resources_by_verbs: BTreeMap<(String, Vec<String>), Vec<String>> = BTreeMap::new();
    for ((group, resource), verbs) in verbs_by_resource {
        resources_by_verbs
            .entry((group, verbs.into_iter().collect()))
            .or_default()
            .push(resource);
    }
    resources_by_verbs
        .into_iter()
        .map(|((group, verbs), resources)| PolicyRule {
            api_groups: Some(vec![group]),
            resources: Some(resources),
            verbs,
            ..PolicyRule::default()
        })
        .collect()
}

/// The operator's ServiceAccount.
pub fn service_account() -> ServiceAccount {
    ServiceAccount {
        metadata: meta(SERVICE_ACCOUNT, Some(NAMESPACE)),
        ..ServiceAccount::default()
    }
}

/// The ClusterRole with [`cluster_rules`].
pub fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(CLUSTER_ROLE, None),
        rules: Some(cluster_rules()),
        aggregation_rule: None,
    }
}

/// Binds [`cluster_role`] to the operator's ServiceAccount.
pub fn cluster_role_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(CLUSTER_ROLE, None),
        role_ref: role_ref("ClusterRole", CLUSTER_ROLE),
        subjects: Some(vec![subject()]),
    }
}

/// The leader-election Role in the operator's namespace.
pub fn leader_election_role() -> Role {
    Role {
        metadata: meta(LEADER_ELECTION_ROLE, Some(NAMESPACE)),
        rules: Some(leader_election_rules()),
    }
}

/// Binds [`leader_election_role`] to the operator's ServiceAccount.
pub fn leader_election_role_binding() -> RoleBinding {
    RoleBinding {
        metadata: meta(LEADER_ELECTION_ROLE, Some(NAMESPACE)),
        role_ref: role_ref("Role", LEADER_ELECTION_ROLE),
        subjects: Some(vec![subject()]),
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn subject() -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: SERVICE_ACCOUNT.to_owned(),
        namespace: Some(NAMESPACE.to_owned()),
        api_group: None,
    }
}
