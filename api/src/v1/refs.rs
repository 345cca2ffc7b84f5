//! Small reference types shared by many FeatureStore fields.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to an object (Secret or ConfigMap) in the FeatureStore's namespace.
///
/// Mirrors `core/v1 LocalObjectReference` as the Feast CRD renders it: `name` is optional and defaults
/// to `""`, and the reference is atomic for server-side apply. k8s-openapi's type makes `name`
/// required, which would reject manifests the Feast CRD accepts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct LocalObjectReference {
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
}

impl LocalObjectReference {
    /// A reference to the object called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}
