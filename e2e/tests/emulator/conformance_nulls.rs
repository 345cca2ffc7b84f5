//! Nulls in custom resources, as kube-apiserver v1.33.13 treats them (recorded with
//! `--dry-run=server` on a real server): a create drops the nulls of non-nullable fields when it
//! decodes the body; a server-side apply keeps them through the merge, and validation refuses them.

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

const FEATURESTORE_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/featurestores.feast.dev.yaml"
);

const MANIFEST: &str = "apiVersion: feast.dev/v1
kind: FeatureStore
metadata:
  name: nullprobe
spec:
  feastProject: probe
  feastProjectDir: null
";

/// What kube-apiserver v1.33.13 answered to the apply (kubectl's rendering).
const REAL_APPLY_ERROR: &str = "The FeatureStore \"nullprobe\" is invalid: \n* spec.feastProjectDir: Invalid value: \"null\": spec.feastProjectDir in body must be of type object: \"null\"\n* <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_null_is_refused_and_a_created_null_dropped() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&server, "nulls")?;
    k.ok(&["apply", "--server-side", "-f", FEATURESTORE_CRD])
        .await?;
    crate::target::await_established(&c, "featurestores.feast.dev").await?;
    let dir = std::env::temp_dir().join(format!("fieldwise-nulls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let manifest = dir.join("fs.yaml");
    std::fs::write(&manifest, MANIFEST)?;
    let path = manifest.to_str().unwrap_or_default();

    let applied = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager=probe",
            "-f",
            path,
        ])
        .await?;
    assert_eq!(applied.code, 1, "{}", applied.stdout);
    assert_eq!(applied.stderr.trim(), REAL_APPLY_ERROR);

    let created = k.ok(&["create", "-f", path, "-o", "json"]).await?;
    let created: serde_json::Value = serde_json::from_str(&created)?;
    assert_eq!(
        created["spec"],
        serde_json::json!({"feastProject": "probe", "replicas": 1})
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
