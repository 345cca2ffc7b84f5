//! The engine against the in-process API emulator (crate fieldwise-e2e): real watches, real
//! server-side apply, request counters.

use std::{sync::Arc, time::Duration};

use fieldwise_apply::{
    ApplyError, CoOwner, DesiredObject, Engine, EngineConfig, KindRegistry, KindSpec, ObjectKey,
    Outcome, Owner, ReplicasPolicy, Subscription,
};
use fieldwise_e2e::{
    Emulator, EmulatorHandle, Options,
    emulator::{ApiError, RequestHook, RequestInfo},
};
use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, reflector::ObjectRef, watcher},
};
use serde_json::json;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    emulator: EmulatorHandle,
    client: Client,
    engine: Engine,
    configmaps: Subscription,
    deployments: Subscription,
    triggers: futures::stream::BoxStream<'static, ObjectRef<ConfigMap>>,
    owner: Owner,
}

async fn start() -> Harness {
    start_with(EngineConfig::default()).await
}

async fn start_with(engine_config: EngineConfig) -> Harness {
    let emulator = Emulator::start(Options::default()).await.expect("emulator");
    let mut config = kube::Config::new(emulator.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    let registry = KindRegistry::new()
        .with(KindSpec::namespaced::<ConfigMap>())
        .with(KindSpec::namespaced::<Deployment>().with_replicas());
    let engine = Engine::with_config(client.clone(), registry, engine_config);
    let configmaps = engine
        .subscribe(&kube::discovery::ApiResource::erase::<ConfigMap>(&()))
        .expect("subscribe");
    let deployments = engine
        .subscribe(&kube::discovery::ApiResource::erase::<Deployment>(&()))
        .expect("subscribe");
    // The owner in these tests is a ConfigMap, so that is the trigger type.
    let triggers = engine
        .owner_triggers::<ConfigMap>()
        .expect("triggers")
        .boxed();
    tokio::spawn(engine.run_watches().expect("watches"));
    tokio::time::timeout(WAIT, engine.wait_until_ready())
        .await
        .expect("ready in time")
        .expect("ready");
    // A real owner object, so the emulator's garbage collector keeps the children.
    let owner_cm: ConfigMap =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owner", "namespace": "default"}}))
        .expect("owner");
    let owner_cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &owner_cm)
        .await
        .expect("create owner");
    let owner = Owner::of(&owner_cm).expect("owner").with_app_name("test");
    Harness {
        emulator,
        client,
        engine,
        configmaps,
        deployments,
        triggers,
        owner,
    }
}

fn key(api_version: &str, kind: &str, name: &str) -> ObjectKey {
    ObjectKey {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

fn cm(name: &str, value: &str) -> DesiredObject {
    DesiredObject::new(
        "config",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}),
    )
}

fn web(replicas: Option<u64>) -> DesiredObject {
    let mut body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}}});
    match replicas {
        Some(n) => {
            body["spec"]["replicas"] = json!(n);
            DesiredObject::new("online", body)
        }
        None => DesiredObject::new("online", body).with_replicas(ReplicasPolicy::Released),
    }
}

/// Waits (on the engine's own watch) until the cache holds an object satisfying `pred`, or,
/// with `None`, until the object is gone from the cache.
async fn until_cached(
    engine: &Engine,
    sub: &mut Subscription,
    key: &ObjectKey,
    pred: Option<&dyn Fn(&DynamicObject) -> bool>,
) {
    loop {
        let cached = engine.cached(
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
            &key.name,
        );
        let done = match pred {
            Some(pred) => cached.is_some_and(|o| pred(&o)),
            None => cached.is_none(),
        };
        if done {
            return;
        }
        tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("cache caught up in time")
            .expect("watch running");
    }
}

/// Parameters of a non-apply patch sent as `manager` (an edit by someone other than fieldwise).
fn edits_by(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.into()),
        ..PatchParams::default()
    }
}

fn rv_of(obj: &DynamicObject) -> String {
    obj.metadata.resource_version.clone().unwrap_or_default()
}

/// Waits until the cache holds the object at the resourceVersion the server has now.
async fn until_current(h: &mut Harness, key: &ObjectKey) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(h.client.clone(), "default", &resource_of(key));
    let live = api.get(&key.name).await.expect("get");
    let rv = rv_of(&live);
    let sub = if key.kind == "Deployment" {
        &mut h.deployments
    } else {
        &mut h.configmaps
    };
    until_cached(
        &h.engine,
        sub,
        key,
        Some(&|o: &DynamicObject| rv_of(o) == rv),
    )
    .await;
}

fn resource_of(key: &ObjectKey) -> kube::discovery::ApiResource {
    if key.kind == "Deployment" {
        kube::discovery::ApiResource::erase::<Deployment>(&())
    } else {
        kube::discovery::ApiResource::erase::<ConfigMap>(&())
    }
}

