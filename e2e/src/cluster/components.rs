//! The components, their command lines and the order they start in.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use super::{
    ClusterError, Options, health,
    process::{self, Started},
};

/// Every binary `e2e/cluster/build` provides.
pub const BINARIES: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "pki",
];

/// Persistent volumes in the pool claims bind to (a Feast sample with persistence claims up to three).
const VOLUMES: usize = 60;

/// A fake node and the zone it is in (`topology.kubernetes.io/zone`).
#[derive(Clone, Debug)]
pub struct Zone {
    pub node: String,
    pub zone: String,
}

pub fn default_zones() -> Vec<Zone> {
    ["a", "b", "c"]
        .iter()
        .map(|zone| Zone {
            node: format!("kwok-node-{zone}"),
            zone: format!("zone-{zone}"),
        })
        .collect()
}

/// The ports the components listen on, all on 127.0.0.1.
struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
    scheduler: u16,
    kwok: u16,
}

impl Ports {
    fn free() -> Result<Self, ClusterError> {
        // Held together until all are chosen, so no two are the same.
        let listeners = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ClusterError::io("finding free ports on 127.0.0.1"))?;
        let ports = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|address| address.port()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ClusterError::io("finding free ports on 127.0.0.1"))?;
        Ok(Self {
            etcd_client: ports[0],
            etcd_peer: ports[1],
            apiserver: ports[2],
            controller_manager: ports[3],
            scheduler: ports[4],
            kwok: ports[5],
        })
    }
}

/// Paths inside the state directory.
struct Files {
    state: PathBuf,
    pki: PathBuf,
    tokens: PathBuf,
    kubeconfig: PathBuf,
}

pub async fn start(options: &Options) -> Result<PathBuf, ClusterError> {
    let started_at = Instant::now();
    std::fs::create_dir_all(&options.state).map_err(ClusterError::io(format!(
        "creating {}",
        options.state.display()
    )))?;
    // Canonical, so the processes' working directory (how `down` recognises them) compares equal.
    let state = options
        .state
        .canonicalize()
        .map_err(ClusterError::io(format!(
            "resolving {}",
            options.state.display()
        )))?;
    process::prepare(&state)?;
    let files = Files {
        pki: state.join("pki"),
        tokens: state.join("pki/tokens.csv"),
        kubeconfig: super::kubeconfig_path(&state),
        state,
    };
    let ports = Ports::free()?;
    write_credentials(&options.binaries, &files, ports.apiserver)?;
    write_private(
        &files.state.join("audit-policy.yaml"),
        audit_policy(options.audit_reads),
    )?;
    let deadline = started_at + options.patience;
    let spawn = |name: &'static str, args: Vec<String>| {
        process::spawn(&options.binaries, &files.state, name, &args)
    };

    let mut etcd = spawn("etcd", etcd_args(&files, &ports))?;
    health::wait_for_etcd(&mut etcd, ports.etcd_client, deadline).await?;
    let mut apiserver = spawn(
        "kube-apiserver",
        apiserver_args(&files, &ports, options.audit_reads),
    )?;
    let client = health::wait_for_apiserver(&mut apiserver, &files.kubeconfig, deadline).await?;
    let mut controller_manager = spawn(
        "kube-controller-manager",
        controller_manager_args(&files, &ports),
    )?;
    let mut scheduler = spawn("kube-scheduler", scheduler_args(&files, &ports))?;
    health::create_nodes(&client, &options.zones, options.pods_per_node).await?;
    health::create_storage(&client, VOLUMES).await?;
    let mut kwok = spawn("kwok", kwok_args(&files, &ports))?;

    let mut running: Vec<&mut Started> = vec![
        &mut etcd,
        &mut apiserver,
        &mut controller_manager,
        &mut scheduler,
        &mut kwok,
    ];
    health::wait_for_leader(&client, "kube-controller-manager", &mut running, deadline).await?;
    health::wait_for_leader(&client, "kube-scheduler", &mut running, deadline).await?;
    health::wait_for_nodes(&client, &options.zones, &mut running, deadline).await?;
    health::wait_for_default_service_account(&client, &mut running, deadline).await?;
    Ok(files.kubeconfig)
}

/// Keys and certificates (from the `pki` helper), the static token and the kubeconfig that uses it.
fn write_credentials(
    binaries: &Path,
    files: &Files,
    apiserver_port: u16,
) -> Result<(), ClusterError> {
    std::fs::create_dir_all(&files.pki).map_err(ClusterError::io(format!(
        "creating {}",
        files.pki.display()
    )))?;
    let pki = Command::new(binaries.join("pki"))
        .arg(&files.pki)
        .output()
        .map_err(ClusterError::io("running the pki helper"))?;
    if !pki.status.success() {
        return Err(ClusterError::Setup(format!(
            "the pki helper failed: {}",
            String::from_utf8_lossy(&pki.stderr)
        )));
    }
    let token = random_token()?;
    // token,user,uid,"group": the admin is in system:masters, as kind's admin is.
    write_private(
        &files.tokens,
        &format!("{token},fieldwise-e2e-admin,fieldwise-e2e-admin,\"system:masters\"\n"),
    )?;
    let kubeconfig = kubeconfig_yaml(apiserver_port, &files.pki.join("ca.crt"), &token);
    write_private(&files.kubeconfig, &kubeconfig)
}

