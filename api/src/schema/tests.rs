//! Unit tests of the schema module on small hand-written schemas.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceSubresourceScale, JSONSchemaProps,
};
use serde_json::{Value, json};

use super::*;

fn schema(v: Value) -> JSONSchemaProps {
    serde_json::from_value(v).expect("test schema parses")
}

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn check(s: &Value, obj: Value) -> Vec<String> {
    messages(&validate(&schema(s.clone()), &obj, None))
}

fn spec_schema(spec: Value) -> Value {
    json!({"type": "object", "properties": {"spec": spec}})
}

#[test]
fn minimum_and_maximum_are_worded_like_kube_openapi() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
        "ratio": {"type": "number", "minimum": 0.5, "exclusiveMinimum": true}
    }}));
    assert_eq!(
        check(&s, json!({"spec": {"replicas": 0}})),
        [
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
        ]
    );
    assert_eq!(
        check(&s, json!({"spec": {"replicas": 11}})),
        [
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
        ]
    );
    assert_eq!(
        check(&s, json!({"spec": {"ratio": 0.5}})),
        ["spec.ratio: Invalid value: 0.5: spec.ratio in body should be greater than 0.5"]
    );
}

#[test]
fn required_enum_and_type_errors() {
    let s = spec_schema(
        json!({"type": "object", "required": ["feastProject"], "properties": {
            "feastProject": {"type": "string"},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "count": {"type": "integer"},
            "flag": {"type": "boolean"}
        }}),
    );
    assert_eq!(
        check(&s, json!({"spec": {}})),
        ["spec.feastProject: Required value"]
    );
    assert_eq!(
        check(&s, json!({"spec": {"feastProject": "p", "mode": "foo"}})),
        [r#"spec.mode: Unsupported value: "foo": supported values: "a", "b""#]
    );
    assert_eq!(
        check(&s, json!({"spec": {"feastProject": "p", "count": "3"}})),
        [
            r#"spec.count: Invalid value: "string": spec.count in body must be of type integer: "string""#
        ]
    );
    assert_eq!(
        check(&s, json!({"spec": {"feastProject": "p", "count": 1.5}})),
        [
            r#"spec.count: Invalid value: "number": spec.count in body must be of type integer: "number""#
        ]
    );
    // An integral float is an integer, as in the API server.
    assert!(check(&s, json!({"spec": {"feastProject": "p", "count": 2.0}})).is_empty());
    assert_eq!(
        check(&s, json!({"spec": {"feastProject": "p", "flag": null}})),
        [r#"spec.flag: Invalid value: "null": spec.flag in body must be of type boolean: "null""#]
    );
}

#[test]
fn int_or_string_and_nullable() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "maybe": {"type": "string", "nullable": true}
    }}));
    assert!(check(&s, json!({"spec": {"port": 80, "maybe": null}})).is_empty());
    assert!(check(&s, json!({"spec": {"port": "http"}})).is_empty());
    let errors = check(&s, json!({"spec": {"port": true}}));
    assert_eq!(
        errors[0],
        r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
    );
}

#[test]
fn string_constraints() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 5, "minLength": 2, "pattern": "^[a-z]+$"},
        "when": {"type": "string", "format": "date-time"}
    }}));
    assert_eq!(
        check(&s, json!({"spec": {"name": "abcdefg"}})),
        ["spec.name: Too long: may not be more than 5 bytes"]
    );
    assert_eq!(
        check(&s, json!({"spec": {"name": "a"}})),
        [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
    );
    assert_eq!(
        check(&s, json!({"spec": {"name": "AB"}})),
        [r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#]
    );
    assert_eq!(
        check(&s, json!({"spec": {"when": "yesterday"}})),
        [
            r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#
        ]
    );
    assert!(check(&s, json!({"spec": {"when": "2024-01-02T03:04:05Z"}})).is_empty());
}

#[test]
fn collection_sizes() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "list": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                   "additionalProperties": {"type": "string", "maxLength": 3}}
    }}));
    assert_eq!(
        check(&s, json!({"spec": {"list": []}})),
        ["spec.list: Invalid value: 0: spec.list in body should have at least 1 items"]
    );
    assert_eq!(
        check(&s, json!({"spec": {"list": ["a", "b", "c"]}})),
        ["spec.list: Too many: 3: must have at most 2 items"]
    );
    assert_eq!(
        check(&s, json!({"spec": {"labels": {"a": "x", "b": "y"}}})),
        ["spec.labels: Too many: 2: must have at most 1 item"]
    );
    assert_eq!(
        check(&s, json!({"spec": {"labels": {}}})),
        ["spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"]
    );
    // kube-openapi joins map keys with a dot.
    assert_eq!(
        check(&s, json!({"spec": {"labels": {"k": "long"}}})),
        ["spec.labels.k: Too long: may not be more than 3 bytes"]
    );
}

