//! Two `fieldwise run --leader-elect` processes against one cluster: exactly one of them writes, and after
//! the leader stops, exactly the other one does; a leader paused past its lease writes nothing once it
//! resumes (issue 22).
//!
//! On the emulator the processes are told apart by the user the emulator sees (each process has its own
//! kubeconfig token). On a real control plane started by `e2e/cluster/up` they are told apart in the
//! API server's audit log (`logs/audit.log` beside the kubeconfig), by the `User-Agent`, which names the
//! instance (`fieldwise/<version> (<instance>)`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use fieldwise::leader::LEASE_NAME;
use fieldwise_e2e::{
    emulator::{ApiError, RequestHook, RequestInfo},
    sim::SimOptions,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        coordination::v1::Lease,
        core::v1::{ConfigMap, Secret, Service},
    },
    jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::{
    Cluster, KUBECONFIG_VARIABLE, Target, USER, block_on, on_every_target, patience, wait_for,
};

const IDENTITIES: [&str; 2] = ["operator-a", "operator-b"];
/// The user the scenario's own client is (its kubeconfig has no token).
const SCENARIO_USER: &str = "system:anonymous";

/// Write requests per user, leaving out Lease writes (both replicas compete for the Lease; that is the
/// election, not reconciling).
#[derive(Default)]
struct WritesByUser(Mutex<BTreeMap<String, Vec<String>>>);

impl WritesByUser {
    /// The operator processes that wrote since the last call, and every write by user (for messages).
    fn take_writers(&self) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
        let by_user = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        let writers = by_user
            .keys()
            .filter(|user| *user != SCENARIO_USER)
            .cloned()
            .collect();
        (writers, by_user)
    }
}

impl RequestHook for WritesByUser {
    fn before(&self, request: &RequestInfo) -> Option<ApiError> {
        let write = matches!(
            request.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        if write && request.resource != "leases" {
            let what = format!("{} {}/{}", request.verb, request.resource, request.name);
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(request.user.clone())
                .or_default()
                .push(what);
        }
        None
    }
}

/// One `fieldwise run --leader-elect` process, as a Deployment replica would run it.
struct Replica {
    identity: &'static str,
    process: Child,
    log: PathBuf,
}

impl Replica {
    /// On the emulator, the process is the user `identity`; on a real cluster it uses the cluster's
    /// kubeconfig. It watches only `cluster.namespace`, where its Lease is too; `flags` are added.
    fn start(cluster: &Cluster, directory: &Path, identity: &'static str, flags: &[&str]) -> Self {
        let kubeconfig = if cluster.is_emulated() {
            let kubeconfig = directory.join(format!("{identity}.kubeconfig"));
            cluster
                .emulator()
                .write_kubeconfig_as(&kubeconfig, identity)
                .expect("kubeconfig written");
            kubeconfig
        } else {
            real_kubeconfig()
        };
        let log = directory.join(format!("{identity}.log"));
        let output = std::fs::File::create(&log).expect("log file");
        let process = Command::new(env!("CARGO_BIN_EXE_fieldwise"))
            .args(["run", "--leader-elect", "--debounce-ms", "50"])
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--health-probe-bind-address", "127.0.0.1:0"])
            .args(["--namespace", &cluster.namespace])
            .args(flags)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", &cluster.namespace)
            .env("POD_NAME", identity)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .expect("fieldwise starts");
        Self {
            identity,
            process,
            log,
        }
    }

    /// SIGTERM, as the kubelet sends: the replica stops its controller and releases the Lease.
    async fn terminate(&mut self) {
        let pid = self.process.id().expect("still running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
        let exited = tokio::time::timeout(patience(), self.process.wait()).await;
        let status = exited
            .unwrap_or_else(|_| panic!("{} did not stop on SIGTERM", self.identity))
            .expect("exit status");
        assert!(status.success(), "{} exited with {status}", self.identity);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.process.id().expect("still running")
    }

    /// Waits until the process exits by itself.
    async fn exited(&mut self) -> std::process::ExitStatus {
        let exited = tokio::time::timeout(patience(), self.process.wait()).await;
        exited
            .unwrap_or_else(|_| panic!("{} did not exit:\n{}", self.identity, self.log()))
            .expect("exit status")
    }
}

/// Sends `signal` to the process `pid`.
fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: kill(2) takes two integers and touches none of this process's memory.
    let sent = unsafe { libc::kill(pid, signal) };
    let error = std::io::Error::last_os_error();
    assert_eq!(sent, 0, "kill({pid}, {signal}): {error}");
}

/// The kubeconfig of the real cluster (`E2E_KUBECONFIG`).
fn real_kubeconfig() -> PathBuf {
    std::env::var_os(KUBECONFIG_VARIABLE)
        .map(PathBuf::from)
        .expect("E2E_KUBECONFIG names the real cluster")
}

async fn lease_holder(cluster: &Cluster) -> String {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let held = |lease: Option<&Lease>| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|holder| !holder.is_empty())
    };
    let lease = wait_for(&leases, LEASE_NAME, held, "held").await;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .expect("a holder")
}

