//! The randomized apply/update sequences of `differential_smd`, run on the emulator and on a real
//! kube-apiserver (`E2E_KUBECONFIG`), with every step identical. Ignored unless asked for:
//! `E2E_KUBECONFIG=path cargo test -p fieldwise-e2e --test emulator -- --ignored differential_real`.
//! It creates the CRD `widgets.example.com` and a namespace `fieldwise-differential-<pid>` on that
//! cluster and deletes both afterwards.

use fieldwise_e2e::differential::generate::{widget_crd, widget_sequence};
use fieldwise_e2e::differential::{HttpTarget, Rng, run_over_http};
use fieldwise_e2e::testkit::{RawClient, TestError};
use fieldwise_e2e::{Emulator, Options};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

/// Sequences per run; `DIFF_SEQUENCES` overrides.
fn sequences() -> u64 {
    std::env::var("DIFF_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
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