/// Write requests at `Metadata` level (who, what, answer code); reads and leases' renewals are left out.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: None
  verbs: [get, list, watch]
- level: Metadata
";

/// [`AUDIT_POLICY`] without its rule leaving reads out: every request but the leases' (a watch
/// shows twice, when it starts and when it ends, under one `auditID`).
const AUDIT_POLICY_WITH_READS: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
";

fn audit_policy(reads: bool) -> &'static str {
    if reads {
        AUDIT_POLICY_WITH_READS
    } else {
        AUDIT_POLICY
    }
}

fn random_token() -> Result<String, ClusterError> {
    let mut bytes = [0u8; 24];
    let mut random =
        std::fs::File::open("/dev/urandom").map_err(ClusterError::io("opening /dev/urandom"))?;
    std::io::Read::read_exact(&mut random, &mut bytes)
        .map_err(ClusterError::io("reading /dev/urandom"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn write_private(path: &Path, text: &str) -> Result<(), ClusterError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ClusterError::io(format!("writing {}", path.display())))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(ClusterError::io(format!("writing {}", path.display())))
}

fn kubeconfig_yaml(port: u16, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fieldwise-e2e
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: fieldwise-e2e-admin
  user:
    token: {token}
contexts:
- name: fieldwise-e2e
  context:
    cluster: fieldwise-e2e
    user: fieldwise-e2e-admin
    namespace: default
current-context: fieldwise-e2e
",
        ca = ca.display()
    )
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

fn etcd_args(files: &Files, ports: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=e2e".into(),
        format!("--data-dir={}", path(&files.state.join("etcd"))),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=e2e={peer}"),
        // A throwaway store: durability buys nothing and fsync is slow on shared CI disks.
        "--unsafe-no-fsync=true".into(),
    ]
}

fn apiserver_args(files: &Files, ports: &Ports, audit_reads: bool) -> Vec<String> {
    let pki = |name: &str| path(&files.pki.join(name));
    vec![
        format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.apiserver),
        format!("--cert-dir={}", path(&files.state.join("apiserver"))),
        format!("--tls-cert-file={}", pki("apiserver.crt")),
        format!("--tls-private-key-file={}", pki("apiserver.key")),
        format!("--client-ca-file={}", pki("ca.crt")),
        format!("--token-auth-file={}", path(&files.tokens)),
        "--authorization-mode=Node,RBAC".into(),
        format!("--service-account-key-file={}", pki("service-account.pub")),
        format!(
            "--service-account-signing-key-file={}",
            pki("service-account.key")
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--allow-privileged=true".into(),
        // The Endpoints of the `kubernetes` Service may not hold a loopback address.
        "--endpoint-reconciler-type=none".into(),
        // The admission plugins are the defaults of the release, as in a kubeadm or kind cluster.
        // Every write request, with its user agent, in logs/audit.log: what a test wrote, and when.
        format!(
            "--audit-policy-file={}",
            path(&files.state.join("audit-policy.yaml"))
        ),
        format!(
            "--audit-log-path={}",
            path(&super::logs_dir(&files.state).join("audit.log"))
        ),
        // Reads are most of the requests: room for a run at N = 1000 without rotating the log.
        format!(
            "--audit-log-maxsize={}",
            if audit_reads { 4000 } else { 200 }
        ),
        "--audit-log-maxbackup=1".into(),
    ]
}

fn controller_manager_args(files: &Files, ports: &Ports) -> Vec<String> {
    let kubeconfig = path(&files.kubeconfig);
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.controller_manager),
        format!(
            "--cert-dir={}",
            path(&files.state.join("controller-manager"))
        ),
        // Every default controller: garbage collector, namespace, deployment, replicaset, statefulset,
        // job, cronjob, horizontal-pod-autoscaler, service accounts and their tokens, disruption, ...
        "--controllers=*".into(),
        format!(
            "--service-account-private-key-file={}",
            path(&files.pki.join("service-account.key"))
        ),
        format!("--root-ca-file={}", path(&files.pki.join("ca.crt"))),
        // Fake nodes never fail: a loaded machine delaying kwok's lease renewals must not turn them
        // NotReady (and every pod with them) in the middle of a test.
        "--node-monitor-grace-period=5m".into(),
        // Tests wait for HPA decisions: evaluate often and do not hold scale-downs for 5 minutes.
        "--horizontal-pod-autoscaler-sync-period=5s".into(),
        "--horizontal-pod-autoscaler-downscale-stabilization=10s".into(),
    ]
}

fn scheduler_args(files: &Files, ports: &Ports) -> Vec<String> {
    let kubeconfig = path(&files.kubeconfig);
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.scheduler),
        format!("--cert-dir={}", path(&files.state.join("scheduler"))),
    ]
}

fn kwok_args(files: &Files, ports: &Ports) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", path(&files.kubeconfig)),
        // Only the fake nodes the harness creates (annotated), never a real one.
        "--manage-all-nodes=false".into(),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
        format!("--server-address=127.0.0.1:{}", ports.kwok),
        "--cidr=10.244.0.0/16".into(),
        // Heartbeats through node Leases, renewed every 10 s, as kubelets do.
        "--node-lease-duration-seconds=40".into(),
        "--node-ip=10.0.0.1".into(),
    ]
}
