//! The ClusterIP Services in front of the feature servers, and the hostnames they give (spec §2, §5).

use fieldwise_api::v1::ServiceHostnames;
use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::servers::Server;
use crate::featurestore::names::{ServiceType, selector_labels, service_labels, service_name};

/// A Service of the FeatureStore: its name and the server behind it.
pub struct ServiceSpecOf<'a> {
    pub name: String,
    pub server: &'a Server<'a>,
    /// The registry REST Service (`feast-<cr>-registry-rest`) rather than the gRPC one.
    pub rest: bool,
}

/// Every Service the servers need: one per server, the registry gRPC and REST endpoints separately.
pub fn service_specs<'a>(cr_name: &str, servers: &'a [Server<'a>]) -> Vec<ServiceSpecOf<'a>> {
    let mut specs = Vec::new();
    for server in servers {
        let name = service_name(cr_name, server.service);
        if server.service == ServiceType::Registry {
            if server.grpc {
                specs.push(ServiceSpecOf {
                    name: name.clone(),
                    server,
                    rest: false,
                });
            }
            if server.rest_api {
                specs.push(ServiceSpecOf {
                    name: format!("{name}-rest"),
                    server,
                    rest: true,
                });
            }
        } else {
            specs.push(ServiceSpecOf {
                name,
                server,
                rest: false,
            });
        }
    }
    specs
}

/// The Service object for one spec.
pub fn service(cr_name: &str, namespace: &str, spec: &ServiceSpecOf<'_>) -> Service {
    let server = spec.server;
    let target = if spec.rest {
        server.rest_port()
    } else {
        server.port()
    };
    let mut ports = vec![ServicePort {
        name: Some(
            if server.tls.is_some() {
                "https"
            } else {
                "http"
            }
            .to_owned(),
        ),
        port: server.service_port(),
        target_port: Some(IntOrString::Int(target)),
        app_protocol: (server.service == ServiceType::Registry && !spec.rest)
            .then(|| "grpc".to_owned()),
        ..ServicePort::default()
    }];
    if server.metrics {
        ports.push(ServicePort {
            name: Some("metrics".to_owned()),
            port: 8000,
            target_port: Some(IntOrString::Int(8000)),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(service_labels(cr_name, server.service)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(cr_name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `<service>.<namespace>.svc.cluster.local:<80|443>` of each local server. A remote registry's hostname is
/// filled in by the caller.
pub fn local_hostnames(namespace: &str, specs: &[ServiceSpecOf<'_>]) -> ServiceHostnames {
    let mut hostnames = ServiceHostnames::default();
    for spec in specs {
        let host = format!(
            "{}.{namespace}.svc.cluster.local:{}",
            spec.name,
            spec.server.service_port()
        );
        let slot = match (spec.server.service, spec.rest) {
            (ServiceType::Registry, true) => &mut hostnames.registry_rest,
            (ServiceType::Registry, false) => &mut hostnames.registry,
            (ServiceType::Online, _) => &mut hostnames.online_store,
            (ServiceType::Offline, _) => &mut hostnames.offline_store,
            _ => &mut hostnames.ui,
        };
        *slot = Some(host);
    }
    hostnames
}