#[tokio::test]
async fn second_reconcile_of_an_unchanged_graph_makes_zero_writes() {
    let mut h = start().await;
    let graph = || vec![cm("a", "1"), cm("b", "2"), web(Some(2))];
    let first = h.engine.reconcile(&h.owner, graph()).await;
    assert!(!first.has_errors(), "{first:?}");
    assert!(
        first.objects.iter().all(|r| r.outcome == Outcome::Created),
        "{first:?}"
    );
    for k in [
        key("v1", "ConfigMap", "a"),
        key("v1", "ConfigMap", "b"),
        key("apps/v1", "Deployment", "web"),
    ] {
        until_current(&mut h, &k).await;
    }
    h.emulator.counters().reset();
    let second = h.engine.reconcile(&h.owner, graph()).await;
    assert!(
        second
            .objects
            .iter()
            .all(|r| r.outcome == Outcome::Unchanged),
        "{second:?}"
    );
    assert_eq!(
        h.emulator.counters().writes(),
        0,
        "{:?}",
        h.emulator.counters().snapshot()
    );
    // A change to one object writes exactly that object.
    let third = h
        .engine
        .reconcile(&h.owner, vec![cm("a", "1"), cm("b", "3"), web(Some(2))])
        .await;
    assert_eq!(
        third.outcome_of("ConfigMap", "b"),
        Some(&Outcome::Updated),
        "{third:?}"
    );
    assert_eq!(
        h.emulator.counters().writes(),
        1,
        "{:?}",
        h.emulator.counters().snapshot()
    );
}

#[tokio::test]
async fn removed_object_is_pruned() {
    let mut h = start().await;
    let first = h
        .engine
        .reconcile(&h.owner, vec![cm("a", "1"), cm("b", "2")])
        .await;
    assert!(!first.has_errors(), "{first:?}");
    until_current(&mut h, &key("v1", "ConfigMap", "b")).await;
    let second = h.engine.reconcile(&h.owner, vec![cm("a", "1")]).await;
    assert_eq!(
        second.outcome_of("ConfigMap", "b"),
        Some(&Outcome::Pruned),
        "{second:?}"
    );
    let api = Api::<ConfigMap>::namespaced(h.client.clone(), "default");
    assert!(api.get_opt("b").await.expect("get").is_none());
    assert!(api.get_opt("a").await.expect("get").is_some());
    assert!(
        api.get_opt("owner").await.expect("get").is_some(),
        "the owner is never a prune candidate"
    );
}

struct RejectApplyOf(&'static str);

impl RequestHook for RejectApplyOf {
    fn before(&self, req: &RequestInfo) -> Option<ApiError> {
        (req.verb == "patch" && req.name == self.0).then(|| {
            ApiError::new(
                422,
                "Invalid",
                format!(
                    "ConfigMap \"{}\" is invalid: data: injected failure",
                    self.0
                ),
            )
        })
    }
}

#[tokio::test]
async fn failed_apply_prevents_prune() {
    let mut h = start().await;
    let first = h
        .engine
        .reconcile(&h.owner, vec![cm("a", "1"), cm("b", "2")])
        .await;
    assert!(!first.has_errors(), "{first:?}");
    until_current(&mut h, &key("v1", "ConfigMap", "b")).await;
    h.emulator.add_hook(Arc::new(RejectApplyOf("bad")));
    h.emulator.counters().reset();
    let second = h
        .engine
        .reconcile(&h.owner, vec![cm("a", "1"), cm("bad", "x")])
        .await;
    assert!(second.has_errors() && second.prune_skipped, "{second:?}");
    let Some(Outcome::Failed(error)) = second.outcome_of("ConfigMap", "bad") else {
        panic!("{second:?}")
    };
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(h.emulator.counters().verb("delete"), 0);
    let api = Api::<ConfigMap>::namespaced(h.client.clone(), "default");
    assert!(
        api.get_opt("b").await.expect("get").is_some(),
        "b survives the partial failure"
    );
}

#[tokio::test]
async fn replicas_handover_never_passes_through_one() {
    let mut h = start().await;
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let (tx, mut seen) = mpsc::unbounded_channel();
    let watch = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=web"),
    )
    .applied_objects();
    tokio::spawn(async move {
        let mut watch = std::pin::pin!(watch);
        while let Some(Ok(d)) = watch.next().await {
            let replicas = d.spec.as_ref().and_then(|s| s.replicas);
            if tx
                .send((
                    d.metadata.resource_version.clone().unwrap_or_default(),
                    replicas,
                ))
                .is_err()
            {
                break;
            }
        }
    });
    let first = h.engine.reconcile(&h.owner, vec![web(Some(3))]).await;
    assert_eq!(
        first.outcome_of("Deployment", "web"),
        Some(&Outcome::Created),
        "{first:?}"
    );
    until_current(&mut h, &key("apps/v1", "Deployment", "web")).await;

    let second = h.engine.reconcile(&h.owner, vec![web(None)]).await;
    assert_eq!(
        second.outcome_of("Deployment", "web"),
        Some(&Outcome::HandedOver),
        "{second:?}"
    );
    let live = api.get("web").await.expect("get");
    assert_eq!(live.spec.as_ref().and_then(|s| s.replicas), Some(3));
    let managers: Vec<_> = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter_map(|e| e.manager.clone())
        .collect();
    assert_eq!(
        managers,
        ["fieldwise-handover"],
        "only the handover manager owns replicas now"
    );

    // Every state the watch saw up to the current version had 3 replicas.
    let final_rv = live.metadata.resource_version.clone().unwrap_or_default();
    let mut states = Vec::new();
    loop {
        let (rv, replicas) = tokio::time::timeout(WAIT, seen.recv())
            .await
            .expect("watch event")
            .expect("watch open");
        states.push(replicas);
        if rv == final_rv {
            break;
        }
    }
    assert!(states.iter().all(|r| *r == Some(3)), "{states:?}");

    // Steady state while released: nothing to write.
    until_current(&mut h, &key("apps/v1", "Deployment", "web")).await;
    h.emulator.counters().reset();
    let third = h.engine.reconcile(&h.owner, vec![web(None)]).await;
    assert_eq!(
        third.outcome_of("Deployment", "web"),
        Some(&Outcome::Unchanged),
        "{third:?}"
    );
    assert_eq!(
        h.emulator.counters().writes(),
        0,
        "{:?}",
        h.emulator.counters().snapshot()
    );

    // Back to static replicas: taken back with force.
    let fourth = h.engine.reconcile(&h.owner, vec![web(Some(5))]).await;
    assert_eq!(
        fourth.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated),
        "{fourth:?}"
    );
    assert_eq!(
        api.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(5)
    );
}

