//! Least-privilege RBAC of the operator, generated from the kind registry plus short, explained lists of the
//! calls the controller makes itself, and the ClusterRoles shipped for FeatureStores' bindings to refer to.
//! The kustomize install and the OLM bundle both take their RBAC from here.

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
use crate::featurestore::{
    graph::{CRON_JOB_EXEC_CLUSTER_ROLE, SHIPPED_CLUSTER_ROLES, shipped_cluster_role_rules},
    leftovers::FEAST_SHARED_CLUSTER_ROLES,
};
use crate::leader::LEASE_NAME;

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
];

/// The reviews that authenticate and authorize `/metrics` requests (as controller-runtime's metrics
/// filter does). Both resources are cluster-scoped: an operator watching some namespaces needs them
/// cluster-wide too, in [`cluster_scoped_rules`].
pub const METRICS_AUTH_CALLS: &[Calls] = &[
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

/// Permissions the operator hands out in the Roles of a FeatureStore's graph. The API server lets it create
/// a Role only with permissions it holds itself; it holds these anyway (the Roles, RoleBindings and
/// Deployments are its children). What the graph grants beyond them is in the shipped ClusterRoles
/// ([`shipped_cluster_roles`]), which the graph only binds.
pub const DELEGATED_CALLS: &[Calls] = &[
    Calls {
        group: "apps",
        resource: "deployments",
        verbs: &["get"],
        why: "CronJob Role",
    },
    Calls {
        group: RBAC_GROUP,
        resource: "roles",
        verbs: &["get", "list", "watch"],
        why: "token-review Role",
    },
    Calls {
        group: RBAC_GROUP,
        resource: "rolebindings",
        verbs: &["get", "list", "watch"],
        why: "token-review Role",
    },
];

/// API calls limited to objects of the listed names (a rule with `resourceNames`).
#[derive(Clone, Copy, Debug)]
pub struct NamedCalls {
    pub calls: Calls,
    pub names: &'static [&'static str],
}

/// What the operator's ClusterRole grants for named objects only: `bind`, which the API server checks when
/// the operator writes a binding to a shipped ClusterRole, and reading two ClusterRoles by name.
pub const NAMED_CONTROLLER_CALLS: &[NamedCalls] = &[
    NamedCalls {
        calls: Calls {
            group: RBAC_GROUP,
            resource: "clusterroles",
            verbs: &["bind"],
            why: "binding the shipped ClusterRoles to a FeatureStore's ServiceAccounts (the API server lets \
                  a holder of `bind` grant a ClusterRole without holding its permissions)",
        },
        names: &SHIPPED_CLUSTER_ROLES,
    },
    NamedCalls {
        calls: Calls {
            group: RBAC_GROUP,
            resource: "clusterroles",
            verbs: &["get"],
            why: "reporting the Feast operator's shared ClusterRoles it left behind",
        },
        names: &FEAST_SHARED_CLUSTER_ROLES,
    },
];

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What kube-lease-manager calls on the leader Lease: it creates it when missing (a create cannot be
/// limited to a name: the object does not exist yet), reads it, and takes and renews it with
/// (server-side-apply and strategic-merge) patches. It never updates, lists or watches.
pub const LEADER_ELECTION_CALLS: &[Calls] = &[Calls {
    group: "coordination.k8s.io",
    resource: "leases",
    verbs: &["create"],
    why: "leader election",
}];

/// The leader-election calls on the Lease `fieldwise-leader` itself.
pub const NAMED_LEADER_ELECTION_CALLS: &[NamedCalls] = &[NamedCalls {
    calls: Calls {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "patch"],
        why: "leader election",
    },
    names: &[LEASE_NAME],
}];

/// Every rule of the operator's ClusterRole: every controller's registry (with ServiceMonitors and KEDA
/// ScaledObjects, so the role works wherever those CRDs are installed), the controllers' own calls and
/// the delegated permissions, then the calls limited to named objects.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let registry = crate::runtime::all_kinds().policy_rules();
    let own = CONTROLLER_CALLS
        .iter()
        .chain(METRICS_AUTH_CALLS)
        .chain(DELEGATED_CALLS)
        .map(Calls::rule);
    let mut rules = merge(registry.into_iter().chain(own));
    rules.extend(NAMED_CONTROLLER_CALLS.iter().map(NamedCalls::rule));
    rules
}

