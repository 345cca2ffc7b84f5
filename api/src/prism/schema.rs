//! Container transforms restoring what Kubernetes declares for the embedded core types (quantity
//! patterns, list and map types), as [`crate::v1`] does for the FeatureStore.

use schemars::Schema;

use crate::v1::k8s_schema::{self, fix_schema};

/// Types with a `resources` field (`core/v1 ResourceRequirements`).
pub(crate) fn resources(schema: &mut Schema) {
    fix_schema(schema, &[("resources", k8s_schema::resource_requirements)]);
}

/// Autoscaling blocks: `metrics` (`autoscaling/v2 MetricSpec`) and `behavior`.
pub(crate) fn autoscaling(schema: &mut Schema) {
    k8s_schema::autoscaling(schema);
}
