//! Compatibility with the Feast operator's own FeatureStore CRD (v1): every schema property, type,
//! format, enum, pattern, bound, default, required list, list/map marker and CEL rule must match,
//! apart from the deliberate differences listed below. Descriptions may differ.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// Differences we keep on purpose: (schema path, compared keyword, reason). A path ending in `.*` also
/// covers everything below it; `spec.` entries cover the same path under `status.applied`.
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "",
        "required",
        "kube makes `spec` required. A FeatureStore without a spec has no feastProject and cannot be \
         reconciled, so fieldwise rejects it at admission instead of failing later.",
    ),
    (
        "",
        "x-kubernetes-validations",
        "fieldwise refuses, at creation, FeatureStore names its children's names cannot be made \
         from: longer than 43 characters (the Service feast-<name>-registry-rest must be a DNS-1035 \
         label of at most 63) or with a '.'. The Feast operator accepts them and then fails to \
         create the Services.",
    ),
    (
        ".metadata.name",
        "property",
        "Declared so that the name rules report at metadata.name (kube-apiserver requires a rule's \
         fieldPath to name a declared field).",
    ),
    (
        ".spec.services.volumes[].ephemeral.volumeClaimTemplate.metadata.*",
        "property",
        "The Feast CRD declares this ObjectMeta as a bare `type: object`, so the API server prunes the \
         labels and annotations users put there. fieldwise declares ObjectMeta's fields and keeps them.",
    ),
];

/// Whether a deliberate entry's path pattern covers `path` (`*` matches any run of characters).
fn covers(pattern: &str, path: &str) -> bool {
    let path = path
        .strip_prefix(".status.applied")
        .map_or_else(|| path.to_owned(), |rest| format!(".spec{rest}"));
    glob(pattern, &path)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|skip| {
                    let rest = &text[head.len() + skip..];
                    text.is_char_boundary(head.len() + skip) && glob(tail, rest)
                })
        }
    }
}

/// Keywords compared verbatim.
const COMPARED: &[&str] = &[
    "type",
    "format",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "default",
    "nullable",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
];

/// Keywords walked or compared in a normalised form rather than verbatim.
const STRUCTURAL: &[&str] = &[
    "properties",
    "items",
    "additionalProperties",
    "required",
    "x-kubernetes-validations",
];

/// Keywords that never affect validation, defaulting, pruning or merging.
const IGNORED: &[&str] = &["description", "title", "example", "externalDocs"];

fn v1_version(crd: &Value) -> &Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == "v1"))
        .unwrap_or_else(|| panic!("CRD has no v1 version: {}", crd["metadata"]["name"]))
}

/// The Feast operator's CRD, or `None` (the test is skipped) when the reference corpus is absent.
fn reference_crd() -> Option<Value> {
    let path = fieldwise_api::reference::feast_corpus()?.join("feast.dev_featurestores.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let crd = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    Some(crd)
}

fn our_crd() -> Value {
    let crd = fieldwise_api::crds()
        .into_iter()
        .find(|crd| crd.metadata.name.as_deref() == Some("featurestores.feast.dev"))
        .expect("fieldwise serves featurestores.feast.dev");
    serde_json::to_value(crd).expect("a CRD serialises to JSON")
}

/// Every CEL rule of a node as a comparable string (rule, message and any other rule fields).
fn rules(node: &Value) -> BTreeSet<String> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| rules.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default()
}

fn required(node: &Value) -> BTreeSet<String> {
    node.get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Values compared without descriptions, and with numbers compared by value (`1` equals `1.0`: the
/// CRD types store bounds as floats).
fn without_descriptions(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| value.clone(), Value::from),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "description")
                .map(|(k, v)| (k.clone(), without_descriptions(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_descriptions).collect()),
        other => other.clone(),
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    path: String,
    keyword: String,
    reference: String,
    ours: String,
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_owned(), Value::to_string)
}