/// The operator's rules in each watched namespace when it watches some namespaces only
/// (`fieldwise run --namespace`): every namespaced kind of every registry with the owners, the
/// controllers' own calls and the delegated permissions (a FeatureStore's Roles grant them in its
/// namespace, so the operator must hold them there; on `namespaces` and the RBAC kinds they reach
/// nothing beyond the namespace itself). Nothing cluster-scoped: see [`cluster_scoped_rules`].
pub fn namespaced_rules() -> Vec<PolicyRule> {
    let registry = crate::runtime::all_kinds()
        .only(fieldwise_apply::Scope::Namespaced)
        .policy_rules();
    let own = CONTROLLER_CALLS
        .iter()
        .chain(DELEGATED_CALLS)
        .map(Calls::rule);
    let mut rules = merge(registry.into_iter().chain(own));
    rules.extend(NAMED_NAMESPACED_CALLS.iter().map(NamedCalls::rule));
    rules
}

/// `bind` of the shipped ClusterRole the CronJob's RoleBinding refers to. That binding is
/// namespaced, so the API server checks `bind` in its namespace: a watched namespace's Role grants it.
pub const NAMED_NAMESPACED_CALLS: &[NamedCalls] = &[NamedCalls {
    calls: Calls {
        group: RBAC_GROUP,
        resource: "clusterroles",
        verbs: &["bind"],
        why: "binding the shipped CronJob ClusterRole in the namespace",
    },
    names: &[CRON_JOB_EXEC_CLUSTER_ROLE],
}];

/// What is cluster-scoped by nature: managing the cluster-scoped children (a FeatureStore's
/// token-review ClusterRoleBindings), binding the shipped ClusterRoles they refer to, and reading
/// the Feast operator's shared ClusterRoles for the leftovers report. An operator watching some
/// namespaces only manages those children when it holds these rules (checked at start,
/// `crate::runtime::access`), and leaves them out otherwise.
pub fn cluster_scoped_child_rules() -> Vec<PolicyRule> {
    cluster_scoped_with(&[])
}

/// Everything cluster-scoped by nature the installs grant: [`cluster_scoped_child_rules`] and the
/// reviews of `/metrics` requests ([`METRICS_AUTH_CALLS`]).
pub fn cluster_scoped_rules() -> Vec<PolicyRule> {
    cluster_scoped_with(METRICS_AUTH_CALLS)
}

/// The registry's cluster-scoped kinds and `calls`, then the calls limited to named ClusterRoles.
fn cluster_scoped_with(calls: &[Calls]) -> Vec<PolicyRule> {
    let registry = crate::runtime::all_kinds()
        .only(fieldwise_apply::Scope::Cluster)
        .policy_rules();
    let mut rules = merge(registry.into_iter().chain(calls.iter().map(Calls::rule)));
    rules.extend(NAMED_CONTROLLER_CALLS.iter().map(NamedCalls::rule));
    rules
}

/// The ClusterRole (and its binding) with [`cluster_scoped_rules`], in the namespaced install.
pub const CLUSTER_SCOPED_ROLE: &str = "fieldwise-cluster-scoped";

/// The Role (and its binding) with [`namespaced_rules`] in each watched namespace of the
/// namespaced install.
pub const NAMESPACED_ROLE: &str = "fieldwise-manager";

/// The rules of the leader-election Role.
pub fn leader_election_rules() -> Vec<PolicyRule> {
    let mut rules = merge(LEADER_ELECTION_CALLS.iter().map(Calls::rule));
    rules.extend(NAMED_LEADER_ELECTION_CALLS.iter().map(NamedCalls::rule));
    rules
}

/// The ClusterRoles shipped with the install that FeatureStores' bindings refer to
/// ([`SHIPPED_CLUSTER_ROLES`], with the rules the graph module gives them).
pub fn shipped_cluster_roles() -> Vec<ClusterRole> {
    SHIPPED_CLUSTER_ROLES
        .iter()
        .map(|name| ClusterRole {
            metadata: meta(name, None),
            rules: shipped_cluster_role_rules(name),
            aggregation_rule: None,
        })
        .collect()
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

impl NamedCalls {
    /// These calls as one policy rule limited to [`Self::names`].
    pub fn rule(&self) -> PolicyRule {
        PolicyRule {
            resource_names: Some(self.names.iter().map(|name| (*name).to_owned()).collect()),
            ..self.calls.rule()
        }
    }
}

/// One permission: API group, resource (with subresource) and verb.
pub type Permission = (String, String, String);

/// A permission limited to one object name.
pub type NamedPermission = (String, String, String, String);

/// Every permission the rules grant for objects of any name, one by one (rules limited to resource
/// names, see [`named_permissions`], and rules for URLs are kept out).
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

/// Every permission the rules grant only for named objects, one by one with the name.
pub fn named_permissions(rules: &[PolicyRule]) -> BTreeSet<NamedPermission> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for name in rule.resource_names.iter().flatten() {
            let unnamed = PolicyRule {
                resource_names: None,
                ..rule.clone()
            };
            for (group, resource, verb) in permissions(&[unnamed]) {
                out.insert((group, resource, verb, name.clone()));
            }
        }
    }
    out
}

