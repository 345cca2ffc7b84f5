//! The kind registry: one list of the kinds a controller manages. It drives the engine's watches,
//! which kinds are pruned, which workloads carry `spec.replicas`, and the RBAC rules the
//! controller's ServiceAccount needs.

use std::collections::BTreeMap;

use crate::immutable::{ImmutableRule, Remedy, default_rules};
use k8s_openapi::api::rbac::v1::PolicyRule;

use kube::{
    Resource,
    core::{ClusterResourceScope, NamespaceResourceScope},
    discovery::ApiResource,
};

/// Whether a kind lives in namespaces or at cluster level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Namespaced: children get a controller ownerReference.
    Namespaced,
    /// Cluster-scoped: children are found by the owner-uid label and removed by a finalizer.
    Cluster,
}

/// One kind the engine may apply.
#[derive(Clone, Debug)]
pub struct KindSpec {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
    /// Whether objects of this kind that leave the desired graph are deleted.
    pub prunable: bool,
    /// Whether the kind is a workload whose `spec.replicas` an autoscaler may own, so that
    /// [`crate::ReplicasPolicy`] applies to it.
    pub has_replicas: bool,
    /// Its immutable fields and what the engine does when the desired body changes one (see
    /// [`crate::immutable::default_rules`] for the built-in kinds' defaults).
    pub immutable: Vec<ImmutableRule>,
}

impl KindSpec {
    /// A namespaced built-in or derived kind, prunable, without replicas handling.
    pub fn namespaced<K>() -> Self
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        Self::dynamic(ApiResource::erase::<K>(&()), Scope::Namespaced)
    }

    /// A cluster-scoped built-in or derived kind, prunable, without replicas handling.
    pub fn cluster<K>() -> Self
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>,
    {
        Self::dynamic(ApiResource::erase::<K>(&()), Scope::Cluster)
    }

    /// A kind known only at run time (e.g. a third-party CRD such as a KEDA ScaledObject).
    pub fn dynamic(resource: ApiResource, scope: Scope) -> Self {
        let immutable = default_rules(&resource.group, &resource.kind);
        Self {
            resource,
            scope,
            prunable: true,
            has_replicas: false,
            immutable,
        }
    }

    /// Sets the remedy for a change of one immutable field, replacing the default rule for the
    /// same field.
    pub fn with_immutable(mut self, rule: ImmutableRule) -> Self {
        self.immutable.retain(|r| r.field != rule.field);
        self.immutable.push(rule);
        self
    }

    /// Marks the kind as a workload whose `spec.replicas` may be released to an autoscaler.
    pub fn with_replicas(mut self) -> Self {
        self.has_replicas = true;
        self
    }

    /// Marks the kind as never pruned (objects leaving the graph are left in place).
    pub fn not_prunable(mut self) -> Self {
        self.prunable = false;
        self
    }

    /// Whether this spec describes the given `apiVersion` and `kind`.
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        self.resource.api_version == api_version && self.resource.kind == kind
    }
}

/// The owner kind of a controller: needed only for RBAC generation.
#[derive(Clone, Debug)]
struct OwnerKind {
    resource: ApiResource,
}

/// All kinds a controller manages.
#[derive(Clone, Debug, Default)]
pub struct KindRegistry {
    kinds: Vec<KindSpec>,
    owners: Vec<OwnerKind>,
}

