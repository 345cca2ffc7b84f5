//! KEDA: once the `scaledobjects.keda.sh` CRD is installed, every ScaledObject gets an autoscaling/v2
//! HPA `keda-hpa-<name>` owned by it, targeting its `scaleTargetRef` (a Deployment by default, or any
//! resource with a scale subresource such as a FeatureStore), with minReplicas
//! `max(minReplicaCount, 1)` and maxReplicas `maxReplicaCount` (default 100), and one External
//! metric per trigger. The HPA simulator then does the scaling. Not simulated: scale to zero,
//! fallback, pausing, the metrics server.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Shared;
use super::common::{self, Controller};
use crate::emulator::ownership::Sub;
use crate::emulator::store::ObjKey;
use crate::emulator::{ApiError, ApiServer, EventType, StoreEvent, meta};

/// The field manager of KEDA's operator (its binary is `keda`).
pub const KEDA_MANAGER: &str = "keda";
/// Prefix of the HPA KEDA creates for a ScaledObject.
pub const KEDA_HPA_PREFIX: &str = "keda-hpa-";

const GROUP: &str = "keda.sh";
const PLURAL: &str = "scaledobjects";

/// KEDA's ScaledObject CRD, reduced to the fields the simulator reads.
pub const SCALED_OBJECT_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: scaledobjects.keda.sh
spec:
  group: keda.sh
  names:
    kind: ScaledObject
    listKind: ScaledObjectList
    plural: scaledobjects
    singular: scaledobject
    shortNames: [so]
  scope: Namespaced
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            required: [scaleTargetRef, triggers]
            properties:
              scaleTargetRef:
                type: object
                required: [name]
                properties:
                  apiVersion: {type: string}
                  kind: {type: string}
                  name: {type: string}
                  envSourceContainerName: {type: string}
              minReplicaCount: {type: integer, format: int32}
              maxReplicaCount: {type: integer, format: int32}
              idleReplicaCount: {type: integer, format: int32}
              pollingInterval: {type: integer, format: int32}
              cooldownPeriod: {type: integer, format: int32}
              advanced:
                type: object
                x-kubernetes-preserve-unknown-fields: true
              fallback:
                type: object
                x-kubernetes-preserve-unknown-fields: true
              triggers:
                type: array
                items:
                  type: object
                  required: [type, metadata]
                  properties:
                    type: {type: string}
                    name: {type: string}
                    metricType: {type: string}
                    useCachedMetrics: {type: boolean}
                    metadata:
                      type: object
                      additionalProperties: {type: string}
                    authenticationRef:
                      type: object
                      x-kubernetes-preserve-unknown-fields: true
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

/// Creates the CRD (no-op when it exists).
pub(crate) fn install_crd(server: &ApiServer) -> Result<(), ApiError> {
    let crd: Value = serde_saphyr::from_str(SCALED_OBJECT_CRD)
        .map_err(|e| ApiError::internal(format!("ScaledObject CRD does not parse: {e}")))?;
    let key = common::key(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        "scaledobjects.keda.sh",
    );
    match common::create(server, &key, KEDA_MANAGER, crd) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) struct Keda;

impl Controller for Keda {
    fn on_event(&mut self, shared: &Arc<Shared>, ev: &StoreEvent) {
        if ev.key.0 == GROUP && ev.key.1 == PLURAL && ev.kind != EventType::Deleted {
            reconcile(&shared.server, &ev.key);
        } else if ev.key.0 == "autoscaling"
            && ev.key.1 == "horizontalpodautoscalers"
            && let Some(so) = ev.key.3.strip_prefix(KEDA_HPA_PREFIX)
        {
            // Someone changed or deleted our HPA: put it back.
            reconcile(&shared.server, &common::key(GROUP, PLURAL, &ev.key.2, so));
        }
    }

