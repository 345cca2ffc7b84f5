//! Schema-guided walks over JSON values: validation, field sets, merge, comparison and removal,
//! following structured-merge-diff's typed operations.

use serde_json::{Map, Value};

use super::fieldset::FieldSet;
use super::path::{Path, PathElement};
use super::schema::{
    Atom, ListSchema, ListType, MapSchema, ScalarType, TypeRef, TypeSchema, UNTYPED_DEDUCED,
};
use super::value::values_equal;

/// A value that does not fit the schema, e.g. `.spec.bogus: field not declared in schema`.
/// Several problems render as the library does: `errors:` then one indented line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_schema_errors(self))]
pub struct SchemaError {
    /// Where the first problem is (empty for the root).
    pub path: Path,
    /// What the first problem is.
    pub message: String,
    /// Further problems, as (path, message).
    pub more: Vec<(Path, String)>,
}

fn render_one(path: &Path, message: &str) -> String {
    if path.0.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

fn render_schema_errors(e: &SchemaError) -> String {
    if e.more.is_empty() {
        return render_one(&e.path, &e.message);
    }
    let mut lines = vec![
        "errors:".to_string(),
        format!("  {}", render_one(&e.path, &e.message)),
    ];
    lines.extend(
        e.more
            .iter()
            .map(|(p, m)| format!("  {}", render_one(p, m))),
    );
    lines.join("\n")
}

fn fallback() -> TypeRef {
    TypeRef::Named(UNTYPED_DEDUCED.into())
}

fn resolve<'a>(schema: &'a TypeSchema, tref: &'a TypeRef) -> &'a Atom {
    // A dangling reference can only come from a hand-built schema; treat it as schemaless rather
    // than fail.
    schema
        .resolve(tref)
        .or_else(|| schema.types.get(UNTYPED_DEDUCED))
        .unwrap_or(&EMPTY_ATOM)
}

static EMPTY_ATOM: Atom = Atom {
    scalar: None,
    list: None,
    map: None,
};

/// Which parts of an atom apply to a value (structured-merge-diff's `deduceAtom`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Kinds {
    scalar: bool,
    list: bool,
    map: bool,
}

fn deduce(atom: &Atom, value: Option<&Value>) -> Kinds {
    let full = Kinds {
        scalar: atom.scalar.is_some(),
        list: atom.list.is_some(),
        map: atom.map.is_some(),
    };
    let only = |scalar, list, map| Kinds { scalar, list, map };
    match value {
        Some(Value::Number(_) | Value::String(_) | Value::Bool(_)) if full.scalar => {
            only(true, false, false)
        }
        Some(Value::Array(_)) if full.list => only(false, true, false),
        Some(Value::Object(_)) if full.map => only(false, false, true),
        _ => full,
    }
}

fn field_type<'a>(map: &'a MapSchema, key: &str) -> Option<&'a TypeRef> {
    map.field(key)
        .map(|f| &f.type_ref)
        .or(map.element_type.as_ref())
}

/// The path element of a list item: its key fields (defaults filled), its value, or its index.
pub(crate) fn list_item_element(
    schema: &TypeSchema,
    list: &ListSchema,
    index: usize,
    item: &Value,
) -> Result<PathElement, String> {
    match &list.list_type {
        ListType::Atomic => Ok(PathElement::Index(index)),
        ListType::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            other => Ok(PathElement::Value(other.clone())),
        },
        ListType::Map { keys } => {
            let Value::Object(fields) = item else {
                return Err(if item.is_null() {
                    "associative list with keys may not have a null element".into()
                } else {
                    "associative list with keys may not have non-map elements".into()
                });
            };
            let element_map = schema
                .resolve(&list.element_type)
                .and_then(|a| a.map.as_ref());
            let mut key = Vec::new();
            for name in keys {
                if let Some(v) = fields.get(name) {
                    key.push((name.clone(), v.clone()));
                } else if let Some(default) = element_map
                    .and_then(|m| m.field(name))
                    .and_then(|f| f.default.clone())
                {
                    key.push((name.clone(), default));
                } else {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {name:?} (and doesn't have default value)"
                    ));
                }
            }
            Ok(PathElement::key(key))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// Checks that `value` fits the schema: declared fields only, matching kinds, keyed list items
/// with their keys and without duplicates.
pub fn validate(schema: &TypeSchema, value: &Value) -> Result<(), SchemaError> {
    validate_with(schema, value, false)
}

/// Like [`validate`], but tolerates duplicate list-map keys and set values, as the server does for
/// objects written by create/update (only applied configurations must be duplicate-free).
pub fn validate_allowing_duplicates(schema: &TypeSchema, value: &Value) -> Result<(), SchemaError> {
    validate_with(schema, value, true)
}

fn validate_with(
    schema: &TypeSchema,
    value: &Value,
    allow_duplicates: bool,
) -> Result<(), SchemaError> {
    let mut checker = Checker {
        schema,
        allow_duplicates,
        path: Vec::new(),
        errors: Vec::new(),
    };
    checker.node(&schema.root, value);
    let mut errors = checker.errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some((path, message)) => Err(SchemaError {
            path,
            message,
            more: errors.collect(),
        }),
    }
}

