//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), as kubectl's typed
//! clients send them for built-in kinds (`kubectl create deployment|job|secret|...`).
//!
//! The wire format (Kubernetes API concepts, "Protobuf encoding"): the four bytes `k8s\0`, then a
//! `runtime.Unknown` message whose `typeMeta` names the kind and whose `raw` holds the object's own
//! message. Messages are read with prost's wire primitives, driven by `messages.json`: the field
//! numbers, names and types of every served kind's messages, generated from the Kubernetes 1.33
//! `generated.proto` files by `e2e/tools/proto-table.py`. Answers are always JSON.
//!
//! Where protobuf and JSON differ:
//! - `IntOrString`, `Quantity`, `Time`, `MicroTime`, `Duration`, `RawExtension` and `FieldsV1` are
//!   messages on the wire and strings, numbers or embedded JSON in JSON;
//! - `bytes` (Secret `data`) become base64;
//! - Go writes every non-pointer field, zero or not, while its JSON encoder drops the zero values
//!   of `omitempty` fields. The `.proto` files do not say which fields are pointers, so a zero
//!   scalar (`""`, `0`, `false`) is dropped unless its name is one of [`ZERO_IS_A_VALUE`], the
//!   pointer fields of the served kinds where zero is a setting (`replicas: 0`, ...). Messages
//!   (Go structs) are kept even when empty (`resources: {}`), as Go's JSON encoder writes them.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine;
use prost::bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use serde_json::{Map, Number, Value};

use super::errors::{ApiError, ApiResult};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every protobuf body starts with these four bytes.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Pointer fields of the served kinds whose zero value is a choice, not an absence.
const ZERO_IS_A_VALUE: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "backoffLimit",
    "backoffLimitPerIndex",
    "blockOwnerDeletion",
    "completions",
    "controller",
    "defaultMode",
    "deletionGracePeriodSeconds",
    "enableServiceLinks",
    "expirationSeconds",
    "failedJobsHistoryLimit",
    "fsGroup",
    "hostUsers",
    "immutable",
    "ingressClassName",
    "leaseDurationSeconds",
    "leaseTransitions",
    "manualSelector",
    "maxFailedIndexes",
    "minReplicas",
    "mode",
    "optional",
    "parallelism",
    "privileged",
    "progressDeadlineSeconds",
    "readOnlyRootFilesystem",
    "replicas",
    "revisionHistoryLimit",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "stabilizationWindowSeconds",
    "startingDeadlineSeconds",
    "storageClassName",
    "successfulJobsHistoryLimit",
    "suspend",
    "terminationGracePeriodSeconds",
    "tolerationSeconds",
    "ttlSecondsAfterFinished",
];

/// Go's zero `time.Time` in Unix seconds: how an unset `metav1.Time` travels.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// One field of a message: `(number, name, label, type)`, label `optional|repeated|map|inline`
/// (inline: a Go struct embedded with `json:",inline"`, its fields merged into the parent's
/// object), type a scalar name or a message's full name (for maps: the value's type; keys are
/// strings).
type Field = (u32, String, String, String);

/// The message table, by full name (`api.core.v1.Secret`).
static MESSAGES: LazyLock<HashMap<String, Vec<Field>>> = LazyLock::new(|| {
    // Generated and checked in; a broken file fails the unit tests, and then holds no messages.
    serde_json::from_str(include_str!("messages.json")).unwrap_or_default()
});

/// Whether a `Content-Type` (parameters allowed) is the Kubernetes protobuf media type.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == MEDIA_TYPE
}

/// A field's value as read from the wire.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn bad(what: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode protobuf body: {what}"))
}

/// Every field of one message, in wire order.
fn read_fields(mut buf: &[u8]) -> ApiResult<Vec<(u32, Raw<'_>)>> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        let (number, wire_type) = decode_key(&mut buf).map_err(bad)?;
        let raw = match wire_type {
            WireType::Varint => Raw::Varint(decode_varint(&mut buf).map_err(bad)?),
            WireType::SixtyFourBit if buf.remaining() >= 8 => Raw::Fixed64(buf.get_u64_le()),
            WireType::ThirtyTwoBit if buf.remaining() >= 4 => Raw::Fixed32(buf.get_u32_le()),
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf).map_err(bad)?).map_err(bad)?;
                if len > buf.len() {
                    return Err(bad("length beyond the end of the body"));
                }
                let (value, rest) = buf.split_at(len);
                buf = rest;
                Raw::Bytes(value)
            }
            other => return Err(bad(format!("unsupported wire type {other:?}"))),
        };
        out.push((number, raw));
    }
    Ok(out)
}