#[tokio::test]
async fn drift_from_another_manager_is_restored_and_reported() {
    let mut h = start().await;
    let first = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert!(!first.has_errors(), "{first:?}");
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:hacked"}]}}}});
    api.patch("web", &edits_by("kubectl-edit"), &Patch::Strategic(edit))
        .await
        .expect("edit");
    until_current(&mut h, &key("apps/v1", "Deployment", "web")).await;
    let second = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert_eq!(
        second.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated),
        "{second:?}"
    );
    assert_eq!(second.drift.len(), 1, "{second:?}");
    assert_eq!(second.drift[0].manager, "kubectl-edit");
    assert_eq!(
        second.drift[0].fields,
        [".spec.template.spec.containers[name=\"app\"].image"]
    );
    let live = api.get("web").await.expect("get");
    let image = live
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.image);
    assert_eq!(image.as_deref(), Some("nginx:1"));
}

#[tokio::test]
async fn child_changes_trigger_their_owner() {
    let mut h = start().await;
    let report = h.engine.reconcile(&h.owner, vec![cm("a", "1")]).await;
    assert!(!report.has_errors(), "{report:?}");
    let trigger = tokio::time::timeout(WAIT, h.triggers.next())
        .await
        .expect("trigger in time")
        .expect("stream open");
    assert_eq!(
        trigger,
        ObjectRef::<ConfigMap>::new("owner").within("default")
    );
}

#[tokio::test]
async fn unchanged_status_makes_no_write() {
    let h = start().await;
    // Any object with a status subresource stands in for an owner here.
    let report = h.engine.reconcile(&h.owner, vec![web(Some(1))]).await;
    assert!(!report.has_errors(), "{report:?}");
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let status = json!({"observedGeneration": 1, "conditions": [{"type": "Available", "status": "True", "reason": "Ready"}]});
    let before = api.get("web").await.expect("get");
    assert_eq!(
        h.engine
            .apply_status(&before, status.clone())
            .await
            .expect("status"),
        Outcome::Updated
    );
    let after = api.get("web").await.expect("get");
    assert_eq!(
        after.status.as_ref().and_then(|s| s.observed_generation),
        Some(1)
    );
    h.emulator.counters().reset();
    assert_eq!(
        h.engine.apply_status(&after, status).await.expect("status"),
        Outcome::Unchanged
    );
    assert_eq!(
        h.emulator.counters().writes(),
        0,
        "{:?}",
        h.emulator.counters().snapshot()
    );
}

#[tokio::test]
async fn autoscaler_writes_through_scale_are_drift_when_owned_and_kept_when_released() {
    let mut h = start().await;
    let web_key = key("apps/v1", "Deployment", "web");
    let first = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert!(!first.has_errors(), "{first:?}");
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let hpa = edits_by("kube-controller-manager");
    api.patch_scale("web", &hpa, &Patch::Merge(json!({"spec": {"replicas": 5}})))
        .await
        .expect("scale");
    until_current(&mut h, &web_key).await;

    // Owned: the autoscaler's value is drift, taken back and reported with its subresource.
    let owned = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert_eq!(
        owned.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated),
        "{owned:?}"
    );
    assert_eq!(owned.drift.len(), 1, "{owned:?}");
    assert_eq!(owned.drift[0].manager, "kube-controller-manager");
    assert_eq!(owned.drift[0].subresource.as_deref(), Some("scale"));
    assert_eq!(owned.drift[0].fields, [".spec.replicas"]);
    assert_eq!(
        api.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(2)
    );

    // The autoscaler scales again, then scaling is released to it: its value stays.
    api.patch_scale("web", &hpa, &Patch::Merge(json!({"spec": {"replicas": 7}})))
        .await
        .expect("scale");
    until_current(&mut h, &web_key).await;
    let released = h.engine.reconcile(&h.owner, vec![web(None)]).await;
    assert!(!released.has_errors(), "{released:?}");
    assert!(released.drift.is_empty(), "{released:?}");
    assert_eq!(
        api.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(7)
    );
}

