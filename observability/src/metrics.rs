//! Prometheus metrics (OpenMetrics text), all in one registry, with bounded label values only.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Error;

/// Counter of finished reconciles (`_total` is appended when encoded).
pub const RECONCILES: &str = "fieldwise_reconciles";
/// Histogram of reconcile wall time, with the trace id as exemplar.
pub const RECONCILE_DURATION: &str = "fieldwise_reconcile_duration_seconds";
/// Histogram of the CPU time of a reconcile's own synchronous work (no API waiting), per controller.
pub const RECONCILE_CPU: &str = "fieldwise_reconcile_cpu_seconds";
/// Counter of object writes (and skipped writes) by kind and outcome.
pub const API_WRITES: &str = "fieldwise_api_writes";
/// Counter of objects re-applied because someone else changed fields we own.
pub const DRIFT_CORRECTIONS: &str = "fieldwise_drift_corrections";
/// Gauge of objects waiting in a controller's work queue.
pub const WORK_QUEUE_DEPTH: &str = "fieldwise_work_queue_depth";
/// Gauge of child objects the operator owns, by kind.
pub const OWNED_OBJECTS: &str = "fieldwise_owned_objects";
/// Counter of failed reconciles by controller and error category.
pub const RECONCILE_ERRORS: &str = "fieldwise_reconcile_errors";
/// Histogram of the operator's Kubernetes API requests, by verb: seconds until the response headers
/// (a watch: until its stream starts), as the operator sees them.
pub const API_REQUEST_DURATION: &str = "fieldwise_api_request_duration_seconds";
/// Gauge of the operator's API requests sent and not yet answered, by class (`read`, `write`).
pub const API_REQUESTS_IN_FLIGHT: &str = "fieldwise_api_requests_in_flight";
/// Counter of writes that waited for one of the `--concurrency` write slots.
pub const API_WRITE_WAITS: &str = "fieldwise_api_write_waits";

/// Upper bounds (seconds) of the reconcile duration buckets.
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds (seconds) of the reconcile CPU buckets: fine from 0.1 ms to 10 ms, where a reconcile's
/// own work lies, so a p99 can be read against a 2 ms target.
const CPU_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003, 0.004,
    0.005, 0.0075, 0.01, 0.025, 0.1,
];

/// Upper bounds (seconds) of the API request buckets: from half a millisecond (an in-process
/// emulator) doubling to about half a minute (a slow apply on a loaded API server).
const API_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096, 8.192, 16.384, 32.768,
];

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Everything applied; waiting for the next change.
    Success,
    /// Failed; the error policy decides the retry.
    Error,
    /// Not finished yet (e.g. waiting for a dependency); scheduled again.
    Requeue,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Requeue => "requeue",
        }
    }
    const ALL: [ReconcileResult; 3] = [Self::Success, Self::Error, Self::Requeue];
}

/// What one desired object's write (or non-write) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    /// A server-side apply request changed the object (or created it).
    Applied,
    /// Already as desired; no request sent.
    Unchanged,
    /// Deleted because it is no longer desired.
    Pruned,
    /// `spec.replicas` ownership handed to an autoscaler.
    HandedOver,
    /// The API server answered 409 Conflict.
    Conflict,
    /// Any other failed request.
    Failed,
}

impl WriteOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Applied => "applied",
            WriteOutcome::Unchanged => "unchanged",
            WriteOutcome::Pruned => "pruned",
            WriteOutcome::HandedOver => "handed_over",
            WriteOutcome::Conflict => "conflict",
            WriteOutcome::Failed => "failed",
        }
    }
}

/// The labels of one series of an info gauge, in order (e.g. `namespace`, `name`, then the
/// resource's properties).
pub type InfoLabels = Vec<(String, String)>;

