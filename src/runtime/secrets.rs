//! Secrets: watched as metadata only, their data fetched for the resources that read them.
//!
//! The operator watches every Secret in its namespaces (a change to one a FeatureStore reads must
//! reconcile that FeatureStore), but most of them are none of its business: Helm release Secrets
//! (up to 1 MiB each), service-account tokens, TLS keys. Watched whole, their data would be most of
//! the operator's memory in a large cluster, and a restart would list all of it. So the watch asks
//! the API server for metadata only (`PartialObjectMetadata`), and the cache keeps just what
//! triggers and lookups need. The data of a Secret a FeatureStore reads is fetched with one GET per
//! version of the Secret and kept while that version is the cached one.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};

use super::queue::Synced;

/// A Secret's data as UTF-8 strings, by key. Secret values must never reach logs, spans, events
/// or status.
pub type SecretData = std::collections::BTreeMap<String, String>;

/// A Secret's `data` (and `stringData`, when read from a manifest) as UTF-8 strings. Non-UTF-8
/// values are left out: the controllers read these values as text.
pub fn secret_data(secret: &Secret) -> SecretData {
    let mut strings = SecretData::new();
    for (key, value) in secret.data.iter().flatten() {
        if let Ok(text) = String::from_utf8(value.0.clone()) {
            strings.insert(key.clone(), text);
        }
    }
    for (key, value) in secret.string_data.iter().flatten() {
        strings.insert(key.clone(), value.clone());
    }
    strings
}

/// Reads Secrets for the controllers: the shared metadata cache, and the data of the Secrets they
/// read, fetched once per version.
#[derive(Clone)]
pub struct SecretReader {
    client: kube::Client,
    cache: Store<SecretMeta>,
    synced: Synced,
    fetched: std::sync::Arc<FetchedSecrets>,
}

impl SecretReader {
    pub fn new(client: kube::Client, cache: Store<SecretMeta>, synced: Synced) -> Self {
        Self {
            client,
            cache,
            synced,
            fetched: std::sync::Arc::default(),
        }
    }

    /// The data of Secret `name` in `namespace`, `None` when there is no such Secret. Waits for
    /// the cache's initial list first: until then a Secret that exists would look missing (and a
    /// Ready resource would flip to Failed).
    pub async fn data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<SecretData>, kube::Error> {
        if self.synced.wait().await.is_err() {
            tracing::warn!("the Secret cache stopped before its initial list");
        }
        self.fetched
            .data(&self.client, &self.cache, namespace, name)
            .await
    }
}

/// A Secret as the cache holds it: its metadata, from a metadata-only watch.
pub type SecretMeta = PartialObjectMeta<Secret>;

/// Trims a Secret's metadata for the cache: name, namespace, uid and resourceVersion are all that
/// triggers and lookups read (annotations such as `kubectl apply`'s can be as large as the data).
pub fn trim_for_cache(secret: &mut SecretMeta) {
    let metadata = &mut secret.metadata;
    metadata.managed_fields = None;
    metadata.labels = None;
    metadata.annotations = None;
    metadata.owner_references = None;
    metadata.finalizers = None;
}

/// The data of the Secrets FeatureStores read, per `(namespace, name)` with the resourceVersion it
/// was fetched at.
#[derive(Default)]
pub struct FetchedSecrets {
    fetched: Mutex<HashMap<(String, String), Fetched>>,
}

struct Fetched {
    resource_version: String,
    data: SecretData,
}

impl FetchedSecrets {
    /// The data of Secret `name` in `namespace`, `None` when the cache shows no such Secret: kept
    /// from an earlier fetch while the cache shows the same version, else fetched.
    pub async fn data(
        &self,
        client: &kube::Client,
        cache: &Store<SecretMeta>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<SecretData>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(cached) = cache.get(&ObjectRef::new(name).within(namespace)) else {
            self.lock().remove(&key);
            return Ok(None);
        };
        let version = cached.resource_version().unwrap_or_default();
        if let Some(data) = self.kept(&key, &version) {
            return Ok(Some(data));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            return Ok(None);
        };
        // Kept for the cached version: the answer is at least as new, and the watch event of any
        // later version makes the next reader fetch again.
        Ok(Some(self.keep(key, version, secret_data(&live))))
    }

    fn kept(&self, key: &(String, String), version: &str) -> Option<SecretData> {
        let fetched = self.lock();
        let kept = fetched.get(key)?;
        (kept.resource_version == version).then(|| kept.data.clone())
    }

    fn keep(&self, key: (String, String), version: String, data: SecretData) -> SecretData {
        let fetched = Fetched {
            resource_version: version,
            data: data.clone(),
        };
        self.lock().insert(key, fetched);
        data
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Fetched>> {
        // A poisoned lock only means another reconcile panicked holding it; the map is still whole.
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_lookup_metadata_is_cached() {
        let mut secret: SecretMeta = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "creds", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "x"}, "finalizers": ["x/y"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{}}"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u2"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}
        }))
        .expect("a Secret's metadata");
        trim_for_cache(&mut secret);
        let kept = serde_json::to_value(&secret.metadata).expect("metadata");
        assert_eq!(
            kept,
            json!({"name": "creds", "namespace": "ns", "uid": "u1", "resourceVersion": "7"})
        );
    }

    #[test]
    fn fetched_data_is_kept_for_the_version_it_was_fetched_at() {
        let fetched = FetchedSecrets::default();
        let key = ("ns".to_owned(), "creds".to_owned());
        let data = SecretData::from([("postgres".to_owned(), "host: a".to_owned())]);
        fetched.keep(key.clone(), "7".to_owned(), data.clone());
        assert_eq!(fetched.kept(&key, "7"), Some(data));
        assert_eq!(fetched.kept(&key, "8"), None, "a newer version is fetched");
        let other = ("other".to_owned(), "creds".to_owned());
        assert_eq!(fetched.kept(&other, "7"), None, "per namespace");
    }
}
