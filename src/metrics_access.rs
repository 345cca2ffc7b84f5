//! Who may read the operator's `/metrics`, decided by the API server as controller-runtime decides it: a
//! TokenReview authenticates the scrape's bearer token, then a SubjectAccessReview asks whether that
//! user may `get` the non-resource URL `/metrics` (what the ClusterRole `fieldwise-metrics-reader`
//! grants). The token goes to the API server only; it is never logged.

use std::sync::Arc;

use fieldwise_observability::{
    Access, CachePolicy, CachedReviewer, Certificate, MetricsAccess, ReviewFuture, TokenReviewer,
};
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec, UserInfo},
    authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};

use crate::{deploy::manager::METRICS_SERVICE, runtime::errors};

/// Reviews bearer tokens with the API server this client talks to.
pub struct ApiServerReviewer {
    client: Client,
}

impl ApiServerReviewer {
    /// Reviews with `client`'s API server (the operator needs `create` on tokenreviews and
    /// subjectaccessreviews).
    pub fn new(client: Client) -> Self {
        ApiServerReviewer { client }
    }

    async fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("TokenReview failed: {}", errors::message(&e)))?;
        let status = answer.status.unwrap_or_default();
        Ok(status
            .authenticated
            .unwrap_or(false)
            .then(|| status.user.unwrap_or_default()))
    }

    async fn authorize(&self, user: &UserInfo, path: &str) -> Result<bool, String> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("SubjectAccessReview failed: {}", errors::message(&e)))?;
        Ok(answer.status.is_some_and(|status| status.allowed))
    }
}

impl TokenReviewer for ApiServerReviewer {
    fn review<'a>(&'a self, token: &'a str, path: &'a str) -> ReviewFuture<'a> {
        Box::pin(async move {
            let Some(user) = self.authenticate(token).await? else {
                return Ok(Access::Unauthenticated);
            };
            if self.authorize(&user, path).await? {
                Ok(Access::Allowed)
            } else {
                let user = user.username.unwrap_or_default();
                Ok(Access::Forbidden { user })
            }
        })
    }
}

/// HTTPS with a certificate from `cert_dir` (else self-signed for the metrics Service's names) and
/// every request reviewed by the API server of `client`, cached briefly.
pub fn secure(client: Client, cert_dir: Option<std::path::PathBuf>) -> MetricsAccess {
    let certificate = match cert_dir {
        Some(directory) => Certificate::Directory(directory),
        None => Certificate::SelfSigned(self_signed_names(
            std::env::var("POD_NAMESPACE").ok().as_deref(),
        )),
    };
    let reviewer = ApiServerReviewer::new(client);
    MetricsAccess::Secure {
        certificate,
        reviewer: Arc::new(CachedReviewer::new(
            Arc::new(reviewer),
            CachePolicy::default(),
        )),
    }
}

/// The names a self-signed certificate is made for: the metrics Service's DNS names in `namespace`, and
/// `localhost` for port-forwarding.
pub fn self_signed_names(namespace: Option<&str>) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        METRICS_SERVICE.to_owned(),
    ];
    if let Some(namespace) = namespace.filter(|namespace| !namespace.is_empty()) {
        names.push(format!("{METRICS_SERVICE}.{namespace}"));
        names.push(format!("{METRICS_SERVICE}.{namespace}.svc"));
        names.push(format!("{METRICS_SERVICE}.{namespace}.svc.cluster.local"));
    }
    names
}
