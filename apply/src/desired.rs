//! The desired graph a controller hands to the engine, and how the engine turns each desired
//! object into the exact body it applies (validation, ownerReference, standard labels).

use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};

use crate::{
    error::{ApplyError, ObjectKey},
    fields, labels, quantities,
    registry::{KindRegistry, KindSpec, Scope},
};

/// The object that owns a desired graph (e.g. one FeatureStore).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` for a cluster-scoped owner.
    pub namespace: Option<String>,
    /// `metadata.uid`: ties children to this incarnation of the owner.
    pub uid: String,
    /// Value of `app.kubernetes.io/name` on children; defaults to the kind lowercased.
    pub app_name: Option<String>,
    /// Another controller ran this owner before: its children may exist without our labels, so
    /// the engine reads each one its caches lack before applying it, to take it over
    /// (`EngineConfig::take_over_from`) or leave it to another controller, without the API
    /// refusing the apply first.
    pub adopting: bool,
}

impl Owner {
    /// The owner identity of a typed resource read from the API (it must have name and uid).
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Result<Self, ApplyError> {
        let uid = obj.uid().ok_or_else(|| ApplyError::InvalidObject {
            object: format!("{} {}", K::kind(&()), obj.name_any()),
            reason: "owner has no metadata.uid (was it read from the API server?)".into(),
        })?;
        Ok(Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            name: obj.name_any(),
            namespace: obj.namespace(),
            uid,
            app_name: None,
            adopting: false,
        })
    }

    /// Sets the `app.kubernetes.io/name` value children get (e.g. `feast`).
    pub fn with_app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// Marks the owner as [`Self::adopting`] its children.
    pub fn adopting(mut self, adopting: bool) -> Self {
        self.adopting = adopting;
        self
    }

    fn app_name(&self) -> String {
        self.app_name
            .clone()
            .unwrap_or_else(|| self.kind.to_lowercase())
    }

    /// The labels that mark an object as a child of this owner (engine-wide selector part).
    pub fn child_labels(&self) -> [(&'static str, String); 2] {
        [
            (labels::MANAGED_BY, labels::MANAGED_BY_VALUE.to_string()),
            (labels::OWNER_UID, self.uid.clone()),
        ]
    }

    fn owner_reference(&self) -> Value {
        json!({
            "apiVersion": self.api_version, "kind": self.kind, "name": self.name, "uid": self.uid,
            "controller": true, "blockOwnerDeletion": true,
        })
    }
}

/// Who owns `spec.replicas` of a workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicasPolicy {
    /// fieldwise owns it: the body must carry `spec.replicas`; it is applied with force, taking
    /// the field back from an autoscaler if needed.
    #[default]
    Owned,
    /// An autoscaler (HPA, KEDA) owns it: `spec.replicas` is removed from the body, and if
    /// fieldwise still owns the field, ownership is first handed over (spec §2.4) so the live
    /// value never falls back to the default of 1.
    Released,
}

/// One of the owners of a shared child (see [`DesiredObject::shared_by`]): an owner of the same
/// kind and namespace as the one reconciling.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CoOwner {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
}

/// One object of the desired graph.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// The body, built fresh by the controller: `apiVersion`, `kind`, `metadata.name`
    /// (`namespace` defaults to the owner's), optional `labels`/`annotations`, and only the
    /// fields fieldwise means to own. It must not carry `managedFields`, `resourceVersion`,
    /// `uid`, `ownerReferences` or `status`.
    pub body: Value,
    /// Value of `app.kubernetes.io/component`.
    pub component: String,
    /// Replicas ownership; only used for kinds registered [`KindSpec::with_replicas`].
    pub replicas: ReplicasPolicy,
    /// `Some` for an object several owners want with the same content: every owner that wants it
    /// (the reconciling one included). See [`Self::shared_by`].
    pub shared_by: Option<Vec<CoOwner>>,
}

impl DesiredObject {
    /// A desired object with [`ReplicasPolicy::Owned`].
    pub fn new(component: impl Into<String>, body: Value) -> Self {
        Self {
            body,
            component: component.into(),
            replicas: ReplicasPolicy::Owned,
            shared_by: None,
        }
    }

