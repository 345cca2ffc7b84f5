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

/// Every request the electors made is granted by the leader-election Role.
fn assert_only_granted_lease_calls(emulator: &fieldwise_e2e::EmulatorHandle) {
    let granted = rbac::permissions(&rbac::leader_election_rules());
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
