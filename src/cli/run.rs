//! `fieldwise run`: the operator, against the cluster of KUBECONFIG or the in-cluster configuration.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use fieldwise_observability::{
    DEFAULT_LOG_FILTER, Health, HttpServer, LogFormat, Metrics, MetricsAccess, TelemetryConfig,
};
use tracing::{error, info, warn};

use crate::leader::{LEASE_NAME, LeaderElector, LeaseTiming};

use crate::{
    deploy::{
        NAMESPACE,
        rbac::{CLUSTER_SCOPED_ROLE, SERVICE_ACCOUNT, cluster_scoped_child_rules},
    },
    featurestore::context::ImageDefaults,
    runtime::{
        RunOptions, access::missing_cluster_wide, client::controller_client, errors,
        namespaces::parse_watch_namespaces, run as run_controller,
    },
    settings::{DEFAULT_RESYNC_PERIOD, DEFAULT_TAKE_OVER_FROM, Settings},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Watch FeatureStores and PrismClusters, and their children and Secrets, in these namespaces
    /// only: repeat the flag or separate names with commas (default, or empty: all namespaces).
    #[arg(
        long,
        env = "WATCH_NAMESPACE",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    pub namespace: Vec<String>,
    /// FeatureStores reconciled at the same time.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Quiet time in milliseconds after a change before reconciling.
    #[arg(long, default_value_t = 500)]
    pub debounce_ms: u64,
    /// Address serving /metrics: over HTTPS, each request needing a bearer token whose user may `get`
    /// the non-resource URL /metrics (checked with a TokenReview and a SubjectAccessReview).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub metrics_bind_address: SocketAddr,
    /// Directory with the metrics certificate, `tls.crt` and `tls.key` (a mounted `kubernetes.io/tls`
    /// Secret or OpenShift service-serving certificate; reread when they change). Without it the
    /// operator makes a self-signed certificate at start.
    #[arg(long, value_name = "DIR")]
    pub metrics_cert_dir: Option<std::path::PathBuf>,
    /// Serve /metrics over plain HTTP without authentication (development only).
    #[arg(long, conflicts_with = "metrics_cert_dir")]
    pub metrics_insecure: bool,
    /// Address serving /healthz and /readyz (plain HTTP, for the kubelet's probes).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_probe_bind_address: SocketAddr,
    /// Log format: json or text.
    #[arg(long, default_value = "text")]
    pub log_format: LogFormat,
    /// What to log: a level (error, warn, info, debug, trace) or `RUST_LOG`-style directives
    /// (`info,fieldwise=debug`). Defaults to `RUST_LOG`, else `info`.
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER, value_name = "LEVEL")]
    pub log_level: String,
    /// Run the controller only while holding the Lease `fieldwise-leader` in POD_NAMESPACE; exit with an
    /// error when it is lost, so the pod restarts as a standby.
    #[arg(long)]
    pub leader_elect: bool,
    /// With --leader-elect: seconds a standby waits after the leader's last renewal before it takes
    /// the Lease over.
    #[arg(long, default_value_t = LeaseTiming::default().lease_duration_seconds)]
    pub leader_elect_lease_duration: u64,
    /// With --leader-elect: seconds after its last renewal was sent that the leader may still
    /// write; past them it stops writing and leading (less than the lease duration: the rest
    /// allows for clock skew between nodes).
    #[arg(long, default_value_t = LeaseTiming::default().renew_deadline_seconds)]
    pub leader_elect_renew_deadline: u64,
    /// With --leader-elect: seconds between the leader's renewals (less than the renew deadline).
    #[arg(long, default_value_t = LeaseTiming::default().retry_period_seconds)]
    pub leader_elect_retry_period: u64,
    /// The instance name in Events (the pod name in a cluster).
    #[arg(long, env = "POD_NAME", default_value = "fieldwise")]
    pub instance: String,
    /// Seconds after which a settled FeatureStore is reconciled again although nothing changed (it costs
    /// no write when the cluster still matches).
    #[arg(long, default_value_t = DEFAULT_RESYNC_PERIOD.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub resync_seconds: u64,
    /// Field managers whose ownership of a child fieldwise takes over before applying to it
    /// (comma-separated; empty for none): what they set that fieldwise does not is removed. The
    /// default names the Feast operator (`manager`, `feast-operator`) and client-side `kubectl apply`.
    #[arg(long, env = "FIELDWISE_TAKE_OVER_FROM", value_delimiter = ',',
          default_values_t = DEFAULT_TAKE_OVER_FROM.map(str::to_owned))]
    pub take_over_from: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let telemetry = TelemetryConfig {
            log_format: args.log_format,
            log_filter: Some(args.log_level.clone()),
            ..TelemetryConfig::default()
        };
        let guard = match fieldwise_observability::init(&telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        info!(traces = %guard.export_description(), "fieldwise starting");
        let code = match serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                error!("{message}");
                ExitCode::FAILURE
            }
        };
        let _ = guard.shutdown().await;
        code
    })
}

