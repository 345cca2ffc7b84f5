//! Leader election against the in-process API emulator: one leader at a time, hand-over on release, and
//! only the Lease calls the leader-election Role grants.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fieldwise::{
    deploy::rbac,
    leader::{LEASE_NAME, LeaderElector, LeaseTiming},
};
use fieldwise_apply::FencedWrite;
use fieldwise_e2e::{
    Emulator, Options,
    emulator::{ApiError, RequestHook, RequestInfo},
};
use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::Api;

const NAMESPACE: &str = "default";
/// Short leases keep the hand-over test fast: 4 s leases renewed every 2 s; the leader writes for 3 s
/// after each renewal.
const TIMING: LeaseTiming = LeaseTiming {
    lease_duration_seconds: 4,
    renew_deadline_seconds: 3,
    retry_period_seconds: 2,
};
/// Generous bound for anything the test awaits (a hang fails instead of blocking CI).
const PATIENCE: Duration = Duration::from_secs(30);

async fn holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get(LEASE_NAME).await.expect("lease exists");
    lease.spec.and_then(|spec| spec.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_hand_over_on_release() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    let config = emulator.config().expect("config");
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);

    let first = LeaderElector::start_with(config.clone(), NAMESPACE, "pod-a", TIMING)
        .await
        .expect("a starts");
    let second = LeaderElector::start_with(config, NAMESPACE, "pod-b", TIMING)
        .await
        .expect("b starts");
    let (leader, standby) = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            acquired = first.acquired() => { acquired.expect("a elects"); (first, second) }
            acquired = second.acquired() => { acquired.expect("b elects"); (second, first) }
        }
    })
    .await
    .expect("someone leads");
    let leader_id = holder(&leases).await.expect("the Lease has a holder");
    assert!(leader.is_leader());
    assert!(!standby.is_leader(), "two leaders at once");
    assert_eq!(leader.fence().check(), Ok(()), "the leader may write");
    assert_eq!(
        standby.fence().check(),
        Err(FencedWrite::NeverRenewed),
        "a standby may not write"
    );

    // The standby keeps competing through at least one renewal of the leader without taking over.
    let renewed_before = leases
        .get(LEASE_NAME)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.renew_time);
    let mut watch_standby = standby.leadership();
    let took_over = tokio::time::timeout(
        Duration::from_secs(4),
        watch_standby.wait_for(|leading| *leading),
    )
    .await;
    assert!(
        took_over.is_err(),
        "the standby took the lease from a live leader"
    );
    let renewed_after = leases
        .get(LEASE_NAME)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.renew_time);
    assert_ne!(renewed_before, renewed_after, "the leader renews its lease");
    assert!(leader.is_leader());

    let mut lost = leader.leadership();
    let fence = leader.fence();
    leader.release().await;
    assert!(
        !*lost.borrow_and_update(),
        "a released elector does not lead"
    );
    assert_eq!(fence.check(), Err(FencedWrite::Revoked));
    tokio::time::timeout(PATIENCE, standby.acquired())
        .await
        .expect("the standby takes over")
        .expect("elects");
    let standby_id = if leader_id == "pod-a" {
        "pod-b"
    } else {
        "pod-a"
    };
    assert_eq!(holder(&leases).await.as_deref(), Some(standby_id));

    standby.release().await;
    assert_eq!(holder(&leases).await, None, "release clears the holder");
    assert_only_granted_lease_calls(&emulator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_resolves_when_another_holder_takes_the_lease() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    let elector = pod_a_leading(&emulator).await;

    // Someone else forces the lease over (as an expired-lease takeover would): the elector must notice.
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let patch = serde_json::json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60}});
    leases
        .patch(
            LEASE_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patch");
    tokio::time::timeout(PATIENCE, elector.lost())
        .await
        .expect("leadership loss is noticed");
    assert!(!elector.is_leader());
    assert_eq!(elector.fence().check(), Err(FencedWrite::Revoked));
    elector.release().await;
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("intruder"),
        "an elector never releases someone else's lease"
    );
}

#[tokio::test]
async fn invalid_timing_is_an_error_not_a_panic() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let config = emulator.config().expect("config");
    let bad = LeaseTiming {
        lease_duration_seconds: 5,
        renew_deadline_seconds: 5,
        retry_period_seconds: 1,
    };
    assert!(
        LeaderElector::start_with(config, NAMESPACE, "pod-a", bad)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_from_before_a_restart_is_led_once_renewed() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    // What a crashed pod-a left: its lease, renewed a moment ago.
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": LEASE_NAME, "namespace": NAMESPACE},
        "spec": {"holderIdentity": "pod-a", "acquireTime": now, "renewTime": now,
                 "leaseDurationSeconds": TIMING.lease_duration_seconds, "leaseTransitions": 1}}))
    .expect("a Lease");
    leases
        .create(&Default::default(), &lease)
        .await
        .expect("created");

    // The restarted pod-a holds it at once, but leads (and may write) only once it renewed it.
    let elector = pod_a_leading(&emulator).await;
    assert_eq!(elector.fence().check(), Ok(()));
    let renewed = leases.get(LEASE_NAME).await.expect("lease");
    let renewed = renewed.spec.and_then(|spec| spec.renew_time);
    assert!(
        renewed.is_some_and(|renewed| renewed != now),
        "renewed first"
    );
    elector.release().await;
}

/// Holds every Lease write back while `hang` is set, as an API server too slow to answer would.
#[derive(Default)]
struct HangLeaseWrites {
    hang: AtomicBool,
}

