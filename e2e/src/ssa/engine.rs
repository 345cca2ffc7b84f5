//! Apply and update: the field-manager pipeline of kube-apiserver over the merge core.

use serde_json::{Value, json};

use super::conflict::{ApplyConflict, Conflict};
use super::fieldset::FieldSet;
use super::managed::{
    ManagedFieldsEntry, ManagedFieldsError, Operation, cap_update_entries, decode_managed_fields,
    encode_managed_fields,
};
use super::path::Path;
use super::schema::TypeSchema;
use super::walk::{
    SchemaError, compare, drop_nulls, merge, remove_items, to_field_set, validate,
    validate_allowing_duplicates,
};

/// Manager name of the synthetic entry recorded before the first apply to an object without
/// managedFields.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Options of one server-side apply request.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// `fieldManager`.
    pub manager: String,
    /// `force=true`: take conflicting fields instead of failing.
    pub force: bool,
    /// group/version of the endpoint (`v1`, `apps/v1`, `example.com/v1`).
    pub api_version: String,
    /// `Some("status")`/`Some("scale")` when applied to a subresource.
    pub subresource: Option<String>,
    /// Current time, RFC 3339 UTC seconds (`2026-11-22T00:42:27Z`).
    pub now: String,
    /// The endpoint's reset fields (main resource with a status subresource: `status`; `/status`:
    /// the spec side). Never owned, never compared.
    pub reset_fields: FieldSet,
}

/// Options of one create, update or non-apply patch.
#[derive(Clone, Debug, Default)]
pub struct UpdateOptions {
    /// `fieldManager` (or the name derived from the User-Agent).
    pub manager: String,
    /// group/version of the endpoint.
    pub api_version: String,
    /// `Some("status")`/`Some("scale")` for subresource writes.
    pub subresource: Option<String>,
    /// Current time, RFC 3339 UTC seconds.
    pub now: String,
    /// The endpoint's reset fields (see [`ApplyOptions::reset_fields`]).
    pub reset_fields: FieldSet,
}

/// Result of a write.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// The resulting object, `metadata.managedFields` set (absent when no entry is left). Not yet
    /// defaulted.
    pub object: Value,
    /// False when `object` equals the live object exactly (a no-op: keep resourceVersion,
    /// generation and times, write nothing).
    pub changed: bool,
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the apply would change (HTTP 409, see [`ApplyConflict::to_status`]).
    #[error("{0}")]
    Conflict(ApplyConflict),
    /// The configuration does not fit the schema; the message is what follows
    /// `failed to create typed patch object (<ns>/<name>; <gvk>): ` in the HTTP 500 body.
    #[error("{0}")]
    Schema(SchemaError),
    /// The stored managedFields cannot be decoded.
    #[error("{0}")]
    ManagedFields(ManagedFieldsError),
}

/// Paths the server never records as owned (§1.2).
pub fn stripped_fields() -> FieldSet {
    let mut set = FieldSet::from_field_paths(&[&["apiVersion"], &["kind"], &["metadata"]]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&Path::fields(&["metadata", name]).0);
    }
    set
}

