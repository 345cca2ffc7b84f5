//! The operator's `/metrics` over HTTPS, as `fieldwise run` serves it, asks the API server who may read:
//! a ServiceAccount bound to the shipped ClusterRole `fieldwise-metrics-reader` gets the metrics (200),
//! one without the binding is refused (403), and a request without a token or with a token the API
//! server does not accept is unauthenticated (401).
//!
//! On the emulator its TokenRequest, TokenReview and SubjectAccessReview answer; on a real cluster,
//! kube-apiserver's (with RBAC) do.

use std::{sync::Arc, time::Duration};

use fieldwise::{deploy::rbac, metrics_access};
use fieldwise_observability::{HttpServer, Metrics, testing::https_get};
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec},
    authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
    core::v1::ServiceAccount,
    rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};

use crate::harness::{Cluster, USER, on_every_target, patience};

on_every_target!(
    metrics_need_a_token_allowed_to_get_metrics,
    metrics_need_a_token_allowed_to_get_metrics,
    operator_started_by_scenario
);

const READER: &str = "metrics-reader";
const STRANGER: &str = "metrics-stranger";

async fn metrics_need_a_token_allowed_to_get_metrics(cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    let binding = format!("{namespace}-{READER}");
    let reader_token = service_account_token(&cluster.client, &namespace, READER).await;
    let stranger_token = service_account_token(&cluster.client, &namespace, STRANGER).await;
    bind_metrics_reader(&cluster.client, &binding, &namespace).await;

    // The API server's authenticator and authorizer learn of new ServiceAccounts and bindings from
    // their caches: wait until they see them, so that the endpoint's answers (cached) are the final ones.
    let reader_user = format!("system:serviceaccount:{namespace}:{READER}");
    await_authenticated(&cluster.client, &reader_token).await;
    await_authenticated(&cluster.client, &stranger_token).await;
    await_allowed(&cluster.client, &reader_user).await;

    // The endpoint reviews with the operator's credentials, as in a cluster.
    let access = metrics_access::secure(cluster.operator_client.clone(), None);
    let metrics = Arc::new(Metrics::new());
    metrics.register_controller("featurestore");
    let server = HttpServer::metrics(([127, 0, 0, 1], 0).into(), metrics, access)
        .await
        .expect("the metrics server starts");
    let address = server.local_addr().expect("bound");
    let trusted = server.certificate_chain().to_vec();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let scrape = |token: Option<&str>| {
        let trusted = trusted.clone();
        let token = token.map(str::to_owned);
        async move {
            https_get(address, "localhost", &trusted, "/metrics", token.as_deref())
                .await
                .expect("an HTTPS answer")
        }
    };

    let anonymous = scrape(None).await;
    assert_eq!(anonymous.status, 401, "no token: {anonymous:?}");
    let forged = scrape(Some("not-a-token-the-api-server-issued")).await;
    assert_eq!(forged.status, 401, "unknown token: {forged:?}");
    let refused = scrape(Some(&stranger_token)).await;
    assert_eq!(refused.status, 403, "not bound: {refused:?}");
    assert!(
        refused
            .body
            .contains(&format!("system:serviceaccount:{namespace}:{STRANGER}")),
        "{refused:?}"
    );
    let allowed = scrape(Some(&reader_token)).await;
    assert_eq!(
        allowed.status,
        200,
        "bound to {}: {allowed:?}",
        rbac::METRICS_READER_ROLE
    );
    assert!(
        allowed.body.contains("fieldwise_reconciles_total"),
        "{allowed:?}"
    );
    assert!(allowed.body.ends_with("# EOF\n"), "{allowed:?}");

    let _ = stop.send(());
    serving
        .await
        .expect("joins")
        .expect("the metrics server stops cleanly");
    let bindings: Api<ClusterRoleBinding> = Api::all(cluster.client.clone());
    bindings
        .delete(&binding, &DeleteParams::default())
        .await
        .expect("binding deleted");
}

/// Creates the ServiceAccount `name` and a token for it (TokenRequest).
async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("ServiceAccount created");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a token issued");
    issued.status.expect("TokenRequest status").token
}

/// Applies the shipped `fieldwise-metrics-reader` ClusterRole and binds it to `READER` in `namespace`.
async fn bind_metrics_reader(client: &Client, binding: &str, namespace: &str) {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = rbac::metrics_reader_role();
    roles
        .patch(
            rbac::METRICS_READER_ROLE,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&role),
        )
        .await
        .expect("ClusterRole applied");
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let reader_binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(binding.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: rbac::METRICS_READER_ROLE.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: READER.to_owned(),
            namespace: Some(namespace.to_owned()),
            api_group: None,
        }]),
    };
    bindings
        .create(&PostParams::default(), &reader_binding)
        .await
        .expect("ClusterRoleBinding created");
}

/// Polls `check` until it holds (the API server's caches cannot be watched), at most [`patience`].
async fn poll_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience();
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {:?}",
            patience()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn await_authenticated(client: &Client, token: &str) {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    poll_until("the token authenticates", || async {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("TokenReview answered");
        answer.status.and_then(|s| s.authenticated) == Some(true)
    })
    .await;
}

async fn await_allowed(client: &Client, user: &str) {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    poll_until("the reader may get /metrics", || async {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.to_owned()),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("SubjectAccessReview answered");
        answer.status.is_some_and(|s| s.allowed)
    })
    .await;
}
