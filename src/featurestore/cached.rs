//! The controller's copy of a FeatureStore, kept small: the reflector holds one per FeatureStore for
//! the life of the process, and a typed `FeatureStore` is ~12 KB before any of its text (its spec and
//! `status.applied` are both full `FeatureStoreSpec`s of nested options, inline).
//!
//! Typed: the metadata kube's controller, the finalizer helper and the triggers read (name,
//! namespace, uid, resourceVersion, generation, finalizers, deletion timestamp), and the names the
//! triggers look FeatureStores up by (the Secrets and the remote-registry FeatureStore it refers to).
//! The whole FeatureStore, with only fieldwise's managedFields entries (what the status comparison
//! reads), is kept as compressed JSON and parsed once per reconcile.

use std::{borrow::Cow, sync::Arc};

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::{CompressedJson, keep_own_managed_fields};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, core::NamespaceResourceScope};
use serde::{Deserialize, Deserializer, Serialize, Serializer, ser::Error as _};

use super::references::{custom_roles, referenced_feature_store, referenced_secrets};

/// One FeatureStore in the controller's cache (see the module documentation).
#[derive(Clone, Debug)]
pub struct CachedFeatureStore {
    /// The lookup part of the metadata.
    pub metadata: ObjectMeta,
    /// The Secrets (in its namespace) its graph reads.
    secrets: Arc<[Box<str>]>,
    /// The FeatureStore whose registry it uses, as (namespace, name).
    registry: Option<Arc<(String, String)>>,
    /// The custom Roles it wants (shared with the FeatureStores of its namespace that want them
    /// too); `None` for the many that list none.
    custom_roles: Option<Arc<[Box<str>]>>,
    /// The FeatureStore itself; shared by the copies the reflector and controller make.
    whole: Arc<CompressedJson>,
}

impl CachedFeatureStore {
    /// Compacts a FeatureStore as the API served it.
    pub fn new(mut fs: FeatureStore) -> Self {
        keep_own_managed_fields(&mut fs.metadata);
        let secrets = referenced_secrets(&fs.spec)
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        let registry = referenced_feature_store(&fs).map(Arc::new);
        let roles = custom_roles(&fs.spec);
        let custom_roles =
            (!roles.is_empty()).then(|| roles.into_iter().map(String::into_boxed_str).collect());
        // Serializing a typed FeatureStore cannot fail (string keys, finite numbers); an empty text
        // would surface as a parse error in `feature_store`, never silently.
        let text = serde_json::to_string(&fs).unwrap_or_default();
        let source = fs.metadata;
        let metadata = ObjectMeta {
            name: source.name,
            namespace: source.namespace,
            uid: source.uid,
            resource_version: source.resource_version,
            generation: source.generation,
            finalizers: source.finalizers,
            deletion_timestamp: source.deletion_timestamp,
            ..ObjectMeta::default()
        };
        CachedFeatureStore {
            metadata,
            secrets,
            registry,
            custom_roles,
            whole: Arc::new(CompressedJson::of(&text)),
        }
    }

    /// The FeatureStore, parsed again.
    pub fn feature_store(&self) -> Result<FeatureStore, String> {
        let text = self
            .whole
            .text()
            .ok_or_else(|| "the cached FeatureStore could not be decompressed".to_owned())?;
        serde_json::from_slice(&text)
            .map_err(|e| format!("the cached FeatureStore could not be parsed: {e}"))
    }

    /// Whether its graph reads the Secret with this name (in its namespace).
    pub fn reads_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| **s == *name)
    }

    /// The FeatureStore whose registry it uses, as (namespace, name).
    pub fn registry_feature_store(&self) -> Option<&(String, String)> {
        self.registry.as_deref()
    }

    /// Whether it wants the custom Role with this name.
    pub fn wants_role(&self, name: &str) -> bool {
        self.custom_roles
            .as_deref()
            .is_some_and(|roles| roles.iter().any(|r| **r == *name))
    }
}

impl Resource for CachedFeatureStore {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        FeatureStore::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        FeatureStore::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        FeatureStore::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        FeatureStore::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Read from the API (watch events, the finalizer helper's patch responses) as a FeatureStore.
impl<'de> Deserialize<'de> for CachedFeatureStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FeatureStore::deserialize(deserializer).map(Self::new)
    }
}

/// Written as the FeatureStore it holds.
impl Serialize for CachedFeatureStore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fs = self.feature_store().map_err(S::Error::custom)?;
        fs.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn served() -> serde_json::Value {
        json!({
            "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {
                "name": "sample", "namespace": "ns", "uid": "u1", "resourceVersion": "9",
                "generation": 2, "finalizers": ["feast.dev/fieldwise-cleanup"],
                "labels": {"team": "a"},
                "managedFields": [
                    {"manager": "kubectl", "operation": "Apply", "apiVersion": "feast.dev/v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:feastProject": {}}}},
                    {"manager": "fieldwise", "operation": "Apply", "apiVersion": "feast.dev/v1",
                     "subresource": "status", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:status": {"f:phase": {}}}}
                ]
            },
            "spec": {
                "feastProject": "sample",
                "services": {
                    "onlineStore": {"persistence": {"store": {"type": "redis",
                        "secretRef": {"name": "redis-creds"}}}},
                    "registry": {"remote": {"feastRef": {"name": "central", "namespace": "shared"}}}
                }
            },
            "status": {"phase": "Ready"}
        })
    }

    #[test]
    fn a_cached_feature_store_keeps_lookups_typed_and_the_rest_whole() {
        let fs: FeatureStore = serde_json::from_value(served()).expect("FeatureStore");
        let cached: CachedFeatureStore = serde_json::from_value(served()).expect("cached");
        assert_eq!(cached.metadata.name.as_deref(), Some("sample"));
        assert_eq!(cached.metadata.generation, Some(2));
        assert_eq!(cached.metadata.finalizers, fs.metadata.finalizers);
        assert!(cached.metadata.labels.is_none() && cached.metadata.managed_fields.is_none());
        assert!(cached.reads_secret("redis-creds") && !cached.reads_secret("other"));
        assert_eq!(
            cached.registry_feature_store(),
            Some(&("shared".to_owned(), "central".to_owned()))
        );

        let restored = cached.feature_store().expect("restored");
        assert_eq!(restored.spec, fs.spec);
        assert_eq!(restored.status, fs.status);
        assert_eq!(restored.metadata.labels, fs.metadata.labels);
        let managers: Vec<_> = restored
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|e| e.manager.as_deref())
            .collect();
        assert_eq!(managers, ["fieldwise"], "only our entries are kept");
        let written = serde_json::to_value(&cached).expect("serialize");
        assert_eq!(written["spec"], served()["spec"]);
    }
}
