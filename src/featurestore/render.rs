//! `fieldwise render`: the desired objects of FeatureStores read from files, without a cluster.
//!
//! Every FeatureStore is first validated exactly like `fieldwise validate`. The other documents of the inputs
//! (Secrets, ConfigMaps, other FeatureStores) stand for the cluster state the graph reads. The output is
//! what the engine would apply: owner references and standard labels included, in graph order.

use std::collections::BTreeMap;

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::{Owner, applied_body};
use serde_json::Value;

use super::{
    context::{GraphContext, ImageDefaults, secret_data},
    graph::desired_graph,
    kinds,
};

/// The namespace of documents that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why `render` could not render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{source_name}: {message}")]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("FeatureStore {namespace}/{name}: {message}")]
    Graph {
        namespace: String,
        name: String,
        message: String,
    },
}

/// One input file (or stdin) and its text.
pub struct Input {
    pub source_name: String,
    pub text: String,
}

/// Renders the desired objects of every FeatureStore in `inputs` as multi-document YAML.
pub fn render(inputs: &[Input], images: &ImageDefaults) -> Result<String, RenderError> {
    let documents = parse(inputs)?;
    let context = cluster_state(&documents, images);
    let mut rendered = Vec::new();
    for document in documents.iter().filter(|d| is_feature_store(d)) {
        rendered.extend(render_one(document, &context)?);
    }
    let mut yaml = String::new();
    for object in &rendered {
        yaml.push_str("---\n");
        yaml.push_str(
            &serde_saphyr::to_string(object).map_err(|e| RenderError::Invalid(e.to_string()))?,
        );
    }
    Ok(yaml)
}

/// The documents of every input, each with its namespace filled in.
fn parse(inputs: &[Input]) -> Result<Vec<Value>, RenderError> {
    let mut documents = Vec::new();
    for input in inputs {
        let report = fieldwise_api::validate::validate_manifests(&input.text);
        if !report.is_valid() {
            let problems: Vec<String> = report
                .documents
                .iter()
                .filter(|d| d.outcome.is_failure())
                .map(|d| {
                    format!(
                        "{} (document {}, line {}): {}",
                        input.source_name,
                        d.index,
                        d.line,
                        describe(&d.outcome)
                    )
                })
                .collect();
            return Err(RenderError::Invalid(problems.join("\n")));
        }
        let parsed: Vec<Value> =
            serde_saphyr::from_multiple_with_options(&input.text, kubernetes_yaml()).map_err(
                |e| RenderError::Yaml {
                    source_name: input.source_name.clone(),
                    message: e.to_string(),
                },
            )?;
        for mut document in parsed.into_iter().filter(Value::is_object) {
            let metadata = document
                .as_object_mut()
                .and_then(|o| o.get_mut("metadata"))
                .and_then(Value::as_object_mut);
            if let Some(metadata) = metadata {
                metadata
                    .entry("namespace")
                    .or_insert_with(|| Value::from(DEFAULT_NAMESPACE));
            }
            documents.push(document);
        }
    }
    Ok(documents)
}

/// YAML as Kubernetes reads manifests (sigs.k8s.io/yaml, YAML 1.1 numbers): `mode: 0644` is octal 420.
pub fn kubernetes_yaml() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options
}

fn describe(outcome: &fieldwise_api::validate::Outcome) -> String {
    match outcome {
        fieldwise_api::validate::Outcome::Rejected(rejection) => rejection.message.clone(),
        fieldwise_api::validate::Outcome::Malformed(error) => error.to_string(),
        _ => String::new(),
    }
}

fn is_feature_store(document: &Value) -> bool {
    document.get("apiVersion").and_then(Value::as_str) == Some("feast.dev/v1")
        && document.get("kind").and_then(Value::as_str) == Some("FeatureStore")
}

/// Secrets, ConfigMaps and FeatureStores of the inputs, as the graph would read them from the cluster.
/// Each FeatureStore's own namespace is applied when a graph is built, so all namespaces are kept here
/// keyed by `namespace/name`.
fn cluster_state(documents: &[Value], images: &ImageDefaults) -> ClusterState {
    let mut state = ClusterState {
        images: images.clone(),
        ..ClusterState::default()
    };
    for document in documents {
        let namespace = document
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE);
        let name = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = (namespace.to_owned(), name.to_owned());
        match (
            document.get("apiVersion").and_then(Value::as_str),
            document.get("kind").and_then(Value::as_str),
        ) {
            (Some("v1"), Some("Secret")) => {
                let secret = serde_json::from_value(document.clone()).unwrap_or_default();
                state.secrets.insert(key, secret_data(&secret));
            }
            (Some("v1"), Some("ConfigMap")) => {
                state
                    .config_maps
                    .insert(key, string_map(document.get("data")));
            }
            _ if is_feature_store(document) => {
                if let Ok(fs) = serde_json::from_value::<FeatureStore>(document.clone()) {
                    state.feature_stores.insert(key, fs);
                }
            }
            _ => {}
        }
    }
    state
}

#[derive(Default)]
struct ClusterState {
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    feature_stores: BTreeMap<(String, String), FeatureStore>,
    images: ImageDefaults,
}

impl ClusterState {
    /// The graph context of a FeatureStore in `namespace`.
    fn context_for(&self, namespace: &str) -> GraphContext {
        let in_namespace = |map: &BTreeMap<(String, String), BTreeMap<String, String>>| {
            map.iter()
                .filter(|((ns, _), _)| ns == namespace)
                .map(|((_, name), data)| (name.clone(), data.clone()))
                .collect()
        };
        GraphContext {
            secrets: in_namespace(&self.secrets),
            config_maps: in_namespace(&self.config_maps),
            feature_stores: self.feature_stores.clone(),
            images: self.images.clone(),
            ..GraphContext::default()
        }
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    let entries = value.and_then(Value::as_object).into_iter().flatten();
    entries
        .filter_map(|(key, value)| value.as_str().map(|text| (key.clone(), text.to_owned())))
        .collect()
}

/// The applied bodies of one FeatureStore's graph. Offline there is no uid: the owner reference carries a
/// placeholder that the real apply replaces with the FeatureStore's uid.
fn render_one(document: &Value, state: &ClusterState) -> Result<Vec<Value>, RenderError> {
    let mut fs: FeatureStore = serde_json::from_value(document.clone())
        .map_err(|e| RenderError::Invalid(e.to_string()))?;
    let namespace = fs
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let name = fs.metadata.name.clone().unwrap_or_default();
    fs.metadata
        .uid
        .get_or_insert_with(|| OFFLINE_UID.to_owned());
    let graph_error = |message: String| RenderError::Graph {
        namespace: namespace.clone(),
        name: name.clone(),
        message,
    };
    let graph =
        desired_graph(&fs, &state.context_for(&namespace)).map_err(|e| graph_error(e.message))?;
    let owner = Owner::of(&fs)
        .map_err(|e| graph_error(e.to_string()))?
        .with_app_name("featurestore");
    let registry = kinds::registry(true);
    graph
        .objects
        .iter()
        .map(|object| {
            applied_body(&registry, &owner, object).map_err(|e| graph_error(e.to_string()))
        })
        .collect()
}

/// The uid `render` gives FeatureStores read from files.
pub const OFFLINE_UID: &str = "00000000-0000-0000-0000-000000000000";