    /// Marks a namespaced object as shared by `owners` (all of one kind, in the owner's
    /// namespace, the reconciling owner among them): it gets one non-controller ownerReference per
    /// owner and no owner-specific label, so every owner applies the same body and none undoes
    /// another's write. An owner that stops wanting it takes its own reference out; the last one
    /// deletes it (and the garbage collector deletes it when its last owner is deleted).
    pub fn shared_by(mut self, mut owners: Vec<CoOwner>) -> Self {
        owners.sort();
        owners.dedup();
        self.shared_by = Some(owners);
        self
    }

    /// Sets the replicas policy.
    pub fn with_replicas(mut self, policy: ReplicasPolicy) -> Self {
        self.replicas = policy;
        self
    }
}

/// A desired object checked and decorated, ready to apply.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub key: ObjectKey,
    pub kind: KindSpec,
    /// The exact body to apply (no replicas when released).
    pub body: Value,
    pub replicas: ReplicasPolicy,
    /// The desired object's component, for the report.
    pub component: String,
    /// Its position in the desired graph, for the report.
    pub index: usize,
    /// Shared by several owners ([`DesiredObject::shared_by`]).
    pub shared: bool,
}

/// A desired object the engine refused, with what the report needs to name it.
#[derive(Debug)]
pub(crate) struct Refused {
    /// The object as far as its body tells (parts may be empty when the body lacks them).
    pub key: ObjectKey,
    pub component: String,
    pub error: ApplyError,
}

/// What every child of one owner gets, built once per reconcile instead of once per object: the
/// ownerReference and the owner's standard labels, already checked.
pub(crate) struct OwnerStamp<'a> {
    owner: &'a Owner,
    owner_reference: Value,
    /// Standard labels set before the component label, and after it (the label order of every
    /// child's body stays as it always was).
    before_component: Vec<(&'static str, Value)>,
    after_component: Vec<(&'static str, Value)>,
    /// The owner-namespace label (for a namespaced owner) and the owner-kind label: set on
    /// cluster-scoped children only.
    cluster_labels: Vec<(&'static str, Value)>,
    /// Why one of the owner's labels is not a valid label (a name over 63 characters, say).
    label_error: Option<String>,
}

impl<'a> OwnerStamp<'a> {
    pub fn new(owner: &'a Owner) -> Self {
        let mut label_error = None;
        let mut checked = |key: &'static str, value: String| {
            if let Err(why) = labels::check_label(key, &value) {
                label_error.get_or_insert(why);
            }
            (key, Value::String(value))
        };
        let before_component = vec![
            checked(labels::MANAGED_BY, labels::MANAGED_BY_VALUE.to_string()),
            checked(labels::INSTANCE, owner.name.clone()),
            checked(labels::NAME, owner.app_name()),
        ];
        let after_component = vec![checked(labels::OWNER_UID, owner.uid.clone())];
        // Not checked: a namespace name is a DNS label, always a valid label value.
        let owner_namespace = owner
            .namespace
            .clone()
            .map(|ns| (labels::OWNER_NAMESPACE, Value::String(ns)));
        let owner_kind = checked(
            labels::OWNER_KIND,
            labels::owner_kind_value(&owner.api_version, &owner.kind),
        );
        let cluster_labels = owner_namespace.into_iter().chain([owner_kind]).collect();
        Self {
            owner,
            owner_reference: owner.owner_reference(),
            before_component,
            after_component,
            cluster_labels,
            label_error,
        }
    }

    /// Whether the engine sets this label key itself.
    fn sets(&self, key: &str) -> bool {
        key == labels::COMPONENT
            || self
                .before_component
                .iter()
                .chain(&self.after_component)
                .chain(&self.cluster_labels)
                .any(|(k, _)| *k == key)
    }
}

fn invalid(object: impl Into<String>, reason: impl Into<String>) -> ApplyError {
    ApplyError::InvalidObject {
        object: object.into(),
        reason: reason.into(),
    }
}

fn str_at<'a>(body: &'a Value, path: &[&str]) -> Option<&'a str> {
    fields::at(body, path).and_then(Value::as_str)
}

/// Validates a desired object and builds the body to apply.
pub(crate) fn prepare(
    registry: &KindRegistry,
    owner: &Owner,
    desired: &DesiredObject,
) -> Result<Prepared, ApplyError> {
    prepare_owned(registry, &OwnerStamp::new(owner), desired.clone(), 0).map_err(|r| r.error)
}