/// Every task waiting for the caches is woken when the initial lists complete, however many wait at
/// once (kube's `Store::wait_until_ready` wakes only the last of several concurrent waiters, which
/// left reconciles waiting forever after an operator restart).
#[tokio::test(flavor = "current_thread")]
async fn every_concurrent_waiter_sees_the_caches_ready() {
    let emulator = Emulator::start(Options::default()).await.expect("emulator");
    let mut config = kube::Config::new(emulator.url().parse().expect("url"));
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    let registry = KindRegistry::new()
        .with(KindSpec::namespaced::<ConfigMap>())
        .with(KindSpec::namespaced::<Deployment>().with_replicas());
    let engine = Engine::new(client, registry);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.wait_until_ready().await })
        })
        .collect();
    // On this single-threaded runtime the yield runs every waiter once, so all of them are waiting
    // before the watches start.
    tokio::task::yield_now().await;
    assert!(!engine.is_ready());
    tokio::spawn(engine.run_watches().expect("watches"));
    for waiter in waiters {
        tokio::time::timeout(WAIT, waiter)
            .await
            .expect("every waiter is woken")
            .expect("waiter task")
            .expect("caches ready");
    }
    assert!(engine.is_ready());
}

/// The engine remembers comparisons that came out in sync (per resourceVersion), so resyncs do not
/// parse cached objects again; that memory must never hide a change to the live object or to the
/// desired body.
#[tokio::test]
async fn remembered_comparisons_never_hide_a_change() {
    let mut h = start().await;
    let web_key = key("apps/v1", "Deployment", "web");
    let first = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert!(!first.has_errors(), "{first:?}");
    until_current(&mut h, &web_key).await;
    // Compared, then answered from memory: both unchanged.
    for _ in 0..2 {
        let again = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
        assert_eq!(
            again.outcome_of("Deployment", "web"),
            Some(&Outcome::Unchanged),
            "{again:?}"
        );
    }
    // Someone changes a field we own: a new resourceVersion, so it is compared again and restored.
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    api.patch(
        "web",
        &edits_by("kubectl-edit"),
        &Patch::Merge(json!({"spec": {"replicas": 7}})),
    )
    .await
    .expect("edit");
    until_current(&mut h, &web_key).await;
    let restored = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert_eq!(
        restored.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated),
        "{restored:?}"
    );
    until_current(&mut h, &web_key).await;
    let settled = h.engine.reconcile(&h.owner, vec![web(Some(2))]).await;
    assert_eq!(
        settled.outcome_of("Deployment", "web"),
        Some(&Outcome::Unchanged),
        "{settled:?}"
    );
    // A different desired body against the remembered live version is applied.
    let changed = h.engine.reconcile(&h.owner, vec![web(Some(3))]).await;
    assert_eq!(
        changed.outcome_of("Deployment", "web"),
        Some(&Outcome::Updated),
        "{changed:?}"
    );
    let live = api.get("web").await.expect("get");
    assert_eq!(live.spec.and_then(|s| s.replicas), Some(3));
}

/// The same for statuses: an unchanged status is answered from memory, a status someone else
/// changed (new resourceVersion) is compared and written again.
#[tokio::test]
async fn remembered_status_comparisons_never_hide_a_change() {
    let h = start().await;
    let report = h.engine.reconcile(&h.owner, vec![web(Some(1))]).await;
    assert!(!report.has_errors(), "{report:?}");
    let api = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let status = json!({"observedGeneration": 1});
    let before = api.get("web").await.expect("get");
    h.engine
        .apply_status(&before, status.clone())
        .await
        .expect("status");
    let after = api.get("web").await.expect("get");
    for _ in 0..2 {
        assert_eq!(
            h.engine
                .apply_status(&after, status.clone())
                .await
                .expect("status"),
            Outcome::Unchanged
        );
    }
    api.patch_status(
        "web",
        &edits_by("intruder"),
        &Patch::Merge(json!({"status": {"observedGeneration": 9}})),
    )
    .await
    .expect("status edit");
    let edited = api.get("web").await.expect("get");
    assert_eq!(
        h.engine
            .apply_status(&edited, status.clone())
            .await
            .expect("status"),
        Outcome::Updated
    );
    let restored = api.get("web").await.expect("get");
    assert_eq!(restored.status.and_then(|s| s.observed_generation), Some(1));
}

