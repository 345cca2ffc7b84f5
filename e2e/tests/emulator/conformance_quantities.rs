//! Resource quantities of built-in kinds are stored in canonical form (`cpu: 1000m` is served as
//! `1`), while text the parser judges canonical already (`+2`, `1E6`) is kept as written; applying
//! the same non-canonical body again changes nothing. Runs on both targets (see target.rs).

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::{Value, json};

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(limits: Value, requests: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q"},
        "spec": {"selector": {"matchLabels": {"app": "q"}},
            "template": {"metadata": {"labels": {"app": "q"}}, "spec": {
                "containers": [{"name": "c", "image": "busybox",
                    "resources": {"limits": limits, "requests": requests}}],
                "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "0.5Gi"}}]}}}})
}

#[tokio::test]
async fn quantities_are_stored_canonically() -> Result<(), TestError> {
    let (server, c) = crate::target::start(Options::default()).await?;
    let body = deployment(
        json!({"cpu": "1000m", "memory": "1024Mi", "ephemeral-storage": "+2"}),
        json!({"cpu": 0.5, "memory": "1E6", "ephemeral-storage": 1}),
    );
    let created = c
        .apply(&format!("{DEPLOYMENTS}/q"), "quantities", false, &body)
        .await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let pod = &created.body["spec"]["template"]["spec"];
    let resources = &pod["containers"][0]["resources"];
    assert_eq!(
        resources["limits"],
        json!({"cpu": "1", "memory": "1Gi", "ephemeral-storage": "+2"})
    );
    assert_eq!(
        resources["requests"],
        json!({"cpu": "500m", "memory": "1E6", "ephemeral-storage": "1"})
    );
    assert_eq!(pod["volumes"][0]["emptyDir"]["sizeLimit"], "512Mi");

    let again = c
        .apply(&format!("{DEPLOYMENTS}/q"), "quantities", false, &body)
        .await?;
    assert_eq!(again.status, 200, "{}", again.text);
    // On a real cluster the deployment controller may write the status in between (a new
    // resourceVersion), so the no-op shows as an unchanged spec and generation.
    assert_eq!(
        (&again.body["spec"], &again.body["metadata"]["generation"]),
        (
            &created.body["spec"],
            &created.body["metadata"]["generation"]
        ),
        "the same spelling again is a no-op"
    );
    let entry = |object: &Value| {
        object["metadata"]["managedFields"]
            .as_array()
            .and_then(|entries| entries.iter().find(|e| e["manager"] == "quantities"))
            .cloned()
    };
    assert_eq!(entry(&again.body), entry(&created.body));
    if let crate::target::Server::Emulator(_) = server {
        // Nothing else writes it there: not even the resourceVersion moves.
        assert_eq!(
            again.body["metadata"]["resourceVersion"],
            created.body["metadata"]["resourceVersion"]
        );
    }
    Ok(())
}
