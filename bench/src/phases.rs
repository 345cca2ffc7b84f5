//! Where a phase's time went (issue 23): how busy the operator and the bench process (emulator,
//! simulators, driver) kept the CPUs each may use, and how long their threads were runnable but
//! not running, so that a slow phase names its cause; and a timeline of the operator's queue and
//! both sides' CPU sampled while a phase runs.

use std::time::Instant;

use serde_json::{Value, json};

use crate::{ChildMetrics, cpus::CpuSplit};

/// A side that kept this share of its CPUs busy over a phase is what the phase waited for. Below it
/// on both sides the phase waited on time itself: the debounce, the quiet period, request latency;
/// unless a side would have reached it with the time its threads spent runnable on a run queue,
/// which is other load on the machine taking the CPUs.
const BUSY_SHARE: f64 = 0.8;

/// CPU seconds a process (or several, added up) used, and seconds its threads were runnable but
/// waiting for a CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessTimes {
    pub cpu_seconds: f64,
    pub runqueue_wait_seconds: f64,
}

impl ProcessTimes {
    pub fn plus(self, other: ProcessTimes) -> ProcessTimes {
        ProcessTimes {
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            runqueue_wait_seconds: self.runqueue_wait_seconds + other.runqueue_wait_seconds,
        }
    }

    fn minus(self, earlier: ProcessTimes) -> ProcessTimes {
        ProcessTimes {
            cpu_seconds: self.cpu_seconds - earlier.cpu_seconds,
            runqueue_wait_seconds: self.runqueue_wait_seconds - earlier.runqueue_wait_seconds,
        }
    }
}

/// The times so far of the operator processes of the run and of the bench process.
#[derive(Debug, Clone, Copy)]
pub struct CpuReading {
    pub at: Instant,
    pub operator: ProcessTimes,
    pub bench: ProcessTimes,
}

impl CpuReading {
    /// Now, given the operator processes' times so far (the bench's own are read here).
    pub fn now(operator: ProcessTimes) -> Self {
        CpuReading {
            at: Instant::now(),
            operator,
            bench: crate::process_cost("/proc/self").times(),
        }
    }
}

/// What kept a phase from finishing sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Operator,
    Emulator,
    /// Neither side busy, but one would have been had it got the CPU it was waiting for.
    Starved,
    Waiting,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Operator => "operator-bound",
            Bound::Emulator => "emulator-bound",
            Bound::Starved => "cpu-starved (other load on the machine)",
            Bound::Waiting => "waiting",
        }
    }
}

/// Wall time and both sides' CPU over one phase.
#[derive(Debug, Clone)]
pub struct PhaseTime {
    pub phase: &'static str,
    pub wall_seconds: f64,
    pub operator: ProcessTimes,
    pub bench: ProcessTimes,
    /// CPUs each side may use: with a split the operator has one and the bench the rest; shared,
    /// both may use all of them, and contend for them.
    pub operator_cpus: usize,
    pub bench_cpus: usize,
    pub shared: bool,
}

impl PhaseTime {
    pub fn between(
        phase: &'static str,
        start: &CpuReading,
        end: &CpuReading,
        cpus: &CpuSplit,
    ) -> Self {
        let (operator_cpus, bench_cpus, shared) = match cpus {
            CpuSplit::Split { rest, .. } => (1, rest.len().max(1), false),
            CpuSplit::Shared(all) => (all.len().max(1), all.len().max(1), true),
        };
        PhaseTime {
            phase,
            wall_seconds: (end.at - start.at).as_secs_f64(),
            operator: end.operator.minus(start.operator),
            bench: end.bench.minus(start.bench),
            operator_cpus,
            bench_cpus,
            shared,
        }
    }

    /// Share of its CPUs the operator kept busy (1.0: all of them all the time).
    pub fn operator_busy(&self) -> f64 {
        share(
            self.operator.cpu_seconds,
            self.wall_seconds,
            self.operator_cpus,
        )
    }

    pub fn bench_busy(&self) -> f64 {
        share(self.bench.cpu_seconds, self.wall_seconds, self.bench_cpus)
    }

