//! Defaults the controller writes into `status.applied`, and values derived from the spec.
//!
//! `status.applied` is the spec with every default filled in (Feast calls these "applied defaults"):
//! the controller builds all objects from it, never from the raw spec. Everything here is pure.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::VolumeResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};

use super::{
    AuthzConfig, CronJobContainerConfigs, FeastCronJob, FeastInitOptions, FeastProjectDir,
    FeatureStoreServices, FeatureStoreSpec, KubernetesAuthz, LineageStoreType,
    OfflineStoreFilePersistence, OfflineStoreFileType, OfflineStorePersistence, OnlineStore,
    OnlineStoreFilePersistence, OnlineStorePersistence, PvcConfig, RegistryFilePersistence,
    RegistryPersistence, SecretKeyNames, ServerConfigs, TlsConfigs,
};

/// The Feast version fieldwise's defaults and `status.feastVersion` correspond to.
pub const FEAST_VERSION: &str = "0.66.0";
/// Feature-server image used when neither the spec nor `RELATED_IMAGE_FEATURE_SERVER` names one.
pub const DEFAULT_FEATURE_SERVER_IMAGE: &str = "quay.io/feastdev/feature-server:0.66.0";
/// CronJob image used when neither the spec nor `RELATED_IMAGE_CRON_JOB` names one.
pub const DEFAULT_CRON_JOB_IMAGE: &str = "quay.io/openshift/origin-cli:4.17";
/// Mount path of the ephemeral `feast-data` volume used by stores without a PVC.
pub const EPHEMERAL_DATA_PATH: &str = "/feast-data";
/// Repository directory under the project directory when git does not name one.
pub const DEFAULT_FEATURE_REPO_PATH: &str = "feature_repo";

const ONLINE_STORE_FILE: &str = "online_store.db";
const REGISTRY_FILE: &str = "registry.db";
const OFFLINE_STORAGE_REQUEST: &str = "20Gi";
const ONLINE_STORAGE_REQUEST: &str = "5Gi";
const REGISTRY_STORAGE_REQUEST: &str = "5Gi";
const DEFAULT_ACCESS_MODE: &str = "ReadWriteOnce";
const DEFAULT_TLS_CRT: &str = "tls.crt";
const DEFAULT_TLS_KEY: &str = "tls.key";
const CRON_JOB_DEFAULT_SCHEDULE: &str = "@yearly";
const CRON_JOB_DEFAULT_CONCURRENCY: &str = "Replace";
const CRON_JOB_DEFAULT_DEADLINE_SECONDS: i64 = 5;
const CRON_JOB_DEFAULT_COMMANDS: [&str; 2] = [
    "feast apply",
    "feast materialize-incremental $(date -u +'%Y-%m-%dT%H:%M:%S')",
];

/// What the defaults depend on beyond the spec itself. A `None` leaves that default unapplied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultsContext {
    /// The FeatureStore's namespace (default of `registry.remote.feastRef.namespace`).
    pub namespace: Option<String>,
    /// The CronJob image: `RELATED_IMAGE_CRON_JOB` from the operator's environment, else
    /// [`DEFAULT_CRON_JOB_IMAGE`].
    pub cron_job_image: Option<String>,
    /// The feature-server image: `RELATED_IMAGE_FEATURE_SERVER` from the operator's environment,
    /// else [`DEFAULT_FEATURE_SERVER_IMAGE`]. A packaged repository's image comes before it.
    pub feature_server_image: Option<String>,
}

impl DefaultsContext {
    /// Every default for a FeatureStore in `namespace`, with the built-in CronJob image.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: Some(namespace.into()),
            cron_job_image: Some(DEFAULT_CRON_JOB_IMAGE.into()),
            feature_server_image: Some(DEFAULT_FEATURE_SERVER_IMAGE.into()),
        }
    }
}

/// The spec with every default that depends on the spec alone. The feastRef namespace and the images
/// stay unset; [`applied_with`] fills those too and is what `status.applied` should hold.
pub fn applied(spec: &FeatureStoreSpec) -> FeatureStoreSpec {
    applied_with(spec, &DefaultsContext::default())
}