/// A changed claim template is applied by deleting the StatefulSet with orphan propagation and
/// applying it again: its pods keep running (they lose the old owner reference, and the new
/// StatefulSet, same selector, adopts them).
#[tokio::test]
async fn statefulset_claim_template_change_recreates_it_orphaning_its_pods() {
    use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
    let emulator = Emulator::start(Options::default()).await.expect("emulator");
    let mut config = kube::Config::new(emulator.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    // Dropped, not shut down, at the end: shutting down waits for the engine's open watches.
    let _emulator = emulator;
    let registry = KindRegistry::new().with(KindSpec::namespaced::<StatefulSet>().with_replicas());
    let engine = Engine::new(client.clone(), registry);
    let sts_resource = kube::discovery::ApiResource::erase::<StatefulSet>(&());
    let mut sets = engine.subscribe(&sts_resource).expect("subscribe");
    tokio::spawn(engine.run_watches().expect("watches"));
    engine.wait_until_ready().await.expect("ready");
    let owner_cm: ConfigMap = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
    )
    .expect("owner");
    let owner_cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &owner_cm)
        .await
        .expect("owner created");
    let owner = Owner::of(&owner_cm).expect("owner");
    let redis = |size: &str| {
        DesiredObject::new(
            "backend",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis"},
                "spec": {"replicas": 1, "serviceName": "redis",
                    "selector": {"matchLabels": {"app": "redis"}},
                    "template": {"metadata": {"labels": {"app": "redis"}},
                        "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}}]}}),
        )
    };
    let created = engine.reconcile(&owner, vec![redis("1Gi")]).await;
    assert!(!created.has_errors(), "{created:?}");
    let sts_key = key("apps/v1", "StatefulSet", "redis");
    until_cached(&engine, &mut sets, &sts_key, Some(&|_| true)).await;
    let old_uid = engine
        .cached("apps/v1", "StatefulSet", Some("default"), "redis")
        .and_then(|s| s.metadata.uid.clone())
        .expect("uid");
    // A pod of the StatefulSet, as its controller would make it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "redis-0", "labels": {"app": "redis"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "redis",
                "uid": old_uid, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");

    // Until the orphaning delete completes, the reconcile reports the recreate as pending.
    let mut report = engine.reconcile(&owner, vec![redis("5Gi")]).await;
    let replaced = Outcome::Replaced {
        field: "spec.volumeClaimTemplates".to_owned(),
    };
    while report.outcome_of("StatefulSet", "redis") != Some(&replaced) {
        let pending = matches!(
            report.outcome_of("StatefulSet", "redis"),
            Some(Outcome::Failed(
                fieldwise_apply::ApplyError::RecreatePending { .. }
            ))
        );
        assert!(pending, "{report:?}");
        until_cached(&engine, &mut sets, &sts_key, None).await;
        report = engine.reconcile(&owner, vec![redis("5Gi")]).await;
    }
    let pod = pods
        .get("redis-0")
        .await
        .expect("the pod survived the recreate");
    let still_owned_by_old = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == old_uid);
    assert!(!still_owned_by_old, "orphaned from the old StatefulSet");
    let sets_api: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let new = sets_api.get("redis").await.expect("recreated");
    assert_ne!(new.metadata.uid.as_deref(), Some(old_uid.as_str()));
    let claim = &new
        .spec
        .expect("spec")
        .volume_claim_templates
        .expect("claims")[0];
    let size = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone());
    assert_eq!(size.as_deref(), Some("5Gi"));
}

/// An engine that takes over from `manager`, the Feast operator's field manager.
async fn start_taking_over() -> Harness {
    start_with(EngineConfig {
        take_over_from: vec!["manager".into()],
        ..EngineConfig::default()
    })
    .await
}

/// The ownerReference a controller puts on its children.
fn controller_reference(owner: &Owner) -> serde_json::Value {
    json!({"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name,
           "uid": owner.uid, "controller": true, "blockOwnerDeletion": true})
}

/// The Deployment `web` with its config as a literal env value (as the predecessor wrote it) or
/// from a Secret (as we apply it).
fn web_config(literal: bool) -> serde_json::Value {
    let env = if literal {
        json!({"name": "CONFIG", "value": "cHJvamVjdDogcA=="})
    } else {
        json!({"name": "CONFIG", "valueFrom": {"secretKeyRef": {"name": "config", "key": "yaml"}}})
    };
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1", "env": [env]}]}}}})
}

/// Creates `web` as the predecessor does: a plain create under the field manager `manager`, with
/// a controller reference to `owner`.
async fn create_as_predecessor(h: &Harness) -> Deployment {
    let mut body = web_config(true);
    body["metadata"]["ownerReferences"] = json!([controller_reference(&h.owner)]);
    let deployment: Deployment = serde_json::from_value(body).expect("a Deployment");
    let params = PostParams {
        field_manager: Some("manager".into()),
        ..PostParams::default()
    };
    Api::<Deployment>::namespaced(h.client.clone(), "default")
        .create(&params, &deployment)
        .await
        .expect("created by the predecessor")
}

/// The Deployment `web` holds the config from the Secret only, no field of `manager` is left, and
/// it is the object the predecessor made.
async fn assert_taken_over(h: &Harness, created: &Deployment) {
    let live = Api::<Deployment>::namespaced(h.client.clone(), "default")
        .get("web")
        .await
        .expect("web");
    assert_eq!(live.metadata.uid, created.metadata.uid, "adopted in place");
    let container = &live
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod spec")
        .containers[0];
    let env = &container.env.as_ref().expect("env")[0];
    assert_eq!(env.value, None, "the literal value is gone");
    assert!(env.value_from.is_some());
    let managers: Vec<(String, String)> = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            let text = |v: &Option<String>| v.clone().unwrap_or_default();
            (text(&e.manager), text(&e.operation))
        })
        .collect();
    assert_eq!(managers, [("fieldwise".to_owned(), "Apply".to_owned())]);
}

