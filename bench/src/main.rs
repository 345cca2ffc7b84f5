//! `bench`: how fieldwise performs against the emulator (issue 10). Never a timed test.
//!
//! `cargo run --release -p fieldwise-bench -- --feature-stores 100 --json bench.jsonl`
//!
//! The bench process holds the emulator, its simulated controllers and the driver (which applies objects
//! over HTTP and reads FeatureStore and PrismCluster phases straight from the emulator's store, so it
//! sends no reads; `--prism-clusters` adds PrismClusters, see `owners.rs`). The
//! operator runs in a child process (this binary re-executed with `--operator-child`), started through
//! `fieldwise::runtime::run` exactly as `fieldwise run` does, so its peak resident memory
//! (VmHWM) and CPU time (utime + stime) are its own, read from `/proc/<pid>`; the bench process's own
//! cost is the emulator's (plus simulators and driver), reported separately. The child answers
//! `metrics` on its stdin with its Prometheus metrics (reconcile counts, reconcile CPU histogram); EOF
//! stops it gracefully. Every wait has a limit: a phase that does not finish is reported as timed out.

mod cpus;
mod owners;
mod phases;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use cpus::CpuSplit;
use fieldwise::featurestore::render::kubernetes_yaml;
use fieldwise::runtime::{RunOptions, run};
use fieldwise_api::v1::FeatureStore;
use fieldwise_e2e::emulator::store::ObjKey;
use fieldwise_e2e::{
    Emulator, EmulatorHandle,
    emulator::{ApiError, RequestHook, RequestInfo},
    sim::{SimOptions, Simulators},
};
use fieldwise_observability::{Health, Metrics};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use owners::{BenchOwner, Kind, OWNER_RESOURCES, SECRETS, Sample};
use phases::{CpuReading, PhaseTime, ProcessTimes, TIMELINE_COLUMNS, Timeline};
use serde_json::{Value, json};

