//! The Secret cache holds the data of referenced Secrets only.
//!
//! The operator watches every Secret in its namespaces (a change to one a FeatureStore reads must
//! reconcile that FeatureStore), but most of them are none of its business: Helm release Secrets,
//! service-account tokens, TLS keys, often with a `kubectl apply` annotation repeating the whole
//! data. Cached whole they could be most of the operator's memory in a large cluster. So each
//! Secret is cached without annotations, labels and managedFields, and with its data only while a
//! cached FeatureStore reads it. A FeatureStore that starts reading a Secret cached without data
//! gets it with one GET; the answer is kept for that version of the Secret, and the Secret's next
//! watch event brings its data into the cache.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};

use super::{
    cached::CachedFeatureStore,
    context::{SecretData, secret_data},
};

/// Marks a cached Secret whose data was left out. Set on the operator's in-memory copy only; the
/// operator never writes Secrets it did not create.
const DATA_OMITTED: &str = "fieldwise.dev/data-omitted";

/// Trims a Secret from the watch for the cache: only what triggers and lookups need, plus the data
/// when a cached FeatureStore reads it.
pub fn trim_for_cache(secret: &mut Secret, feature_stores: &Store<CachedFeatureStore>) {
    let metadata = &mut secret.metadata;
    metadata.managed_fields = None;
    metadata.labels = None;
    metadata.annotations = None;
    if !is_read(feature_stores, secret) {
        secret.data = None;
        secret.string_data = None;
        secret.metadata.annotations = Some([(DATA_OMITTED.to_owned(), "true".to_owned())].into());
    }
}

/// Whether a cached FeatureStore in the Secret's namespace reads it.
fn is_read(feature_stores: &Store<CachedFeatureStore>, secret: &Secret) -> bool {
    let namespace = secret.namespace();
    let name = secret.name_any();
    feature_stores
        .state()
        .iter()
        .any(|fs| fs.namespace() == namespace && fs.reads_secret(&name))
}

fn data_omitted(secret: &Secret) -> bool {
    secret.annotations().contains_key(DATA_OMITTED)
}

/// The data of Secrets cached without it, fetched when a FeatureStore needed them, per
/// `(namespace, name)` with the cached resourceVersion it was fetched for.
#[derive(Default)]
pub struct FetchedSecrets {
    fetched: Mutex<HashMap<(String, String), (String, SecretData)>>,
}

impl FetchedSecrets {
    /// The data of Secret `name` in `namespace`: from the cache, or fetched (once per version) when
    /// the cache holds the Secret without its data. `None` when the Secret does not exist.
    pub async fn data(
        &self,
        client: &kube::Client,
        cache: &Store<Secret>,
        namespace: &str,
        name: &str,
    ) -> Result<Option<SecretData>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let cached = match cache.get(&ObjectRef::new(name).within(namespace)) {
            Some(secret) if data_omitted(&secret) => secret,
            // Absent, or cached with its data: anything fetched before is stale.
            other => {
                self.forget(&key);
                return Ok(other.map(|secret| secret_data(&secret)));
            }
        };
        let version = cached.resource_version().unwrap_or_default();
        if let Some(data) = self.kept(&key, &version) {
            return Ok(Some(data));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            return Ok(None);
        };
        let data = secret_data(&live);
        self.lock().insert(key, (version, data.clone()));
        Ok(Some(data))
    }

    fn kept(&self, key: &(String, String), version: &str) -> Option<SecretData> {
        let fetched = self.lock();
        let (kept_version, data) = fetched.get(key)?;
        (kept_version == version).then(|| data.clone())
    }

    fn forget(&self, key: &(String, String)) {
        let mut fetched = self.lock();
        if !fetched.is_empty() {
            fetched.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, SecretData)>> {
        // A poisoned lock only means another reconcile panicked holding it; the map is still whole.
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use fieldwise_api::v1::FeatureStore;
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::*;

    /// A store with one FeatureStore in `ns` whose online store reads the Secret `read`.
    fn feature_stores() -> Store<CachedFeatureStore> {
        let fs: FeatureStore = serde_json::from_value(json!({
            "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": "sample", "namespace": "ns", "uid": "u1"},
            "spec": {"feastProject": "sample", "services": {"onlineStore": {"persistence": {
                "store": {"type": "redis", "secretRef": {"name": "read"}}}}}}
        }))
        .expect("a FeatureStore");
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(CachedFeatureStore::new(fs)));
        reader
    }

    fn secret(namespace: &str, name: &str) -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7",
                "labels": {"app": "x"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":\"...\"}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "data": {"redis": "aG9zdDogcmVkaXM="}
        }))
        .expect("a Secret")
    }

    #[test]
    fn only_secrets_a_feature_store_reads_keep_their_data() {
        let stores = feature_stores();

        let mut read = secret("ns", "read");
        trim_for_cache(&mut read, &stores);
        assert!(!data_omitted(&read));
        assert_eq!(secret_data(&read)["redis"], "host: redis");

        // Same name in another namespace, or another name: no FeatureStore there reads it.
        for (namespace, name) in [("other", "read"), ("ns", "unread")] {
            let mut unread = secret(namespace, name);
            trim_for_cache(&mut unread, &stores);
            assert!(data_omitted(&unread), "{namespace}/{name}");
            assert!(unread.data.is_none() && unread.string_data.is_none());
            assert_eq!(unread.resource_version().as_deref(), Some("7"));
        }
    }

    #[test]
    fn nothing_but_lookups_and_read_data_is_cached() {
        let mut read = secret("ns", "read");
        trim_for_cache(&mut read, &feature_stores());
        let metadata = &read.metadata;
        assert!(metadata.labels.is_none() && metadata.managed_fields.is_none());
        assert!(
            metadata.annotations.is_none(),
            "the last-applied annotation repeats the data"
        );
        assert_eq!(read.name_any(), "read");
    }
}