    fn resync(&mut self, shared: &Arc<Shared>) {
        for key in common::keys_of(&shared.server, GROUP, PLURAL) {
            reconcile(&shared.server, &key);
        }
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// One External metric per trigger, its target from the trigger's threshold-like setting.
fn metrics(so: &Value) -> Vec<Value> {
    let triggers = so
        .pointer("/spec/triggers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    triggers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = str_at(t, "/type").unwrap_or("external");
            if let Some(resource) = resource_metric(kind, t) {
                return resource;
            }
            let md = t.get("metadata");
            let threshold = ["threshold", "targetValue", "value", "desiredReplicas"]
                .iter()
                .find_map(|k| md.and_then(|m| m.get(*k)).and_then(Value::as_str))
                .unwrap_or("1");
            let metric_type = str_at(t, "/metricType").unwrap_or("AverageValue");
            let target = if metric_type == "Value" {
                json!({"type": "Value", "value": threshold})
            } else {
                json!({"type": metric_type, "averageValue": threshold})
            };
            json!({
                "type": "External",
                "external": {
                    "metric": {
                        "name": format!("s{i}-{kind}"),
                        "selector": {"matchLabels": {"scaledobject.keda.sh/name": meta::name(so)}},
                    },
                    "target": target,
                },
            })
        })
        .collect()
}

/// The `cpu` and `memory` triggers become Resource metrics, as KEDA creates them.
fn resource_metric(kind: &str, trigger: &Value) -> Option<Value> {
    if !matches!(kind, "cpu" | "memory") {
        return None;
    }
    let value = str_at(trigger, "/metadata/value").unwrap_or("80");
    let target = match str_at(trigger, "/metricType").unwrap_or("Utilization") {
        "Utilization" => {
            json!({"type": "Utilization", "averageUtilization": value.parse::<i64>().unwrap_or(80)})
        }
        _ => json!({"type": "AverageValue", "averageValue": value}),
    };
    Some(json!({"type": "Resource", "resource": {"name": kind, "target": target}}))
}

fn desired_hpa(so: &Value, namespace: &str) -> Value {
    let name = meta::name(so);
    let min = so
        .pointer("/spec/minReplicaCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(1);
    let max = so
        .pointer("/spec/maxReplicaCount")
        .and_then(Value::as_i64)
        .unwrap_or(100);
    let mut spec = Map::new();
    spec.insert(
        "scaleTargetRef".into(),
        json!({
            "apiVersion": str_at(so, "/spec/scaleTargetRef/apiVersion").unwrap_or("apps/v1"),
            "kind": str_at(so, "/spec/scaleTargetRef/kind").unwrap_or("Deployment"),
            "name": str_at(so, "/spec/scaleTargetRef/name").unwrap_or(""),
        }),
    );
    spec.insert("minReplicas".into(), json!(min));
    spec.insert("maxReplicas".into(), json!(max));
    spec.insert("metrics".into(), json!(metrics(so)));
    if let Some(b) = so.pointer("/spec/advanced/horizontalPodAutoscalerConfig/behavior") {
        spec.insert("behavior".into(), b.clone());
    }
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": format!("{KEDA_HPA_PREFIX}{name}"),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "keda-operator",
                "app.kubernetes.io/name": format!("{KEDA_HPA_PREFIX}{name}"),
                "app.kubernetes.io/part-of": name,
                "scaledobject.keda.sh/name": name,
            },
            "ownerReferences": [{
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "name": name,
                "uid": meta::uid(so),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

fn reconcile(server: &ApiServer, key: &ObjKey) {
    let Some(so) = common::get(server, key) else {
        return;
    };
    if meta::is_terminating(&so) {
        return;
    }
    let want = desired_hpa(&so, &key.2);
    let hpa_key = common::key(
        "autoscaling",
        "horizontalpodautoscalers",
        &key.2,
        &format!("{KEDA_HPA_PREFIX}{}", key.3),
    );
    let result = match common::get(server, &hpa_key) {
        None => common::create(server, &hpa_key, KEDA_MANAGER, want).map(|_| ()),
        Some(have) if have.get("spec") != want.get("spec") || owner_missing(&have, &so) => {
            let mut body = have;
            body["spec"] = want["spec"].clone();
            body["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"].clone();
            common::update(server, &hpa_key, Sub::Main, KEDA_MANAGER, body).map(|_| ())
        }
        Some(_) => Ok(()),
    };
    if let Err(e) = result
        && e.code != 409
    {
        tracing::warn!(?key, error = %e.message, "KEDA simulator could not write the HPA");
    }
    write_status(server, key, &hpa_key.3);
}

fn owner_missing(hpa: &Value, so: &Value) -> bool {
    !hpa.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| str_at(r, "/uid") == Some(meta::uid(so)))
        })
}

fn write_status(server: &ApiServer, key: &ObjKey, hpa_name: &str) {
    common::write_status(server, key, KEDA_MANAGER, |so| {
        let old = so.get("status");
        let kind = str_at(so, "/spec/scaleTargetRef/kind").unwrap_or("Deployment");
        let av = str_at(so, "/spec/scaleTargetRef/apiVersion").unwrap_or("apps/v1");
        let mut status = old.cloned().unwrap_or_else(|| json!({}));
        status["hpaName"] = json!(hpa_name);
        status["scaleTargetKind"] = json!(format!("{av}.{kind}"));
        status["conditions"] = json!([
            common::condition(
                old,
                "Ready",
                true,
                "ScaledObjectReady",
                "ScaledObject is defined correctly and is ready for scaling",
                false
            ),
            common::condition(
                old,
                "Active",
                true,
                "ScalerActive",
                "Scaling is performed because triggers are active",
                false
            ),
            common::condition(
                old,
                "Fallback",
                false,
                "NoFallbackFound",
                "No fallbacks are active on this scaled object",
                false
            ),
        ]);
        Some(status)
    });
}
