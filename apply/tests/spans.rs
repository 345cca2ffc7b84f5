//! Tracing: one span per object with the documented attributes; errors marked for OTel; no
//! object body (which may hold Secret data) in any span field or log event.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use fieldwise_apply::{DesiredObject, Engine, KindRegistry, KindSpec, Owner};
use http::{Request, Response};
use k8s_openapi::api::core::v1::Secret;
use kube::{Client, client::Body};
use serde_json::json;
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*, registry::LookupSpan};

type Fields = BTreeMap<String, String>;

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, (String, Fields)>>>,
    events: Arc<Mutex<Vec<Fields>>>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        self.spans
            .lock()
            .expect("spans")
            .insert(id.into_u64(), (attrs.metadata().name().to_string(), fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.spans.lock().expect("spans").get_mut(&id.into_u64()) {
            values.record(&mut Collect(fields));
        }
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        self.events.lock().expect("events").push(fields);
    }
}

fn engine() -> Engine {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let bytes = request.into_body().collect_bytes().await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let (code, reply) = if body["metadata"]["name"] == "broken" {
                (
                    422,
                    json!({"kind": "Status", "code": 422, "reason": "Invalid", "message": "Secret \"broken\" is invalid: type: Invalid value"}),
                )
            } else {
                let mut obj = body.clone();
                obj["metadata"]["resourceVersion"] = json!("1");
                (201, obj)
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(reply.to_string().into_bytes()))
                    .expect("response"),
            );
        }
    });
    let engine = Engine::new(
        Client::new(service, "default"),
        KindRegistry::new().with(KindSpec::namespaced::<Secret>()),
    );
    engine.preload(vec![]).expect("preload");
    engine
}

#[tokio::test]
async fn spans_carry_object_attributes_and_no_secret_data() {
    let capture = Capture::default();
    let _guard = tracing_subscriber::registry()
        .with(capture.clone())
        .set_default();
    let owner = Owner {
        api_version: "feast.dev/v1".into(),
        kind: "FeatureStore".into(),
        name: "fs".into(),
        namespace: Some("ns".into()),
        uid: "u-1".into(),
        app_name: None,
        adopting: false,
    };
    let secret = |name: &str| {
        DesiredObject::new(
            "registry",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"password": "s3cr3t-value"}}),
        )
    };
    let report = engine()
        .reconcile(&owner, vec![secret("creds"), secret("broken")])
        .await;
    assert!(report.has_errors());

    let spans = capture.spans.lock().expect("spans").clone();
    let find = |name: &str| {
        spans
            .values()
            .find(|(_, f)| f.get("k8s.object.name").map(String::as_str) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no span for {name}: {spans:?}"))
    };
    let (span_name, fields) = find("creds");
    assert_eq!(span_name, "apply");
    assert_eq!(
        fields.get("k8s.object.kind").map(String::as_str),
        Some("Secret")
    );
    assert_eq!(
        fields.get("k8s.namespace.name").map(String::as_str),
        Some("ns")
    );
    assert_eq!(fields.get("outcome").map(String::as_str), Some("created"));
    assert!(!fields.contains_key("otel.status_code"));
    let (_, fields) = find("broken");
    assert_eq!(fields.get("outcome").map(String::as_str), Some("failed"));
    assert_eq!(
        fields.get("otel.status_code").map(String::as_str),
        Some("ERROR")
    );
    assert!(
        fields
            .get("otel.status_description")
            .is_some_and(|d| d.contains("is invalid")),
        "{fields:?}"
    );

    let everything = format!("{spans:?}{:?}", capture.events.lock().expect("events"));
    assert!(
        !everything.contains("s3cr3t"),
        "secret data leaked into telemetry"
    );
}
