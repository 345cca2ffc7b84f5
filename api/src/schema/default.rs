//! Structural defaulting, as the API server applies it to custom resources on every decode.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use super::node::{self, Additional};

/// Applies schema `default`s to `value`: a default is set only where its parent object exists and
/// the field is absent (or null while not nullable). Nulls in non-nullable fields without a default
/// are dropped first, as the API server does.
pub fn apply_defaults(schema: &JSONSchemaProps, value: &mut Value) {
    drop_non_nullable_nulls(schema, value);
    default(schema, value);
}

fn is_non_nullable_null(value: &Value, schema: &JSONSchemaProps) -> bool {
    value.is_null() && !node::nullable(schema)
}

fn drop_non_nullable_nulls(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| match node::child_schema(schema, k) {
                Some(child) => !(is_non_nullable_null(v, child) && node::default(child).is_none()),
                None => true,
            });
            for (k, v) in map.iter_mut() {
                if let Some(child) = node::child_schema(schema, k) {
                    drop_non_nullable_nulls(child, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node::items(schema) {
                for item in items {
                    drop_non_nullable_nulls(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn default(schema: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = node::properties(schema) {
                for (k, prop) in props {
                    let Some(default) = node::default(prop) else {
                        continue;
                    };
                    let missing = map.get(k).is_none_or(|v| is_non_nullable_null(v, prop));
                    if missing {
                        map.insert(k.clone(), default.clone());
                    }
                }
            }
            let additional = match node::additional(schema) {
                Additional::Schema(s) => Some(s),
                _ => None,
            };
            for (k, v) in map.iter_mut() {
                if let Some(child) = node::property(schema, k).or(additional) {
                    self::default(child, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node::items(schema) {
                for item in items {
                    default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> JSONSchemaProps {
        serde_json::from_value(v).expect("test schema")
    }

    #[test]
    fn defaults_only_where_parent_exists_and_recurse_into_defaults() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"x": {"type": "integer", "default": 1}}},
                "b": {"type": "object", "default": {}, "properties": {"y": {"type": "string", "default": "z"}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string", "default": "d"}}}}
            }
        }));
        let mut v = json!({"list": [{}, {"k": "set"}]});
        apply_defaults(&s, &mut v);
        assert_eq!(
            v,
            json!({"b": {"y": "z"}, "list": [{"k": "d"}, {"k": "set"}]})
        );
    }

    #[test]
    fn null_in_non_nullable_field_is_defaulted_or_dropped() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "d": {"type": "integer", "default": 3},
                "n": {"type": "string"},
                "ok": {"type": "string", "nullable": true}
            }
        }));
        let mut v = json!({"d": null, "n": null, "ok": null});
        apply_defaults(&s, &mut v);
        assert_eq!(v, json!({"d": 3, "ok": null}));
    }
}