/// The spec with every default applied: the value of `status.applied`.
///
/// Also fills the CRD's own defaults (`replicas: 1`, ...), which the API server has normally applied
/// already, so the result does not depend on where the spec came from.
pub fn applied_with(spec: &FeatureStoreSpec, context: &DefaultsContext) -> FeatureStoreSpec {
    let mut applied = spec.clone();
    applied.replicas.get_or_insert(1);
    applied
        .feast_project_dir
        .get_or_insert_with(|| FeastProjectDir {
            init: Some(FeastInitOptions::default()),
            ..Default::default()
        });
    let server_image = default_server_image(&applied, context);
    apply_service_defaults(
        applied
            .services
            .get_or_insert_with(FeatureStoreServices::default),
        context,
    );
    if let (Some(services), Some(image)) = (applied.services.as_mut(), server_image) {
        apply_image_defaults(services, &image);
    }
    applied.authz.get_or_insert_with(|| AuthzConfig {
        kubernetes: Some(KubernetesAuthz::default()),
        ..Default::default()
    });
    apply_cron_job_defaults(
        applied.cron_job.get_or_insert_with(FeastCronJob::default),
        context,
    );
    apply_schema_defaults(&mut applied);
    applied
}

fn apply_service_defaults(services: &mut FeatureStoreServices, context: &DefaultsContext) {
    if let Some(registry) = services.registry.as_mut() {
        match registry.remote.as_mut() {
            None => {
                let local = registry.local.get_or_insert_with(Default::default);
                apply_registry_persistence_defaults(
                    local.persistence.get_or_insert_with(Default::default),
                );
                if let Some(server) = local.server.as_mut() {
                    server.grpc.get_or_insert(true);
                    apply_tls_defaults(&mut server.server);
                }
            }
            Some(remote) => {
                if let Some(feast_ref) = remote.feast_ref.as_mut()
                    && feast_ref.namespace.as_deref().is_none_or(str::is_empty)
                    && let Some(namespace) = &context.namespace
                {
                    feast_ref.namespace = Some(namespace.clone());
                }
            }
        }
    }
    if let Some(offline) = services.offline_store.as_mut() {
        apply_offline_persistence_defaults(
            offline.persistence.get_or_insert_with(Default::default),
        );
        if let Some(server) = offline.server.as_mut() {
            apply_tls_defaults(server);
        }
    }
    apply_online_defaults(
        services
            .online_store
            .get_or_insert_with(OnlineStore::default),
    );
    if let Some(ui) = services.ui.as_mut() {
        apply_tls_defaults(ui);
    }
    services.run_feast_apply_on_init.get_or_insert(true);
}

/// The image of a server that names none: the packaged repository's, else the context's (the
/// operator's default); `None` when neither is known.
fn default_server_image(spec: &FeatureStoreSpec, context: &DefaultsContext) -> Option<String> {
    let packaged = spec
        .feast_project_dir
        .as_ref()
        .and_then(|d| d.packaged.as_ref())
        .and_then(|p| p.image.clone())
        .filter(|image| !image.is_empty());
    packaged.or_else(|| context.feature_server_image.clone())
}

/// Names the image of every server that runs and names none, as the Feast operator's
/// `status.applied` does: what a client reads there is the image the container runs.
fn apply_image_defaults(services: &mut FeatureStoreServices, image: &str) {
    let local_registry = services
        .registry
        .as_mut()
        .filter(|registry| registry.remote.is_none())
        .and_then(|registry| registry.local.as_mut())
        .and_then(|local| local.server.as_mut())
        .map(|server| &mut server.server);
    let offline = services
        .offline_store
        .as_mut()
        .and_then(|offline| offline.server.as_mut());
    let online = services
        .online_store
        .as_mut()
        .filter(|online| online.disabled != Some(true))
        .and_then(|online| online.server.as_mut());
    let servers = [local_registry, offline, online, services.ui.as_mut()];
    for server in servers.into_iter().flatten() {
        server
            .container
            .image
            .get_or_insert_with(|| image.to_owned());
    }
}

fn apply_online_defaults(online: &mut OnlineStore) {
    let persistence = online
        .persistence
        .get_or_insert_with(OnlineStorePersistence::default);
    if persistence.store.is_none() {
        let file = persistence
            .file
            .get_or_insert_with(OnlineStoreFilePersistence::default);
        default_file_path(&mut file.path, file.pvc.as_ref(), ONLINE_STORE_FILE);
        if let Some(pvc) = file.pvc.as_mut() {
            apply_pvc_defaults(pvc, ONLINE_STORAGE_REQUEST);
        }
    }
    if online.disabled != Some(true) {
        apply_tls_defaults(online.server.get_or_insert_with(ServerConfigs::default));
    }
}