/// The operator's runtime. Worker stacks are larger than tokio's 2 MiB default: a FeatureStore (whose status
/// repeats the whole spec) is deserialised in deep frames.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
}

async fn serve(args: Args) -> Result<(), String> {
    // OLM's AllNamespaces install mode sets WATCH_NAMESPACE to "": all namespaces.
    let namespaces = parse_watch_namespaces(&args.namespace)?;
    let config = instance_config(operator_config(config().await?), &args.instance);
    // The plain client serves start-up checks and the /metrics access reviews; the controllers get
    // their own stack (timed, writes limited to --concurrency, fenced when leading).
    let client = build_client(config.clone())?;
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    serve_http(&args, &client, &metrics, &health).await?;
    let settings = Settings {
        resync_period: Duration::from_secs(args.resync_seconds),
        take_over_from: take_over_from(args.take_over_from),
        cluster_scoped_off: cluster_scoped_off(&client, &namespaces).await,
        ..settings(&client).await
    };
    let options = RunOptions {
        namespaces,
        concurrency: args.concurrency,
        debounce: Duration::from_millis(args.debounce_ms),
        instance: args.instance,
        settings,
        leadership: None,
    };
    if args.leader_elect {
        let timing = LeaseTiming {
            lease_duration_seconds: args.leader_elect_lease_duration,
            renew_deadline_seconds: args.leader_elect_renew_deadline,
            retry_period_seconds: args.leader_elect_retry_period,
        };
        return run_as_leader(config, timing, options, metrics, health).await;
    }
    let client = controller_client(config, &metrics, options.concurrency, None)
        .map_err(|e| format!("cannot build a Kubernetes client: {}", errors::message(&e)))?;
    run_controller(client, options, metrics, health, shutdown_signal())
        .await
        .map_err(|e| errors::message(&e))
}

/// Starts the probe server and the metrics server (each until SIGTERM) and logs where they listen.
async fn serve_http(
    args: &Args,
    client: &kube::Client,
    metrics: &Arc<Metrics>,
    health: &Health,
) -> Result<(), String> {
    let probes = HttpServer::probes(args.health_probe_bind_address, health.clone())
        .await
        .map_err(|e| errors::message(&e))?;
    if let Ok(address) = probes.local_addr() {
        info!(%address, "serving /healthz and /readyz");
    }
    let access = if args.metrics_insecure {
        MetricsAccess::Insecure
    } else {
        crate::metrics_access::secure(client.clone(), args.metrics_cert_dir.clone())
    };
    let scrape = HttpServer::metrics(args.metrics_bind_address, metrics.clone(), access)
        .await
        .map_err(|e| errors::message(&e))?;
    if let Ok(address) = scrape.local_addr() {
        if scrape.is_https() {
            info!(%address, "serving /metrics over HTTPS to bearer tokens allowed to get /metrics");
        } else {
            warn!(%address, "serving /metrics over plain HTTP without authentication (--metrics-insecure)");
        }
    }
    tokio::spawn(probes.run(shutdown_signal()));
    tokio::spawn(scrape.run(shutdown_signal()));
    Ok(())
}

