//! ServiceAccount tokens and the review APIs, as kube-apiserver serves them with `--authorization-mode=RBAC`:
//!
//! - `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (TokenRequest) issues an opaque token
//!   for the ServiceAccount (kube-apiserver's are signed JWTs; nothing here reads their content).
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` authenticates such a token: the ServiceAccount's
//!   user (`system:serviceaccount:<ns>:<name>`, its uid, the groups `system:serviceaccounts`,
//!   `system:serviceaccounts:<ns>`, `system:authenticated`) while it is unexpired, shares an audience
//!   with the review and the ServiceAccount still exists with the same uid; anything else authenticates
//!   nobody (`status: {user: {}, error: "invalid bearer token"}`). The emulator's own requests keep their convention (the bearer token
//!   names the user, [`super::RequestInfo::user`]); those names are not tokens a review accepts.
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` evaluates the stored RBAC objects as the
//!   RBAC authorizer does (bindings whose subjects match the user, the rules of their roles; non-resource
//!   URLs only through ClusterRoleBindings), and allows the group `system:masters` everything. There is no
//!   bootstrap policy (`system:discovery` and the like) and no aggregation of ClusterRoles.
//!
//! Nothing is stored; discovery does not list these resources.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult, Cause};
use super::meta;
use super::server::{ApiServer, ListQuery};

/// The audience tokens get when a TokenRequest names none: the service-account issuer the real
/// control plane of the tests uses (`--service-account-issuer`).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// One issued ServiceAccount token.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    audiences: Vec<String>,
    /// Seconds since the epoch.
    expires: i64,
    credential_id: String,
}

/// Tokens issued by TokenRequests, by token.
#[derive(Debug, Default)]
pub struct Tokens(Mutex<HashMap<String, Issued>>);

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `group` is one whose review resources this module serves (they are not in the registry).
pub fn serves_group(group: &str) -> bool {
    matches!(group, "authentication.k8s.io" | "authorization.k8s.io")
}

/// A routed request, as far as this module needs it.
pub struct Request<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub verb: &'a str,
    /// The field manager of the write (for the managedFields entry kube-apiserver records).
    pub manager: &'a str,
}

/// Serves the request when it is one of this module's: `Some(answer)`, else `None`.
pub fn serve(server: &ApiServer, request: &Request<'_>, body: &Value) -> Option<ApiResult<Value>> {
    let manager = request.manager;
    let post = |f: &dyn Fn() -> ApiResult<Value>| {
        Some(if request.verb == "create" {
            f()
        } else {
            Err(ApiError::method_not_allowed())
        })
    };
    let target = (request.group, request.plural, request.namespace);
    match (target, request.name, request.sub) {
        (("", "serviceaccounts", Some(ns)), Some(name), Some("token")) => {
            post(&|| token_request(server, ns, name, body, manager))
        }
        (("authentication.k8s.io", "tokenreviews", None), None, None) => {
            post(&|| token_review(server, body, manager))
        }
        (("authorization.k8s.io", "subjectaccessreviews", None), None, None) => {
            post(&|| subject_access_review(server, body, manager))
        }
        _ if serves_group(request.group) => Some(Err(ApiError::path_not_found())),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn service_account(server: &ApiServer, namespace: &str, name: &str) -> ApiResult<Value> {
    let rt = server
        .registry
        .find("", "v1", "serviceaccounts")
        .ok_or_else(ApiError::path_not_found)?;
    server.get(&rt, namespace, name)
}

/// TokenRequest: `spec.expirationSeconds` (default 3600, at least 600), `spec.audiences` (default the API
/// audience).
fn token_request(
    server: &ApiServer,
    namespace: &str,
    name: &str,
    body: &Value,
    manager: &str,
) -> ApiResult<Value> {
    let account = service_account(server, namespace, name)?;
    let seconds = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if seconds < 600 {
        // Named as the request body names it (usually not at all), not after the ServiceAccount.
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            meta::name(body),
            vec![Cause::new(
                "FieldValueInvalid",
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
            )],
        ));
    }
    let mut audiences = strings(body.pointer("/spec/audiences"));
    if audiences.is_empty() {
        audiences = vec![API_AUDIENCE.to_owned()];
    }
    let token = format!("emulator.{}.{}", meta::new_uid(), meta::new_uid());
    let now = jiff::Timestamp::now();
    let expires = now.as_second() + seconds;
    let expiration = jiff::Timestamp::from_second(expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    server.tokens.lock().insert(
        token.clone(),
        Issued {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: meta::uid(&account).to_owned(),
            audiences: audiences.clone(),
            expires,
            credential_id: format!("JTI={}", meta::new_uid()),
        },
    );
    // managedFields record what the request set (before defaulting), on the `token` subresource.
    let tracked = tracked(body, manager, "authentication.k8s.io/v1", Some("token"));
    let mut metadata = tracked
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    metadata["creationTimestamp"] = json!(meta::now());
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": expiration},
    }))
}

