//! Names and labels of the objects a FeatureStore owns, as the Feast operator gives them.

use std::collections::BTreeMap;

use super::graph::{cluster_object_name, cron_job_exec_binding_name};

/// The label every FeatureStore child carries and every selector matches on: `feast.dev/name: <cr>`.
pub const NAME_LABEL: &str = "feast.dev/name";
/// The label naming which Feast service an object belongs to.
pub const SERVICE_TYPE_LABEL: &str = "feast.dev/service-type";

/// The Feast services and other parts a FeatureStore's children belong to; also the engine's component names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceType {
    Registry,
    Online,
    Offline,
    Ui,
    Client,
    CronJob,
    Authorization,
}

impl ServiceType {
    /// Every part.
    pub const ALL: [ServiceType; 7] = [
        Self::Registry,
        Self::Online,
        Self::Offline,
        Self::Ui,
        Self::Client,
        Self::CronJob,
        Self::Authorization,
    ];

    /// The value of `feast.dev/service-type`, the container name and the name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Ui => "ui",
            Self::Client => "client",
            Self::CronJob => "cronjob",
            Self::Authorization => "authorization",
        }
    }
}

/// The base name of every child: `feast-<cr>`.
pub fn base_name(cr_name: &str) -> String {
    format!("feast-{cr_name}")
}

/// The name of a service-specific child: `feast-<cr>-<type>`.
pub fn service_name(cr_name: &str, service: ServiceType) -> String {
    format!("feast-{cr_name}-{}", service.as_str())
}

/// The selector of the feature-server pods (immutable on the Deployment): `{feast.dev/name: <cr>}`.
pub fn selector_labels(cr_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), cr_name.to_owned())])
}

/// The labels of a child that belongs to no single service (L0 without managed-by, which the engine adds).
pub fn base_labels(cr_name: &str) -> BTreeMap<String, String> {
    selector_labels(cr_name)
}

/// The labels of a child that belongs to one service (LT(type)).
pub fn service_labels(cr_name: &str, service: ServiceType) -> BTreeMap<String, String> {
    let mut labels = base_labels(cr_name);
    labels.insert(SERVICE_TYPE_LABEL.to_owned(), service.as_str().to_owned());
    labels
}

/// The string form of the pod selector, reported in `status.selector` for the scale subresource.
pub fn selector_string(cr_name: &str) -> String {
    format!("{NAME_LABEL}={cr_name}")
}

/// The rule Kubernetes checks the names of a kind against (kube-apiserver 1.33's validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// An RFC 1035 label of at most 63 characters: Services.
    Dns1035Label,
    /// An RFC 1123 label of at most 63 characters: volume names in a pod.
    Dns1123Label,
    /// An RFC 1123 subdomain of at most 253 characters: most kinds.
    Dns1123Subdomain,
    /// A subdomain of at most 52 characters: CronJobs (a Job's name adds up to 11 characters, and
    /// its pods carry it as a label value of at most 63).
    CronJob,
    /// A label value of at most 63 characters.
    LabelValue,
    /// RBAC names: any path segment (not `.` or `..`, no `/` or `%`), of any length.
    PathSegment,
}

impl NameRule {
    /// The longest name the rule allows, when it limits the length.
    pub fn max_length(self) -> Option<usize> {
        match self {
            Self::Dns1035Label | Self::Dns1123Label | Self::LabelValue => Some(63),
            Self::Dns1123Subdomain => Some(253),
            Self::CronJob => Some(52),
            Self::PathSegment => None,
        }
    }

