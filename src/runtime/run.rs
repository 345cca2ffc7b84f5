//! Wiring: one engine for every controller, the shared Secret cache, and per controller its owner
//! reflector, triggers and kube `Controller`. `fieldwise run` and `fieldwise demo` start the
//! operator here.

use std::{future::Future, sync::Arc, time::Duration};

use fieldwise_apply::{Engine, EngineConfig};
use fieldwise_observability::{Health, Metrics};
use futures::{FutureExt, Stream, StreamExt, future::Shared as SharedFuture};
use kube::{
    Client, Resource,
    runtime::{
        Controller as KubeController, WatchStreamExt,
        controller::Config as ControllerConfig,
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::{broadcast, watch};
use tracing::{debug, error, info, warn};

use super::{
    controller::{Controller, Shared},
    errors,
    namespaces::{self, watch_namespaces},
    queue::{AbortOnDrop, ReferenceIndex, SpecSeen, Synced, mark_synced},
    reconcile::{Context, error_policy, reconcile},
    secrets::{SecretMeta, SecretReader, trim_for_cache},
};
use crate::{
    featurestore::FeatureStoreController, prismcluster::PrismClusterController, settings::Settings,
};
use fieldwise_api::prism::PrismCluster;

/// Secrets per list request of the Secret watch: each page is held whole until the cache has
/// trimmed it, and `kubectl apply`'s annotation can make a Secret's metadata as large as its data.
const SECRET_LIST_PAGE: u32 = 50;

/// Secret changes buffered per controller before a slow one misses some (it then catches up at
/// its next resync).
const SECRET_EVENTS_BUFFER: usize = 1024;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Watch (and cache) owners, children and Secrets in these namespaces only; empty watches all
    /// (one watch per kind). See [`super::namespaces::parse_watch_namespaces`].
    pub namespaces: Vec<String>,
    /// Resources of each controller reconciled at the same time.
    pub concurrency: u16,
    /// Quiet time after a change before reconciling, so a burst of child events makes one reconcile.
    pub debounce: Duration,
    /// The instance name in Events (the pod name in a cluster).
    pub instance: String,
    pub settings: Settings,
    /// With leader election: true while this replica leads. The children's caches are kept warm from the
    /// start, but nothing is reconciled (nothing is written) until it turns true.
    pub leadership: Option<watch::Receiver<bool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
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

type Shutdown = SharedFuture<futures::future::BoxFuture<'static, ()>>;

/// Runs every controller until `shutdown` resolves. Marks `health` ready once every cache has its
/// initial list.
pub async fn run(
    client: Client,
    options: RunOptions,
    metrics: Arc<Metrics>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let settings = &options.settings;
    let feature_stores = Arc::new(FeatureStoreController::new(settings, &metrics));
    if !settings.prism_clusters_served {
        // Decided once at start-up (`crate::cli::run::settings`).
        info!(
            "PrismCluster is not served (CRD prismclusters.prism.io): its controller is off until \
             fieldwise restarts with the CRDs installed"
        );
    }
    let prism_clusters = settings.prism_clusters_served.then(|| {
        let (monitors, keda) = (settings.service_monitor_available, settings.keda_available);
        Arc::new(PrismClusterController::new(monitors, keda))
    });
    // Every controller's kinds in one registry: a kind two controllers own is watched once.
    let mut registry = feature_stores.kinds();
    if let Some(prism) = &prism_clusters {
        registry = registry.merge(prism.kinds());
    }
    let engine_config = EngineConfig {
        take_over_from: settings.take_over_from.clone(),
        namespaces: options.namespaces.clone(),
        ..EngineConfig::default()
    };
    let list_page_size = engine_config.list_page_size;
    let engine = Engine::with_config(client.clone(), registry, engine_config);
    // Each controller's child triggers, taken before the watches start.
    let fs_children = engine.owner_triggers::<<FeatureStoreController as Controller>::Cached>()?;
    let prism_children = match &prism_clusters {
        Some(_) => Some(engine.owner_triggers::<PrismCluster>()?),
        None => None,
    };
    // The engine's watches live as long as the controllers, not as long as the process.
    let _stop_watches = AbortOnDrop(tokio::spawn(engine.run_watches()?));
    let shutdown: Shutdown = shutdown.boxed().shared();
    if let Some(mut leadership) = options.leadership.clone() {
        info!("caches warming; waiting for leadership before reconciling");
        tokio::select! {
            _ = leadership.wait_for(|leading| *leading) => {}
            () = shutdown.clone() => return Ok(()),
        }
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "fieldwise".to_owned(),
            instance: Some(options.instance.clone()),
        },
    );
    let (fs_synced_tx, fs_synced) = Synced::new();
    let (prism_synced_tx, prism_synced) = Synced::new();
    let mut owner_lists = vec![fs_synced];
    if prism_clusters.is_some() {
        owner_lists.push(prism_synced);
    }
    let secrets = SecretWatch::new(&client, &options.namespaces, list_page_size);
    let mut reflectors = owner_lists.clone();
    reflectors.push(secrets.synced.clone());
    spawn_readiness(engine.clone(), reflectors, health.clone());
    let _secret_watch = secrets.start_after(owner_lists);
    let wiring = Wiring {
        client,
        engine,
        metrics,
        recorder,
        options,
        list_page_size,
        health,
    };
    let feature_store_run = wiring.controller(
        feature_stores,
        fs_children,
        &secrets,
        fs_synced_tx,
        shutdown.clone(),
    );
    let prism_run = async {
        if let (Some(prism), Some(children)) = (prism_clusters, prism_children) {
            let synced = prism_synced_tx;
            wiring
                .controller(prism, children, &secrets, synced, shutdown)
                .await;
        }
    };
    futures::join!(feature_store_run, prism_run);
    Ok(())
}

/// Every kind any controller may own, with every optional kind (ServiceMonitor, ScaledObject):
/// what the operator's RBAC covers, so one role works wherever those CRDs are installed.
pub fn all_kinds() -> fieldwise_apply::KindRegistry {
    crate::featurestore::kinds::registry(true)
        .merge(crate::prismcluster::kinds::registry(true, true))
}

/// What every controller is wired with.
struct Wiring {
    client: Client,
    engine: Engine,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    options: RunOptions,
    list_page_size: u32,
    /// `/readyz` says why the operator is not ready (a resource that is not served, say).
    health: Health,
}

impl Wiring {
    /// Runs one controller: its owner reflector and triggers (its own spec changes, its children,
    /// the Secrets and other owners it reads) into kube's `Controller`, until `shutdown`.
    async fn controller<C: Controller>(
        &self,
        controller: Arc<C>,
        child_triggers: impl Stream<Item = ObjectRef<C::Cached>> + Send + 'static,
        secrets: &SecretWatch,
        synced: watch::Sender<bool>,
        shutdown: Shutdown,
    ) {
        self.metrics.register_controller(C::NAME);
        let namespaces = &self.options.namespaces;
        let (store, writer) = reflector::store();
        let list_config = watcher::Config::default().page_size(self.list_page_size);
        let owners_listed = synced.subscribe();
        // The engine keeps each status write until this watch shows it (see Engine::owner_seen).
        let status_writes_seen = self.engine.clone();
        let owner_events = mark_synced(
            watch_namespaces::<C::Cached>(&self.client, namespaces, list_config, |_| {})
                .reflect(writer),
            synced,
        )
        .inspect(move |event| {
            if let Ok(watcher::Event::Apply(owner) | watcher::Event::InitApply(owner)) = event {
                status_writes_seen.owner_seen(owner);
            }
        });
        let shared = Shared {
            client: self.client.clone(),
            engine: self.engine.clone(),
            secrets: secrets.reader.clone(),
            owners: store.clone(),
            controller,
        };
        let context = Arc::new(Context::new(
            shared,
            self.engine.clone(),
            self.metrics.clone(),
            self.recorder.clone(),
            self.options.settings.resync_period,
        ));
        let enqueue = {
            let (queue, metrics) = (context.queue.clone(), self.metrics.clone());
            move |object: ObjectRef<C::Cached>| {
                metrics.set_queue_depth(C::NAME, queue.push(object.clone()));
                object
            }
        };
        let own = owner_triggers::<C>(owner_events, store.clone(), self.health.clone())
            .map(enqueue.clone());
        let children = child_triggers.map(enqueue.clone());
        let secret_readers = secret_triggers::<C>(secrets.subscribe(), store.clone()).map(enqueue);
        info!(
            controller = C::NAME,
            namespaces = %namespaces::describe(namespaces),
            "starting the controller"
        );
        // The owners' own triggers come from `own`; the main stream only names the store.
        let no_main_stream = futures::stream::pending::<Result<C::Cached, watcher::Error>>();
        let controller_run = KubeController::for_stream(no_main_stream, store)
            .reconcile_on(own)
            .reconcile_on(children)
            .reconcile_on(secret_readers)
            .with_config(
                ControllerConfig::default()
                    .concurrency(self.options.concurrency)
                    .debounce(self.options.debounce),
            )
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile::<C>, error_policy::<C>, context)
            .for_each(|result| async move {
                if let Err(error) = result {
                    log_controller_error::<C>(&error);
                }
            });
        // kube's applier holds its runner until the owner store is ready, and the owner watch is
        // one of the triggers a graceful shutdown cuts: stopped before the owners' first list, the
        // store never becomes ready and the controller would wait for it forever. Nothing was
        // reconciled yet then, so there is nothing to finish.
        let stopped_before_listing = async move {
            shutdown.await;
            if *owners_listed.borrow() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = controller_run => {}
            () = stopped_before_listing => {}
        }
        info!(controller = C::NAME, "controller stopped");
    }
}