/// Decodes a protobuf request body into the JSON object the same request would carry as JSON.
/// `expected` (`apiVersion`, `kind`) is the endpoint's type, used when the envelope names none.
pub fn decode(body: &[u8], expected: (&str, &str)) -> ApiResult<Value> {
    let Some(envelope) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(ApiError::bad_request(format!(
            "provided data does not appear to be a protobuf message, expected prefix {:?}",
            MAGIC
        )));
    };
    let envelope = Envelope::read(envelope)?;
    if !envelope.content_encoding.is_empty() {
        return Err(bad(format!(
            "unsupported content encoding {:?}",
            envelope.content_encoding
        )));
    }
    let api_version = non_empty_or(&envelope.api_version, expected.0);
    let kind = non_empty_or(&envelope.kind, expected.1);
    let message = message_name(api_version, kind);
    if !MESSAGES.contains_key(&message) {
        return Err(ApiError::unsupported_media(&[
            "application/json",
            "application/yaml",
        ]));
    }
    let mut json = Map::new();
    json.insert("apiVersion".into(), Value::from(api_version));
    json.insert("kind".into(), Value::from(kind));
    if let Value::Object(fields) = message_to_json(&message, envelope.raw)? {
        json.extend(fields);
    }
    Ok(Value::Object(json))
}

fn non_empty_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

/// The message of a built-in kind: `api.<first label of the group, core for "">.<version>.<Kind>`.
fn message_name(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let label = match group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("api.{label}.{version}.{kind}")
}

/// What the `runtime.Unknown` envelope says.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