    /// Why `name` breaks the rule, worded after kube-apiserver's messages; `None` when it does not.
    pub fn problem(self, name: &str) -> Option<String> {
        if let Some(max) = self.max_length()
            && name.len() > max
        {
            return Some(format!("must be no more than {max} characters"));
        }
        let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let label = |part: &str| {
            !part.is_empty()
                && part.chars().all(|c| lower_alnum(c) || c == '-')
                && part.starts_with(lower_alnum)
                && part.ends_with(lower_alnum)
        };
        let valid = match self {
            Self::Dns1035Label => label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
            Self::Dns1123Label => label(name),
            Self::Dns1123Subdomain | Self::CronJob => name.split('.').all(label),
            Self::LabelValue => {
                let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
                name.is_empty()
                    || (name.chars().all(inner)
                        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && name.ends_with(|c: char| c.is_ascii_alphanumeric()))
            }
            Self::PathSegment => {
                !matches!(name, "." | "..") && !name.contains('/') && !name.contains('%')
            }
        };
        (!valid).then(|| self.what().to_owned())
    }

    /// What the rule asks for, as kube-apiserver words it.
    fn what(self) -> &'static str {
        match self {
            Self::Dns1035Label => {
                "must be an RFC 1035 label: lower-case letters, digits and '-', starting with a letter"
            }
            Self::Dns1123Label => {
                "must be an RFC 1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
            }
            Self::Dns1123Subdomain | Self::CronJob => {
                "must be an RFC 1123 subdomain: lower-case letters, digits, '-' and '.'"
            }
            Self::LabelValue => {
                "must be a label value: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
            }
            Self::PathSegment => "may not be '.' or '..' and may not contain '/' or '%'",
        }
    }
}

/// A name fieldwise derives from a FeatureStore's name (and, for cluster-scoped objects, its
/// namespace), the kind it names and that kind's rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedName {
    /// The kind (or, for a label, `label <key>`).
    pub kind: &'static str,
    pub name: String,
    pub rule: NameRule,
    /// The part of the FeatureStore the object belongs to (its condition reports the problem).
    pub part: ServiceType,
    /// Whether the name contains the namespace (a cluster-scoped object's name).
    pub has_namespace: bool,
}

/// Every name fieldwise may derive from the FeatureStore `cr_name` in `namespace`, whatever its
/// spec (the spec decides which of these objects exist). Names the user chooses (custom Roles,
/// claims by `ref`, TLS Secrets) are not derived and not listed.
pub fn derived_names(cr_name: &str, namespace: &str) -> Vec<DerivedName> {
    use NameRule::{Dns1035Label, Dns1123Label, Dns1123Subdomain, LabelValue, PathSegment};
    use ServiceType::{Authorization, Client, Offline, Online, Registry, Ui};
    let base = base_name(cr_name);
    let service = |part| service_name(cr_name, part);
    let namespaced = |kind, name: String, rule, part| DerivedName {
        kind,
        name,
        rule,
        part,
        has_namespace: false,
    };
    let mut names = vec![
        namespaced("label value", cr_name.to_owned(), LabelValue, Online),
        namespaced("Deployment", base.clone(), Dns1123Subdomain, Online),
        namespaced("ServiceAccount", base.clone(), Dns1123Subdomain, Online),
        namespaced(
            "HorizontalPodAutoscaler",
            base.clone(),
            Dns1123Subdomain,
            Online,
        ),
        namespaced(
            "PodDisruptionBudget",
            base.clone(),
            Dns1123Subdomain,
            Online,
        ),
        namespaced(
            "Secret",
            format!("{base}-server-config"),
            Dns1123Subdomain,
            Online,
        ),
        namespaced("ConfigMap", service(Client), Dns1123Subdomain, Client),
        namespaced("ServiceMonitor", service(Online), Dns1123Subdomain, Online),
        namespaced(
            "CronJob",
            base.clone(),
            NameRule::CronJob,
            ServiceType::CronJob,
        ),
        namespaced(
            "ServiceAccount",
            service(ServiceType::CronJob),
            Dns1123Subdomain,
            ServiceType::CronJob,
        ),
        namespaced(
            "Role",
            service(ServiceType::CronJob),
            PathSegment,
            ServiceType::CronJob,
        ),
        namespaced(
            "RoleBinding",
            service(ServiceType::CronJob),
            PathSegment,
            ServiceType::CronJob,
        ),
        namespaced(
            "RoleBinding",
            cron_job_exec_binding_name(cr_name),
            PathSegment,
            ServiceType::CronJob,
        ),
        namespaced("Role", base.clone(), PathSegment, Authorization),
        namespaced("RoleBinding", base, PathSegment, Authorization),
    ];
    for part in [Online, Offline, Ui, Registry] {
        names.push(namespaced("Service", service(part), Dns1035Label, part));
    }
    names.push(namespaced(
        "Service",
        format!("{}-rest", service(Registry)),
        Dns1035Label,
        Registry,
    ));
    for part in [Online, Offline, Registry] {
        names.push(namespaced(
            "PersistentVolumeClaim",
            service(part),
            Dns1123Subdomain,
            part,
        ));
        names.push(namespaced("pod volume", service(part), Dns1123Label, part));
    }
    for suffix in ["token-review", "oidc-token-review"] {
        let name = cluster_object_name(cr_name, namespace, suffix);
        names.push(DerivedName {
            kind: "ClusterRoleBinding",
            name,
            rule: PathSegment,
            part: Authorization,
            has_namespace: true,
        });
    }
    names
}