/// `request` with the managedFields entry of an Update by `manager` (what kube-apiserver records for
/// any create, these virtual ones included) and a null `creationTimestamp`.
fn tracked(request: &Value, manager: &str, api_version: &str, subresource: Option<&str>) -> Value {
    let options = crate::ssa::UpdateOptions {
        manager: manager.to_owned(),
        api_version: api_version.to_owned(),
        subresource: subresource.map(str::to_owned),
        now: meta::now(),
        reset_fields: crate::ssa::FieldSet::new(),
    };
    let mut object = request.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    // The create is judged against the type's zero value, whose `spec` (a struct, not a pointer)
    // exists: the entry lists what is inside it, not `spec` itself.
    let mut schema = crate::ssa::TypeSchema::schemaless();
    schema.empty_object = json!({"spec": {}});
    let mut object = crate::ssa::update(&schema, None, &object, &options)
        .map(|outcome| outcome.object)
        .unwrap_or(object);
    meta::meta_mut(&mut object).insert("creationTimestamp".into(), Value::Null);
    object
}

/// TokenReview: the review with its `status` (the token is echoed back in `spec`, as kube-apiserver does).
fn token_review(server: &ApiServer, body: &Value, manager: &str) -> ApiResult<Value> {
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let mut asked = strings(body.pointer("/spec/audiences"));
    if asked.is_empty() {
        asked = vec![API_AUDIENCE.to_owned()];
    }
    let mut review = tracked(body, manager, "authentication.k8s.io/v1", None);
    review["status"] = match authenticate(server, token, &asked) {
        Some((issued, uid, audiences)) => {
            let ns = &issued.namespace;
            json!({
                "authenticated": true,
                "user": {
                    "username": format!("system:serviceaccount:{ns}:{}", issued.name),
                    "uid": uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
                    "extra": {"authentication.kubernetes.io/credential-id": [issued.credential_id]},
                },
                "audiences": audiences,
            })
        }
        // kube-apiserver's bearer-token authenticators agree on this error for any token they reject.
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    Ok(review)
}

/// The issued token, its ServiceAccount's uid and the audiences it shares with `asked`, when it is valid.
fn authenticate(
    server: &ApiServer,
    token: &str,
    asked: &[String],
) -> Option<(Issued, String, Vec<String>)> {
    let issued = server.tokens.lock().get(token).cloned()?;
    if issued.expires <= jiff::Timestamp::now().as_second() {
        return None;
    }
    let account = service_account(server, &issued.namespace, &issued.name).ok()?;
    let uid = meta::uid(&account).to_owned();
    if uid != issued.uid {
        return None;
    }
    let shared: Vec<String> = asked
        .iter()
        .filter(|a| issued.audiences.contains(a))
        .cloned()
        .collect();
    (!shared.is_empty()).then_some((issued, uid, shared))
}

/// What a SubjectAccessReview asks about.
struct Attributes {
    user: String,
    groups: Vec<String>,
    verb: String,
    /// `Some(path)` for a non-resource request.
    path: Option<String>,
    namespace: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
}

fn subject_access_review(server: &ApiServer, body: &Value, manager: &str) -> ApiResult<Value> {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
    let groups = strings(spec.get("groups"));
    let mut causes = Vec::new();
    if let (Some(_), Some(non_resource)) = (resource, non_resource) {
        // Go's %#v of the internal type, as field.Invalid prints a struct value.
        let shown = format!(
            "authorization.NonResourceAttributes{{Path:{:?}, Verb:{:?}}}",
            field(non_resource, "path"),
            field(non_resource, "verb")
        );
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.nonResourceAttributes",
            format!(
                "Invalid value: {shown}: cannot be specified in combination with resourceAttributes"
            ),
        ));
    }
    if resource.is_none() && non_resource.is_none() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.resourceAttributes",
            "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    if user.is_empty() && groups.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    if !causes.is_empty() {
        // kube-apiserver names no kind here: the object is validated before its kind is set.
        return Err(ApiError::invalid("", "authorization.k8s.io", "", causes));
    }
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let attributes = Attributes {
        user: user.to_owned(),
        groups,
        verb: text(resource.or(non_resource), "verb"),
        path: non_resource.map(|v| text(Some(v), "path")),
        namespace: text(resource, "namespace"),
        group: text(resource, "group"),
        resource: text(resource, "resource"),
        subresource: text(resource, "subresource"),
        name: text(resource, "name"),
    };
    let mut review = tracked(body, manager, "authorization.k8s.io/v1", None);
    review["status"] = match authorize(server, &attributes) {
        Some(reason) if reason.is_empty() => json!({"allowed": true}),
        Some(reason) => json!({"allowed": true, "reason": reason}),
        None => json!({"allowed": false}),
    };
    Ok(review)
}

