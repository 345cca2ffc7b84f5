//! The generated OLM bundle's ClusterServiceVersion conforms to OLM's own schema: kube-apiserver, with
//! OLM's ClusterServiceVersion CRD installed (from the Go module `github.com/operator-framework/api`
//! pinned in e2e/cluster/olm, fetched into the control-plane cache by e2e/cluster/olm/fetch), accepts
//! `deploy/olm/bundle/manifests/fieldwise.clusterserviceversion.yaml` under server-side apply with strict
//! field validation, and refuses broken copies of it with its own message.
//!
//! Real cluster only: the emulator validates custom resources with fieldwise's schema code, which is what
//! is under test here.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::{Value, json};

use crate::harness::{Cluster, USER, patience};

const CSV_CRD: &str = "clusterserviceversions.operators.coreos.com";

mod csv_conforms_to_the_olm_schema {
    #[test]
    #[ignore = "needs a real cluster: E2E_KUBECONFIG=path (see e2e/README.md)"]
    fn on_a_real_cluster() {
        let target = crate::harness::Target::RealCluster;
        crate::harness::run_with(target, false, super::csv_conforms_to_the_olm_schema);
    }
}

async fn csv_conforms_to_the_olm_schema(cluster: Cluster) {
    install_csv_crd(&cluster.client).await;
    let csvs = csv_api(&cluster.client, &cluster.namespace);
    let mut csv = generated_csv();
    // The bundle's CSV names a placeholder namespace; OLM installs it into the Operator Group's.
    csv["metadata"]["namespace"] = json!(cluster.namespace);
    let name = csv["metadata"]["name"]
        .as_str()
        .expect("the CSV has a name")
        .to_owned();

    if let Err(error) = apply_strictly(&csvs, &name, &csv).await {
        panic!("kube-apiserver refused the generated CSV against OLM's schema: {error}");
    }

    // The check can fail: copies broken in three ways are refused, each naming what is wrong.
    let mut wrong_type = csv.clone();
    wrong_type["spec"]["installModes"][0]["supported"] = json!("yes");
    let mut missing = csv.clone();
    remove(&mut missing["spec"], "displayName");
    let mut unknown = csv.clone();
    unknown["spec"]["installStrategy"] = json!("deployment");
    // A value of the wrong type and a field the schema does not declare already fail server-side
    // apply's typed conversion (500, as kube-apiserver answers it); a missing required field fails
    // validation (422).
    for (broken, field, code) in [
        (wrong_type, "spec.installModes[0].supported", 500),
        (missing, "spec.displayName", 422),
        (unknown, "spec.installStrategy", 500),
    ] {
        let refused = apply_strictly(&csvs, &name, &broken).await;
        let message = match refused {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, code, "{field}: {status:?}");
                status.message
            }
            other => panic!("a CSV with a broken {field} was not refused: {other:?}"),
        };
        assert!(message.contains(field), "{field}: {message}");
    }

    csvs.delete(&name, &DeleteParams::default())
        .await
        .expect("CSV deleted");
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    crds.delete(CSV_CRD, &DeleteParams::default())
        .await
        .expect("the ClusterServiceVersion CRD deleted");
}

async fn apply_strictly(
    csvs: &Api<DynamicObject>,
    name: &str,
    csv: &Value,
) -> Result<DynamicObject, kube::Error> {
    let params = PatchParams::apply(USER).force().validation_strict();
    csvs.patch(name, &params, &Patch::Apply(csv)).await
}

fn remove(object: &mut Value, key: &str) {
    if let Some(map) = object.as_object_mut() {
        map.remove(key);
    }
}

fn csv_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("operators.coreos.com", "v1alpha1", "ClusterServiceVersion");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "clusterserviceversions");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The committed bundle's CSV (tests/deploy_install.rs keeps it equal to the generator's).
fn generated_csv() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/olm/bundle/manifests/fieldwise.clusterserviceversion.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Server-side applies OLM's ClusterServiceVersion CRD and waits until it is established.
async fn install_csv_crd(client: &Client) {
    let path = csv_crd_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let crd: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        CSV_CRD,
        &PatchParams::apply(USER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("OLM's ClusterServiceVersion CRD applied");
    let established = await_condition(crds, CSV_CRD, conditions::is_crd_established());
    tokio::time::timeout(patience(), established)
        .await
        .unwrap_or_else(|_| panic!("{CSV_CRD} not established within {:?}", patience()))
        .expect("CRD watch works");
}

/// `E2E_OLM_CSV_CRD`, else what e2e/cluster/olm/fetch prints (it fetches the pinned module once).
fn csv_crd_path() -> PathBuf {
    if let Some(path) = std::env::var_os("E2E_OLM_CSV_CRD") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/cluster/olm/fetch");
    let output = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|error| panic!("{}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
