//! Server-side apply as kube-apiserver 1.32 does it (contract: `shared/spec/ssa-semantics.md`):
//! schemas with list types and keys, field sets and their FieldsV1 encoding, merge, pruning,
//! conflicts, and the managedFields bookkeeping of applies and non-apply writes.
//!
//! Everything here is pure and synchronous. The emulator calls [`apply`] for every apply patch and
//! [`update`] for every other write (create, update, merge/JSON/strategic patch, `/status`,
//! `/scale`), then defaults, validates and stores the returned object itself.
//!
//! Entry points:
//! - [`TypeSchema::builtin`] / [`TypeSchema::from_crd_schema`]: the schema of a type.
//! - [`apply`] → [`WriteOutcome`] or [`ApplyError`] ([`ApplyConflict::to_status`] is the 409 body).
//! - [`update`] → [`WriteOutcome`].
//! - [`FieldSet`], [`ManagedFieldsEntry`]: field sets and managedFields entries, with their exact
//!   JSON encodings.
//!
//! The algorithm follows sigs.k8s.io/structured-merge-diff (merge, compare, field sets, pruning)
//! and the apiserver's managedfields layer (stripped metadata, before-first-apply, 10 Update
//! entries cap, entry ordering, reset fields); it is tested against the real library through
//! `shared/tools/smd-oracle` (goldens in `e2e/testdata/ssa/golden`).

mod builtin;
mod conflict;
mod crd;
mod engine;
mod fieldset;
mod managed;
mod path;
mod schema;
mod value;
mod walk;

pub use conflict::{ApplyConflict, Conflict, ConflictCause};
pub use engine::{
    ApplyError, ApplyOptions, BEFORE_FIRST_APPLY, UpdateOptions, WriteOutcome, apply,
    endpoint_reset_fields, stripped_fields, update,
};
pub use fieldset::{FieldSet, FieldsV1Error};
pub use managed::{
    ANCIENT_CHANGES, MAX_UPDATE_ENTRIES, ManagedFieldsEntry, ManagedFieldsError, Operation,
    cap_update_entries, decode_managed_fields, encode_managed_fields, sort_entries,
};
pub use path::{Path, PathElement};
pub use schema::{
    Atom, ListSchema, ListType, MapSchema, ScalarType, StructField, TypeRef, TypeSchema,
    UNTYPED_ATOMIC, UNTYPED_DEDUCED,
};
pub use walk::{
    Comparison, SchemaError, compare, merge, to_field_set, validate, validate_allowing_duplicates,
};

/// The field set an applied configuration gives its manager (§1.2): the configuration's paths minus
/// the stripped metadata paths and the endpoint's reset fields. Fails on undeclared fields.
pub fn fieldset_of_applied(
    schema: &TypeSchema,
    config: &serde_json::Value,
    reset_fields: &FieldSet,
) -> Result<FieldSet, SchemaError> {
    validate(schema, config)?;
    Ok(to_field_set(schema, config)
        .recursive_difference(reset_fields)
        .difference(&stripped_fields()))
}