/// jemalloc, as `fieldwise` uses; the operator child also gets `fieldwise`'s options
/// (`--child-malloc-conf`), this process keeps jemalloc's defaults.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Field manager of the driver's writes (a user's `kubectl apply --server-side`).
const USER: &str = "bench-user";
/// Stack of the bench's runtime threads: a FeatureStore is ~12 KB and deserialised in deep frames.
const THREAD_STACK: usize = 16 << 20;
/// Line the operator child ends each metrics answer with.
const END_OF_METRICS: &str = "# bench: end of metrics";
/// How long a graceful stop of the operator may take before the bench kills it.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How often the cold start and the restart pass are sampled for their timelines.
const SAMPLE_PERIOD: Duration = Duration::from_secs(1);
/// How often the restart pass asks the new operator whether it has reconciled everything.
const RESTART_CHECK_PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Benchmark fieldwise against the emulator")]
struct Args {
    /// How many FeatureStores (a round-robin mix of the deploy/samples).
    #[arg(long, default_value_t = 1)]
    feature_stores: usize,
    /// How many namespaces the FeatureStores are spread over (Secrets are created once per
    /// namespace).
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// How many PrismClusters (the sample `prismcluster-local`), each in a namespace of its own
    /// (`prism-<i>`), beside the FeatureStores.
    #[arg(long, default_value_t = 0)]
    prism_clusters: usize,
    /// Secrets per namespace that no FeatureStore reads, each like a `kubectl apply`-ed Secret of
    /// 16 KiB (its last-applied annotation repeats the data): what a real cluster holds beside the
    /// operator's inputs (the operator watches every Secret in its namespaces).
    #[arg(long, default_value_t = 0)]
    unrelated_secrets: usize,
    /// Length of the steady-state window in seconds.
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// The operator's resync period (`fieldwise run --resync-seconds`) for the steady window and the
    /// change phase; cold start runs with the default of `fieldwise run`.
    #[arg(long, default_value_t = 5)]
    resync_seconds: u64,
    /// Also restart the operator this often (seconds) during the steady window, so it re-reconciles
    /// everything from fresh lists. Off by default.
    #[arg(long)]
    restart_every: Option<u64>,
    /// How many single spec changes to time.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// Seconds without an operator write that count as "settled".
    #[arg(long, default_value_t = 2.0)]
    quiet_seconds: f64,
    /// Give up waiting for cold-start Ready after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Give up any other wait (settling, the pass after a restart, one change) after this many seconds.
    #[arg(long, default_value_t = 300)]
    phase_timeout_seconds: u64,
    /// jemalloc options of the operator child (`_RJEM_MALLOC_CONF`); by default those `fieldwise`
    /// ships with (`fieldwise::JEMALLOC_OPTIONS`). The bench process itself (emulator, simulators,
    /// driver) runs with jemalloc's defaults.
    #[arg(long, default_value = fieldwise::JEMALLOC_OPTIONS)]
    child_malloc_conf: String,
    /// File the JSON line of this run is appended to.
    #[arg(long, default_value = "bench-results.jsonl")]
    json: PathBuf,
    /// Run the operator child on the same CPUs as the emulator. By default it gets a CPU of its
    /// own (the last one this process may use) and the emulator the others, as a real API server
    /// runs on other machines (see `bench/src/cpus.rs`).
    #[arg(long)]
    shared_cpus: bool,
    /// Internal: run only the operator against this kubeconfig (the child process).
    #[arg(long, hide = true)]
    operator_child: Option<PathBuf>,
    /// Internal: the child's resync period in seconds.
    #[arg(long, hide = true)]
    child_resync_seconds: Option<u64>,
    /// Internal: the CPU the child runs on.
    #[arg(long, hide = true)]
    child_cpu: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(kubeconfig) = &args.operator_child {
        return operator_child(kubeconfig, args.child_resync_seconds, args.child_cpu);
    }
    let split = match cpus::allowed() {
        Ok(allowed) => CpuSplit::of(&allowed, args.shared_cpus),
        Err(error) => {
            eprintln!("error: cannot read this process's CPUs: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Before the runtime exists, so that every thread of this process inherits it.
    if let CpuSplit::Split { rest, .. } = &split
        && let Err(error) = cpus::pin_current_thread(rest)
    {
        eprintln!("error: cannot keep the emulator off the operator's CPU: {error}");
        return ExitCode::FAILURE;
    }
    eprintln!("CPUs: {split}");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(THREAD_STACK)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args, split)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

type BenchResult<T> = Result<T, String>;

fn err(context: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |error| format!("{context}: {error}")
}

// ---------------------------------------------------------------------------------------------------
// The operator child.

/// Runs the operator as `fieldwise run` does (same runtime, client, settings and options, with
/// `--resync-seconds` when given) until stdin ends.
fn operator_child(kubeconfig: &Path, resync_seconds: Option<u64>, cpu: Option<usize>) -> ExitCode {
    // SAFETY of set_var: called before any other thread of this process exists.
    unsafe { std::env::set_var("KUBECONFIG", kubeconfig) };
    // Before the runtime, whose worker count follows the CPUs this process may use (one here, as
    // for `fieldwise run` in a container limited to one CPU).
    if let Some(cpu) = cpu
        && let Err(error) = cpus::pin_current_thread(&[cpu])
    {
        eprintln!("operator child: cannot run on CPU {cpu}: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match fieldwise::cli::run::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("operator child: no runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        // Diagnostics only: `BENCH_CHILD_LOG=<filter>` sends the child's logs to stderr (stdout
        // carries the metrics answers).
        let _logs = std::env::var("BENCH_CHILD_LOG").ok().and_then(|filter| {
            let config = fieldwise_observability::TelemetryConfig {
                log_filter: Some(filter),
                ..Default::default()
            };
            let (dispatch, guard) =
                fieldwise_observability::dispatch_with_writer(&config, |_| None, std::io::stderr)
                    .ok()?;
            tracing::dispatcher::set_global_default(dispatch).ok()?;
            Some(guard)
        });
        // The controllers' client as `fieldwise run` builds it: its metrics time every request.
        let metrics = Arc::new(Metrics::new());
        let concurrency = RunOptions::default().concurrency;
        let client = fieldwise::cli::run::controllers_client(&metrics, concurrency).await?;
        let mut settings = fieldwise::cli::run::settings(&client).await;
        if let Some(seconds) = resync_seconds {
            settings.resync_period = Duration::from_secs(seconds);
        }
        let options = RunOptions {
            settings,
            ..RunOptions::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let answering = metrics.clone();
        std::thread::spawn(move || answer_on_stdin(&answering, stop));
        run(client, options, metrics, Health::new(), async move {
            let _ = stopped.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("operator child: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Answers each `metrics` line with the encoded metrics; stops the operator when stdin ends.
fn answer_on_stdin(metrics: &Metrics, stop: tokio::sync::oneshot::Sender<()>) {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() != "metrics" {
            break;
        }
        let text = metrics.encode().unwrap_or_default();
        if writeln!(stdout, "{text}\n{END_OF_METRICS}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    let _ = stop.send(());
}

/// The operator child process, seen from the bench.
struct Operator {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// CPU seconds and peak resident memory of one process.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    cpu_seconds: f64,
    /// Seconds its threads were runnable but waiting for a CPU.
    runqueue_wait_seconds: f64,
    peak_rss_kib: u64,
    rss_kib: u64,
}

/// How to start the operator child.
#[derive(Debug, Clone, Default)]
struct ChildOptions {
    resync_seconds: Option<u64>,
    malloc_conf: String,
    cpu: Option<usize>,
}

impl Operator {
    fn start(kubeconfig: &Path, options: &ChildOptions) -> BenchResult<Self> {
        let exe = std::env::current_exe().map_err(|e| err("current exe")(&e))?;
        // Diagnostics only: `BENCH_CHILD_WRAPPER="heaptrack -o /tmp/op"` runs the operator child
        // under a profiler (the child's /proc figures are then the wrapper's).
        let wrapper = std::env::var("BENCH_CHILD_WRAPPER").unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command.arg("--operator-child").arg(kubeconfig);
        if let Some(seconds) = options.resync_seconds {
            command
                .arg("--child-resync-seconds")
                .arg(seconds.to_string());
        }
        if let Some(cpu) = options.cpu {
            command.arg("--child-cpu").arg(cpu.to_string());
        }
        // jemalloc reads its options from this variable after the binary's own (the bench binary
        // has none, so that the emulator in this process runs with jemalloc's defaults).
        command.env("_RJEM_MALLOC_CONF", &options.malloc_conf);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| err("spawning the operator")(&e))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("operator child has no stdout")?;
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// The child's metrics now (blocking read of its answer; it answers from its own thread).
    fn metrics(&mut self) -> BenchResult<ChildMetrics> {
        let stdin = self.stdin.as_mut().ok_or("operator stopped")?;
        writeln!(stdin, "metrics")
            .and_then(|()| stdin.flush())
            .map_err(|e| err("asking for metrics")(&e))?;
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let read = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| err("reading metrics")(&e))?;
            if read == 0 || line.trim_end() == END_OF_METRICS {
                break;
            }
            text.push_str(&line);
        }
        Ok(ChildMetrics::parse(&text))
    }

    fn cost(&self) -> Cost {
        process_cost(&format!("/proc/{}", self.child.id()))
    }

    /// Closes stdin (a graceful stop) and waits up to `grace` for the exit; kills the child when it
    /// does not stop in time. Returns the cost measured just before and whether it stopped by itself.
    async fn stop(mut self, grace: Duration) -> BenchResult<(Cost, bool)> {
        let cost = self.cost();
        drop(self.stdin.take());
        let asked = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok((cost, true)),
                Ok(Some(status)) => return Err(format!("the operator exited with {status}")),
                Ok(None) if asked.elapsed() < grace => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(None) => {
                    eprintln!(
                        "the operator did not stop within {grace:?} of being asked; killing it"
                    );
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Ok((cost, false));
                }
                Err(error) => return Err(err("waiting for the operator")(&error)),
            }
        }
    }
}

/// What the bench reads from the child's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
struct ChildMetrics {
    /// `fieldwise_reconciles_total`, all results.
    reconciles: u64,
    /// Those with `result="error"`.
    errors: u64,
    /// `fieldwise_work_queue_depth`: FeatureStores triggered and not yet reconciled.
    queue_depth: u64,
    /// `fieldwise_reconcile_cpu_seconds`.
    cpu: Histogram,
    /// `fieldwise_api_request_duration_seconds` by `verb`: the operator's client, from sending a
    /// request to its response headers. Empty when the operator does not expose it.
    api_latency: BTreeMap<String, Histogram>,
    /// `fieldwise_api_write_waits_total`: writes that waited for a free write slot
    /// (`--concurrency`); `None` when the operator does not expose it.
    api_write_waits: Option<f64>,
    /// `fieldwise_api_requests_in_flight` by `class` (`read`, `write`), now.
    api_in_flight: BTreeMap<String, f64>,
}

/// A cumulative Prometheus histogram: (upper bound, count at or below it), then sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

/// The value of a sample line.
fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

impl ChildMetrics {
    fn parse(metrics: &str) -> Self {
        let mut parsed = Self::default();
        for line in metrics.lines() {
            let value = sample_value(line);
            if line.starts_with("fieldwise_reconciles_total") {
                parsed.reconciles += value as u64;
                if line.contains("result=\"error\"") {
                    parsed.errors += value as u64;
                }
            } else if line.starts_with("fieldwise_work_queue_depth{") {
                parsed.queue_depth += value as u64;
            } else if let Some(part) = line.strip_prefix("fieldwise_reconcile_cpu_seconds_") {
                parsed.cpu.read_sample(part, line, value);
            } else if let Some(part) = line.strip_prefix("fieldwise_api_request_duration_seconds_")
            {
                let verb = label(line, "verb").unwrap_or_default().to_owned();
                let histogram = parsed.api_latency.entry(verb).or_default();
                histogram.read_sample(part, line, value);
            } else if line.starts_with("fieldwise_api_write_waits_total") {
                *parsed.api_write_waits.get_or_insert(0.0) += value;
            } else if line.starts_with("fieldwise_api_requests_in_flight") {
                let class = label(line, "class").unwrap_or_default().to_owned();
                *parsed.api_in_flight.entry(class).or_default() += value;
            }
        }
        parsed
    }

    /// What happened after `earlier`, a snapshot of the same process; gauges as they are now.
    fn since(&self, earlier: &ChildMetrics) -> ChildMetrics {
        let api_latency = self
            .api_latency
            .iter()
            .map(|(verb, now)| {
                let before = earlier.api_latency.get(verb).cloned().unwrap_or_default();
                (verb.clone(), now.since(&before))
            })
            .collect();
        ChildMetrics {
            reconciles: self.reconciles - earlier.reconciles.min(self.reconciles),
            errors: self.errors - earlier.errors.min(self.errors),
            queue_depth: self.queue_depth,
            cpu: self.cpu.since(&earlier.cpu),
            api_latency,
            api_write_waits: self
                .api_write_waits
                .map(|now| now - earlier.api_write_waits.unwrap_or(0.0)),
            api_in_flight: self.api_in_flight.clone(),
        }
    }
}

/// The value of label `name` in a sample line (`metric{a="x",name="y"} 1`).
fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let labels = line.split_once('{')?.1.split_once('}')?.0;
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

impl Histogram {
    /// Takes in one sample line of this histogram; `part` is the line after `<name>_`.
    fn read_sample(&mut self, part: &str, line: &str, value: f64) {
        if part.starts_with("bucket") {
            if let Some(le) = label(line, "le") {
                let bound = le.parse::<f64>().unwrap_or(f64::INFINITY);
                self.buckets.push((bound, value));
            }
        } else if part.starts_with("sum") {
            self.sum += value;
        } else if part.starts_with("count") {
            self.count += value;
        }
    }

    /// The observations made after `earlier` (a snapshot of the same process).
    fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, count)| *count)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|(le, count)| (*le, count - before(*le)))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Adds another process's observations (same buckets).
    fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for ((_, count), (_, more)) in self.buckets.iter_mut().zip(&other.buckets) {
                *count += more;
            }
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// Upper bound (seconds) of the bucket holding the `q` quantile: the true quantile is at most this.
    fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map(|(le, _)| *le)
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// "≤ bound" of the bucket holding the `q` quantile, in milliseconds; past the last finite
    /// bound, "> " that bound.
    fn quantile_ms(&self, q: f64) -> String {
        match self.quantile_bound(q) {
            Some(bound) if bound.is_finite() => format!("≤ {:.2}", bound * 1000.0),
            Some(_) => {
                let last_finite = self
                    .buckets
                    .iter()
                    .map(|(le, _)| *le)
                    .filter(|le| le.is_finite());
                format!("> {:.2}", last_finite.fold(0.0, f64::max) * 1000.0)
            }
            None => "n/a".to_owned(),
        }
    }

    /// "p50 / p99 / mean" in milliseconds, quantiles as bucket upper bounds.
    fn summary_ms(&self) -> String {
        let mean = self
            .mean()
            .map_or_else(|| "n/a".to_owned(), |mean| format!("{:.2}", mean * 1000.0));
        format!(
            "{} / {} / {mean} over {}",
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.count
        )
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_le_seconds": self.quantile_bound(0.5),
            "p99_le_seconds": self.quantile_bound(0.99),
            "mean_seconds": self.mean(),
            // Cumulative counts per upper bound, as Prometheus reports them (null: +Inf).
            "buckets": self
                .buckets
                .iter()
                .map(|(le, count)| json!([le.is_finite().then_some(*le), count]))
                .collect::<Vec<_>>(),
        })
    }
}

/// CPU (utime + stime), run-queue wait and memory (VmHWM, VmRSS) of the process at `proc_dir`.
fn process_cost(proc_dir: &str) -> Cost {
    let cost = fieldwise_e2e::procfs::process_cost(proc_dir);
    Cost {
        cpu_seconds: cost.cpu_seconds,
        runqueue_wait_seconds: runqueue_wait_seconds(proc_dir),
        peak_rss_kib: cost.peak_rss_kib,
        rss_kib: cost.rss_kib,
    }
}

impl Cost {
    fn times(&self) -> ProcessTimes {
        ProcessTimes {
            cpu_seconds: self.cpu_seconds,
            runqueue_wait_seconds: self.runqueue_wait_seconds,
        }
    }
}

/// How long the live threads of the process at `proc_dir` were runnable but not running: CPU the
/// process wanted and did not get (the second field of each thread's `schedstat`, nanoseconds).
/// Summed over threads, so it exceeds the wall time when several wait at once. Threads that have
/// exited are not counted; the runtimes' workers live as long as the process.
fn runqueue_wait_seconds(proc_dir: &str) -> f64 {
    let Ok(threads) = std::fs::read_dir(format!("{proc_dir}/task")) else {
        return 0.0;
    };
    let waited_nanos: u64 = threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("schedstat")).ok())
        .filter_map(|schedstat| schedstat.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    waited_nanos as f64 / 1e9
}

// ---------------------------------------------------------------------------------------------------
// Observing the operator's writes.

/// Records when the operator writes (any write not the driver's; the simulators' writes bypass HTTP), so the bench knows when it has settled and when a child was applied.
#[derive(Default)]
struct WriteLog {
    writes: Mutex<Vec<(Instant, RequestInfo)>>,
}

impl RequestHook for WriteLog {
    fn before(&self, req: &RequestInfo) -> Option<ApiError> {
        let write = matches!(
            req.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        if write && req.field_manager != USER {
            let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            writes.push((Instant::now(), req.clone()));
        }
        None
    }
}

impl WriteLog {
    fn since(&self, start: Instant) -> Vec<(Instant, RequestInfo)> {
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        writes
            .iter()
            .filter(|(at, _)| *at >= start)
            .cloned()
            .collect()
    }

