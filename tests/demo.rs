//! `fieldwise demo` end to end, through the function behind the command: the sample FeatureStore
//! becomes Ready against the emulator with its simulated controllers, and its Deployment exists.

use std::time::Duration;

use fieldwise::cli::demo::{DEFAULT_SAMPLE, Demo, runtime};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

type TestError = Box<dyn std::error::Error + Send + Sync>;

async fn demo_reaches_ready() -> Result<(), TestError> {
    let demo = Demo::start(DEFAULT_SAMPLE, Duration::from_secs(60)).await?;
    assert_eq!(
        demo.feature_stores,
        vec![("default".to_string(), "basic".to_string())]
    );

    let deployments: Api<Deployment> = Api::namespaced(demo.client.clone(), "default");
    let owned: Vec<Deployment> = deployments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|d| {
            d.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "FeatureStore" && o.name == "basic")
        })
        .collect();
    assert_eq!(owned.len(), 1, "one Deployment owned by the FeatureStore");
    let available = owned[0]
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    assert!(
        available >= 1,
        "the simulated rollout finished: {:?}",
        owned[0].status
    );

    let report = demo.report("traces not exported (test)").await?;
    assert!(report.contains("status: phase Ready"), "{report}");
    assert!(report.contains("Deployment/default/"), "{report}");
    assert!(report.contains("fieldwise (Apply)"), "{report}");
    assert!(
        report.contains("kube-controller-manager (Update/status)"),
        "{report}"
    );
    assert!(
        report.contains("traces: traces not exported (test)"),
        "{report}"
    );
    demo.shutdown().await;
    Ok(())
}

#[test]
fn demo_reaches_ready_with_its_deployment() -> Result<(), TestError> {
    let runtime = runtime()?;
    // On a worker, so the demo gets the runtime's large stacks.
    runtime.block_on(runtime.spawn(demo_reaches_ready()))?
}