/// Requests of the engine's field manager or reads, as `verb/patch type`.
fn requests_of_the_engine(h: &Harness) -> Vec<String> {
    let snapshot = h.emulator.counters().snapshot();
    let ours = snapshot.into_iter().filter(|(key, _)| {
        key.resource == "deployments" && matches!(key.field_manager.as_str(), "" | "fieldwise")
    });
    ours.filter(|(key, _)| key.verb != "watch" && key.verb != "list")
        .map(|(key, count)| format!("{}/{} x{count}", key.verb, key.patch_type))
        .collect()
}

/// Reconciles `web` (config from a Secret) for an owner `adopting` or not over the predecessor's
/// Deployment, expecting it taken over from `taken_from` with exactly `requests`.
async fn take_over_web(h: &Harness, adopting: bool, taken_from: &str, requests: [&str; 3]) {
    let owner = h.owner.clone().adopting(adopting);
    h.emulator.counters().reset();
    let desired = DesiredObject::new("online", web_config(false));
    let report = h.engine.reconcile(&owner, vec![desired]).await;
    assert_eq!(
        report.outcome_of("Deployment", "web"),
        Some(&Outcome::TakenOver {
            managers: vec![taken_from.into()]
        }),
        "{report:?}"
    );
    assert_eq!(requests_of_the_engine(h), requests);
}

#[tokio::test]
async fn an_adopting_owner_takes_a_predecessors_object_over_before_applying() {
    let h = start_taking_over().await;
    let created = create_as_predecessor(&h).await;
    // Read, take over, apply: never refused.
    let requests = ["get/ x1", "patch/apply x1", "patch/json x1"];
    take_over_web(&h, true, "manager", requests).await;
    assert_taken_over(&h, &created).await;
}

#[tokio::test]
async fn a_blind_apply_refused_over_a_predecessors_object_reads_and_takes_it_over() {
    let h = start_taking_over().await;
    let created = create_as_predecessor(&h).await;
    // The refused apply (a value and a valueFrom), a read, the takeover, the apply.
    let requests = ["get/ x1", "patch/apply x2", "patch/json x1"];
    take_over_web(&h, false, "manager", requests).await;
    assert_taken_over(&h, &created).await;
}

#[tokio::test]
async fn an_object_controlled_by_another_owner_is_left_alone() {
    let h = start_taking_over().await;
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), "default");
    let other: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("cm");
    let other = configmaps
        .create(&PostParams::default(), &other)
        .await
        .expect("another owner");
    let other = Owner::of(&other).expect("owner");
    let theirs: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg",
        "ownerReferences": [controller_reference(&other)]}, "data": {"v": "theirs"}}))
    .expect("cm");
    let params = PostParams {
        field_manager: Some("manager".into()),
        ..PostParams::default()
    };
    configmaps.create(&params, &theirs).await.expect("created");
    for owner in [h.owner.clone().adopting(true), h.owner.clone()] {
        let report = h.engine.reconcile(&owner, vec![cm("cfg", "ours")]).await;
        let Some(Outcome::Failed(error)) = report.outcome_of("ConfigMap", "cfg") else {
            panic!("{report:?}")
        };
        assert!(
            matches!(error, ApplyError::ControlledByAnother { controller, controller_uid, .. }
                if controller == "ConfigMap other" && *controller_uid == other.uid),
            "{error}"
        );
        assert!(report.prune_skipped);
    }
    let live = configmaps.get("cfg").await.expect("cfg");
    assert_eq!(
        live.data.and_then(|d| d.get("v").cloned()).as_deref(),
        Some("theirs")
    );
    let managers: Vec<Option<String>> = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| e.manager.clone())
        .collect();
    assert_eq!(
        managers,
        [Some("manager".to_owned())],
        "not taken over either"
    );
}

#[tokio::test]
async fn an_untracked_object_is_recorded_then_taken_over() {
    let h = start_taking_over().await;
    let created = create_as_predecessor(&h).await;
    let deployments = Api::<Deployment>::namespaced(h.client.clone(), "default");
    let wipe = json!({"metadata": {"managedFields": [{}]}});
    let wiped = deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&wipe))
        .await
        .expect("managedFields wiped");
    assert_eq!(wiped.metadata.managed_fields, None);
    // Read, an apply of nothing to record the fields, take over, apply.
    let requests = ["get/ x1", "patch/apply x2", "patch/json x1"];
    take_over_web(&h, true, "before-first-apply", requests).await;
    assert_taken_over(&h, &created).await;
}

