//! The engine's copy of a cached object, kept small (kube-rs memory trap): with 1000 owners and their
//! ~15 children each, the caches are most of the operator's memory.
//!
//! Typed, as plain fields: what the caches and triggers look objects up by (namespace, name, uid,
//! resourceVersion, whether it is being deleted, the four lookup labels, the controller owner
//! reference). The object itself, all of it but the namespace, name, uid and resourceVersion, is
//! kept as zstd-compressed JSON text, and parsed only when the engine compares a desired object with
//! the live one, which the remembered comparisons (`crate::fingerprint`) make rare at steady state.
//! Kept as `ObjectMeta` (a label map, owner-reference structs) the lookup part alone was about 1.5 KB
//! an object, more than the compressed text.
//!
//! Dropped altogether: the managedFields entries of status writers other than us, and the
//! last-applied annotation. Entries of other managers on the main resource (and `/scale`) stay: they
//! tell which manager changed a field we own (drift).

use std::{cell::RefCell, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
use kube::api::DynamicObject;
use serde_json::{Map, Value};

use crate::{HANDOVER_MANAGER, MANAGER, labels};

/// zstd level: fast to compress (every watch event is) and still ~2.5x on Kubernetes JSON.
const COMPRESSION_LEVEL: i32 = 3;

/// The metadata fields kept typed and taken out of the compressed text.
const TYPED_METADATA: [&str; 4] = ["namespace", "name", "uid", "resourceVersion"];

/// One object in the engine's caches.
#[derive(Debug)]
pub struct CachedObject {
    /// Empty for cluster-scoped objects; shared with the cache's key.
    pub(crate) namespace: Arc<str>,
    /// Shared with the cache's key.
    pub(crate) name: Arc<str>,
    uid: Box<str>,
    resource_version: Box<str>,
    deleting: bool,
    lookup: LookupLabels,
    controller: Option<Box<ControllerRef>>,
    /// The ownerReferences of a shared object (labelled [`labels::SHARED`]); `None` otherwise, so
    /// the many unshared objects pay nothing for it.
    sharers: Option<Box<[ControllerRef]>>,
    /// A digest of the compressed text without `status`: two versions with equal digests (and
    /// uid) differ only in status and resourceVersion.
    without_status: u64,
    rest: CompressedJson,
}

/// The labels the caches and triggers look objects up by.
#[derive(Debug, Default)]
struct LookupLabels {
    /// `app.kubernetes.io/managed-by=fieldwise`.
    managed_by_us: bool,
    /// `fieldwise.dev/owner-uid`.
    owner_uid: Option<Arc<str>>,
    /// `app.kubernetes.io/instance`.
    instance: Option<Box<str>>,
    /// `fieldwise.dev/owner-namespace`.
    owner_namespace: Option<Box<str>>,
    /// `fieldwise.dev/owner-kind` (cluster-scoped children).
    owner_kind: Option<Box<str>>,
    /// `fieldwise.dev/shared=true`.
    shared: bool,
}

/// The owner reference with `controller: true` (the API allows one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    pub api_version: Box<str>,
    pub kind: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
}