fn apply_offline_persistence_defaults(persistence: &mut OfflineStorePersistence) {
    if persistence.store.is_none() {
        let file = persistence
            .file
            .get_or_insert_with(OfflineStoreFilePersistence::default);
        file.file_type.get_or_insert(OfflineStoreFileType::Dask);
        if let Some(pvc) = file.pvc.as_mut() {
            apply_pvc_defaults(pvc, OFFLINE_STORAGE_REQUEST);
        }
    }
}

fn apply_registry_persistence_defaults(persistence: &mut RegistryPersistence) {
    if persistence.store.is_none() {
        let file = persistence
            .file
            .get_or_insert_with(RegistryFilePersistence::default);
        default_file_path(&mut file.path, file.pvc.as_ref(), REGISTRY_FILE);
        if let Some(pvc) = file.pvc.as_mut() {
            apply_pvc_defaults(pvc, REGISTRY_STORAGE_REQUEST);
        }
    }
}

/// A file store's default path: the bare file name on a PVC, else under the ephemeral data volume.
fn default_file_path(path: &mut Option<String>, pvc: Option<&PvcConfig>, file_name: &str) {
    if path.as_deref().is_none_or(str::is_empty) {
        *path = Some(match pvc {
            Some(_) => file_name.to_owned(),
            None => format!("{EPHEMERAL_DATA_PATH}/{file_name}"),
        });
    }
}

fn apply_pvc_defaults(pvc: &mut PvcConfig, storage_request: &str) {
    let Some(create) = pvc.create.as_mut() else {
        return;
    };
    if create.access_modes.as_ref().is_none_or(Vec::is_empty) {
        create.access_modes = Some(vec![DEFAULT_ACCESS_MODE.to_owned()]);
    }
    let resources = create
        .resources
        .get_or_insert_with(VolumeResourceRequirements::default);
    resources
        .requests
        .get_or_insert_with(BTreeMap::new)
        .entry("storage".to_owned())
        .or_insert_with(|| Quantity(storage_request.to_owned()));
}

/// TLS secret key names default only when TLS is actually on; with TLS off they are reported empty
/// (`secretKeyNames: {}`), as the Feast operator's status has them (a struct its JSON never omits).
fn apply_tls_defaults(server: &mut ServerConfigs) {
    let Some(tls) = server.tls.as_mut() else {
        return;
    };
    let on = is_tls(tls);
    let names = tls
        .secret_key_names
        .get_or_insert_with(SecretKeyNames::default);
    if !on {
        return;
    }
    for (name, default) in [
        (&mut names.tls_crt, DEFAULT_TLS_CRT),
        (&mut names.tls_key, DEFAULT_TLS_KEY),
    ] {
        if name.as_deref().is_none_or(str::is_empty) {
            *name = Some(default.to_owned());
        }
    }
}

/// Whether a server's TLS settings switch TLS on: a Secret is named and TLS is not disabled.
pub fn is_tls(tls: &TlsConfigs) -> bool {
    tls.disable != Some(true) && tls.secret_ref.is_some()
}

fn apply_cron_job_defaults(cron_job: &mut FeastCronJob, context: &DefaultsContext) {
    if cron_job.schedule.as_deref().is_none_or(str::is_empty) {
        cron_job.schedule = Some(CRON_JOB_DEFAULT_SCHEDULE.to_owned());
        cron_job.suspend.get_or_insert(true);
        if cron_job
            .concurrency_policy
            .as_deref()
            .is_none_or(str::is_empty)
        {
            cron_job.concurrency_policy = Some(CRON_JOB_DEFAULT_CONCURRENCY.to_owned());
        }
        cron_job
            .starting_deadline_seconds
            .get_or_insert(CRON_JOB_DEFAULT_DEADLINE_SECONDS);
    }
    let containers = cron_job
        .container_configs
        .get_or_insert_with(CronJobContainerConfigs::default);
    if containers
        .container
        .image
        .as_deref()
        .is_none_or(str::is_empty)
        && let Some(image) = &context.cron_job_image
    {
        containers.container.image = Some(image.clone());
    }
    if containers.commands.as_ref().is_none_or(Vec::is_empty) {
        containers.commands = Some(
            CRON_JOB_DEFAULT_COMMANDS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        );
    }
}

