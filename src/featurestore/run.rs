//! Wiring of the FeatureStore controller: the engine's watches, the FeatureStore and Secret reflectors, and
//! kube's `Controller` with its triggers. `fieldwise run` and `fieldwise demo` both start the operator here.

use std::{future::Future, sync::Arc, time::Duration};

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::{Engine, EngineConfig};
use fieldwise_observability::{Health, Metrics};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        events::{Recorder, Reporter},
        predicates,
        reflector::{self, ObjectRef, Store},
        utils::Predicate,
        watcher,
    },
};
use tracing::{info, warn};

use super::{
    controller::{CONTROLLER, Context, Settings, WorkQueue, error_policy, reconcile},
    kinds,
    references::{referenced_feature_store, referenced_secrets},
};

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Watch only this namespace; `None` watches all.
    pub namespace: Option<String>,
    /// FeatureStores reconciled at the same time.
    pub concurrency: u16,
    /// Quiet time after a change before reconciling, so a burst of child events makes one reconcile.
    pub debounce: Duration,
    /// The instance name in Events (the pod name in a cluster).
    pub instance: String,
    pub settings: Settings,
    /// With leader election: true while this replica leads. The children's caches are kept warm from the
    /// start, but nothing is reconciled (nothing is written) until it turns true.
    pub leadership: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            concurrency: 4,
            debounce: Duration::from_millis(500),
            instance: "fieldwise".to_owned(),
            settings: Settings::default(),
            leadership: None,
        }
    }
}

/// Errors that stop the operator from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not set up the apply engine: {0}")]
    Engine(#[from] fieldwise_apply::ApplyError),
}

/// Runs the FeatureStore controller until `shutdown` resolves. Marks `health` ready once every cache has
/// its initial list.
pub async fn run(
    client: Client,
    options: RunOptions,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    metrics.register_controller(CONTROLLER);
    let registry = kinds::registry(options.settings.service_monitor_available);
    let engine = Engine::with_config(client.clone(), registry, EngineConfig::default());
    let child_triggers = engine.owner_triggers::<FeatureStore>()?;
    let watches = tokio::spawn(engine.run_watches()?);
    // The engine's watches live as long as the controller, not as long as the process.
    let _stop_watches = AbortOnDrop(watches);
    let shutdown = shutdown.boxed().shared();
    if let Some(mut leadership) = options.leadership.clone() {
        info!("caches warming; waiting for leadership before reconciling");
        tokio::select! {
            _ = leadership.wait_for(|leading| *leading) => {}
            () = shutdown.clone() => return Ok(()),
        }
    }

    let feature_stores: Api<FeatureStore> = scoped_api(&client, options.namespace.as_deref());
    let secrets: Api<Secret> = scoped_api(&client, options.namespace.as_deref());
    let (fs_reader, fs_writer) = reflector::store();
    let (secret_reader, secret_writer) = reflector::store();
    // The main stream passes spec changes (generation) and finalizer changes; status writes do not
    // re-trigger. Children, Secrets and referenced FeatureStores trigger through their own streams.
    let fs_stream = watcher(feature_stores.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(fs_writer)
        .touched_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    let secret_stream = watcher(secrets, watcher::Config::default())
        .default_backoff()
        .modify(|secret: &mut Secret| secret.metadata.managed_fields = None)
        .reflect(secret_writer)
        .touched_objects();
    let referenced_fs_stream = watcher(feature_stores, watcher::Config::default())
        .default_backoff()
        .touched_objects();

    spawn_readiness(
        engine.clone(),
        fs_reader.clone(),
        secret_reader.clone(),
        health,
    );
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fieldwise".to_owned(),
            instance: Some(options.instance.clone()),
        },
    );
    let queue = Arc::new(WorkQueue::default());
    let enqueue = {
        let (queue, metrics) = (queue.clone(), metrics.clone());
        move |fs: ObjectRef<FeatureStore>| {
            metrics.set_queue_depth(CONTROLLER, queue.push(fs.clone()));
            fs
        }
    };
    let context = Arc::new(Context::new(
        client,
        engine,
        secret_reader,
        fs_reader.clone(),
        options.settings.clone(),
        metrics,
        recorder,
        queue,
    ));
    let secret_owners = fs_reader.clone();
    let dependents = fs_reader.clone();
    info!(
        namespace = options.namespace.as_deref().unwrap_or("<all>"),
        "starting the FeatureStore controller"
    );
    let (on_fs, on_child, on_secret, on_target) =
        (enqueue.clone(), enqueue.clone(), enqueue.clone(), enqueue);
    let fs_stream = fs_stream.map_ok(move |fs: FeatureStore| {
        on_fs(ObjectRef::from_obj(&fs));
        fs
    });
    Controller::for_stream(fs_stream, fs_reader)
        .reconcile_on(child_triggers.map(on_child))
        .watches_stream(secret_stream, move |secret: Secret| {
            feature_stores_using_secret(&secret_owners, &secret)
                .into_iter()
                .map(&on_secret)
                .collect::<Vec<_>>()
        })
        .watches_stream(referenced_fs_stream, move |target: FeatureStore| {
            feature_stores_referencing(&dependents, &target)
                .into_iter()
                .map(&on_target)
                .collect::<Vec<_>>()
        })
        .with_config(
            ControllerConfig::default()
                .concurrency(options.concurrency)
                .debounce(options.debounce),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                warn!(%error, "controller error");
            }
        })
        .await;
    info!("FeatureStore controller stopped");
    Ok(())
}

/// Aborts a background task when dropped, so every return path of [`run`] stops it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Ready once the engine's caches and the FeatureStore and Secret reflectors have their initial lists.
fn spawn_readiness(
    engine: Engine,
    feature_stores: Store<FeatureStore>,
    secrets: Store<Secret>,
    health: Health,
) {
    tokio::spawn(async move {
        let engine_ready = engine.wait_until_ready().await;
        let stores_ready = feature_stores
            .wait_until_ready()
            .await
            .and(secrets.wait_until_ready().await);
        match (engine_ready, stores_ready) {
            (Ok(()), Ok(())) => {
                health.set_ready();
                info!("caches synced; ready");
            }
            (engine, stores) => warn!(?engine, ?stores, "caches never became ready"),
        }
    });
}

/// The FeatureStores in the Secret's namespace that read it.
fn feature_stores_using_secret(
    feature_stores: &Store<FeatureStore>,
    secret: &Secret,
) -> Vec<ObjectRef<FeatureStore>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    feature_stores
        .state()
        .iter()
        .filter(|fs| fs.namespace() == namespace && referenced_secrets(&fs.spec).contains(&name))
        .map(|fs| ObjectRef::from_obj(&**fs))
        .collect()
}

/// The FeatureStores whose remote registry is `target` (its status carries the hostname they need).
fn feature_stores_referencing(
    feature_stores: &Store<FeatureStore>,
    target: &FeatureStore,
) -> Vec<ObjectRef<FeatureStore>> {
    let key = (target.namespace().unwrap_or_default(), target.name_any());
    feature_stores
        .state()
        .iter()
        .filter(|fs| referenced_feature_store(fs).as_ref() == Some(&key))
        .map(|fs| ObjectRef::from_obj(&**fs))
        .collect()
}
