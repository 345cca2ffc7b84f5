//! The feature-server containers and the init containers of the FeatureStore's pod (spec §2.1, §2.2).

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, LogLevel, WorkerConfigs};
use k8s_openapi::{
    api::core::v1::{
        Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, Probe,
        SecretKeySelector, TCPSocketAction, VolumeMount,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    servers::{Server, ServerTls},
    volumes::{FEAST_DATA_DIR, PodVolumes},
};
use crate::featurestore::{context::GraphContext, names::ServiceType};
use crate::security::restricted_container;

/// The variable the Feast images decode their feature_store.yaml from.
pub const FEATURE_STORE_YAML_ENV: &str = "TMP_FEATURE_STORE_YAML_BASE64";
/// The annotation that marks a Feast project as protected from `feast apply` deletions.
const PROTECTED_PROJECT_ANNOTATION: &str = "feast.dev/protected-project";

/// What every container of the pod shares.
pub struct PodContext<'a> {
    pub fs: &'a FeatureStore,
    pub applied: &'a FeatureStoreSpec,
    pub context: &'a GraphContext,
    /// The Secret and key holding the base64 server feature_store.yaml.
    pub config_secret: (&'a str, &'a str),
    /// The pod's volumes and the operator's mounts of each container.
    pub volumes: &'a PodVolumes,
}

impl PodContext<'_> {
    /// The directory of the feature repository inside the containers.
    pub fn repo_dir(&self) -> String {
        let dir = self.applied.feast_project_dir.as_ref();
        let packaged = dir.and_then(|d| d.packaged.as_ref());
        if let Some(packaged) = packaged.filter(|_| self.init_containers_disabled()) {
            return packaged.feature_repo_path.clone();
        }
        let sub_dir = dir
            .and_then(|d| d.git.as_ref())
            .and_then(|git| git.feature_repo_path.clone())
            .unwrap_or_else(|| "feature_repo".to_owned());
        format!(
            "{}/{}/{}",
            self.data_dir(),
            self.applied.feast_project,
            sub_dir.trim_end_matches('/')
        )
    }

    /// Where the repository is created: the offline store's PVC mount, else `/feast-data`.
    pub fn data_dir(&self) -> String {
        let offline_pvc = self
            .applied
            .services
            .as_ref()
            .and_then(|s| s.offline_store.as_ref())
            .and_then(|o| o.persistence.as_ref())
            .and_then(|p| p.file.as_ref())
            .and_then(|f| f.pvc.as_ref());
        offline_pvc.map_or_else(
            || FEAST_DATA_DIR.to_owned(),
            |pvc| pvc.mount_path.trim_end_matches('/').to_owned(),
        )
    }

    fn init_containers_disabled(&self) -> bool {
        self.applied
            .services
            .as_ref()
            .and_then(|s| s.disable_init_containers)
            == Some(true)
    }

    /// The feature-server image: the server's own, else the packaged repo's, else the operator default.
    fn server_image(&self, own: Option<&String>) -> String {
        own.cloned()
            .or_else(|| self.packaged_image())
            .unwrap_or_else(|| self.context.images.feature_server.clone())
    }

    /// The init containers' image: `services.initImage`, else the packaged repo's, else the operator default.
    fn init_image(&self) -> String {
        let own = self
            .applied
            .services
            .as_ref()
            .and_then(|s| s.init_image.as_ref());
        self.server_image(own)
    }

    fn packaged_image(&self) -> Option<String> {
        self.applied
            .feast_project_dir
            .as_ref()?
            .packaged
            .as_ref()?
            .image
            .clone()
    }

    /// The server feature_store.yaml variable, read from the config Secret (never inlined).
    fn config_env(&self) -> EnvVar {
        let (secret, key) = self.config_secret;
        EnvVar {
            name: FEATURE_STORE_YAML_ENV.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.to_owned(),
                    key: key.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            value: None,
        }
    }

    /// Variables fieldwise adds for every feature server after the user's: MLflow and the protected project.
    fn operator_env(&self) -> Vec<EnvVar> {
        let mut env = Vec::new();
        if let Some(mlflow) = self.applied.mlflow.as_ref().filter(|m| m.enabled) {
            let auth = mlflow
                .tracking_auth
                .clone()
                .unwrap_or_else(|| "kubernetes-namespaced".to_owned());
            env.push(plain_env("MLFLOW_TRACKING_AUTH", &auth));
            if let Some(uri) = &mlflow.tracking_uri {
                env.push(plain_env("MLFLOW_TRACKING_URI", uri));
            }
        }
        let protected = self
            .fs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROTECTED_PROJECT_ANNOTATION));
        if protected.map(String::as_str) == Some("true") {
            env.push(plain_env("FEAST_PROTECTED_PROJECT", "true"));
        }
        env
    }
}

