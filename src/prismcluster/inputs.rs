//! What a PrismCluster's graph reads besides the PrismCluster: the credentials fieldwise generated
//! earlier (generated here, once, when missing), which backends are ready, which runners exist,
//! and whether another PrismCluster already holds the namespace.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use fieldwise_api::prism::{PatternBackend, PrismCluster};
use kube::ResourceExt;

use super::names;
use crate::runtime::{ReconcileError, Shared, Workloads};

/// The inputs of a PrismCluster's graph.
#[derive(Clone, Debug, Default)]
pub struct PrismInputs {
    /// Generated credentials per backend that uses them (postgres, minio) and has no
    /// `credentialsSecretRef`: kept from the Secret fieldwise made, or new random values.
    pub credentials: BTreeMap<PatternBackend, Credentials>,
    /// Backends whose StatefulSet is available.
    pub ready_backends: BTreeSet<PatternBackend>,
    /// Runner workloads that exist (a runner, once made, stays even while a backend restarts).
    pub existing_runners: BTreeSet<String>,
    /// Whether the admin's sqlite claim exists (it is kept, never pruned, while the PrismCluster
    /// lives: it holds the admin's data).
    pub admin_claim_exists: bool,
    /// The PrismCluster that holds this namespace, when it is another one.
    pub namespace_held_by: Option<String>,
    pub service_monitors: bool,
    pub scaled_objects: bool,
}

/// A backend's user name and password. Never logged: `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

/// The user name of generated credentials.
pub const GENERATED_USERNAME: &str = "prism";

/// Backends whose credentials fieldwise generates unless a Secret is referenced.
pub const WITH_CREDENTIALS: [PatternBackend; 2] = [PatternBackend::Postgres, PatternBackend::Minio];

/// Reads the inputs (caches only, no request).
pub fn read(
    cluster: &PrismCluster,
    shared: &Shared<super::PrismClusterController>,
    capabilities: (bool, bool),
) -> Result<PrismInputs, ReconcileError> {
    let namespace = cluster.namespace();
    let ns = namespace.as_deref();
    let engine = &shared.engine;
    let workloads = Workloads::new(engine);
    let mut inputs = PrismInputs {
        service_monitors: capabilities.0,
        scaled_objects: capabilities.1,
        namespace_held_by: holder_of_namespace(cluster, &shared.owners),
        admin_claim_exists: engine.is_cached("v1", "PersistentVolumeClaim", ns, names::ADMIN_DATA),
        ..PrismInputs::default()
    };
    for backend in PatternBackend::ALL {
        if backend == PatternBackend::Sqlite || !cluster.spec.backends.is_enabled(backend) {
            continue;
        }
        if workloads
            .stateful_set(ns, backend.as_str())
            .is_some_and(|w| w.available)
        {
            inputs.ready_backends.insert(backend);
        }
    }
    for backend in WITH_CREDENTIALS {
        let secret = names::credentials_secret(backend);
        let kept = engine
            .cached("v1", "Secret", ns, &secret)
            .and_then(|object| stored_credentials(&object.data));
        let wanted =
            cluster.spec.backends.is_enabled(backend) && !references_secret(cluster, backend);
        match kept {
            Some(kept) => {
                inputs.credentials.insert(backend, kept);
            }
            None if wanted => {
                inputs.credentials.insert(backend, generate()?);
            }
            None => {}
        }
    }
    for pattern in &cluster.spec.patterns {
        let name = pattern.runner_name();
        let exists = ["Deployment", "StatefulSet"]
            .iter()
            .any(|kind| engine.is_cached("apps/v1", kind, ns, &name));
        if exists {
            inputs.existing_runners.insert(name);
        }
    }
    Ok(inputs)
}

/// Whether the backend's credentials come from a Secret the user names.
pub fn references_secret(cluster: &PrismCluster, backend: PatternBackend) -> bool {
    let backends = &cluster.spec.backends;
    match backend {
        PatternBackend::Postgres => backends
            .postgres
            .as_ref()
            .is_some_and(|p| p.credentials_secret_ref.is_some()),
        PatternBackend::Minio => backends
            .minio
            .as_ref()
            .is_some_and(|m| m.credentials_secret_ref.is_some()),
        _ => false,
    }
}

/// The oldest other PrismCluster in the namespace (by creation time, then name), if it is older
/// than this one: the ADR's names are per namespace, so only one can own them.
fn holder_of_namespace(
    cluster: &PrismCluster,
    owners: &kube::runtime::reflector::Store<PrismCluster>,
) -> Option<String> {
    let namespace = cluster.namespace();
    let key = |c: &PrismCluster| (c.creation_timestamp().map(|t| t.0), c.name_any());
    let mine = key(cluster);
    owners
        .state()
        .iter()
        .filter(|other| other.namespace() == namespace && other.uid() != cluster.uid())
        .filter(|other| other.metadata.deletion_timestamp.is_none())
        .map(|other| key(other))
        .filter(|other| *other < mine)
        .min()
        .map(|(_, name)| name)
}

fn stored_credentials(data: &serde_json::Value) -> Option<Credentials> {
    let field = |key: &str| {
        let encoded = data.get("data")?.get(key)?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    Some(Credentials {
        username: field("username")?,
        password: field("password")?,
    })
}

/// New credentials: the user [`GENERATED_USERNAME`] and 24 random bytes as a URL-safe password.
fn generate() -> Result<Credentials, ReconcileError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| {
        ReconcileError::Apply(fieldwise_apply::ApplyError::InvalidObject {
            object: "generated credentials".to_owned(),
            reason: format!("no random source: {error}"),
        })
    })?;
    Ok(Credentials {
        username: GENERATED_USERNAME.to_owned(),
        password: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    })
}