/// A derived name the API server would refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameProblem {
    pub part: ServiceType,
    pub message: String,
}

/// The status condition's reason for a [`NameProblem`].
pub const INVALID_NAME_REASON: &str = "InvalidName";

/// The first derived name of `cr_name` in `namespace` that its kind does not allow, with a message
/// naming the object and its kind's rule, and, for a length, the longest FeatureStore name every
/// derived name fits with. The CRD refuses such names at creation; this catches FeatureStores
/// admitted without that rule (created before it, or under the Feast operator's CRD).
pub fn check_derived_names(cr_name: &str, namespace: &str) -> Result<(), NameProblem> {
    let names = derived_names(cr_name, namespace);
    let Some((derived, why)) = names.iter().find_map(|derived| {
        derived
            .rule
            .problem(&derived.name)
            .map(|why| (derived, why))
    }) else {
        return Ok(());
    };
    let mut message = format!(
        "the {} name {:?} derived from the FeatureStore's name {why}",
        derived.kind, derived.name
    );
    if derived
        .rule
        .max_length()
        .is_some_and(|max| derived.name.len() > max)
    {
        let longest = longest_name(&names, cr_name.len()).unwrap_or(0);
        message.push_str(&format!(
            " (it has {}): a FeatureStore name may have at most {longest} characters",
            derived.name.len()
        ));
    }
    message.push_str("; recreate the FeatureStore under another name");
    Err(NameProblem {
        part: derived.part,
        message,
    })
}