fn without_managed_fields(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

fn with_managed_fields(mut object: Value, entries: &[ManagedFieldsEntry]) -> Value {
    let encoded = encode_managed_fields(entries);
    let has_entries = encoded.as_array().is_some_and(|a| !a.is_empty());
    if !object.is_object() {
        object = json!({});
    }
    if has_entries {
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        object["metadata"]["managedFields"] = encoded;
    } else if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

fn entry_index(entries: &[ManagedFieldsEntry], template: &ManagedFieldsEntry) -> Option<usize> {
    let id = template.identity();
    entries.iter().position(|e| e.identity() == id)
}

/// Server-side apply of `config` onto `live` (`None` creates), §2.2: merge, replace the applier's
/// set, prune what only it owned, conflict where other managers' values would change, drop emptied
/// managers. Defaulting, validation, resourceVersion and generation are the caller's.
///
/// The caller rejects a `config` carrying `metadata.managedFields` (400) before calling.
pub fn apply(
    schema: &TypeSchema,
    live: Option<&Value>,
    config: &Value,
    opts: &ApplyOptions,
) -> Result<WriteOutcome, ApplyError> {
    validate(schema, config).map_err(ApplyError::Schema)?;
    let live_obj = live.unwrap_or(&schema.empty_object);
    let mut entries = decode_managed_fields(live_obj).map_err(ApplyError::ManagedFields)?;
    let live_clean = without_managed_fields(live_obj);
    if entries.is_empty() && live.is_some() {
        let before = ManagedFieldsEntry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: Operation::Update,
            api_version: opts.api_version.clone(),
            time: None,
            fields: FieldSet::new(),
            subresource: opts.subresource.clone(),
        };
        record_update(
            schema,
            &schema.empty_object,
            &live_clean,
            &mut entries,
            before,
            &opts.now,
            &opts.reset_fields,
        );
        cap_update_entries(&mut entries);
    }
    let template = ManagedFieldsEntry {
        manager: opts.manager.clone(),
        operation: Operation::Apply,
        api_version: opts.api_version.clone(),
        time: None,
        fields: FieldSet::new(),
        subresource: opts.subresource.clone(),
    };
    let merged = merge(schema, &live_clean, config);
    let new_set = to_field_set(schema, config).recursive_difference(&opts.reset_fields);
    let applier = match entry_index(&entries, &template) {
        Some(i) => i,
        None => {
            entries.push(template);
            entries.len() - 1
        }
    };
    let last_set = std::mem::replace(&mut entries[applier].fields, new_set);
    entries[applier].api_version = opts.api_version.clone();
    let merged = prune(schema, merged, &entries, &last_set);

    let mut cmp = compare(schema, &live_clean, &merged);
    cmp.exclude(&opts.reset_fields);
    let changed_paths = cmp.changed();
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if i == applier {
            continue;
        }
        for path in entry.fields.intersection(&changed_paths).paths() {
            let mut manager = entry.clone();
            manager.fields = FieldSet::new();
            conflicts.push(Conflict { manager, path });
        }
    }
    if !conflicts.is_empty() && !opts.force {
        conflicts.sort_by_key(|c| c.manager.identity());
        return Err(ApplyError::Conflict(ApplyConflict { conflicts }));
    }
    for (i, entry) in entries.iter_mut().enumerate() {
        if i != applier {
            let lost = entry.fields.intersection(&changed_paths);
            entry.fields = entry.fields.difference(&lost).difference(&cmp.removed);
        }
    }
    entries[applier].fields = entries[applier].fields.difference(&stripped_fields());
    let object_changed = !cmp.is_same();
    if object_changed {
        entries[applier].time = Some(opts.now.clone());
    }
    entries.retain(|e| !e.fields.is_empty());
    // Containers emptied by pruning stay as nulls, as structured-merge-diff leaves them: what
    // becomes of them is the caller's decoding (kube-apiserver converts the object to its type).
    let mut object = if object_changed { merged } else { live_clean };
    if opts.manager == "kubectl" {
        sync_last_applied(&mut object, config);
    }
    let object = with_managed_fields(object, &entries);
    let changed = live.is_none_or(|l| *l != object);
    Ok(WriteOutcome { object, changed })
}

/// §2.2 step 3: remove what the applier owned before, no longer applies, and nobody else owns.
fn prune(
    schema: &TypeSchema,
    merged: Value,
    entries: &[ManagedFieldsEntry],
    last_set: &FieldSet,
) -> Value {
    if last_set.is_empty() {
        return merged;
    }
    let root = Some(&schema.root);
    let ensure = |set: &FieldSet| set.ensure_named_fields_are_members(schema, root);
    let set_of = |value: &Value| ensure(&to_field_set(schema, value));
    let last = ensure(last_set);
    let pruned = remove_items(schema, &merged, &last);
    // Add back what anybody (including the applier's new set) owns.
    let managed = entries
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let merged_set = set_of(&merged);
    let keep = set_of(&pruned).union(&ensure(&managed));
    let pruned = remove_items(schema, &merged, &merged_set.difference(&keep));
    // Only remove what the applier owned before.
    let dangling = merged_set.difference(&set_of(&pruned)).intersection(&last);
    let out = remove_items(schema, &merged, &dangling);
    if out.is_null() { json!({}) } else { out }
}

/// Records a non-apply write `live -> new` for `entry`'s identity: removed paths leave every
/// manager; added and modified paths join the writer's entry (time refreshed only then).
fn record_update(
    schema: &TypeSchema,
    live: &Value,
    new: &Value,
    entries: &mut Vec<ManagedFieldsEntry>,
    mut entry: ManagedFieldsEntry,
    now: &str,
    reset_fields: &FieldSet,
) {
    let mut cmp = compare(schema, live, new);
    cmp.exclude(reset_fields);
    // Updates never conflict: they take changed fields from everybody (force), and removed
    // fields leave everybody.
    let changed = cmp.changed();
    for e in entries.iter_mut() {
        let lost = e.fields.intersection(&changed);
        e.fields = e.fields.difference(&lost).difference(&cmp.removed);
    }
    entries.retain(|e| !e.fields.is_empty());
    let taken = changed
        .difference(&cmp.removed)
        .recursive_difference(reset_fields)
        .difference(&stripped_fields());
    if taken.is_empty() {
        return;
    }
    match entry_index(entries, &entry) {
        Some(i) => {
            entries[i].fields = taken.union(&entries[i].fields);
            entries[i].time = Some(now.to_string());
        }
        None => {
            entry.fields = taken;
            entry.time = Some(now.to_string());
            entries.push(entry);
        }
    }
}