/// Logs an error kube's controller reports outside a reconcile (the wrapper handles those).
fn log_controller_error<C: Controller>(
    error: &kube::runtime::controller::Error<super::ReconcileError, watcher::Error>,
) {
    use kube::runtime::controller::Error as ControllerError;
    match error {
        // A trigger (a child's deletion, say) for a resource that has just been deleted: expected.
        ControllerError::ObjectNotFound(object) => debug!(
            controller = C::NAME,
            %object,
            "nothing to reconcile: the resource is gone"
        ),
        other => warn!(
            controller = C::NAME,
            error = %errors::message(other),
            "controller error"
        ),
    }
}

/// What the owner watch triggers: a resource itself when its generation or finalizers changed
/// (its own status writes do not re-trigger it), and, on any change or deletion, the resources
/// that refer to it ([`Controller::references`], kept in a [`ReferenceIndex`]).
///
/// A watch the API server refuses with 404 means the resource's CRD is not installed: that is said
/// once, as an error naming the command that installs it, and on `/readyz` until it is served.
fn owner_triggers<C: Controller>(
    events: impl Stream<Item = Result<watcher::Event<C::Cached>, watcher::Error>>,
    store: Store<C::Cached>,
    health: Health,
) -> impl Stream<Item = ObjectRef<C::Cached>> {
    let mut seen = SpecSeen::new();
    let mut references = ReferenceIndex::new();
    let mut not_served = false;
    events.flat_map(move |event| {
        // `Init` comes before every list, also before one that fails: served means listed.
        let listed = matches!(
            event,
            Ok(watcher::Event::InitApply(_) | watcher::Event::InitDone)
        );
        if not_served && listed {
            not_served = false;
            health.clear_not_ready_reason();
            info!(
                controller = C::NAME,
                "{} is served now",
                C::Cached::kind(&())
            );
        }
        let triggers = match event {
            Ok(watcher::Event::Apply(owner) | watcher::Event::InitApply(owner)) => {
                let mut triggers = references.applied(&owner, C::references(&owner));
                if seen.changed(&owner) {
                    triggers.push(ObjectRef::from_obj(&owner));
                }
                triggers
            }
            Ok(watcher::Event::Delete(owner)) => {
                seen.forget(&owner);
                references.deleted(&owner)
            }
            Ok(watcher::Event::InitDone) => {
                seen.keep_only(&store);
                references.keep_only(&store);
                Vec::new()
            }
            Ok(watcher::Event::Init) => Vec::new(),
            Err(error) if errors::resource_not_served(&error) => {
                let kind = C::Cached::kind(&());
                let crd = format!("{}.{}", C::Cached::plural(&()), C::Cached::group(&()));
                let message = errors::install_the_crds(&kind, &crd);
                if !not_served {
                    not_served = true;
                    health.set_not_ready_reason(message.clone());
                    error!(controller = C::NAME, "{message}");
                } else {
                    debug!(controller = C::NAME, "{message}");
                }
                Vec::new()
            }
            Err(error) => {
                let error = errors::message(&error);
                warn!(controller = C::NAME, %error, "watch error; retrying with backoff");
                Vec::new()
            }
        };
        futures::stream::iter(triggers)
    })
}

