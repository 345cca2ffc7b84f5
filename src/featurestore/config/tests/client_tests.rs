//! The client ConfigMap's feature_store.yaml: remote entries per hostname, TLS ports, schemes and certs.

use serde_json::json;

use super::fixtures::{Case, keys};

#[test]
fn plain_http_entries_for_every_hostname() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": {
            "offlineStore": { "server": {} },
            "registry": { "local": { "server": {} } },
        } }),
    )
    .hostnames(json!({
        "offlineStore": "feast-s-offline.ns.svc.cluster.local:80",
        "onlineStore": "feast-s-online.ns.svc.cluster.local:80",
        "registry": "feast-s-registry.ns.svc.cluster.local:80",
    }));
    let document = case.client().expect("client");
    assert_eq!(
        document,
        json!({
            "project": "p",
            "provider": "local",
            "offline_store": { "host": "feast-s-offline.ns.svc.cluster.local", "type": "remote", "port": 80 },
            "online_store": { "path": "http://feast-s-online.ns.svc.cluster.local:80", "type": "remote" },
            "registry": { "path": "feast-s-registry.ns.svc.cluster.local:80", "registry_type": "remote" },
            "auth": { "type": "kubernetes" },
            "entity_key_serialization_version": 3,
        })
    );
    assert_eq!(
        keys(&document),
        [
            "project",
            "provider",
            "offline_store",
            "online_store",
            "registry",
            "auth",
            "entity_key_serialization_version"
        ]
    );
}

#[test]
fn tls_servers_switch_to_https_with_their_certificates() {
    let tls =
        json!({ "secretRef": { "name": "certs" }, "secretKeyNames": { "tlsCrt": "server.pem" } });
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": {
            "offlineStore": { "server": { "tls": tls.clone() } },
            "onlineStore": { "server": { "tls": { "secretRef": { "name": "certs" } } } },
            "registry": { "local": { "server": { "tls": tls } } },
        } }),
    )
    .hostnames(json!({
        "offlineStore": "feast-s-offline.ns.svc.cluster.local:443",
        "onlineStore": "feast-s-online.ns.svc.cluster.local:443",
        "registry": "feast-s-registry.ns.svc.cluster.local:443",
    }));
    let document = case.client().expect("client");
    assert_eq!(
        document["offline_store"],
        json!({
            "host": "feast-s-offline.ns.svc.cluster.local",
            "type": "remote",
            "port": 443,
            "scheme": "https",
            "cert": "/tls/offline/server.pem",
        })
    );
    assert_eq!(
        document["online_store"],
        json!({
            "path": "https://feast-s-online.ns.svc.cluster.local:443",
            "type": "remote",
            "cert": "/tls/online/tls.crt",
        })
    );
    assert_eq!(
        document["registry"],
        json!({
            "path": "feast-s-registry.ns.svc.cluster.local:443",
            "registry_type": "remote",
            "cert": "/tls/registry/server.pem",
        })
    );
}

#[test]
fn disabled_tls_stays_plain_http() {
    let Some(sample) = Case::sample("v1_featurestore_all_openshift_non_tls.yaml") else {
        return;
    };
    let case = sample
        .hostnames(json!({ "onlineStore": "feast-sample-openshift-non-tls-online.default.svc.cluster.local:80" }));
    let document = case.client().expect("client");
    assert_eq!(
        document["online_store"],
        json!({ "path": "http://feast-sample-openshift-non-tls-online.default.svc.cluster.local:80", "type": "remote" })
    );
}

#[test]
fn a_remote_registry_entry_uses_the_remote_ca() {
    let case = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "services": { "registry": { "remote": {
            "hostname": "registry.other:443",
            "tls": { "configMapRef": { "name": "ca" }, "certName": "service-ca.crt" }
        } } } }),
    )
    .hostnames(json!({ "registry": "registry.other:443" }));
    assert_eq!(
        case.client().expect("client")["registry"],
        json!({ "path": "registry.other:443", "registry_type": "remote", "cert": "/tls/registry/service-ca.crt" })
    );
}

#[test]
fn client_carries_mlflow_when_enabled() {
    let mlflow = json!({ "enabled": true, "trackingUri": "http://mlflow:5000" });
    let case = Case::new("s", "ns", json!({ "feastProject": "p", "mlflow": mlflow }));
    assert_eq!(
        case.client().expect("client")["mlflow"],
        json!({ "enabled": true, "tracking_uri": "http://mlflow:5000" })
    );
    let disabled = Case::new(
        "s",
        "ns",
        json!({ "feastProject": "p", "mlflow": { "enabled": false } }),
    );
    assert!(disabled.client().expect("client").get("mlflow").is_none());
}
