//! Waiting until each component does its job, failing early (with its log) when a process exits.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Node, PersistentVolume, ServiceAccount},
    storage::v1::StorageClass,
};
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{Condition, await_condition},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    ClusterError, Zone,
    process::{Started, tail},
};

/// How often a wait looks whether a process has exited (the awaited condition itself is watched).
const EXIT_CHECK: Duration = Duration::from_millis(250);
/// The field manager the harness writes with.
const MANAGER: &str = "fieldwise-e2e-cluster";

fn not_ready(started: &Started, reason: String, waited_since: Instant) -> ClusterError {
    ClusterError::NotReady {
        component: started.name,
        waited: waited_since.elapsed(),
        reason,
        log: started.log.display().to_string(),
        tail: tail(&started.log, 15),
    }
}

/// Polls `ready` (a component's health endpoint, which cannot be watched) until it answers true.
async fn poll_until<F, Fut>(
    started: &mut Started,
    deadline: Instant,
    mut ready: F,
) -> Result<(), ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let since = Instant::now();
    loop {
        let last = match ready().await {
            Ok(()) => return Ok(()),
            Err(reason) => reason,
        };
        if let Some(exit) = started.exited() {
            return Err(not_ready(started, exit, since));
        }
        if Instant::now() > deadline {
            return Err(not_ready(started, last, since));
        }
        tokio::time::sleep(EXIT_CHECK).await;
    }
}

pub async fn wait_for_etcd(
    etcd: &mut Started,
    port: u16,
    deadline: Instant,
) -> Result<(), ClusterError> {
    poll_until(etcd, deadline, || etcd_health(port)).await
}

/// etcd's `/health` over plain HTTP/1.0 (the harness has no HTTP client for non-Kubernetes endpoints).
async fn etcd_health(port: u16) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|error| format!("connecting: {error}"))?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .map_err(|error| format!("asking /health: {error}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|error| format!("reading /health: {error}"))?;
    if answer.contains("\"health\":\"true\"") {
        Ok(())
    } else {
        Err(format!("/health answered {answer:?}"))
    }
}

/// Waits until kube-apiserver's `/readyz` answers `ok` and returns a client for it.
pub async fn wait_for_apiserver(
    apiserver: &mut Started,
    kubeconfig: &Path,
    deadline: Instant,
) -> Result<Client, ClusterError> {
    let client = client_for(kubeconfig).await?;
    let probe = client.clone();
    poll_until(apiserver, deadline, move || {
        let probe = probe.clone();
        async move {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|error| error.to_string())?;
            match probe.request_text(request).await {
                Ok(text) if text.trim() == "ok" => Ok(()),
                Ok(text) => Err(format!("/readyz answered {text:?}")),
                Err(error) => Err(format!("/readyz: {error}")),
            }
        }
    })
    .await?;
    Ok(client)
}

async fn client_for(kubeconfig: &Path) -> Result<Client, ClusterError> {
    let setup = |error: &dyn std::fmt::Display| {
        ClusterError::Setup(format!("{}: {error}", kubeconfig.display()))
    };
    let kubeconfig_text = Kubeconfig::read_from(kubeconfig).map_err(|error| setup(&error))?;
    let config = Config::from_custom_kubeconfig(kubeconfig_text, &KubeConfigOptions::default())
        .await
        .map_err(|error| setup(&error))?;
    Client::try_from(config).map_err(|error| setup(&error))
}

/// Registers the fake nodes kwok manages, one per zone, with room for `pods` pods each.
pub async fn create_nodes(client: &Client, zones: &[Zone], pods: u32) -> Result<(), ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    for Zone { node, zone } in zones {
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": node,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "type": "kwok",
                    "topology.kubernetes.io/zone": zone,
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": pods.to_string()},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": pods.to_string()},
            },
        });
        nodes
            .patch(
                node,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|error| ClusterError::Setup(format!("registering node {node}: {error}")))?;
    }
    Ok(())
}

/// Persistent volumes without a provisioner: a default StorageClass `standard` (as kind names its own)
/// binding claims at once, and a pool of hostPath volumes for the claims to bind to (kwok's pods never
/// touch them). Volumes are retained after use, so the pool is sized for a whole test run.
pub async fn create_storage(client: &Client, volumes: usize) -> Result<(), ClusterError> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    let class = serde_json::json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Retain",
    });
    classes
        .patch(
            "standard",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&class),
        )
        .await
        .map_err(|error| ClusterError::Setup(format!("creating StorageClass standard: {error}")))?;
    let pool: Api<PersistentVolume> = Api::all(client.clone());
    for index in 0..volumes {
        let name = format!("e2e-volume-{index:03}");
        let volume = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "100Gi"},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "standard",
                "hostPath": {"path": format!("/tmp/fieldwise-e2e-volumes/{name}")},
            },
        });
        pool.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&volume),
        )
        .await
        .map_err(|error| {
            ClusterError::Setup(format!("creating PersistentVolume {name}: {error}"))
        })?;
    }
    Ok(())
}

/// Watches `name` until `condition` holds, failing when any running process exits or time runs out
/// (with the log of `component`, the one expected to make the condition true).
async fn await_object<K>(
    api: Api<K>,
    name: &str,
    condition: impl Condition<K>,
    component: &'static str,
    running: &mut [&mut Started],
    deadline: Instant,
) -> Result<(), ClusterError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let since = Instant::now();
    let watched = await_condition(api, name, condition);
    tokio::pin!(watched);
    loop {
        tokio::select! {
            result = &mut watched => {
                return result.map(drop).map_err(|error| ClusterError::Setup(format!(
                    "watching {name} for {component}: {error}")));
            }
            () = tokio::time::sleep(EXIT_CHECK) => {
                for started in running.iter_mut() {
                    if let Some(exit) = started.exited() {
                        return Err(not_ready(started, exit, since));
                    }
                }
                if Instant::now() > deadline {
                    let expected = running.iter().find(|started| started.name == component);
                    let reason = format!("{name} not as expected");
                    return Err(match expected {
                        Some(started) => not_ready(started, reason, since),
                        None => ClusterError::Setup(reason),
                    });
                }
            }
        }
    }
}

/// Waits until `component` holds its leader-election Lease in kube-system (its controllers then run).
pub async fn wait_for_leader(
    client: &Client,
    component: &'static str,
    running: &mut [&mut Started],
    deadline: Instant,
) -> Result<(), ClusterError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let held = |lease: Option<&Lease>| {
        lease
            .and_then(|lease| lease.spec.as_ref())
            .and_then(|spec| spec.holder_identity.as_deref())
            .is_some_and(|holder| !holder.is_empty())
    };
    await_object(leases, component, held, component, running, deadline).await
}

/// Waits until every fake node reports Ready (kwok runs them).
pub async fn wait_for_nodes(
    client: &Client,
    zones: &[Zone],
    running: &mut [&mut Started],
    deadline: Instant,
) -> Result<(), ClusterError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = |node: Option<&Node>| {
        node.and_then(|node| node.status.as_ref())
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True")
            })
    };
    for zone in zones {
        await_object(nodes.clone(), &zone.node, ready, "kwok", running, deadline).await?;
    }
    Ok(())
}

/// Waits until the service-account controller has created `default` in `default`: pods can be created.
pub async fn wait_for_default_service_account(
    client: &Client,
    running: &mut [&mut Started],
    deadline: Instant,
) -> Result<(), ClusterError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let exists = |account: Option<&ServiceAccount>| account.is_some();
    await_object(
        accounts,
        "default",
        exists,
        "kube-controller-manager",
        running,
        deadline,
    )
    .await
}