/// Applies a FeatureStore (with a UI when `ui`) as the user.
async fn apply_feature_store(cluster: &Cluster, name: &str, ui: bool) {
    let services = if ui { json!({"ui": {}}) } else { json!({}) };
    let namespace = &cluster.namespace;
    let body = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"feastProject": name, "services": services}});
    cluster
        .feature_stores(namespace)
        .patch(
            name,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("FeatureStore applied");
}

#[test]
fn two_operator_processes_with_leader_election_exactly_one_writes() {
    block_on(async {
        let cluster = Cluster::start_on(Target::Emulator, SimOptions::default(), false).await;
        let writes = Arc::new(WritesByUser::default());
        cluster.emulator().add_hook(writes.clone());
        let directory =
            std::env::temp_dir().join(format!("fieldwise-leader-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temporary directory");
        let mut replicas: Vec<Replica> = IDENTITIES
            .iter()
            .map(|identity| Replica::start(&cluster, &directory, identity, &[]))
            .collect();

        for name in ["one", "two"] {
            apply_feature_store(&cluster, name, false).await;
        }
        for name in ["one", "two"] {
            cluster.wait_ready(&cluster.namespace, name).await;
        }
        let leader = lease_holder(&cluster).await;
        let (writers, by_user) = writes.take_writers();
        assert_eq!(
            writers,
            std::slice::from_ref(&leader),
            "only the leader writes; writes by user: {by_user:#?}\n{}",
            replicas
                .iter()
                .map(Replica::log)
                .collect::<Vec<_>>()
                .join("\n")
        );

        // The leader stops; the standby takes over and is then the only writer.
        let (stopping, standing_by): (Vec<_>, Vec<_>) = replicas
            .iter_mut()
            .partition(|replica| replica.identity == leader);
        stopping
            .into_iter()
            .next()
            .expect("the leader is ours")
            .terminate()
            .await;
        let successor = standing_by.into_iter().next().expect("a standby").identity;
        apply_feature_store(&cluster, "one", true).await;
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        wait_for(
            &services,
            "feast-one-ui",
            |s: Option<&Service>| s.is_some(),
            "created",
        )
        .await;
        assert_eq!(lease_holder(&cluster).await, successor);
        let (writers, by_user) = writes.take_writers();
        assert_eq!(
            writers,
            [successor],
            "after the hand-over only the new leader writes; writes by user: {by_user:#?}"
        );
        let _ = std::fs::remove_dir_all(&directory);
    });
}

/// FeatureStores the paused-leader scenario creates: with one reconcile at a time, the leader is still
/// busy with them when it is stopped.
const PAUSED_STORES: [&str; 3] = ["one", "two", "three"];

on_every_target!(
    a_leader_paused_past_its_lease_writes_nothing_after_the_takeover,
    paused_leader,
    operator_started_by_scenario
);

/// The leader is stopped (SIGSTOP) in the middle of reconciling, the standby takes the Lease and writes
/// a new spec's children, the old leader is resumed (SIGCONT): none of its writes reaches the API server
/// after the takeover, though its reconcile was computed from the old spec and was under way. It exits,
/// as on any loss of the Lease.
async fn paused_leader(cluster: Cluster) {
    let directory = std::env::temp_dir().join(format!(
        "fieldwise-paused-leader-{}-{}",
        std::process::id(),
        cluster.namespace
    ));
    std::fs::create_dir_all(&directory).expect("temporary directory");
    let writes = Writes::start(&cluster);
    // Short leases keep the pause (as long as the lease, and the takeover) below the 10 s the operator
    // allows a request: on waking, the old leader's reconcile carries on from the answer to its last
    // write rather than from a timeout.
    let flags = [
        "--concurrency",
        "1",
        "--leader-elect-lease-duration",
        "5",
        "--leader-elect-renew-deadline",
        "4",
        "--leader-elect-retry-period",
        "2",
    ];
    let mut replicas: Vec<Replica> = IDENTITIES
        .iter()
        .map(|identity| Replica::start(&cluster, &directory, identity, &flags))
        .collect();
    let leader_name = lease_holder(&cluster).await;
    let position = replicas.iter().position(|r| r.identity == leader_name);
    let mut leader = replicas.remove(position.expect("the leader is ours"));
    let mut successor = replicas.pop().expect("a standby");

    // The leader is stopped mid-reconcile, at its write of the first FeatureStore's config Secret.
    let stopped = writes.stop_at_first_write(&cluster, &leader);
    for name in PAUSED_STORES {
        apply_feature_store(&cluster, name, false).await;
    }
    tokio::time::timeout(patience(), stopped)
        .await
        .expect("the leader wrote")
        .expect("stopped");

    wait_for(
        &Api::<Lease>::namespaced(cluster.client.clone(), &cluster.namespace),
        LEASE_NAME,
        |lease: Option<&Lease>| {
            let holder = lease.and_then(|l| l.spec.as_ref()?.holder_identity.as_deref());
            holder == Some(successor.identity)
        },
        "taken over by the standby",
    )
    .await;
    let takeover = writes.taken_over();
    // The new leader writes the children of a changed spec, which the old one's reconcile predates.
    for name in PAUSED_STORES {
        apply_feature_store(&cluster, name, true).await;
    }
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    for name in PAUSED_STORES {
        let ui = format!("feast-{name}-ui");
        wait_for(&services, &ui, |s: Option<&Service>| s.is_some(), "created").await;
    }

    signal(leader.pid(), libc::SIGCONT);
    let status = leader.exited().await;
    assert!(
        !status.success(),
        "the old leader exits with an error, as on a lost Lease"
    );
    let late = writes.after(&cluster, &takeover, &leader).await;
    assert!(
        late.is_empty(),
        "writes of the old leader {} after the takeover: {late:#?}\n{}",
        leader.identity,
        leader.log()
    );
    successor.terminate().await;
    println!("old leader's log:\n{}", leader.log());
    let _ = std::fs::remove_dir_all(&directory);
}

/// How the paused-leader scenario stops the leader and finds its writes: through a request hook on the
/// emulator, through a watch and the audit log on a real control plane.
enum Writes {
    Emulated(Arc<PauseAndRecord>),
    Audited(PathBuf),
}

/// When the takeover was seen.
enum Takeover {
    Emulated,
    Audited(Timestamp),
}

impl Writes {
    fn start(cluster: &Cluster) -> Self {
        if cluster.is_emulated() {
            let hook = Arc::new(PauseAndRecord::default());
            cluster.emulator().add_hook(hook.clone());
            return Self::Emulated(hook);
        }
        let kubeconfig = real_kubeconfig();
        let directory = kubeconfig.parent().expect("the kubeconfig's directory");
        let log = directory.join("logs").join("audit.log");
        assert!(
            log.is_file(),
            "{} is missing: this scenario needs the audit log of a control plane e2e/cluster/up started",
            log.display()
        );
        Self::Audited(log)
    }

    /// Resolves once `leader` was stopped at its first write of a FeatureStore's child: the config
    /// Secret, the first of the graph, after which come the applies of the other children, one after
    /// another, each computed from the spec the reconcile started with (on a real cluster: stopped as
    /// soon as a watch shows that Secret).
    fn stop_at_first_write(
        &self,
        cluster: &Cluster,
        leader: &Replica,
    ) -> tokio::task::JoinHandle<()> {
        let pid = leader.pid();
        match self {
            Self::Emulated(hook) => {
                let (stopped, waiter) = tokio::sync::oneshot::channel();
                *hook.stop.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((leader.identity.to_owned(), pid, stopped));
                tokio::spawn(async move {
                    let _ = waiter.await;
                })
            }
            Self::Audited(_) => {
                let secrets: Api<Secret> =
                    Api::namespaced(cluster.client.clone(), &cluster.namespace);
                tokio::spawn(async move {
                    let mut secrets = watcher(secrets, watcher::Config::default())
                        .applied_objects()
                        .boxed();
                    while let Some(secret) = secrets.try_next().await.expect("watch") {
                        if secret.name_any().starts_with("feast-") {
                            signal(pid, libc::SIGSTOP);
                            return;
                        }
                    }
                })
            }
        }
    }

    /// Notes that the standby holds the Lease now.
    fn taken_over(&self) -> Takeover {
        match self {
            Self::Emulated(hook) => {
                hook.taken_over.store(true, Ordering::SeqCst);
                Takeover::Emulated
            }
            Self::Audited(_) => {
                let now = Timestamp::try_from(SystemTime::now()).expect("a timestamp");
                Takeover::Audited(now)
            }
        }
    }

    /// The writes of `replica` the API server received after `takeover`, once the replica exited.
    async fn after(
        &self,
        cluster: &Cluster,
        takeover: &Takeover,
        replica: &Replica,
    ) -> Vec<String> {
        match (self, takeover) {
            (Self::Emulated(hook), _) => {
                let late = hook.late.lock().unwrap_or_else(PoisonError::into_inner);
                let of_replica = late.iter().filter(|(user, _)| user == replica.identity);
                of_replica.map(|(_, what)| what.clone()).collect()
            }
            (Self::Audited(log), Takeover::Audited(since)) => {
                let agent = format!("({})", replica.identity);
                audited_writes(cluster, log)
                    .await
                    .into_iter()
                    .filter(|w| w.user_agent.ends_with(&agent) && w.received >= *since)
                    .map(|w| w.what)
                    .collect()
            }
            (Self::Audited(_), Takeover::Emulated) => unreachable!("one kind of cluster"),
        }
    }
}

/// The emulator's side of the paused-leader scenario: stops the leader at its first write of a Secret,
/// and notes every write received after the takeover.
#[derive(Default)]
struct PauseAndRecord {
    /// The user and process to stop at that user's next write of a Secret, and whom to tell.
    stop: Mutex<Option<(String, u32, tokio::sync::oneshot::Sender<()>)>>,
    /// The user that was stopped.
    stopped: Mutex<Option<String>>,
    taken_over: AtomicBool,
    /// `(user, "verb resource/name")` of the writes after the takeover.
    late: Mutex<Vec<(String, String)>>,
}

impl RequestHook for PauseAndRecord {
    fn before(&self, request: &RequestInfo) -> Option<ApiError> {
        let write = matches!(
            request.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        if !write || request.resource == "leases" {
            return None;
        }
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let leaders_secret = request.resource == "secrets"
            && stop
                .as_ref()
                .is_some_and(|(user, ..)| *user == request.user);
        if leaders_secret && let Some((user, pid, stopped)) = stop.take() {
            // Stopped before this write is answered: the rest of its reconcile waits on the answer.
            signal(pid, libc::SIGSTOP);
            *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(user);
            let _ = stopped.send(());
        }
        if self.taken_over.load(Ordering::SeqCst) {
            let what = format!("{} {}/{}", request.verb, request.resource, request.name);
            let mut late = self.late.lock().unwrap_or_else(PoisonError::into_inner);
            late.push((request.user.clone(), what));
        }
        None
    }

    /// After the takeover, the stopped leader's Lease requests are answered 1 s late: it cannot
    /// notice its loss before the rest of its reconcile goes out, so only the fence can hold that
    /// back (as when the leader wrote 610 ms after the takeover).
    fn delay(&self, request: &RequestInfo) -> Option<Duration> {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let leader = stopped.as_deref() == Some(request.user.as_str());
        let late = leader && request.resource == "leases" && self.taken_over.load(Ordering::SeqCst);
        late.then_some(Duration::from_secs(1))
    }
}

/// One write request in the audit log.
struct AuditedWrite {
    user_agent: String,
    received: Timestamp,
    /// `verb resource/name (code)`, for messages.
    what: String,
}

/// Every write request in the audit log (its policy logs writes only, leases left out), read once a
/// write the scenario makes after everything it looks for shows in it.
async fn audited_writes(cluster: &Cluster, log: &Path) -> Vec<AuditedWrite> {
    let marker = format!("audit-marker-{}", std::process::id());
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": marker, "namespace": cluster.namespace}});
    Api::<ConfigMap>::namespaced(cluster.client.clone(), &cluster.namespace)
        .patch(&marker, &PatchParams::apply(USER), &Patch::Apply(&body))
        .await
        .expect("marker written");
    // The API server appends to the log as requests complete; a file gives nothing to watch, so it is
    // read again (every 100 ms, within the patience) until the marker shows.
    let read = async {
        loop {
            let text = std::fs::read_to_string(log).expect("audit log readable");
            let entries: Vec<Value> = text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            let marked = entries
                .iter()
                .any(|e| e.pointer("/objectRef/name").and_then(Value::as_str) == Some(&marker));
            if marked {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let entries = tokio::time::timeout(patience(), read)
        .await
        .expect("the marker reaches the audit log");
    entries.iter().filter_map(audited_write).collect()
}

fn audited_write(entry: &Value) -> Option<AuditedWrite> {
    let text = |pointer: &str| {
        entry
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let received = text("/requestReceivedTimestamp").parse().ok()?;
    let code = entry
        .pointer("/responseStatus/code")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    Some(AuditedWrite {
        user_agent: text("/userAgent").to_owned(),
        received,
        what: format!(
            "{} {}/{} ({code})",
            text("/verb"),
            text("/objectRef/resource"),
            text("/objectRef/name")
        ),
    })
}