/// `--leader-elect`: stand by until this replica holds the Lease, run the controller while it does, and
/// fail (so the pod restarts) as soon as it is lost. SIGTERM stops the controller and releases the Lease.
/// The controller's client is fenced: it sends writes only while the Lease's renewals come through
/// in time ([`crate::leader`]).
async fn run_as_leader(
    config: kube::Config,
    timing: LeaseTiming,
    options: RunOptions,
    metrics: Arc<Metrics>,
    health: Health,
) -> Result<(), String> {
    // One signal listener for the whole run: a SIGTERM that arrives while the controller is still
    // starting must not be missed.
    let stopping = stop_requested();
    let namespace = std::env::var("POD_NAMESPACE")
        .map_err(|_| "--leader-elect needs POD_NAMESPACE, the namespace of the Lease".to_owned())?;
    let elector = LeaderElector::start_with(config.clone(), &namespace, &options.instance, timing)
        .await
        .map_err(|e| errors::message(&e))?;
    let client = controller_client(config, &metrics, options.concurrency, Some(elector.fence()))
        .map_err(|e| format!("cannot build a Kubernetes client: {}", errors::message(&e)))?;
    // A standby replica reports ready: were it unready, a rolling update would wait forever for a new
    // pod that cannot lead until the old one has gone.
    health.set_ready();
    info!(%namespace, lease = LEASE_NAME, "standing by for leadership");
    // The controller starts at once so the caches are warm, and reconciles only while leading.
    let options = RunOptions {
        leadership: Some(elector.leadership()),
        ..options
    };
    let mut leading = elector.leadership();
    let lost = async move {
        let _ = leading.wait_for(|leading| *leading).await;
        let _ = leading.wait_for(|leading| !*leading).await;
    };
    let result = tokio::select! {
        result = run_controller(client, options, metrics, health, stopped(stopping.clone())) => {
            result.map_err(|e| errors::message(&e))
        }
        () = lost => Err("lost the leader Lease; stopping so that the pod restarts".to_owned()),
        () = stop_deadline(stopping) => {
            Err(format!("the controller did not stop within {STOP_DEADLINE:?}; abandoning it"))
        }
    };
    elector.release().await;
    result
}

/// How long a stopping controller may take: less than the pod's 30 s grace period, so the Lease is still
/// released (and a standby takes over at once) when the controller hangs, e.g. on caches that never sync.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Resolves [`STOP_DEADLINE`] after a stop was requested.
async fn stop_deadline(stopping: tokio::sync::watch::Receiver<bool>) {
    stopped(stopping).await;
    tokio::time::sleep(STOP_DEADLINE).await;
}

/// Turns `true` once SIGTERM or SIGINT arrived.
fn stop_requested() -> tokio::sync::watch::Receiver<bool> {
    let (requested, receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        requested.send_replace(true);
    });
    receiver
}

/// Resolves once a stop was requested, including before this future was created.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    // An error means the signal task is gone, which only happens at runtime shutdown: stop too.
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A client for KUBECONFIG or the in-cluster service account, configured by [`operator_config`].
pub async fn client() -> Result<kube::Client, String> {
    build_client(operator_config(config().await?))
}

/// The controllers' client for KUBECONFIG or the in-cluster service account, as `fieldwise run`
/// builds it without leader election ([`controller_client`]).
pub async fn controllers_client(
    metrics: &Arc<Metrics>,
    concurrency: u16,
) -> Result<kube::Client, String> {
    controller_client(operator_config(config().await?), metrics, concurrency, None)
        .map_err(|e| format!("cannot build a Kubernetes client: {}", errors::message(&e)))
}

/// The configuration of KUBECONFIG or the in-cluster service account.
async fn config() -> Result<kube::Config, String> {
    kube::Config::infer()
        .await
        .map_err(|e| format!("no Kubernetes configuration: {}", errors::message(&e)))
}

