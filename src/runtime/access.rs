//! Whether the operator may do something cluster-wide, asked once at start with
//! SelfSubjectAccessReviews (which every authenticated user may create): an operator watching some
//! namespaces only manages cluster-scoped children only when it holds their rules.

use futures::future::try_join_all;
use k8s_openapi::api::{
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    rbac::v1::PolicyRule,
};
use kube::{Api, Client, api::PostParams};

/// The permissions of `rules` the operator lacks cluster-wide, as `<verb> <resource>[.<group>]`
/// (empty when it holds them all).
pub async fn missing_cluster_wide(
    client: &Client,
    rules: &[PolicyRule],
) -> Result<Vec<String>, kube::Error> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let asks = attributes(rules).into_iter().map(|attributes| {
        let reviews = reviews.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(attributes.clone()),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await?;
            let allowed = answer.status.is_some_and(|status| status.allowed);
            Ok::<_, kube::Error>((!allowed).then(|| describe(&attributes)))
        }
    });
    Ok(try_join_all(asks).await?.into_iter().flatten().collect())
}

/// One cluster-wide access question per group, resource (subresource split off), verb and
/// resource name of the rules.
fn attributes(rules: &[PolicyRule]) -> Vec<ResourceAttributes> {
    let mut out = Vec::new();
    for rule in rules {
        let names: Vec<Option<String>> = match &rule.resource_names {
            Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let (resource, subresource) = match resource.split_once('/') {
                    Some((resource, sub)) => (resource.to_owned(), Some(sub.to_owned())),
                    None => (resource.clone(), None),
                };
                for verb in &rule.verbs {
                    for name in &names {
                        out.push(ResourceAttributes {
                            group: Some(group.clone()),
                            resource: Some(resource.clone()),
                            subresource: subresource.clone(),
                            verb: Some(verb.clone()),
                            name: name.clone(),
                            ..ResourceAttributes::default()
                        });
                    }
                }
            }
        }
    }
    out
}

fn describe(attributes: &ResourceAttributes) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut resource = text(&attributes.resource);
    if let Some(sub) = &attributes.subresource {
        resource = format!("{resource}/{sub}");
    }
    if let Some(group) = attributes.group.as_ref().filter(|g| !g.is_empty()) {
        resource = format!("{resource}.{group}");
    }
    if let Some(name) = &attributes.name {
        resource = format!("{resource} {name}");
    }
    format!("{} {resource}", text(&attributes.verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verb_resource_and_name_is_one_question() {
        let rule = PolicyRule {
            api_groups: Some(vec!["rbac.authorization.k8s.io".to_owned()]),
            resources: Some(vec!["clusterroles".to_owned(), "roles/status".to_owned()]),
            verbs: vec!["get".to_owned(), "bind".to_owned()],
            resource_names: Some(vec!["a".to_owned()]),
            non_resource_urls: None,
        };
        let asked: Vec<String> = attributes(&[rule]).iter().map(describe).collect();
        assert_eq!(
            asked,
            [
                "get clusterroles.rbac.authorization.k8s.io a",
                "bind clusterroles.rbac.authorization.k8s.io a",
                "get roles/status.rbac.authorization.k8s.io a",
                "bind roles/status.rbac.authorization.k8s.io a",
            ]
        );
    }
}