fn compare(path: &str, reference: &Value, ours: &Value, out: &mut Vec<Difference>) {
    let mut push = |keyword: &str, r: String, o: String| {
        out.push(Difference {
            path: path.to_owned(),
            keyword: keyword.to_owned(),
            reference: r,
            ours: o,
        });
    };
    for keyword in COMPARED {
        let (r, o) = (
            reference.get(*keyword).map(without_descriptions),
            ours.get(*keyword).map(without_descriptions),
        );
        if r != o {
            push(keyword, show(r.as_ref()), show(o.as_ref()));
        }
    }
    for (node, side) in [(reference, "reference"), (ours, "ours")] {
        for key in node.as_object().into_iter().flat_map(|m| m.keys()) {
            let known = COMPARED.contains(&key.as_str()) || STRUCTURAL.contains(&key.as_str());
            if !known && !IGNORED.contains(&key.as_str()) {
                push(key, format!("unchecked keyword in {side}"), String::new());
            }
        }
    }
    let (r, o) = (required(reference), required(ours));
    if r != o {
        push("required", format!("{r:?}"), format!("{o:?}"));
    }
    let (r, o) = (rules(reference), rules(ours));
    for rule in r.difference(&o) {
        push("x-kubernetes-validations", rule.clone(), "(absent)".into());
    }
    for rule in o.difference(&r) {
        push("x-kubernetes-validations", "(absent)".into(), rule.clone());
    }
    compare_children(path, reference, ours, out);
}

fn compare_children(path: &str, reference: &Value, ours: &Value, out: &mut Vec<Difference>) {
    let empty = serde_json::Map::new();
    let r_props = reference
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let o_props = ours
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let names: BTreeSet<&String> = r_props.keys().chain(o_props.keys()).collect();
    for name in names {
        let child = format!("{path}.{name}");
        match (r_props.get(name), o_props.get(name)) {
            (Some(r), Some(o)) => compare(&child, r, o, out),
            (r, o) => out.push(Difference {
                path: child,
                keyword: "property".into(),
                reference: if r.is_some() { "present" } else { "(absent)" }.into(),
                ours: if o.is_some() { "present" } else { "(absent)" }.into(),
            }),
        }
    }
    for (keyword, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
        let child = format!("{path}{suffix}");
        match (reference.get(keyword), ours.get(keyword)) {
            (Some(r @ Value::Object(_)), Some(o @ Value::Object(_))) => compare(&child, r, o, out),
            (None, None) => {}
            (r, o) if r == o => {}
            (r, o) => out.push(Difference {
                path: child,
                keyword: keyword.into(),
                reference: show(r),
                ours: show(o),
            }),
        }
    }
}

#[test]
fn v1_schema_matches_the_feast_crd() {
    let Some(reference) = reference_crd() else {
        return;
    };
    let ours = our_crd();
    let (r, o) = (v1_version(&reference), v1_version(&ours));
    let mut diffs = Vec::new();
    compare(
        "",
        &r["schema"]["openAPIV3Schema"],
        &o["schema"]["openAPIV3Schema"],
        &mut diffs,
    );
    diffs.sort();

    let is_deliberate = |d: &Difference| {
        DELIBERATE
            .iter()
            .any(|(p, k, _)| covers(p, &d.path) && *k == d.keyword)
    };
    let unexpected: Vec<&Difference> = diffs.iter().filter(|d| !is_deliberate(d)).collect();
    let stale: Vec<_> = DELIBERATE
        .iter()
        .filter(|(p, k, _)| !diffs.iter().any(|d| covers(p, &d.path) && d.keyword == *k))
        .collect();
    let mut report = String::new();
    for d in &unexpected {
        report.push_str(&format!(
            "{}: {}: reference {} / ours {}\n",
            d.path, d.keyword, d.reference, d.ours
        ));
    }
    for (p, k, _) in &stale {
        report.push_str(&format!(
            "{p}: {k}: listed as deliberate but no longer differs; remove it\n"
        ));
    }
    assert!(
        report.is_empty(),
        "{} schema differences:\n{report}",
        unexpected.len() + stale.len()
    );
}