/// [`prepare`], taking the desired object (its body becomes the prepared body, uncopied).
pub(crate) fn prepare_owned(
    registry: &KindRegistry,
    stamp: &OwnerStamp<'_>,
    desired: DesiredObject,
    index: usize,
) -> Result<Prepared, Box<Refused>> {
    let (key, kind) = match identify(registry, stamp.owner, &desired.body) {
        Ok(found) => found,
        Err(error) => {
            return Err(Box::new(Refused {
                key: unknown_key(&desired.body),
                component: desired.component,
                error,
            }));
        }
    };
    let DesiredObject {
        body: mut out,
        component,
        replicas,
        shared_by,
    } = desired;
    let shared = shared_by.is_some();
    if quantities::is_built_in(&kind.resource.api_version) {
        quantities::canonicalize(&mut out);
    }
    let replicas = if kind.has_replicas {
        replicas
    } else {
        ReplicasPolicy::Owned
    };
    let decorated = match &shared_by {
        None => decorate_metadata(&mut out, &key, kind, stamp, &component),
        Some(owners) => decorate_shared(&mut out, &key, kind, stamp, &component, owners),
    }
    .and_then(|()| {
        if kind.has_replicas {
            apply_replicas_policy(&mut out, replicas, &key)?;
        }
        Ok(())
    });
    match decorated {
        Ok(()) => Ok(Prepared {
            key,
            kind: kind.clone(),
            body: out,
            replicas,
            component,
            index,
            shared,
        }),
        Err(error) => Err(Box::new(Refused {
            key,
            component,
            error,
        })),
    }
}

/// The object's key and registered kind, after checking what the body must and must not carry.
fn identify<'r>(
    registry: &'r KindRegistry,
    owner: &Owner,
    body: &Value,
) -> Result<(ObjectKey, &'r KindSpec), ApplyError> {
    let api_version = str_at(body, &["apiVersion"]).unwrap_or_default();
    let kind_name = str_at(body, &["kind"]).unwrap_or_default();
    let name = str_at(body, &["metadata", "name"]).unwrap_or_default();
    // Only errors name the object; built on demand, as most objects are fine.
    let label = || format!("{kind_name} {name}");
    if api_version.is_empty() || kind_name.is_empty() || name.is_empty() {
        return Err(invalid(
            label(),
            "apiVersion, kind and metadata.name are required",
        ));
    }
    let kind =
        registry
            .find(api_version, kind_name)
            .ok_or_else(|| ApplyError::UnregisteredKind {
                object: label(),
                api_version: api_version.into(),
                kind: kind_name.into(),
            })?;
    check_forbidden_fields(body, &label)?;
    let namespace = child_namespace(
        kind,
        owner,
        str_at(body, &["metadata", "namespace"]),
        &label,
    )?;
    let key = ObjectKey {
        api_version: api_version.into(),
        kind: kind_name.into(),
        namespace,
        name: name.into(),
    };
    Ok((key, kind))
}

/// The key of an object refused before it was identified, as far as its body tells.
fn unknown_key(body: &Value) -> ObjectKey {
    ObjectKey {
        api_version: str_at(body, &["apiVersion"]).unwrap_or_default().to_owned(),
        kind: str_at(body, &["kind"]).unwrap_or_default().to_owned(),
        namespace: str_at(body, &["metadata", "namespace"]).map(String::from),
        name: str_at(body, &["metadata", "name"])
            .unwrap_or_default()
            .to_owned(),
    }
}

fn check_forbidden_fields(body: &Value, label: &dyn Fn() -> String) -> Result<(), ApplyError> {
    if !body.is_object() || !body.get("metadata").is_some_and(Value::is_object) {
        return Err(invalid(label(), "body and metadata must be JSON objects"));
    }
    for (path, what) in [
        (&["metadata", "managedFields"][..], "metadata.managedFields"),
        (&["metadata", "resourceVersion"], "metadata.resourceVersion"),
        (&["metadata", "uid"], "metadata.uid"),
        (
            &["metadata", "ownerReferences"],
            "metadata.ownerReferences (the engine sets the owner)",
        ),
        (&["metadata", "generateName"], "metadata.generateName"),
        (&["status"], "status (use apply_status on the owner)"),
    ] {
        if fields::at(body, path).is_some() {
            return Err(invalid(label(), format!("must not carry {what}")));
        }
    }
    Ok(())
}