/// JSON text kept zstd-compressed (Kubernetes JSON compresses ~2.5x), for caches that parse it rarely.
#[derive(Debug)]
pub struct CompressedJson(Compressed);

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
    pub fn new(obj: DynamicObject) -> Self {
        let DynamicObject {
            types,
            mut metadata,
            data,
        } = obj;
        let lookup = LookupLabels::of(metadata.labels.as_ref());
        let controller = metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| Box::new(ControllerRef::of(r)));
        let sharers = lookup.shared.then(|| {
            metadata
                .owner_references
                .iter()
                .flatten()
                .map(ControllerRef::of)
                .collect()
        });
        let namespace: Arc<str> = metadata.namespace.take().unwrap_or_default().into();
        let name: Arc<str> = metadata.name.take().unwrap_or_default().into();
        let uid = metadata.uid.take().unwrap_or_default().into_boxed_str();
        let resource_version = metadata
            .resource_version
            .take()
            .unwrap_or_default()
            .into_boxed_str();
        let deleting = metadata.deletion_timestamp.is_some();
        drop_unread_metadata(&mut metadata);
        let mut rest = match data {
            Value::Object(body) => body,
            _ => Map::new(),
        };
        let status = rest.shift_remove("status");
        if let Some(types) = types {
            rest.insert("apiVersion".into(), types.api_version.into());
            rest.insert("kind".into(), types.kind.into());
        }
        rest.insert("metadata".into(), json_of(&metadata));
        let mut text = Value::Object(rest).to_string();
        let without_status = digest(text.as_bytes());
        if let Some(status) = status {
            append_member(&mut text, "status", &status);
        }
        CachedObject {
            namespace,
            name,
            uid,
            resource_version,
            deleting,
            lookup,
            controller,
            sharers,
            without_status,
            rest: CompressedJson::of(&text),
        }
    }

    /// Whether this is the same object as `other` and the two versions differ at most in status
    /// (and resourceVersion): as for a controller's status write.
    pub(crate) fn differs_only_in_status(&self, other: &CachedObject) -> bool {
        // The digest covers all but status of the text, deletionTimestamp included.
        self.uid == other.uid && self.without_status == other.without_status
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `None` for a cluster-scoped object.
    pub fn namespace(&self) -> Option<&str> {
        Some(&*self.namespace).filter(|ns| !ns.is_empty())
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// Whether it carries a deletionTimestamp.
    pub fn is_deleting(&self) -> bool {
        self.deleting
    }

    /// Whether it carries `app.kubernetes.io/managed-by=fieldwise`.
    pub fn is_managed_by_us(&self) -> bool {
        self.lookup.managed_by_us
    }

    /// Its `fieldwise.dev/owner-uid` label.
    pub fn owner_uid(&self) -> Option<&Arc<str>> {
        self.lookup.owner_uid.as_ref()
    }

    /// Its `app.kubernetes.io/instance` label.
    pub fn instance(&self) -> Option<&str> {
        self.lookup.instance.as_deref()
    }

    /// Its `fieldwise.dev/owner-namespace` label.
    pub fn owner_namespace(&self) -> Option<&str> {
        self.lookup.owner_namespace.as_deref()
    }

    /// Its `fieldwise.dev/owner-kind` label.
    pub fn owner_kind(&self) -> Option<&str> {
        self.lookup.owner_kind.as_deref()
    }

    /// Its owner reference with `controller: true`.
    pub fn controller(&self) -> Option<&ControllerRef> {
        self.controller.as_deref()
    }

    /// Whether several owners share it (labelled `fieldwise.dev/shared=true`).
    pub fn is_shared(&self) -> bool {
        self.sharers.is_some()
    }

    /// The owners of a shared object (its ownerReferences); empty for any other object.
    pub fn sharers(&self) -> &[ControllerRef] {
        self.sharers.as_deref().unwrap_or_default()
    }

    /// The object as the API served it (minus what the cache drops), for comparisons: the
    /// managedFields' FieldsV1 as trees.
    pub fn to_value(&self) -> Option<Value> {
        let mut live: Value = serde_json::from_slice(&self.rest.text()?).ok()?;
        let metadata = live
            .as_object_mut()?
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()?;
        let typed = [
            self.namespace().map(str::to_owned),
            Some(self.name.to_string()),
            Some(self.uid.to_string()).filter(|uid| !uid.is_empty()),
            Some(self.resource_version.to_string()).filter(|rv| !rv.is_empty()),
        ];
        for (key, value) in TYPED_METADATA.iter().zip(typed) {
            if let Some(value) = value {
                metadata.insert((*key).to_owned(), Value::String(value));
            }
        }
        Some(live)
    }

    /// The fields `T` declares, parsed from the compressed text alone (so not the namespace, name,
    /// uid or resourceVersion).
    pub fn fields<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.rest.text()?).ok()
    }

    /// The object as a `DynamicObject`, every field restored.
    pub fn to_dynamic(&self) -> Option<DynamicObject> {
        serde_json::from_value(self.to_value()?).ok()
    }

    /// Shares `namespace` (an equal string the cache already holds) instead of this object's copy.
    pub(crate) fn share_namespace(&mut self, namespace: &Arc<str>) {
        if self.namespace == *namespace {
            self.namespace = namespace.clone();
        }
    }
}

impl LookupLabels {
    fn of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Self {
        let Some(labels) = labels else {
            return Self::default();
        };
        let text = |key: &str| labels.get(key).map(|v| v.clone().into_boxed_str());
        LookupLabels {
            managed_by_us: labels.get(labels::MANAGED_BY).map(String::as_str)
                == Some(labels::MANAGED_BY_VALUE),
            owner_uid: labels.get(labels::OWNER_UID).map(|v| Arc::from(v.as_str())),
            instance: text(labels::INSTANCE),
            owner_namespace: text(labels::OWNER_NAMESPACE),
            owner_kind: text(labels::OWNER_KIND),
            shared: labels.get(labels::SHARED).map(String::as_str) == Some(labels::SHARED_VALUE),
        }
    }
}

impl ControllerRef {
    fn of(r: &OwnerReference) -> Self {
        ControllerRef {
            api_version: r.api_version.as_str().into(),
            kind: r.kind.as_str().into(),
            name: r.name.as_str().into(),
            uid: r.uid.as_str().into(),
        }
    }
}

impl CompressedJson {
    /// Compresses `text`.
    pub fn of(text: &str) -> Self {
        match with_compressor(|c| c.compress(text.as_bytes())) {
            Some(bytes) => CompressedJson(Compressed::Zstd {
                len: text.len(),
                bytes: bytes.into_boxed_slice(),
            }),
            None => CompressedJson(Compressed::Plain(text.into())),
        }
    }

    /// The text again; `None` only if the compressed bytes were corrupted.
    pub fn text(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        match &self.0 {
            Compressed::Zstd { len, bytes } => {
                with_decompressor(|d| d.decompress(bytes, *len)).map(Into::into)
            }
            Compressed::Plain(text) => Some(text.as_bytes().into()),
        }
    }
}

