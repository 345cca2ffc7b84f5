//! Building FeatureStores, applied specs and contexts for the tests, from the Feast samples or by hand.

use std::collections::BTreeMap;

use fieldwise_api::v1::defaults::{DefaultsContext, applied_with};
use fieldwise_api::v1::{FeatureStore, FeatureStoreSpec, ServiceHostnames};
use serde_json::{Value, json};

use crate::featurestore::config::{ConfigError, client_config, lineage_config, server_config};
use crate::featurestore::context::GraphContext;

/// One FeatureStore with what it is built from.
pub struct Case {
    pub feature_store: FeatureStore,
    pub context: GraphContext,
    pub hostnames: ServiceHostnames,
}

impl Case {
    /// A FeatureStore `name` in namespace `ns` with `spec` (camelCase JSON, as in a manifest).
    pub fn new(name: &str, ns: &str, spec: Value) -> Self {
        let document = json!({
            "apiVersion": "feast.dev/v1",
            "kind": "FeatureStore",
            "metadata": { "name": name, "namespace": ns },
            "spec": spec,
        });
        let feature_store = serde_json::from_value(document).expect("a valid FeatureStore");
        Self {
            feature_store,
            context: GraphContext::default(),
            hostnames: ServiceHostnames::default(),
        }
    }

    /// The FeatureStore and Secrets of a Feast sample (`samples/<file>` in the Feast reference
    /// corpus), or `None` (the test is skipped) when the corpus is absent.
    pub fn sample(file: &str) -> Option<Self> {
        let path = fieldwise_api::reference::feast_corpus()?
            .join("samples")
            .join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        let mut options = serde_saphyr::Options::default();
        options.legacy_octal_numbers = true; // `defaultMode: 0644`, as Kubernetes reads it
        let documents: Vec<Value> =
            serde_saphyr::from_multiple_with_options(&text, options).expect("sample YAML");
        let mut feature_store = None;
        let mut context = GraphContext::default();
        for document in documents {
            match document["kind"].as_str() {
                Some("FeatureStore") => {
                    feature_store = Some(
                        serde_json::from_value::<FeatureStore>(document).expect("FeatureStore"),
                    );
                }
                Some("Secret") => {
                    let name = document["metadata"]["name"]
                        .as_str()
                        .expect("Secret name")
                        .to_owned();
                    let data: BTreeMap<String, String> =
                        serde_json::from_value(document["stringData"].clone()).expect("stringData");
                    context.secrets.insert(name, data);
                }
                _ => {}
            }
        }
        let feature_store = feature_store.expect("the sample has a FeatureStore");
        Some(Self {
            feature_store,
            context,
            hostnames: ServiceHostnames::default(),
        })
    }

    pub fn secret(mut self, name: &str, data: &[(&str, &str)]) -> Self {
        let data = data
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        self.context.secrets.insert(name.to_owned(), data);
        self
    }

    pub fn config_map(mut self, name: &str, data: &[(&str, &str)]) -> Self {
        let data = data
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        self.context.config_maps.insert(name.to_owned(), data);
        self
    }

    pub fn hostnames(mut self, hostnames: Value) -> Self {
        self.hostnames = serde_json::from_value(hostnames).expect("hostnames");
        self
    }

    pub fn applied(&self) -> FeatureStoreSpec {
        let namespace = self
            .feature_store
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        applied_with(&self.feature_store.spec, &DefaultsContext::new(namespace))
    }

    pub fn server(&self) -> Result<Value, ConfigError> {
        server_config(
            &self.feature_store,
            &self.applied(),
            &self.hostnames,
            &self.context,
        )
    }

    pub fn client(&self) -> Result<Value, ConfigError> {
        client_config(
            &self.feature_store,
            &self.applied(),
            &self.hostnames,
            &self.context,
        )
    }

    pub fn lineage(&self) -> Result<Option<Value>, ConfigError> {
        lineage_config(
            &self.feature_store,
            &self.applied(),
            &self.hostnames,
            &self.context,
        )
    }

    /// The server document, which must build.
    pub fn server_ok(&self) -> Value {
        self.server()
            .unwrap_or_else(|error| panic!("server config failed: {error}"))
    }

    /// The server error, which must occur.
    pub fn server_err(&self) -> ConfigError {
        match self.server() {
            Ok(document) => panic!("expected an error, got {document}"),
            Err(error) => error,
        }
    }
}

/// The top-level keys of a document, in order.
pub fn keys(document: &Value) -> Vec<&str> {
    document
        .as_object()
        .expect("a mapping")
        .keys()
        .map(String::as_str)
        .collect()
}