impl RequestHook for HangLeaseWrites {
    fn before(&self, _request: &RequestInfo) -> Option<ApiError> {
        None
    }

    fn delay(&self, request: &RequestInfo) -> Option<Duration> {
        let lease_write = request.resource == "leases" && request.verb == "patch";
        (lease_write && self.hang.load(Ordering::SeqCst)).then_some(PATIENCE)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_hang_stops_writing_then_leading() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let hook = Arc::new(HangLeaseWrites::default());
    emulator.add_hook(hook.clone());
    let elector = pod_a_leading(&emulator).await;
    let fence = elector.fence();
    let deadline = fence.deadline().expect("a confirmed renewal");
    hook.hang.store(true, Ordering::SeqCst);

    // The next renewal hangs: writes stop at the deadline of the last one that came through, and the
    // elector gives leadership up then, without waiting for the hung request.
    tokio::time::timeout(PATIENCE, elector.lost())
        .await
        .expect("leadership is given up");
    let gave_up = tokio::time::Instant::now();
    assert!(
        gave_up >= deadline,
        "gave up {:?} before the deadline",
        deadline - gave_up
    );
    assert_eq!(fence.check(), Err(FencedWrite::Revoked));
}

/// Every request the electors made is granted by the leader-election Role. The emulator counts requests
/// without their object's name: the Role's `get` and `patch` name the one Lease the electors use
/// (`LeaderElector` takes no other), so they count as granted here.
fn assert_only_granted_lease_calls(emulator: &fieldwise_e2e::EmulatorHandle) {
    let rules = rbac::leader_election_rules();
    let mut granted = rbac::permissions(&rules);
    for (group, resource, verb, name) in rbac::named_permissions(&rules) {
        assert_eq!(name, fieldwise::leader::LEASE_NAME);
        granted.insert((group, resource, verb));
    }
    let mut used = std::collections::BTreeSet::new();
    for (key, _) in emulator.counters().snapshot() {
        if key.resource != "leases" {
            continue;
        }
        let resource = if key.subresource.is_empty() {
            key.resource.clone()
        } else {
            format!("{}/{}", key.resource, key.subresource)
        };
        let permission = (key.group.clone(), resource, key.verb.clone());
        assert!(
            granted.contains(&permission),
            "the leader-election Role lacks {permission:?}"
        );
        used.insert(permission);
    }
    assert_eq!(
        used, granted,
        "the leader-election Role grants verbs kube-lease-manager never used"
    );
}

/// A `fieldwise run --leader-elect` process against the emulator.
struct Operator {
    child: Option<std::process::Child>,
}

impl Drop for Operator {
    /// A failed test must not leave operators running.
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Operator {
    /// Logs go to `<pod>.log` next to the kubeconfig.
    fn start(kubeconfig: &std::path::Path, pod: &str) -> Self {
        let log = std::fs::File::create(kubeconfig.with_file_name(format!("{pod}.log")))
            .expect("log file");
        let log_err = log.try_clone().expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldwise"))
            .args([
                "run",
                "--leader-elect",
                "--metrics-bind-address",
                "127.0.0.1:0",
                "--health-probe-bind-address",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", NAMESPACE)
            .env_remove("WATCH_NAMESPACE")
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("fieldwise starts");
        Self { child: Some(child) }
    }

    /// Sends SIGTERM and waits for the exit status (within the operator's 20 s stop deadline).
    async fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let waited = tokio::task::spawn_blocking(move || child.wait());
        tokio::time::timeout(PATIENCE, waited)
            .await
            .expect("exits after SIGTERM")
            .expect("joins")
            .expect("waits")
    }
}

async fn await_holder(leases: &Api<Lease>, wanted: Option<&'static str>) {
    let held_by = move |lease: Option<&Lease>| {
        lease.is_some_and(|l| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == wanted)
    };
    let waited = kube::runtime::wait::await_condition(leases.clone(), LEASE_NAME, held_by);
    tokio::time::timeout(PATIENCE, waited)
        .await
        .expect("the Lease reaches the holder in time")
        .expect("watch");
}

#[test]
fn leader_elect_processes_fail_over_on_sigterm() {
    // The in-process emulator and the FeatureStore type need deep stacks in unoptimised builds.
    fieldwise_e2e::testkit::block_on(fail_over_scenario());
}

async fn fail_over_scenario() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in fieldwise_api::crds() {
        crds.create(&Default::default(), &crd)
            .await
            .expect("CRD installs");
    }
    let dir = std::env::temp_dir().join(format!("fieldwise-leader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);

    let first = Operator::start(&kubeconfig, "pod-a");
    await_holder(&leases, Some("pod-a")).await;
    let second = Operator::start(&kubeconfig, "pod-b");
    let status = first.terminate().await;
    println!("the first leader exited with {status}");
    await_holder(&leases, Some("pod-b")).await;
    let status = second.terminate().await;
    println!("the second leader exited with {status}");
    await_holder(&leases, None).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `pod-a`'s elector on the emulator, once it leads.
async fn pod_a_leading(emulator: &fieldwise_e2e::EmulatorHandle) -> LeaderElector {
    let config = emulator.config().expect("config");
    let elector = LeaderElector::start_with(config, NAMESPACE, "pod-a", TIMING)
        .await
        .expect("starts");
    tokio::time::timeout(PATIENCE, elector.acquired())
        .await
        .expect("leads")
        .expect("elects");
    elector
}