fn build_client(config: kube::Config) -> Result<kube::Client, String> {
    kube::Client::try_from(config)
        .map_err(|e| format!("cannot build a Kubernetes client: {}", errors::message(&e)))
}

/// The `User-Agent` of the operator's requests.
pub const USER_AGENT: &str = concat!("fieldwise/", env!("CARGO_PKG_VERSION"));

/// [`operator_config`] with the instance (the pod name) in the `User-Agent`,
/// `fieldwise/<version> (<instance>)`, so an audit log tells the replicas' requests apart; the field
/// manager the API server takes from it is still `fieldwise`. An instance name that cannot be a
/// header value leaves the `User-Agent` as it was.
pub fn instance_config(mut config: kube::Config, instance: &str) -> kube::Config {
    let Ok(agent) = http::HeaderValue::from_str(&format!("{USER_AGENT} ({instance})")) else {
        return config;
    };
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, agent));
    config
}

/// The operator's client settings. The engine retries requests itself, so kube's own retry layer
/// is switched off (stacked retries could hang a reconcile). Requests carry the `User-Agent`
/// [`USER_AGENT`]: the API server names the field manager of a write that names none after it (up
/// to the `/`), so the Events kube's recorder writes are managed by `fieldwise`, not `unknown`.
pub fn operator_config(mut config: kube::Config) -> kube::Config {
    config.default_retry = false;
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    config
}

/// Whether an operator watching `namespaces` only may manage cluster-scoped children: `None` when
/// it watches every namespace or holds [`cluster_scoped_child_rules`] cluster-wide (asked once, here);
/// otherwise how to grant them, for the status of the resources that need them.
pub async fn cluster_scoped_off(client: &kube::Client, namespaces: &[String]) -> Option<String> {
    if namespaces.is_empty() {
        return None;
    }
    let missing = match missing_cluster_wide(client, &cluster_scoped_child_rules()).await {
        Ok(missing) if missing.is_empty() => {
            info!("cluster-scoped children are managed: the operator holds their permissions");
            return None;
        }
        Ok(missing) => missing.join(", "),
        Err(error) => format!("could not ask ({})", errors::message(&error)),
    };
    let grant = grant_cluster_scoped();
    warn!(
        %missing,
        "cluster-scoped children (token-review ClusterRoles and bindings) are off: resources that \
         need them get a condition saying so. {grant}"
    );
    Some(grant)
}

/// How an administrator lets the operator manage cluster-scoped children.
fn grant_cluster_scoped() -> String {
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| NAMESPACE.to_owned());
    format!(
        "To have fieldwise manage them, grant its ServiceAccount the ClusterRole \
         {CLUSTER_SCOPED_ROLE} (deploy/overlays/namespaced) and restart it: kubectl create \
         clusterrolebinding {CLUSTER_SCOPED_ROLE} --clusterrole={CLUSTER_SCOPED_ROLE} \
         --serviceaccount={namespace}:{SERVICE_ACCOUNT}; or create them yourself as `fieldwise render` \
         shows them"
    )
}

/// The managers to take over from, without the empty names `--take-over-from ''` (or a stray
/// comma) gives: an empty value means none.
fn take_over_from(names: Vec<String>) -> Vec<String> {
    let names = names.into_iter().map(|name| name.trim().to_owned());
    names.filter(|name| !name.is_empty()).collect()
}