/// One info gauge (`<name>{labels} 1` per resource, as the Feast operator's
/// `feast_operator_feature_store_info`), registered by the controller that exports it.
#[derive(Debug, Default)]
struct InfoGauge {
    family: Family<InfoLabels, Gauge>,
    /// `(namespace, name)` → the labels currently exported, to replace them when they change.
    current: HashMap<(String, String), InfoLabels>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteLabels {
    controller: String,
    kind: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ControllerKindLabels {
    controller: String,
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    category: &'static str,
}

/// Exemplar labels on the duration histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TraceIdLabels {
    trace_id: String,
}

type DurationHistogram = HistogramWithExemplars<TraceIdLabels>;

fn new_duration_histogram() -> DurationHistogram {
    HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())
}

fn new_cpu_histogram() -> Histogram {
    Histogram::new(CPU_BUCKETS)
}

fn new_api_histogram() -> Histogram {
    Histogram::new(API_BUCKETS)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerbLabels {
    verb: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
}

/// All operator metrics. Share it as `Arc<Metrics>`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    /// Behind a lock so controllers can register their info gauges after construction.
    registry: Mutex<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, DurationHistogram, fn() -> DurationHistogram>,
    reconcile_cpu: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    writes: Family<WriteLabels, Counter>,
    drift_corrections: Family<ControllerKindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    queue_depth: Family<ControllerLabels, Gauge>,
    owned_objects: Family<KindLabels, Gauge>,
    api_request_duration: Family<VerbLabels, Histogram, fn() -> Histogram>,
    api_in_flight: Family<ClassLabels, Gauge>,
    api_write_waits: Counter,
    /// Info gauges by metric name.
    infos: Mutex<HashMap<&'static str, InfoGauge>>,
    /// The length of the last encoding: the next one starts with that much room (one info series
    /// per resource makes megabytes at thousands of resources; growing to that by doubling copies
    /// it all again and again).
    encoded_len: std::sync::atomic::AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them in a fresh registry.
    pub fn new() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(new_duration_histogram),
            reconcile_cpu: Family::new_with_constructor(new_cpu_histogram),
            writes: Family::default(),
            drift_corrections: Family::default(),
            reconcile_errors: Family::default(),
            queue_depth: Family::default(),
            owned_objects: Family::default(),
            api_request_duration: Family::new_with_constructor(new_api_histogram),
            api_in_flight: Family::default(),
            api_write_waits: Counter::default(),
            infos: Mutex::new(HashMap::new()),
            encoded_len: std::sync::atomic::AtomicUsize::new(0),
        };
        metrics.registered()
    }

    fn registered(self) -> Self {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let r = &mut *registry;
        r.register(
            RECONCILES,
            "Reconciles by controller and result",
            self.reconciles.clone(),
        );
        r.register(
            RECONCILE_DURATION,
            "Reconcile duration in seconds; exemplars carry the trace id",
            self.reconcile_duration.clone(),
        );
        r.register(
            RECONCILE_CPU,
            "CPU time of a reconcile's own synchronous work in seconds, without waiting for the API",
            self.reconcile_cpu.clone(),
        );
        r.register(
            API_WRITES,
            "Object writes by controller, kind and outcome",
            self.writes.clone(),
        );
        r.register(
            DRIFT_CORRECTIONS,
            "Objects re-applied after another manager changed fields we own",
            self.drift_corrections.clone(),
        );
        r.register(
            RECONCILE_ERRORS,
            "Failed reconciles by controller and error category",
            self.reconcile_errors.clone(),
        );
        r.register(
            WORK_QUEUE_DEPTH,
            "Objects waiting to be reconciled",
            self.queue_depth.clone(),
        );
        r.register(
            OWNED_OBJECTS,
            "Child objects owned, by kind",
            self.owned_objects.clone(),
        );
        r.register(
            API_REQUEST_DURATION,
            "Kubernetes API requests by verb: seconds until the response headers",
            self.api_request_duration.clone(),
        );
        r.register(
            API_REQUESTS_IN_FLIGHT,
            "Kubernetes API requests sent and not yet answered, by class (read, write)",
            self.api_in_flight.clone(),
        );
        r.register(
            API_WRITE_WAITS,
            "Writes that waited for a free write slot (at most --concurrency writes are in flight)",
            self.api_write_waits.clone(),
        );
        drop(registry);
        self
    }

    /// Registers an info gauge `name` (once; later calls are no-ops), for [`Self::set_info`].
    pub fn register_info(&self, name: &'static str, help: &'static str) {
        let mut infos = self.infos.lock().unwrap_or_else(PoisonError::into_inner);
        if infos.contains_key(name) {
            return;
        }
        let gauge = InfoGauge::default();
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, gauge.family.clone());
        infos.insert(name, gauge);
    }

    /// Creates a controller's reconcile and queue series at zero, so rates and "no success"
    /// alerts work before the first reconcile.
    pub fn register_controller(&self, controller: &str) {
        for result in ReconcileResult::ALL {
            let _created = self
                .reconciles
                .get_or_create(&reconcile_labels(controller, result));
        }
        let _created = self
            .queue_depth
            .get_or_create(&controller_labels(controller));
    }

    /// Counts a finished reconcile and observes its duration, with `trace_id` as the exemplar.
    pub fn observe_reconcile(
        &self,
        controller: &str,
        result: ReconcileResult,
        duration: Duration,
        trace_id: Option<&str>,
    ) {
        self.reconciles
            .get_or_create(&reconcile_labels(controller, result))
            .inc();
        let exemplar = trace_id.map(|id| TraceIdLabels {
            trace_id: id.to_string(),
        });
        self.reconcile_duration
            .get_or_create(&controller_labels(controller))
            .observe(duration.as_secs_f64(), exemplar, Some(SystemTime::now()));
    }

    /// Observes the CPU time a reconcile spent in its own synchronous sections (see
    /// [`crate::cpu_timed`]).
    pub fn observe_reconcile_cpu(&self, controller: &str, cpu: Duration) {
        self.reconcile_cpu
            .get_or_create(&controller_labels(controller))
            .observe(cpu.as_secs_f64());
    }

    /// Counts one object write (or skipped write) of `kind` (e.g. `Deployment`) by `controller`.
    pub fn count_write(&self, controller: &str, kind: &str, outcome: WriteOutcome) {
        let labels = WriteLabels {
            controller: controller.to_string(),
            kind: kind.to_string(),
            outcome: outcome.as_str(),
        };
        self.writes.get_or_create(&labels).inc();
    }

    /// Counts one drift correction of an object of `kind` by `controller`.
    pub fn count_drift_correction(&self, controller: &str, kind: &str) {
        let labels = ControllerKindLabels {
            controller: controller.to_string(),
            kind: kind.to_string(),
        };
        self.drift_corrections.get_or_create(&labels).inc();
    }

    /// Counts a failed reconcile of `controller` by its error category (a fixed set of words,
    /// e.g. `invalid`, `conflict`, `transient`).
    pub fn count_reconcile_error(&self, controller: &str, category: &'static str) {
        let labels = ErrorLabels {
            controller: controller.to_string(),
            category,
        };
        self.reconcile_errors.get_or_create(&labels).inc();
    }

    /// Sets a controller's work-queue depth.
    pub fn set_queue_depth(&self, controller: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&controller_labels(controller))
            .set(saturating_i64(depth));
    }

    /// Sets how many objects of `kind` the operator owns (e.g. counted from reflector stores).
    pub fn set_owned_objects(&self, kind: &str, count: usize) {
        self.owned_objects
            .get_or_create(&kind_labels(kind))
            .set(saturating_i64(count));
    }

    /// Exports `name{labels} 1` for the resource `(namespace, resource)`, replacing its previous
    /// series if the labels changed. `name` must have been registered with
    /// [`Self::register_info`]; otherwise nothing is exported.
    pub fn set_info(
        &self,
        name: &'static str,
        namespace: &str,
        resource: &str,
        labels: InfoLabels,
    ) {
        let mut infos = self.infos.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(gauge) = infos.get_mut(name) else {
            return;
        };
        let key = (namespace.to_string(), resource.to_string());
        if let Some(previous) = gauge
            .current
            .get(&key)
            .filter(|previous| **previous != labels)
        {
            gauge.family.remove(previous);
        }
        gauge.family.get_or_create(&labels).set(1);
        gauge.current.insert(key, labels);
    }

    /// Removes the series of a resource that went away from the info gauge `name`.
    pub fn remove_info(&self, name: &'static str, namespace: &str, resource: &str) {
        let mut infos = self.infos.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(gauge) = infos.get_mut(name) else {
            return;
        };
        let key = (namespace.to_string(), resource.to_string());
        if let Some(previous) = gauge.current.remove(&key) {
            gauge.family.remove(&previous);
        }
    }

    /// Observes one API request's time to its response headers; `verb` is one of a fixed set
    /// (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`).
    pub fn observe_api_request(&self, verb: &'static str, duration: Duration) {
        self.api_request_duration
            .get_or_create(&VerbLabels { verb })
            .observe(duration.as_secs_f64());
    }

    /// Counts one API request of `class` (`read` or `write`) in flight until the guard is dropped
    /// (answered, failed or given up).
    pub fn api_request_in_flight(&self, class: &'static str) -> InFlight {
        let gauge = self
            .api_in_flight
            .get_or_create(&ClassLabels { class })
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Counts a write that had to wait for a write slot.
    pub fn count_api_write_wait(&self) {
        self.api_write_waits.inc();
    }

    /// Encodes every metric as OpenMetrics text (ending in `# EOF`).
    pub fn encode(&self) -> Result<String, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.encoded_len.load(Relaxed);
        let mut text = String::with_capacity(last + last / 8);
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .map_err(|_| Error::EncodeMetrics)?;
        self.encoded_len.store(text.len(), Relaxed);
        Ok(text)
    }
}

