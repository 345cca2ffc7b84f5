//! `fieldwise render` for FeatureStores: the graph's inputs taken from the documents of the files.
//!
//! Rendering itself is shared by every controller (`crate::render`); its entry points are also
//! here, where the scenarios and the benchmark have always found them.

use std::collections::BTreeMap;

use fieldwise_api::v1::FeatureStore;
use kube::ResourceExt;

use super::{
    FeatureStoreController,
    context::{CoOwner, ConfigHashKey, GraphContext},
    graph::{HASH_KEY_SECRET_KEY, config_secret_name},
    references::custom_roles,
};
pub use crate::render::{
    DEFAULT_NAMESPACE, Input, OFFLINE_UID, RenderError, kubernetes_yaml, render,
};
use crate::render::{Documents, Offline};

impl Offline for FeatureStoreController {
    /// Secrets and ConfigMaps of the FeatureStore's namespace and every FeatureStore of the files
    /// (a remote registry may name one in another namespace).
    fn offline_inputs(
        &self,
        fs: &FeatureStore,
        documents: &Documents,
    ) -> Result<GraphContext, String> {
        let namespace = fs
            .namespace()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        // The key the controller would find in the config Secret, when the files hold it; else
        // the placeholder (rendering stays deterministic and shows no real key).
        let kept_key = documents
            .secrets(&namespace)
            .remove(&config_secret_name(&fs.name_any()))
            .and_then(|mut data| data.remove(HASH_KEY_SECRET_KEY))
            .map(ConfigHashKey::new);
        let role_sharers = offline_role_sharers(fs, &namespace, documents);
        Ok(GraphContext {
            config_hash_key: kept_key,
            role_sharers,
            secrets: documents.secrets(&namespace),
            config_maps: documents.config_maps(&namespace),
            feature_stores: documents.resources::<FeatureStore>(),
            ..self.settings_context()
        })
    }
}

/// The other FeatureStores of the files in `fs`'s namespace that want its custom Roles (as the
/// controller finds them in its cache).
fn offline_role_sharers(
    fs: &FeatureStore,
    namespace: &str,
    documents: &Documents,
) -> BTreeMap<String, Vec<CoOwner>> {
    let mut sharers: BTreeMap<String, Vec<CoOwner>> = BTreeMap::new();
    let wanted = custom_roles(&fs.spec);
    for ((other_namespace, name), other) in documents.resources::<FeatureStore>() {
        if other_namespace != namespace || name == fs.name_any() {
            continue;
        }
        for role in custom_roles(&other.spec).intersection(&wanted) {
            sharers.entry(role.clone()).or_default().push(CoOwner {
                name: name.clone(),
                uid: other.uid().unwrap_or_else(|| OFFLINE_UID.to_owned()),
            });
        }
    }
    sharers
}
