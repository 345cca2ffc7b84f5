//! Wiring of the FeatureStore controller: the engine's watches, the FeatureStore and Secret reflectors, and
//! kube's `Controller` with its triggers. `fieldwise run` and `fieldwise demo` both start the operator here.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use fieldwise_apply::{Engine, EngineConfig};
use fieldwise_observability::{Health, Metrics};
use futures::{FutureExt, Stream, StreamExt};
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
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    cached::CachedFeatureStore,
    controller::{CONTROLLER, Context, Settings, WorkQueue, error_policy, reconcile},
    kinds,
    secrets::SecretMeta,
};

/// Secrets per list request of the Secret watch (see where it is used).
const SECRET_LIST_PAGE: u32 = 50;

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
    let engine_config = EngineConfig::default();
    // The reflectors list in pages as small as the engine's, for the same reason (memory peaks).
    let list_config = watcher::Config::default().page_size(engine_config.list_page_size);
    let engine = Engine::with_config(client.clone(), registry, engine_config);
    let child_triggers = engine.owner_triggers::<CachedFeatureStore>()?;
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

    let feature_stores: Api<CachedFeatureStore> = scoped_api(&client, options.namespace.as_deref());
    // A `PartialObjectMeta` Api: the watch asks for metadata only.
    let secrets: Api<SecretMeta> = scoped_api(&client, options.namespace.as_deref());
    let (fs_reader, fs_writer) = reflector::store();
    let (secret_reader, secret_writer) = reflector::store();
    let (fs_synced_tx, fs_synced) = Synced::new();
    let (secret_synced_tx, secret_synced) = Synced::new();
    // One FeatureStore watch feeds the cache and both kinds of trigger (see feature_store_triggers).
    // Each FeatureStore is cached compacted (CachedFeatureStore: lookups typed, the rest compressed,
    // with only fieldwise's managedFields entries, what apply_status compares with).
    // The engine keeps each status write until this watch shows it (see Engine::owner_seen).
    let status_writes_seen = engine.clone();
    let fs_events = mark_synced(
        watcher(feature_stores, list_config.clone())
            .default_backoff()
            .reflect(fs_writer),
        fs_synced_tx,
    )
    .inspect(move |event| {
        if let Ok(watcher::Event::Apply(fs) | watcher::Event::InitApply(fs)) = event {
            status_writes_seen.owner_seen(fs);
        }
    });
    // Our own Secrets (server configuration) are never referenced by a FeatureStore; the engine's
    // cache already holds them, so this cache leaves them out. Listed in small pages: each page is
    // held whole until the cache has trimmed it, and `kubectl apply`'s annotation can make a
    // Secret's metadata as large as its data.
    let user_secrets = list_config
        .labels(&format!(
            "{}!={}",
            fieldwise_apply::labels::MANAGED_BY,
            fieldwise_apply::labels::MANAGED_BY_VALUE
        ))
        .page_size(SECRET_LIST_PAGE);
    // Metadata only: the data of the Secrets FeatureStores read is fetched (see secrets.rs).
    let secret_stream = mark_synced(
        watcher(secrets, user_secrets)
            .default_backoff()
            .modify(super::secrets::trim_for_cache)
            .reflect(secret_writer),
        secret_synced_tx,
    )
    .touched_objects();

    spawn_readiness(
        engine.clone(),
        fs_synced.clone(),
        secret_synced.clone(),
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
        move |fs: ObjectRef<CachedFeatureStore>| {
            metrics.set_queue_depth(CONTROLLER, queue.push(fs.clone()));
            fs
        }
    };
    let context = Arc::new(Context::new(
        client,
        engine,
        secret_reader,
        secret_synced,
        fs_reader.clone(),
        options.settings.clone(),
        metrics,
        recorder,
        queue,
    ));
    let secret_owners = fs_reader.clone();
    info!(
        namespace = options.namespace.as_deref().unwrap_or("<all>"),
        "starting the FeatureStore controller"
    );
    let (on_fs, on_child, on_secret) = (enqueue.clone(), enqueue.clone(), enqueue);
    let fs_triggers = feature_store_triggers(fs_events, fs_reader.clone()).map(on_fs);
    // The FeatureStores' own triggers come from fs_triggers; the main stream only names the store.
    let no_main_stream = futures::stream::pending::<Result<CachedFeatureStore, watcher::Error>>();
    Controller::for_stream(no_main_stream, fs_reader)
        .reconcile_on(fs_triggers)
        .reconcile_on(child_triggers.map(on_child))
        .watches_stream(secret_stream, move |secret: SecretMeta| {
            feature_stores_using_secret(&secret_owners, &secret)
                .into_iter()
                .map(&on_secret)
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

/// Whether a reflector's store holds its initial list, for any number of waiters at once.
///
/// kube's `Store::wait_until_ready` keeps one oneshot receiver behind a mutex, so of several tasks
/// waiting at the same time only the last one to poll is woken; reconciles waiting on it could wait
/// forever (they did after an operator restart with 1000 FeatureStores). This flag is set from the
/// watch stream itself ([`mark_synced`]) and wakes every waiter.
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// An unset flag and the sender that sets it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Resolves once the initial list is in; fails if the watch stopped before that.
    pub async fn wait(&self) -> Result<(), watch::error::RecvError> {
        self.0.clone().wait_for(|synced| *synced).await.map(|_| ())
    }
}

/// Passes a reflected watch stream through unchanged and sets `synced` when an initial list is
/// complete (the reflector has stored it by then).
fn mark_synced<K, S>(stream: S, synced: watch::Sender<bool>) -> impl Stream<Item = S::Item>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    stream.inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event {
            synced.send_replace(true);
        }
    })
}

