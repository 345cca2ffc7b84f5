//! The autoscaling/v2 HPA controller. For each HPA: the target's replicas are brought within
//! [minReplicas, maxReplicas]; inside the bounds, a synthetic metric (set per HPA through
//! [`super::Simulators::set_metric`]) gives `ceil(current × value / target)` unless the ratio is
//! within the 10% tolerance. The target's `/scale` is written with a PUT by
//! kube-controller-manager (managedFields: Update, subresource scale, `f:spec.f:replicas`), and the
//! HPA's status reports current and desired replicas.
//!
//! Not simulated: stabilisation windows, scaling policies and rate limits (`behavior`), pod
//! readiness in the formula (spec replicas stand for ready pods), multiple metrics (the first one
//! counts).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{self, Controller};
use super::{CONTROLLER_MANAGER, Shared};
use crate::emulator::ownership::Sub;
use crate::emulator::store::ObjKey;
use crate::emulator::{ApiServer, EventType, StoreEvent, meta};

const GROUP: &str = "autoscaling";
const PLURAL: &str = "horizontalpodautoscalers";
const TOLERANCE: f64 = 0.1;

/// The last sample acted on per HPA, with its recommendation before and after the bounds: until
/// the next sample, the recommendation stands (as the real controller's would with a steady
/// metric).
type Consumed = HashMap<ObjKey, (u64, i64, i64)>;

#[derive(Default)]
pub(crate) struct Hpa {
    consumed: Consumed,
}

impl Controller for Hpa {
    fn on_event(&mut self, shared: &Arc<Shared>, ev: &StoreEvent) {
        if ev.key.0 == GROUP && ev.key.1 == PLURAL {
            if ev.kind == EventType::Deleted {
                self.consumed.remove(&ev.key);
            } else {
                evaluate(shared, &ev.key, &mut self.consumed);
            }
            return;
        }
        // A target changed (e.g. someone else wrote its replicas): re-examine its HPAs.
        for key in hpas_targeting(&shared.server, &ev.key) {
            evaluate(shared, &key, &mut self.consumed);
        }
    }

    fn resync(&mut self, shared: &Arc<Shared>) {
        for key in common::keys_of(&shared.server, GROUP, PLURAL) {
            evaluate(shared, &key, &mut self.consumed);
        }
    }
}

/// `(apiVersion, kind, name)` of an HPA's scale target, borrowed.
fn target_ref(hpa: &Value) -> (&str, &str, &str) {
    let s = |p: &str| hpa.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (
        s("/spec/scaleTargetRef/apiVersion"),
        s("/spec/scaleTargetRef/kind"),
        s("/spec/scaleTargetRef/name"),
    )
}

/// The HPAs of the target's namespace that target it. Runs for every stored change, so it reads
/// the HPAs in place and copies only what the ones naming the target need; the registry is asked
/// after the store's lock is released (the two locks are never held together).
fn hpas_targeting(server: &ApiServer, target: &ObjKey) -> Vec<ObjKey> {
    let naming_it: Vec<(String, String, String)> = {
        let txn = server.store.lock();
        txn.list(GROUP, PLURAL, Some(&target.2))
            .into_iter()
            .filter_map(|hpa| {
                let (api_version, kind, name) = target_ref(hpa);
                (name == target.3).then(|| {
                    (
                        api_version.to_owned(),
                        kind.to_owned(),
                        meta::name(hpa).to_owned(),
                    )
                })
            })
            .collect()
    };
    naming_it
        .into_iter()
        .filter(|(api_version, kind, _)| {
            server
                .registry
                .find_kind(api_version, kind)
                .is_some_and(|rt| rt.group == target.0 && rt.plural == target.1)
        })
        .map(|(_, _, hpa)| common::key(GROUP, PLURAL, &target.2, &hpa))
        .collect()
}

/// The first metric's target value: averageUtilization, else averageValue or value.
fn metric_target(hpa: &Value) -> Option<(String, f64)> {
    let Some(metric) = hpa.pointer("/spec/metrics/0").and_then(Value::as_object) else {
        // autoscaling/v2 defaults to 80% CPU utilisation when no metric is given.
        return Some((
            "cpu resource utilization (percentage of request)".into(),
            80.0,
        ));
    };
    let kind = metric.get("type").and_then(Value::as_str).unwrap_or("");
    let source = metric.values().find(|v| v.get("target").is_some())?;
    let target = source.get("target")?;
    let value = target
        .get("averageUtilization")
        .and_then(Value::as_f64)
        .or_else(|| {
            ["averageValue", "value"]
                .iter()
                .find_map(|f| target.get(*f).and_then(parse_quantity))
        })?;
    let name = source
        .pointer("/metric/name")
        .or_else(|| source.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some((format!("{name} {} metric", kind.to_lowercase()), value))
}

/// A Kubernetes quantity as a number (`500m`, `2`, `1k`, `1Mi`, `1.5`).
fn parse_quantity(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * factor)
}