struct Checker<'a> {
    schema: &'a TypeSchema,
    allow_duplicates: bool,
    path: Vec<PathElement>,
    errors: Vec<(Path, String)>,
}

/// Go's `%T` of a decoded JSON value, which the library's messages print.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

impl Checker<'_> {
    fn fail(&mut self, message: String) {
        self.errors.push((Path(self.path.clone()), message));
    }

    fn node(&mut self, tref: &TypeRef, value: &Value) {
        let schema = self.schema;
        let atom = resolve(schema, tref);
        if value.is_null() {
            return;
        }
        let kinds = deduce(atom, Some(value));
        match value {
            Value::Object(fields) => match atom.map.as_ref().filter(|_| kinds.map) {
                None => self.fail(format!(
                    "expected {}, got {}",
                    expected(atom),
                    super::value::go_json(value)
                )),
                Some(map) if map.atomic => {}
                Some(map) => {
                    for (key, child) in fields {
                        self.path.push(PathElement::Field(key.clone()));
                        match field_type(map, key) {
                            Some(child_type) => self.node(child_type, child),
                            None => self.fail("field not declared in schema".into()),
                        }
                        self.path.pop();
                    }
                }
            },
            Value::Array(items) => match atom.list.as_ref().filter(|_| kinds.list) {
                None => self.fail(format!(
                    "expected {}, got {}",
                    expected(atom),
                    super::value::go_json(value)
                )),
                Some(list) => self.list(list, items),
            },
            scalar => {
                let fits = match atom.scalar.filter(|_| kinds.scalar) {
                    Some(ScalarType::Untyped) => true,
                    Some(ScalarType::String) => scalar.is_string(),
                    Some(ScalarType::Numeric) => scalar.is_number(),
                    Some(ScalarType::Boolean) => scalar.is_boolean(),
                    None => false,
                };
                if !fits {
                    let got = match atom.scalar {
                        Some(ScalarType::Numeric) => go_type(scalar).to_string(),
                        _ => super::value::go_json(scalar),
                    };
                    self.fail(format!("expected {}, got {got}", expected(atom)));
                }
            }
        }
    }

    fn list(&mut self, list: &ListSchema, items: &[Value]) {
        let mut seen = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let pe = match list_item_element(self.schema, list, i, item) {
                Ok(pe) => pe,
                Err(e) => {
                    self.fail(format!("element {i}: {e}"));
                    continue;
                }
            };
            if list.list_type != ListType::Atomic && !self.allow_duplicates {
                if seen.contains(&pe) {
                    self.fail(format!("duplicate entries for key {pe}"));
                    continue;
                }
                seen.push(pe.clone());
            }
            self.path.push(pe);
            self.node(&list.element_type, item);
            self.path.pop();
        }
    }
}

fn expected(atom: &Atom) -> &'static str {
    match (atom.scalar, atom.list.is_some(), atom.map.is_some()) {
        (Some(ScalarType::String), _, _) => "string",
        (Some(ScalarType::Numeric), _, _) => "numeric (int or float)",
        (Some(ScalarType::Boolean), _, _) => "boolean",
        (Some(ScalarType::Untyped), _, _) => "scalar",
        (None, true, _) => "list",
        (None, false, true) => "map",
        _ => "nothing",
    }
}

// ---------------------------------------------------------------------------------------------
// Field set of a value

/// The set of paths a value sets (structured-merge-diff's `ToFieldSet`): leaves, atomic lists/maps,
/// granular list items, null or empty struct fields, and every entry of a free-key map.
pub fn to_field_set(schema: &TypeSchema, value: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    fieldset_node(schema, &schema.root, value, &mut Vec::new(), &mut set);
    set
}

