//! Metadata-only reads (PartialObjectMetadata and its list, and metadata watches) as kube-rs asks
//! for them.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, Options};

#[tokio::test]
async fn get_list_and_watch_metadata() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let cms: Api<ConfigMap> = Api::namespaced(emu.client()?, "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "m1", "labels": {"a": "b"}}, "data": {"secret": "x"}}),
    )?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let meta = cms.get_metadata("m1").await?;
    assert_eq!(
        meta.metadata
            .labels
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );
    assert_eq!(
        meta.types.map(|t| t.kind).as_deref(),
        Some("PartialObjectMetadata")
    );
    let list = cms.list_metadata(&ListParams::default()).await?;
    let names: Vec<String> = list.items.iter().map(|m| m.name_any()).collect();
    assert_eq!(
        names,
        ["kube-root-ca.crt", "m1"],
        "every namespace holds its root CA"
    );
    let rv = created.metadata.resource_version.unwrap_or_default();
    let mut stream = cms
        .watch_metadata(&WatchParams::default(), &rv)
        .await?
        .boxed();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "m2"}}))?,
    )
    .await?;
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await??
        .ok_or("watch ended")?;
    match ev {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("m2")),
        other => return Err(format!("unexpected event {other:?}").into()),
    }
    Ok(())
}
