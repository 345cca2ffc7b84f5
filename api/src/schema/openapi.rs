//! OpenAPI v3 value validation of a custom resource, worded as kube-openapi's validator and the API
//! server's conversion to field errors word it (`spec.replicas in body should be greater than or
//! equal to 1`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use regex::Regex;
use serde_json::Value;

use super::error::{BadValue, FieldError};
use super::format;
use super::gofmt;
use super::node::{self, Additional};

/// Validates `value` against `schema`; `old` (on update) ratchets: an unchanged subtree reports no
/// errors, as the API server's CRD validation ratcheting does.
pub fn validate_value(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    Walker { errors }.node(schema, value, old, "");
}

struct Walker<'e> {
    errors: &'e mut Vec<FieldError>,
}

/// The JSON type name kube-openapi infers from a decoded value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn schema_types(schema: &JSONSchemaProps) -> Vec<&str> {
    if node::int_or_string(schema) {
        vec!["integer", "string"]
    } else if let Some(t) = schema.type_.as_deref().filter(|t| !t.is_empty()) {
        vec![t]
    } else {
        Vec::new()
    }
}

/// `name` as kube-openapi prints it in messages (the path; `.` for the root is not reached).
fn name(path: &str) -> &str {
    path
}

impl Walker<'_> {
    fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    fn node(&mut self, schema: &JSONSchemaProps, value: &Value, old: Option<&Value>, path: &str) {
        if old == Some(value) {
            return; // ratcheting: an unchanged value keeps whatever it was accepted with
        }
        if value.is_null() {
            self.type_check(schema, value, path);
            self.enum_check(schema, value, path);
            return;
        }
        self.type_check(schema, value, path);
        self.combinators(schema, value, path);
        if let Value::String(s) = value {
            self.string(schema, s, value, path);
            self.format(schema, s, value, path);
        }
        if value.is_number() {
            self.number(schema, value, path);
        }
        if let Value::Array(items) = value {
            self.array(schema, items, old, path);
        }
        self.enum_check(schema, value, path);
        if let Value::Object(map) = value {
            self.object(schema, map, old, path);
        }
    }

    fn type_check(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        let types = schema_types(schema);
        if types.is_empty() {
            return;
        }
        let joined = types.join(",");
        let actual = json_type(value);
        if value.is_null() {
            if !node::nullable(schema) {
                self.push(type_error(path, &joined, "null"));
            }
            return;
        }
        let float_int = actual == "number"
            && value.as_f64().is_some_and(|f| f.fract() == 0.0)
            && types.contains(&"integer");
        let int_float = actual == "integer" && types.contains(&"number");
        let format = schema.format.as_deref().unwrap_or("");
        let is_text_or_list = value.is_string() || value.is_array();
        let numeric = types.contains(&"number") || types.contains(&"integer");
        // kube-openapi quirk: a non-numeric schema with a format accepts any string or list.
        if !numeric && !format.is_empty() && is_text_or_list {
            return;
        }
        if !(types.contains(&actual) || float_int || int_float) {
            self.push(type_error(path, &joined, actual));
        }
    }

    fn combinators(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        for branch in schema.all_of.iter().flatten() {
            self.node(branch, value, None, path);
        }
        if let Some(any_of) = schema.any_of.as_ref().filter(|b| !b.is_empty()) {
            let results: Vec<Vec<FieldError>> = any_of
                .iter()
                .map(|b| branch_errors(b, value, path))
                .collect();
            if !results.iter().any(Vec::is_empty) {
                self.push(FieldError::invalid(
                    path,
                    "",
                    format!("{} must validate at least one schema (anyOf)", name(path)),
                ));
                self.errors
                    .extend(results.into_iter().next().unwrap_or_default());
            }
        }
        if let Some(one_of) = schema.one_of.as_ref().filter(|b| !b.is_empty()) {
            let valid = one_of
                .iter()
                .filter(|b| branch_errors(b, value, path).is_empty())
                .count();
            if valid != 1 {
                self.push(FieldError::invalid(
                    path,
                    "",
                    format!(
                        "{} must validate one and only one schema (oneOf)",
                        name(path)
                    ),
                ));
            }
        }
        if let Some(not) = &schema.not
            && branch_errors(not, value, path).is_empty()
        {
            self.push(FieldError::invalid(
                path,
                "",
                format!("{} must not validate the schema (not)", name(path)),
            ));
        }
    }

    /// maxLength, minLength, pattern: the first violation only (kube-openapi stops there).
    fn string(&mut self, schema: &JSONSchemaProps, s: &str, value: &Value, path: &str) {
        let length = s.chars().count() as i64;
        if let Some(max) = schema.max_length.filter(|max| length > *max) {
            self.push(FieldError::too_long(path, Some(max)));
            return;
        }
        if let Some(min) = schema.min_length.filter(|min| length < *min) {
            self.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{} in body should be at least {min} chars long", name(path)),
            ));
            return;
        }
        // A pattern the API server could not compile would have rejected the CRD; treat it as no constraint.
        if let Some(pattern) = schema.pattern.as_deref()
            && let Ok(re) = Regex::new(pattern)
            && !re.is_match(s)
        {
            self.push(FieldError::invalid(
                path,
                value.clone(),
                format!("{} in body should match '{pattern}'", name(path)),
            ));
        }
    }

    fn format(&mut self, schema: &JSONSchemaProps, s: &str, value: &Value, path: &str) {
        let Some(format) = schema.format.as_deref() else {
            return;
        };
        if !format::is_valid(format, s) {
            self.push(FieldError::type_invalid(
                path,
                value.clone(),
                format!(
                    "{} in body must be of type {format}: {}",
                    name(path),
                    gofmt::quote(s)
                ),
            ));
        }
    }

    fn number(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        let is_int = value.is_i64() || value.is_u64();
        let actual = value.as_f64().unwrap_or(f64::NAN);
        // kube-openapi prints an integer bound as an integer for integer data, else as a float.
        let bound = |b: f64| {
            if is_int {
                format!("{}", b as i64)
            } else {
                gofmt::float(b)
            }
        };
        if let Some(multiple) = schema.multiple_of.filter(|m| *m > 0.0) {
            let quotient = actual / multiple;
            if (quotient - quotient.round()).abs() > f64::EPSILON * quotient.abs().max(1.0) {
                self.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!(
                        "{} in body should be a multiple of {}",
                        name(path),
                        gofmt::float(multiple)
                    ),
                ));
            }
        }
        if let Some(min) = schema.minimum {
            let exclusive = schema.exclusive_minimum == Some(true);
            let min_cmp = if is_int { (min as i64) as f64 } else { min };
            let fails = if exclusive {
                actual <= min_cmp
            } else {
                actual < min_cmp
            };
            if fails {
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{} in body should be {relation} {}", name(path), bound(min)),
                ));
            }
        }
        if let Some(max) = schema.maximum {
            let exclusive = schema.exclusive_maximum == Some(true);
            let max_cmp = if is_int { (max as i64) as f64 } else { max };
            let fails = if exclusive {
                actual >= max_cmp
            } else {
                actual > max_cmp
            };
            if fails {
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.push(FieldError::invalid(
                    path,
                    value.clone(),
                    format!("{} in body should be {relation} {}", name(path), bound(max)),
                ));
            }
        }
    }

    fn array(
        &mut self,
        schema: &JSONSchemaProps,
        items: &[Value],
        old: Option<&Value>,
        path: &str,
    ) {
        if let Some(item_schema) = node::items(schema) {
            for (i, item) in items.iter().enumerate() {
                let old_item = node::correlated_item(schema, item, old);
                self.node(item_schema, item, old_item, &node::index(path, i));
            }
        }
        let size = items.len() as i64;
        if let Some(min) = schema.min_items.filter(|min| size < *min) {
            self.push(FieldError::invalid(
                path,
                size,
                format!("{} in body should have at least {min} items", name(path)),
            ));
        }
        if let Some(max) = schema.max_items.filter(|max| size > *max) {
            self.push(FieldError::too_many(path, Some(size), Some(max)));
        }
        if schema.unique_items == Some(true) && has_duplicates(items) {
            self.push(FieldError::invalid(
                path,
                "",
                format!("{} in body shouldn't contain duplicates", name(path)),
            ));
        }
    }

    fn enum_check(&mut self, schema: &JSONSchemaProps, value: &Value, path: &str) {
        let Some(allowed) = schema.enum_.as_ref().filter(|e| !e.is_empty()) else {
            return;
        };
        if allowed.iter().any(|a| json_equal(&a.0, value)) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match &a.0 {
                Value::String(s) => s.clone(),
                other => gofmt::json(other),
            })
            .collect();
        self.push(FieldError::not_supported(path, value.clone(), &supported));
    }

    fn object(
        &mut self,
        schema: &JSONSchemaProps,
        map: &serde_json::Map<String, Value>,
        old: Option<&Value>,
        path: &str,
    ) {
        let count = map.len() as i64;
        if let Some(min) = schema.min_properties.filter(|min| count < *min) {
            self.push(FieldError::invalid(
                path,
                count,
                format!(
                    "{} in body should have at least {min} properties",
                    name(path)
                ),
            ));
            return;
        }
        if let Some(max) = schema.max_properties.filter(|max| count > *max) {
            self.push(FieldError::too_many(path, Some(count), Some(max)));
            return;
        }
        if let Additional::Schema(additional) = node::additional(schema) {
            for (k, v) in map {
                if node::property(schema, k).is_none() {
                    // kube-openapi joins map keys with a dot, unlike CEL and list-type errors.
                    self.node(
                        additional,
                        v,
                        old.and_then(|o| o.get(k)),
                        &node::child(path, k),
                    );
                }
            }
        }
        if let Some(props) = node::properties(schema) {
            for (k, prop) in props {
                if let Some(v) = map.get(k) {
                    self.node(prop, v, old.and_then(|o| o.get(k)), &node::child(path, k));
                }
            }
        }
        for required in schema.required.iter().flatten() {
            if !map.contains_key(required) {
                self.push(FieldError::required(node::child(path, required), ""));
            }
        }
    }
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        BadValue::from(actual),
        format!(
            "{} in body must be of type {expected}: {}",
            name(path),
            gofmt::quote(actual)
        ),
    )
}

fn branch_errors(schema: &JSONSchemaProps, value: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    Walker {
        errors: &mut errors,
    }
    .node(schema, value, None, path);
    errors
}

/// JSON equality where `1` and `1.0` are equal, as Go's decoded-number comparison for enums.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[i + 1..].iter().any(|b| json_equal(a, b)))
}
