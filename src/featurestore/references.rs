//! The objects a FeatureStore refers to by name: what its graph reads, and what must trigger a reconcile
//! when it changes.

use std::collections::BTreeSet;

use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec};

/// Names of the Secrets (in the FeatureStore's namespace) whose data the graph reads.
pub fn referenced_secrets(spec: &FeatureStoreSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Some(services) = &spec.services {
        let online = services
            .online_store
            .as_ref()
            .and_then(|o| o.persistence.as_ref())
            .and_then(|p| p.store.as_ref());
        let offline = services
            .offline_store
            .as_ref()
            .and_then(|o| o.persistence.as_ref())
            .and_then(|p| p.store.as_ref());
        let registry = services
            .registry
            .as_ref()
            .and_then(|r| r.local.as_ref())
            .and_then(|l| l.persistence.as_ref())
            .and_then(|p| p.store.as_ref());
        names.extend(online.map(|s| s.secret_ref.name.clone()));
        names.extend(offline.map(|s| s.secret_ref.name.clone()));
        names.extend(registry.map(|s| s.secret_ref.name.clone()));
    }
    let oidc = spec.authz.as_ref().and_then(|a| a.oidc.as_ref());
    names.extend(
        oidc.and_then(|o| o.secret_ref.as_ref())
            .map(|r| r.name.clone()),
    );
    if let Some(lineage) = &spec.openlineage {
        names.extend(lineage.api_key_secret_ref.as_ref().map(|r| r.name.clone()));
        if let Some(consumer) = &lineage.consumer {
            names.extend(consumer.api_key_secret_ref.as_ref().map(|r| r.name.clone()));
            names.extend(
                consumer
                    .connection_string_secret_ref
                    .as_ref()
                    .map(|r| r.name.clone()),
            );
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// The custom Roles (`authz.kubernetes.roles`) the FeatureStore wants: with Kubernetes authorization
/// only, each name once. FeatureStores of one namespace that list the same name share that Role.
pub fn custom_roles(spec: &FeatureStoreSpec) -> BTreeSet<String> {
    if !matches!(
        crate::featurestore::config::authz_mode(spec),
        crate::featurestore::config::AuthzMode::Kubernetes
    ) {
        return BTreeSet::new();
    }
    let roles = spec.authz.as_ref().and_then(|a| a.kubernetes.as_ref());
    let mut names: BTreeSet<String> = roles
        .and_then(|k| k.roles.clone())
        .into_iter()
        .flatten()
        .collect();
    names.retain(|name| !name.is_empty());
    names
}

/// Names of the ConfigMaps (in the FeatureStore's namespace) whose data the graph reads.
pub fn referenced_config_maps(spec: &FeatureStoreSpec) -> BTreeSet<String> {
    let engine = spec
        .batch_engine
        .as_ref()
        .and_then(|b| b.config_map_ref.as_ref());
    engine
        .map(|r| r.name.clone())
        .into_iter()
        .filter(|name| !name.is_empty())
        .collect()
}

/// The `(namespace, name)` of the FeatureStore whose registry this one uses, if any.
pub fn referenced_feature_store(fs: &FeatureStore) -> Option<(String, String)> {
    let reference = fs
        .spec
        .services
        .as_ref()?
        .registry
        .as_ref()?
        .remote
        .as_ref()?
        .feast_ref
        .as_ref()?;
    let own_namespace = fs
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    Some((
        reference.namespace.clone().unwrap_or(own_namespace),
        reference.name.clone(),
    ))
}