#[test]
fn crd_names_scope_and_subresources_match() {
    let Some(reference) = reference_crd() else {
        return;
    };
    let ours = our_crd();
    for key in ["group", "names", "scope"] {
        let mut r = reference["spec"][key].clone();
        let o = ours["spec"][key].clone();
        if key == "names" {
            // kube derives listKind from kind; the API server fills it in when absent.
            if let Some(names) = r.as_object_mut() {
                names.remove("listKind");
            }
        }
        assert_eq!(r, o, "spec.{key}");
    }
    let (r, o) = (v1_version(&reference), v1_version(&ours));
    assert_eq!(r["subresources"], o["subresources"], "v1 subresources");
    assert_eq!(
        (r["served"].clone(), r["storage"].clone()),
        (o["served"].clone(), o["storage"].clone())
    );
    let columns = |v: &Value| -> Vec<(Value, Value)> {
        v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| (c["name"].clone(), c["jsonPath"].clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ours_columns = columns(o);
    for column in columns(r) {
        assert!(
            ours_columns.contains(&column),
            "printer column {column:?} missing"
        );
    }
    let versions = |crd: &Value| -> Vec<(String, bool, bool)> {
        crd["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let flag = |name: &str| v[name].as_bool().unwrap_or(false);
                (
                    v["name"].as_str().unwrap_or_default().to_owned(),
                    flag("served"),
                    flag("storage"),
                )
            })
            .collect()
    };
    let listed = |crd: &Value| -> Vec<String> {
        let mut names: Vec<String> = versions(crd).into_iter().map(|(name, ..)| name).collect();
        names.sort();
        names
    };
    assert_eq!(
        listed(&ours),
        listed(&reference),
        "every version Feast's CRD lists (a stored version must stay listed)"
    );
    let served: Vec<_> = versions(&ours)
        .into_iter()
        .filter(|(_, served, _)| *served)
        .collect();
    assert_eq!(served, [("v1".to_owned(), true, true)], "only v1 is served");
}

/// Every leaf of `original` that `reserialized` lacks or changed, by path.
fn lost_fields(path: &str, original: &Value, reserialized: Option<&Value>, out: &mut Vec<String>) {
    match (original, reserialized) {
        (Value::Object(fields), Some(Value::Object(kept))) => {
            for (name, value) in fields {
                lost_fields(&format!("{path}.{name}"), value, kept.get(name), out);
            }
        }
        (Value::Array(items), Some(Value::Array(kept))) if items.len() == kept.len() => {
            for (index, (item, kept)) in items.iter().zip(kept).enumerate() {
                lost_fields(&format!("{path}[{index}]"), item, Some(kept), out);
            }
        }
        (original, reserialized)
            if without_descriptions(original)
                == reserialized
                    .map(without_descriptions)
                    .unwrap_or(Value::Null) => {}
        (original, reserialized) => out.push(format!(
            "{path}: sample {original} / round trip {}",
            show(reserialized)
        )),
    }
}

/// YAML read the way kubectl reads it (YAML 1.1 numbers: the samples' `mode: 0644` is octal 420).
fn kubectl_yaml() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options
}

#[test]
fn every_feast_sample_round_trips_through_feature_store_without_loss() {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let dir = corpus.join("samples");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    entries.sort();
    let mut checked = 0;
    let mut problems = Vec::new();
    for path in &entries {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, kubectl_yaml())
            .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
        for document in documents
            .into_iter()
            .filter(|d| d["kind"] == "FeatureStore")
        {
            let name = format!("{} ({})", path.display(), document["metadata"]["name"]);
            match serde_json::from_value::<fieldwise_api::v1::FeatureStore>(document.clone()) {
                Err(err) => problems.push(format!("{name}: does not deserialise: {err}")),
                Ok(store) => {
                    let reserialized =
                        serde_json::to_value(&store).expect("a FeatureStore serialises");
                    let mut lost = Vec::new();
                    lost_fields("", &document, Some(&reserialized), &mut lost);
                    problems.extend(lost.into_iter().map(|l| format!("{name}: {l}")));
                    if reserialized != document {
                        problems.push(format!("{name}: round trip added fields: {reserialized}"));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked >= entries.len(),
        "only {checked} FeatureStores in {} sample files",
        entries.len()
    );
}
