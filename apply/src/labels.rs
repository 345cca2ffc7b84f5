//! Standard labels the engine stamps on every child, and Kubernetes label syntax checks.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by`: always [`MANAGED_BY_VALUE`] on our children.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`]; also the default label selector of the engine's watches.
pub const MANAGED_BY_VALUE: &str = "fieldwise";
/// `app.kubernetes.io/instance`: the owner's name.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/name`: the owner's kind lowercased, or a name the controller chose.
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/component`: the component name given with each desired object.
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// The owner's uid: finds children (cluster-scoped ones too) for prune and finalizer cleanup.
pub const OWNER_UID: &str = "fieldwise.dev/owner-uid";
/// The owner's namespace, set on cluster-scoped children of a namespaced owner only, so that a
/// change of such a child can be mapped back to its owner (name comes from [`INSTANCE`]).
pub const OWNER_NAMESPACE: &str = "fieldwise.dev/owner-namespace";
/// The owner's kind and group (`FeatureStore.feast.dev`), set on cluster-scoped children only, so
/// that a change of such a child is mapped back to an owner of the right kind (two controllers may
/// own cluster-scoped children for owners of the same name and namespace).
pub const OWNER_KIND: &str = "fieldwise.dev/owner-kind";
/// Marks a child several owners share deliberately (value [`SHARED_VALUE`]): it names no single
/// owner (no [`OWNER_UID`], no [`INSTANCE`]); its owners are its ownerReferences, none of them the
/// controller.
pub const SHARED: &str = "fieldwise.dev/shared";
/// Value of [`SHARED`].
pub const SHARED_VALUE: &str = "true";

/// The value of [`OWNER_KIND`] for an owner of this `apiVersion` and `kind`: `Kind.group`, or the
/// kind alone for the core group.
pub fn owner_kind_value(api_version: &str, kind: &str) -> String {
    match api_version.rsplit_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_owned(),
    }
}

/// The label selector every engine watch uses by default.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE}")
}

/// Why a label key or value is not acceptable to the API server.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    check_key(key)?;
    check_value(value).map_err(|why| format!("label {key:?}: value {value:?} {why}"))
}

/// Checks every label of a map.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    labels.iter().try_for_each(|(k, v)| check_label(k, v))
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns_subdomain(p)) {
        return Err(format!(
            "label key {key:?}: prefix must be a DNS subdomain (at most 253 characters)"
        ));
    }
    if name.is_empty() {
        return Err(format!("label key {key:?}: name part must not be empty"));
    }
    check_value(name).map_err(|why| format!("label key {key:?}: name part {why}"))
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and ending with
/// an alphanumeric character.
fn check_value(value: &str) -> Result<(), &'static str> {
    if value.len() > 63 {
        return Err("must be at most 63 characters");
    }
    if value.is_empty() {
        return Ok(());
    }
    let bytes = value.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok =
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(
            "must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric",
        )
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_labels() {
        assert!(check_label(MANAGED_BY, MANAGED_BY_VALUE).is_ok());
        assert!(check_label("feast.dev/name", "sample").is_ok());
        assert!(check_label("plain", "").is_ok());
        assert!(check_label(OWNER_UID, "6f1c2a3b-1111-2222-3333-444455556666").is_ok());
    }

    #[test]
    fn rejects_bad_labels_with_reason() {
        let long = "a".repeat(64);
        assert!(check_label("k", &long).unwrap_err().contains("63"));
        assert!(check_label("k", "-a").is_err());
        assert!(check_label("k", "a b").is_err());
        assert!(
            check_label("Bad_Prefix/x", "v")
                .unwrap_err()
                .contains("prefix")
        );
        assert!(
            check_label("example.com/", "v")
                .unwrap_err()
                .contains("empty")
        );
        assert!(check_label(&long, "v").is_err());
    }
}
