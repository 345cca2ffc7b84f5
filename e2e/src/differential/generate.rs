//! Random sequences for [`super`]: writes by three appliers (`alice`, `bob`, `carol`, sometimes
//! forced) and one updater (`dave`), drawn from small value sets so that managers often touch the
//! same fields. Empty containers (`spec: {}`, `labels: {}`, an empty struct or map) are drawn on
//! purpose: their ownership is where implementations differ. Custom resource updates (PUT bodies)
//! also carry nulls, which kube-apiserver drops when it decodes them (non-nullable fields);
//! applied configurations carry none (a null there is a 422 on kube-apiserver, not a merge).

use serde_json::{Map, Value, json};

use super::{Op, Rng, Sequence, Step};

const APPLIERS: &[&str] = &["alice", "bob", "carol"];

/// The `Widget` custom resource's schema (`openAPIV3Schema`): granular and atomic maps, a struct,
/// set, atomic and map lists.
pub fn widget_schema() -> Value {
    let string = json!({"type": "string"});
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "image": string,
            "config": string_map,
            "limits": {"type": "object", "properties": {"cpu": string, "memory": string}},
            "tags": {"type": "array", "items": string, "x-kubernetes-list-type": "set"},
            "args": {"type": "array", "items": string, "x-kubernetes-list-type": "atomic"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"], "properties": {
                          "name": string, "port": {"type": "integer"}, "protocol": string}}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                         "properties": {"matchLabels": string_map}},
        }},
    }})
}

/// The CRD serving `widgets.example.com/v1` with [`widget_schema`].
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                           "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": widget_schema()}}]}
    })
}

/// Inserts `key` with probability `percent`, its value drawn only then.
fn maybe(
    rng: &mut Rng,
    out: &mut Map<String, Value>,
    percent: u64,
    key: &str,
    value: impl FnOnce(&mut Rng) -> Value,
) {
    if rng.chance(percent) {
        let value = value(rng);
        out.insert(key.to_owned(), value);
    }
}

fn string_map(rng: &mut Rng, keys: &[&str], values: &[&str]) -> Value {
    let mut map = Map::new();
    for key in rng.subset(keys) {
        map.insert(key.to_owned(), json!(rng.pick(values)));
    }
    Value::Object(map)
}

fn widget_spec(rng: &mut Rng, nulls: bool) -> Value {
    let mut spec = Map::new();
    if rng.chance(8) {
        return json!({});
    }
    maybe(rng, &mut spec, 40, "replicas", |rng| {
        json!(1 + rng.below(3))
    });
    let image = if nulls && rng.chance(20) {
        Value::Null
    } else {
        json!(rng.pick(&["a:1", "a:2"]))
    };
    maybe(rng, &mut spec, 40, "image", |_| image);
    let config = string_map(rng, &["x", "y", "z"], &["1", "2"]);
    maybe(rng, &mut spec, 40, "config", |_| config);
    let mut limits = Map::new();
    maybe(rng, &mut limits, 50, "cpu", |rng| {
        json!(rng.pick(&["1", "2"]))
    });
    maybe(rng, &mut limits, 50, "memory", |_| json!("1Gi"));
    maybe(rng, &mut spec, 35, "limits", |_| Value::Object(limits));
    let tags = rng.subset(&["t1", "t2", "t3"]);
    maybe(rng, &mut spec, 35, "tags", |_| json!(tags));
    let args = rng
        .pick(&[&["--a"][..], &["--b", "--c"][..], &[][..]])
        .to_vec();
    maybe(rng, &mut spec, 30, "args", |_| json!(args));
    let mut ports = Vec::new();
    for name in rng.subset(&["http", "grpc", "admin"]) {
        let mut port = Map::new();
        port.insert("name".into(), json!(name));
        maybe(rng, &mut port, 60, "port", |rng| json!(rng.pick(&[80, 81])));
        maybe(rng, &mut port, 30, "protocol", |_| json!("TCP"));
        ports.push(Value::Object(port));
    }
    maybe(rng, &mut spec, 40, "ports", |_| Value::Array(ports));
    let selector = json!({"matchLabels": string_map(rng, &["app", "tier"], &["x", "y"])});
    maybe(rng, &mut spec, 25, "selector", |_| selector);
    Value::Object(spec)
}