#[test]
fn list_sets_and_maps_must_be_unique() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
    }}));
    assert_eq!(
        check(&s, json!({"spec": {"set": ["a", "b", "a", "a"]}})),
        [r#"spec.set[2]: Duplicate value: "a""#]
    );
    assert_eq!(
        check(
            &s,
            json!({"spec": {"ports": [{"name": "x", "port": 1}, {"name": "x", "port": 2}]}})
        ),
        [r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"x"}"#]
    );
}

fn cel_schema() -> Value {
    json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= 1 || !has(self.autoscaling)", "message": "replicas > 1 and autoscaling are mutually exclusive."},
            {"rule": "!has(self.s3_additional_kwargs) || self.path.startsWith('s3://')"}
        ],
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "autoscaling": {"type": "object"},
            "path": {"type": "string"},
            "s3_additional_kwargs": {"type": "object", "additionalProperties": {"type": "string"}},
            "size": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self.endsWith('Gi')", "message": "size must be in Gi", "reason": "FieldValueForbidden"},
                {"rule": "self.size() < 6", "messageExpression": "'size ' + self + ' is too long'"}
            ]},
            "create": {"type": "object", "properties": {"a": {"type": "string"}},
                       "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "create is immutable"}]},
            "pair": {"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                     "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min above max", "fieldPath": ".min"}]},
            "items": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'bad'"}]}}
        }
    }}})
}

#[test]
fn cel_errors_print_the_schema_type() {
    let s = cel_schema();
    assert_eq!(
        check(&s, json!({"spec": {"replicas": 2, "autoscaling": {}}})),
        [r#"spec: Invalid value: "object": replicas > 1 and autoscaling are mutually exclusive."#]
    );
    assert_eq!(
        check(
            &s,
            json!({"spec": {"path": "/x", "s3_additional_kwargs": {"a": "b"}}})
        ),
        [
            r#"spec: Invalid value: "object": failed rule: !has(self.s3_additional_kwargs) || self.path.startsWith('s3://')"#
        ]
    );
    assert!(
        check(
            &s,
            json!({"spec": {"path": "s3://b/x", "s3_additional_kwargs": {"a": "b"}}})
        )
        .is_empty()
    );
    assert_eq!(
        check(&s, json!({"spec": {"size": "12345Mi"}})),
        [
            "spec.size: Forbidden: size must be in Gi",
            r#"spec.size: Invalid value: "string": size 12345Mi is too long"#
        ]
    );
    assert_eq!(
        check(&s, json!({"spec": {"pair": {"min": 3, "max": 1}}})),
        [r#"spec.pair.min: Invalid value: "object": min above max"#]
    );
    assert_eq!(
        check(&s, json!({"spec": {"items": ["ok", "bad"]}})),
        [r#"spec.items[1]: Invalid value: "string": failed rule: self != 'bad'"#]
    );
}

#[test]
fn transition_rules_run_only_on_update_with_an_old_value() {
    let s = schema(cel_schema());
    let new = json!({"spec": {"create": {"a": "2"}}});
    assert!(validate(&s, &new, None).is_empty());
    assert!(validate(&s, &new, Some(&json!({"spec": {}}))).is_empty());
    assert_eq!(
        messages(&validate(
            &s,
            &new,
            Some(&json!({"spec": {"create": {"a": "1"}}}))
        )),
        [r#"spec.create: Invalid value: "object": create is immutable"#]
    );
}

#[test]
fn optional_old_self_runs_on_create() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"x": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || self.x == oldSelf.value().x", "optionalOldSelf": true,
                                      "message": "x is immutable"}]}),
    );
    let s = schema(s);
    assert!(validate(&s, &json!({"spec": {"x": "a"}}), None).is_empty());
    assert_eq!(
        messages(&validate(
            &s,
            &json!({"spec": {"x": "a"}}),
            Some(&json!({"spec": {"x": "b"}}))
        )),
        [r#"spec: Invalid value: "object": x is immutable"#]
    );
}