impl<'a> Envelope<'a> {
    /// Unknown: typeMeta = 1 (apiVersion = 1, kind = 2), raw = 2, contentEncoding = 3.
    fn read(bytes: &'a [u8]) -> ApiResult<Self> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
            content_encoding: String::new(),
        };
        for (number, raw) in read_fields(bytes)? {
            match (number, raw) {
                (1, Raw::Bytes(type_meta)) => {
                    for (n, value) in read_fields(type_meta)? {
                        match (n, value) {
                            (1, Raw::Bytes(s)) => envelope.api_version = utf8(s)?,
                            (2, Raw::Bytes(s)) => envelope.kind = utf8(s)?,
                            _ => {}
                        }
                    }
                }
                (2, Raw::Bytes(raw)) => envelope.raw = raw,
                (3, Raw::Bytes(s)) => envelope.content_encoding = utf8(s)?,
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn utf8(bytes: &[u8]) -> ApiResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(bad)
}

/// A message as JSON: the special Kubernetes types by name, every other message as an object.
fn message_to_json(name: &str, bytes: &[u8]) -> ApiResult<Value> {
    let object = object(name, bytes)?;
    let field = |key: &str| object.get(key).cloned().unwrap_or(Value::Null);
    let int = |key: &str| object.get(key).and_then(Value::as_i64).unwrap_or(0);
    Ok(match name {
        "apimachinery.pkg.util.intstr.IntOrString" if int("type") == 1 => {
            Value::from(field("strVal").as_str().unwrap_or(""))
        }
        "apimachinery.pkg.util.intstr.IntOrString" => Value::from(int("intVal")),
        "apimachinery.pkg.api.resource.Quantity" => {
            Value::from(field("string").as_str().unwrap_or(""))
        }
        "apimachinery.pkg.apis.meta.v1.Time" => time(int("seconds"), int("nanos"), false),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => time(int("seconds"), int("nanos"), true),
        "apimachinery.pkg.apis.meta.v1.Duration" => Value::from(go_duration(int("duration"))),
        "apimachinery.pkg.runtime.RawExtension" => embedded_json(&field("raw")),
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => embedded_json(&field("Raw")),
        _ => Value::Object(object),
    })
}

/// The message's fields by name, each as JSON, zero scalars of non-pointer fields left out.
fn object(name: &str, bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    let Some(fields) = MESSAGES.get(name) else {
        return Err(bad(format!("no message {name}")));
    };
    let raws = read_fields(bytes)?;
    let mut out = Map::new();
    for (number, field_name, label, typ) in fields {
        let mut mine = raws
            .iter()
            .filter(|(n, _)| n == number)
            .map(|(_, raw)| *raw);
        let value = match label.as_str() {
            "repeated" => {
                let items = repeated(typ, mine)?;
                (!items.is_empty()).then_some(Value::Array(items))
            }
            "map" => {
                let entries = map_entries(typ, mine)?;
                (!entries.is_empty()).then_some(Value::Object(entries))
            }
            "inline" => {
                if let Some(Raw::Bytes(embedded)) = mine.next_back() {
                    out.extend(object(typ, embedded)?);
                }
                None
            }
            _ => match mine.next_back() {
                Some(raw) => singular(field_name, typ, raw)?,
                None => None,
            },
        };
        if let Some(value) = value {
            out.insert(field_name.clone(), value);
        }
    }
    Ok(out)
}

/// A singular field's JSON value, or `None` where Go's JSON encoder would leave the field out.
fn singular(name: &str, typ: &str, raw: Raw<'_>) -> ApiResult<Option<Value>> {
    let value = value(typ, raw)?;
    let zero = match &value {
        // ObjectMeta's creationTimestamp is a Go struct: JSON shows it as null when unset.
        Value::Null if name == "creationTimestamp" => return Ok(Some(Value::Null)),
        Value::Null => return Ok(None),
        Value::String(s) => s.is_empty() && is_scalar(typ),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0) && is_scalar(typ),
        _ => false,
    };
    Ok((!zero || ZERO_IS_A_VALUE.contains(&name)).then_some(value))
}

fn is_scalar(typ: &str) -> bool {
    !MESSAGES.contains_key(typ)
}

/// Repeated fields: one wire entry per item, or numbers packed into one length-delimited entry.
fn repeated<'a>(typ: &str, raws: impl Iterator<Item = Raw<'a>>) -> ApiResult<Vec<Value>> {
    let mut items = Vec::new();
    for raw in raws {
        match raw {
            Raw::Bytes(packed) if is_scalar(typ) && !matches!(typ, "string" | "bytes") => {
                let mut buf = packed;
                while buf.has_remaining() {
                    let n = decode_varint(&mut buf).map_err(bad)?;
                    items.push(value(typ, Raw::Varint(n))?);
                }
            }
            raw => items.push(value(typ, raw)?),
        }
    }
    Ok(items)
}

/// Map fields: each wire entry is a message with the key at 1 and the value at 2.
fn map_entries<'a>(
    typ: &str,
    raws: impl Iterator<Item = Raw<'a>>,
) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for raw in raws {
        let Raw::Bytes(entry) = raw else {
            return Err(bad("map entry is not a message"));
        };
        let (mut key, mut val) = (String::new(), None);
        for (number, field) in read_fields(entry)? {
            match (number, field) {
                (1, Raw::Bytes(k)) => key = utf8(k)?,
                (2, field) => val = Some(value(typ, field)?),
                _ => {}
            }
        }
        let empty = if is_scalar(typ) {
            value(typ, Raw::Bytes(&[])).unwrap_or(Value::Null)
        } else {
            message_to_json(typ, &[])?
        };
        out.insert(key, val.unwrap_or(empty));
    }
    Ok(out)
}

