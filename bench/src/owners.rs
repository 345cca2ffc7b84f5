//! The resources the bench creates, FeatureStores and PrismClusters: their samples, where each
//! goes, how it is applied and changed, and the phase at which it counts as up.

use fieldwise::featurestore::{
    context::ImageDefaults,
    render::{Input, kubernetes_yaml, render},
};
use fieldwise_api::{prism::PrismCluster, v1::FeatureStore};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{BenchResult, USER, err};

/// A kind of resource the operator reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    FeatureStore,
    PrismCluster,
}

impl Kind {
    /// The API group and plural, as the emulator's store keys them.
    pub fn group_and_resource(self) -> (&'static str, &'static str) {
        match self {
            Kind::FeatureStore => ("feast.dev", "featurestores"),
            Kind::PrismCluster => ("prism.io", "prismclusters"),
        }
    }

    /// The `status.phase` at which a resource counts as up.
    pub fn up_phase(self) -> &'static str {
        match self {
            Kind::FeatureStore => "Ready",
            Kind::PrismCluster => "Running",
        }
    }
}

/// The resources of both kinds (their writes are status applies and finalizers, not children).
pub const OWNER_RESOURCES: [&str; 2] = ["featurestores", "prismclusters"];

/// A sample of `deploy/samples`: the document of its kind is what the bench applies.
pub struct Sample {
    pub kind: Kind,
    pub name: &'static str,
    text: &'static str,
}

/// The FeatureStore samples in the mix, round-robin (every one but basic reads the Secrets below).
pub const FEATURE_STORE_SAMPLES: &[Sample] = &[
    Sample {
        kind: Kind::FeatureStore,
        name: "basic",
        text: include_str!("../../deploy/samples/featurestore-basic.yaml"),
    },
    Sample {
        kind: Kind::FeatureStore,
        name: "scaling-static",
        text: include_str!("../../deploy/samples/featurestore-scaling-static.yaml"),
    },
    Sample {
        kind: Kind::FeatureStore,
        name: "scaling-hpa",
        text: include_str!("../../deploy/samples/featurestore-scaling-hpa.yaml"),
    },
    Sample {
        kind: Kind::FeatureStore,
        name: "scaling-keda",
        text: include_str!("../../deploy/samples/featurestore-scaling-keda.yaml"),
    },
];

/// ADR-059's `prism-local`: admin, autoscaled proxy, four pattern runners on redis, nats and
/// minio, ingress and observability.
pub const PRISM_SAMPLE: Sample = Sample {
    kind: Kind::PrismCluster,
    name: "prismcluster-local",
    text: include_str!("../../deploy/samples/prismcluster-local.yaml"),
};

/// The Secrets the FeatureStore samples read, applied once per FeatureStore namespace.
pub const SECRETS: &str = include_str!("../../deploy/samples/feature-store-secrets.yaml");

/// One resource of the run.
pub struct BenchOwner {
    pub namespace: String,
    pub name: String,
    pub sample: &'static Sample,
}

/// `feature_stores` FeatureStores round-robin over the samples and `namespaces` namespaces
/// (`bench-<i>`), then `prism_clusters` PrismClusters, each in a namespace of its own
/// (`prism-<i>`: a namespace holds one PrismCluster).
pub fn owners(feature_stores: usize, namespaces: usize, prism_clusters: usize) -> Vec<BenchOwner> {
    let stores = (0..feature_stores).map(|i| BenchOwner {
        namespace: format!("bench-{}", i % namespaces),
        name: format!("fs-{i}"),
        sample: &FEATURE_STORE_SAMPLES[i % FEATURE_STORE_SAMPLES.len()],
    });
    let clusters = (0..prism_clusters).map(|i| BenchOwner {
        namespace: format!("prism-{i}"),
        name: "prism-local".to_owned(),
        sample: &PRISM_SAMPLE,
    });
    stores.chain(clusters).collect()
}