/// Deduplicates rules and regroups them: one rule per API group and verb set, resources and verbs sorted.
/// Rules limited to resource names are dropped: keep them apart.
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

/// The Role with [`namespaced_rules`] in `namespace`, for an operator watching it.
pub fn namespaced_role(namespace: &str) -> Role {
    Role {
        metadata: meta(NAMESPACED_ROLE, Some(namespace)),
        rules: Some(namespaced_rules()),
    }
}

/// Binds [`namespaced_role`] in `namespace` to the operator's ServiceAccount.
pub fn namespaced_role_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(NAMESPACED_ROLE, Some(namespace)),
        role_ref: role_ref("Role", NAMESPACED_ROLE),
        subjects: Some(vec![subject()]),
    }
}

/// The ClusterRole with [`cluster_scoped_rules`].
pub fn cluster_scoped_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(CLUSTER_SCOPED_ROLE, None),
        rules: Some(cluster_scoped_rules()),
        aggregation_rule: None,
    }
}

/// Binds [`cluster_scoped_role`] to the operator's ServiceAccount.
pub fn cluster_scoped_role_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(CLUSTER_SCOPED_ROLE, None),
        role_ref: role_ref("ClusterRole", CLUSTER_SCOPED_ROLE),
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

/// Every permission of the operator's ClusterRole and leader-election Role, one row per resource and
/// names it is limited to, with why it is needed: the table `deploy/README.md` shows (between its
/// `permissions` markers).
pub fn permission_table() -> String {
    type Row = (BTreeSet<String>, BTreeSet<String>);
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    let mut add = |group: &str, resource: &str, names: String, verbs: &[String], why: String| {
        let row = rows
            .entry((group.to_owned(), resource.to_owned(), names))
            .or_default();
        row.0.extend(verbs.iter().cloned());
        row.1.insert(why);
    };
    for rule in crate::runtime::all_kinds().policy_rules() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for why in registry_reasons(resource, &rule.verbs) {
                    add(group, resource, String::new(), &rule.verbs, why.to_owned());
                }
            }
        }
    }
    let reasons = CONTROLLER_CALLS
        .iter()
        .chain(METRICS_AUTH_CALLS)
        .map(|call| (call, String::new(), call.why.to_owned()))
        .chain(DELEGATED_CALLS.iter().map(|call| {
            let why = format!(
                "granted in a FeatureStore's {} (the API server lets only a holder grant it)",
                call.why
            );
            (call, String::new(), why)
        }))
        .chain(NAMED_CONTROLLER_CALLS.iter().map(|named| {
            (
                &named.calls,
                names_cell(named.names),
                named.calls.why.to_owned(),
            )
        }))
        .chain(
            LEADER_ELECTION_CALLS
                .iter()
                .map(|call| (call, String::new(), leader_election_reason(call))),
        )
        .chain(NAMED_LEADER_ELECTION_CALLS.iter().map(|named| {
            let why = leader_election_reason(&named.calls);
            (&named.calls, names_cell(named.names), why)
        }));
    for (call, names, why) in reasons {
        let verbs: Vec<String> = call.verbs.iter().map(|v| (*v).to_owned()).collect();
        add(call.group, call.resource, names, &verbs, why);
    }
    let mut table = String::from(
        "| API group | Resource | Verbs | Only these names | Why |\n|---|---|---|---|---|\n",
    );
    for ((group, resource, names), (verbs, whys)) in rows {
        let verbs: Vec<&str> = verbs.iter().map(String::as_str).collect();
        let whys: Vec<&str> = whys.iter().map(String::as_str).collect();
        let names = if names.is_empty() { "any" } else { &names };
        table.push_str(&format!(
            "| {} | {resource} | {} | {names} | {} |\n",
            group_cell(&group),
            verbs.join(" "),
            whys.join("; ")
        ));
    }
    table
}

/// The rules of every shipped ClusterRole, one row per rule: the table `deploy/README.md` shows
/// between its `shipped-roles` markers.
pub fn shipped_roles_table() -> String {
    let mut table =
        String::from("| ClusterRole | API group | Resources | Verbs |\n|---|---|---|---|\n");
    for role in shipped_cluster_roles() {
        let name = role.metadata.name.unwrap_or_default();
        for rule in role.rules.iter().flatten() {
            for group in rule.api_groups.iter().flatten() {
                table.push_str(&format!(
                    "| {name} | {} | {} | {} |\n",
                    group_cell(group),
                    rule.resources
                        .iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                    rule.verbs.join(" "),
                ));
            }
        }
    }
    table
}

fn group_cell(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

fn names_cell(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

fn leader_election_reason(call: &Calls) -> String {
    format!("{} (Role in the operator's namespace)", call.why)
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
