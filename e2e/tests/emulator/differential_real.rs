//! The randomized apply/update sequences of `differential_smd`, run on the emulator and on a real
//! kube-apiserver (`E2E_KUBECONFIG`), with every step identical. Ignored unless asked for:
//! `E2E_KUBECONFIG=path cargo test -p fieldwise-e2e --test emulator -- --ignored differential_real`.
//! It creates the CRD `widgets.example.com` and namespaces `fieldwise-differential-<pid>` and
//! `fieldwise-differential-deployments-<pid>` on that cluster and deletes them afterwards.

use fieldwise_e2e::differential::generate::{deployment_sequence, widget_crd, widget_sequence};
use fieldwise_e2e::differential::{HttpTarget, Rng, StepResult, run_over_http};
use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, Options};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// Sequences per run and kind (the floor is 500); `DIFF_SEQUENCES` overrides.
fn sequences() -> u64 {
    std::env::var("DIFF_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500)
}

async fn real_client() -> Result<kube::Client, TestError> {
    let path = std::env::var("E2E_KUBECONFIG").map_err(|_| "E2E_KUBECONFIG is not set")?;
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Applies the Widget CRD and waits until the server serves it.
async fn install_crd(client: &kube::Client) -> Result<(), TestError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("fieldwise-differential").force();
    crds.patch("widgets.example.com", &params, &Patch::Apply(widget_crd()))
        .await?;
    let established = kube::runtime::wait::conditions::is_crd_established();
    let wait = kube::runtime::wait::await_condition(crds, "widgets.example.com", established);
    tokio::time::timeout(std::time::Duration::from_secs(30), wait).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: E2E_KUBECONFIG=path"]
async fn custom_resource_sequences_match_a_real_apiserver() -> Result<(), TestError> {
    let real = real_client().await?;
    let namespace = format!("fieldwise-differential-{}", std::process::id());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(real.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    namespaces
        .patch(
            &namespace,
            &PatchParams::apply("fieldwise-differential"),
            &Patch::Apply(ns),
        )
        .await?;
    install_crd(&real).await?;

    let emu = Emulator::start(Options::default()).await?;
    let crd = RawClient::new(&emu)?
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd(),
        )
        .await?;
    assert_eq!(crd.status, 201, "{}", crd.text);
    let emulated = emu.client()?;
    let emu_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    RawClient::new(&emu)?
        .post("/api/v1/namespaces", &emu_ns)
        .await?;

    let mut rng = Rng::new(0x5eed_0021);
    let mut differences: Vec<String> = Vec::new();
    for index in 0..sequences() {
        let sequence = widget_sequence(&mut rng);
        let target = HttpTarget {
            collection: format!("/apis/example.com/v1/namespaces/{namespace}/widgets"),
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            name: format!("w{index}"),
        };
        let ours = run_over_http(&emulated, &target, &sequence).await?;
        let theirs = run_over_http(&real, &target, &sequence).await?;
        if let Some(step) = ours.iter().zip(&theirs).position(|(a, b)| !a.same(b)) {
            differences.push(format!(
                "sequence {index} step {step}\n  steps:    {:?}\n  emulator: {:?}\n  real:     {:?}",
                sequence.steps, ours[step], theirs[step]
            ));
        }
    }
    let cleanup = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(real.clone());
    let _ = crds
        .delete("widgets.example.com", &DeleteParams::default())
        .await;
    cleanup?;
    assert!(
        differences.is_empty(),
        "{} sequences differ; first ones:\n{}",
        differences.len(),
        differences
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real cluster: E2E_KUBECONFIG=path"]
async fn deployment_sequences_match_a_real_apiserver() -> Result<(), TestError> {
    let real = real_client().await?;
    let namespace = format!("fieldwise-differential-deployments-{}", std::process::id());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(real.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    let params = PatchParams::apply("fieldwise-differential");
    namespaces
        .patch(&namespace, &params, &Patch::Apply(&ns))
        .await?;
    let emu = Emulator::start(Options::default()).await?;
    let emulated = emu.client()?;
    RawClient::new(&emu)?
        .post("/api/v1/namespaces", &ns)
        .await?;

    let mut rng = Rng::new(0x5eed_d021);
    let mut differences: Vec<String> = Vec::new();
    for index in 0..sequences() {
        let sequence = deployment_sequence(&mut rng);
        let target = HttpTarget {
            collection: format!("/apis/apps/v1/namespaces/{namespace}/deployments"),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: format!("d{index}"),
        };
        let ours = without_controllers(run_over_http(&emulated, &target, &sequence).await?);
        let theirs = without_controllers(run_over_http(&real, &target, &sequence).await?);
        if let Some(step) = ours.iter().zip(&theirs).position(|(a, b)| !a.same(b)) {
            differences.push(format!(
                "sequence {index} step {step}\n  steps:    {:?}\n  emulator: {:?}\n  real:     {:?}",
                sequence.steps, ours[step], theirs[step]
            ));
        }
    }
    let cleanup = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    cleanup?;
    assert!(
        differences.is_empty(),
        "{} sequences differ; first ones:\n{}",
        differences.len(),
        differences
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// The results without what a real cluster's kube-controller-manager adds on its own, at its own
/// pace (the emulator here runs no controllers): the status, the rollout's revision annotation and
/// its managedFields entries.
fn without_controllers(mut results: Vec<StepResult>) -> Vec<StepResult> {
    for result in &mut results {
        if let Some(object) = result.object.as_object_mut() {
            object.remove("status");
            let annotations = object
                .get_mut("metadata")
                .and_then(|m| m.get_mut("annotations"))
                .and_then(serde_json::Value::as_object_mut);
            if let Some(annotations) = annotations {
                annotations.remove("deployment.kubernetes.io/revision");
            }
            let empty = object
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(serde_json::Value::as_object)
                .is_some_and(serde_json::Map::is_empty);
            let metadata = object
                .get_mut("metadata")
                .and_then(serde_json::Value::as_object_mut);
            if empty && let Some(meta) = metadata {
                meta.remove("annotations");
            }
        }
        result
            .managers
            .retain(|(manager, _, _)| manager != "kube-controller-manager");
    }
    results
}
