//! A kube-rs `Controller` (with its reflector, plus an `.owns()` relation) runs against the emulator
//! and sees every change: create/update/delete of a custom resource and of the ConfigMap it owns.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use fieldwise_e2e::testkit::TestError;
use fieldwise_e2e::{Emulator, Options};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    pub message: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct GadgetStatus {
    pub seen: Option<String>,
}

const WAIT: Duration = Duration::from_secs(10);

struct Ctx {
    client: kube::Client,
    seen: mpsc::UnboundedSender<(String, String, bool)>,
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

/// Applies the owned ConfigMap and reports (name, message, configmap existed before) to the test.
async fn reconcile(g: Arc<Gadget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = g.namespace().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let name = format!("{}-cfg", g.name_any());
    let existed = cms.get_opt(&name).await?.is_some();
    let owner = g
        .controller_owner_ref(&())
        .map(|o| vec![o])
        .unwrap_or_default();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": owner}, "data": {"message": g.spec.message}});
    cms.patch(
        &name,
        &PatchParams::apply("gadget-controller").force(),
        &Patch::Apply(&cm),
    )
    .await?;
    let _ = ctx
        .seen
        .send((g.name_any(), g.spec.message.clone(), existed));
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Gadget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

fn message_of(cm: Option<&ConfigMap>) -> Option<&str> {
    cm?.data.as_ref()?.get("message").map(String::as_str)
}

async fn next_seen(
    rx: &mut mpsc::UnboundedReceiver<(String, String, bool)>,
) -> Result<(String, String, bool), TestError> {
    Ok(tokio::time::timeout(WAIT, rx.recv())
        .await?
        .ok_or("controller stopped")?)
}

#[tokio::test]
async fn controller_sees_every_change() -> Result<(), TestError> {
    let emu = Emulator::start(Options::default()).await?;
    let client = emu.client()?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd()).await?;
    tokio::time::timeout(
        WAIT,
        await_condition(
            crds,
            "gadgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await??;

    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        seen: tx,
    });
    let controller = Controller::new(gadgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    // Create.
    gadgets
        .create(
            &PostParams::default(),
            &Gadget::new(
                "g1",
                GadgetSpec {
                    message: "hello".into(),
                },
            ),
        )
        .await?;
    let (name, msg, existed) = next_seen(&mut rx).await?;
    assert_eq!(
        (name.as_str(), msg.as_str(), existed),
        ("g1", "hello", false)
    );
    let cm = cms.get("g1-cfg").await?;
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("message")
            .map(String::as_str),
        Some("hello")
    );

    // Update of the custom resource.
    gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"message": "bye"}})),
        )
        .await?;
    loop {
        let (_, msg, _) = next_seen(&mut rx).await?;
        if msg == "bye" {
            break;
        }
    }
    assert_eq!(
        cms.get("g1-cfg")
            .await?
            .data
            .unwrap_or_default()
            .get("message")
            .map(String::as_str),
        Some("bye")
    );

    // Someone edits the owned ConfigMap: the owns() relation triggers a reconcile that restores it.
    // (Awaited on the ConfigMap itself: a report on the channel may come from a reconcile that began
    // before the edit.)
    cms.patch(
        "g1-cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"message": "tampered"}})),
    )
    .await?;
    tokio::time::timeout(
        WAIT,
        await_condition(cms.clone(), "g1-cfg", |cm: Option<&ConfigMap>| {
            message_of(cm) == Some("bye")
        }),
    )
    .await??;

    // Someone deletes the owned ConfigMap: it is recreated (a new uid). A reconcile already running
    // when the delete lands may recreate it before the delete's own reconcile, so the channel's
    // "existed" flag is not what decides this.
    let uid = cms.get("g1-cfg").await?.uid().unwrap_or_default();
    cms.delete("g1-cfg", &DeleteParams::default()).await?;
    let recreated = tokio::time::timeout(
        WAIT,
        await_condition(cms.clone(), "g1-cfg", |cm: Option<&ConfigMap>| {
            cm.is_some_and(|cm| cm.uid().as_deref() != Some(uid.as_str()))
        }),
    )
    .await??
    .ok_or("the ConfigMap was not recreated")?;
    assert_eq!(message_of(Some(&recreated)), Some("bye"));

    // Deleting the custom resource garbage-collects the ConfigMap it owns.
    let cm_uid = recreated.uid().unwrap_or_default();
    gadgets.delete("g1", &DeleteParams::background()).await?;
    tokio::time::timeout(
        WAIT,
        await_condition(cms.clone(), "g1-cfg", conditions::is_deleted(&cm_uid)),
    )
    .await??;
    running.abort();
    Ok(())
}