fn labels(rng: &mut Rng) -> Value {
    string_map(rng, &["team", "env"], &["a", "b"])
}

/// A body for a Widget write: `spec`, sometimes `metadata.labels` (possibly `{}`).
fn widget_body(rng: &mut Rng, nulls: bool) -> Value {
    let mut body = Map::new();
    if rng.chance(85) {
        body.insert("spec".into(), widget_spec(rng, nulls));
    }
    if rng.chance(25) {
        body.insert("metadata".into(), json!({"labels": labels(rng)}));
    }
    Value::Object(body)
}

/// A sequence of 2 to 7 writes to one Widget; the first is an apply (it creates the object).
pub fn widget_sequence(rng: &mut Rng) -> Sequence {
    sequence(rng, widget_body)
}

fn sequence(rng: &mut Rng, body: fn(&mut Rng, bool) -> Value) -> Sequence {
    let count = 2 + rng.below(6);
    let mut steps = Vec::new();
    for i in 0..count {
        let step = if i > 0 && rng.chance(25) {
            Step {
                manager: "dave".into(),
                op: Op::Update {
                    object: body(rng, true),
                },
            }
        } else {
            Step {
                manager: (*rng.pick(APPLIERS)).to_owned(),
                op: Op::Apply {
                    force: rng.chance(20),
                    config: body(rng, false),
                },
            }
        };
        steps.push(step);
    }
    Sequence { steps }
}

fn container(rng: &mut Rng, name: &str) -> Value {
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    maybe(rng, &mut c, 60, "image", |rng| {
        json!(rng.pick(&["nginx:1", "nginx:2"]))
    });
    let mut ports = Vec::new();
    for number in rng.subset(&[80, 81]) {
        let mut port = json!({"containerPort": number});
        if rng.chance(40) {
            port["protocol"] = json!("TCP");
        }
        ports.push(port);
    }
    maybe(rng, &mut c, 40, "ports", |_| Value::Array(ports));
    let env: Vec<Value> = rng
        .subset(&["A", "B"])
        .into_iter()
        .map(|name| json!({"name": name, "value": rng.pick(&["1", "2"])}))
        .collect();
    maybe(rng, &mut c, 30, "env", |_| Value::Array(env));
    maybe(rng, &mut c, 15, "resources", |_| json!({}));
    Value::Object(c)
}

/// A body for a Deployment write (apps/v1): replicas, selector (atomic), template labels and
/// containers (a list keyed by name, with ports keyed by containerPort and protocol), strategy.
fn deployment_body(rng: &mut Rng, _nulls: bool) -> Value {
    let mut spec = Map::new();
    maybe(rng, &mut spec, 40, "replicas", |rng| json!(rng.below(4)));
    maybe(rng, &mut spec, 20, "paused", |rng| json!(rng.chance(50)));
    let selector = json!({"matchLabels": string_map(rng, &["app", "tier"], &["x", "y"])});
    maybe(rng, &mut spec, 30, "selector", |_| selector);
    maybe(
        rng,
        &mut spec,
        15,
        "strategy",
        |rng| json!({"type": rng.pick(&["Recreate", "RollingUpdate"])}),
    );
    let mut template = Map::new();
    maybe(
        rng,
        &mut template,
        40,
        "metadata",
        |rng| json!({"labels": labels(rng)}),
    );
    let containers: Vec<Value> = rng
        .subset(&["app", "side"])
        .into_iter()
        .map(|name| container(rng, name))
        .collect();
    maybe(
        rng,
        &mut template,
        60,
        "spec",
        |_| json!({"containers": containers}),
    );
    maybe(rng, &mut spec, 60, "template", |_| Value::Object(template));
    let mut body = Map::new();
    if rng.chance(90) {
        body.insert("spec".into(), Value::Object(spec));
    }
    if rng.chance(25) {
        body.insert("metadata".into(), json!({"labels": labels(rng)}));
    }
    Value::Object(body)
}

/// A sequence of 2 to 7 writes to one Deployment; the first is an apply.
pub fn deployment_sequence(rng: &mut Rng) -> Sequence {
    sequence(rng, deployment_body)
}
