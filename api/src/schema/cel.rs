//! `x-kubernetes-validations` CEL rules, evaluated with kube's CEL support (the `cel` interpreter plus
//! the Kubernetes extension libraries) and reported as the API server 1.32 reports them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, ValidationRule,
};
use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::objects::{Key, Map, OptionalValue};
use kube::core::cel::cel::{self, Context, ExecutionError, Program};
use serde_json::Value;

use super::error::{BadValue, FieldError};
use super::node::{self, Additional};

/// Evaluates every CEL rule of `schema` against `value` (the defaulted object). Transition rules
/// (those using `oldSelf`) run only when `old` has a value at the rule's path, unless the rule sets
/// `optionalOldSelf`. On update, failures of other rules at unchanged values are ratcheted away.
pub fn validate_cel(
    schema: &JSONSchemaProps,
    value: &Value,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    let mut base = Context::default();
    base.register_all();
    CelWalker { base, errors }.node(schema, value, old, "");
}

struct CelWalker<'e> {
    base: Context<'static>,
    errors: &'e mut Vec<FieldError>,
}

impl CelWalker<'_> {
    fn node(&mut self, schema: &JSONSchemaProps, value: &Value, old: Option<&Value>, path: &str) {
        if value.is_null() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        if let Some(rules) = schema
            .x_kubernetes_validations
            .as_ref()
            .filter(|r| !r.is_empty())
        {
            let resource = path.is_empty() || node::embedded_resource(schema);
            let this = to_cel(Some(schema), &visible_metadata(value, resource));
            let before = old.map(|o| to_cel(Some(schema), &visible_metadata(o, resource)));
            let unchanged = old == Some(value);
            for rule in rules {
                if let Some(error) =
                    self.rule(schema, rule, &this, before.as_ref(), unchanged, path)
                {
                    self.errors.push(error);
                }
            }
        }
        match value {
            Value::Object(map) => {
                let additional = match node::additional(schema) {
                    Additional::Schema(s) => Some(s),
                    _ => None,
                };
                for (k, v) in map {
                    let old_child = old.and_then(|o| o.get(k));
                    if let Some(prop) = node::property(schema, k) {
                        self.node(prop, v, old_child, &node::child(path, k));
                    } else if let Some(additional) = additional {
                        self.node(additional, v, old_child, &node::key(path, k));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = node::items(schema) {
                    for (i, item) in items.iter().enumerate() {
                        let old_item = node::correlated_item(schema, item, old);
                        self.node(item_schema, item, old_item, &node::index(path, i));
                    }
                }
            }
            _ => {}
        }
    }

    fn rule(
        &self,
        schema: &JSONSchemaProps,
        rule: &ValidationRule,
        this: &cel::Value,
        before: Option<&cel::Value>,
        unchanged: bool,
        path: &str,
    ) -> Option<FieldError> {
        let type_name = node::type_name(schema);
        let program = match compiled(&rule.rule) {
            Ok(program) => program,
            Err(err) => {
                return Some(FieldError::invalid(
                    path,
                    type_name,
                    format!("rule compile error: {err}"),
                ));
            }
        };
        let transition = program.references().has_variable("oldSelf");
        let optional_old_self = rule.optional_old_self == Some(true);
        if transition && before.is_none() && !optional_old_self {
            return None; // transition rules need an existing value to compare with
        }
        let mut ctx = self.base.new_inner_scope();
        ctx.add_variable_from_value("self", this.clone());
        // With optionalOldSelf, oldSelf is a CEL optional (`oldSelf.hasValue()`, `oldSelf.value()`).
        let old_self = if optional_old_self {
            let optional = match before {
                Some(old) => OptionalValue::of(old.clone()),
                None => OptionalValue::none(),
            };
            cel::Value::Opaque(Arc::new(optional))
        } else {
            before.cloned().unwrap_or(cel::Value::Null)
        };
        ctx.add_variable_from_value("oldSelf", old_self);
        let passed = match program.execute(&ctx) {
            Ok(cel::Value::Bool(passed)) => passed,
            Ok(other) => {
                let detail = format!(
                    "rule did not evaluate to a bool ({:?}): {}",
                    other.type_of(),
                    rule_text(rule)
                );
                return Some(FieldError::invalid(path, type_name, detail));
            }
            Err(err) => {
                let detail = format!(
                    "{} evaluating rule: {}",
                    execution_error(&err),
                    rule_text(rule)
                );
                return Some(FieldError::invalid(path, type_name, detail));
            }
        };
        if passed || (unchanged && !transition) {
            return None;
        }
        let field = match rule
            .field_path
            .as_deref()
            .map(|p| p.trim_start_matches('.'))
        {
            Some(p) if !p.is_empty() => node::child(path, p),
            _ => path.to_owned(),
        };
        let detail = message(rule, &ctx);
        Some(error_for_reason(
            rule.reason.as_deref(),
            field,
            type_name,
            detail,
        ))
    }
}

thread_local! {
    /// Compiled rules by source text: the same CRD's rules are evaluated on every request.
    static PROGRAMS: RefCell<HashMap<String, Result<Rc<Program>, String>>> = RefCell::new(HashMap::new());
}

fn compiled(source: &str) -> Result<Rc<Program>, String> {
    PROGRAMS.with(|cache| {
        if let Some(hit) = cache.borrow().get(source) {
            return hit.clone();
        }
        let result = Program::compile(source)
            .map(Rc::new)
            .map_err(|err| err.to_string());
        cache.borrow_mut().insert(source.to_owned(), result.clone());
        result
    })
}

/// At a resource root (or embedded resource) rules see only `metadata.name` and `metadata.generateName`.
fn visible_metadata(value: &Value, resource: bool) -> std::borrow::Cow<'_, Value> {
    let Some(meta) = value
        .get("metadata")
        .and_then(Value::as_object)
        .filter(|_| resource)
    else {
        return std::borrow::Cow::Borrowed(value);
    };
    let kept: serde_json::Map<String, Value> = meta
        .iter()
        .filter(|(k, _)| *k == "name" || *k == "generateName")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut restricted = value.clone();
    restricted["metadata"] = Value::Object(kept);
    std::borrow::Cow::Owned(restricted)
}

