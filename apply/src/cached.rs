//! The engine's copy of a cached object, kept small (kube-rs memory trap): with 1000 owners and their
//! ~15 children each, the caches are most of the operator's memory.
//!
//! The typed metadata keeps what the caches and triggers look objects up by (name, namespace, uid,
//! resourceVersion, the lookup labels, owner references, deletion timestamp). Everything else, the
//! body (spec, status, data...) with the other labels, the annotations and the managedFields, is kept
//! as zstd-compressed JSON text, and parsed only when the engine compares a desired object with the
//! live one, which the remembered comparisons (`crate::fingerprint`) make rare at steady state.
//! Parsed, every key of those trees was a map entry of its own, many times the size of its text.
//!
//! Dropped altogether: the managedFields entries of status writers other than us, and the
//! last-applied annotation. Entries of other managers on the main resource (and `/scale`) stay: they
//! tell which manager changed a field we own (drift).

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::{Resource, api::DynamicObject, core::DynamicResourceScope, discovery::ApiResource};
use serde_json::{Map, Value};

use crate::{HANDOVER_MANAGER, MANAGER, labels};

/// zstd level: fast to compress (every watch event is) and still ~2.5x on Kubernetes JSON.
const COMPRESSION_LEVEL: i32 = 3;

/// The labels a cached object keeps typed: those its cache and triggers look it up by.
const KEPT_LABELS: [&str; 4] = [
    labels::MANAGED_BY,
    labels::OWNER_UID,
    labels::INSTANCE,
    labels::OWNER_NAMESPACE,
];

/// One object in the engine's caches.
#[derive(Clone, Debug)]
pub struct CachedObject {
    /// The lookup part of the metadata (see the module documentation).
    pub metadata: ObjectMeta,
    /// The rest, compressed; shared by the copies the reflector makes.
    rest: Arc<Compressed>,
}

#[derive(Debug)]
enum Compressed {
    Zstd {
        len: usize,
        bytes: Box<[u8]>,
    },
    /// Kept as text if compression ever failed (it cannot for in-memory buffers).
    Plain(Box<str>),
}

impl CachedObject {
    /// Compacts an object as the API served it.
    pub fn new(mut obj: DynamicObject) -> Self {
        let mut metadata = std::mem::take(&mut obj.metadata);
        let mut rest = match std::mem::take(&mut obj.data) {
            Value::Object(body) => body,
            _ => Map::new(),
        };
        if let Some(types) = obj.types {
            rest.insert("apiVersion".into(), types.api_version.into());
            rest.insert("kind".into(), types.kind.into());
        }
        let hidden = hide_metadata(&mut metadata);
        if !hidden.is_empty() {
            rest.insert("metadata".into(), Value::Object(hidden));
        }
        let text = Value::Object(rest).to_string();
        let compressed = match zstd::bulk::compress(text.as_bytes(), COMPRESSION_LEVEL) {
            Ok(bytes) => Compressed::Zstd {
                len: text.len(),
                bytes: bytes.into_boxed_slice(),
            },
            Err(_) => Compressed::Plain(text.into_boxed_str()),
        };
        CachedObject {
            metadata,
            rest: Arc::new(compressed),
        }
    }

    /// The object as the API served it (minus what the cache drops), for comparisons: the
    /// managedFields' FieldsV1 as trees.
    pub fn to_value(&self) -> Option<Value> {
        let mut live = self.rest_value()?;
        let hidden = match live.as_object_mut()?.remove("metadata") {
            Some(Value::Object(hidden)) => hidden,
            _ => Map::new(),
        };
        let mut metadata = serde_json::to_value(&self.metadata).ok()?;
        let metadata_map = metadata.as_object_mut()?;
        for (key, value) in hidden {
            match (metadata_map.get_mut(&key), value) {
                // Labels: the kept ones are typed, the others were hidden.
                (Some(Value::Object(typed)), Value::Object(more)) => typed.extend(more),
                (_, value) => {
                    metadata_map.insert(key, value);
                }
            }
        }
        live.as_object_mut()?.insert("metadata".into(), metadata);
        Some(live)
    }

