//! Validation of manifests of the kinds fieldwise serves (FeatureStore, PrismCluster) as the API
//! server would judge them on create (or update), using fieldwise's own generated CRDs: strict field
//! validation (unknown fields), pruning, defaulting, OpenAPI schema, scale subresource and CEL rules,
//! worded as the API server words them. Text in, structured report out; no I/O.

use std::fmt;
use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresourceScale, JSONSchemaProps,
};
use serde_json::Value;

use crate::schema::{self, FieldError};

/// The FeatureStore's group, version and kind.
pub const GROUP: &str = "feast.dev";
pub const VERSION: &str = "v1";
pub const KIND: &str = "FeatureStore";

/// The outcome of checking one YAML file (or stdin).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub documents: Vec<DocumentReport>,
}

impl Report {
    /// True when no document was rejected or malformed (skipped documents do not count).
    pub fn is_valid(&self) -> bool {
        self.documents.iter().all(|d| !d.outcome.is_failure())
    }
}

/// One YAML document of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentReport {
    /// 1-based position among the file's documents.
    pub index: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// An object of a served kind the API server would accept.
    Valid {
        /// The kind qualified by its group, as the API server names it: `FeatureStore.feast.dev`.
        resource: String,
        name: String,
    },
    /// Not of a kind fieldwise serves (or an empty document): not checked.
    Skipped { note: String },
    /// An object of a served kind the API server would reject.
    Rejected(Rejection),
    /// The document is not valid YAML.
    Malformed(SyntaxError),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Rejected(_) | Outcome::Malformed(_))
    }
}

/// Why the API server would refuse an object, with its exact message.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The API server's message, e.g. `FeatureStore.feast.dev "sample" is invalid: spec: Invalid value: …`.
    pub message: String,
    /// The kind and name of the refused object (what kubectl names in its message).
    pub kind: String,
    pub name: String,
    /// Fields strict field validation reports as unknown (the request fails before validation).
    pub unknown_fields: Vec<String>,
    /// The field errors behind a 422 `Invalid`.
    pub errors: Vec<FieldError>,
}

impl Rejection {
    /// What kubectl prints when the API server gives this answer: for invalid objects, `The
    /// FeatureStore "x" is invalid: <field>: <message>`, or that line and one `* <field>:
    /// <message>` line per error ([`schema::kubectl_invalid_message`]); otherwise the message.
    pub fn kubectl_message(&self) -> String {
        if self.errors.is_empty() {
            return self.message.clone();
        }
        schema::kubectl_invalid_message(&self.kind, &self.name, &self.errors)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A YAML syntax error, located in the whole input (1-based line and column).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Checks every document of a (multi-document) YAML text: FeatureStores (`feast.dev/v1`) and
/// PrismClusters (`prism.io/v1alpha1`) are validated as on create; other kinds are skipped with a
/// note; malformed documents are reported with their line and the following documents are still
/// checked.
pub fn validate_manifests(text: &str) -> Report {
    let documents = split_documents(text)
        .into_iter()
        .enumerate()
        .map(|(i, doc)| DocumentReport {
            index: i + 1,
            line: doc.first_line,
            outcome: check_document(&doc),
        })
        .collect();
    Report { documents }
}

/// Validates one FeatureStore object as the API server does on create.
pub fn validate_feature_store(object: &Value) -> Result<(), Rejection> {
    validate_create(our_crd(GROUP, KIND)?, object)
}

/// Validates an update of a stored FeatureStore `old` to `new` through the main endpoint: transition
/// rules (such as `PvcCreate is immutable`) compare with the old object, and unchanged values ratchet.
pub fn validate_feature_store_update(old: &Value, new: &Value) -> Result<(), Rejection> {
    validate_update(our_crd(GROUP, KIND)?, old, new)
}

/// Validates one PrismCluster object as the API server does on create.
pub fn validate_prism_cluster(object: &Value) -> Result<(), Rejection> {
    validate_create(our_crd(crate::prism::GROUP, crate::prism::KIND)?, object)
}

/// Validates an update of a stored PrismCluster `old` to `new` through the main endpoint.
pub fn validate_prism_cluster_update(old: &Value, new: &Value) -> Result<(), Rejection> {
    validate_update(our_crd(crate::prism::GROUP, crate::prism::KIND)?, old, new)
}

/// fieldwise's generated CRDs; generating them is costly, so it is done once per process.
fn served_crds() -> &'static [CustomResourceDefinition] {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(crate::crds)
}

/// The served CRD of `kind` in `group`.
fn served_crd(group: &str, kind: &str) -> Option<&'static CustomResourceDefinition> {
    served_crds()
        .iter()
        .find(|crd| crd.spec.group == group && crd.spec.names.kind == kind)
}

