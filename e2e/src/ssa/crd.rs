//! [`TypeSchema`] from a CRD version's `openAPIV3Schema`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray,
};

use super::schema::{
    Atom, ListSchema, ListType, MapSchema, ScalarType, StructField, TypeRef, TypeSchema,
    UNTYPED_ATOMIC, UNTYPED_DEDUCED,
};

impl TypeSchema {
    /// Builds the schema of a custom resource from its structural `openAPIV3Schema`: honours
    /// `x-kubernetes-list-type`, `-list-map-keys`, `-map-type`, `-preserve-unknown-fields`,
    /// `-int-or-string` and `-embedded-resource`. The server-filled `apiVersion`, `kind` and
    /// `metadata` are declared even when the schema omits them.
    pub fn from_crd_schema(props: &JSONSchemaProps) -> TypeSchema {
        let mut root = props_to_atom(props);
        if let Some(map) = root.map.as_mut() {
            ensure_object_meta_fields(map);
        }
        TypeSchema::new(TypeRef::Inline(Box::new(root)), BTreeMap::new())
    }
}

/// Adds `apiVersion`, `kind` and a schemaless-but-granular `metadata` when the schema lacks them.
pub(crate) fn ensure_object_meta_fields(map: &mut MapSchema) {
    for name in ["apiVersion", "kind"] {
        if map.field(name).is_none() {
            map.fields.push(StructField {
                name: name.into(),
                type_ref: scalar(ScalarType::String),
                default: None,
            });
        }
    }
    let meta = super::builtin::object_meta_ref();
    match map.fields.iter_mut().find(|f| f.name == "metadata") {
        Some(field) => field.type_ref = meta,
        None => map.fields.push(StructField {
            name: "metadata".into(),
            type_ref: meta,
            default: None,
        }),
    }
}

fn scalar(kind: ScalarType) -> TypeRef {
    TypeRef::Inline(Box::new(Atom {
        scalar: Some(kind),
        ..Atom::default()
    }))
}

fn props_to_type(props: &JSONSchemaProps) -> TypeRef {
    TypeRef::Inline(Box::new(props_to_atom(props)))
}

fn props_to_atom(props: &JSONSchemaProps) -> Atom {
    if props.x_kubernetes_int_or_string == Some(true) {
        return Atom {
            scalar: Some(ScalarType::Untyped),
            ..Atom::default()
        };
    }
    let preserve = props.x_kubernetes_preserve_unknown_fields == Some(true);
    match props.type_.as_deref() {
        Some("object") | None
            if props.properties.is_some()
                || props.additional_properties.is_some()
                || preserve
                || props.x_kubernetes_embedded_resource == Some(true) =>
        {
            object_atom(props, preserve)
        }
        Some("object") => object_atom(props, preserve),
        Some("array") => {
            let element = match &props.items {
                Some(JSONSchemaPropsOrArray::Schema(item)) => props_to_type(item),
                Some(JSONSchemaPropsOrArray::Schemas(items)) => items
                    .first()
                    .map(props_to_type)
                    .unwrap_or(TypeRef::Named(UNTYPED_DEDUCED.into())),
                None => TypeRef::Named(UNTYPED_ATOMIC.into()),
            };
            let list_type = match props.x_kubernetes_list_type.as_deref() {
                Some("set") => ListType::Set,
                Some("map") => ListType::Map {
                    keys: props.x_kubernetes_list_map_keys.clone().unwrap_or_default(),
                },
                _ => ListType::Atomic,
            };
            Atom {
                list: Some(ListSchema {
                    element_type: element,
                    list_type,
                }),
                ..Atom::default()
            }
        }
        Some("string") => Atom {
            scalar: Some(ScalarType::String),
            ..Atom::default()
        },
        Some("integer" | "number") => Atom {
            scalar: Some(ScalarType::Numeric),
            ..Atom::default()
        },
        Some("boolean") => Atom {
            scalar: Some(ScalarType::Boolean),
            ..Atom::default()
        },
        _ => Atom {
            scalar: Some(ScalarType::Untyped),
            ..Atom::default()
        },
    }
}

fn object_atom(props: &JSONSchemaProps, preserve: bool) -> Atom {
    let mut fields: Vec<StructField> = props
        .properties
        .iter()
        .flatten()
        .map(|(name, child)| StructField {
            name: name.clone(),
            type_ref: props_to_type(child),
            default: child.default.as_ref().map(|d| d.0.clone()),
        })
        .collect();
    let element_type = match &props.additional_properties {
        Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(s)) => {
            Some(props_to_type(s))
        }
        Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Bool(true)) => {
            Some(TypeRef::Named(UNTYPED_DEDUCED.into()))
        }
        _ if preserve => Some(TypeRef::Named(UNTYPED_DEDUCED.into())),
        _ => None,
    };
    let mut map = MapSchema {
        fields: Vec::new(),
        element_type,
        atomic: props.x_kubernetes_map_type.as_deref() == Some("atomic"),
    };
    if props.x_kubernetes_embedded_resource == Some(true) {
        map.fields = std::mem::take(&mut fields);
        ensure_object_meta_fields(&mut map);
    } else {
        map.fields = fields;
    }
    Atom {
        map: Some(map),
        ..Atom::default()
    }
}
