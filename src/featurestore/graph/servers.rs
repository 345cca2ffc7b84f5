//! Which feature servers a FeatureStore runs, and the facts about each one that the Deployment, the Services
//! and the hostnames all need: ports, TLS, probes.

use fieldwise_api::v1::{FeatureStoreSpec, ServerConfigs};

use crate::featurestore::names::ServiceType;

/// The TLS material of a server: the Secret and the key names of its certificate and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    pub secret_name: String,
    pub cert_key: String,
    pub private_key_key: String,
}

impl ServerTls {
    /// Where the server's TLS Secret is mounted: `/tls/<type>/`.
    pub fn mount_dir(service: ServiceType) -> String {
        format!("/tls/{}/", service.as_str())
    }
}

/// One feature server that runs as a container of the FeatureStore's Deployment.
#[derive(Clone, Debug)]
pub struct Server<'a> {
    pub service: ServiceType,
    pub config: &'a ServerConfigs,
    pub tls: Option<ServerTls>,
    /// Registry only: serve gRPC (on the main port).
    pub grpc: bool,
    /// Registry only: serve the REST API (on [`Server::rest_port`]).
    pub rest_api: bool,
    /// Online only: the server exposes Prometheus metrics on port 8000. As in Feast, either
    /// `server.metrics` (the `--metrics` flag) or `serving.metrics.enabled` (the feature server's
    /// own configuration) turns them on.
    pub metrics: bool,
}

impl Server<'_> {
    /// The port the server listens on (`-p`); the TLS variant when TLS is on.
    pub fn port(&self) -> i32 {
        let (plain, tls) = match self.service {
            ServiceType::Online => (6566, 6567),
            ServiceType::Offline => (8815, 8816),
            ServiceType::Registry => (6570, 6571),
            _ => (8888, 8443),
        };
        if self.tls.is_some() { tls } else { plain }
    }

    /// The registry's REST API port.
    pub fn rest_port(&self) -> i32 {
        if self.tls.is_some() { 6573 } else { 6572 }
    }

    /// The port of the Service in front of the server: 443 under TLS, else 80.
    pub fn service_port(&self) -> i32 {
        if self.tls.is_some() { 443 } else { 80 }
    }

    /// The URL scheme clients and HTTP probes use.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "HTTPS" } else { "HTTP" }
    }
}

/// The servers of a FeatureStore's applied spec, in container order: registry, online, offline, ui.
pub fn servers(applied: &FeatureStoreSpec) -> Vec<Server<'_>> {
    let Some(services) = applied.services.as_ref() else {
        return Vec::new();
    };
    let mut servers = Vec::new();
    let local_registry = services
        .registry
        .as_ref()
        .and_then(|registry| registry.local.as_ref());
    if let Some(registry) = local_registry.and_then(|local| local.server.as_ref()) {
        servers.push(Server {
            service: ServiceType::Registry,
            config: &registry.server,
            tls: tls_of(&registry.server),
            grpc: registry.grpc.unwrap_or(true),
            rest_api: registry.rest_api.unwrap_or(false),
            metrics: false,
        });
    }
    let online = services
        .online_store
        .as_ref()
        .filter(|online| online.disabled != Some(true));
    if let Some(online) = online
        && let Some(config) = online.server.as_ref()
    {
        let serving_metrics = online
            .serving
            .as_ref()
            .and_then(|serving| serving.metrics.as_ref())
            .is_some_and(|metrics| metrics.enabled);
        servers.push(Server {
            metrics: config.metrics == Some(true) || serving_metrics,
            ..plain(ServiceType::Online, config)
        });
    }
    if let Some(config) = services
        .offline_store
        .as_ref()
        .and_then(|offline| offline.server.as_ref())
    {
        servers.push(plain(ServiceType::Offline, config));
    }
    if let Some(config) = services.ui.as_ref() {
        servers.push(plain(ServiceType::Ui, config));
    }
    servers
}

fn plain(service: ServiceType, config: &ServerConfigs) -> Server<'_> {
    Server {
        service,
        config,
        tls: tls_of(config),
        grpc: false,
        rest_api: false,
        metrics: false,
    }
}

/// TLS is on when a `secretRef` is given and `disable` is not true.
fn tls_of(config: &ServerConfigs) -> Option<ServerTls> {
    let tls = config
        .tls
        .as_ref()
        .filter(|tls| tls.disable != Some(true))?;
    let secret = tls.secret_ref.as_ref()?;
    let names = tls.secret_key_names.as_ref();
    Some(ServerTls {
        secret_name: secret.name.clone(),
        cert_key: names
            .and_then(|n| n.tls_crt.clone())
            .unwrap_or_else(|| "tls.crt".to_owned()),
        private_key_key: names
            .and_then(|n| n.tls_key.clone())
            .unwrap_or_else(|| "tls.key".to_owned()),
    })
}