/// The resources in a changed Secret's namespace that read it.
fn secret_triggers<C: Controller>(
    changes: impl Stream<Item = Arc<SecretMeta>>,
    owners: Store<C::Cached>,
) -> impl Stream<Item = ObjectRef<C::Cached>> {
    changes.flat_map(move |secret| {
        let namespace = kube::ResourceExt::namespace(&*secret);
        let name = kube::ResourceExt::name_any(&*secret);
        let readers: Vec<_> = owners
            .state()
            .iter()
            .filter(|owner| {
                kube::ResourceExt::namespace(&***owner) == namespace
                    && C::reads_secret(owner, &name)
            })
            .map(|owner| ObjectRef::from_obj(&**owner))
            .collect();
        futures::stream::iter(readers)
    })
}

/// The one Secret watch of the process (metadata only) and its cache, shared by every controller.
struct SecretWatch {
    reader: SecretReader,
    synced: Synced,
    /// Started by [`Self::start_after`].
    pending: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
    changes: broadcast::Sender<Arc<SecretMeta>>,
}

impl SecretWatch {
    fn new(client: &Client, namespaces: &[String], page_size: u32) -> Self {
        let (store, writer) = reflector::store();
        let (synced_tx, synced) = Synced::new();
        let (changes, _) = broadcast::channel(SECRET_EVENTS_BUFFER);
        // Our own Secrets (server configuration) are never referenced; the engine's cache already
        // holds them, so this cache leaves them out.
        let user_secrets = watcher::Config::default()
            .page_size(page_size.min(SECRET_LIST_PAGE))
            .labels(&format!(
                "{}!={}",
                fieldwise_apply::labels::MANAGED_BY,
                fieldwise_apply::labels::MANAGED_BY_VALUE
            ));
        let sender = changes.clone();
        // `SecretMeta` is a `PartialObjectMeta`: the watch asks for metadata only.
        let watch = mark_synced(
            watch_namespaces::<SecretMeta>(client, namespaces, user_secrets, trim_for_cache)
                .reflect(writer),
            synced_tx,
        )
        .touched_objects()
        .for_each(move |secret| {
            if let Ok(secret) = secret {
                // No receiver (no controller reads Secrets) is fine.
                let _ = sender.send(Arc::new(secret));
            }
            futures::future::ready(())
        });
        Self {
            reader: SecretReader::new(client.clone(), store, synced.clone()),
            synced,
            pending: std::sync::Mutex::new(Some(watch.boxed())),
            changes,
        }
    }

