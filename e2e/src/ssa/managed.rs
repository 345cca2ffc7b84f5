//! `metadata.managedFields` entries: decoding, identity, ordering and encoding.

use serde_json::{Map, Value, json};

use super::fieldset::FieldSet;

/// `operation` of a managedFields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or non-apply patch.
    Update,
}

impl Operation {
    /// `"Apply"` or `"Update"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    /// Field manager name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// group/version of the endpoint used (`v1`, `apps/v1`).
    pub api_version: String,
    /// RFC 3339 UTC seconds (`2026-11-22T00:42:27Z`); `None` for the no-time quirk (§2.5).
    pub time: Option<String>,
    /// The owned paths (`fieldsType: FieldsV1`).
    pub fields: FieldSet,
    /// `status`, `scale`, … or `None` for the main resource.
    pub subresource: Option<String>,
}

/// A `metadata.managedFields` value that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid managedFields: {0}")]
pub struct ManagedFieldsError(pub String);

impl ManagedFieldsEntry {
    /// The identity the server keys entries by (its manager identifier): manager, operation,
    /// subresource and, for Update entries only, apiVersion; rendered as the JSON the server uses,
    /// which is also the sort key of conflict messages.
    pub fn identity(&self) -> String {
        let mut id = Map::new();
        id.insert("manager".into(), json!(self.manager));
        id.insert("operation".into(), json!(self.operation.as_str()));
        if self.operation == Operation::Update && !self.api_version.is_empty() {
            id.insert("apiVersion".into(), json!(self.api_version));
        }
        if let Some(sub) = self.subresource.as_ref().filter(|s| !s.is_empty()) {
            id.insert("subresource".into(), json!(sub));
        }
        Value::Object(id).to_string()
    }

    /// How the server names this manager in conflict messages: `"alice"`,
    /// `"kubectl-patch" using v1`, `"kubectl" with subresource "scale" using apps/v1`.
    pub fn display_manager(&self) -> String {
        let mut text = serde_json::to_string(&self.manager).unwrap_or_default();
        if let Some(sub) = self.subresource.as_ref().filter(|s| !s.is_empty()) {
            text.push_str(&format!(
                " with subresource {}",
                serde_json::to_string(sub).unwrap_or_default()
            ));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }

    /// Decodes one entry from its JSON form.
    pub fn from_json(value: &Value) -> Result<Self, ManagedFieldsError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ManagedFieldsError("entry is not an object".into()))?;
        let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_string);
        let operation = match text("operation").as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            other => return Err(ManagedFieldsError(format!("invalid operation {other:?}"))),
        };
        if let Some(t) = text("fieldsType")
            && t != "FieldsV1"
        {
            return Err(ManagedFieldsError(format!("unsupported fieldsType {t:?}")));
        }
        let fields = match obj.get("fieldsV1") {
            Some(v) => {
                FieldSet::from_fields_v1(v).map_err(|e| ManagedFieldsError(e.to_string()))?
            }
            None => FieldSet::new(),
        };
        Ok(ManagedFieldsEntry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            fields,
            subresource: text("subresource").filter(|s| !s.is_empty()),
        })
    }

    /// Encodes in the key order the server writes: manager, operation, apiVersion, time,
    /// fieldsType, fieldsV1, subresource.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("manager".into(), json!(self.manager));
        obj.insert("operation".into(), json!(self.operation.as_str()));
        if !self.api_version.is_empty() {
            obj.insert("apiVersion".into(), json!(self.api_version));
        }
        if let Some(time) = &self.time {
            obj.insert("time".into(), json!(time));
        }
        obj.insert("fieldsType".into(), json!("FieldsV1"));
        obj.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            obj.insert("subresource".into(), json!(sub));
        }
        Value::Object(obj)
    }
}

/// Decodes `metadata.managedFields` of an object (absent or null: no entries). Entries with the same
/// identity are merged (later fields unioned in).
pub fn decode_managed_fields(
    object: &Value,
) -> Result<Vec<ManagedFieldsEntry>, ManagedFieldsError> {
    let Some(list) = object
        .pointer("/metadata/managedFields")
        .filter(|v| !v.is_null())
    else {
        return Ok(Vec::new());
    };
    let items = list
        .as_array()
        .ok_or_else(|| ManagedFieldsError("not a list".into()))?;
    let mut out: Vec<ManagedFieldsEntry> = Vec::new();
    for item in items {
        let entry = ManagedFieldsEntry::from_json(item)?;
        match out.iter_mut().find(|e| e.identity() == entry.identity()) {
            Some(existing) => existing.fields = existing.fields.union(&entry.fields),
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Sorts entries as the server encodes them: Apply before Update, then by time (missing first),
/// manager, apiVersion, subresource.
pub fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| {
                p.time
                    .clone()
                    .unwrap_or_default()
                    .cmp(&q.time.clone().unwrap_or_default())
            })
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| {
                p.subresource
                    .clone()
                    .unwrap_or_default()
                    .cmp(&q.subresource.clone().unwrap_or_default())
            })
    });
}

/// Encodes entries (sorted, empty ones dropped) as the JSON list for `metadata.managedFields`.
pub fn encode_managed_fields(entries: &[ManagedFieldsEntry]) -> Value {
    let mut sorted: Vec<ManagedFieldsEntry> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .cloned()
        .collect();
    sort_entries(&mut sorted);
    Value::Array(sorted.iter().map(ManagedFieldsEntry::to_json).collect())
}

/// Name of the entry that absorbs the oldest Update entries beyond [`MAX_UPDATE_ENTRIES`].
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// Most Update entries an object keeps.
pub const MAX_UPDATE_ENTRIES: usize = 10;

/// Merges the oldest Update entries into `ancient-changes` entries (one per apiVersion) until at
/// most [`MAX_UPDATE_ENTRIES`] Update entries remain.
pub fn cap_update_entries(entries: &mut Vec<ManagedFieldsEntry>) {
    let mut updaters: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == Operation::Update)
        .collect();
    if updaters.len() <= MAX_UPDATE_ENTRIES {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (p, q) = (&entries[a], &entries[b]);
        p.time
            .clone()
            .unwrap_or_default()
            .cmp(&q.time.clone().unwrap_or_default())
            .then_with(|| p.identity().cmp(&q.identity()))
    });
    let mut length = updaters.len();
    let mut first_of_version: Vec<(String, usize)> = Vec::new();
    let mut removed = vec![false; entries.len()];
    for &i in &updaters {
        if length <= MAX_UPDATE_ENTRIES {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(first) = first_of_version
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, f)| *f)
        else {
            first_of_version.push((version, i));
            continue;
        };
        let bucket_id = ManagedFieldsEntry {
            manager: ANCIENT_CHANGES.into(),
            operation: Operation::Update,
            api_version: version,
            time: None,
            fields: FieldSet::new(),
            subresource: None,
        }
        .identity();
        let existing =
            (0..entries.len()).find(|&b| !removed[b] && entries[b].identity() == bucket_id);
        let bucket = match existing {
            Some(b) => b,
            None => {
                // The first entry of this version becomes the bucket.
                entries[first].manager = ANCIENT_CHANGES.into();
                entries[first].subresource = None;
                first
            }
        };
        if bucket == i {
            continue;
        }
        entries[bucket].fields = entries[i].fields.union(&entries[bucket].fields);
        entries[bucket].time = entries[i].time.clone();
        removed[i] = true;
        length -= 1;
    }
    let mut index = 0;
    entries.retain(|_| {
        let keep = !removed[index];
        index += 1;
        keep
    });
}