    /// The object as a `DynamicObject`, every field restored.
    pub fn to_dynamic(&self) -> Option<DynamicObject> {
        serde_json::from_value(self.to_value()?).ok()
    }

    fn rest_value(&self) -> Option<Value> {
        match self.rest.as_ref() {
            Compressed::Zstd { len, bytes } => {
                let text = zstd::bulk::decompress(bytes, *len).ok()?;
                serde_json::from_slice(&text).ok()
            }
            Compressed::Plain(text) => serde_json::from_str(text).ok(),
        }
    }
}

/// Takes out of `metadata` what the typed copy does not keep; returns what is kept with the text.
fn hide_metadata(metadata: &mut ObjectMeta) -> Map<String, Value> {
    let mut hidden = Map::new();
    if let Some(labels) = metadata.labels.as_mut() {
        let (kept, other): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(labels)
            .into_iter()
            .partition(|(key, _)| KEPT_LABELS.contains(&key.as_str()));
        *labels = kept;
        if !other.is_empty() {
            hidden.insert("labels".into(), json_of(&other));
        }
    }
    if let Some(mut entries) = metadata.managed_fields.take() {
        entries.retain(|e| {
            is_ours(e)
                || e.subresource
                    .as_deref()
                    .is_none_or(|s| s.is_empty() || s == "scale")
        });
        hidden.insert("managedFields".into(), json_of(&entries));
    }
    if let Some(mut annotations) = metadata.annotations.take() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if !annotations.is_empty() {
            hidden.insert("annotations".into(), json_of(&annotations));
        }
    }
    hidden
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    // Serializing typed Kubernetes metadata into a Value cannot fail (string keys, no floats).
    serde_json::to_value(value).unwrap_or_default()
}

pub(crate) fn is_ours(entry: &ManagedFieldsEntry) -> bool {
    matches!(
        entry.manager.as_deref(),
        Some(MANAGER) | Some(HANDOVER_MANAGER)
    )
}

impl Resource for CachedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use kube::{ResourceExt, api::TypeMeta};
    use serde_json::json;

    use super::*;

    fn served_json() -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "web", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {
                    "app.kubernetes.io/managed-by": "fieldwise",
                    "app.kubernetes.io/instance": "store",
                    "app.kubernetes.io/component": "online",
                    "fieldwise.dev/owner-uid": "owner-1",
                    "feast.dev/name": "store"
                },
                "annotations": {"note": "kept", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [
                    {"manager": "fieldwise", "operation": "Apply", "apiVersion": "v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}},
                    {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}
                ]
            },
            "data": {"a": "1"}
        })
    }

    #[test]
    fn a_cached_object_keeps_only_lookup_metadata_typed_and_restores_the_rest() {
        let served: DynamicObject = serde_json::from_value(served_json()).expect("object");
        let cached = CachedObject::new(served);
        let typed: Vec<&str> = cached.labels().keys().map(String::as_str).collect();
        assert_eq!(
            typed,
            [
                "app.kubernetes.io/instance",
                "app.kubernetes.io/managed-by",
                "fieldwise.dev/owner-uid"
            ]
        );
        assert!(cached.metadata.managed_fields.is_none());
        assert!(cached.metadata.annotations.is_none());

        let mut expected = served_json();
        expected["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .remove("kubectl.kubernetes.io/last-applied-configuration");
        expected["metadata"]["managedFields"]
            .as_array_mut()
            .expect("entries")
            .pop();
        assert_eq!(cached.to_value(), Some(expected.clone()));
        let dynamic = cached.to_dynamic().expect("dynamic");
        let types = TypeMeta {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
        };
        assert_eq!(dynamic.types, Some(types));
        assert_eq!(serde_json::to_value(&dynamic).ok(), Some(expected));
    }
}