impl Sample {
    /// The sample's document of its kind.
    pub fn document(&self) -> BenchResult<Value> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple_with_options(self.text, kubernetes_yaml())
                .map_err(|e| err(self.name)(&e))?;
        let kind = format!("{:?}", self.kind);
        documents
            .into_iter()
            .find(|d| d["kind"] == kind.as_str())
            .ok_or_else(|| format!("sample {} has no {kind}", self.name))
    }

    /// The objects of the sample's desired graph as `fieldwise render` builds them (PrismCluster:
    /// its complete graph, every backend ready), as YAML documents.
    pub fn render(&self) -> BenchResult<String> {
        let document =
            serde_saphyr::to_string(&self.document()?).map_err(|e| err(self.name)(&e))?;
        let text = match self.kind {
            Kind::FeatureStore => format!("{SECRETS}\n---\n{document}"),
            Kind::PrismCluster => document,
        };
        let inputs = [Input {
            source_name: self.name.to_owned(),
            text,
        }];
        render(&inputs, &ImageDefaults::default()).map_err(|e| err(self.name)(&e))
    }

    /// How many objects the desired graph has.
    pub fn objects(&self) -> BenchResult<usize> {
        let count = self.render()?.matches("---\n").count();
        if count == 0 {
            return Err(format!("sample {} renders no object", self.name));
        }
        Ok(count)
    }
}

/// Change number `change` to a sample's document: a one-field spec change that reaches only one
/// Deployment's pod template. FeatureStore: one more env var on the online server; PrismCluster:
/// the `consumer` pattern runner's memory limit.
fn change_document(kind: Kind, document: &mut Value, change: usize) {
    match kind {
        Kind::FeatureStore => {
            let server = &mut document["spec"]["services"]["onlineStore"]["server"];
            let env = json!({"name": "BENCH_CHANGE", "value": change.to_string()});
            match server["env"].as_array_mut() {
                Some(list) => list.push(env),
                None => server["env"] = json!([env]),
            }
        }
        Kind::PrismCluster => {
            let patterns = document["spec"]["patterns"].as_array_mut();
            let consumer = patterns
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "consumer");
            if let Some(consumer) = consumer {
                // Above the sample's 256Mi and different for every change.
                consumer["resources"]["limits"]["memory"] = json!(format!("{}Mi", 257 + change));
            }
        }
    }
}

/// Applies `owner` from its sample, with change number `change` when given, as the user `USER`.
pub async fn apply(client: &Client, owner: &BenchOwner, change: Option<usize>) -> BenchResult<()> {
    let sample = owner.sample;
    let mut document = sample.document()?;
    document["metadata"] = json!({"name": owner.name, "namespace": owner.namespace});
    if let Some(change) = change {
        change_document(sample.kind, &mut document, change);
    }
    let params = PatchParams::apply(USER).force();
    let (namespace, name) = (owner.namespace.as_str(), owner.name.as_str());
    let result = match sample.kind {
        Kind::FeatureStore => Api::<FeatureStore>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Apply(&document))
            .await
            .map(|_| ()),
        Kind::PrismCluster => Api::<PrismCluster>::namespaced(client.clone(), namespace)
            .patch(name, &params, &Patch::Apply(&document))
            .await
            .map(|_| ()),
    };
    result.map_err(|e| format!("applying {:?} {namespace}/{name}: {e}", sample.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_has_its_document_and_renders() {
        for sample in FEATURE_STORE_SAMPLES.iter().chain([&PRISM_SAMPLE]) {
            let document = sample.document().expect("document");
            assert_eq!(document["kind"], format!("{:?}", sample.kind));
            assert!(sample.objects().expect("render") > 0, "{}", sample.name);
        }
    }

    #[test]
    fn a_prism_change_reaches_the_consumer_runner_only() {
        let mut document = PRISM_SAMPLE.document().expect("document");
        let before = document.clone();
        change_document(Kind::PrismCluster, &mut document, 3);
        let patterns = document["spec"]["patterns"].as_array().expect("patterns");
        let changed: Vec<&str> = patterns
            .iter()
            .zip(before["spec"]["patterns"].as_array().expect("patterns"))
            .filter(|(after, before)| after != before)
            .map(|(after, _)| after["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(changed, ["consumer"]);
        assert_eq!(
            document.pointer("/spec/patterns/1/resources/limits/memory"),
            Some(&json!("260Mi"))
        );
    }

    #[test]
    fn prism_clusters_get_a_namespace_each() {
        let owners = owners(3, 2, 2);
        let places: Vec<(&str, &str)> = owners
            .iter()
            .map(|o| (o.namespace.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(
            places,
            [
                ("bench-0", "fs-0"),
                ("bench-1", "fs-1"),
                ("bench-0", "fs-2"),
                ("prism-0", "prism-local"),
                ("prism-1", "prism-local"),
            ]
        );
    }
}