/// What one evaluation decided.
struct Decision {
    /// The formula's count before the bounds.
    raw: i64,
    desired: i64,
    /// (status, reason, message) of ScalingActive.
    active: (bool, &'static str, String),
    /// (status, reason, message) of ScalingLimited.
    limited: (bool, &'static str, &'static str),
    metric: Option<f64>,
}

fn decide(
    sample: Option<(f64, u64)>,
    previous: Option<(u64, i64, i64)>,
    hpa: &Value,
    current: i64,
) -> Decision {
    let min = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let max = hpa
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(min);
    let within = (
        false,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    );
    if current == 0 && min != 0 {
        return Decision {
            raw: 0,
            desired: 0,
            active: (
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ),
            limited: within,
            metric: None,
        };
    }
    let metric = sample.map(|s| s.0);
    let target = metric_target(hpa);
    let (raw, active) = match (metric, &target) {
        (Some(value), Some((what, target))) if *target > 0.0 => {
            let ratio = value / target;
            let raw =
                match previous {
                    Some((n, raw, desired)) if Some(n) == sample.map(|s| s.1) => {
                        if desired == current { raw } else { current }
                    }
                    _ if (ratio - 1.0).abs() <= TOLERANCE => current,
                    _ => (current as f64 * ratio).ceil() as i64,
                };
            let msg =
                format!("the HPA was able to successfully calculate a replica count from {what}");
            (raw, (true, "ValidMetricFound", msg))
        }
        _ => (
            current,
            (
                false,
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: no synthetic metric value set"
                    .into(),
            ),
        ),
    };
    let (desired, limited) = if raw > max {
        (
            max,
            (
                true,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            ),
        )
    } else if raw < min {
        (
            min,
            (
                true,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            ),
        )
    } else {
        (raw, within)
    };
    Decision {
        raw,
        desired,
        active,
        limited,
        metric,
    }
}

fn evaluate(shared: &Shared, key: &ObjKey, consumed: &mut Consumed) {
    let server = &shared.server;
    let Some(hpa) = common::get(server, key) else {
        return;
    };
    if meta::is_terminating(&hpa) {
        return;
    }
    let (av, kind, name) = target_ref(&hpa);
    let target = server.registry.find_kind(av, kind).and_then(|rt| {
        let tkey = ApiServer::key(&rt, &key.2, name);
        let obj = common::get(server, &tkey)?;
        let scale = ApiServer::scale_of(&rt, &obj).ok()?;
        Some((tkey, scale))
    });
    let Some((tkey, scale)) = target else {
        let msg = format!(
            "the HPA controller was unable to get the target's current scale: {kind} {name} not found"
        );
        write_hpa_status(shared, key, None, (false, "FailedGetScale", msg));
        return;
    };
    let current = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let actual = scale
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let sample = shared.metric(&key.2, &key.3);
    let d = decide(sample, consumed.get(key).copied(), &hpa, current);
    // The sample is used up once acted on; a conflict leaves it for the re-evaluation that the
    // concurrent change triggers.
    let mut consume = || {
        if let Some((_, n)) = sample
            && current != 0
        {
            consumed.insert(key.clone(), (n, d.raw, d.desired));
        }
    };
    let mut able = (
        true,
        "ReadyForNewScale",
        "recommended size matches current size".to_string(),
    );
    let mut scaled = false;
    if d.desired == current {
        consume();
    } else {
        let body = json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": key.2, "resourceVersion": scale.pointer("/metadata/resourceVersion")},
            "spec": {"replicas": d.desired},
        });
        match common::update(server, &tkey, Sub::Scale, CONTROLLER_MANAGER, body) {
            Ok(_) => {
                consume();
                scaled = true;
                able = (
                    true,
                    "SucceededRescale",
                    format!(
                        "the HPA controller was able to update the target scale to {}",
                        d.desired
                    ),
                );
            }
            // A concurrent change of the target comes back as an event and a new evaluation.
            Err(e) if e.code == 409 => return,
            Err(e) => {
                consume();
                able = (
                    false,
                    "FailedUpdateScale",
                    format!(
                        "the HPA controller was unable to update the target scale: {}",
                        e.message
                    ),
                );
            }
        }
    }
    let fields = StatusFields {
        actual,
        decision: &d,
        able,
        scaled,
        hpa: &hpa,
    };
    write_hpa_status(shared, key, Some(fields), (true, "", String::new()));
}

