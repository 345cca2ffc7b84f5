//! The structural schema model server-side apply works on (the structured-merge-diff model).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Name of the type for schemaless data whose maps are atomic too (one leaf).
pub const UNTYPED_ATOMIC: &str = "__untyped_atomic_";
/// Name of the type for schemaless (preserve-unknown) data: map keys are granular, lists atomic.
pub const UNTYPED_DEDUCED: &str = "__untyped_deduced_";

/// The structure of one object type: named type definitions and the root type.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSchema {
    /// The object's own type.
    pub root: TypeRef,
    /// Named types referenced from `root` (always includes the two untyped types).
    pub types: BTreeMap<String, Atom>,
    /// The value a create starts from: for built-ins the Go zero value of the type (non-pointer
    /// structs as `{}`, non-omitempty nil lists as `null`), which decides whether a created node
    /// counts as added (and is owned with `"."`); `{}` for custom resources.
    pub empty_object: Value,
}

/// A reference to a type: by name, or an inline definition.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeRef {
    /// A type in [`TypeSchema::types`].
    Named(String),
    /// An anonymous type.
    Inline(Box<Atom>),
}

/// What a value at some position may be. Schemaless types allow several kinds at once; the value
/// decides which applies.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Atom {
    /// Allowed as a scalar.
    pub scalar: Option<ScalarType>,
    /// Allowed as a list.
    pub list: Option<ListSchema>,
    /// Allowed as a struct or map.
    pub map: Option<MapSchema>,
}

/// Scalar kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    /// JSON string.
    String,
    /// JSON number (int or float).
    Numeric,
    /// JSON boolean.
    Boolean,
    /// Any scalar (int-or-string, schemaless data).
    Untyped,
}

/// A struct (declared `fields`) and/or a map with free keys (`element_type`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MapSchema {
    /// Declared fields, in declaration order.
    pub fields: Vec<StructField>,
    /// Type of keys that are not declared fields; `None` means undeclared keys are rejected
    /// (`field not declared in schema`).
    pub element_type: Option<TypeRef>,
    /// Owned and replaced as a whole (`x-kubernetes-map-type: atomic`, LabelSelector).
    pub atomic: bool,
}

impl MapSchema {
    /// The declared field `name`.
    pub fn field(&self, name: &str) -> Option<&StructField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A declared field of a struct.
#[derive(Clone, Debug, PartialEq)]
pub struct StructField {
    /// JSON name.
    pub name: String,
    /// Its type.
    pub type_ref: TypeRef,
    /// Default value; used to fill a missing list-map key field when keying an item (a container
    /// port without `protocol` is keyed with `"protocol":"TCP"`).
    pub default: Option<Value>,
}

/// A list and how its items are owned.
#[derive(Clone, Debug, PartialEq)]
pub struct ListSchema {
    /// Item type.
    pub element_type: TypeRef,
    /// Atomic, set or map.
    pub list_type: ListType,
}

/// `x-kubernetes-list-type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// One leaf, replaced wholesale (the default for unmarked lists).
    Atomic,
    /// Scalars keyed by value.
    Set,
    /// Objects keyed by the named fields.
    Map {
        /// `x-kubernetes-list-map-keys`.
        keys: Vec<String>,
    },
}

impl TypeSchema {
    /// A schema whose root is `root`, with the untyped helper types added.
    pub fn new(root: TypeRef, mut types: BTreeMap<String, Atom>) -> Self {
        types.insert(UNTYPED_ATOMIC.into(), untyped_atom(UNTYPED_ATOMIC, true));
        types.insert(UNTYPED_DEDUCED.into(), untyped_atom(UNTYPED_ATOMIC, false));
        if let Some(deduced) = types.get_mut(UNTYPED_DEDUCED)
            && let Some(map) = deduced.map.as_mut()
        {
            map.element_type = Some(TypeRef::Named(UNTYPED_DEDUCED.into()));
        }
        TypeSchema {
            root,
            types,
            empty_object: json!({}),
        }
    }

    /// A schema for fully schemaless objects (every key granular, lists atomic).
    pub fn schemaless() -> Self {
        Self::new(TypeRef::Named(UNTYPED_DEDUCED.into()), BTreeMap::new())
    }

    /// The definition a reference points to.
    pub fn resolve<'a>(&'a self, tref: &'a TypeRef) -> Option<&'a Atom> {
        match tref {
            TypeRef::Named(name) => self.types.get(name),
            TypeRef::Inline(atom) => Some(atom),
        }
    }

    /// Exports the schema in structured-merge-diff's schema format (JSON, which is valid YAML), the
    /// root named `root_name`, for the reference oracle.
    pub fn to_smd_schema(&self, root_name: &str) -> Value {
        let mut types = Vec::new();
        let root = match &self.root {
            TypeRef::Named(name) => self.types.get(name).cloned().unwrap_or_default(),
            TypeRef::Inline(atom) => (**atom).clone(),
        };
        let mut root_json = atom_to_smd(&root);
        root_json["name"] = json!(root_name);
        types.push(root_json);
        for (name, atom) in &self.types {
            let mut entry = atom_to_smd(atom);
            entry["name"] = json!(name);
            types.push(entry);
        }
        json!({ "types": types })
    }
}

fn untyped_atom(element: &str, atomic_map: bool) -> Atom {
    Atom {
        scalar: Some(ScalarType::Untyped),
        list: Some(ListSchema {
            element_type: TypeRef::Named(UNTYPED_ATOMIC.into()),
            list_type: ListType::Atomic,
        }),
        map: Some(MapSchema {
            fields: Vec::new(),
            element_type: Some(TypeRef::Named(element.into())),
            atomic: atomic_map,
        }),
    }
}

fn type_ref_to_smd(tref: &TypeRef) -> Value {
    match tref {
        TypeRef::Named(name) => json!({ "namedType": name }),
        TypeRef::Inline(atom) => atom_to_smd(atom),
    }
}

fn atom_to_smd(atom: &Atom) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(scalar) = atom.scalar {
        let name = match scalar {
            ScalarType::String => "string",
            ScalarType::Numeric => "numeric",
            ScalarType::Boolean => "boolean",
            ScalarType::Untyped => "untyped",
        };
        out.insert("scalar".into(), json!(name));
    }
    if let Some(list) = &atom.list {
        let mut l = serde_json::Map::new();
        l.insert("elementType".into(), type_ref_to_smd(&list.element_type));
        match &list.list_type {
            ListType::Atomic => {
                l.insert("elementRelationship".into(), json!("atomic"));
            }
            ListType::Set => {
                l.insert("elementRelationship".into(), json!("associative"));
            }
            ListType::Map { keys } => {
                l.insert("elementRelationship".into(), json!("associative"));
                l.insert("keys".into(), json!(keys));
            }
        }
        out.insert("list".into(), Value::Object(l));
    }
    if let Some(map) = &atom.map {
        let mut m = serde_json::Map::new();
        if !map.fields.is_empty() {
            let fields: Vec<Value> = map
                .fields
                .iter()
                .map(|f| {
                    let mut field = json!({ "name": f.name, "type": type_ref_to_smd(&f.type_ref) });
                    if let Some(default) = &f.default {
                        field["default"] = default.clone();
                    }
                    field
                })
                .collect();
            m.insert("fields".into(), Value::Array(fields));
        }
        if let Some(element) = &map.element_type {
            m.insert("elementType".into(), type_ref_to_smd(element));
        }
        m.insert(
            "elementRelationship".into(),
            json!(if map.atomic { "atomic" } else { "separable" }),
        );
        out.insert("map".into(), Value::Object(m));
    }
    Value::Object(out)
}
