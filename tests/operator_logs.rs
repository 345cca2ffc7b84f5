//! Logs a user can read. A FeatureStore's whole life (created, Ready, deleted, its children gone)
//! logs no warning and no Rust debug dump of an error; the expected "not found in local store" of
//! the triggers that arrive after the deletion is a debug line. `fieldwise run` honours `RUST_LOG`
//! and `--log-level`, and, without the CRDs installed, says how to install them, on its log and on
//! `/readyz`, until they are.
//! (Its own test binary: the telemetry subscriber is process-global.)

// The scenarios' cluster harness; this test uses part of it.
#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../e2e/scenarios/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use fieldwise_observability::{LogFormat, TelemetryConfig, dispatch_with_writer};
use harness::{Cluster, block_on, wait_gone};
use kube::api::DeleteParams;
use tokio::sync::watch;
use tracing_subscriber::fmt::MakeWriter;

/// Captured log output that wakes whoever waits for a line.
#[derive(Clone)]
struct Capture {
    text: Arc<Mutex<String>>,
    written: watch::Sender<usize>,
}

impl Capture {
    fn new() -> Self {
        Self {
            text: Arc::default(),
            written: watch::channel(0).0,
        }
    }

    fn lines(&self) -> Vec<String> {
        let text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        text.lines().map(str::to_owned).collect()
    }

    /// Waits until a line contains `needle` (at most `patience`).
    async fn wait_for(&self, needle: &str, patience: Duration) -> String {
        let mut written = self.written.subscribe();
        let found = async {
            loop {
                if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                    return line;
                }
                written.changed().await.expect("the capture lives");
            }
        };
        tokio::time::timeout(patience, found)
            .await
            .unwrap_or_else(|_| panic!("no log line with {needle:?} within {patience:?}"))
    }
}

struct CaptureWriter(Capture);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&String::from_utf8_lossy(buf));
        self.0.written.send_modify(|count| *count += 1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.clone())
    }
}

/// Signs of an error printed with `{:?}` (kube's API error, any Rust struct or enum dump).
const DEBUG_DUMPS: &[&str] = &["Status {", "ApiError:", "ErrorResponse {"];

#[test]
fn a_feature_store_lifecycle_logs_no_warning_and_no_debug_dump() {
    block_on(async {
        let capture = Capture::new();
        let config = TelemetryConfig {
            log_format: LogFormat::Text,
            log_filter: Some("info,fieldwise=debug".to_owned()),
            ..TelemetryConfig::default()
        };
        let (dispatch, _guard) =
            dispatch_with_writer(&config, |_| None, capture.clone()).expect("telemetry");
        tracing::dispatcher::set_global_default(dispatch)
            .expect("the only subscriber of this test binary");
        let cluster = Cluster::start().await;
        cluster
            .apply_yaml(
                "apiVersion: feast.dev/v1\nkind: FeatureStore\nmetadata:\n  name: life\nspec:\n  feastProject: p\n",
                "default",
            )
            .await;
        cluster.wait_ready("default", "life").await;
        let stores = cluster.feature_stores("default");
        stores
            .delete("life", &DeleteParams::default())
            .await
            .expect("deleted");
        wait_gone(&stores, "life").await;
        // Garbage collection deletes the children; their events trigger the FeatureStore, which
        // is gone from the controller's store by then.
        let gone = capture
            .wait_for(
                "nothing to reconcile: the resource is gone",
                harness::patience(),
            )
            .await;
        assert!(gone.contains("DEBUG"), "{gone}");

        let lines = capture.lines();
        // The operator's lines (not the emulator's).
        let loud: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains("fieldwise_e2e"))
            .collect();
        assert!(loud.is_empty(), "warnings or errors:\n{}", join(&loud));
        let dumps: Vec<&String> = lines
            .iter()
            .filter(|l| is_fieldwise(l) && DEBUG_DUMPS.iter().any(|d| l.contains(d)))
            .collect();
        assert!(dumps.is_empty(), "debug dumps:\n{}", join(&dumps));
        let metrics = cluster.metrics.encode().expect("metrics");
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("fieldwise_reconcile_errors_total{")),
            "reconcile errors counted:\n{metrics}"
        );
    });
}

