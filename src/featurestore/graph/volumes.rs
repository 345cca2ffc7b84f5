//! Volumes of the feature-server pod and where each is mounted (spec §2.1 "Volumes").

use fieldwise_api::v1::{FeatureStoreSpec, PvcConfig};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource,
    SecretVolumeSource, Volume, VolumeMount,
};

use super::servers::{Server, ServerTls};
use crate::featurestore::names::{ServiceType, service_name};

/// Where file stores live when they have no PVC.
pub const FEAST_DATA_DIR: &str = "/feast-data";
/// Where the remote registry's CA certificate ConfigMap is mounted.
pub const REMOTE_REGISTRY_TLS_DIR: &str = "/tls/registry/";
/// Where the OIDC provider's CA certificate is mounted.
pub const OIDC_CA_PATH: &str = "/etc/pki/tls/oidc-ca/ca.crt";

/// The pod's volumes and where the operator mounts them, in the Feast operator's order (so a
/// Deployment it made keeps its volume lists when fieldwise takes it over): TLS material, the OIDC
/// CA, the claims (registry, offline, online), `feast-data`, then the user's volumes.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    pub volumes: Vec<Volume>,
    /// TLS mounts (registry, offline, online, ui), each with the only server container it goes to
    /// (`None`: every container, as the remote registry's CA). Init containers get all of them.
    tls_mounts: Vec<(Option<ServiceType>, VolumeMount)>,
    /// Mounts of every container after the TLS ones: the OIDC CA, the claims, `feast-data`.
    shared_mounts: Vec<VolumeMount>,
}

impl PodVolumes {
    /// The operator's mounts of a server's container (after the server's own `volumeMounts`).
    pub fn server_mounts(&self, service: ServiceType) -> Vec<VolumeMount> {
        let tls = self
            .tls_mounts
            .iter()
            .filter(|(only, _)| only.is_none_or(|only| only == service));
        tls.map(|(_, mount)| mount.clone())
            .chain(self.shared_mounts.iter().cloned())
            .collect()
    }

    /// The operator's mounts of each init container: every TLS mount, then the shared ones.
    pub fn init_mounts(&self) -> Vec<VolumeMount> {
        self.tls_mounts
            .iter()
            .map(|(_, mount)| mount.clone())
            .chain(self.shared_mounts.iter().cloned())
            .collect()
    }
}

/// The persistent volume claims of the file stores: (service, claim name, mount path).
pub fn pvc_mounts(cr_name: &str, applied: &FeatureStoreSpec) -> Vec<(ServiceType, String, String)> {
    file_pvcs(applied)
        .into_iter()
        .map(|(service, pvc)| {
            let claim = match pvc.pvc_ref.as_ref() {
                Some(existing) => existing.name.clone(),
                None => service_name(cr_name, service),
            };
            (service, claim, pvc.mount_path.clone())
        })
        .collect()
}

/// The file-persistence PVC settings of the registry, offline store and online store, in that order
/// (the Feast operator's order of its server types).
pub fn file_pvcs(applied: &FeatureStoreSpec) -> Vec<(ServiceType, &PvcConfig)> {
    let Some(services) = applied.services.as_ref() else {
        return Vec::new();
    };
    let offline = services
        .offline_store
        .as_ref()
        .and_then(|s| s.persistence.as_ref())
        .and_then(|p| p.file.as_ref());
    let online = services
        .online_store
        .as_ref()
        .and_then(|s| s.persistence.as_ref())
        .and_then(|p| p.file.as_ref());
    let registry = services
        .registry
        .as_ref()
        .and_then(|r| r.local.as_ref())
        .and_then(|l| l.persistence.as_ref())
        .and_then(|p| p.file.as_ref());
    [
        (ServiceType::Registry, registry.and_then(|f| f.pvc.as_ref())),
        (ServiceType::Offline, offline.and_then(|f| f.pvc.as_ref())),
        (ServiceType::Online, online.and_then(|f| f.pvc.as_ref())),
    ]
    .into_iter()
    .filter_map(|(service, pvc)| pvc.map(|pvc| (service, pvc)))
    .collect()
}