#[test]
fn blocking_schema_errors_skip_cel() {
    let mut s = cel_schema();
    s["properties"]["spec"]["required"] = json!(["path"]);
    assert_eq!(
        check(&s, json!({"spec": {"replicas": 2, "autoscaling": {}}})),
        [
            "spec.path: Required value",
            r#"<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        ]
    );
}

#[test]
fn unchanged_values_are_ratcheted_on_update() {
    let s = schema(cel_schema());
    let bad = json!({"spec": {"replicas": 2, "autoscaling": {}}});
    assert!(validate(&s, &bad, Some(&bad)).is_empty());
    let changed = json!({"spec": {"replicas": 3, "autoscaling": {}}});
    assert_eq!(
        messages(&validate(&s, &changed, Some(&bad))),
        [r#"spec: Invalid value: "object": replicas > 1 and autoscaling are mutually exclusive."#]
    );
    // Items of atomic lists cannot be correlated with the old list, so their rules are not ratcheted.
    let bad_item = json!({"spec": {"items": ["bad"]}});
    assert_eq!(
        messages(&validate(&s, &bad_item, Some(&bad_item))),
        [r#"spec.items[0]: Invalid value: "string": failed rule: self != 'bad'"#]
    );
}

#[test]
fn prune_reports_unknown_fields_and_keeps_declared_ones() {
    let s = schema(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "known": {"type": "string"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                     "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}
    }}));
    let mut obj = json!({
        "apiVersion": "x/v1", "kind": "K",
        "metadata": {"name": "n", "bogus": 1},
        "spec": {
            "known": "k", "bogus": true,
            "free": {"anything": 1, "typed": {"a": "x", "b": "y"}},
            "labels": {"any": "v"},
            "list": [{"a": "1", "zz": 2}],
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1}
        },
        "status": {"x": 1}
    });
    let pruned = prune_unknown(&s, &mut obj);
    assert_eq!(
        pruned,
        [
            "metadata.bogus",
            "spec.bogus",
            "spec.free.typed.b",
            "spec.list[0].zz",
            "spec.template.extra",
            "status"
        ]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {
                "known": "k", "free": {"anything": 1, "typed": {"a": "x"}}, "labels": {"any": "v"},
                "list": [{"a": "1"}],
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
            }
        })
    );
}