    /// The busier side when it kept its CPUs (shared: the CPUs both use, together) at least
    /// `BUSY_SHARE` busy; else starved when running and waiting to run together reach it; else the
    /// phase was waiting.
    pub fn bound(&self) -> Bound {
        let (operator, bench) = (self.operator_busy(), self.bench_busy());
        let wanted = |times: &ProcessTimes, cpus| {
            let seconds = times.cpu_seconds + times.runqueue_wait_seconds;
            share(seconds, self.wall_seconds, cpus)
        };
        let operator_wanted = wanted(&self.operator, self.operator_cpus);
        let bench_wanted = wanted(&self.bench, self.bench_cpus);
        let (busiest, most_wanted) = if self.shared {
            (operator + bench, operator_wanted + bench_wanted)
        } else {
            (operator.max(bench), operator_wanted.max(bench_wanted))
        };
        if busiest >= BUSY_SHARE && operator >= bench {
            Bound::Operator
        } else if busiest >= BUSY_SHARE {
            Bound::Emulator
        } else if most_wanted >= BUSY_SHARE {
            Bound::Starved
        } else {
            Bound::Waiting
        }
    }

    pub fn markdown_row(&self) -> String {
        let side = |times: &ProcessTimes, busy: f64, cpus: usize| {
            format!(
                "{:.2} ({:.0}% of {cpus} CPU) / {:.2}",
                times.cpu_seconds,
                100.0 * busy,
                times.runqueue_wait_seconds
            )
        };
        format!(
            "| {} | {:.1} | {} | {} | {} |",
            self.phase,
            self.wall_seconds,
            side(&self.operator, self.operator_busy(), self.operator_cpus),
            side(&self.bench, self.bench_busy(), self.bench_cpus),
            self.bound().as_str()
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "phase": self.phase,
            "wall_seconds": self.wall_seconds,
            "operator_cpu_seconds": self.operator.cpu_seconds,
            "operator_runqueue_wait_seconds": self.operator.runqueue_wait_seconds,
            "operator_cpus": self.operator_cpus,
            "operator_busy": self.operator_busy(),
            "emulator_cpu_seconds": self.bench.cpu_seconds,
            "emulator_runqueue_wait_seconds": self.bench.runqueue_wait_seconds,
            "emulator_cpus": self.bench_cpus,
            "emulator_busy": self.bench_busy(),
            "shared_cpus": self.shared,
            "bound": self.bound().as_str(),
        })
    }
}

/// `seconds` of CPU time as a share of `cpus` CPUs over `wall_seconds`.
fn share(seconds: f64, wall_seconds: f64, cpus: usize) -> f64 {
    if wall_seconds <= 0.0 {
        return 0.0;
    }
    seconds / (wall_seconds * cpus as f64)
}

/// The columns of a timeline point in the JSON line, in order.
pub const TIMELINE_COLUMNS: [&str; 8] = [
    "seconds",
    "queue_depth",
    "reconciles",
    "operator_cpu_seconds",
    "emulator_cpu_seconds",
    "ready",
    "writes_in_flight",
    "reads_in_flight",
];

/// One sample of a running phase; CPU seconds count from the phase's start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePoint {
    pub seconds: f64,
    pub queue_depth: u64,
    pub reconciles: u64,
    pub operator_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
    /// Resources up so far, where the phase tracks it (cold start).
    pub ready: Option<usize>,
    /// The operator's requests in flight, once it exposes them.
    pub writes_in_flight: Option<f64>,
    pub reads_in_flight: Option<f64>,
}

/// Samples of one phase, taken every `SAMPLE_PERIOD` while it runs.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: CpuReading,
    pub points: Vec<TimelinePoint>,
}

impl Timeline {
    pub fn new(start: CpuReading) -> Self {
        Timeline {
            start,
            points: Vec::new(),
        }
    }

    /// Adds a sample: the operator's metrics and times so far (as in `CpuReading`).
    pub fn record(&mut self, metrics: &ChildMetrics, operator: ProcessTimes, ready: Option<usize>) {
        let now = CpuReading::now(operator);
        self.points.push(TimelinePoint {
            seconds: (now.at - self.start.at).as_secs_f64(),
            queue_depth: metrics.queue_depth,
            reconciles: metrics.reconciles,
            operator_cpu_seconds: now.operator.cpu_seconds - self.start.operator.cpu_seconds,
            bench_cpu_seconds: now.bench.cpu_seconds - self.start.bench.cpu_seconds,
            ready,
            writes_in_flight: metrics.api_in_flight.get("write").copied(),
            reads_in_flight: metrics.api_in_flight.get("read").copied(),
        });
    }

