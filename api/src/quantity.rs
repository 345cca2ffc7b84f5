//! The canonical form of a Kubernetes quantity: what kube-apiserver stores and serves for a
//! `resource.Quantity` field of a built-in kind (`cpu: 1000m` is served as `1`, `memory: 1024Mi`
//! as `1Gi`, `cpu: 0.5` as `500m`).
//!
//! Whoever compares a desired object with the stored one must compare canonical forms, or every
//! such value looks changed: the apply engine writes desired bodies in this form, and the emulator
//! stores it. The rules are apimachinery's `Quantity.CanonicalizeBytes`: the suffix family of the
//! input is kept (binary `Ki`…`Ei`, decimal `n`…`E`, or an `e<exponent>`), trailing zeros move into
//! the suffix, decimal exponents are multiples of three, binary values below 1024 or with a
//! fraction are written as decimal; and text the parser judges canonical already is kept as
//! written.

use serde_json::Value;

/// The suffix family a quantity was written in; the canonical form keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// A parsed quantity: `(-1)^negative × digits × 10^scale × 2^binary_exponent`.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    negative: bool,
    digits: u128,
    scale: i32,
    binary_exponent: u32,
    format: Format,
}

const DECIMAL_SUFFIXES: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

const BINARY_SUFFIXES: [(&str, u32); 7] = [
    ("", 0),
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

/// The canonical form of `text`, or `None` when it is not a quantity this function can represent
/// exactly (then the caller keeps the text: the API server will judge it).
pub fn canonical(text: &str) -> Option<String> {
    let written = split(text)?;
    let (format, exponent, binary_exponent) = parse_suffix(written.suffix)?;
    if kept_as_written(&written, format, exponent, binary_exponent) {
        return Some(text.to_owned());
    }
    let mut digits: u128 = 0;
    for c in written.whole.bytes().chain(written.fraction.bytes()) {
        digits = digits.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
    }
    if digits == 0 {
        return Some("0".to_owned());
    }
    let scale = exponent.checked_sub(i32::try_from(written.fraction.len()).ok()?)?;
    if scale < -9 {
        // Finer than a nano: the server rounds, and not always to the nano; let it decide.
        return None;
    }
    let value = Parsed {
        negative: written.negative,
        digits,
        scale,
        binary_exponent,
        format,
    };
    let (number, suffix) = match format {
        Format::BinarySi => binary_or_decimal(value)?,
        Format::DecimalSi | Format::DecimalExponent => decimal(value)?,
    };
    let sign = if value.negative { "-" } else { "" };
    Some(format!("{sign}{number}{suffix}"))
}

/// [`canonical`] for a JSON value: a string or a number (YAML's `cpu: 1` is a number; the server
/// answers with the string `"1"`). `None` for anything else, or what is not a quantity.
pub fn canonical_value(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => canonical(text),
        Value::Number(number) => canonical(&number.to_string()),
        _ => None,
    }
}

/// A quantity's text in pieces, as apimachinery's parser reads it: sign, whole digits without
/// leading zeros (`"0"` when none are left), fraction digits, suffix.
struct Written<'a> {
    negative: bool,
    whole: &'a str,
    fraction: &'a str,
    suffix: &'a str,
}

fn split(text: &str) -> Option<Written<'_>> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    Some(Written {
        negative,
        whole: if whole.is_empty() { "0" } else { whole },
        fraction,
        suffix,
    })
}

/// Whether the server keeps the text exactly as written: apimachinery's parser reuses the input
/// string when it judges it canonical already (decimal: at most 18 digits, an exponent that is a
/// multiple of three, no trailing `000`, no leading zero; binary: an integer not divisible by 8),
/// so `+2` and `1E6` are served as written.
fn kept_as_written(written: &Written<'_>, format: Format, exponent: i32, binary: u32) -> bool {
    let shifted = format!("{}{}", written.whole, written.fraction);
    let digits = shifted.len() as i64;
    match format {
        Format::BinarySi => {
            let precision = 15 - digits - i64::from(binary) * 3 / 10 - 1;
            let value = shifted.parse::<i64>().ok();
            let fits = value.is_some_and(|v| v.checked_mul(1i64 << binary).is_some());
            written.fraction.is_empty()
                && precision >= 0
                && fits
                && value.is_some_and(|v| v & 0x07 != 0)
        }
        Format::DecimalSi | Format::DecimalExponent => {
            let scale = i64::from(exponent) - written.fraction.len() as i64;
            digits <= 18
                && scale >= -9
                && scale % 3 == 0
                && !shifted.ends_with("000")
                && !shifted.starts_with('0')
        }
    }
}

