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
/// The ClusterRole a scraper (Prometheus' ServiceAccount) is bound to, to read the operator's `/metrics`.
pub const METRICS_READER_ROLE: &str = "fieldwise-metrics-reader";
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
    Calls {
        group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        why: "authenticating /metrics requests (the bearer token of a scrape)",
    },
    Calls {
        group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        why: "authorizing /metrics requests (may the token's user get /metrics)",
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

/// `get` on the non-resource URL `/metrics`: what the operator's metrics endpoint checks with a
/// SubjectAccessReview. Shipped unbound; bind it to the scraper's ServiceAccount.
pub fn metrics_reader_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(METRICS_READER_ROLE, None),
        rules: Some(vec![PolicyRule {
            non_resource_urls: Some(vec!["/metrics".to_owned()]),
            verbs: vec!["get".to_owned()],
            ..PolicyRule::default()
        }]),
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

/// Every permission of the operator's ClusterRole and leader-election Role, one row per resource,
/// with why it is needed: the table `deploy/README.md` shows (between its `permissions` markers).
pub fn permission_table() -> String {
    let mut rows: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    let mut add = |group: &str, resource: &str, verbs: &[String], why: String| {
        let row = rows
            .entry((group.to_owned(), resource.to_owned()))
            .or_default();
        row.0.extend(verbs.iter().cloned());
        row.1.insert(why);
    };
    for rule in crate::runtime::all_kinds().policy_rules() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for why in registry_reasons(resource, &rule.verbs) {
                    add(group, resource, &rule.verbs, why.to_owned());
                }
            }
        }
    }
    let calls = CONTROLLER_CALLS.iter().chain(DELEGATED_CALLS);
    for call in calls.chain(LEADER_ELECTION_CALLS) {
        let verbs: Vec<String> = call.verbs.iter().map(|v| (*v).to_owned()).collect();
        let why = if DELEGATED_CALLS.iter().any(|d| std::ptr::eq(d, call)) {
            format!(
                "granted in a FeatureStore's {} (the API server lets only a holder grant it)",
                call.why
            )
        } else if LEADER_ELECTION_CALLS.iter().any(|l| std::ptr::eq(l, call)) {
            format!("{} (Role in the operator's namespace)", call.why)
        } else {
            call.why.to_owned()
        };
        add(call.group, call.resource, &verbs, why);
    }
    let mut table = String::from("| API group | Resource | Verbs | Why |\n|---|---|---|---|\n");
    for ((group, resource), (verbs, whys)) in rows {
        let group = if group.is_empty() {
            "core"
        } else {
            group.as_str()
        };
        let verbs: Vec<&str> = verbs.iter().map(String::as_str).collect();
        let whys: Vec<&str> = whys.iter().map(String::as_str).collect();
        table.push_str(&format!(
            "| {group} | {resource} | {} | {} |\n",
            verbs.join(" "),
            whys.join("; ")
        ));
    }
    table
}

/// Why the kind registry asks for `verbs` on `resource`: a child kind's apply, cache and prune, or
/// an owner's reflector, finalizer and status (worded as [`CONTROLLER_CALLS`] words them).
fn registry_reasons(resource: &str, verbs: &[String]) -> Vec<&'static str> {
    if resource.ends_with("/status") {
        return vec!["server-side apply of status"];
    }
    if resource.ends_with("/finalizers") {
        return vec!["blockOwnerDeletion on children's ownerReferences"];
    }
    if !verbs.iter().any(|v| v == "create") {
        return vec!["reflectors", "adding and removing the finalizer"];
    }
    if verbs.iter().any(|v| v == "delete") {
        vec![
            "children: server-side apply (create, patch), caches (get, list, watch), delete (prune, or recreate where a field is immutable)",
        ]
    } else {
        vec!["children: server-side apply (create, patch), caches (get, list, watch)"]
    }
}