fn fieldset_node(
    schema: &TypeSchema,
    tref: &TypeRef,
    value: &Value,
    path: &mut Vec<PathElement>,
    set: &mut FieldSet,
) {
    let atom = resolve(schema, tref);
    let kinds = deduce(atom, Some(value));
    if let (Some(map), true) = (&atom.map, kinds.map) {
        if map.atomic {
            set.insert(path);
            return;
        }
        let Value::Object(fields) = value else { return };
        for (key, child) in fields {
            let fallback_type = fallback();
            let child_type = field_type(map, key).unwrap_or(&fallback_type);
            path.push(PathElement::Field(key.clone()));
            fieldset_node(schema, child_type, child, path, set);
            let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
            if empty || map.field(key).is_none() {
                set.insert(path);
            }
            path.pop();
        }
    } else if let (Some(_), true) = (&atom.scalar, kinds.scalar) {
        set.insert(path);
    } else if let (Some(list), true) = (&atom.list, kinds.list) {
        if list.list_type == ListType::Atomic {
            set.insert(path);
            return;
        }
        let Value::Array(items) = value else { return };
        let elements: Vec<Option<PathElement>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| list_item_element(schema, list, i, item).ok())
            .collect();
        // Items whose key appears more than once are owned as a whole, without their children
        // (kube-apiserver 1.32 tolerates such duplicates in stored objects).
        let duplicated =
            |pe: &PathElement| elements.iter().flatten().filter(|p| *p == pe).count() > 1;
        for (item, pe) in items.iter().zip(&elements) {
            let Some(pe) = pe else { continue };
            path.push(pe.clone());
            if !duplicated(pe) {
                fieldset_node(schema, &list.element_type, item, path, set);
            }
            set.insert(path);
            path.pop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Merge and compare (one walker, as in structured-merge-diff)

/// Paths added, modified and removed between two values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only in the new value (new non-leaf nodes are members too).
    pub added: FieldSet,
    /// Leaf paths whose value differs.
    pub modified: FieldSet,
    /// Paths only in the old value.
    pub removed: FieldSet,
}

impl Comparison {
    /// True when nothing differs.
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// Drops `fields` and everything below them from all three sets.
    pub fn exclude(&mut self, fields: &FieldSet) {
        self.added = self.added.recursive_difference(fields);
        self.modified = self.modified.recursive_difference(fields);
        self.removed = self.removed.recursive_difference(fields);
    }

    /// Added or modified paths.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

struct Walker<'a> {
    schema: &'a TypeSchema,
    compare: Option<Comparison>,
    path: Vec<PathElement>,
}

#[derive(Default, Clone)]
struct NodeOut {
    out: Option<Value>,
    in_leaf: bool,
}

/// Merges `rhs` (an applied configuration) into `lhs` (the live object): scalars and atomics are
/// replaced, granular maps unioned, keyed list items merged in place (§1.6 order).
pub fn merge(schema: &TypeSchema, lhs: &Value, rhs: &Value) -> Value {
    let mut walker = Walker {
        schema,
        compare: None,
        path: Vec::new(),
    };
    walker
        .node(&schema.root, Some(lhs), Some(rhs))
        .unwrap_or(Value::Null)
}

/// Compares two values of the schema's root type.
pub fn compare(schema: &TypeSchema, lhs: &Value, rhs: &Value) -> Comparison {
    let mut walker = Walker {
        schema,
        compare: Some(Comparison::default()),
        path: Vec::new(),
    };
    walker.node(&schema.root, Some(lhs), Some(rhs));
    walker.compare.unwrap_or_default()
}

impl Walker<'_> {
    fn node(&mut self, tref: &TypeRef, lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
        let schema = self.schema;
        let atom = resolve(schema, tref);
        let kinds_l = deduce(atom, lhs);
        let kinds_r = deduce(atom, rhs);
        let mut state = NodeOut::default();
        if kinds_l != kinds_r {
            let mut discarded = state.clone();
            self.handle(atom, kinds_l, lhs, rhs, &mut discarded);
        }
        self.handle(atom, kinds_r, lhs, rhs, &mut state);
        if !state.in_leaf
            && let Some(cmp) = self.compare.as_mut()
        {
            if lhs.is_none() {
                cmp.added.insert(&self.path);
            } else if rhs.is_none() {
                cmp.removed.insert(&self.path);
            }
        }
        state.out
    }

    fn handle(
        &mut self,
        atom: &Atom,
        kinds: Kinds,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        st: &mut NodeOut,
    ) {
        if let (Some(map), true) = (&atom.map, kinds.map) {
            self.do_map(map, lhs, rhs, st);
        } else if let (Some(_), true) = (&atom.scalar, kinds.scalar) {
            self.leaf(lhs, rhs, st);
        } else if let (Some(list), true) = (&atom.list, kinds.list) {
            self.do_list(list, lhs, rhs, st);
        }
    }

    fn leaf(&mut self, lhs: Option<&Value>, rhs: Option<&Value>, st: &mut NodeOut) {
        if st.in_leaf {
            return;
        }
        st.in_leaf = true;
        match self.compare.as_mut() {
            None => st.out = rhs.or(lhs).cloned(),
            Some(cmp) => match (lhs, rhs) {
                (None, _) => cmp.added.insert(&self.path),
                (_, None) => cmp.removed.insert(&self.path),
                (Some(l), Some(r)) if !values_equal(l, r) => cmp.modified.insert(&self.path),
                _ => {}
            },
        }
    }

    fn do_list(
        &mut self,
        list: &ListSchema,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        st: &mut NodeOut,
    ) {
        let l = lhs.and_then(Value::as_array);
        let r = rhs.and_then(Value::as_array);
        let empty = l.is_none_or(Vec::is_empty) && r.is_none_or(Vec::is_empty);
        if list.list_type == ListType::Atomic || empty {
            self.leaf(lhs, rhs, st);
            return;
        }
        let l_items = self.index_items(list, l.map(Vec::as_slice).unwrap_or_default());
        let r_items = self.index_items(list, r.map(Vec::as_slice).unwrap_or_default());
        let find = |items: &[Group<'_>], pe: &PathElement| -> Option<usize> {
            items.iter().position(|(p, _)| p == pe)
        };
        let mut out = Vec::new();
        let mut emitted = vec![false; l_items.len()];
        let (mut li, mut ri) = (0, 0);
        // Live items keep their places; applied items come in applied order, a new one right after
        // its applied predecessor.
        while li < l_items.len() || ri < r_items.len() {
            if li < l_items.len() && ri < r_items.len() && l_items[li].0 == r_items[ri].0 {
                let (pe, lv) = (&l_items[li].0, &l_items[li].1);
                out.extend(self.item_group(list, pe, lv, &r_items[ri].1));
                emitted[li] = true;
                li += 1;
                ri += 1;
                continue;
            }
            if li < l_items.len() && emitted[li] {
                li += 1;
                continue;
            }
            if li < l_items.len() && find(&r_items, &l_items[li].0).is_none() {
                let (pe, lv) = (&l_items[li].0, &l_items[li].1);
                out.extend(self.item_group(list, pe, lv, &[]));
                emitted[li] = true;
                li += 1;
                continue;
            }
            if ri < r_items.len() {
                let (pe, rv) = (&r_items[ri].0, &r_items[ri].1);
                let matching = find(&l_items, pe);
                let lv = matching
                    .map(|i| l_items[i].1.as_slice())
                    .unwrap_or_default();
                out.extend(self.item_group(list, pe, lv, rv));
                if let Some(i) = matching {
                    emitted[i] = true;
                }
                ri += 1;
                continue;
            }
            li += 1;
        }
        if !out.is_empty() {
            st.out = Some(Value::Array(out));
        }
    }

    /// Items grouped by key, in first-occurrence order.
    fn index_items<'v>(&self, list: &ListSchema, items: &'v [Value]) -> Vec<Group<'v>> {
        let mut indexed: Vec<Group<'v>> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Ok(pe) = list_item_element(self.schema, list, i, item) else {
                continue;
            };
            match indexed.iter_mut().find(|(p, _)| *p == pe) {
                Some((_, group)) => group.push(item),
                None => indexed.push((pe, vec![item])),
            }
        }
        indexed
    }

    /// Merges or compares the items of one key. A key present more than once on either side is
    /// handled atomically: compared as a whole, and replaced by the applied item when there is one.
    fn item_group(
        &mut self,
        list: &ListSchema,
        pe: &PathElement,
        lhs: &[&Value],
        rhs: &[&Value],
    ) -> Vec<Value> {
        if lhs.len() <= 1 && rhs.len() <= 1 {
            return self
                .item(list, pe, lhs.first().copied(), rhs.first().copied())
                .into_iter()
                .collect();
        }
        self.path.push(pe.clone());
        let result = match self.compare.as_mut() {
            None => match rhs.first() {
                Some(r) => vec![(*r).clone()],
                None => lhs.iter().map(|v| (*v).clone()).collect(),
            },
            Some(cmp) => {
                let same =
                    lhs.len() == rhs.len() && lhs.iter().zip(rhs).all(|(l, r)| values_equal(l, r));
                if lhs.is_empty() {
                    cmp.added.insert(&self.path);
                } else if rhs.is_empty() {
                    cmp.removed.insert(&self.path);
                } else if !same {
                    cmp.modified.insert(&self.path);
                }
                Vec::new()
            }
        };
        self.path.pop();
        result
    }

    fn item(
        &mut self,
        list: &ListSchema,
        pe: &PathElement,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
    ) -> Option<Value> {
        self.path.push(pe.clone());
        let out = self.node(&list.element_type, lhs, rhs);
        self.path.pop();
        out
    }

    fn do_map(
        &mut self,
        map: &MapSchema,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        st: &mut NodeOut,
    ) {
        let l = lhs.and_then(Value::as_object);
        let r = rhs.and_then(Value::as_object);
        let empty = l.is_none_or(Map::is_empty) && r.is_none_or(Map::is_empty);
        if map.atomic || empty {
            self.leaf(lhs, rhs, st);
            return;
        }
        let mut keys: Vec<&String> = l.map(|m| m.keys().collect()).unwrap_or_default();
        if let Some(r) = r {
            keys.extend(r.keys().filter(|k| l.is_none_or(|l| !l.contains_key(*k))));
        }
        let mut out = Map::new();
        let fallback_type = fallback();
        for key in keys {
            let child_type = field_type(map, key).unwrap_or(&fallback_type);
            self.path.push(PathElement::Field(key.clone()));
            let child = self.node(
                child_type,
                l.and_then(|m| m.get(key)),
                r.and_then(|m| m.get(key)),
            );
            self.path.pop();
            if let Some(v) = child {
                out.insert(key.clone(), v);
            }
        }
        if !out.is_empty() {
            st.out = Some(Value::Object(out));
        }
    }
}