/// The suffix's family, its power of ten and its power of two.
fn parse_suffix(suffix: &str) -> Option<(Format, i32, u32)> {
    if let Some((_, power)) = BINARY_SUFFIXES
        .iter()
        .find(|(s, _)| !s.is_empty() && *s == suffix)
    {
        return Some((Format::BinarySi, 0, *power));
    }
    if let Some((_, power)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        return Some((Format::DecimalSi, *power, 0));
    }
    let exponent = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    let valid = exponent
        .strip_prefix(['+', '-'])
        .unwrap_or(exponent)
        .bytes()
        .all(|b| b.is_ascii_digit());
    if exponent.is_empty() || !valid {
        return None;
    }
    Some((Format::DecimalExponent, exponent.parse().ok()?, 0))
}

/// A binary quantity: written with a binary suffix when it is a whole number of at least 1024 in
/// magnitude, else as decimal.
fn binary_or_decimal(value: Parsed) -> Option<(String, String)> {
    let as_decimal = || {
        let multiplier = 2u128.checked_pow(value.binary_exponent)?;
        decimal(Parsed {
            digits: value.digits.checked_mul(multiplier)?,
            binary_exponent: 0,
            format: Format::DecimalSi,
            ..value
        })
    };
    let Some(whole) = whole_number(value) else {
        return as_decimal();
    };
    if whole < 1024 {
        return as_decimal();
    }
    let (mut amount, mut power) = (whole, 0u32);
    while amount % 1024 == 0 {
        amount /= 1024;
        power += 10;
    }
    let (suffix, _) = BINARY_SUFFIXES.iter().find(|(_, p)| *p == power)?;
    Some((amount.to_string(), (*suffix).to_owned()))
}

/// `value` as a whole number, when it is one.
fn whole_number(value: Parsed) -> Option<u128> {
    let exact = value
        .digits
        .checked_mul(2u128.checked_pow(value.binary_exponent)?)?;
    let power = 10u128.checked_pow(value.scale.unsigned_abs())?;
    if value.scale >= 0 {
        exact.checked_mul(power)
    } else {
        (exact % power == 0).then_some(exact / power)
    }
}

/// A decimal quantity: trailing zeros move into the exponent, which is then lowered to a multiple
/// of three.
fn decimal(value: Parsed) -> Option<(String, String)> {
    let (mut amount, mut exponent) = (value.digits, value.scale);
    while amount % 10 == 0 {
        amount /= 10;
        exponent += 1;
    }
    let lowered = exponent.rem_euclid(3);
    amount = amount.checked_mul(10u128.pow(lowered.unsigned_abs()))?;
    exponent -= lowered;
    let suffix = match value.format {
        Format::DecimalExponent if exponent == 0 => String::new(),
        Format::DecimalExponent => format!("e{exponent}"),
        _ => DECIMAL_SUFFIXES
            .iter()
            .find(|(_, power)| *power == exponent)
            .map(|(suffix, _)| (*suffix).to_owned())?,
    };
    Some((amount.to_string(), suffix))
}