    /// Seconds from the last point to now; `None` before the first.
    pub fn seconds_since_last_point(&self) -> Option<f64> {
        let last = self.points.last()?;
        Some(self.start.at.elapsed().as_secs_f64() - last.seconds)
    }

    /// The deepest queue seen and when (the first time it was that deep).
    pub fn peak_depth(&self) -> Option<(u64, f64)> {
        let deepest = self.points.iter().map(|p| p.queue_depth).max()?;
        let first = self.points.iter().find(|p| p.queue_depth == deepest)?;
        Some((deepest, first.seconds))
    }

    /// When the queue was empty from on to the last sample: the first empty sample after the last
    /// non-empty one (0 if it never held anything, `None` if it never emptied).
    pub fn queue_empty_from(&self) -> Option<f64> {
        let last_busy = self.points.iter().rposition(|p| p.queue_depth > 0);
        let first_empty_after = last_busy.map_or(0, |i| i + 1);
        self.points.get(first_empty_after).map(|p| p.seconds)
    }

    pub fn summary(&self) -> String {
        let Some((depth, at)) = self.peak_depth() else {
            return "no samples".to_owned();
        };
        if depth == 0 {
            return format!(
                "queue empty at every sample ({} samples)",
                self.points.len()
            );
        }
        let empty = self.queue_empty_from().map_or_else(
            || "never empty".to_owned(),
            |s| format!("empty from +{s:.0} s"),
        );
        format!(
            "queue depth peak {depth} at +{at:.0} s, {empty} ({} samples)",
            self.points.len()
        )
    }