/// One value of type `typ` (scalar or message) as JSON.
fn value(typ: &str, raw: Raw<'_>) -> ApiResult<Value> {
    let number = |n: i64| Value::from(n);
    Ok(match (typ, raw) {
        ("string", Raw::Bytes(b)) => Value::from(utf8(b)?),
        ("bytes", Raw::Bytes(b)) => {
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }
        ("bool", Raw::Varint(n)) => Value::Bool(n != 0),
        // Two's complement: int32 and int64 travel as 64-bit varints.
        ("int32", Raw::Varint(n)) => number(i64::from(n as i32)),
        ("int64", Raw::Varint(n)) => number(n as i64),
        ("uint32" | "uint64", Raw::Varint(n)) => Value::from(n),
        ("sint32" | "sint64", Raw::Varint(n)) => number(((n >> 1) as i64) ^ -((n & 1) as i64)),
        ("double", Raw::Fixed64(bits)) => float(f64::from_bits(bits)),
        ("float", Raw::Fixed32(bits)) => float(f64::from(f32::from_bits(bits))),
        ("fixed64" | "sfixed64", Raw::Fixed64(n)) => Value::from(n),
        ("fixed32" | "sfixed32", Raw::Fixed32(n)) => Value::from(n),
        (message, Raw::Bytes(b)) if !is_scalar(message) => message_to_json(message, b)?,
        (typ, raw) => return Err(bad(format!("{typ} encoded as {raw:?}"))),
    })
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// RFC 3339 in UTC: whole seconds for `Time`, microseconds for `MicroTime`; Go's zero time is null.
fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    // Go writes an unset Time as an empty message (or, from older clients, its zero in seconds).
    if (seconds == 0 || seconds == GO_ZERO_TIME_SECONDS) && nanos == 0 {
        return Value::Null;
    }
    let nanos = if micro {
        i32::try_from(nanos).unwrap_or(0)
    } else {
        0
    };
    let Ok(ts) = jiff::Timestamp::new(seconds, nanos) else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Value::from(ts.strftime(format).to_string())
}

/// Go's `time.Duration.String()` (`1h0m0s`, `1.5s`, `2ms`, `0s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = match n {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{sign}{}{unit}", trim_fraction(n, div));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, s) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = format!("{}s", trim_fraction(s, 1_000_000_000));
    match (h, m) {
        (0, 0) => format!("{sign}{seconds}"),
        (0, m) => format!("{sign}{m}m{seconds}"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}"),
    }
}