fn child_namespace(
    kind: &KindSpec,
    owner: &Owner,
    given: Option<&str>,
    label: &dyn Fn() -> String,
) -> Result<Option<String>, ApplyError> {
    match (kind.scope, given, &owner.namespace) {
        (Scope::Cluster, Some(_), _) => Err(invalid(
            label(),
            "cluster-scoped kind must not have metadata.namespace",
        )),
        (Scope::Cluster, None, _) => Ok(None),
        // A namespaced owner can only own children in its own namespace; an ownerReference
        // across namespaces is treated as absent and the garbage collector would delete the child.
        (Scope::Namespaced, Some(ns), Some(owner_ns)) if ns != owner_ns => Err(invalid(
            label(),
            format!("namespace {ns:?} differs from the owner's namespace {owner_ns:?}"),
        )),
        (Scope::Namespaced, Some(ns), _) => Ok(Some(ns.to_string())),
        (Scope::Namespaced, None, Some(owner_ns)) => Ok(Some(owner_ns.clone())),
        (Scope::Namespaced, None, None) => Err(invalid(
            label(),
            "namespaced kind needs metadata.namespace (the owner is cluster-scoped)",
        )),
    }
}

fn decorate_metadata(
    body: &mut Value,
    key: &ObjectKey,
    kind: &KindSpec,
    stamp: &OwnerStamp<'_>,
    component: &str,
) -> Result<(), ApplyError> {
    let label = || key.to_string();
    if let Some(why) = &stamp.label_error {
        return Err(invalid(label(), why.clone()));
    }
    labels::check_label(labels::COMPONENT, component).map_err(|why| invalid(label(), why))?;
    let component_label = (labels::COMPONENT, Value::String(component.to_owned()));
    let cluster_scoped = kind.scope == Scope::Cluster;
    let standard = stamp
        .before_component
        .iter()
        .chain([&component_label])
        .chain(&stamp.after_component)
        .chain(stamp.cluster_labels.iter().filter(|_| cluster_scoped));
    let meta = body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid(label(), "metadata must be an object"))?;
    if let Some(ns) = &key.namespace {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    let labels_map = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    let labels_map = labels_map
        .as_object_mut()
        .ok_or_else(|| invalid(label(), "metadata.labels must be an object"))?;
    for (k, v) in standard {
        match labels_map.get(*k) {
            Some(existing) if existing != v => {
                return Err(invalid(
                    label(),
                    format!(
                        "label {k} is set by the engine and must not be given (got {existing})"
                    ),
                ));
            }
            _ => {
                labels_map.insert((*k).into(), v.clone());
            }
        }
    }
    // The engine's own labels were checked once, in the stamp; the body's own are checked here.
    for (k, v) in labels_map.iter().filter(|(k, _)| !stamp.sets(k)) {
        let v = v
            .as_str()
            .ok_or_else(|| invalid(label(), format!("label {k} must be a string")))?;
        labels::check_label(k, v).map_err(|why| invalid(label(), why))?;
    }
    if let Some(annotations) = meta.get("annotations") {
        let ok = annotations
            .as_object()
            .is_some_and(|a| a.values().all(Value::is_string));
        if !ok {
            return Err(invalid(
                label(),
                "metadata.annotations must map strings to strings",
            ));
        }
    }
    if kind.scope == Scope::Namespaced {
        meta.insert(
            "ownerReferences".into(),
            Value::Array(vec![stamp.owner_reference.clone()]),
        );
    }
    Ok(())
}