/// The controller's settings from the operator's environment (`RELATED_IMAGE_*`, `OIDC_ISSUER_URL`) and
/// what the cluster serves; the default resync period.
pub async fn settings(client: &kube::Client) -> Settings {
    Settings {
        images: ImageDefaults::from_env(|name| std::env::var(name).ok()),
        oidc_issuer_url: std::env::var("OIDC_ISSUER_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        service_monitor_available: service_monitors_served(client).await,
        openshift: group_served(client, OPENSHIFT_ROUTE_GROUP).await,
        keda_available: served(
            client,
            &crate::prismcluster::kinds::scaled_object_resource(),
        )
        .await,
        prism_clusters_served: served(
            client,
            &kube::discovery::ApiResource::erase::<fieldwise_api::prism::PrismCluster>(&()),
        )
        .await,
        resync_period: DEFAULT_RESYNC_PERIOD,
        take_over_from: crate::settings::default_take_over_from(),
        cluster_scoped_off: None,
    }
}

/// Whether the Prometheus Operator's ServiceMonitor kind is served (decided once at start-up).
pub async fn service_monitors_served(client: &kube::Client) -> bool {
    served(
        client,
        &crate::featurestore::kinds::service_monitor_resource(),
    )
    .await
}

/// The API group whose presence tells an OpenShift cluster apart, as the Feast operator decides it.
const OPENSHIFT_ROUTE_GROUP: &str = "route.openshift.io";

/// Whether the API server serves an API group at all (decided once at start-up).
async fn group_served(client: &kube::Client, group: &str) -> bool {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .filter(&[group])
        .run()
        .await;
    discovery.is_ok_and(|discovery| discovery.has_group(group))
}

/// Whether the API server serves a kind (decided once at start-up: a CRD installed later takes a
/// restart of the operator).
async fn served(client: &kube::Client, resource: &kube::discovery::ApiResource) -> bool {
    let discovery = kube::discovery::Discovery::new(client.clone())
        .filter(&[resource.group.as_str()])
        .run()
        .await;
    discovery.is_ok_and(|discovery| {
        discovery
            .groups()
            .any(|group| group.recommended_kind(&resource.kind).is_some())
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: Args,
    }

    fn managers(flags: &[&str]) -> Vec<String> {
        let cli = Cli::parse_from(std::iter::once("fieldwise").chain(flags.iter().copied()));
        take_over_from(cli.run.take_over_from)
    }

    fn namespaces(flags: &[&str]) -> Result<Vec<String>, String> {
        let cli = Cli::try_parse_from(std::iter::once("fieldwise").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        parse_watch_namespaces(&cli.run.namespace)
    }

    #[test]
    fn namespace_is_repeatable_and_comma_separated() {
        assert_eq!(
            namespaces(&["--namespace", "a, b", "--namespace", "c,a"]).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            namespaces(&["--namespace", ""]).unwrap(),
            Vec::<String>::new()
        );
        let error = namespaces(&["--namespace", "a,B"]).unwrap_err();
        assert!(error.contains("\"B\" is not a namespace name"), "{error}");
    }

    #[test]
    fn take_over_from_defaults_to_the_feast_operator_and_client_side_apply() {
        assert_eq!(
            managers(&[]),
            ["manager", "feast-operator", "kubectl-client-side-apply"]
        );
    }

    #[test]
    fn the_user_agent_names_the_instance_and_keeps_the_field_manager() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("a URL"));
        let config = instance_config(operator_config(config), "fieldwise-7d9f-abc");
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name == http::header::USER_AGENT)
            .map(|(_, value)| value.to_str().expect("text"))
            .collect();
        let expected = format!("{USER_AGENT} (fieldwise-7d9f-abc)");
        assert_eq!(agents, [expected.as_str()]);
        // kube-apiserver names the manager of a write without one after the agent up to its '/'.
        assert_eq!(agents[0].split('/').next(), Some("fieldwise"));
    }

    #[test]
    fn leader_election_timing_flags_default_to_the_lease_timing() {
        let cli = Cli::parse_from(["fieldwise"]);
        let default = LeaseTiming::default();
        assert_eq!(
            cli.run.leader_elect_lease_duration,
            default.lease_duration_seconds
        );
        assert_eq!(
            cli.run.leader_elect_renew_deadline,
            default.renew_deadline_seconds
        );
        assert_eq!(
            cli.run.leader_elect_retry_period,
            default.retry_period_seconds
        );
    }

    #[test]
    fn take_over_from_is_a_list_and_empty_means_nobody() {
        assert_eq!(
            managers(&["--take-over-from", "manager, helm"]),
            ["manager", "helm"]
        );
        assert!(managers(&["--take-over-from", ""]).is_empty());
    }
}
