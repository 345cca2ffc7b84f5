//! `fieldwise demo` end to end, through the function behind the command: the sample FeatureStore
//! becomes Ready against the emulator with its simulated controllers, and its Deployment exists;
//! with `--prism` the PrismCluster `prism-local` becomes Running with exactly the children
//! `fieldwise render` shows; a sample with both kinds waits for each one's own readiness.

use std::{collections::BTreeSet, time::Duration};

use fieldwise::{
    cli::demo::{DEFAULT_SAMPLE, Demo, PRISM_SAMPLE, SampleOwner, runtime},
    featurestore::context::ImageDefaults,
    render::{Input, render},
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    api::{Api, DynamicObject, ListParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::Value;

type TestError = Box<dyn std::error::Error + Send + Sync>;

async fn demo_reaches_ready() -> Result<(), TestError> {
    let demo = Demo::start(DEFAULT_SAMPLE, Duration::from_secs(60)).await?;
    assert_eq!(demo.owners, vec![owner("FeatureStore", "default", "basic")]);

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

fn owner(kind: &str, namespace: &str, name: &str) -> SampleOwner {
    SampleOwner {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

/// `(kind, name)` of every object `fieldwise render` shows for `sample`.
fn rendered_children(sample: &str) -> BTreeSet<(String, String)> {
    let input = Input {
        source_name: "sample".into(),
        text: sample.into(),
    };
    let yaml = render(&[input], &ImageDefaults::default()).expect("the sample renders");
    let objects: Vec<Value> = serde_saphyr::from_multiple(&yaml).expect("rendered YAML");
    objects.iter().map(kind_and_name).collect()
}

fn kind_and_name(object: &Value) -> (String, String) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    (text("/kind").to_owned(), text("/metadata/name").to_owned())
}

/// `(kind, name)` of every object in `namespace` whose controller owner is the PrismCluster `name`.
async fn live_children(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<(String, String)>, TestError> {
    let kinds = [
        ("", "v1", "Secret", "secrets"),
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "Service", "services"),
        ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
        ("apps", "v1", "Deployment", "deployments"),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        ),
        ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ];
    let mut children = BTreeSet::new();
    for (group, version, kind, plural) in kinds {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&ListParams::default()).await?.items {
            let owned =
                object.metadata.owner_references.iter().flatten().any(|o| {
                    o.kind == "PrismCluster" && o.name == name && o.controller == Some(true)
                });
            if owned {
                children.insert((kind.to_owned(), object.metadata.name.unwrap_or_default()));
            }
        }
    }
    Ok(children)
}

async fn prism_demo_runs_what_render_shows() -> Result<(), TestError> {
    let demo = Demo::start(PRISM_SAMPLE, Duration::from_secs(90)).await?;
    assert_eq!(
        demo.owners,
        vec![owner("PrismCluster", "prism", "prism-local")]
    );

    let live = live_children(&demo.client, "prism", "prism-local").await?;
    // The emulator serves neither ServiceMonitors nor the Grafana operator, and render without
    // their CRDs in the files leaves them out too: the two graphs are the same.
    assert_eq!(live, rendered_children(PRISM_SAMPLE));
    for runner in ["keyvalue-runner", "mailbox-runner"] {
        assert!(
            live.contains(&("StatefulSet".to_owned(), runner.to_owned())),
            "{live:?}"
        );
    }

    let report = demo.report("traces not exported (test)").await?;
    assert!(
        report.contains("PrismCluster prism/prism-local"),
        "{report}"
    );
    assert!(report.contains("status: phase Running"), "{report}");
    assert!(
        report.contains("admin 1/1, proxy 2/2, patterns 4/4, backends 3/3"),
        "{report}"
    );
    assert!(
        report.contains("StatefulSet/prism/redis  owner: PrismCluster/prism-local"),
        "{report}"
    );
    assert!(report.contains("fieldwise (Apply)"), "{report}");
    demo.shutdown().await;
    Ok(())
}

#[test]
fn prism_demo_reaches_running_with_the_rendered_children() -> Result<(), TestError> {
    let runtime = runtime()?;
    runtime.block_on(runtime.spawn(prism_demo_runs_what_render_shows()))?
}

const PRISM_MINIMAL: &str = include_str!("../deploy/samples/prismcluster-minimal.yaml");

async fn both_kinds_reach_their_own_readiness() -> Result<(), TestError> {
    let sample = format!("{DEFAULT_SAMPLE}\n---\n{PRISM_MINIMAL}");
    let demo = Demo::start(&sample, Duration::from_secs(90)).await?;
    assert_eq!(
        demo.owners,
        vec![
            owner("FeatureStore", "default", "basic"),
            owner("PrismCluster", "default", "prism-minimal"),
        ]
    );
    let report = demo.report("traces not exported (test)").await?;
    let sections: Vec<&str> = report.split("PrismCluster default/prism-minimal").collect();
    assert_eq!(sections.len(), 2, "{report}");
    assert!(sections[0].contains("status: phase Ready"), "{report}");
    assert!(sections[1].contains("status: phase Running"), "{report}");
    demo.shutdown().await;
    Ok(())
}

#[test]
fn a_sample_with_both_kinds_waits_for_each_ones_readiness() -> Result<(), TestError> {
    let runtime = runtime()?;
    runtime.block_on(runtime.spawn(both_kinds_reach_their_own_readiness()))?
}
