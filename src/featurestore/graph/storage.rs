//! PersistentVolumeClaims fieldwise creates for file stores (`pvc.create`).

use std::collections::BTreeMap;

use fieldwise_api::v1::{FeatureStoreSpec, PvcCreate};
use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements},
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta},
};

use super::volumes::file_pvcs;
use crate::featurestore::names::{ServiceType, service_labels, service_name};

/// The storage requested when `pvc.create` names no size: offline 20Gi, online and registry 5Gi.
pub fn default_storage(service: ServiceType) -> &'static str {
    if service == ServiceType::Offline {
        "20Gi"
    } else {
        "5Gi"
    }
}

/// A claim for every file store whose PVC fieldwise creates. The CRD makes `pvc.create` immutable, so the
/// applied spec never changes after creation and the claim's immutable spec is never re-applied differently.
pub fn persistent_volume_claims(
    cr_name: &str,
    namespace: &str,
    applied: &FeatureStoreSpec,
) -> Vec<PersistentVolumeClaim> {
    file_pvcs(applied)
        .into_iter()
        .filter_map(|(service, pvc)| {
            pvc.create
                .as_ref()
                .map(|create| claim(cr_name, namespace, service, create))
        })
        .collect()
}

fn claim(
    cr_name: &str,
    namespace: &str,
    service: ServiceType,
    create: &PvcCreate,
) -> PersistentVolumeClaim {
    let mut resources = create.resources.clone().unwrap_or_default();
    let requests = resources.requests.get_or_insert_with(BTreeMap::new);
    requests
        .entry("storage".to_owned())
        .or_insert_with(|| Quantity(default_storage(service).to_owned()));
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(service_name(cr_name, service)),
            namespace: Some(namespace.to_owned()),
            labels: Some(service_labels(cr_name, service)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(
                create
                    .access_modes
                    .clone()
                    .unwrap_or_else(|| vec!["ReadWriteOnce".to_owned()]),
            ),
            storage_class_name: create.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                limits: resources.limits,
                requests: resources.requests,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