/// Rewrites every quantity of a built-in kind's object in canonical form, finding them by where
/// they stand (no schema needed): container and claim `resources.limits`/`requests`, a pod's
/// `overhead`, `emptyDir.sizeLimit`, and an autoscaler metric's `target.value`/`averageValue`.
pub fn canonicalize(body: &mut Value) {
    match body {
        Value::Object(fields) => {
            for (field, value) in fields.iter_mut() {
                match (field.as_str(), &mut *value) {
                    ("resources", Value::Object(resources)) => {
                        for list in ["limits", "requests"] {
                            if let Some(Value::Object(amounts)) = resources.get_mut(list) {
                                amounts.values_mut().for_each(canonicalize_one);
                            }
                        }
                    }
                    ("overhead", Value::Object(amounts)) => {
                        amounts.values_mut().for_each(canonicalize_one);
                    }
                    ("sizeLimit", quantity) => canonicalize_one(quantity),
                    ("target", Value::Object(target)) => {
                        for field in ["value", "averageValue"] {
                            if let Some(quantity) = target.get_mut(field) {
                                canonicalize_one(quantity);
                            }
                        }
                    }
                    (_, nested) => canonicalize(nested),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize),
        _ => {}
    }
}

fn canonicalize_one(quantity: &mut Value) {
    if let Some(canonical) = canonical_value(quantity) {
        *quantity = Value::String(canonical);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{canonical, canonicalize};

    /// Each pair as kube-apiserver 1.33 stores it (the real-control-plane conformance test
    /// `quantities_are_stored_canonically` checks the same table against the server).
    pub const CASES: &[(&str, &str)] = &[
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("1", "1"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("2000000", "2M"),
        ("100m", "100m"),
        ("0.1", "100m"),
        ("1.0", "1"),
        ("0", "0"),
        ("0m", "0"),
        ("512Mi", "512Mi"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1.5Gi", "1536Mi"),
        ("1Ki", "1Ki"),
        ("0.5Ki", "512"),
        ("1000Ki", "1000Ki"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("1E6", "1E6"),
        ("10Gi", "10Gi"),
        ("1G", "1G"),
        ("1000M", "1G"),
        ("+2", "+2"),
        ("2048Ki", "2Mi"),
        ("3Mi", "3Mi"),
        ("0.5e3", "500"),
        ("-1500m", "-1500m"),
    ];

    #[test]
    fn canonical_forms_are_the_api_servers() {
        for (input, expected) in CASES {
            assert_eq!(canonical(input).as_deref(), Some(*expected), "{input}");
        }
    }

    #[test]
    fn what_is_not_a_quantity_is_left_alone() {
        for input in [
            "",
            "abc",
            "1.2.3",
            "1Q",
            "e3",
            "1e",
            "1e+",
            "--1",
            "1 Gi",
            ".",
            "0.0000000001",
        ] {
            assert_eq!(canonical(input), None, "{input}");
        }
    }

    #[test]
    fn quantities_of_a_pod_template_and_claims_become_canonical() {
        let mut body = json!({"spec": {
            "template": {"spec": {
                "containers": [{
                    "name": "c",
                    "env": [{"name": "CPU", "value": "1000m"}],
                    "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"},
                                  "requests": {"cpu": 0.5, "memory": "256Mi"}}
                }],
                "overhead": {"cpu": "0.1"},
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1.5Gi"}}]
            }},
            "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "2048Mi"}}}}]
        }});
        canonicalize(&mut body);
        let pod = &body["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["resources"]["limits"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(
            container["resources"]["requests"],
            json!({"cpu": "500m", "memory": "256Mi"})
        );
        // An environment variable is text, whatever it looks like.
        assert_eq!(container["env"][0]["value"], "1000m");
        assert_eq!(pod["overhead"]["cpu"], "100m");
        assert_eq!(pod["volumes"][0]["emptyDir"]["sizeLimit"], "1536Mi");
        let claim = &body["spec"]["volumeClaimTemplates"][0]["spec"];
        assert_eq!(claim["resources"]["requests"]["storage"], "2Gi");
    }

    #[test]
    fn autoscaler_targets_become_canonical() {
        let mut body = json!({"spec": {"metrics": [
            {"type": "Pods", "pods": {"target": {"type": "AverageValue", "averageValue": "1000m"}}},
            {"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}
        ]}});
        canonicalize(&mut body);
        assert_eq!(
            body["spec"]["metrics"][0]["pods"]["target"]["averageValue"],
            "1"
        );
        assert_eq!(
            body["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"],
            80
        );
    }
}