/// The container of one feature server.
pub fn server_container(pod: &PodContext<'_>, server: &Server<'_>) -> Container {
    let config = &server.config.container;
    let mut env = vec![pod.config_env()];
    merge_env(&mut env, config.env.as_deref().unwrap_or_default());
    merge_env(&mut env, &pod.operator_env());
    // The server's own mounts first, then the operator's, as the Feast operator orders them.
    let mut mounts: Vec<VolumeMount> = server
        .config
        .volume_mounts
        .iter()
        .flatten()
        .cloned()
        .collect();
    mounts.extend(pod.volumes.server_mounts(server.service));
    Container {
        name: server.service.as_str().to_owned(),
        image: Some(pod.server_image(config.image.as_ref())),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(server_command(server)),
        working_dir: Some(pod.repo_dir()),
        ports: Some(container_ports(server)),
        env: Some(env),
        env_from: config.env_from.clone(),
        resources: config.resources.clone(),
        volume_mounts: Some(mounts),
        startup_probe: Some(Probe {
            period_seconds: Some(3),
            failure_threshold: Some(40),
            ..probe_action(server)
        }),
        liveness_probe: Some(Probe {
            period_seconds: Some(20),
            failure_threshold: Some(6),
            ..probe_action(server)
        }),
        readiness_probe: Some(Probe {
            period_seconds: Some(10),
            ..probe_action(server)
        }),
        security_context: Some(restricted_container()),
        ..Container::default()
    }
}

/// `feast [--log-level LEVEL] <subcommand and flags> [--key K --cert C] -p PORT`.
pub fn server_command(server: &Server<'_>) -> Vec<String> {
    let mut command = vec!["feast".to_owned()];
    if let Some(level) = server.config.log_level {
        command.extend(["--log-level".to_owned(), log_level_flag(level).to_owned()]);
    }
    match server.service {
        ServiceType::Online => {
            command.push("serve".to_owned());
            if server.config.metrics == Some(true) {
                command.push("--metrics".to_owned());
            }
            command.extend(["-h".to_owned(), "0.0.0.0".to_owned()]);
            command.extend(worker_flags(server.config.worker_configs.as_ref()));
        }
        ServiceType::Offline => {
            command.extend(["serve_offline", "-h", "0.0.0.0"].map(str::to_owned))
        }
        ServiceType::Registry => {
            command.push("serve_registry".to_owned());
            command.push(if server.grpc { "--grpc" } else { "--no-grpc" }.to_owned());
            if server.rest_api {
                command.extend([
                    "--rest-api".to_owned(),
                    "--rest-port".to_owned(),
                    server.rest_port().to_string(),
                ]);
            }
        }
        _ => command.extend(["ui", "-h", "0.0.0.0"].map(str::to_owned)),
    }
    if let Some(tls) = &server.tls {
        command.extend(tls_flags(server.service, tls));
    }
    command.extend(["-p".to_owned(), server.port().to_string()]);
    command
}

fn log_level_flag(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
        LogLevel::Critical => "CRITICAL",
    }
}

fn tls_flags(service: ServiceType, tls: &ServerTls) -> [String; 4] {
    let dir = ServerTls::mount_dir(service);
    [
        "--key".to_owned(),
        format!("{dir}{}", tls.private_key_key),
        "--cert".to_owned(),
        format!("{dir}{}", tls.cert_key),
    ]
}

/// Gunicorn flags, only for the settings the user gave.
fn worker_flags(workers: Option<&WorkerConfigs>) -> Vec<String> {
    let Some(workers) = workers else {
        return Vec::new();
    };
    [
        ("--workers", workers.workers),
        ("--worker-connections", workers.worker_connections),
        ("--max-requests", workers.max_requests),
        ("--max-requests-jitter", workers.max_requests_jitter),
        ("--keep-alive-timeout", workers.keep_alive_timeout),
        ("--registry_ttl_sec", workers.registry_ttl_seconds),
    ]
    .into_iter()
    .filter_map(|(flag, value)| value.map(|value| [flag.to_owned(), value.to_string()]))
    .flatten()
    .collect()
}