/// What the one FeatureStore watch triggers: a FeatureStore itself when its generation or finalizers
/// changed (its own status writes do not re-trigger it), and, on any change or deletion, the
/// FeatureStores whose remote registry it is (its status carries the hostname they need).
fn feature_store_triggers(
    events: impl Stream<Item = Result<watcher::Event<CachedFeatureStore>, watcher::Error>>,
    store: Store<CachedFeatureStore>,
) -> impl Stream<Item = ObjectRef<CachedFeatureStore>> {
    let mut seen = SpecSeen::default();
    events.flat_map(move |event| {
        let triggers = match event {
            Ok(watcher::Event::Apply(fs) | watcher::Event::InitApply(fs)) => {
                let mut triggers = feature_stores_referencing(&store, &fs);
                if seen.changed(&fs) {
                    triggers.push(ObjectRef::from_obj(&fs));
                }
                triggers
            }
            Ok(watcher::Event::Delete(fs)) => {
                seen.forget(&fs);
                feature_stores_referencing(&store, &fs)
            }
            Ok(watcher::Event::InitDone) => {
                seen.keep_only(&store);
                Vec::new()
            }
            Ok(watcher::Event::Init) => Vec::new(),
            Err(error) => {
                warn!(%error, "FeatureStore watch error; retrying with backoff");
                Vec::new()
            }
        };
        futures::stream::iter(triggers)
    })
}

/// The generation and finalizers last seen per FeatureStore (by uid), so that only changes to them
/// trigger its reconcile; the first sight always does.
#[derive(Default)]
struct SpecSeen(HashMap<String, u64>);

impl SpecSeen {
    fn changed(&mut self, fs: &CachedFeatureStore) -> bool {
        let Some(hash) = predicates::generation
            .combine(predicates::finalizers)
            .hash_property(fs)
        else {
            return true;
        };
        self.0.insert(Self::key(fs), hash) != Some(hash)
    }

    fn forget(&mut self, fs: &CachedFeatureStore) {
        self.0.remove(&Self::key(fs));
    }

    /// After a re-list, drops the FeatureStores that are gone (their deletion may not have been seen).
    fn keep_only(&mut self, store: &Store<CachedFeatureStore>) {
        let live: std::collections::HashSet<String> =
            store.state().iter().map(|fs| Self::key(fs)).collect();
        self.0.retain(|key, _| live.contains(key));
    }

    fn key(fs: &CachedFeatureStore) -> String {
        fs.metadata
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}/{}", fs.namespace().unwrap_or_default(), fs.name_any()))
    }
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
fn spawn_readiness(engine: Engine, feature_stores: Synced, secrets: Synced, health: Health) {
    tokio::spawn(async move {
        let engine_ready = engine.wait_until_ready().await;
        let stores_ready = feature_stores.wait().await.and(secrets.wait().await);
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
    feature_stores: &Store<CachedFeatureStore>,
    secret: &SecretMeta,
) -> Vec<ObjectRef<CachedFeatureStore>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    feature_stores
        .state()
        .iter()
        .filter(|fs| fs.namespace() == namespace && fs.reads_secret(&name))
        .map(|fs| ObjectRef::from_obj(&**fs))
        .collect()
}

/// The FeatureStores whose remote registry is `target` (its status carries the hostname they need).
fn feature_stores_referencing(
    feature_stores: &Store<CachedFeatureStore>,
    target: &CachedFeatureStore,
) -> Vec<ObjectRef<CachedFeatureStore>> {
    let key = (target.namespace().unwrap_or_default(), target.name_any());
    feature_stores
        .state()
        .iter()
        .filter(|fs| fs.registry_feature_store() == Some(&key))
        .map(|fs| ObjectRef::from_obj(&**fs))
        .collect()
}
