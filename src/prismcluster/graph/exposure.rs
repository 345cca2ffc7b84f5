//! Ingress (`prism-ingress`), the ServiceMonitor and the Grafana dashboard.

use fieldwise_api::prism::PrismCluster;
use serde_json::{Value, json};

use super::metadata;
use crate::prismcluster::{inputs::PrismInputs, names};

pub fn exposure(
    cluster: &PrismCluster,
    namespace: &str,
    inputs: &PrismInputs,
    notes: &mut Vec<String>,
) -> Vec<Value> {
    let mut objects = Vec::new();
    if let Some(ingress) = cluster.spec.ingress.as_ref().filter(|i| i.enabled) {
        let path = |path: &str, service: &str, port: i32| {
            json!({"path": path, "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": port}}}})
        };
        let mut body = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": metadata(names::INGRESS, namespace, "prism"),
            "spec": {"ingressClassName": ingress.class_name,
                "rules": [{"host": ingress.host, "http": {"paths": [
                    path("/admin", names::ADMIN, names::ADMIN_PORT),
                    path("/", names::PROXY, names::PROXY_PORT)]}}]}});
        if !ingress.annotations.is_empty() {
            body["metadata"]["annotations"] = json!(ingress.annotations);
        }
        if let Some(secret) = &ingress.tls_secret_name {
            body["spec"]["tls"] = json!([{"hosts": [ingress.host], "secretName": secret}]);
        }
        objects.push(body);
    }
    let observability = cluster.spec.observability.as_ref();
    if let Some(prometheus) = observability
        .and_then(|o| o.prometheus.as_ref())
        .filter(|p| p.enabled)
    {
        if inputs.service_monitors {
            objects.push(json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                "metadata": metadata(names::SERVICE_MONITOR, namespace, "prism"),
                "spec": {"selector": {"matchLabels": {names::METRICS_LABEL: "true"}},
                         "endpoints": [{"port": "metrics", "interval": prometheus.scrape_interval}]}}));
        } else {
            notes.push("observability.prometheus: the Prometheus Operator is not installed (no servicemonitors.monitoring.coreos.com CRD); no ServiceMonitor is made".to_owned());
        }
    }
    if observability
        .and_then(|o| o.grafana.as_ref())
        .is_some_and(|g| g.enabled)
    {
        let mut body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(names::DASHBOARD, namespace, "prism"),
            "data": {"prism.json": dashboard(namespace)}});
        body["metadata"]["labels"]["grafana_dashboard"] = json!("1");
        objects.push(body);
    }
    if observability
        .and_then(|o| o.loki.as_ref())
        .is_some_and(|l| l.enabled)
    {
        notes.push("observability.loki: accepted, but fieldwise makes no objects for Loki; run a log collector such as Promtail or Alloy beside the cluster".to_owned());
    }
    objects
}

/// A small Grafana dashboard of the proxy's and admin's metrics in this namespace.
fn dashboard(namespace: &str) -> String {
    let panel = |id: u32, title: &str, expr: String| {
        json!({"id": id, "type": "timeseries", "title": title,
            "gridPos": {"h": 8, "w": 12, "x": (id % 2) * 12, "y": (id / 2) * 8},
            "targets": [{"expr": expr, "refId": "A"}]})
    };
    let dashboard = json!({"title": format!("Prism ({namespace})"), "uid": format!("prism-{namespace}"),
    "schemaVersion": 39, "panels": [
        panel(0, "Up", format!("up{{namespace=\"{namespace}\"}}")),
        panel(1, "Proxy CPU", format!("rate(process_cpu_seconds_total{{namespace=\"{namespace}\",service=\"prism-proxy\"}}[5m])")),
    ]});
    dashboard.to_string()
}