/// `value / div` with the fraction's trailing zeros dropped (`1500, 1000` → `1.5`).
fn trim_fraction(value: u64, div: u64) -> String {
    let (whole, frac) = (value / div, value % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `RawExtension.raw` and `FieldsV1.Raw` (base64 after [`value`]) hold JSON.
fn embedded_json(raw: &Value) -> Value {
    let bytes = raw
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn bytes_field(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(number << 3 | 2), out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut unknown = Vec::new();
        bytes_field(1, &type_meta, &mut unknown);
        bytes_field(2, raw, &mut unknown);
        let mut body = MAGIC.to_vec();
        body.extend(unknown);
        body
    }

    #[test]
    fn the_message_table_loads() {
        assert!(MESSAGES.len() > 200);
        assert!(MESSAGES.contains_key("api.apps.v1.Deployment"));
    }

    /// The scalar types the table's fields use besides messages.
    const SCALARS: [&str; 5] = ["bool", "bytes", "int32", "int64", "string"];

    /// The table is generated from a hand-kept list of kinds (`e2e/tools/proto-table.py`): a kind
    /// the registry serves without its message would be refused as protobuf.
    #[test]
    fn the_message_table_covers_every_served_builtin_kind() {
        let registry = crate::emulator::registry::Registry::default();
        let missing: Vec<String> = registry
            .all()
            .iter()
            // kubectl never sends a CustomResourceDefinition as protobuf (the emulator answers 415).
            .filter(|t| !t.is_custom() && t.kind != "CustomResourceDefinition")
            .map(|t| message_name(&t.api_version(), &t.kind))
            .filter(|name| !MESSAGES.contains_key(name))
            .collect();
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn every_message_a_field_names_is_in_the_table() {
        let dangling: Vec<String> = MESSAGES
            .iter()
            .flat_map(|(message, fields)| fields.iter().map(move |f| (message, f)))
            .filter(|(_, (_, _, _, typ))| {
                !SCALARS.contains(&typ.as_str()) && !MESSAGES.contains_key(typ)
            })
            .map(|(message, (_, field, _, typ))| format!("{message}.{field}: {typ}"))
            .collect();
        assert_eq!(dangling, Vec::<String>::new());
    }

    /// The served OpenAPI schemas of the built-in kinds, by name (`io.k8s.api.apps.v1.Deployment`).
    fn served_schemas() -> Map<String, Value> {
        let registry = crate::emulator::registry::Registry::default();
        let mut schemas = Map::new();
        for (group, versions) in registry.groups() {
            for version in versions {
                let path = if group.is_empty() {
                    format!("api/{version}")
                } else {
                    format!("apis/{group}/{version}")
                };
                let document = crate::emulator::http::openapi::document(&registry, &path);
                if let Some(Value::Object(found)) =
                    document.map(|d| d["components"]["schemas"].clone())
                {
                    schemas.extend(found);
                }
            }
        }
        schemas
    }

    /// Field names of `message` (those of its inline messages included) its JSON schema lacks.
    fn names_not_in(message: &str, properties: &Map<String, Value>) -> Vec<String> {
        let fields = MESSAGES.get(message).map_or(&[][..], Vec::as_slice);
        fields
            .iter()
            .flat_map(|(_, name, label, typ)| match label.as_str() {
                "inline" => names_not_in(typ, properties),
                _ if properties.contains_key(name) => Vec::new(),
                _ => vec![format!("{message}.{name}")],
            })
            .collect()
    }

    /// The table (Kubernetes 1.33 `.proto` files) and the JSON types (k8s-openapi) must name the same
    /// fields: a message field the kind's schema does not know would decode to a field
    /// kube-apiserver's JSON never has.
    #[test]
    fn message_fields_are_fields_of_the_served_schemas() {
        let schemas = served_schemas();
        let mut compared = 0;
        let mut unknown = Vec::new();
        for message in MESSAGES.keys() {
            let schema = schemas.get(&format!("io.k8s.{message}"));
            let Some(Value::Object(properties)) = schema.map(|s| &s["properties"]) else {
                continue;
            };
            compared += 1;
            unknown.extend(names_not_in(message, properties));
        }
        assert!(
            compared > 150,
            "only {compared} messages have a served schema"
        );
        unknown.sort();
        assert_eq!(unknown, Vec::<String>::new());
    }

    #[test]
    fn secret_data_becomes_base64_and_zero_strings_vanish() {
        let mut meta = Vec::new();
        bytes_field(1, b"creds", &mut meta); // name
        bytes_field(3, b"", &mut meta); // namespace: Go writes it even empty
        let mut entry = Vec::new();
        bytes_field(1, b"token", &mut entry);
        bytes_field(2, &[0xff, 0x00, b'a'], &mut entry);
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        bytes_field(2, &entry, &mut secret);
        bytes_field(3, b"Opaque", &mut secret);
        let json = decode(&envelope("v1", "Secret", &secret), ("v1", "Secret"));
        assert_eq!(
            json,
            Ok(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "creds"},
                "data": {"token": "/wBh"},
                "type": "Opaque",
            }))
        );
    }

    #[test]
    fn int_or_string_and_pointer_zeros() {
        // DeploymentSpec: replicas = 1 (0 is kept), minReadySeconds = 5 (0 is dropped).
        let mut spec = Vec::new();
        varint(1 << 3, &mut spec);
        varint(0, &mut spec);
        varint(5 << 3, &mut spec);
        varint(0, &mut spec);
        let mut deployment = Vec::new();
        bytes_field(2, &spec, &mut deployment);
        let json = decode(&envelope("apps/v1", "Deployment", &deployment), ("", ""));
        assert_eq!(json.map(|j| j["spec"].clone()), Ok(json!({"replicas": 0})));
        let mut port = Vec::new();
        varint(1 << 3, &mut port);
        varint(1, &mut port); // type String
        bytes_field(3, b"http", &mut port);
        assert_eq!(
            message_to_json("apimachinery.pkg.util.intstr.IntOrString", &port),
            Ok(json!("http"))
        );
    }

    #[test]
    fn go_durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(2_000_000), "2ms");
    }

    #[test]
    fn bodies_without_the_magic_prefix_or_cut_short_are_400s() {
        let code = |body: &[u8]| decode(body, ("v1", "Secret")).err().map(|e| e.code);
        assert_eq!(code(b"{}"), Some(400));
        assert_eq!(code(b"k8s\0\x12\x7f"), Some(400));
    }
}