/// The defaults the CRD declares, so a spec that never went through the API server matches one that did.
fn apply_schema_defaults(spec: &mut FeatureStoreSpec) {
    if let Some(quality) = spec.data_quality_monitoring.as_mut() {
        quality.auto_baseline.get_or_insert(true);
    }
    if let Some(consumer) = spec.openlineage.as_mut().and_then(|o| o.consumer.as_mut()) {
        consumer.store_type.get_or_insert(LineageStoreType::Sql);
        consumer.retention_days.get_or_insert(30);
        consumer.retention_check_interval_hours.get_or_insert(6);
        if let Some(server) = consumer.lineage_server.as_mut() {
            server.replicas.get_or_insert(1);
        }
    }
}

/// Whether the FeatureStore runs more than one pod: `replicas > 1` or an autoscaler.
pub fn is_scaling(spec: &FeatureStoreSpec) -> bool {
    spec.replicas.unwrap_or(1) > 1 || autoscaling_enabled(spec)
}

/// Whether `services.scaling.autoscaling` is set, i.e. an HPA owns the replica count.
pub fn autoscaling_enabled(spec: &FeatureStoreSpec) -> bool {
    spec.services
        .as_ref()
        .and_then(|s| s.scaling.as_ref())
        .and_then(|s| s.autoscaling.as_ref())
        .is_some()
}

/// The replica count fieldwise sets on the feature-server Deployment: `None` when an autoscaler owns it
/// (fieldwise then leaves `spec.replicas` unowned), else `spec.replicas` (default 1).
pub fn replicas(spec: &FeatureStoreSpec) -> Option<i32> {
    (!autoscaling_enabled(spec)).then(|| spec.replicas.unwrap_or(1))
}

/// The label every pod of the FeatureStore `name` carries, and the only selector label.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("feast.dev/name".to_owned(), name.to_owned())])
}

/// `status.selector`: [`selector_labels`] in label-selector string form.
pub fn selector(name: &str) -> String {
    format!("feast.dev/name={name}")
}

/// The feature-server image: the server's own image, else the packaged repository image, else
/// `related_image` (`RELATED_IMAGE_FEATURE_SERVER` from the operator's environment), else
/// [`DEFAULT_FEATURE_SERVER_IMAGE`].
pub fn feature_server_image(
    spec: &FeatureStoreSpec,
    server: Option<&ServerConfigs>,
    related_image: Option<&str>,
) -> String {
    let packaged = spec
        .feast_project_dir
        .as_ref()
        .and_then(|d| d.packaged.as_ref())
        .and_then(|p| p.image.as_deref());
    [
        server.and_then(|s| s.container.image.as_deref()),
        packaged,
        related_image,
    ]
    .into_iter()
    .flatten()
    .find(|image| !image.is_empty())
    .unwrap_or(DEFAULT_FEATURE_SERVER_IMAGE)
    .to_owned()
}

/// The feature repository directory inside the pods:
/// `<offline PVC mount path | /feast-data>/<feastProject>/<git featureRepoPath | feature_repo>`, or the
/// packaged repository path itself when init containers (which would stage a copy) are disabled.
pub fn repo_dir(spec: &FeatureStoreSpec) -> String {
    let packaged = spec
        .feast_project_dir
        .as_ref()
        .and_then(|d| d.packaged.as_ref());
    let init_disabled = spec
        .services
        .as_ref()
        .and_then(|s| s.disable_init_containers)
        == Some(true);
    if let Some(packaged) = packaged.filter(|_| init_disabled) {
        return packaged.feature_repo_path.clone();
    }
    let base = spec
        .services
        .as_ref()
        .and_then(|s| s.offline_store.as_ref())
        .and_then(|o| o.persistence.as_ref())
        .and_then(|p| p.file.as_ref())
        .and_then(|f| f.pvc.as_ref())
        .map_or(EPHEMERAL_DATA_PATH, |pvc| pvc.mount_path.as_str());
    let repo = spec
        .feast_project_dir
        .as_ref()
        .and_then(|d| d.git.as_ref())
        .and_then(|g| g.feature_repo_path.as_deref())
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_FEATURE_REPO_PATH);
    format!("{base}/{}/{repo}", spec.feast_project)
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;
