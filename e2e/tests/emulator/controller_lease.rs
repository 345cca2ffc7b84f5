//! Leader election through kube-lease-manager (server-side apply on a coordination.k8s.io Lease)
//! works against the emulator: one holder at a time, released leases are taken over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::LeaseManagerBuilder;

use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, Options};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn one_leader_then_takeover() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let client = emu.client()?;
    let a = LeaseManagerBuilder::new(client.clone(), "fieldwise-leader")
        .with_namespace("default")
        .with_identity("a")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await?;
    let b = LeaseManagerBuilder::new(client.clone(), "fieldwise-leader")
        .with_namespace("default")
        .with_identity("b")
        .with_duration(5)
        .with_grace(2)
        .build()
        .await?;
    assert!(
        tokio::time::timeout(WAIT, a.changed()).await??,
        "a becomes leader"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = leases.get("fieldwise-leader").await?;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("a")
    );
    a.release().await?;
    let took = tokio::time::timeout(WAIT, async {
        loop {
            match b.changed().await {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await?;
    took?;
    let lease = leases.get("fieldwise-leader").await?;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
    Ok(())
}