struct StatusFields<'a> {
    actual: i64,
    decision: &'a Decision,
    able: (bool, &'static str, String),
    scaled: bool,
    hpa: &'a Value,
}

fn current_metric(hpa: &Value, value: f64) -> Option<Value> {
    let metric = hpa.pointer("/spec/metrics/0").and_then(Value::as_object);
    let Some(metric) = metric else {
        return Some(
            json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": value.round() as i64}}}),
        );
    };
    let kind = metric.get("type")?.as_str()?;
    let (field, source) = metric.iter().find(|(_, v)| v.get("target").is_some())?;
    let target = source.get("target")?;
    let quantity = if value.fract() == 0.0 {
        json!(format!("{}", value as i64))
    } else {
        json!(format!("{}m", (value * 1000.0).round() as i64))
    };
    let current = if target.get("averageUtilization").is_some() {
        json!({"averageUtilization": value.round() as i64})
    } else if target.get("averageValue").is_some() {
        json!({"averageValue": quantity})
    } else {
        json!({"value": quantity})
    };
    let mut src = Map::new();
    for k in ["name", "metric", "describedObject", "container"] {
        if let Some(v) = source.get(k) {
            src.insert(k.into(), v.clone());
        }
    }
    src.insert("current".into(), current);
    Some(json!({"type": kind, field.as_str(): src}))
}

/// Writes the HPA status. Without `fields` the target could not be read: only AbleToScale false.
fn write_hpa_status(
    shared: &Shared,
    key: &ObjKey,
    fields: Option<StatusFields<'_>>,
    failed: (bool, &'static str, String),
) {
    common::write_status(&shared.server, key, CONTROLLER_MANAGER, |obj| {
        let old = obj.get("status");
        let mut status = Map::new();
        status.insert("observedGeneration".into(), json!(common::generation(obj)));
        let Some(f) = &fields else {
            let keep = |k: &str| old.and_then(|s| s.get(k)).cloned().unwrap_or(json!(0));
            status.insert("currentReplicas".into(), keep("currentReplicas"));
            status.insert("desiredReplicas".into(), keep("desiredReplicas"));
            let (ok, reason, msg) = &failed;
            status.insert(
                "conditions".into(),
                json!([common::condition(
                    old,
                    "AbleToScale",
                    *ok,
                    reason,
                    msg,
                    false
                )]),
            );
            return Some(Value::Object(status));
        };
        let last_scale = if f.scaled {
            Some(json!(meta::now()))
        } else {
            old.and_then(|s| s.get("lastScaleTime")).cloned()
        };
        if let Some(t) = last_scale {
            status.insert("lastScaleTime".into(), t);
        }
        status.insert("currentReplicas".into(), json!(f.actual));
        status.insert("desiredReplicas".into(), json!(f.decision.desired));
        if let Some(m) = f.decision.metric.and_then(|v| current_metric(f.hpa, v)) {
            status.insert("currentMetrics".into(), json!([m]));
        }
        let (a_ok, a_reason, a_msg) = &f.able;
        let (s_ok, s_reason, s_msg) = &f.decision.active;
        let (l_ok, l_reason, l_msg) = f.decision.limited;
        status.insert(
            "conditions".into(),
            json!([
                common::condition(old, "AbleToScale", *a_ok, a_reason, a_msg, false),
                common::condition(old, "ScalingActive", *s_ok, s_reason, s_msg, false),
                common::condition(old, "ScalingLimited", l_ok, l_reason, l_msg, false),
            ]),
        );
        Some(Value::Object(status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(&json!("500m")), Some(0.5));
        assert_eq!(parse_quantity(&json!("2")), Some(2.0));
        assert_eq!(parse_quantity(&json!("1Ki")), Some(1024.0));
        assert_eq!(parse_quantity(&json!(3)), Some(3.0));
        assert_eq!(parse_quantity(&json!("x")), None);
    }

    #[test]
    fn metric_targets() {
        let cpu = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}});
        assert_eq!(metric_target(&cpu).map(|t| t.1), Some(70.0));
        let ext = json!({"spec": {"metrics": [{"type": "External", "external": {"metric": {"name": "s0-prometheus"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]}});
        assert_eq!(metric_target(&ext).map(|t| t.1), Some(10.0));
        assert_eq!(metric_target(&json!({"spec": {}})).map(|t| t.1), Some(80.0));
    }
}