fn our_crd(group: &str, kind: &str) -> Result<&'static CustomResourceDefinition, Rejection> {
    served_crd(group, kind).ok_or_else(|| no_match(kind, group))
}

/// Validates `object` as the API server does when it is created as a resource of `crd` (any CRD):
/// strict decoding (unknown fields), pruning, defaulting, then schema, scale and CEL validation of
/// the served version named by the object's `apiVersion`.
pub fn validate_create(crd: &CustomResourceDefinition, object: &Value) -> Result<(), Rejection> {
    let target = Target::new(crd, object)?;
    let mut new = object.clone();
    target.decode(&mut new)?;
    target.check(&new, None)
}

/// Validates an update from the stored `old` to `new` of a resource of `crd` through the main endpoint.
pub fn validate_update(
    crd: &CustomResourceDefinition,
    old: &Value,
    new: &Value,
) -> Result<(), Rejection> {
    let target = Target::new(crd, new)?;
    let mut stored = old.clone();
    // The stored object went through the same decoding; its unknown fields were dropped then.
    schema::prune_unknown(target.schema, &mut stored);
    schema::apply_defaults(target.schema, &mut stored);
    drop_status(&mut stored);
    let mut updated = new.clone();
    target.decode(&mut updated)?;
    target.check(&updated, Some(&stored))
}

/// The served version of a CRD an object is written as.
struct Target<'a> {
    kind: &'a str,
    group: &'a str,
    version: &'a str,
    schema: &'a JSONSchemaProps,
    scale: Option<&'a CustomResourceSubresourceScale>,
}

impl<'a> Target<'a> {
    fn new(crd: &'a CustomResourceDefinition, object: &Value) -> Result<Target<'a>, Rejection> {
        let kind = crd.spec.names.kind.as_str();
        let group = crd.spec.group.as_str();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let wanted = api_version
            .strip_prefix(group)
            .and_then(|v| v.strip_prefix('/'));
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.served && Some(v.name.as_str()) == wanted)
            .ok_or_else(|| retired_or_no_match(crd, kind, api_version, wanted))?;
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .ok_or_else(|| no_match(kind, api_version))?;
        let scale = version.subresources.as_ref().and_then(|s| s.scale.as_ref());
        Ok(Target {
            kind,
            group,
            version: &version.name,
            schema,
            scale,
        })
    }

    /// Strict decoding, pruning and defaulting; the main endpoint then ignores `status`.
    fn decode(&self, object: &mut Value) -> Result<(), Rejection> {
        let unknown = schema::prune_unknown(self.schema, object);
        if !unknown.is_empty() {
            return Err(strict_decoding_error(self.kind, self.version, unknown));
        }
        schema::apply_defaults(self.schema, object);
        drop_status(object);
        Ok(())
    }

    fn check(&self, object: &Value, old: Option<&Value>) -> Result<(), Rejection> {
        let errors = schema::validate_custom_resource(self.schema, self.scale, object, old);
        if errors.is_empty() {
            return Ok(());
        }
        Err(Rejection {
            message: schema::invalid_message(self.kind, self.group, &object_name(object), &errors),
            kind: self.kind.to_owned(),
            name: object_name(object),
            unknown_fields: Vec::new(),
            errors,
        })
    }
}

/// What kubectl reports when no served version matches.
/// A version the CRD lists without serving it says what to use instead; any other, what the API
/// server says.
fn retired_or_no_match(
    crd: &CustomResourceDefinition,
    kind: &str,
    api_version: &str,
    wanted: Option<&str>,
) -> Rejection {
    let retired = crd
        .spec
        .versions
        .iter()
        .find(|v| !v.served && Some(v.name.as_str()) == wanted)
        .and_then(|v| v.deprecation_warning.clone());
    match retired {
        Some(message) => Rejection {
            message,
            kind: kind.to_owned(),
            name: String::new(),
            unknown_fields: Vec::new(),
            errors: Vec::new(),
        },
        None => no_match(kind, api_version),
    }
}