/// The metadata of a shared object: the standard labels that every owner agrees on (no instance,
/// no owner uid; the shared marker instead) and one non-controller ownerReference per owner.
fn decorate_shared(
    body: &mut Value,
    key: &ObjectKey,
    kind: &KindSpec,
    stamp: &OwnerStamp<'_>,
    component: &str,
    owners: &[CoOwner],
) -> Result<(), ApplyError> {
    let label = || key.to_string();
    if kind.scope != Scope::Namespaced {
        return Err(invalid(
            label(),
            "only a namespaced object can be shared (ownerReferences name namespaced owners)",
        ));
    }
    if !owners.iter().any(|o| o.uid == stamp.owner.uid) {
        return Err(invalid(
            label(),
            "a shared object's owners must include the owner reconciling it",
        ));
    }
    let given = fields::at(body, &["metadata", "labels"]);
    for own in [labels::INSTANCE, labels::OWNER_UID] {
        if given.and_then(|labels| labels.get(own)).is_some() {
            return Err(invalid(
                label(),
                format!("a shared object must not carry the owner-specific label {own}"),
            ));
        }
    }
    // The stamp's labels minus the owner-specific ones; the engine's checks are the same.
    let shared_stamp = OwnerStamp {
        before_component: stamp
            .before_component
            .iter()
            .filter(|(k, _)| *k != labels::INSTANCE)
            .cloned()
            .chain([(labels::SHARED, Value::from(labels::SHARED_VALUE))])
            .collect(),
        after_component: Vec::new(),
        cluster_labels: Vec::new(),
        owner_reference: Value::Null,
        owner: stamp.owner,
        label_error: stamp.label_error.clone(),
    };
    decorate_metadata(body, key, kind, &shared_stamp, component)?;
    let references = owners
        .iter()
        .map(|o| {
            json!({
                "apiVersion": stamp.owner.api_version, "kind": stamp.owner.kind,
                "name": o.name, "uid": o.uid,
            })
        })
        .collect();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("ownerReferences".into(), Value::Array(references));
    }
    Ok(())
}

fn apply_replicas_policy(
    body: &mut Value,
    policy: ReplicasPolicy,
    key: &ObjectKey,
) -> Result<(), ApplyError> {
    match policy {
        ReplicasPolicy::Owned => {
            if fields::at(body, &["spec", "replicas"]).is_none_or(|r| !r.is_u64()) {
                return Err(invalid(
                    key.to_string(),
                    "ReplicasPolicy::Owned needs spec.replicas (a non-negative integer) in the body; use Released to leave it to an autoscaler",
                ));
            }
        }
        ReplicasPolicy::Released => {
            if let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("replicas");
            }
        }
    }
    Ok(())
}