/// Removing the finalizer of an owner that is already gone (a reconcile that read it from a cache
/// a moment old) is no error and no retry: the uid in the apply names no live object, which
/// kube-apiserver answers with a 409 "uid mismatch".
#[tokio::test]
async fn removing_the_finalizer_of_a_deleted_owner_is_no_error() {
    let emulator = Emulator::start(Options::default()).await.expect("emulator");
    let mut config = kube::Config::new(emulator.url().parse().expect("url"));
    config.default_namespace = "default".into();
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    let registry = KindRegistry::new()
        .with(KindSpec::namespaced::<ConfigMap>())
        .with_owner::<ConfigMap>();
    let engine = Engine::new(client.clone(), registry);
    let owners = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let owner_cm: ConfigMap =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "finalized", "namespace": "default"}}))
        .expect("owner");
    let owner_cm = owners
        .create(&PostParams::default(), &owner_cm)
        .await
        .expect("created");
    let owner = Owner::of(&owner_cm).expect("owner");
    let finalizer = "example.com/cleanup";
    assert_eq!(
        engine
            .apply_finalizer(&owner, finalizer, true)
            .await
            .expect("added"),
        fieldwise_apply::FinalizerState::Applied
    );
    owners
        .delete("finalized", &Default::default())
        .await
        .expect("deletion requested");
    assert_eq!(
        engine
            .apply_finalizer(&owner, finalizer, false)
            .await
            .expect("removed"),
        fieldwise_apply::FinalizerState::Applied
    );
    assert!(
        owners
            .get_opt("finalized")
            .await
            .expect("readable")
            .is_none()
    );
    // Again, as a reconcile holding the stale copy would.
    let before = emulator.counters().writes();
    assert_eq!(
        engine
            .apply_finalizer(&owner, finalizer, false)
            .await
            .expect("no error for an owner that is gone"),
        fieldwise_apply::FinalizerState::OwnerGone
    );
    assert_eq!(
        emulator.counters().writes() - before,
        1,
        "one request, no retries"
    );
}

/// An object without a controller reference (as every cluster-scoped child is) whose owner-uid
/// label names another owner is left to that owner: two owners whose names collide must not take
/// it from each other apply after apply.
#[tokio::test]
async fn an_object_labelled_for_another_owner_is_left_alone() {
    let mut h = start().await;
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), "default");
    let theirs: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg", "labels": {
        "app.kubernetes.io/managed-by": "fieldwise", "app.kubernetes.io/instance": "first",
        "fieldwise.dev/owner-uid": "uid-of-the-first", "fieldwise.dev/owner-namespace": "team",
        "fieldwise.dev/owner-kind": "FeatureStore.feast.dev"}}, "data": {"v": "theirs"}}))
    .expect("cm");
    let created = configmaps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("created");
    // The engine's cache has it, as it would have another owner's child.
    until_current(&mut h, &key("v1", "ConfigMap", "cfg")).await;
    let report = h.engine.reconcile(&h.owner, vec![cm("cfg", "ours")]).await;
    let Some(Outcome::Failed(error)) = report.outcome_of("ConfigMap", "cfg") else {
        panic!("{report:?}")
    };
    assert!(
        matches!(error, ApplyError::ControlledByAnother { controller, controller_uid, .. }
            if controller == "FeatureStore.feast.dev team/first" && controller_uid == "uid-of-the-first"),
        "{error}"
    );
    let live = configmaps.get("cfg").await.expect("cfg");
    assert_eq!(
        live.metadata.resource_version, created.metadata.resource_version,
        "untouched"
    );
}

/// A second owner (a ConfigMap, like the harness's) and both as co-owners of a shared child.
async fn second_owner(h: &Harness, name: &str) -> Owner {
    let created = Api::<ConfigMap>::namespaced(h.client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm"),
        )
        .await
        .expect("second owner");
    Owner::of(&created).expect("owner").with_app_name("test")
}

fn co_owner(owner: &Owner) -> CoOwner {
    CoOwner {
        name: owner.name.clone(),
        uid: owner.uid.clone(),
    }
}

fn shared_cm(owners: &[&Owner]) -> DesiredObject {
    cm("roles", "same").shared_by(owners.iter().map(|o| co_owner(o)).collect())
}

fn reference_uids(live: &ConfigMap) -> Vec<(String, Option<bool>)> {
    let mut uids: Vec<_> = live
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|r| (r.uid.clone(), r.controller))
        .collect();
    uids.sort();
    uids
}