impl KindRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a child kind. A kind registered twice replaces the earlier entry.
    pub fn with(mut self, spec: KindSpec) -> Self {
        self.kinds
            .retain(|k| !k.matches(&spec.resource.api_version, &spec.resource.kind));
        self.kinds.push(spec);
        self
    }

    /// Adds an owner kind (the controller's custom resource) so that [`Self::policy_rules`]
    /// covers reading it, its `/status` writes and setting `blockOwnerDeletion` on children
    /// (which needs `update` on the owner's `finalizers` subresource).
    pub fn with_owner<K: Resource<DynamicType = ()>>(mut self) -> Self {
        self.owners.push(OwnerKind {
            resource: ApiResource::erase::<K>(&()),
        });
        self
    }

    /// The registered child kinds, in registration order.
    pub fn kinds(&self) -> &[KindSpec] {
        &self.kinds
    }

    /// The resource of a registered owner kind.
    pub fn owner_resource(&self, api_version: &str, kind: &str) -> Option<&ApiResource> {
        self.owners
            .iter()
            .map(|owner| &owner.resource)
            .find(|r| r.api_version == api_version && r.kind == kind)
    }

    /// Adds every kind and owner of `other`. A kind both register is kept once (the later
    /// registration wins, as with [`Self::with`]), so two controllers never watch or cache one
    /// kind twice.
    pub fn merge(mut self, other: KindRegistry) -> Self {
        for kind in other.kinds {
            self = self.with(kind);
        }
        for owner in other.owners {
            if self
                .owner_resource(&owner.resource.api_version, &owner.resource.kind)
                .is_none()
            {
                self.owners.push(owner);
            }
        }
        self
    }

    /// The child kinds of one scope; the owner kinds stay with the namespaced ones.
    pub fn only(mut self, scope: Scope) -> Self {
        self.kinds.retain(|kind| kind.scope == scope);
        if scope == Scope::Cluster {
            self.owners.clear();
        }
        self
    }

    /// Looks a child kind up by `apiVersion` and `kind`.
    pub fn find(&self, api_version: &str, kind: &str) -> Option<&KindSpec> {
        self.kinds.iter().find(|k| k.matches(api_version, kind))
    }

    /// The RBAC rules the engine needs, one rule per API group and verb set, sorted.
    ///
    /// Child kinds: `get list watch` (caches), `create patch` (server-side apply of a missing
    /// object needs `create`), and `delete` when the kind is prunable, cluster-scoped (finalizer
    /// cleanup) or recreated on immutable changes (a Job, a StatefulSet). Owner kinds: `get list watch patch`
    /// (the finalizer is a JSON patch), `patch` on `status` (server-side apply), and `update` on
    /// `finalizers`, which the API server checks for `blockOwnerDeletion`. Nothing is ever PUT.
    pub fn policy_rules(&self) -> Vec<PolicyRule> {
        let mut grouped: BTreeMap<(String, Vec<&'static str>), Vec<String>> = BTreeMap::new();
        let mut add = |group: &str, resource: String, verbs: Vec<&'static str>| {
            grouped
                .entry((group.to_string(), verbs))
                .or_default()
                .push(resource);
        };
        for kind in &self.kinds {
            let mut verbs = vec!["create", "get", "list", "patch", "watch"];
            let recreatable = kind.immutable.iter().any(|rule| {
                matches!(
                    rule.remedy,
                    Remedy::Recreate | Remedy::RecreateOrphaningDependents
                )
            });
            if kind.prunable || kind.scope == Scope::Cluster || recreatable {
                verbs.insert(1, "delete");
            }
            add(&kind.resource.group, kind.resource.plural.clone(), verbs);
        }
        for owner in &self.owners {
            let r = &owner.resource;
            add(
                &r.group,
                r.plural.clone(),
                vec!["get", "list", "patch", "watch"],
            );
            add(&r.group, format!("{}/status", r.plural), vec!["patch"]);
            add(&r.group, format!("{}/finalizers", r.plural), vec!["update"]);
        }
        grouped
            .into_iter()
            .map(|((group, verbs), mut resources)| {
                resources.sort();
                resources.dedup();
                PolicyRule {
                    api_groups: Some(vec![group]),
                    resources: Some(resources),
                    verbs: verbs.into_iter().map(String::from).collect(),
                    ..PolicyRule::default()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::Job,
        core::v1::{ConfigMap, Secret, Service},
        rbac::v1::ClusterRole,
    };

    fn rule_for<'a>(rules: &'a [PolicyRule], resource: &str) -> &'a PolicyRule {
        rules
            .iter()
            .find(|r| {
                r.resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource))
            })
            .unwrap_or_else(|| panic!("no rule for {resource}"))
    }

    #[test]
    fn rules_cover_apply_watch_and_prune() {
        let registry = KindRegistry::new()
            .with(KindSpec::namespaced::<Deployment>().with_replicas())
            .with(KindSpec::namespaced::<ConfigMap>())
            .with(KindSpec::namespaced::<Secret>().not_prunable())
            .with(KindSpec::namespaced::<Service>().not_prunable())
            .with(KindSpec::namespaced::<Job>().not_prunable())
            .with(KindSpec::cluster::<ClusterRole>());
        let rules = registry.policy_rules();
        let deploy = rule_for(&rules, "deployments");
        assert_eq!(
            deploy.api_groups.as_deref(),
            Some(&["apps".to_string()][..])
        );
        assert_eq!(
            deploy.verbs,
            ["create", "delete", "get", "list", "patch", "watch"]
        );
        let core = rule_for(&rules, "configmaps");
        assert_eq!(core.api_groups.as_deref(), Some(&[String::new()][..]));
        assert_eq!(
            rule_for(&rules, "secrets").verbs,
            ["create", "get", "list", "patch", "watch"]
        );
        // Never pruned, but recreated when its clusterIP must change.
        assert!(
            rule_for(&rules, "services")
                .verbs
                .contains(&"delete".to_string())
        );
        assert!(
            rule_for(&rules, "jobs")
                .verbs
                .contains(&"delete".to_string())
        );
        assert!(
            rule_for(&rules, "clusterroles")
                .verbs
                .contains(&"delete".to_string())
        );
    }

    /// The owner is read, patched (finalizer) and status-applied, never PUT; `update` is only
    /// on `finalizers`, where the API server checks it for `blockOwnerDeletion`.
    #[test]
    fn owner_rules_have_no_update_but_on_finalizers() {
        let rules = KindRegistry::new()
            .with_owner::<StatefulSet>()
            .policy_rules();
        assert_eq!(
            rule_for(&rules, "statefulsets").verbs,
            ["get", "list", "patch", "watch"]
        );
        assert_eq!(rule_for(&rules, "statefulsets/status").verbs, ["patch"]);
        assert_eq!(
            rule_for(&rules, "statefulsets/finalizers").verbs,
            ["update"]
        );
    }

    #[test]
    fn registering_twice_replaces() {
        let registry = KindRegistry::new()
            .with(KindSpec::namespaced::<Deployment>())
            .with(KindSpec::namespaced::<Deployment>().with_replicas());
        assert_eq!(registry.kinds().len(), 1);
        assert!(
            registry
                .find("apps/v1", "Deployment")
                .is_some_and(|k| k.has_replicas)
        );
        assert!(registry.find("v1", "Deployment").is_none());
    }
}