    /// The Secret changes, for one controller's triggers.
    fn subscribe(&self) -> impl Stream<Item = Arc<SecretMeta>> + Send + 'static {
        futures::stream::unfold(self.changes.subscribe(), |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(secret) => return Some((secret, receiver)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "Secret changes missed; the next resync catches up");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Starts the watch once the owners are listed: their reconciles start first, and the two
    /// largest lists of a restart do not hold memory at the same time. Stops it when dropped.
    fn start_after(&self, owners: Vec<Synced>) -> AbortOnDrop {
        let start = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        AbortOnDrop(tokio::spawn(async move {
            for synced in owners {
                if synced.wait().await.is_err() {
                    return;
                }
            }
            if let Some(watch) = start {
                watch.await;
            }
        }))
    }
}

/// Ready once the engine's caches and every reflector have their initial lists.
fn spawn_readiness(engine: Engine, reflectors: Vec<Synced>, health: Health) {
    tokio::spawn(async move {
        let engine_ready = engine.wait_until_ready().await;
        let mut reflectors_ready = Ok(());
        for synced in reflectors {
            reflectors_ready = reflectors_ready.and(synced.wait().await);
        }
        match (engine_ready, reflectors_ready) {
            (Ok(()), Ok(())) => {
                health.set_ready();
                info!("caches synced; ready");
            }
            (Err(error), _) => {
                let error = errors::message(&error);
                warn!(%error, "caches never became ready");
            }
            (Ok(()), Err(_)) => {
                warn!("caches never became ready: a watch stopped before its initial list")
            }
        }
    });
}