#[test]
fn invalid_message_and_causes() {
    let one = vec![FieldError::required("spec.feastProject", "")];
    assert_eq!(
        invalid_message("FeatureStore", "feast.dev", "sample", &one),
        r#"FeatureStore.feast.dev "sample" is invalid: spec.feastProject: Required value"#
    );
    let two = vec![
        FieldError::invalid(
            "spec.replicas",
            0,
            "spec.replicas in body should be greater than or equal to 1",
        ),
        FieldError::invalid("spec", "object", "boom"),
        FieldError::invalid("spec", "object", "boom"),
    ];
    assert_eq!(
        invalid_message("FeatureStore", "feast.dev", "sample", &two),
        r#"FeatureStore.feast.dev "sample" is invalid: [spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1, spec: Invalid value: "object": boom]"#
    );
    let causes = status_causes(&two);
    assert_eq!(causes.len(), 3);
    assert_eq!(causes[0].reason.as_deref(), Some("FieldValueInvalid"));
    assert_eq!(causes[0].field.as_deref(), Some("spec.replicas"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some("Invalid value: 0: spec.replicas in body should be greater than or equal to 1")
    );
    let status = invalid_status("FeatureStore", "feast.dev", "sample", &one);
    assert_eq!(status.code, Some(422));
    assert_eq!(status.reason.as_deref(), Some("Invalid"));
    let not_supported =
        FieldError::not_supported("spec.x", "foo", &["a".to_owned(), "b".to_owned()]);
    assert_eq!(not_supported.error_type.reason(), "FieldValueNotSupported");
    assert_eq!(
        not_supported.to_string(),
        r#"spec.x: Unsupported value: "foo": supported values: "a", "b""#
    );
}

#[test]
fn object_meta_and_scale_checks() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "replicas": {"type": "integer"}}}}}),
    );
    let scale = CustomResourceSubresourceScale {
        spec_replicas_path: ".spec.replicas".to_owned(),
        status_replicas_path: ".status.replicas".to_owned(),
        label_selector_path: Some(".status.selector".to_owned()),
    };
    let obj = json!({"metadata": {"name": "Bad_Name"}, "spec": {"replicas": -1}});
    let errors = messages(&validate_custom_resource(&s, Some(&scale), &obj, None));
    assert_eq!(
        errors,
        [
            r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            ".spec.replicas: Invalid value: -1: should be a non-negative integer"
        ]
    );
    assert_eq!(
        messages(&validate_custom_resource(
            &s,
            None,
            &json!({"metadata": {}}),
            None
        )),
        ["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn cel_values_use_kubernetes_extension_libraries() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"q": {"type": "string"}, "when": {"type": "string", "format": "date-time"}},
        "x-kubernetes-validations": [
            {"rule": "quantity(self.q).isGreaterThan(quantity('1Gi'))", "message": "q too small"},
            {"rule": "self.when > timestamp('2020-01-01T00:00:00Z')", "message": "too early"}
        ]}),
    );
    assert!(
        check(
            &s,
            json!({"spec": {"q": "2Gi", "when": "2024-01-01T00:00:00Z"}})
        )
        .is_empty()
    );
    assert_eq!(
        check(
            &s,
            json!({"spec": {"q": "1Mi", "when": "2019-01-01T00:00:00Z"}})
        ),
        [
            r#"spec: Invalid value: "object": q too small"#,
            r#"spec: Invalid value: "object": too early"#
        ]
    );
}

#[test]
fn runtime_cel_errors_are_reported() {
    let s = spec_schema(
        json!({"type": "object", "properties": {"a": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "self.a == 'x'", "message": "a must be x"}]}),
    );
    assert_eq!(
        check(&s, json!({"spec": {}})),
        [r#"spec: Invalid value: "object": no such key: a evaluating rule: a must be x"#]
    );
}

#[test]
fn root_rules_see_only_name_and_generate_name_of_metadata() {
    let s = json!({"type": "object", "properties": {"metadata": {"type": "object"}},
    "x-kubernetes-validations": [
        {"rule": "self.metadata.name.startsWith('ok')", "message": "bad name"},
        {"rule": "!has(self.metadata.labels)", "message": "labels are not visible to CEL"}
    ]});
    assert!(
        check(
            &s,
            json!({"metadata": {"name": "ok-1", "labels": {"a": "b"}}})
        )
        .is_empty()
    );
    assert_eq!(
        check(&s, json!({"metadata": {"name": "nope"}})),
        [r#"<nil>: Invalid value: "object": bad name"#]
    );
}

#[test]
fn duration_strings_are_cel_durations() {
    let s = spec_schema(json!({"type": "object", "properties": {
        "every": {"type": "string", "format": "duration",
                  "x-kubernetes-validations": [{"rule": "self >= duration('1m')", "message": "at least a minute"}]}
    }}));
    assert!(check(&s, json!({"spec": {"every": "1h"}})).is_empty());
    assert_eq!(
        check(&s, json!({"spec": {"every": "30s"}})),
        [r#"spec.every: Invalid value: "string": at least a minute"#]
    );
}
