//! Field sets: the paths a manager owns, and their FieldsV1 encoding.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::path::{Path, PathElement};
use super::schema::{TypeRef, TypeSchema};

/// A set of paths, stored as a trie: `members` are paths ending at this node, `children` hold longer
/// paths. The root itself is never a member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

/// Why a FieldsV1 value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FieldsV1: {0}")]
pub struct FieldsV1Error(pub String);

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding the given field-name paths, e.g. `FieldSet::from_field_paths(&[&["status"]])`.
    pub fn from_field_paths(paths: &[&[&str]]) -> Self {
        let mut set = Self::new();
        for path in paths {
            set.insert(&Path::fields(path).0);
        }
        set
    }

    /// A set holding exactly the given paths.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut set = Self::new();
        for path in paths {
            set.insert(&path.0);
        }
        set
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    /// Adds a path. The empty path is ignored (the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// True when the exact path is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// The paths below `element`, with `element` removed from their front.
    pub fn with_prefix(&self, element: &PathElement) -> FieldSet {
        self.children.get(element).cloned().unwrap_or_default()
    }

    fn normalized(mut self) -> Self {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.normalized()
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                other
                    .children
                    .get(pe)
                    .map(|o| (pe.clone(), c.intersection(o)))
            })
            .collect();
        FieldSet { members, children }.normalized()
    }

    /// Paths in `self` but not in `other` (exact paths; descendants of a removed member stay).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, c)| match other.children.get(pe) {
                Some(o) => (pe.clone(), c.difference(o)),
                None => (pe.clone(), c.clone()),
            })
            .collect();
        FieldSet { members, children }.normalized()
    }

    /// Paths in `self` that are neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .map(|(pe, c)| match other.children.get(pe) {
                Some(o) => (pe.clone(), c.recursive_difference(o)),
                None => (pe.clone(), c.clone()),
            })
            .collect();
        FieldSet { members, children }.normalized()
    }

    /// Every path, members of a node before the paths below it, each group in element order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for member in &self.members {
            prefix.push(member.clone());
            out.push(Path(prefix.clone()));
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Adds, as members, the struct fields (declared fields) on the way to every path, as
    /// structured-merge-diff does before pruning, so that removing a path also removes the named
    /// fields that only existed to hold it.
    pub(crate) fn ensure_named_fields_are_members(
        &self,
        schema: &TypeSchema,
        tref: Option<&TypeRef>,
    ) -> FieldSet {
        let atom = tref.and_then(|t| schema.resolve(t));
        let mut members = self.members.clone();
        let mut children = BTreeMap::new();
        for (pe, child) in &self.children {
            let mut child_type = None;
            match pe {
                PathElement::Field(name) => {
                    if let Some(map) = atom.and_then(|a| a.map.as_ref()) {
                        if let Some(field) = map.field(name) {
                            members.insert(pe.clone());
                            child_type = Some(&field.type_ref);
                        } else {
                            child_type = map.element_type.as_ref();
                        }
                    }
                }
                PathElement::Key(_) => {
                    child_type = atom.and_then(|a| a.list.as_ref()).map(|l| &l.element_type)
                }
                _ => {}
            }
            children.insert(
                pe.clone(),
                child.ensure_named_fields_are_members(schema, child_type),
            );
        }
        FieldSet { members, children }
    }

    /// Decodes a `fieldsV1` JSON object.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldsV1Error> {
        let Value::Object(map) = value else {
            return Err(FieldsV1Error("expected a JSON object".into()));
        };
        let mut set = FieldSet::new();
        for (key, child) in map {
            if key == "." {
                continue;
            }
            let pe = PathElement::from_fields_v1_key(key).map_err(FieldsV1Error)?;
            let Value::Object(child_map) = child else {
                return Err(FieldsV1Error(format!("{key}: expected a JSON object")));
            };
            if child_map.is_empty() || child_map.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let sub = FieldSet::from_fields_v1(child)?;
            if !sub.is_empty() {
                set.children.insert(pe, sub);
            }
        }
        Ok(set)
    }

    /// Encodes as a `fieldsV1` JSON object: `"."` first for a node that is both a member and has
    /// children, then elements in order (`f:`, `k:`, `v:`, `i:`).
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode_node(false))
    }

    fn encode_node(&self, is_member: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if is_member && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let elements: BTreeSet<&PathElement> =
            self.members.iter().chain(self.children.keys()).collect();
        for pe in elements {
            let member = self.members.contains(pe);
            let encoded = match self.children.get(pe) {
                Some(child) => child.encode_node(member),
                None => Map::new(),
            };
            if encoded.is_empty() && !member {
                continue;
            }
            out.insert(pe.to_fields_v1_key(), Value::Object(encoded));
        }
        out
    }
}
