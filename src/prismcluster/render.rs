//! `fieldwise render` for PrismClusters: the graph's inputs taken from the documents of the files.
//!
//! Render shows the complete steady state: every enabled backend counts as ready, so every runner
//! appears. Credentials Secrets in the files are used as they are; generated credentials that do
//! not exist yet carry [`GENERATED_PLACEHOLDER`] instead of a random password.

use fieldwise_api::prism::{PatternBackend, PrismCluster};
use kube::{Resource, ResourceExt};

use super::{
    PrismClusterController,
    inputs::{Credentials, GENERATED_USERNAME, PrismInputs, WITH_CREDENTIALS, references_secret},
    names,
};
use crate::render::{DEFAULT_NAMESPACE, Documents, GENERATED_PLACEHOLDER, Offline};

impl Offline for PrismClusterController {
    fn offline_inputs(
        &self,
        cluster: &PrismCluster,
        documents: &Documents,
    ) -> Result<PrismInputs, String> {
        let namespace = cluster
            .namespace()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let (service_monitors, scaled_objects) = self.capabilities();
        let mut inputs = PrismInputs {
            service_monitors,
            scaled_objects,
            namespace_held_by: holder_of_namespace(cluster, &namespace, documents),
            admin_claim_exists: documents
                .get("v1", "PersistentVolumeClaim", &namespace, names::ADMIN_DATA)
                .is_some(),
            ready_backends: cluster.spec.backends.enabled().into_iter().collect(),
            // Every backend is ready, so no runner waits for one: which exist does not matter.
            existing_runners: Default::default(),
            ..PrismInputs::default()
        };
        for backend in WITH_CREDENTIALS {
            if let Some(credentials) = credentials(cluster, backend, &namespace, documents) {
                inputs.credentials.insert(backend, credentials);
            }
        }
        Ok(inputs)
    }
}

/// The first PrismCluster of the files in `namespace`, when it is another one: the files are
/// applied in order, so it is the oldest, the one the controller lets hold the namespace.
fn holder_of_namespace(
    cluster: &PrismCluster,
    namespace: &str,
    documents: &Documents,
) -> Option<String> {
    let (api_version, kind) = (PrismCluster::api_version(&()), PrismCluster::kind(&()));
    let first = documents.of_kind(&api_version, &kind, namespace).next()?;
    let first = first.pointer("/metadata/name")?.as_str()?;
    (first != cluster.name_any()).then(|| first.to_owned())
}

/// A backend's generated credentials as the controller would find them: kept from the Secret in
/// the files, or (when the backend wants them) the placeholder of new ones.
fn credentials(
    cluster: &PrismCluster,
    backend: PatternBackend,
    namespace: &str,
    documents: &Documents,
) -> Option<Credentials> {
    let secret = names::credentials_secret(backend);
    let mut data = documents
        .secrets(namespace)
        .remove(&secret)
        .unwrap_or_default();
    let kept = data.remove("username").zip(data.remove("password"));
    let wanted = cluster.spec.backends.is_enabled(backend) && !references_secret(cluster, backend);
    match kept {
        Some((username, password)) => Some(Credentials { username, password }),
        None if wanted => Some(Credentials {
            username: GENERATED_USERNAME.to_owned(),
            password: GENERATED_PLACEHOLDER.to_owned(),
        }),
        None => None,
    }
}
