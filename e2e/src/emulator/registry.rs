//! The resource types the emulator serves: the built-ins, plus one entry per served version of every
//! established CustomResourceDefinition.

use std::sync::{Arc, RwLock};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceSubresourceScale, JSONSchemaProps,
};
use serde_json::Value;

use crate::ssa::TypeSchema;

/// Where a scale subresource reads and writes its numbers (JSON paths such as `.spec.replicas`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What a CRD tells about one served version of its custom resource.
#[derive(Debug, Clone)]
pub struct CustomVersion {
    /// The CRD's `metadata.name` (`widgets.example.com`).
    pub crd_name: String,
    /// `openAPIV3Schema` of this version, typed (`None` when absent or not decodable).
    pub props: Option<Arc<JSONSchemaProps>>,
    /// The same schema as server-side apply sees it.
    pub type_schema: Arc<TypeSchema>,
    /// The scale subresource as declared (for validation of the replica paths).
    pub scale: Option<CustomResourceSubresourceScale>,
    /// `additionalPrinterColumns` of this version.
    pub printer_columns: Vec<Value>,
}

/// One served resource at one group/version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// A `/status` subresource exists.
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// Set for custom resources.
    pub custom: Option<CustomVersion>,
}

impl ResourceType {
    /// `deployments.apps`, or `configmaps` for the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    /// The storage identity: objects are shared by every version of one group/resource.
    /// Both Event views (core and events.k8s.io) share the core storage ([`super::events`]).
    pub fn storage_key(&self) -> (String, String) {
        (
            super::events::storage_group(self).to_owned(),
            self.plural.clone(),
        )
    }
}

struct Builtin {
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
}

/// `b()` flags: listed in the `all` category, has `/status`, has `/scale`.
const ALL: u8 = 1;
const STATUS: u8 = 2;
const SCALE: u8 = 4;

const fn b(
    gv: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    flags: u8,
) -> Builtin {
    Builtin {
        gv,
        plural,
        kind,
        namespaced,
        short,
        all: flags & ALL != 0,
        status: flags & STATUS != 0,
        scale: flags & SCALE != 0,
    }
}

const BUILTINS: &[Builtin] = &[
    b("v1", "namespaces", "Namespace", false, &["ns"], STATUS),
    b("v1", "configmaps", "ConfigMap", true, &["cm"], 0),
    b("v1", "secrets", "Secret", true, &[], 0),
    b("v1", "services", "Service", true, &["svc"], ALL | STATUS),
    b("v1", "serviceaccounts", "ServiceAccount", true, &["sa"], 0),
    b(
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        STATUS,
    ),
    b("v1", "pods", "Pod", true, &["po"], ALL | STATUS),
    b("v1", "events", "Event", true, &["ev"], 0),
    b(
        "apps/v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        ALL | STATUS | SCALE,
    ),
    b(
        "apps/v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        ALL | STATUS | SCALE,
    ),
    b(
        "apps/v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        ALL | STATUS | SCALE,
    ),
    b("batch/v1", "jobs", "Job", true, &[], ALL | STATUS),
    b(
        "batch/v1",
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
        ALL | STATUS,
    ),
    b(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        ALL | STATUS,
    ),
    b(
        "policy/v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        STATUS,
    ),
    b(
        "rbac.authorization.k8s.io/v1",
        "roles",
        "Role",
        true,
        &[],
        0,
    ),
    b(
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        0,
    ),
    b(
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        0,
    ),
    b(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        0,
    ),
    b(
        "networking.k8s.io/v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        STATUS,
    ),
    b("coordination.k8s.io/v1", "leases", "Lease", true, &[], 0),
    b("events.k8s.io/v1", "events", "Event", true, &["ev"], 0),
    b(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        STATUS,
    ),
];

fn split_gv(gv: &str) -> (String, String) {
    match gv.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), gv.to_string()),
    }
}

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|bi| {
            let (group, version) = split_gv(bi.gv);
            let scale = bi.scale.then(|| ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: Some(".status.selector".into()),
            });
            Arc::new(ResourceType {
                group,
                version,
                plural: bi.plural.into(),
                singular: bi.kind.to_lowercase(),
                kind: bi.kind.into(),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: if bi.all { vec!["all".into()] } else { vec![] },
                status: bi.status,
                scale,
                custom: None,
            })
        })
        .collect()
}

/// Every type currently served. Custom types come and go with their CRDs.
pub struct Registry {
    types: RwLock<Vec<Arc<ResourceType>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            types: RwLock::new(builtin_types()),
        }
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceType>>> {
        // A poisoned lock only means a panicking writer; the list itself is always consistent.
        self.types.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().clone()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type serving `apiVersion`/`kind` (used to resolve owner references).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (g, v) = split_gv(api_version);
        self.read()
            .iter()
            .find(|t| t.group == g && t.version == v && t.kind == kind)
            .cloned()
    }

    /// Any version of a group/resource (for storage-level work such as garbage collection).
    pub fn find_any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    /// Replaces every type contributed by the CRD `crd_name` with `types`.
    pub fn set_custom(&self, crd_name: &str, types: Vec<ResourceType>) {
        let mut w = self.types.write().unwrap_or_else(|p| p.into_inner());
        w.retain(|t| t.custom.as_ref().is_none_or(|c| c.crd_name != crd_name));
        w.extend(types.into_iter().map(Arc::new));
    }

    pub fn remove_custom(&self, crd_name: &str) {
        self.set_custom(crd_name, Vec::new());
    }

    /// Whether any type of the named API group is served (`""` is the core group).
    pub fn serves_group(&self, group: &str) -> bool {
        self.read().iter().any(|t| t.group == group)
    }

    /// Group versions in serving order: `(group, [versions])`, core first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.read().iter() {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }
}

pub(crate) fn split_api_version(api_version: &str) -> (String, String) {
    split_gv(api_version)
}
