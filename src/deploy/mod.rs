//! How fieldwise is installed: least-privilege RBAC, the operator Deployment, the kustomize install and the
//! OLM bundle, all generated from Rust so that they follow the kind registry and cannot drift apart.

pub mod files;
pub mod manager;
pub mod olm;
pub mod rbac;

use std::collections::BTreeMap;

/// The operator's name: ServiceAccount, Deployment, Lease prefix, OLM package.
pub const OPERATOR: &str = "fieldwise";
/// The namespace the kustomize install uses.
pub const NAMESPACE: &str = "fieldwise-system";
/// The operator image repository; the tag is the crate version.
pub const IMAGE_REPOSITORY: &str = "ghcr.io/fieldwise/fieldwise";

/// The operator image of this release.
pub fn operator_image(version: &str) -> String {
    format!("{IMAGE_REPOSITORY}:{version}")
}

/// Labels on everything the install creates.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), OPERATOR.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), OPERATOR.to_owned()),
    ])
}

/// Objects as multi-document YAML, each document starting with `---`, after a header comment.
pub fn to_yaml_documents<T: serde::Serialize>(
    header: &str,
    objects: &[T],
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object)?);
    }
    Ok(out)
}
