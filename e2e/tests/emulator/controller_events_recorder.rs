//! kube-rs's event `Recorder` (events.k8s.io/v1: create, then merge patches for a series) and
//! `deletecollection` work against the emulator.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::json;

use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, Options};

#[tokio::test]
async fn recorder_publishes_and_aggregates() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let client = emu.client()?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}}))?;
    let cm = cms.create(&PostParams::default(), &cm).await?;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fieldwise".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Applied".into(),
        note: Some("applied 3 objects".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder.publish(&ev, &reference).await?;
    recorder.publish(&ev, &reference).await?;
    let events: Api<K8sEvent> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await?;
    assert_eq!(
        list.items.len(),
        1,
        "the repeat is aggregated into a series"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Applied"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("subject")
    );
    assert!(
        e.series.as_ref().is_some_and(|s| s.count >= 2),
        "{:?}",
        e.series
    );
    assert!(
        emu.counters()
            .count(|k| k.group == "events.k8s.io" && k.verb == "patch")
            >= 1
    );
    Ok(())
}

#[tokio::test]
async fn delete_collection_by_label() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let cms: Api<ConfigMap> = Api::namespaced(emu.client()?, "default");
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"team": team}}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("team=x"),
    )
    .await?;
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    // The namespace's kube-root-ca.crt carries no team label: it stays, like c.
    assert_eq!(left, ["c", "kube-root-ca.crt"]);
    Ok(())
}