/// Whether a text log line comes from fieldwise (its target is one of fieldwise's crates).
fn is_fieldwise(line: &str) -> bool {
    line.split_whitespace()
        .nth(2)
        .is_some_and(|target| target.starts_with("fieldwise"))
}

fn join(lines: &[&String]) -> String {
    lines
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `fieldwise run` as a process, its stdout read line by line.
struct Operator {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path, args: &[&str], rust_log: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fieldwise"));
        command
            .arg("run")
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--health-probe-bind-address", "127.0.0.1:0"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("fieldwise runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from the start) containing `needle`, waiting for it at most 60 s.
    fn line_with(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within 60 s; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Where `/healthz` and `/readyz` are served.
    fn health_address(&mut self) -> String {
        let line = self.line_with("serving /healthz and /readyz");
        let address = line
            .split("address=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line}"));
        address.to_owned()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `address`: status code and body.
fn get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    (head[9..12].parse().expect("status"), body.to_owned())
}

const INSTALL: &str = "install the CRDs: fieldwise crds | kubectl apply --server-side -f -";

#[test]
fn run_without_the_crds_says_how_to_install_them_and_honours_the_log_level() {
    block_on(async {
        let emulator = fieldwise_e2e::Emulator::start(Default::default())
            .await
            .expect("emulator");
        let dir = std::env::temp_dir().join(format!("fieldwise-run-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig");

        // --log-level wins over RUST_LOG: the hint is the first line it logs.
        let mut quiet = Operator::start(&kubeconfig, &["--log-level", "warn"], Some("debug"));
        let hint = quiet.line_with(INSTALL);
        assert_eq!(quiet.seen, [hint], "only the error is logged");
        drop(quiet);

        // RUST_LOG=debug: debug lines, the install hint once as an error, /readyz says why.
        let mut operator = Operator::start(&kubeconfig, &[], Some("debug"));
        let address = operator.health_address();
        // Metrics are on their own port, over HTTPS with authentication unless --metrics-insecure.
        operator.line_with("serving /metrics over HTTPS to bearer tokens allowed to get /metrics");
        let hint = operator.line_with(INSTALL);
        assert!(hint.contains(" ERROR "), "{hint}");
        assert!(
            hint.contains(
                "the API server does not serve FeatureStore (its CRD featurestores.feast.dev is not installed)"
            ),
            "{hint}"
        );
        let (code, body) = get(&address, "/readyz");
        assert_eq!(code, 503);
        assert_eq!(
            body,
            format!(
                "not ready: the API server does not serve FeatureStore (its CRD \
                 featurestores.feast.dev is not installed): {INSTALL}\n"
            )
        );
        assert!(
            operator.seen.iter().any(|l| l.contains(" DEBUG ")),
            "RUST_LOG=debug shows debug lines:\n{}",
            operator.seen.join("\n")
        );

        // Installed as the hint says: the operator becomes ready without a restart.
        let client = emulator.client().expect("client");
        let crds: kube::Api<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        > = kube::Api::all(client);
        for crd in fieldwise_api::crds() {
            crds.create(&Default::default(), &crd)
                .await
                .expect("CRD created");
        }
        operator.line_with("FeatureStore is served now");
        operator.line_with("caches synced; ready");
        assert_eq!(get(&address, "/readyz"), (200, "ready".to_owned()));
        let hints = operator
            .seen
            .iter()
            .filter(|l| l.contains(INSTALL) && l.contains(" ERROR "))
            .count();
        assert_eq!(
            hints,
            1,
            "the hint is an error once:\n{}",
            operator.seen.join("\n")
        );
        // fieldwise's own lines: at debug, kube's libraries print their errors their way.
        let dumps: Vec<&String> = operator
            .seen
            .iter()
            .filter(|l| is_fieldwise(l) && DEBUG_DUMPS.iter().any(|d| l.contains(d)))
            .collect();
        assert!(dumps.is_empty(), "debug dumps:\n{}", join(&dumps));
        drop(operator);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