/// The exact body the engine would apply for `desired` (owner reference, standard labels, replicas
/// policy applied), for offline previews such as `fieldwise render`.
pub fn applied_body(
    registry: &KindRegistry,
    owner: &Owner,
    desired: &DesiredObject,
) -> Result<Value, ApplyError> {
    prepare(registry, owner, desired).map(|prepared| prepared.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap, rbac::v1::ClusterRole};

    fn registry() -> KindRegistry {
        KindRegistry::new()
            .with(KindSpec::namespaced::<Deployment>().with_replicas())
            .with(KindSpec::namespaced::<ConfigMap>())
            .with(KindSpec::cluster::<ClusterRole>())
    }

    fn owner() -> Owner {
        Owner {
            api_version: "feast.dev/v1".into(),
            kind: "FeatureStore".into(),
            name: "sample".into(),
            namespace: Some("ns".into()),
            uid: "0f0e0d0c-1111-2222-3333-444455556666".into(),
            app_name: None,
            adopting: false,
        }
    }

    #[test]
    fn decorates_with_owner_reference_and_labels() {
        let desired = DesiredObject::new(
            "online",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"feast.dev/name": "sample"}}, "data": {"a": "1"}}),
        );
        let p = prepare(&registry(), &owner(), &desired).expect("valid");
        assert_eq!(
            p.body,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns",
                "labels": {"feast.dev/name": "sample", "app.kubernetes.io/managed-by": "fieldwise",
                    "app.kubernetes.io/instance": "sample", "app.kubernetes.io/name": "featurestore",
                    "app.kubernetes.io/component": "online", "fieldwise.dev/owner-uid": "0f0e0d0c-1111-2222-3333-444455556666"},
                "ownerReferences": [{"apiVersion": "feast.dev/v1", "kind": "FeatureStore", "name": "sample",
                    "uid": "0f0e0d0c-1111-2222-3333-444455556666", "controller": true, "blockOwnerDeletion": true}]},
            "data": {"a": "1"}})
        );
    }

    #[test]
    fn cluster_scoped_children_get_labels_but_no_owner_reference() {
        let desired = DesiredObject::new(
            "rbac",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r"}, "rules": []}),
        );
        let p = prepare(&registry(), &owner().with_app_name("feast"), &desired).expect("valid");
        assert!(p.body.pointer("/metadata/ownerReferences").is_none());
        assert!(p.body.pointer("/metadata/namespace").is_none());
        assert_eq!(
            p.body
                .pointer("/metadata/labels/fieldwise.dev~1owner-namespace"),
            Some(&json!("ns"))
        );
        assert_eq!(
            p.body.pointer("/metadata/labels/app.kubernetes.io~1name"),
            Some(&json!("feast"))
        );
    }

    #[test]
    fn rejects_server_owned_fields_and_bad_labels() {
        for (pointer, value) in [
            ("/metadata/resourceVersion", json!("1")),
            ("/metadata/uid", json!("u")),
            ("/metadata/managedFields", json!([])),
            ("/status", json!({})),
        ] {
            let mut body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "status": null});
            body.as_object_mut().map(|b| b.remove("status"));
            let (parent, field) = pointer.rsplit_once('/').expect("pointer");
            let target = if parent.is_empty() {
                &mut body
            } else {
                body.pointer_mut(parent).expect("parent")
            };
            target[field] = value;
            let err = prepare(&registry(), &owner(), &DesiredObject::new("c", body)).unwrap_err();
            assert!(
                matches!(err, ApplyError::InvalidObject { .. }),
                "{pointer}: {err}"
            );
        }
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "not valid!"}}});
        assert!(prepare(&registry(), &owner(), &DesiredObject::new("c", body)).is_err());
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let err = prepare(
            &registry(),
            &owner(),
            &DesiredObject::new("has space", body),
        )
        .unwrap_err();
        assert!(err.to_string().contains("component"), "{err}");
    }

    #[test]
    fn owner_labels_are_checked_once_for_every_child() {
        let long = Owner {
            name: "a".repeat(64),
            ..owner()
        };
        let stamp = OwnerStamp::new(&long);
        for name in ["c1", "c2"] {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
            let refused = prepare_owned(&registry(), &stamp, DesiredObject::new("online", body), 0)
                .expect_err("an instance label over 63 characters");
            assert_eq!(refused.key.name, name);
            assert_eq!(refused.component, "online");
            assert!(
                refused
                    .error
                    .to_string()
                    .contains("app.kubernetes.io/instance"),
                "{}",
                refused.error
            );
        }
    }

    #[test]
    fn engine_labels_must_not_be_given_otherwise() {
        let stamp_owner = owner();
        let stamp = OwnerStamp::new(&stamp_owner);
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app.kubernetes.io/managed-by": "fieldwise"}}});
        assert!(prepare_owned(&registry(), &stamp, DesiredObject::new("online", same), 0).is_ok());
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"fieldwise.dev/owner-uid": "someone-else"}}});
        let refused = prepare_owned(&registry(), &stamp, DesiredObject::new("online", other), 0)
            .expect_err("a foreign owner-uid label");
        assert!(
            refused.error.to_string().contains("set by the engine"),
            "{}",
            refused.error
        );
    }

    #[test]
    fn refused_objects_keep_what_their_body_tells() {
        let stamp_owner = owner();
        let stamp = OwnerStamp::new(&stamp_owner);
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}});
        let refused = prepare_owned(&registry(), &stamp, DesiredObject::new("registry", body), 0)
            .expect_err("Secret is not registered");
        assert_eq!(
            refused.key,
            ObjectKey {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: Some("ns".into()),
                name: "s".into(),
            }
        );
        assert_eq!(refused.component, "registry");
        assert!(matches!(refused.error, ApplyError::UnregisteredKind { .. }));
    }

    #[test]
    fn rejects_unregistered_kinds_and_foreign_namespaces() {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        assert!(matches!(
            prepare(&registry(), &owner(), &DesiredObject::new("c", body)),
            Err(ApplyError::UnregisteredKind { .. })
        ));
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}});
        assert!(prepare(&registry(), &owner(), &DesiredObject::new("c", body)).is_err());
    }

    #[test]
    fn replicas_policy_shapes_the_body() {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 3, "template": {}}});
        let released =
            DesiredObject::new("online", body.clone()).with_replicas(ReplicasPolicy::Released);
        let p = prepare(&registry(), &owner(), &released).expect("valid");
        assert!(p.body.pointer("/spec/replicas").is_none());
        let p = prepare(&registry(), &owner(), &DesiredObject::new("online", body)).expect("valid");
        assert_eq!(p.body.pointer("/spec/replicas"), Some(&json!(3)));
        let no_replicas = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
        assert!(
            prepare(
                &registry(),
                &owner(),
                &DesiredObject::new("online", no_replicas)
            )
            .is_err()
        );
    }
}