/// `Some(reason)` when allowed, as the privileged-group and RBAC authorizers word it.
fn authorize(server: &ApiServer, attributes: &Attributes) -> Option<String> {
    if attributes.groups.iter().any(|g| g == "system:masters") {
        return Some(String::new());
    }
    let cluster_bindings = objects(server, "clusterrolebindings", None);
    for binding in &cluster_bindings {
        if let Some(reason) = binding_allows(server, binding, "", attributes) {
            return Some(reason);
        }
    }
    if attributes.path.is_some() || attributes.namespace.is_empty() {
        return None;
    }
    let bindings = objects(server, "rolebindings", Some(&attributes.namespace));
    bindings
        .iter()
        .find_map(|binding| binding_allows(server, binding, &attributes.namespace, attributes))
}

fn objects(server: &ApiServer, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(rt) = server
        .registry
        .find("rbac.authorization.k8s.io", "v1", plural)
    else {
        return Vec::new();
    };
    let everything = ListQuery {
        labels: None,
        fields: None,
        limit: None,
        continue_token: None,
    };
    let list = server
        .list(&rt, namespace, &everything)
        .unwrap_or(Value::Null);
    list.get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The RBAC reason when `binding` (in `namespace`, `""` for a ClusterRoleBinding) names the user and its
/// role has a rule covering the request.
fn binding_allows(
    server: &ApiServer,
    binding: &Value,
    namespace: &str,
    attributes: &Attributes,
) -> Option<String> {
    let subject = binding
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find(|subject| applies_to(subject, namespace, attributes))?;
    let role_kind = binding.pointer("/roleRef/kind").and_then(Value::as_str)?;
    let role_name = binding.pointer("/roleRef/name").and_then(Value::as_str)?;
    let role = match role_kind {
        "ClusterRole" => objects(server, "clusterroles", None),
        "Role" if !namespace.is_empty() => objects(server, "roles", Some(namespace)),
        _ => return None,
    }
    .into_iter()
    .find(|role| role.pointer("/metadata/name").and_then(Value::as_str) == Some(role_name))?;
    let rules = role.get("rules").and_then(Value::as_array)?;
    if !rules.iter().any(|rule| rule_allows(rule, attributes)) {
        return None;
    }
    let binding_name = binding
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let source = if namespace.is_empty() {
        format!("ClusterRoleBinding {binding_name:?}")
    } else {
        format!("RoleBinding {:?}", format!("{binding_name}/{namespace}"))
    };
    Some(format!(
        "RBAC: allowed by {source} of {role_kind} {role_name:?} to {}",
        describe(subject, namespace)
    ))
}

fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Whether a binding's subject is the user (appliesToUser).
fn applies_to(subject: &Value, binding_namespace: &str, attributes: &Attributes) -> bool {
    let name = field(subject, "name");
    match field(subject, "kind") {
        "User" => attributes.user == name,
        "Group" => attributes.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let namespace = match field(subject, "namespace") {
                "" => binding_namespace,
                namespace => namespace,
            };
            !namespace.is_empty()
                && attributes.user == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

/// How the RBAC authorizer names a subject in its reason.
fn describe(subject: &Value, binding_namespace: &str) -> String {
    let name = field(subject, "name");
    match field(subject, "kind") {
        "ServiceAccount" => {
            let namespace = match field(subject, "namespace") {
                "" => binding_namespace,
                namespace => namespace,
            };
            format!("ServiceAccount {:?}", format!("{name}/{namespace}"))
        }
        kind => format!("{kind} {name:?}"),
    }
}

fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    let list = |key: &str| strings(rule.get(key));
    let verbs = list("verbs");
    if !verbs.iter().any(|v| v == "*" || *v == attributes.verb) {
        return false;
    }
    if let Some(path) = &attributes.path {
        return list("nonResourceURLs").iter().any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        });
    }
    let groups = list("apiGroups");
    if !groups.iter().any(|g| g == "*" || *g == attributes.group) {
        return false;
    }
    let combined = if attributes.subresource.is_empty() {
        attributes.resource.clone()
    } else {
        format!("{}/{}", attributes.resource, attributes.subresource)
    };
    let resources = list("resources");
    let resource_matches = resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!attributes.subresource.is_empty() && *r == format!("*/{}", attributes.subresource))
    });
    let names = list("resourceNames");
    resource_matches && (names.is_empty() || names.contains(&attributes.name))
}