/// The longest FeatureStore name with which every name of `names` (derived from a name of
/// `cr_length` characters) stays within its kind's length limit.
fn longest_name(names: &[DerivedName], cr_length: usize) -> Option<usize> {
    names
        .iter()
        .filter_map(|derived| {
            let fixed = derived.name.len().saturating_sub(cr_length);
            derived
                .rule
                .max_length()
                .map(|max| max.saturating_sub(fixed))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_feast_operator() {
        assert_eq!(base_name("sample"), "feast-sample");
        assert_eq!(
            service_name("sample", ServiceType::Online),
            "feast-sample-online"
        );
        assert_eq!(
            service_name("sample", ServiceType::Client),
            "feast-sample-client"
        );
        assert_eq!(selector_string("sample"), "feast.dev/name=sample");
        assert_eq!(
            service_labels("sample", ServiceType::Registry),
            BTreeMap::from([
                ("feast.dev/name".to_owned(), "sample".to_owned()),
                ("feast.dev/service-type".to_owned(), "registry".to_owned()),
            ])
        );
    }

    /// The CRD's limit is the tightest of every namespaced derived name's limit.
    #[test]
    fn the_crd_name_limit_is_the_tightest_derived_limit() {
        let cr = "x";
        let tightest = derived_names(cr, "ns")
            .iter()
            .filter(|derived| !derived.has_namespace)
            .filter_map(|derived| {
                let fixed = derived.name.len() - cr.len();
                derived.rule.max_length().map(|max| max - fixed)
            })
            .min();
        assert_eq!(tightest, Some(fieldwise_api::v1::MAX_NAME_LENGTH));
        let longest = "a".repeat(fieldwise_api::v1::MAX_NAME_LENGTH);
        assert_eq!(check_derived_names(&longest, &"n".repeat(63)), Ok(()));
    }

    #[test]
    fn a_name_one_too_long_names_the_service_and_the_maximum() {
        let name = "a".repeat(fieldwise_api::v1::MAX_NAME_LENGTH + 1);
        let problem = check_derived_names(&name, "ns").expect_err("too long");
        assert_eq!(problem.part, ServiceType::Registry);
        assert_eq!(
            problem.message,
            format!(
                "the Service name \"feast-{name}-registry-rest\" derived from the FeatureStore's name \
                 must be no more than 63 characters (it has 64): a FeatureStore name may have at most \
                 43 characters; recreate the FeatureStore under another name"
            )
        );
    }

    /// The first name that breaks its limit is named; the maximum is the one every name fits.
    #[test]
    fn a_longer_name_names_the_first_child_and_the_overall_maximum() {
        let name = "a".repeat(50);
        let problem = check_derived_names(&name, "ns").expect_err("too long");
        assert_eq!(problem.part, ServiceType::CronJob);
        assert_eq!(
            problem.message,
            format!(
                "the CronJob name \"feast-{name}\" derived from the FeatureStore's name must be no \
                 more than 52 characters (it has 56): a FeatureStore name may have at most 43 \
                 characters; recreate the FeatureStore under another name"
            )
        );
    }

    #[test]
    fn a_dotted_name_breaks_the_service_names() {
        let problem = check_derived_names("a.b", "ns").expect_err("dotted");
        assert_eq!(problem.part, ServiceType::Online);
        assert!(
            problem.message.starts_with(
                "the Service name \"feast-a.b-online\" derived from the FeatureStore's name must be an RFC 1035 label"
            ),
            "{}",
            problem.message
        );
    }

    /// Cluster-scoped names carry the namespace, but RBAC names have no length limit: the longest
    /// namespace (63) with the longest admitted name still gives valid ClusterRoleBinding names.
    #[test]
    fn cluster_scoped_names_include_the_namespace_and_have_no_length_limit() {
        let names = derived_names("store", "team");
        let cluster: Vec<_> = names.iter().filter(|d| d.has_namespace).collect();
        assert_eq!(cluster.len(), 2, "the token-review and OIDC bindings");
        assert!(cluster.iter().all(|d| d.rule == NameRule::PathSegment));
        assert_eq!(cluster[0].name, "feast.team.store.token-review");
        assert_eq!(NameRule::PathSegment.problem(&"a".repeat(300)), None);
        assert!(NameRule::PathSegment.problem("a/b").is_some());
    }

    #[test]
    fn cluster_scoped_names_of_different_owners_never_collide() {
        // With dashes, namespace `a-b` / FeatureStore `c` and namespace `a` / `b-c` met.
        assert_ne!(
            cluster_object_name("c", "a-b", "token-review"),
            cluster_object_name("b-c", "a", "token-review")
        );
        assert_ne!(
            cluster_object_name("x", "ns", "oidc-token-review"),
            cluster_object_name("x-oidc", "ns", "token-review")
        );
    }

    #[test]
    fn every_child_name_of_the_graph_is_listed() {
        // The names `names.rs` builds for the graph's objects agree with the listed ones.
        let listed: Vec<String> = derived_names("s", "ns")
            .into_iter()
            .map(|d| d.name)
            .collect();
        for name in [
            base_name("s"),
            service_name("s", ServiceType::Client),
            service_name("s", ServiceType::CronJob),
            cluster_object_name("s", "ns", "token-review"),
            cluster_object_name("s", "ns", "oidc-token-review"),
            cron_job_exec_binding_name("s"),
            "feast-s-server-config".to_owned(),
            "feast-s-registry-rest".to_owned(),
        ] {
            assert!(listed.contains(&name), "{name} is not listed");
        }
    }
}
