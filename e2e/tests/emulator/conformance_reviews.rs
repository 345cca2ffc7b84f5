//! ServiceAccount tokens (TokenRequest), TokenReview and SubjectAccessReview: what the operator's
//! authenticated `/metrics` relies on. Judged against kube-apiserver with RBAC when
//! `E2E_CONFORMANCE_KUBECONFIG` is set.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::{RawClient, TestError};
use serde_json::{Value, json};

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const ACCOUNTS: &str = "/api/v1/namespaces/default/serviceaccounts";
const ROLE: &str = "fieldwise-conformance-reviews";
const GROUP: &str = "fieldwise-conformance-readers";

fn token_review(token: &str) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
}

fn access_review(spec: Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
}

fn metrics_by_group() -> Value {
    access_review(
        json!({"groups": [GROUP], "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_reviews_authenticate_issued_service_account_tokens() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;

    let empty = c.post(TOKEN_REVIEWS, &token_review("")).await?;
    assert_eq!(empty.status, 400, "{}", empty.text);
    assert_eq!(
        empty.body["message"],
        "token is required for TokenReview in authentication"
    );
    let forged = c.post(TOKEN_REVIEWS, &token_review("forged")).await?;
    assert_eq!(forged.status, 201, "{}", forged.text);
    assert_eq!(
        forged.body["status"],
        json!({"user": {}, "error": "invalid bearer token"}),
        "{}",
        forged.text
    );
    assert_eq!(
        forged.body["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:token": {}}})
    );

    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reviewed"}});
    let created = c.post(ACCOUNTS, &account).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let short = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 10}});
    let refused = c
        .post(&format!("{ACCOUNTS}/reviewed/token"), &short)
        .await?;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(
        refused.body["message"],
        "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: \
         Invalid value: 10: may not specify a duration less than 10 minutes"
    );
    let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}});
    let issued = c
        .post(&format!("{ACCOUNTS}/reviewed/token"), &request)
        .await?;
    assert_eq!(issued.status, 201, "{}", issued.text);
    assert_eq!(issued.body["kind"], "TokenRequest");
    assert_eq!(issued.body["spec"]["expirationSeconds"], 600);
    assert_eq!(
        issued.body["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let tracked = &issued.body["metadata"]["managedFields"][0];
    assert_eq!(tracked["subresource"], "token");
    assert_eq!(
        tracked["fieldsV1"],
        json!({"f:spec": {"f:expirationSeconds": {}}})
    );
    let token = issued.body["status"]["token"].as_str().unwrap_or_default();
    assert!(!token.is_empty(), "{}", issued.text);

    let review = c.post(TOKEN_REVIEWS, &token_review(token)).await?;
    assert_eq!(review.status, 201, "{}", review.text);
    let status = &review.body["status"];
    assert_eq!(status["authenticated"], true, "{}", review.text);
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:reviewed"
    );
    assert_eq!(status["user"]["uid"], created.body["metadata"]["uid"]);
    assert_eq!(
        status["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        status["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );

    // A token of a ServiceAccount that is gone authenticates nobody, once kube-apiserver notices:
    // it caches successful token authentications for 10 s.
    let deleted = c.delete(&format!("{ACCOUNTS}/reviewed"), None).await?;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let mut stale = c.post(TOKEN_REVIEWS, &token_review(token)).await?;
    for _ in 0..300 {
        if stale.body["status"]["authenticated"] != true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stale = c.post(TOKEN_REVIEWS, &token_review(token)).await?;
    }
    assert_ne!(
        stale.body["status"]["authenticated"], true,
        "{}",
        stale.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_access_reviews_evaluate_rbac() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;

    let nothing = c.post(ACCESS_REVIEWS, &access_review(json!({}))).await?;
    assert_eq!(nothing.status, 422, "{}", nothing.text);
    assert_eq!(
        nothing.body["message"],
        ".authorization.k8s.io \"\" is invalid: [spec.resourceAttributes: Invalid \
         value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified, \
         spec.user: Invalid value: \"\": at least one of user or group must be specified]"
    );
    let both = access_review(json!({"user": "u",
        "resourceAttributes": {"verb": "get", "resource": "pods"},
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}));
    let both = c.post(ACCESS_REVIEWS, &both).await?;
    assert_eq!(both.status, 422, "{}", both.text);
    assert_eq!(
        both.body["message"],
        ".authorization.k8s.io \"\" is invalid: spec.nonResourceAttributes: Invalid \
         value: authorization.NonResourceAttributes{Path:\"/metrics\", Verb:\"get\"}: cannot be \
         specified in combination with resourceAttributes"
    );

    let denied = c.post(ACCESS_REVIEWS, &metrics_by_group()).await?;
    assert_eq!(denied.status, 201, "{}", denied.text);
    assert_eq!(
        denied.body["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {"f:groups": {}, "f:nonResourceAttributes": {".": {}, "f:path": {}, "f:verb": {}}}})
    );
    assert_eq!(
        denied.body["status"],
        json!({"allowed": false}),
        "{}",
        denied.text
    );
    let masters = access_review(json!({"user": "root", "groups": ["system:masters"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}));
    let masters = c.post(ACCESS_REVIEWS, &masters).await?;
    assert_eq!(
        masters.body["status"],
        json!({"allowed": true}),
        "{}",
        masters.text
    );

    let result = bound_group_may_get_metrics_and_configmaps(&c).await;
    for path in [
        format!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{ROLE}"),
        format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{ROLE}"),
    ] {
        c.delete(&path, None).await?;
    }
    result
}

async fn bound_group_may_get_metrics_and_configmaps(c: &RawClient) -> Result<(), TestError> {
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": ROLE},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["allowed"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}]});
    for (path, object) in [
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", &role),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &binding,
        ),
    ] {
        let created = c.post(path, object).await?;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    // kube-apiserver's authorizer reads RBAC objects from its informers: poll until it sees them.
    let mut allowed = c.post(ACCESS_REVIEWS, &metrics_by_group()).await?;
    for _ in 0..100 {
        if allowed.body["status"]["allowed"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        allowed = c.post(ACCESS_REVIEWS, &metrics_by_group()).await?;
    }
    assert_eq!(
        allowed.body["status"],
        json!({"allowed": true, "reason": format!(
            "RBAC: allowed by ClusterRoleBinding \"{ROLE}\" of ClusterRole \"{ROLE}\" to Group \"{GROUP}\""
        )}),
        "{}",
        allowed.text
    );
    let other_path = access_review(
        json!({"groups": [GROUP], "nonResourceAttributes": {"path": "/metricsz", "verb": "get"}}),
    );
    let other_path = c.post(ACCESS_REVIEWS, &other_path).await?;
    assert_eq!(
        other_path.body["status"]["allowed"], false,
        "{}",
        other_path.text
    );
    for (name, wanted) in [("allowed", true), ("other", false)] {
        let review = access_review(json!({"groups": [GROUP], "resourceAttributes": {
            "namespace": "default", "verb": "get", "resource": "configmaps", "name": name}}));
        let answer = c.post(ACCESS_REVIEWS, &review).await?;
        assert_eq!(
            answer.body["status"]["allowed"], wanted,
            "{name}: {}",
            answer.text
        );
    }
    Ok(())
}