/// Builds the pod's volumes and the operator's mounts; user volumes come last.
pub fn pod_volumes(
    cr_name: &str,
    applied: &FeatureStoreSpec,
    servers: &[Server<'_>],
) -> PodVolumes {
    let mut pod = PodVolumes::default();
    add_tls(&mut pod, applied, servers);
    if let Some((config_map, key)) = oidc_ca(applied) {
        pod.volumes
            .push(config_map_volume("oidc-ca-cert", config_map));
        pod.shared_mounts.push(VolumeMount {
            sub_path: Some(key.to_owned()),
            ..mount("oidc-ca-cert", OIDC_CA_PATH, true)
        });
    }
    let pvcs = pvc_mounts(cr_name, applied);
    for (service, claim, mount_path) in &pvcs {
        let volume_name = service_name(cr_name, *service);
        pod.volumes.push(Volume {
            name: volume_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        pod.shared_mounts
            .push(mount(&volume_name, mount_path, false));
    }
    // Every store without a PVC (configured or not) keeps its files here.
    if pvcs.len() < 3 {
        pod.volumes.push(Volume {
            name: "feast-data".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        pod.shared_mounts
            .push(mount("feast-data", FEAST_DATA_DIR, false));
    }
    if let Some(user_volumes) = applied.services.as_ref().and_then(|s| s.volumes.as_ref()) {
        pod.volumes.extend(user_volumes.iter().cloned());
    }
    pod
}

/// The TLS volumes and mounts, registry first (a local registry server's own Secret, mounted in its
/// container, or a remote registry's CA, mounted in every container), then offline, online and ui.
fn add_tls(pod: &mut PodVolumes, applied: &FeatureStoreSpec, servers: &[Server<'_>]) {
    if let Some(config_map) = remote_registry_ca(applied) {
        pod.volumes
            .push(config_map_volume("registry-tls", config_map));
        let mount = mount("registry-tls", REMOTE_REGISTRY_TLS_DIR, true);
        pod.tls_mounts.push((None, mount));
    }
    let order = [
        ServiceType::Registry,
        ServiceType::Offline,
        ServiceType::Online,
        ServiceType::Ui,
    ];
    for service in order {
        let server = servers.iter().find(|server| server.service == service);
        if let Some(tls) = server.and_then(|server| server.tls.as_ref()) {
            pod.volumes
                .push(secret_volume(&tls_volume_name(service), tls));
            pod.tls_mounts.push((Some(service), tls_mount(service)));
        }
    }
}

/// The mount of a server's own TLS Secret: in that server's container and the init containers.
fn tls_mount(service: ServiceType) -> VolumeMount {
    mount(
        &tls_volume_name(service),
        &ServerTls::mount_dir(service),
        true,
    )
}

fn tls_volume_name(service: ServiceType) -> String {
    format!("{}-tls", service.as_str())
}

fn remote_registry_ca(applied: &FeatureStoreSpec) -> Option<&str> {
    let remote = applied
        .services
        .as_ref()?
        .registry
        .as_ref()?
        .remote
        .as_ref()?;
    Some(remote.tls.as_ref()?.config_map_ref.name.as_str())
}

fn oidc_ca(applied: &FeatureStoreSpec) -> Option<(&str, &str)> {
    let ca = applied
        .authz
        .as_ref()?
        .oidc
        .as_ref()?
        .ca_cert_config_map
        .as_ref()?;
    Some((
        ca.name.as_str(),
        ca.key.as_deref().unwrap_or("ca-bundle.crt"),
    ))
}

fn secret_volume(name: &str, tls: &ServerTls) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(tls.secret_name.clone()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn config_map_volume(name: &str, config_map: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}
