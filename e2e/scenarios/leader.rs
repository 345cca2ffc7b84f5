//! Two `fieldwise run --leader-elect` processes against one cluster: exactly one of them writes, and after
//! the leader stops, exactly the other one does.
//!
//! Emulator only: it tells the two processes apart by the user the emulator sees (each process has its
//! own kubeconfig token), which a real cluster's audit log would show but a test cannot read.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, PoisonError},
};

use fieldwise::leader::LEASE_NAME;
use fieldwise_e2e::{
    emulator::{ApiError, RequestHook, RequestInfo},
    sim::SimOptions,
};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Service};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::harness::{Cluster, Target, USER, block_on, patience, wait_for};

const NAMESPACE: &str = "default";
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
    fn start(cluster: &Cluster, directory: &Path, identity: &'static str) -> Self {
        let kubeconfig = directory.join(format!("{identity}.kubeconfig"));
        cluster
            .emulator()
            .write_kubeconfig_as(&kubeconfig, identity)
            .expect("kubeconfig written");
        let log = directory.join(format!("{identity}.log"));
        let output = std::fs::File::create(&log).expect("log file");
        let process = Command::new(env!("CARGO_BIN_EXE_fieldwise"))
            .args(["run", "--leader-elect", "--debounce-ms", "50"])
            .args(["--metrics-bind-address", "127.0.0.1:0"])
            .args(["--health-probe-bind-address", "127.0.0.1:0"])
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("POD_NAME", identity)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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
}

async fn lease_holder(cluster: &Cluster) -> String {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
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
    let body = json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"feastProject": name, "services": services}});
    cluster
        .feature_stores(NAMESPACE)
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
            .map(|identity| Replica::start(&cluster, &directory, identity))
            .collect();

        for name in ["one", "two"] {
            apply_feature_store(&cluster, name, false).await;
        }
        for name in ["one", "two"] {
            cluster.wait_ready(NAMESPACE, name).await;
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
        let services: Api<Service> = Api::namespaced(cluster.client.clone(), NAMESPACE);
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