#[tokio::test]
async fn a_shared_child_is_written_once_and_kept_until_its_last_owner_leaves() {
    let mut h = start().await;
    let a = h.owner.clone();
    let b = second_owner(&h, "owner-b").await;
    let roles = key("v1", "ConfigMap", "roles");
    let first = h.engine.reconcile(&a, vec![shared_cm(&[&a, &b])]).await;
    assert_eq!(
        first.outcome_of("ConfigMap", "roles"),
        Some(&Outcome::Created),
        "{first:?}"
    );
    until_current(&mut h, &roles).await;
    h.emulator.counters().reset();
    // Both owners want the same body: neither writes, however often each reconciles.
    for owner in [&b, &a, &b, &a] {
        let again = h.engine.reconcile(owner, vec![shared_cm(&[&a, &b])]).await;
        assert_eq!(
            again.outcome_of("ConfigMap", "roles"),
            Some(&Outcome::Unchanged),
            "{again:?}"
        );
    }
    assert_eq!(
        h.emulator.counters().writes(),
        0,
        "{:?}",
        h.emulator.counters().snapshot()
    );
    let configmaps = Api::<ConfigMap>::namespaced(h.client.clone(), "default");
    let live = configmaps.get("roles").await.expect("roles");
    let mut both = vec![(a.uid.clone(), None), (b.uid.clone(), None)];
    both.sort();
    assert_eq!(
        reference_uids(&live),
        both,
        "one reference per owner, none the controller"
    );
    let labels = live.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("fieldwise.dev/shared").map(String::as_str),
        Some("true")
    );
    assert!(
        !labels.contains_key("fieldwise.dev/owner-uid"),
        "{labels:?}"
    );
    assert!(
        !labels.contains_key("app.kubernetes.io/instance"),
        "{labels:?}"
    );

    // A no longer wants it, B still does: A takes only its own reference out.
    let left = h.engine.reconcile(&a, vec![]).await;
    assert_eq!(
        left.outcome_of("ConfigMap", "roles"),
        Some(&Outcome::LeftShared),
        "{left:?}"
    );
    let live = configmaps.get("roles").await.expect("still there");
    assert_eq!(reference_uids(&live), [(b.uid.clone(), None)]);
    until_current(&mut h, &roles).await;
    h.emulator.counters().reset();
    let kept = h.engine.reconcile(&b, vec![shared_cm(&[&b])]).await;
    assert_eq!(
        kept.outcome_of("ConfigMap", "roles"),
        Some(&Outcome::Unchanged),
        "{kept:?}"
    );
    assert_eq!(
        h.emulator.counters().writes(),
        0,
        "{:?}",
        h.emulator.counters().snapshot()
    );

    // The last owner leaving deletes it.
    let last = h.engine.reconcile(&b, vec![]).await;
    assert_eq!(
        last.outcome_of("ConfigMap", "roles"),
        Some(&Outcome::Pruned),
        "{last:?}"
    );
    assert!(configmaps.get_opt("roles").await.expect("get").is_none());
}

#[tokio::test]
async fn a_change_of_a_shared_child_triggers_every_owner() {
    let mut h = start().await;
    let a = h.owner.clone();
    let b = second_owner(&h, "owner-b").await;
    let report = h.engine.reconcile(&a, vec![shared_cm(&[&a, &b])]).await;
    assert!(!report.has_errors(), "{report:?}");
    let mut triggered = std::collections::BTreeSet::new();
    while triggered.len() < 2 {
        let owner = tokio::time::timeout(WAIT, h.triggers.next())
            .await
            .expect("triggered in time")
            .expect("trigger stream");
        triggered.insert(owner.name);
    }
    assert_eq!(triggered, ["owner".to_owned(), "owner-b".to_owned()].into());
}

#[tokio::test]
async fn a_child_of_one_owner_becomes_shared_and_one_controlled_by_another_is_refused() {
    let mut h = start().await;
    let a = h.owner.clone();
    let b = second_owner(&h, "owner-b").await;
    let alone = h.engine.reconcile(&a, vec![cm("roles", "same")]).await;
    assert!(!alone.has_errors(), "{alone:?}");
    until_current(&mut h, &key("v1", "ConfigMap", "roles")).await;
    let shared = h.engine.reconcile(&a, vec![shared_cm(&[&a, &b])]).await;
    assert_eq!(
        shared.outcome_of("ConfigMap", "roles"),
        Some(&Outcome::Updated),
        "{shared:?}"
    );
    let live = Api::<ConfigMap>::namespaced(h.client.clone(), "default")
        .get("roles")
        .await
        .expect("roles");
    let mut both = vec![(a.uid.clone(), None), (b.uid.clone(), None)];
    both.sort();
    assert_eq!(
        reference_uids(&live),
        both,
        "the controller reference became a shared one"
    );

    // An object a third owner controls is not shared behind its back.
    let other = second_owner(&h, "other").await;
    let theirs: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "theirs",
        "ownerReferences": [controller_reference(&other)]}, "data": {"v": "theirs"}}))
    .expect("cm");
    Api::<ConfigMap>::namespaced(h.client.clone(), "default")
        .create(&PostParams::default(), &theirs)
        .await
        .expect("created");
    let wanted = cm("theirs", "ours").shared_by(vec![co_owner(&a), co_owner(&b)]);
    let refused = h.engine.reconcile(&a, vec![wanted]).await;
    let Some(Outcome::Failed(error)) = refused.outcome_of("ConfigMap", "theirs") else {
        panic!("{refused:?}")
    };
    assert!(
        matches!(error, ApplyError::ControlledByAnother { controller_uid, .. } if *controller_uid == other.uid),
        "{error}"
    );
}

#[test]
fn a_shared_child_must_be_namespaced_and_name_the_reconciling_owner() {
    let registry = KindRegistry::new().with(KindSpec::namespaced::<ConfigMap>());
    let owner = Owner {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        namespace: Some("default".into()),
        uid: "u-a".into(),
        app_name: None,
        adopting: false,
    };
    let stranger = CoOwner {
        name: "b".into(),
        uid: "u-b".into(),
    };
    let error =
        fieldwise_apply::applied_body(&registry, &owner, &cm("x", "1").shared_by(vec![stranger]))
            .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("must include the owner reconciling it"),
        "{error}"
    );
}