    fn last(&self) -> Option<Instant> {
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        writes.last().map(|(at, _)| *at)
    }

    /// Waits until no operator write happened for `quiet` (counting from `start` at the earliest);
    /// false when that did not happen within `limit`.
    async fn settle(&self, start: Instant, quiet: Duration, limit: Duration) -> bool {
        loop {
            let since = self.last().filter(|at| *at > start).unwrap_or(start);
            if since.elapsed() >= quiet {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The benchmark.

struct Setup {
    emulator: EmulatorHandle,
    _sims: Simulators,
    client: Client,
    writes: Arc<WriteLog>,
    kubeconfig: PathBuf,
    /// Every FeatureStore, then every PrismCluster.
    owners: Vec<BenchOwner>,
    /// FeatureStore namespaces (each PrismCluster has one more of its own).
    namespaces: usize,
}

async fn bench(args: Args, cpus: CpuSplit) -> BenchResult<()> {
    if args.feature_stores + args.prism_clusters == 0 {
        return Err("nothing to measure: --feature-stores and --prism-clusters are both 0".into());
    }
    eprintln!(
        "in-memory size of a FeatureStore value (inline part only): {} bytes",
        std::mem::size_of::<FeatureStore>()
    );
    let setup = setup(&args).await?;
    let n = setup.owners.len();
    let samples = samples_of(&setup.owners);
    let render_micros = render_cpu_micros(&samples)?;
    let minimum_applies = minimum_applies(&setup.owners, &samples)?;
    let limits = Limits {
        quiet: Duration::from_secs_f64(args.quiet_seconds),
        phase: Duration::from_secs(args.phase_timeout_seconds),
    };
    let emulator_before = process_cost("/proc/self");
    let mut timeouts = Vec::new();
    let mut operators = OperatorCosts::default();

    // Cold start, with the resync period `fieldwise run` defaults to.
    let cold_child = ChildOptions {
        resync_seconds: None,
        malloc_conf: args.child_malloc_conf.clone(),
        cpu: cpus.operator_cpu(),
    };
    setup.emulator.counters().reset();
    let cold_start_cpu = CpuReading::now(operators.times());
    let started = cold_start_cpu.at;
    let mut operator = Operator::start(&setup.kubeconfig, &cold_child)?;
    let ready_count = AtomicUsize::new(0);
    let mut sampler = Sampler::new(
        &mut operator,
        &operators,
        Some(&ready_count),
        cold_start_cpu,
    );
    let ready_timeout = Duration::from_secs(args.timeout_seconds);
    let (ready_after, settled) = sampler
        .run(async {
            let ready_after = wait_all_ready(&setup, started, ready_timeout, &ready_count).await;
            let settled = setup
                .writes
                .settle(started, limits.quiet, limits.phase)
                .await;
            (ready_after, settled)
        })
        .await?;
    let cold_timeline = sampler.finish()?;
    let ready_seconds = ready_after.map(|d| d.as_secs_f64());
    if ready_after.is_none() {
        timeouts.push("cold start: not all Ready".to_owned());
    }
    if !settled {
        timeouts.push("cold start: never settled".to_owned());
    }
    let cold_requests = requests_by_verb(&setup.emulator);
    let cold_status = count_writes(&setup.emulator, |k| k.subresource == "status");
    let cold_finalizer = count_writes(&setup.emulator, |k| {
        is_owner_resource(&k.resource) && k.subresource.is_empty()
    });
    let cold_child_writes = count_writes(&setup.emulator, |k| {
        k.patch_type == "apply" && !is_owner_resource(&k.resource) && k.resource != "events"
    });
    let cold_events = count_writes(&setup.emulator, |k| k.resource == "events");
    let cold_all_writes = count_writes(&setup.emulator, |_| true);
    let cold_metrics = operator.metrics()?;
    let cold_cost = operator.cost();
    let emulator_cold = process_cost("/proc/self");
    let mut phase_times = vec![PhaseTime::between(
        "cold start",
        &cold_start_cpu,
        &cpu_reading(&operators, &operator),
        &cpus,
    )];
    let cached = cached_sizes(&setup.emulator);
    eprintln!("cold start done: ready in {ready_seconds:?} s");

    // A restart into the short resync period: the new process lists everything and reconciles every
    // FeatureStore once (this is also what a user's restart or a failover does).
    let steady_child = ChildOptions {
        resync_seconds: Some(args.resync_seconds),
        ..cold_child
    };
    operators.stop(operator, &mut timeouts).await?;
    let reasons_before_restart = event_reasons(&setup.emulator);
    setup.emulator.counters().reset();
    let restart_start_cpu = CpuReading::now(operators.times());
    let restart_started = restart_start_cpu.at;
    operator = Operator::start(&setup.kubeconfig, &steady_child)?;
    let mut sampler = Sampler::new(&mut operator, &operators, None, restart_start_cpu);
    let restart = restart_pass(&setup, &mut sampler, n as u64, restart_started, limits).await?;
    let restart_timeline = sampler.finish()?;
    if restart.timed_out {
        timeouts.push("restart: initial pass did not finish".to_owned());
    }
    let restart_writes = setup.emulator.counters().writes();
    let restart_written = steady_writes_described(&setup, restart_started, &reasons_before_restart);
    let restart_cost = operator.cost();
    phase_times.push(PhaseTime::between(
        "restart pass",
        &restart_start_cpu,
        &cpu_reading(&operators, &operator),
        &cpus,
    ));
    eprintln!(
        "restart pass done in {:.1} s, {restart_writes} writes",
        restart.seconds
    );

    // Steady state: periodic resyncs (and restarts, if asked for) with nothing changing.
    let reasons_before = event_reasons(&setup.emulator);
    setup.emulator.counters().reset();
    let steady_start_cpu = cpu_reading(&operators, &operator);
    let steady_start = steady_start_cpu.at;
    let window = Duration::from_secs(args.steady_seconds);
    let mut steady = SteadyCounts::default();
    let mut window_start_metrics = operator.metrics()?;
    let mut next_restart = args
        .restart_every
        .map(|every| steady_start + Duration::from_secs(every));
    while steady_start.elapsed() < window {
        if next_restart.is_some_and(|at| Instant::now() >= at) {
            let before_stop = operator.metrics()?;
            steady.add(&before_stop, &window_start_metrics);
            operators.stop(operator, &mut timeouts).await?;
            operator = Operator::start(&setup.kubeconfig, &steady_child)?;
            window_start_metrics = ChildMetrics::default();
            steady.restarts += 1;
            next_restart = args
                .restart_every
                .map(|every| Instant::now() + Duration::from_secs(every));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window_end_metrics = operator.metrics()?;
    phase_times.push(PhaseTime::between(
        "steady state",
        &steady_start_cpu,
        &cpu_reading(&operators, &operator),
        &cpus,
    ));
    steady.add(&window_end_metrics, &window_start_metrics);
    let steady_seconds = steady_start.elapsed().as_secs_f64();
    let steady_writes = setup.emulator.counters().writes();
    let steady_written = steady_writes_described(&setup, steady_start, &reasons_before);
    eprintln!(
        "steady state done: {steady_writes} writes and {} reconciles in {steady_seconds:.0} s",
        steady.reconciles
    );

    // One change at a time.
    let mut latencies = Vec::new();
    let mut missing = 0;
    setup.emulator.counters().reset();
    let change_start_metrics = operator.metrics()?;
    let change_start_cpu = cpu_reading(&operators, &operator);
    for k in 0..args.changes {
        let owner = &setup.owners[k * n / args.changes.max(1) % n];
        let changed_at = Instant::now();
        owners::apply(&setup.client, owner, Some(k)).await?;
        if !setup
            .writes
            .settle(changed_at, limits.quiet, limits.phase)
            .await
        {
            timeouts.push(format!("change {k}: never settled"));
            break;
        }
        let last_child = setup
            .writes
            .since(changed_at)
            .into_iter()
            .filter(|(_, r)| {
                !is_owner_resource(&r.resource)
                    && r.resource != "events"
                    && r.namespace == owner.namespace
            })
            .map(|(at, _)| at)
            .max();
        match last_child {
            Some(at) => latencies.push((at - changed_at).as_secs_f64() * 1000.0),
            None => missing += 1,
        }
    }
    let change_requests = requests_by_verb(&setup.emulator);
    let change_writes = count_writes(&setup.emulator, |_| true);
    let change_end_metrics = operator.metrics()?;
    phase_times.push(PhaseTime::between(
        "changes",
        &change_start_cpu,
        &cpu_reading(&operators, &operator),
        &cpus,
    ));
    let steady_rss_kib = operator.cost().rss_kib;
    operators.stop(operator, &mut timeouts).await?;
    let emulator_end = process_cost("/proc/self");

    let report = Report {
        n,
        feature_stores: args.feature_stores,
        prism_clusters: args.prism_clusters,
        namespaces: setup.namespaces + args.prism_clusters,
        unrelated_secrets: args.unrelated_secrets,
        mix: samples.iter().map(|s| s.name).collect(),
        cpus,
        resync_seconds: args.resync_seconds,
        minimum_applies,
        ready_seconds,
        cold_requests,
        cold_status,
        cold_finalizer,
        cold_child_writes,
        cold_events,
        cold_all_writes,
        cold_metrics,
        cold_cost,
        emulator_cold_cpu: emulator_cold.cpu_seconds - emulator_before.cpu_seconds,
        cached,
        restart,
        restart_writes,
        restart_written,
        restart_cost,
        steady_seconds,
        steady_writes,
        steady_written,
        steady,
        steady_rss_kib,
        changes: args.changes,
        latencies,
        missing,
        change_requests,
        change_writes,
        change_metrics: change_end_metrics.since(&change_start_metrics),
        phase_times,
        cold_timeline,
        restart_timeline,
        operators,
        emulator_cpu: emulator_end.cpu_seconds,
        emulator_peak_rss: emulator_end.peak_rss_kib,
        render_micros,
        timeouts,
    };
    println!("{}", report.markdown());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.json)
        .map_err(|e| err("opening the JSON file")(&e))?;
    writeln!(file, "{}", report.json()).map_err(|e| err("writing the JSON line")(&e))?;
    Ok(())
}

/// How long the bench waits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Without an operator write for this long, the operator has settled.
    quiet: Duration,
    /// The most any one wait (other than cold-start Ready) may take.
    phase: Duration,
}

/// CPU and memory of every operator process of the run, and whether each stopped when asked.
#[derive(Debug, Default)]
struct OperatorCosts {
    cpu_seconds: f64,
    runqueue_wait_seconds: f64,
    peak_rss_kib: u64,
    processes: usize,
    not_stopped: usize,
}

impl OperatorCosts {
    /// Stops `operator` (killing it if it does not stop in time, which counts as a timeout).
    async fn stop(&mut self, operator: Operator, timeouts: &mut Vec<String>) -> BenchResult<()> {
        let (cost, graceful) = operator.stop(STOP_GRACE).await?;
        self.cpu_seconds += cost.cpu_seconds;
        self.runqueue_wait_seconds += cost.runqueue_wait_seconds;
        self.peak_rss_kib = self.peak_rss_kib.max(cost.peak_rss_kib);
        self.processes += 1;
        if !graceful {
            self.not_stopped += 1;
            timeouts.push(format!(
                "operator process {} did not stop within {STOP_GRACE:?}",
                self.processes
            ));
        }
        Ok(())
    }

    /// The stopped processes' times, added up.
    fn times(&self) -> ProcessTimes {
        ProcessTimes {
            cpu_seconds: self.cpu_seconds,
            runqueue_wait_seconds: self.runqueue_wait_seconds,
        }
    }
}

/// The pass a freshly started operator makes over every FeatureStore.
#[derive(Debug, Default)]
struct RestartPass {
    /// From the start to having reconciled `n` times with nothing queued, and settled.
    seconds: f64,
    metrics: ChildMetrics,
    timed_out: bool,
}

async fn restart_pass(
    setup: &Setup,
    sampler: &mut Sampler<'_>,
    n: u64,
    started: Instant,
    limits: Limits,
) -> BenchResult<RestartPass> {
    let all_reconciled =
        |metrics: &ChildMetrics| metrics.reconciles >= n && metrics.queue_depth == 0;
    let mut check = tokio::time::interval(RESTART_CHECK_PERIOD);
    let metrics = loop {
        tokio::select! {
            _ = check.tick() => {
                let metrics = sampler.metrics()?;
                if all_reconciled(&metrics) || started.elapsed() >= limits.phase {
                    break metrics;
                }
            }
            _ = sampler.timer.tick() => sampler.record()?,
        }
    };
    if !all_reconciled(&metrics) {
        return Ok(RestartPass {
            seconds: started.elapsed().as_secs_f64(),
            metrics,
            timed_out: true,
        });
    }
    let settled = sampler
        .run(setup.writes.settle(started, limits.quiet, limits.phase))
        .await?;
    Ok(RestartPass {
        seconds: started.elapsed().as_secs_f64(),
        metrics,
        timed_out: !settled,
    })
}

/// Times so far of every operator process of the run (`running` and those stopped) and of the
/// bench process.
fn cpu_reading(operators: &OperatorCosts, running: &Operator) -> CpuReading {
    CpuReading::now(operator_times(operators, running))
}

fn operator_times(operators: &OperatorCosts, running: &Operator) -> ProcessTimes {
    operators.times().plus(running.cost().times())
}

/// Samples a phase for its timeline every `SAMPLE_PERIOD` while the phase's work runs (an interval
/// timer: late samples shift the later ones, they never decide when the work is done).
struct Sampler<'a> {
    operator: &'a mut Operator,
    operators: &'a OperatorCosts,
    /// Resources up so far, where the phase's work counts them.
    ready: Option<&'a AtomicUsize>,
    timer: tokio::time::Interval,
    timeline: Timeline,
}

impl<'a> Sampler<'a> {
    fn new(
        operator: &'a mut Operator,
        operators: &'a OperatorCosts,
        ready: Option<&'a AtomicUsize>,
        start: CpuReading,
    ) -> Self {
        let mut timer = tokio::time::interval(SAMPLE_PERIOD);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Sampler {
            operator,
            operators,
            ready,
            timer,
            timeline: Timeline::new(start),
        }
    }

    /// The child's metrics (it answers from a thread of its own, within milliseconds).
    fn metrics(&mut self) -> BenchResult<ChildMetrics> {
        tokio::task::block_in_place(|| self.operator.metrics())
    }

    fn record(&mut self) -> BenchResult<()> {
        let metrics = self.metrics()?;
        let operator = operator_times(self.operators, self.operator);
        let ready = self.ready.map(|count| count.load(Ordering::Relaxed));
        self.timeline.record(&metrics, operator, ready);
        Ok(())
    }

    /// Runs `work` to its end, sampling meanwhile.
    async fn run<T>(&mut self, work: impl Future<Output = T>) -> BenchResult<T> {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return Ok(output),
                _ = self.timer.tick() => self.record()?,
            }
        }
    }

    /// The timeline, ending with a sample of the phase's end (unless the timer just took one).
    fn finish(mut self) -> BenchResult<Timeline> {
        let last_age = self.timeline.seconds_since_last_point();
        if last_age.is_none_or(|age| age >= SAMPLE_PERIOD.as_secs_f64() / 2.0) {
            self.record()?;
        }
        Ok(self.timeline)
    }
}

/// Reconciles and CPU during the steady window, summed over operator processes.
#[derive(Debug, Default)]
struct SteadyCounts {
    reconciles: u64,
    errors: u64,
    cpu: Histogram,
    restarts: usize,
}

impl SteadyCounts {
    fn add(&mut self, end: &ChildMetrics, start: &ChildMetrics) {
        self.reconciles += end.reconciles - start.reconciles.min(end.reconciles);
        self.errors += end.errors - start.errors.min(end.errors);
        self.cpu.add(&end.cpu.since(&start.cpu));
    }
}

/// The writes since `steady_start` (the steady window's, or the restart pass's), named: by verb
/// and resource, status applies by resource, Events by reason.
fn steady_writes_described(
    setup: &Setup,
    steady_start: Instant,
    reasons_before: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut steady_events = event_reasons(&setup.emulator);
    for (reason, count) in reasons_before {
        if let Some(after) = steady_events.get_mut(reason) {
            *after -= (*count).min(*after);
        }
    }
    steady_events.retain(|_, count| *count > 0);
    let mut written: Vec<String> = setup
        .emulator
        .counters()
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.is_write())
        .map(|(k, v)| {
            format!(
                "{v}x {} {}/{} {}",
                k.verb, k.resource, k.subresource, k.field_manager
            )
        })
        .collect();
    let status_written: Vec<String> = setup
        .writes
        .since(steady_start)
        .into_iter()
        .filter(|(_, r)| r.subresource == "status")
        .map(|(at, r)| {
            format!(
                "{}/{} at +{:.1}s",
                r.namespace,
                r.name,
                (at - steady_start).as_secs_f64()
            )
        })
        .take(20)
        .collect();
    if !status_written.is_empty() {
        written.push(format!("status applies: {}", status_written.join(", ")));
    }
    written.extend(
        steady_events
            .iter()
            .map(|(reason, count)| format!("Event reason {reason} (series count +{count})")),
    );
    written
}

/// Bytes of the objects the operator caches, by kind, as the API serves them (JSON): FeatureStores
/// and Secrets (its reflectors) and the children labelled `app.kubernetes.io/managed-by=fieldwise`
/// (the engine's watches). (kind, objects, bytes, managedFields bytes, status bytes).
fn cached_sizes(emulator: &EmulatorHandle) -> Vec<(String, usize, usize, usize, usize)> {
    let store = emulator.server().store.lock();
    let mut sizes: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    let json_len = |v: Option<&Value>| v.map_or(0, |v| v.to_string().len());
    for (key, object) in store.iter() {
        let resource = key.1.as_str();
        let managed = object.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
            == Some(&json!("fieldwise"));
        if !(managed || is_owner_resource(resource) || resource == "secrets") {
            continue;
        }
        let entry = sizes.entry(resource.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += object.to_string().len();
        entry.2 += json_len(object.pointer("/metadata/managedFields"));
        entry.3 += json_len(object.get("status"));
    }
    sizes
        .into_iter()
        .map(|(kind, (n, bytes, managed, status))| (kind, n, bytes, managed, status))
        .collect()
}

/// Emulator, simulators, CRDs, namespaces, Secrets, FeatureStores and PrismClusters, before the
/// operator starts.
async fn setup(args: &Args) -> BenchResult<Setup> {
    let emulator = Emulator::start(Default::default())
        .await
        .map_err(|e| err("starting the emulator")(&e))?;
    let sims = Simulators::start(&emulator, SimOptions::default());
    let writes = Arc::new(WriteLog::default());
    emulator.add_hook(writes.clone());
    let client = emulator.client().map_err(|e| err("emulator client")(&e))?;
    let kubeconfig =
        std::env::temp_dir().join(format!("fieldwise-bench-{}.kubeconfig", std::process::id()));
    emulator
        .write_kubeconfig(&kubeconfig)
        .map_err(|e| err("writing the kubeconfig")(&e))?;
    let apply = PatchParams::apply(USER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in fieldwise_api::crds() {
        crds.patch(&crd.name_any(), &apply, &Patch::Apply(&crd))
            .await
            .map_err(|e| err("applying a CRD")(&e))?;
    }
    // No FeatureStore namespace (and no Secrets) when the run has only PrismClusters.
    let namespace_count = match args.feature_stores {
        0 => 0,
        stores => args.namespaces.clamp(1, stores),
    };
    let owners = owners::owners(args.feature_stores, namespace_count, args.prism_clusters);
    for i in 0..namespace_count {
        let namespace = format!("bench-{i}");
        apply_namespace(&client, &namespace).await?;
        apply_secrets(&client, &namespace, args.unrelated_secrets).await?;
    }
    for owner in owners
        .iter()
        .filter(|o| o.sample.kind == Kind::PrismCluster)
    {
        apply_namespace(&client, &owner.namespace).await?;
    }
    futures::stream::iter(owners.iter())
        .map(|owner| owners::apply(&client, owner, None))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "applied {} FeatureStores in {namespace_count} namespaces and {} PrismClusters",
        args.feature_stores, args.prism_clusters
    );
    Ok(Setup {
        emulator,
        _sims: sims,
        client,
        writes,
        kubeconfig,
        owners,
        namespaces: namespace_count,
    })
}

async fn apply_namespace(client: &Client, namespace: &str) -> BenchResult<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(|_| ())
        .map_err(|e| err("applying a namespace")(&e))
}

/// The Secrets the FeatureStore samples read, and `unrelated` Secrets none reads.
async fn apply_secrets(client: &Client, namespace: &str, unrelated: usize) -> BenchResult<()> {
    let secrets: Vec<Value> = serde_saphyr::from_multiple_with_options(SECRETS, kubernetes_yaml())
        .map_err(|e| err("secrets YAML")(&e))?;
    let unrelated = (0..unrelated).map(unrelated_secret);
    let apply = PatchParams::apply(USER).force();
    for secret in secrets
        .into_iter()
        .filter(Value::is_object)
        .chain(unrelated)
    {
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        Api::<Secret>::namespaced(client.clone(), namespace)
            .patch(name, &apply, &Patch::Apply(&secret))
            .await
            .map_err(|e| err("applying a Secret")(&e))?;
    }
    Ok(())
}

/// Secret `unrelated-<i>`: 16 KiB of data, and the last-applied annotation `kubectl apply` adds,
/// which repeats it.
fn unrelated_secret(i: usize) -> Value {
    use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
    let name = format!("unrelated-{i}");
    // Incompressible-looking bytes, so that no cache could shrink them for free.
    let bytes: Vec<u8> = (0..16 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761).rotate_left(i as u32 % 31) >> 24) as u8)
        .collect();
    let data = json!({"payload": BASE64.encode(bytes)});
    let last_applied = json!({"apiVersion": "v1", "kind": "Secret", "data": data,
        "metadata": {"name": name}});
    json!({"apiVersion": "v1", "kind": "Secret", "data": data,
        "metadata": {"name": name, "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string()}}})
}

/// Waits until every resource is up (`status.phase`: FeatureStore Ready, PrismCluster Running),
/// reading the emulator's store (no requests). Each poll looks up only the resources not yet up, by
/// key: listing a kind scans the whole store under its lock, which at N = 3000 (some 50,000 objects)
/// fifty times a second cost the emulator more CPU than the work it measured (session 12).
/// `up` counts the resources up so far, for the timeline.
async fn wait_all_ready(
    setup: &Setup,
    started: Instant,
    timeout: Duration,
    up: &AtomicUsize,
) -> Option<Duration> {
    let n = setup.owners.len();
    let mut pending: Vec<(ObjKey, &'static str)> = setup.owners.iter().map(owner_key).collect();
    loop {
        {
            let store = setup.emulator.server().store.lock();
            pending.retain(|(key, up_phase)| {
                let phase = store.get(key).and_then(|o| o.pointer("/status/phase"));
                phase.and_then(Value::as_str) != Some(*up_phase)
            });
        }
        up.store(n - pending.len(), Ordering::Relaxed);
        if pending.is_empty() {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            let up = n - pending.len();
            eprintln!(
                "only {up}/{n} FeatureStores Ready or PrismClusters Running after {timeout:?}"
            );
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The store key of a benchmark resource, with the phase at which it counts as up.
fn owner_key(owner: &BenchOwner) -> (ObjKey, &'static str) {
    let kind = owner.sample.kind;
    let (group, resource) = kind.group_and_resource();
    let key = (
        group.to_owned(),
        resource.to_owned(),
        owner.namespace.clone(),
        owner.name.clone(),
    );
    (key, kind.up_phase())
}

fn is_owner_resource(resource: &str) -> bool {
    OWNER_RESOURCES.contains(&resource)
}

/// Event reasons in the emulator's store, weighted by their series count.
fn event_reasons(emulator: &EmulatorHandle) -> BTreeMap<String, u64> {
    let store = emulator.server().store.lock();
    let mut reasons = BTreeMap::new();
    for group in ["", "events.k8s.io"] {
        for event in store.list(group, "events", None) {
            let reason = event["reason"].as_str().unwrap_or("<none>").to_owned();
            let count = event
                .pointer("/series/count")
                .or_else(|| event.get("count"))
                .and_then(Value::as_u64)
                .unwrap_or(1);
            *reasons.entry(reason).or_insert(0) += count;
        }
    }
    reasons
}

fn requests_by_verb(emulator: &EmulatorHandle) -> BTreeMap<String, u64> {
    let mut verbs = BTreeMap::new();
    for (key, count) in emulator.counters().snapshot() {
        let verb = if key.verb.is_empty() {
            "discovery".to_owned()
        } else {
            key.verb
        };
        *verbs.entry(verb).or_insert(0) += count;
    }
    verbs
}

fn count_writes(
    emulator: &EmulatorHandle,
    which: impl Fn(&fieldwise_e2e::emulator::RequestKey) -> bool,
) -> u64 {
    emulator
        .counters()
        .count(|k| k.is_write() && k.field_manager != USER && which(k))
}

/// The samples of the run's resources, each once, in order.
fn samples_of(owners: &[BenchOwner]) -> Vec<&'static Sample> {
    let mut samples: Vec<&'static Sample> = Vec::new();
    for owner in owners {
        if !samples.iter().any(|s| std::ptr::eq(*s, owner.sample)) {
            samples.push(owner.sample);
        }
    }
    samples
}

/// One apply per object of each resource's desired graph, as `fieldwise render` counts them (the
/// status apply per resource is added by the report).
fn minimum_applies(owners: &[BenchOwner], samples: &[&'static Sample]) -> BenchResult<usize> {
    let objects = samples
        .iter()
        .map(|s| Ok((s.name, s.objects()?)))
        .collect::<BenchResult<BTreeMap<&str, usize>>>()?;
    Ok(owners.iter().map(|o| objects[o.sample.name]).sum())
}

/// Wall time of rendering each sample 50 times on an idle thread, in microseconds: an upper bound on the
/// pure part of a reconcile (it adds YAML parsing, schema and CEL validation and YAML output).
fn render_cpu_micros(samples: &[&'static Sample]) -> BenchResult<Vec<f64>> {
    let mut micros = Vec::new();
    for _ in 0..50 {
        for sample in samples {
            let start = Instant::now();
            sample.render()?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(micros)
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`; `None` when empty.
fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

// ---------------------------------------------------------------------------------------------------
// Output.

struct Report {
    /// FeatureStores and PrismClusters.
    n: usize,
    feature_stores: usize,
    prism_clusters: usize,
    namespaces: usize,
    unrelated_secrets: usize,
    mix: Vec<&'static str>,
    cpus: CpuSplit,
    resync_seconds: u64,
    minimum_applies: usize,
    ready_seconds: Option<f64>,
    cold_requests: BTreeMap<String, u64>,
    cold_status: u64,
    cold_finalizer: u64,
    cold_child_writes: u64,
    cold_events: u64,
    cold_all_writes: u64,
    cold_metrics: ChildMetrics,
    cold_cost: Cost,
    emulator_cold_cpu: f64,
    cached: Vec<(String, usize, usize, usize, usize)>,
    restart: RestartPass,
    restart_writes: u64,
    /// The restart pass's writes, named as the steady window's.
    restart_written: Vec<String>,
    restart_cost: Cost,
    steady_seconds: f64,
    steady_writes: u64,
    steady_written: Vec<String>,
    steady: SteadyCounts,
    steady_rss_kib: u64,
    changes: usize,
    latencies: Vec<f64>,
    missing: usize,
    change_requests: BTreeMap<String, u64>,
    change_writes: u64,
    change_metrics: ChildMetrics,
    /// Where each phase's time went, in the order they ran.
    phase_times: Vec<PhaseTime>,
    cold_timeline: Timeline,
    restart_timeline: Timeline,
    operators: OperatorCosts,
    emulator_cpu: f64,
    emulator_peak_rss: u64,
    render_micros: Vec<f64>,
    timeouts: Vec<String>,
}

fn verbs(requests: &BTreeMap<String, u64>) -> String {
    requests
        .iter()
        .map(|(verb, count)| format!("{verb} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "RSS / peak" of a process, in MiB.
fn rss_and_peak(cost: &Cost) -> String {
    format!("{:.1} / {:.1}", mib(cost.rss_kib), mib(cost.peak_rss_kib))
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// "verb p50 / p99 ms over count" for each verb the operator's client timed in the phase; "n/a"
/// when the operator does not expose its request durations.
fn api_latency_summary(metrics: &ChildMetrics) -> String {
    if metrics.api_latency.is_empty() {
        return "n/a".to_owned();
    }
    let timed: Vec<String> = metrics
        .api_latency
        .iter()
        .filter(|(_, latency)| latency.count > 0.0)
        .map(|(verb, latency)| {
            format!(
                "{verb} {} / {} over {}",
                latency.quantile_ms(0.5),
                latency.quantile_ms(0.99),
                latency.count
            )
        })
        .collect();
    if timed.is_empty() {
        return "no requests".to_owned();
    }
    timed.join("; ")
}

fn api_latency_json(metrics: &ChildMetrics) -> Value {
    metrics
        .api_latency
        .iter()
        .map(|(verb, latency)| (verb.clone(), latency.json()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl Report {
    fn minimum(&self) -> usize {
        self.minimum_applies + self.n
    }

    fn rows(&self) -> Vec<(&'static str, String, String)> {
        let applies = self.cold_child_writes + self.cold_status;
        let per_change = |count: u64| count as f64 / self.changes.max(1) as f64;
        vec![
            (
                "FeatureStores / PrismClusters / namespaces / unrelated Secrets per namespace",
                format!(
                    "{} / {} / {} / {}",
                    self.feature_stores,
                    self.prism_clusters,
                    self.namespaces,
                    self.unrelated_secrets
                ),
                String::new(),
            ),
            (
                "cold start: all Ready / Running (s)",
                opt(self.ready_seconds, 2),
                "< 60 s at N=1000".into(),
            ),
            (
                "cold start: operator requests by verb",
                verbs(&self.cold_requests),
                String::new(),
            ),
            (
                "cold start: child + status applies / minimum",
                format!(
                    "{applies} / {} ({:+.1}%)",
                    self.minimum(),
                    100.0 * (applies as f64 / self.minimum() as f64 - 1.0)
                ),
                "within 10%".into(),
            ),
            (
                "cold start: finalizer patches",
                self.cold_finalizer.to_string(),
                format!("{} (one per resource)", self.n),
            ),
            (
                "cold start: Events / all operator writes",
                format!("{} / {}", self.cold_events, self.cold_all_writes),
                String::new(),
            ),
            (
                "cold start: reconciles (errors)",
                format!(
                    "{} ({})",
                    self.cold_metrics.reconciles, self.cold_metrics.errors
                ),
                String::new(),
            ),
            (
                "cold start: operator CPU s / per reconcile ms (whole process)",
                format!(
                    "{:.2} / {:.2}",
                    self.cold_cost.cpu_seconds,
                    1000.0 * self.cold_cost.cpu_seconds
                        / self.cold_metrics.reconciles.max(1) as f64
                ),
                String::new(),
            ),
            (
                "cold start: reconcile CPU p50 / p99 / mean (ms)",
                self.cold_metrics.cpu.summary_ms(),
                "< 2 ms p99".into(),
            ),
            (
                "cold start: operator API latency p50 / p99 (ms) by verb",
                api_latency_summary(&self.cold_metrics),
                "to response headers".into(),
            ),
            (
                "cold start: operator writes that waited for a write slot",
                opt(self.cold_metrics.api_write_waits, 0),
                String::new(),
            ),
            (
                "cold start: timeline (1 s samples)",
                self.cold_timeline.summary(),
                String::new(),
            ),
            (
                "cold start: emulator CPU s",
                format!("{:.2}", self.emulator_cold_cpu),
                String::new(),
            ),
            (
                "cold start: operator RSS at settle / peak (MiB)",
                rss_and_peak(&self.cold_cost),
                "< 64 MiB at N=1000".into(),
            ),
            (
                "restart: all reconciled and settled (s) / writes / reconciles",
                format!(
                    "{:.1} / {} / {}{}",
                    self.restart.seconds,
                    self.restart_writes,
                    self.restart.metrics.reconciles,
                    if self.restart.timed_out {
                        " (timed out)"
                    } else {
                        ""
                    }
                ),
                "0 writes".into(),
            ),
            (
                "restart: timeline (1 s samples)",
                self.restart_timeline.summary(),
                String::new(),
            ),
            (
                "restart: operator RSS after the pass / peak (MiB)",
                rss_and_peak(&self.restart_cost),
                "< 64 MiB at N=1000".into(),
            ),
            (
                "steady state: writes / window (s) / resync period (s) / restarts",
                format!(
                    "{} / {:.0} / {} / {}",
                    self.steady_writes,
                    self.steady_seconds,
                    self.resync_seconds,
                    self.steady.restarts
                ),
                "0 writes".into(),
            ),
            (
                "steady state: reconciles (errors) / per resource",
                format!(
                    "{} ({}) / {:.1}",
                    self.steady.reconciles,
                    self.steady.errors,
                    self.steady.reconciles as f64 / self.n.max(1) as f64
                ),
                String::new(),
            ),
            (
                "steady state: reconcile CPU p50 / p99 / mean (ms)",
                self.steady.cpu.summary_ms(),
                "< 2 ms p99".into(),
            ),
            (
                "one change: latency to last child applied p50 / p99 (ms)",
                format!(
                    "{} / {} over {} ({} without a child write)",
                    opt(percentile(&self.latencies, 50.0), 0),
                    opt(percentile(&self.latencies, 99.0), 0),
                    self.latencies.len() + self.missing,
                    self.missing
                ),
                "includes the 500 ms debounce".into(),
            ),
            (
                "one change: requests per change by verb",
                self.change_requests
                    .iter()
                    .map(|(verb, count)| format!("{verb} {:.2}", per_change(*count)))
                    .collect::<Vec<_>>()
                    .join(", "),
                String::new(),
            ),
            (
                "one change: operator writes per change",
                format!("{:.2}", per_change(self.change_writes)),
                String::new(),
            ),
            (
                "one change: reconciles (errors), resyncs included",
                format!(
                    "{} ({})",
                    self.change_metrics.reconciles, self.change_metrics.errors
                ),
                String::new(),
            ),
            (
                "one change: operator API latency p50 / p99 (ms) by verb",
                api_latency_summary(&self.change_metrics),
                "to response headers".into(),
            ),
            (
                "one change: operator writes that waited for a write slot",
                opt(self.change_metrics.api_write_waits, 0),
                String::new(),
            ),
            (
                "operator: CPU s (all processes) / peak RSS MiB / RSS at end MiB",
                format!(
                    "{:.2} / {:.1} / {:.1}",
                    self.operators.cpu_seconds,
                    mib(self.operators.peak_rss_kib),
                    mib(self.steady_rss_kib)
                ),
                String::new(),
            ),
            (
                "emulator+sims+driver: CPU s / peak RSS MiB",
                format!(
                    "{:.2} / {:.1}",
                    self.emulator_cpu,
                    mib(self.emulator_peak_rss)
                ),
                String::new(),
            ),
            (
                "render one resource p50 / p99 (µs)",
                format!(
                    "{} / {}",
                    opt(percentile(&self.render_micros, 50.0), 0),
                    opt(percentile(&self.render_micros, 99.0), 0)
                ),
                "YAML in and out, validation".into(),
            ),
            (
                "timeouts",
                if self.timeouts.is_empty() {
                    "none".to_owned()
                } else {
                    self.timeouts.join("; ")
                },
                "none".into(),
            ),
        ]
    }

    fn markdown(&self) -> String {
        let mut out = format!(
            "\n### N = {} ({}; {})\n\n| measure | value | target |\n|---|---|---|\n",
            self.n,
            self.mix.join(", "),
            self.cpus
        );
        for (measure, value, target) in self.rows() {
            out.push_str(&format!("| {measure} | {value} | {target} |\n"));
        }
        out.push_str(
            "\nWhere time went (busy: CPU seconds over wall seconds times the CPUs the side may \
             use; run-queue wait: seconds its threads were runnable but not running. A side at \
             80% or more busy bounds the phase; one that would be with its run-queue wait was \
             starved by other load; else the phase waited on timers and latency):\n\n\
             | phase | wall s | operator CPU s (busy) / run-queue wait s | emulator+sims+driver \
             CPU s (busy) / run-queue wait s | bound |\n|---|---|---|---|---|\n",
        );
        for phase in &self.phase_times {
            out.push_str(&phase.markdown_row());
            out.push('\n');
        }
        if !self.restart_written.is_empty() {
            out.push_str(&format!(
                "\nrestart-pass writes: {}\n",
                self.restart_written.join("; ")
            ));
        }
        if !self.steady_written.is_empty() {
            out.push_str(&format!(
                "\nsteady-state writes: {}\n",
                self.steady_written.join("; ")
            ));
        }
        out.push_str(
            "\nCached objects after cold start, as the API serves them (JSON KiB):\n\n\
             | resource | objects | total | managedFields | status |\n|---|---|---|---|---|\n",
        );
        for (kind, objects, bytes, managed, status) in &self.cached {
            out.push_str(&format!(
                "| {kind} | {objects} | {:.0} | {:.0} | {:.0} |\n",
                *bytes as f64 / 1024.0,
                *managed as f64 / 1024.0,
                *status as f64 / 1024.0
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let cached: Vec<Value> = self
            .cached
            .iter()
            .map(|(kind, objects, bytes, managed, status)| {
                json!({"resource": kind, "objects": objects, "bytes": bytes,
                       "managed_fields_bytes": managed, "status_bytes": status})
            })
            .collect();
        json!({
            "feature_stores": self.feature_stores,
            "prism_clusters": self.prism_clusters,
            "namespaces": self.namespaces,
            "unrelated_secrets_per_namespace": self.unrelated_secrets,
            "mix": self.mix,
            "cpus": self.cpus.json(),
            "cold": {
                "ready_seconds": self.ready_seconds,
                "requests_by_verb": self.cold_requests,
                "child_applies": self.cold_child_writes,
                "status_applies": self.cold_status,
                "finalizer_patches": self.cold_finalizer,
                "events": self.cold_events,
                "operator_writes": self.cold_all_writes,
                "minimum": self.minimum(),
                "reconciles": self.cold_metrics.reconciles,
                "reconcile_errors": self.cold_metrics.errors,
                "reconcile_cpu": self.cold_metrics.cpu.json(),
                "operator_cpu_seconds": self.cold_cost.cpu_seconds,
                "operator_rss_kib": self.cold_cost.rss_kib,
                "operator_peak_rss_kib": self.cold_cost.peak_rss_kib,
                "emulator_cpu_seconds": self.emulator_cold_cpu,
                "cached": cached,
                "api_latency": api_latency_json(&self.cold_metrics),
                "api_write_waits": self.cold_metrics.api_write_waits,
                "timeline": self.cold_timeline.json(),
            },
            "restart": {
                "seconds": self.restart.seconds,
                "timed_out": self.restart.timed_out,
                "writes": self.restart_writes,
                "written": self.restart_written,
                "reconciles": self.restart.metrics.reconciles,
                "operator_rss_kib": self.restart_cost.rss_kib,
                "operator_peak_rss_kib": self.restart_cost.peak_rss_kib,
                "timeline": self.restart_timeline.json(),
            },
            "steady": {
                "seconds": self.steady_seconds,
                "resync_seconds": self.resync_seconds,
                "writes": self.steady_writes,
                "written": self.steady_written,
                "restarts": self.steady.restarts,
                "reconciles": self.steady.reconciles,
                "reconcile_errors": self.steady.errors,
                "reconcile_cpu": self.steady.cpu.json(),
            },
            "change": {
                "count": self.changes,
                "latency_ms_p50": percentile(&self.latencies, 50.0),
                "latency_ms_p99": percentile(&self.latencies, 99.0),
                "without_child_write": self.missing,
                "requests_by_verb": self.change_requests,
                "operator_writes": self.change_writes,
                "reconciles": self.change_metrics.reconciles,
                "reconcile_errors": self.change_metrics.errors,
                "reconcile_cpu": self.change_metrics.cpu.json(),
                "api_latency": api_latency_json(&self.change_metrics),
                "api_write_waits": self.change_metrics.api_write_waits,
            },
            "timeline_columns": TIMELINE_COLUMNS,
            "phases": self.phase_times.iter().map(PhaseTime::json).collect::<Vec<_>>(),
            "operator": {
                "cpu_seconds": self.operators.cpu_seconds,
                "peak_rss_kib": self.operators.peak_rss_kib,
                "rss_at_end_kib": self.steady_rss_kib,
                "processes": self.operators.processes,
                "not_stopped_when_asked": self.operators.not_stopped,
            },
            "emulator": {"cpu_seconds": self.emulator_cpu, "peak_rss_kib": self.emulator_peak_rss},
            "render_us_p50": percentile(&self.render_micros, 50.0),
            "render_us_p99": percentile(&self.render_micros, 99.0),
            "timeouts": self.timeouts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn child_metrics_are_parsed() {
        let text = "# HELP fieldwise_reconciles Finished reconciles.\n\
            fieldwise_reconciles_total{controller=\"featurestore\",result=\"success\"} 12\n\
            fieldwise_reconciles_total{controller=\"featurestore\",result=\"error\"} 3\n\
            fieldwise_work_queue_depth{controller=\"featurestore\"} 2\n\
            fieldwise_reconcile_cpu_seconds_sum{controller=\"featurestore\"} 0.01\n\
            fieldwise_reconcile_cpu_seconds_count{controller=\"featurestore\"} 10\n\
            fieldwise_reconcile_cpu_seconds_bucket{le=\"0.0005\",controller=\"featurestore\"} 4\n\
            fieldwise_reconcile_cpu_seconds_bucket{le=\"0.001\",controller=\"featurestore\"} 9\n\
            fieldwise_reconcile_cpu_seconds_bucket{le=\"+Inf\",controller=\"featurestore\"} 10\n\
            fieldwise_api_writes_total{kind=\"Deployment\",outcome=\"applied\"} 9\n";
        let metrics = ChildMetrics::parse(text);
        assert_eq!((metrics.reconciles, metrics.errors), (15, 3));
        assert_eq!(metrics.queue_depth, 2);
        assert_eq!(metrics.cpu.count, 10.0);
        assert_eq!(metrics.cpu.quantile_bound(0.4), Some(0.0005));
        assert_eq!(metrics.cpu.quantile_bound(0.5), Some(0.001));
        assert_eq!(metrics.cpu.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(metrics.cpu.mean(), Some(0.001));
    }

    /// As prometheus-client encodes the operator's client metrics (buckets cut short).
    fn api_metrics(patches_fast: u64, patches: u64, waits: u64) -> String {
        format!(
            "# HELP fieldwise_api_request_duration_seconds Time to response headers.\n\
             # TYPE fieldwise_api_request_duration_seconds histogram\n\
             # UNIT fieldwise_api_request_duration_seconds seconds\n\
             fieldwise_api_request_duration_seconds_sum{{verb=\"patch\"}} 0.5\n\
             fieldwise_api_request_duration_seconds_count{{verb=\"patch\"}} {patches}\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"0.001\",verb=\"patch\"}} {patches_fast}\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"0.01\",verb=\"patch\"}} {patches}\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"+Inf\",verb=\"patch\"}} {patches}\n\
             fieldwise_api_request_duration_seconds_sum{{verb=\"list\"}} 2.0\n\
             fieldwise_api_request_duration_seconds_count{{verb=\"list\"}} 4\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"0.001\",verb=\"list\"}} 0\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"0.01\",verb=\"list\"}} 1\n\
             fieldwise_api_request_duration_seconds_bucket{{le=\"+Inf\",verb=\"list\"}} 4\n\
             # HELP fieldwise_api_requests_in_flight Requests sent and not yet answered.\n\
             fieldwise_api_requests_in_flight{{class=\"write\"}} 3\n\
             fieldwise_api_requests_in_flight{{class=\"read\"}} 1\n\
             # HELP fieldwise_api_write_waits Writes that waited for a write slot.\n\
             fieldwise_api_write_waits_total {waits}\n"
        )
    }

    #[test]
    fn api_latency_is_parsed_per_verb() {
        let metrics = ChildMetrics::parse(&api_metrics(12, 100, 5));
        assert_eq!(
            metrics.api_latency.keys().collect::<Vec<_>>(),
            ["list", "patch"]
        );
        let patch = &metrics.api_latency["patch"];
        assert_eq!(patch.count, 100.0);
        assert_eq!(patch.quantile_bound(0.1), Some(0.001));
        assert_eq!(patch.quantile_bound(0.99), Some(0.01));
        let list = &metrics.api_latency["list"];
        assert_eq!(list.quantile_bound(0.5), Some(f64::INFINITY));
        assert_eq!(list.quantile_ms(0.5), "> 10.00");
        assert_eq!(metrics.api_write_waits, Some(5.0));
        assert_eq!(metrics.api_in_flight["write"], 3.0);
        assert_eq!(metrics.api_in_flight["read"], 1.0);
        assert_eq!(
            api_latency_summary(&metrics),
            "list > 10.00 / > 10.00 over 4; patch ≤ 10.00 / ≤ 10.00 over 100"
        );
        assert_eq!(api_latency_json(&metrics)["patch"]["count"], 100.0);
    }

    #[test]
    fn a_phase_sees_only_the_requests_made_during_it() {
        let start = ChildMetrics::parse(&api_metrics(10, 10, 2));
        let end = ChildMetrics::parse(&api_metrics(60, 110, 7));
        let phase = end.since(&start);
        let patch = &phase.api_latency["patch"];
        // 100 patches in the phase, half of them within 1 ms.
        assert_eq!(patch.count, 100.0);
        assert_eq!(patch.quantile_bound(0.5), Some(0.001));
        assert_eq!(patch.quantile_bound(0.51), Some(0.01));
        assert_eq!(phase.api_latency["list"].count, 0.0);
        // A verb the phase did not use is left out of the report's row.
        assert_eq!(
            api_latency_summary(&phase),
            "patch ≤ 1.00 / ≤ 10.00 over 100"
        );
        assert_eq!(api_latency_summary(&start.since(&start)), "no requests");
        assert_eq!(phase.api_write_waits, Some(5.0));
    }

    #[test]
    fn without_the_client_metrics_the_latencies_are_not_available() {
        let metrics = ChildMetrics::parse(
            "fieldwise_reconciles_total{controller=\"featurestore\",result=\"success\"} 1\n",
        );
        assert!(metrics.api_latency.is_empty());
        assert_eq!(metrics.api_write_waits, None);
        assert_eq!(
            metrics.since(&ChildMetrics::default()).api_write_waits,
            None
        );
        assert_eq!(api_latency_summary(&metrics), "n/a");
        assert_eq!(api_latency_json(&metrics), json!({}));
    }

    #[test]
    fn cpu_histograms_subtract_and_add() {
        let earlier = Histogram {
            buckets: vec![(0.001, 2.0), (f64::INFINITY, 3.0)],
            sum: 0.004,
            count: 3.0,
        };
        let later = Histogram {
            buckets: vec![(0.001, 10.0), (f64::INFINITY, 11.0)],
            sum: 0.010,
            count: 11.0,
        };
        let window = later.since(&earlier);
        assert_eq!(window.buckets, vec![(0.001, 8.0), (f64::INFINITY, 8.0)]);
        assert_eq!(window.count, 8.0);
        assert_eq!(window.quantile_bound(0.99), Some(0.001));
        let mut total = Histogram::default();
        total.add(&window);
        total.add(&earlier);
        assert_eq!(total.buckets, vec![(0.001, 10.0), (f64::INFINITY, 11.0)]);
        assert_eq!(total.count, 11.0);
    }
}