// One zstd context of each kind per thread, reused: creating a context for every object (what
// `zstd::bulk::compress` does) was ~7% of the operator's CPU during a cold start.
thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn with_compressor<T>(
    use_it: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> Option<T> {
    with_context(
        &COMPRESSOR,
        || zstd::bulk::Compressor::new(COMPRESSION_LEVEL),
        use_it,
    )
}

fn with_decompressor<T>(
    use_it: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> Option<T> {
    with_context(&DECOMPRESSOR, zstd::bulk::Decompressor::new, use_it)
}

/// Runs `use_it` with this thread's context in `slot`, created on first use; `None` if creating or
/// using it failed (or the slot is in use further up this thread's stack).
fn with_context<C: 'static, T>(
    slot: &'static std::thread::LocalKey<RefCell<Option<C>>>,
    create: impl FnOnce() -> std::io::Result<C>,
    use_it: impl FnOnce(&mut C) -> std::io::Result<T>,
) -> Option<T> {
    slot.with(|cell| {
        let mut context = cell.try_borrow_mut().ok()?;
        if context.is_none() {
            *context = create().ok();
        }
        use_it(context.as_mut()?).ok()
    })
}

/// Drops from the metadata what no comparison reads.
fn drop_unread_metadata(metadata: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if let Some(entries) = metadata.managed_fields.as_mut() {
        entries.retain(|e| {
            is_ours(e)
                || e.subresource
                    .as_deref()
                    .is_none_or(|s| s.is_empty() || s == "scale")
        });
    }
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
}

/// A 64-bit digest of JSON text; digests never leave the process.
fn digest(text: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    const SEED: foldhash::quality::FixedState =
        foldhash::quality::FixedState::with_seed(0x7374_6174_7573_2d6c);
    SEED.hash_one(text)
}

/// Adds `"key": value` as the last member of the JSON object in `text`.
fn append_member(text: &mut String, key: &str, value: &Value) {
    if !text.ends_with('}') {
        // Not an object (cannot happen: the text was serialized from a map); leave it whole.
        return;
    }
    text.pop();
    if text.len() > 1 {
        text.push(',');
    }
    text.push_str(&Value::String(key.to_owned()).to_string());
    text.push(':');
    text.push_str(&value.to_string());
    text.push('}');
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

#[cfg(test)]
mod tests {
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
                "ownerReferences": [
                    {"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": "other", "uid": "o2"},
                    {"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": "store", "uid": "owner-1",
                     "controller": true, "blockOwnerDeletion": true}
                ],
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
    fn a_cached_object_answers_lookups_typed_and_restores_the_rest() {
        let served: DynamicObject = serde_json::from_value(served_json()).expect("object");
        let cached = CachedObject::new(served);
        assert_eq!(cached.namespace(), Some("ns"));
        assert_eq!(cached.name(), "web");
        assert_eq!((cached.uid(), cached.resource_version()), ("u1", "7"));
        assert!(cached.is_managed_by_us() && !cached.is_deleting());
        assert_eq!(cached.owner_uid().map(|u| &**u), Some("owner-1"));
        assert_eq!(cached.instance(), Some("store"));
        assert_eq!(cached.owner_namespace(), None);
        let controller = cached.controller().expect("controller reference");
        assert_eq!(
            (&*controller.kind, &*controller.name, &*controller.uid),
            ("FeatureStore", "store", "owner-1")
        );

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
        assert_eq!(serde_json::to_value(&dynamic).ok(), Some(expected));
    }

    #[test]
    fn a_member_is_appended_to_empty_and_filled_objects() {
        let mut empty = "{}".to_owned();
        append_member(&mut empty, "status", &json!({"a": 1}));
        assert_eq!(empty, r#"{"status":{"a":1}}"#);
        let mut filled = r#"{"spec":{}}"#.to_owned();
        append_member(&mut filled, "status", &json!("x\"y"));
        assert_eq!(filled, r#"{"spec":{},"status":"x\"y"}"#);
        let mut not_an_object = "[1]".to_owned();
        append_member(&mut not_an_object, "status", &json!(1));
        assert_eq!(not_an_object, "[1]");
    }

    #[test]
    fn a_cluster_scoped_object_has_no_namespace_and_deletion_is_seen() {
        let served: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "uid": "u", "resourceVersion": "3",
                         "deletionTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app.kubernetes.io/managed-by": "someone-else",
                                    "fieldwise.dev/owner-namespace": "ns"}},
            "rules": []
        }))
        .expect("object");
        let cached = CachedObject::new(served);
        assert_eq!(cached.namespace(), None);
        assert!(cached.is_deleting() && !cached.is_managed_by_us());
        assert_eq!(cached.owner_namespace(), Some("ns"));
        assert!(cached.controller().is_none());
        let restored = cached.to_value().expect("value");
        assert_eq!(restored["metadata"].get("namespace"), None);
        assert_eq!(restored["metadata"]["name"], "r");
        assert_eq!(
            restored["metadata"]["deletionTimestamp"],
            "2026-01-01T00:00:00Z"
        );
    }
}