/// The message, or the messageExpression's result when it yields a usable string.
fn message(rule: &ValidationRule, ctx: &Context<'_>) -> String {
    let evaluated = rule.message_expression.as_deref().and_then(|expr| {
        let program = compiled(expr).ok()?;
        match program.execute(ctx).ok()? {
            cel::Value::String(s) => Some(s),
            _ => None,
        }
    });
    // An empty or multi-line result falls back to the static message, as in the API server.
    if let Some(s) = evaluated
        && !s.trim().is_empty()
        && !s.contains('\n')
    {
        return s.to_string();
    }
    match rule
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(message) => message.to_owned(),
        None => format!("failed rule: {}", rule.rule.trim()),
    }
}

fn rule_text(rule: &ValidationRule) -> String {
    match rule
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(message) => message.to_owned(),
        None => rule.rule.trim().to_owned(),
    }
}

/// cel-go's wording of the common runtime errors.
fn execution_error(err: &ExecutionError) -> String {
    match err {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::NoSuchOverload => "no such overload".to_owned(),
        other => other.to_string(),
    }
}

fn error_for_reason(
    reason: Option<&str>,
    field: String,
    type_name: &str,
    detail: String,
) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
        Some("FieldValueRequired") => FieldError::required(field, detail),
        Some("FieldValueDuplicate") => FieldError::duplicate(field, BadValue::from(type_name)),
        _ => FieldError::invalid(field, type_name, detail),
    }
}

/// CEL's name for a JSON property: reserved words become `__word__`, and `__`, `.`, `-`, `/` are
/// spelled out; names with other characters are not accessible (None).
pub fn escape_property(name: &str) -> Option<String> {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                out.push_str("__underscores__");
            }
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// The CEL value of a JSON value typed by its schema: declared properties under their escaped names,
/// map keys as they are, `number` fields as doubles, `date-time` strings as timestamps.
pub fn to_cel(schema: Option<&JSONSchemaProps>, value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            if schema.is_some_and(|s| node::type_name(s) == "number") || n.is_f64() {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            } else if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else {
                cel::Value::UInt(n.as_u64().unwrap_or_default())
            }
        }
        Value::String(s) => string_to_cel(schema, s),
        Value::Array(items) => {
            let item_schema = schema.and_then(node::items);
            cel::Value::List(Arc::new(
                items.iter().map(|i| to_cel(item_schema, i)).collect(),
            ))
        }
        Value::Object(map) => {
            let mut out = HashMap::with_capacity(map.len());
            for (k, v) in map {
                let declared = schema.and_then(|s| node::property(s, k));
                let name = if declared.is_some() {
                    escape_property(k)
                } else {
                    Some(k.clone())
                };
                let Some(name) = name else { continue };
                let child = declared.or(schema.and_then(|s| match node::additional(s) {
                    Additional::Schema(a) => Some(a),
                    _ => None,
                }));
                out.insert(Key::String(Arc::new(name)), to_cel(child, v));
            }
            cel::Value::Map(Map { map: Arc::new(out) })
        }
    }
}

fn string_to_cel(schema: Option<&JSONSchemaProps>, s: &str) -> cel::Value {
    let format = schema
        .filter(|s| !node::int_or_string(s))
        .and_then(|s| s.format.as_deref());
    if format == Some("date-time")
        && let Ok(ts) = chrono::DateTime::parse_from_rfc3339(s)
    {
        return cel::Value::Timestamp(ts);
    }
    if format == Some("duration")
        && let Some(d) = parse_duration(s)
    {
        return cel::Value::Duration(d);
    }
    cel::Value::String(Arc::new(s.to_owned()))
}

/// A Go-style duration (`1h30m`, `-1.5s`, `300ms`; also `d` and `w` as strfmt accepts) as nanoseconds.
fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    let mut nanos: f64 = 0.0;
    let mut parts = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let units = [
            ("ns", 1.0),
            ("us", 1e3),
            ("\u{b5}s", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
            ("d", 86400e9),
            ("w", 604800e9),
        ];
        let (unit, scale) = units.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        nanos += number * scale;
        parts += 1;
    }
    if parts == 0 {
        return None;
    }
    let nanos = if negative { -nanos } else { nanos };
    Some(chrono::Duration::nanoseconds(nanos.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(
            parse_duration("-1.5s"),
            Some(chrono::Duration::milliseconds(-1500))
        );
        assert_eq!(
            parse_duration("300ms"),
            Some(chrono::Duration::milliseconds(300))
        );
        assert_eq!(parse_duration("0"), Some(chrono::Duration::zero()));
        assert_eq!(parse_duration("5 apples"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn property_names_are_escaped_like_the_api_server() {
        assert_eq!(
            escape_property("s3_additional_kwargs").as_deref(),
            Some("s3_additional_kwargs")
        );
        assert_eq!(
            escape_property("a__b").as_deref(),
            Some("a__underscores__b")
        );
        assert_eq!(
            escape_property("x-y.z/w").as_deref(),
            Some("x__dash__y__dot__z__slash__w")
        );
        assert_eq!(
            escape_property("namespace").as_deref(),
            Some("__namespace__")
        );
        assert_eq!(escape_property("a b"), None);
        assert_eq!(escape_property("1a"), None);
    }
}