/// One API request in flight, from [`Metrics::api_request_in_flight`]; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn reconcile_labels(controller: &str, result: ReconcileResult) -> ReconcileLabels {
    ReconcileLabels {
        controller: controller.to_string(),
        result: result.as_str(),
    }
}

fn controller_labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_string(),
    }
}

fn kind_labels(kind: &str) -> KindLabels {
    KindLabels {
        kind: kind.to_string(),
    }
}

fn saturating_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `prefix` (name and labels).
    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn reconcile_cpu_is_a_histogram_with_sub_millisecond_buckets() {
        let metrics = Metrics::new();
        metrics.observe_reconcile_cpu("featurestore", Duration::from_micros(400));
        metrics.observe_reconcile_cpu("featurestore", Duration::from_micros(1900));
        metrics.observe_reconcile_cpu("featurestore", Duration::from_millis(30));
        let text = metrics.encode().expect("metrics encode");
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("{RECONCILE_CPU}_bucket{{le=\"{le}\",controller=\"featurestore\"}}"),
            )
        };
        assert_eq!(bucket("0.00025"), Some(0.0), "{text}");
        assert_eq!(bucket("0.0005"), Some(1.0), "{text}");
        assert_eq!(bucket("0.00175"), Some(1.0), "{text}");
        assert_eq!(bucket("0.002"), Some(2.0), "{text}");
        assert_eq!(bucket("0.025"), Some(2.0), "{text}");
        assert_eq!(bucket("0.1"), Some(3.0), "{text}");
        assert_eq!(bucket("+Inf"), Some(3.0), "{text}");
        let count = format!("{RECONCILE_CPU}_count{{controller=\"featurestore\"}}");
        assert_eq!(sample(&text, &count), Some(3.0), "{text}");
        let sum = format!("{RECONCILE_CPU}_sum{{controller=\"featurestore\"}}");
        let sum = sample(&text, &sum).expect("a _sum sample");
        assert!((sum - 0.0323).abs() < 1e-9, "{sum}");
    }
}
