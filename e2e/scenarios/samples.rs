//! Every Feast sample becomes Ready, its live objects are what `fieldwise render` shows, and deleting it
//! removes every child, cluster-scoped ones included.

use std::{fs, path::Path};

use fieldwise::featurestore::{
    context::ImageDefaults,
    render::{Input, OFFLINE_UID, render},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, DynamicObject},
    discovery::ApiResource,
    runtime::{conditions::is_deleted, wait::await_condition},
};
use serde_json::Value;

use crate::harness::{Cluster, contains, on_every_target, patience};

fn sample_inputs(samples_dir: &Path, file_name: &str) -> Vec<Input> {
    let mut paths = vec![samples_dir.join(file_name)];
    if file_name.contains("lineage_server") || file_name.contains("openlineage_consumer") {
        paths.push(Path::new("tests/fixtures/registry-db-secret.yaml").to_path_buf());
    }
    paths
        .iter()
        .map(|path| Input {
            source_name: path.display().to_string(),
            text: fs::read_to_string(path).expect("readable sample"),
        })
        .collect()
}

/// The samples that need nothing outside the cluster (no Secrets, databases, object stores, identity
/// providers or Git servers) and name no namespace: those a real cluster can run in a scenario's namespace.
const SELF_CONTAINED: [&str; 9] = [
    "v1_featurestore.yaml",
    "v1_featurestore_init.yaml",
    "v1_featurestore_kubernetes_auth.yaml",
    "v1_featurestore_mcp.yaml",
    "v1_featurestore_packaged.yaml",
    "v1_featurestore_pvc_persistence.yaml",
    "v1_featurestore_services_loglevel.yaml",
    "v1_featurestore_serving.yaml",
    "v1_featurestore_with_ui.yaml",
];

on_every_target!(
    every_sample_becomes_ready_matches_render_and_is_cleaned_up_on_delete,
    every_sample
);

async fn every_sample(cluster: Cluster) {
    let Some(corpus) = fieldwise_api::reference::feast_corpus() else {
        return;
    };
    let samples_dir = corpus.join("samples");
    let samples: Vec<String> = if cluster.is_emulated() {
        for namespace in ["test", "feast"] {
            cluster.namespace(namespace).await;
        }
        let mut all: Vec<String> = fs::read_dir(&samples_dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", samples_dir.display()))
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".yaml"))
            .collect();
        all.sort();
        all
    } else {
        SELF_CONTAINED.map(str::to_owned).to_vec()
    };
    for sample in &samples {
        check_sample(&cluster, &samples_dir, sample).await;
    }
}

/// The inputs with `namespace` filled in where a document names none, so `render` expects what the
/// cluster gets (JSON documents: YAML that renders the same).
pub(crate) fn in_namespace(inputs: Vec<Input>, namespace: &str) -> Vec<Input> {
    inputs
        .into_iter()
        .map(|input| {
            let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(
                &input.text,
                fieldwise::featurestore::render::kubernetes_yaml(),
            )
            .expect("valid YAML");
            let text = documents
                .into_iter()
                .filter(Value::is_object)
                .map(|mut document| {
                    if document.pointer("/metadata/namespace").is_none() {
                        document["metadata"]["namespace"] = Value::from(namespace);
                    }
                    document.to_string()
                })
                .collect::<Vec<_>>()
                .join("\n---\n");
            Input { text, ..input }
        })
        .collect()
}

async fn check_sample(cluster: &Cluster, samples_dir: &Path, sample: &str) {
    let inputs = if cluster.is_emulated() {
        sample_inputs(samples_dir, sample)
    } else {
        in_namespace(sample_inputs(samples_dir, sample), &cluster.namespace)
    };
    let mut feature_stores = Vec::new();
    for input in &inputs {
        for document in cluster.apply_yaml(&input.text, &cluster.namespace).await {
            if document["kind"] == "FeatureStore" {
                feature_stores.push(document);
            }
        }
    }
    let rendered: Vec<Value> =
        serde_saphyr::from_multiple(&render(&inputs, &ImageDefaults::default()).expect("renders"))
            .expect("rendered YAML parses");
    for document in &feature_stores {
        let namespace = document["metadata"]["namespace"]
            .as_str()
            .expect("namespace");
        let name = document["metadata"]["name"].as_str().expect("name");
        let fs = cluster.wait_ready(namespace, name).await;
        let uid = fs.uid().expect("a uid");
        let children: Vec<Value> = rendered
            .iter()
            .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/instance"] == name)
            .map(|o| serde_json::from_str(&o.to_string().replace(OFFLINE_UID, &uid)).expect("JSON"))
            .map(without_generated_values)
            .collect();
        assert!(
            !children.is_empty(),
            "{sample}: nothing rendered for {name}"
        );
        for child in &children {
            let live = live_object(cluster, child)
                .await
                .unwrap_or_else(|| panic!("{sample}: {} missing", describe(child)));
            let live = serde_json::to_value(&live).expect("JSON");
            if let Err(difference) = contains(&live, child, "") {
                panic!(
                    "{sample}: live {} differs from render: {difference}",
                    describe(child)
                );
            }
        }
        cluster
            .feature_stores(namespace)
            .delete(name, &DeleteParams::background())
            .await
            .expect("deleted");
        for child in children.iter().chain(std::iter::once(document)) {
            await_gone(cluster, child).await.unwrap_or_else(|| {
                panic!("{sample}: {} outlived its FeatureStore", describe(child))
            });
        }
    }
}

/// The rendered object without what the operator generates when it creates the object: the
/// config-hash key (render shows a placeholder) and the config hash keyed by it.
fn without_generated_values(mut object: Value) -> Value {
    let annotations = object
        .pointer_mut("/spec/template/metadata/annotations")
        .and_then(Value::as_object_mut);
    if let Some(annotations) = annotations {
        annotations.remove(fieldwise::featurestore::graph::CONFIG_HASH_ANNOTATION);
    }
    if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
        data.retain(|_, value| value != fieldwise::render::GENERATED_PLACEHOLDER);
    }
    object
}

pub(crate) fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"],
        object["metadata"]["namespace"].as_str().unwrap_or("-"),
        object["metadata"]["name"]
    )
}

pub(crate) fn api_for(cluster: &Cluster, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_lowercase()).replace("policys", "policies");
    let resource = ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        plural: match kind {
            "PodDisruptionBudget" => "poddisruptionbudgets".to_owned(),
            "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_owned(),
            "Ingress" => "ingresses".to_owned(),
            _ => plural,
        },
    };
    let namespace = object["metadata"]["namespace"].as_str();
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    (cluster.dynamic_api(&resource, namespace), name)
}

pub(crate) async fn live_object(cluster: &Cluster, object: &Value) -> Option<DynamicObject> {
    let (api, name) = api_for(cluster, object);
    api.get_opt(&name).await.expect("readable")
}

/// Waits for the object to disappear; `None` if it is still there after the patience runs out.
pub(crate) async fn await_gone(cluster: &Cluster, object: &Value) -> Option<()> {
    let (api, name) = api_for(cluster, object);
    let Some(live) = api.get_opt(&name).await.expect("readable") else {
        return Some(());
    };
    let uid = live.uid().unwrap_or_default();
    tokio::time::timeout(patience(), await_condition(api, &name, is_deleted(&uid)))
        .await
        .ok()
        .map(|_| ())
}