fn is_reset_marker(object: &Value) -> bool {
    match object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([]) => true,
        Some([only]) => only.as_object().is_some_and(serde_json::Map::is_empty),
        _ => false,
    }
}

/// A create (`live: None`), update or non-apply patch (`new` is the full resulting object, after
/// defaulting), §1.3 and §3: the writer takes what it added or modified without conflict, removed
/// paths leave every manager. managedFields in `new` (main resource only) replace the stored ones;
/// `[]` or `[{}]` wipe them; once an object has none, updates are not tracked until the next
/// apply. For `/scale`, pass the parent object with its replicas changed and
/// `subresource: Some("scale")`; the entry then owns the parent's replicas path.
pub fn update(
    schema: &TypeSchema,
    live: Option<&Value>,
    new: &Value,
    opts: &UpdateOptions,
) -> Result<WriteOutcome, SchemaError> {
    validate_allowing_duplicates(schema, new)?;
    let live_obj = live.unwrap_or(&schema.empty_object);
    let live_entries = decode_managed_fields(live_obj).unwrap_or_default();
    let mut entries = if opts.subresource.is_some() {
        live_entries
    } else if is_reset_marker(new) {
        Vec::new()
    } else {
        match decode_managed_fields(new) {
            Ok(supplied) if !supplied.is_empty() => supplied,
            _ => live_entries,
        }
    };
    let live_clean = without_managed_fields(live_obj);
    let mut new_clean = without_managed_fields(new);
    drop_nulls(&mut new_clean);
    if entries.is_empty() && live.is_some() {
        let changed = live.is_none_or(|l| *l != new_clean);
        return Ok(WriteOutcome {
            object: new_clean,
            changed,
        });
    }
    let entry = ManagedFieldsEntry {
        manager: opts.manager.clone(),
        operation: Operation::Update,
        api_version: opts.api_version.clone(),
        time: None,
        fields: FieldSet::new(),
        subresource: opts.subresource.clone(),
    };
    record_update(
        schema,
        &live_clean,
        &new_clean,
        &mut entries,
        entry,
        &opts.now,
        &opts.reset_fields,
    );
    cap_update_entries(&mut entries);
    let object = with_managed_fields(new_clean, &entries);
    let changed = live.is_none_or(|l| *l != object);
    Ok(WriteOutcome { object, changed })
}

/// Reset fields of an endpoint (what a write there neither changes nor owns), as the registry
/// strategies declare them: on the main resource of a type with a status subresource, `status`; on
/// `/status`, the spec side (`spec`, plus `metadata.labels` for the apps workloads, whose status
/// strategy keeps them). `/scale` writes go through [`update`]/[`apply`] on the
/// parent with no reset fields.
pub fn endpoint_reset_fields(
    group: &str,
    kind: &str,
    subresource: Option<&str>,
    has_status: bool,
) -> FieldSet {
    match subresource {
        None if has_status => FieldSet::from_field_paths(&[&["status"]]),
        Some("status") => {
            let mut set = FieldSet::from_field_paths(&[&["spec"]]);
            if group == "apps"
                && matches!(
                    kind,
                    "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet"
                )
            {
                set.insert(&Path::fields(&["metadata", "labels"]).0);
            }
            set
        }
        _ => FieldSet::new(),
    }
}

/// Annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kube-apiserver keeps the client-side-apply annotation in step with server-side applies by the
/// `kubectl` manager, when the object already has one: it becomes the applied configuration (without
/// the annotation itself) as compact JSON with sorted keys.
fn sync_last_applied(object: &mut Value, config: &Value) {
    let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !annotations.contains_key(LAST_APPLIED) {
        return;
    }
    let mut applied = config.clone();
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut)
    {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.remove("annotations");
        }
    }
    let text = super::value::go_json(&sorted_keys(&applied));
    annotations.insert(LAST_APPLIED.into(), Value::String(text));
}

fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}