    /// One array per point, columns as `TIMELINE_COLUMNS`; CPU and time rounded to 10 ms.
    pub fn json(&self) -> Value {
        let centi = |v: f64| (v * 100.0).round() / 100.0;
        self.points
            .iter()
            .map(|p| {
                json!([
                    centi(p.seconds),
                    p.queue_depth,
                    p.reconciles,
                    centi(p.operator_cpu_seconds),
                    centi(p.bench_cpu_seconds),
                    p.ready,
                    p.writes_in_flight,
                    p.reads_in_flight
                ])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cpu(cpu_seconds: f64) -> ProcessTimes {
        ProcessTimes {
            cpu_seconds,
            runqueue_wait_seconds: 0.0,
        }
    }

    /// A phase of `wall` seconds in which each side used (and waited for) the given times.
    fn phase_with(
        wall: f64,
        operator: ProcessTimes,
        bench: ProcessTimes,
        cpus: &CpuSplit,
    ) -> PhaseTime {
        let start = CpuReading {
            at: Instant::now(),
            operator: cpu(1.0),
            bench: cpu(2.0),
        };
        let end = CpuReading {
            at: start.at + Duration::from_secs_f64(wall),
            operator: start.operator.plus(operator),
            bench: start.bench.plus(bench),
        };
        PhaseTime::between("cold start", &start, &end, cpus)
    }

    fn phase(wall: f64, operator: f64, bench: f64, cpus: &CpuSplit) -> PhaseTime {
        phase_with(wall, cpu(operator), cpu(bench), cpus)
    }

    #[test]
    fn the_side_that_kept_its_cpus_busy_bounds_the_phase() {
        let split = CpuSplit::of(&[0, 1, 2], false);
        // The operator has one CPU, the bench two.
        let operator_busy = phase(10.0, 9.0, 4.0, &split);
        assert_eq!(operator_busy.operator_busy(), 0.9);
        assert_eq!(operator_busy.bench_busy(), 0.2);
        assert_eq!(operator_busy.bound(), Bound::Operator);
        assert_eq!(phase(10.0, 5.0, 18.0, &split).bound(), Bound::Emulator);
        assert_eq!(phase(10.0, 5.0, 12.0, &split).bound(), Bound::Waiting);
        assert_eq!(phase(0.0, 0.0, 0.0, &split).bound(), Bound::Waiting);
    }

    #[test]
    fn shared_cpus_are_busy_when_both_sides_together_fill_them() {
        let shared = CpuSplit::Shared(vec![0, 1]);
        // Each side alone used under half of the two CPUs; together 90%.
        let both = phase(10.0, 8.0, 10.0, &shared);
        assert_eq!(both.bound(), Bound::Emulator);
        assert_eq!(phase(10.0, 4.0, 4.0, &shared).bound(), Bound::Waiting);
        assert!(both.markdown_row().contains("(40% of 2 CPU)"));
        assert_eq!(both.json()["bound"], "emulator-bound");
    }

    #[test]
    fn a_side_kept_off_its_cpu_by_other_load_is_starved_not_waiting() {
        let split = CpuSplit::of(&[0, 1], false);
        let kept_off = ProcessTimes {
            cpu_seconds: 3.0,
            runqueue_wait_seconds: 6.0,
        };
        let starved = phase_with(10.0, cpu(1.0), kept_off, &split);
        assert_eq!(starved.bound(), Bound::Starved);
        assert_eq!(
            starved.markdown_row(),
            "| cold start | 10.0 | 1.00 (10% of 1 CPU) / 0.00 | 3.00 (30% of 1 CPU) / 6.00 | \
             cpu-starved (other load on the machine) |"
        );
        assert_eq!(starved.json()["emulator_runqueue_wait_seconds"], 6.0);
        let briefly_kept_off = ProcessTimes {
            runqueue_wait_seconds: 1.0,
            ..kept_off
        };
        assert_eq!(
            phase_with(10.0, cpu(1.0), briefly_kept_off, &split).bound(),
            Bound::Waiting
        );
    }

    fn timeline(depths: &[u64]) -> Timeline {
        let start = CpuReading::now(ProcessTimes::default());
        let mut timeline = Timeline::new(start);
        for (i, depth) in depths.iter().enumerate() {
            timeline.points.push(TimelinePoint {
                seconds: i as f64,
                queue_depth: *depth,
                reconciles: 0,
                operator_cpu_seconds: 0.0,
                bench_cpu_seconds: 0.0,
                ready: None,
                writes_in_flight: None,
                reads_in_flight: None,
            });
        }
        timeline
    }

    #[test]
    fn the_timeline_names_the_peak_and_when_the_queue_emptied() {
        let filled_and_drained = timeline(&[0, 40, 90, 90, 0, 3, 0, 0]);
        assert_eq!(filled_and_drained.peak_depth(), Some((90, 2.0)));
        assert_eq!(filled_and_drained.queue_empty_from(), Some(6.0));
        assert_eq!(
            filled_and_drained.summary(),
            "queue depth peak 90 at +2 s, empty from +6 s (8 samples)"
        );
        assert_eq!(timeline(&[5, 7]).queue_empty_from(), None);
        assert_eq!(timeline(&[0, 0]).queue_empty_from(), Some(0.0));
        assert_eq!(
            timeline(&[0, 0]).summary(),
            "queue empty at every sample (2 samples)"
        );
        assert_eq!(timeline(&[]).summary(), "no samples");
    }

    #[test]
    fn a_recorded_point_holds_the_metrics_and_cpu_since_the_start() {
        let mut timeline = Timeline::new(CpuReading::now(cpu(2.0)));
        let metrics = ChildMetrics {
            reconciles: 7,
            queue_depth: 3,
            api_in_flight: [("write".to_owned(), 4.0)].into(),
            ..ChildMetrics::default()
        };
        timeline.record(&metrics, cpu(2.5), Some(6));
        let point = &timeline.points[0];
        assert_eq!((point.queue_depth, point.reconciles), (3, 7));
        assert_eq!(point.operator_cpu_seconds, 0.5);
        assert_eq!((point.ready, point.writes_in_flight), (Some(6), Some(4.0)));
        assert_eq!(point.reads_in_flight, None);
        let row = &timeline.json()[0];
        assert_eq!(row.as_array().map(Vec::len), Some(TIMELINE_COLUMNS.len()));
        assert_eq!(row[5], 6);
    }
}
