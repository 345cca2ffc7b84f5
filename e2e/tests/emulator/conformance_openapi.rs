//! OpenAPI v3 schemas: `kubectl explain` reads built-in kinds and custom resources (from their CRD's
//! structural schema), and kubectl's client-side validation checks manifests against them.

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

const FEATURESTORE_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/featurestores.feast.dev.yaml"
);

#[tokio::test]
async fn documents_carry_the_schemas_of_their_kinds() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let apps = c.get("/openapi/v3/apis/apps/v1").await?;
    let deployment = &apps.body["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert!(deployment["properties"]["spec"].is_object(), "{deployment}");
    let schemas = apps.body["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentSpec"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_reads_custom_and_built_in_kinds() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&server, "explain")?;
    k.ok(&["apply", "--server-side", "-f", FEATURESTORE_CRD])
        .await?;
    crate::target::await_established(&c, "featurestores.feast.dev").await?;
    crate::target::await_openapi_v3(&c, "apis/feast.dev/v1").await?;
    let spec = k.ok(&["explain", "featurestore.spec"]).await?;
    assert!(spec.contains("KIND:       FeatureStore"), "{spec}");
    assert!(spec.contains("feastProject\t<string> -required-"), "{spec}");
    let project = k.ok(&["explain", "featurestore.spec.feastProject"]).await?;
    assert!(
        project.contains("FIELD: feastProject <string>"),
        "{project}"
    );
    let replicas = k.ok(&["explain", "deployment.spec.replicas"]).await?;
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
    assert!(replicas.contains("Number of desired pods"), "{replicas}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_validates_manifests_against_the_schemas() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, _) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&server, "validate")?;
    let dir = std::env::temp_dir().join(format!("fieldwise-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\nbogus: 1\n",
    )?;
    let path = manifest.to_str().unwrap_or_default();
    let refused = k.run(&["apply", "--validate=strict", "-f", path]).await?;
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("unknown field \"bogus\""),
        "{}",
        refused.stderr
    );
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n",
    )?;
    let accepted = k.ok(&["apply", "--validate=strict", "-f", path]).await?;
    assert_eq!(accepted.trim(), "configmap/c created");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
