//! Resource quantities in the form the API server stores them.
//!
//! kube-apiserver parses every `resource.Quantity` field of a built-in kind and serves it in
//! canonical form (`cpu: 1000m` comes back as `1`, `memory: 1024Mi` as `1Gi`, a YAML number `1` as
//! the string `"1"`). The engine decides "in sync, no request" by comparing the desired body with
//! the stored object, so a desired body in any other spelling looks changed on every comparison
//! made from a fresh cache: one needless apply per object after each operator restart. Desired
//! bodies are therefore written canonically before they are compared or applied.
//!
//! The engine has no schema; [`canonicalize`] finds quantities by where they stand in built-in
//! kinds. Custom resources are left as written (their server stores what it is given).

pub(crate) use fieldwise_api::quantity::canonicalize;

/// Whether objects of `api_version` are built-in kinds, whose quantity fields the server
/// canonicalizes: the core group, groups without a dot (`apps`, `batch`, `autoscaling`, …) and
/// `*.k8s.io` groups. Custom resources' groups (`keda.sh`, `monitoring.coreos.com`) are not.
pub(crate) fn is_built_in(api_version: &str) -> bool {
    match api_version.split_once('/') {
        None => true,
        Some((group, _)) => !group.contains('.') || group.ends_with(".k8s.io"),
    }
}

#[cfg(test)]
mod tests {
    use super::is_built_in;

    #[test]
    fn built_in_groups() {
        for built_in in ["v1", "apps/v1", "autoscaling/v2", "networking.k8s.io/v1"] {
            assert!(is_built_in(built_in), "{built_in}");
        }
        for custom in [
            "keda.sh/v1alpha1",
            "monitoring.coreos.com/v1",
            "feast.dev/v1",
        ] {
            assert!(!is_built_in(custom), "{custom}");
        }
    }
}