fn no_match(kind: &str, api_version: &str) -> Rejection {
    Rejection {
        message: format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
        kind: kind.to_owned(),
        name: String::new(),
        unknown_fields: Vec::new(),
        errors: Vec::new(),
    }
}

fn drop_status(object: &mut Value) {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
}

fn object_name(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The 400 the API server answers with `fieldValidation=Strict` (kubectl's default) for unknown fields.
fn strict_decoding_error(kind: &str, version: &str, unknown: Vec<String>) -> Rejection {
    Rejection {
        message: strict_decoding_message(kind, version, &unknown),
        kind: kind.to_owned(),
        name: String::new(),
        unknown_fields: unknown,
        errors: Vec::new(),
    }
}

/// The message of the API server's 400 BadRequest for unknown fields under strict field validation:
/// `FeatureStore in version "v1" cannot be handled as a FeatureStore: strict decoding error: unknown
/// field "spec.bogus"` (`unknown` as returned by [`schema::prune_unknown`]).
pub fn strict_decoding_message(kind: &str, version: &str, unknown: &[String]) -> String {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        fields.join(", ")
    )
}

fn check_document(doc: &Document) -> Outcome {
    let value: Value = match serde_saphyr::from_str(&doc.text) {
        Ok(value) => value,
        Err(err) => return Outcome::Malformed(syntax_error(&err, doc.first_line)),
    };
    if value.is_null() {
        return Outcome::Skipped {
            note: "empty document".to_owned(),
        };
    }
    let Some(map) = value.as_object() else {
        return Outcome::Skipped {
            note: "not a Kubernetes object (not a mapping)".to_owned(),
        };
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = object_name(&value);
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let Some(crd) = served_crd(group, kind) else {
        let what = if kind.is_empty() {
            "object without a kind".to_owned()
        } else {
            format!("{kind} {name:?} ({api_version})")
        };
        return Outcome::Skipped {
            note: format!(
                "skipped {what}: not a kind fieldwise serves ({})",
                served_kinds()
            ),
        };
    };
    // An unserved version of a served kind is what kubectl cannot map: `validate_create` says so.
    match validate_create(crd, &value) {
        Ok(()) => Outcome::Valid {
            resource: format!("{kind}.{group}"),
            name,
        },
        Err(rejection) => Outcome::Rejected(rejection),
    }
}

/// `feast.dev/v1 FeatureStore, prism.io/v1alpha1 PrismCluster`.
fn served_kinds() -> String {
    let kinds: Vec<String> = served_crds()
        .iter()
        .flat_map(|crd| {
            crd.spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(move |v| format!("{}/{} {}", crd.spec.group, v.name, crd.spec.names.kind))
        })
        .collect();
    kinds.join(", ")
}

fn syntax_error(err: &serde_saphyr::Error, first_line: usize) -> SyntaxError {
    let (line, column) = err
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let rendered = err.to_string();
    let message = parser_message(rendered.lines().next().unwrap_or_default()).to_owned();
    SyntaxError {
        line: first_line + line.max(1) - 1,
        column: column.max(1),
        message,
    }
}

/// The parser's text without its `error: line N column M: ` prefix, whose position is relative to the
/// document rather than the file.
fn parser_message(line: &str) -> &str {
    let rest = line.strip_prefix("error: ").unwrap_or(line);
    let Some(after_line) = rest.strip_prefix("line ") else {
        return rest;
    };
    match after_line.split_once(": ") {
        Some((position, message)) if position.contains(" column ") => message,
        _ => rest,
    }
}

/// One document's text and where it starts in the input.
struct Document {
    first_line: usize,
    text: String,
}

/// Splits a YAML stream at `---` document markers (content on the marker line stays with the new
/// document; `...` ends a document). Lines keep their columns so parser positions stay true.
fn split_documents(text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut first_line = 1;
    let mut seen_marker = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(char::is_whitespace);
        if is_marker {
            if seen_marker || current.iter().any(|l| has_content(l)) {
                documents.push(Document {
                    first_line,
                    text: current.join("\n"),
                });
            }
            seen_marker = true;
            current = vec![format!("   {}", &line[3..])];
            first_line = line_no;
        } else if line == "..." {
            current.push(String::new());
        } else {
            if current.is_empty() {
                first_line = line_no;
            }
            current.push(line.to_owned());
        }
    }
    if seen_marker || current.iter().any(|l| has_content(l)) {
        documents.push(Document {
            first_line,
            text: current.join("\n"),
        });
    }
    documents
}

fn has_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}