fn container_ports(server: &Server<'_>) -> Vec<ContainerPort> {
    let mut ports = Vec::new();
    let name = server.service.as_str();
    if server.service != ServiceType::Registry || server.grpc {
        ports.push(container_port(name, server.port()));
    }
    if server.service == ServiceType::Registry && server.rest_api {
        ports.push(container_port("registry-rest", server.rest_port()));
    }
    if server.metrics {
        ports.push(container_port("metrics", 8000));
    }
    ports
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        ..ContainerPort::default()
    }
}

/// The probe handler: HTTP `/health` for the online server, HTTP `/` on the REST port of a REST-only
/// registry (its server has no `/health`; Feast leaves the path empty, which the API server defaults
/// to `/`), TCP otherwise.
fn probe_action(server: &Server<'_>) -> Probe {
    let http_get = match server.service {
        ServiceType::Online => Some((server.port(), "/health")),
        ServiceType::Registry if !server.grpc => Some((server.rest_port(), "/")),
        _ => None,
    };
    match http_get {
        Some((port, path)) => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.to_owned()),
                port: IntOrString::Int(port),
                scheme: Some(server.scheme().to_owned()),
                ..HTTPGetAction::default()
            }),
            ..Probe::default()
        },
        None => Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(server.port()),
                host: None,
            }),
            ..Probe::default()
        },
    }
}

/// `feast-init` (creates or fetches the repository and writes feature_store.yaml) and `feast-apply`.
pub fn init_containers(pod: &PodContext<'_>, servers: &[Server<'_>]) -> Vec<Container> {
    if pod.init_containers_disabled() {
        return Vec::new();
    }
    let mut containers = vec![feast_init(pod)];
    let run_apply = pod
        .applied
        .services
        .as_ref()
        .and_then(|s| s.run_feast_apply_on_init)
        != Some(false);
    if run_apply {
        containers.push(feast_apply(pod, servers));
    }
    containers
}

/// `feast-init`: `bash -c` with the script as its argument, word for word the Feast operator's (its
/// progress lines included), so the logs read the same and a Deployment it made keeps its init
/// container when fieldwise takes it over.
fn feast_init(pod: &PodContext<'_>) -> Container {
    let dir = pod.applied.feast_project_dir.as_ref();
    let mut env = vec![pod.config_env()];
    let mut env_from = None;
    let script = if let Some(packaged) = dir.and_then(|d| d.packaged.as_ref()) {
        env.push(plain_env(PACKAGED_REPO_ENV, &packaged.feature_repo_path));
        env.push(plain_env(STAGED_REPO_ENV, &pod.repo_dir()));
        packaged_staging_script()
    } else {
        let create = match dir.and_then(|d| d.git.as_ref()) {
            Some(git) => {
                merge_env(&mut env, git.env.as_deref().unwrap_or_default());
                env_from = git.env_from.clone();
                git_clone_command(pod, git)
            }
            None => feast_init_command(pod),
        };
        repository_creation_script(&create, &pod.repo_dir())
    };
    Container {
        name: "feast-init".to_owned(),
        image: Some(pod.init_image()),
        command: Some(vec!["bash".to_owned(), "-c".to_owned()]),
        args: Some(vec![script]),
        working_dir: Some(pod.data_dir()),
        env: Some(env),
        env_from,
        volume_mounts: Some(pod.volumes.init_mounts()),
        security_context: Some(restricted_container()),
        ..Container::default()
    }
}

/// The packaged repository's path in its image, and where `feast-init` stages a copy of it.
const PACKAGED_REPO_ENV: &str = "FEAST_PACKAGED_FEATURE_REPO_PATH";
const STAGED_REPO_ENV: &str = "FEAST_STAGED_FEATURE_REPO_PATH";