/// A list key and the items carrying it (more than one for duplicates).
type Group<'v> = (PathElement, Vec<&'v Value>);

// ---------------------------------------------------------------------------------------------
// Removal

/// Removes the paths in `to_remove` from `value` (structured-merge-diff's `RemoveItems`). A map or
/// list emptied by the removal becomes `null`, as in the library; callers drop those nulls.
pub fn remove_items(schema: &TypeSchema, value: &Value, to_remove: &FieldSet) -> Value {
    remove_node(schema, &schema.root, value, to_remove).unwrap_or(Value::Null)
}

fn remove_node(
    schema: &TypeSchema,
    tref: &TypeRef,
    value: &Value,
    to_remove: &FieldSet,
) -> Option<Value> {
    let atom = resolve(schema, tref);
    let kinds = deduce(atom, Some(value));
    if let (Some(map), true) = (&atom.map, kinds.map) {
        let fields = value.as_object().filter(|m| !m.is_empty() && !map.atomic)?;
        let mut out = Map::new();
        let fallback_type = fallback();
        for (key, child) in fields {
            let pe = PathElement::Field(key.clone());
            if to_remove.has(std::slice::from_ref(&pe)) {
                continue;
            }
            let subset = to_remove.with_prefix(&pe);
            let kept = if subset.is_empty() {
                child.clone()
            } else {
                let child_type = field_type(map, key).unwrap_or(&fallback_type);
                remove_node(schema, child_type, child, &subset).unwrap_or(Value::Null)
            };
            out.insert(key.clone(), kept);
        }
        (!out.is_empty()).then_some(Value::Object(out))
    } else if let (Some(_), true) = (&atom.scalar, kinds.scalar) {
        Some(value.clone())
    } else if let (Some(list), true) = (&atom.list, kinds.list) {
        let items = value
            .as_array()
            .filter(|l| !l.is_empty() && list.list_type != ListType::Atomic)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Ok(pe) = list_item_element(schema, list, i, item) else {
                out.push(item.clone());
                continue;
            };
            if to_remove.has(std::slice::from_ref(&pe)) {
                continue;
            }
            let subset = to_remove.with_prefix(&pe);
            if subset.is_empty() {
                out.push(item.clone());
            } else {
                out.push(
                    remove_node(schema, &list.element_type, item, &subset).unwrap_or(Value::Null),
                );
            }
        }
        (!out.is_empty()).then_some(Value::Array(out))
    } else {
        None
    }
}

/// Drops map entries whose value is `null`, recursively (the typed decode of the real server drops
/// them for built-ins, and structural pruning does for custom resources).
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
