//! Secrets a FeatureStore reads: their values reach its server configuration whether the Secret was
//! listed before any FeatureStore read it (the operator watches Secrets as metadata only and fetches
//! the data of those FeatureStores read), was created after the FeatureStore, or changed later.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use fieldwise::featurestore::graph::{CONFIG_SECRET_KEY, config_secret_name};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::harness::{Cluster, on_every_target, wait_for};

/// A Secret with the online store's Postgres settings, as `deploy/samples/feature-store-secrets.yaml`
/// has them, pointing at `host`.
fn data_stores(name: &str, host: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: {name}
stringData:
  postgres: |
    host: {host}
    port: 5432
    database: feast
"#
    )
}

/// A FeatureStore that reads no Secret.
const ANCHOR: &str = r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: anchor
spec:
  feastProject: anchor
"#;

/// A FeatureStore whose online store reads the Secret `secret`.
fn reader(name: &str, secret: &str) -> String {
    format!(
        r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: {name}
spec:
  feastProject: {name}
  services:
    onlineStore:
      persistence:
        store:
          type: postgres
          secretRef:
            name: {secret}
"#
    )
}

/// Waits until the server configuration of FeatureStore `name` contains `text`.
async fn wait_config_contains(secrets: &Api<Secret>, name: &str, text: &str) {
    let rendered = |secret: Option<&Secret>| {
        let encoded = secret
            .and_then(|s| s.data.as_ref())
            .and_then(|data| data.get(CONFIG_SECRET_KEY));
        let decoded = encoded.and_then(|bytes| BASE64.decode(&bytes.0).ok());
        decoded.is_some_and(|yaml| String::from_utf8_lossy(&yaml).contains(text))
    };
    let what = format!("server config containing {text:?}");
    wait_for(secrets, &config_secret_name(name), rendered, &what).await;
}

on_every_target!(
    secret_values_reach_the_server_config,
    secret_values_reach_the_config
);

async fn secret_values_reach_the_config(mut cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);

    // A Secret the operator lists while no FeatureStore reads it; the first FeatureStore reading it
    // has its data fetched. The anchor's reconcile after the restart shows that the Secrets were
    // listed (a reconcile waits for that list) before the reader exists.
    cluster.apply_yaml(ANCHOR, &namespace).await;
    cluster.stop_operator().await;
    cluster
        .apply_yaml(&data_stores("early-stores", "first-host"), &namespace)
        .await;
    let before = cluster.reconciles();
    cluster.start_operator();
    cluster.wait_reconciles(before + 1).await;
    cluster
        .apply_yaml(&reader("early", "early-stores"), &namespace)
        .await;
    wait_config_contains(&secrets, "early", "host: first-host").await;

    // Changed while read: the new values are rendered.
    cluster
        .apply_yaml(&data_stores("early-stores", "second-host"), &namespace)
        .await;
    wait_config_contains(&secrets, "early", "host: second-host").await;

    // Created after the FeatureStore that reads it.
    cluster
        .apply_yaml(&reader("late", "late-stores"), &namespace)
        .await;
    let feature_stores = cluster.feature_stores(&namespace);
    let missing = |fs: Option<&fieldwise_api::v1::FeatureStore>| {
        let conditions = fs
            .and_then(|fs| fs.status.as_ref())
            .and_then(|status| status.conditions.as_ref());
        conditions.is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.message.contains("secrets \"late-stores\" not found"))
        })
    };
    wait_for(
        &feature_stores,
        "late",
        missing,
        "the missing Secret reported",
    )
    .await;
    cluster
        .apply_yaml(&data_stores("late-stores", "late-host"), &namespace)
        .await;
    wait_config_contains(&secrets, "late", "host: late-host").await;
}