/// Creates the repository unless it exists (on a claim, or in the emptyDir after a container
/// restart), then writes the server feature_store.yaml into it.
fn repository_creation_script(create: &str, repo_dir: &str) -> String {
    format!(
        "echo \"Creating feast repository...\"\necho '{create}'\n\
         if [[ ! -d {repo_dir} ]]; then {create}; fi;\n\
         echo ${FEATURE_STORE_YAML_ENV} | base64 -d > {repo_dir}/feature_store.yaml;\n\
         echo \"Feast repo creation complete\";\n"
    )
}

/// Copies the packaged repository to the staged path (failing clearly when the image lacks it) and
/// writes the server feature_store.yaml into the copy.
fn packaged_staging_script() -> String {
    let (packaged, staged) = (PACKAGED_REPO_ENV, STAGED_REPO_ENV);
    format!(
        "set -euo pipefail\n\
         echo \"Staging packaged feast repository...\"\n\
         if [[ ! -d \"${{{packaged}}}\" ]]; then \
         echo \"Packaged feature repository not found: ${{{packaged}}}\" >&2; exit 1; fi\n\
         rm -rf -- \"${{{staged}}}\"\n\
         mkdir -p -- \"${{{staged}}}\"\n\
         cp -a -- \"${{{packaged}}}/.\" \"${{{staged}}}/\"\n\
         printf '%s' \"${{{FEATURE_STORE_YAML_ENV}}}\" | base64 -d > \"${{{staged}}}/feature_store.yaml\"\n\
         echo \"Packaged feast repository staging complete\"\n"
    )
}

fn feast_init_command(pod: &PodContext<'_>) -> String {
    let init = pod
        .applied
        .feast_project_dir
        .as_ref()
        .and_then(|d| d.init.as_ref());
    let mut command = "feast init".to_owned();
    if init.and_then(|i| i.minimal) == Some(true) {
        command.push_str(" -m");
    }
    if let Some(template) = init.and_then(|i| i.template) {
        let name = serde_json::to_value(template)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        if let Some(name) = name {
            command.push_str(&format!(" -t {name}"));
        }
    }
    format!("{command} {}", pod.applied.feast_project)
}

fn git_clone_command(pod: &PodContext<'_>, git: &fieldwise_api::v1::GitCloneOptions) -> String {
    let checkout_dir = format!("{}/{}", pod.data_dir(), pod.applied.feast_project);
    let mut command = "git".to_owned();
    for (key, value) in git.configs.iter().flatten() {
        command.push_str(&format!(" -c {key}={value}"));
    }
    command.push_str(&format!(" clone {} {checkout_dir}", git.url));
    if let Some(git_ref) = &git.git_ref {
        command.push_str(&format!(" && cd {checkout_dir} && git checkout {git_ref}"));
    }
    command
}

/// `feast apply` in the repository, with the environment and mounts of every server merged. It reads
/// the feature_store.yaml `feast-init` wrote, so it gets no config variable (the Feast operator gives
/// it none either).
fn feast_apply(pod: &PodContext<'_>, servers: &[Server<'_>]) -> Container {
    let mut env = Vec::new();
    let mut env_from: Vec<EnvFromSource> = Vec::new();
    let mut mounts: Vec<VolumeMount> = Vec::new();
    let store_servers = servers.iter().filter(|s| s.service != ServiceType::Ui);
    for server in store_servers {
        merge_env(
            &mut env,
            server.config.container.env.as_deref().unwrap_or_default(),
        );
        for source in server.config.container.env_from.iter().flatten() {
            if !env_from.contains(source) {
                env_from.push(source.clone());
            }
        }
        for mount in server.config.volume_mounts.iter().flatten() {
            if !mounts.iter().any(|m| m.mount_path == mount.mount_path) {
                mounts.push(mount.clone());
            }
        }
    }
    mounts.extend(pod.volumes.init_mounts());
    Container {
        name: "feast-apply".to_owned(),
        image: Some(pod.init_image()),
        command: Some(vec!["feast".to_owned(), "apply".to_owned()]),
        working_dir: Some(pod.repo_dir()),
        env: (!env.is_empty()).then_some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_container()),
        ..Container::default()
    }
}

/// Adds `extra` to `env`: a variable with a name already present replaces it in place (env is keyed by name).
pub fn merge_env(env: &mut Vec<EnvVar>, extra: &[EnvVar]) {
    for var in extra {
        match env.iter_mut().find(|existing| existing.name == var.name) {
            Some(existing) => *existing = var.clone(),
            None => env.push(var.clone()),
        }
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}
