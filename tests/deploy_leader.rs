//! Leader election against the in-process API emulator: one leader at a time, hand-over on release, and
//! only the Lease calls the leader-election Role grants.

use std::time::Duration;

use fieldwise::{
    deploy::rbac,
    leader::{LEASE_NAME, LeaderElector, LeaseTiming},
};
use fieldwise_e2e::{Emulator, Options};
use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::MicroTime};
use kube::Api;

const NAMESPACE: &str = "default";
/// Short leases keep the hand-over test fast; the leader renews 1 s before expiry.
const TIMING: LeaseTiming = LeaseTiming {
    duration_seconds: 3,
    renew_before_expiry_seconds: 1,
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
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);

    let first = LeaderElector::start_with(client.clone(), NAMESPACE, "pod-a", TIMING)
        .await
        .expect("a starts");
    let second = LeaderElector::start_with(client.clone(), NAMESPACE, "pod-b", TIMING)
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
    leader.release().await;
    assert!(
        !*lost.borrow_and_update(),
        "a released elector does not lead"
    );
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
    let elector = LeaderElector::start_with(client.clone(), NAMESPACE, "pod-a", TIMING)
        .await
        .expect("starts");
    tokio::time::timeout(PATIENCE, elector.acquired())
        .await
        .expect("leads")
        .expect("elects");

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
    let client = emulator.client().expect("client");
    let bad = LeaseTiming {
        duration_seconds: 5,
        renew_before_expiry_seconds: 5,
    };
    assert!(
        LeaderElector::start_with(client, NAMESPACE, "pod-a", bad)
            .await
            .is_err()
    );
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
