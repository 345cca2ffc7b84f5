//! HTTP: routing of kube-apiserver paths, content negotiation, and the dispatch of each verb to the
//! server's operations. Every resource request is counted and offered to the request hooks first.

mod discovery;
mod event_table;
pub(crate) mod openapi;
mod options;
mod partial;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::counters::RequestKey;
use super::custom::FieldValidation;
use super::delete::{DeleteOptions, parse_propagation};
use super::errors::{ApiError, ApiResult, Cause};
use super::ownership::Sub;
use super::protobuf;
use super::registry::ResourceType;
use super::reviews;
use super::server::{ApiServer, ListQuery, RequestInfo};
use super::write::{PatchType, WriteOutcome, WriteRequest};

/// Shared by every request.
#[derive(Clone)]
pub struct HttpState {
    pub server: Arc<ApiServer>,
    pub bookmark_interval: Duration,
}

pub fn router(state: HttpState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A request for objects of one resource.
#[derive(Debug, Clone)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

enum Route {
    Version,
    Healthz,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV3Root,
    OpenApiV3(String),
    Resource(ResourcePath),
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz"] | ["readyz"] | ["livez"] => Some(Route::Healthz),
        ["api"] => Some(Route::Api),
        ["apis"] => Some(Route::Apis),
        ["apis", g] => Some(Route::Group(g.to_string())),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => Some(Route::OpenApiV3(rest.join("/"))),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    if rest.is_empty() {
        return Some(Route::GroupVersion(group.to_string(), version.to_string()));
    }
    let (namespace, rest) = if rest[0] == "namespaces"
        && rest.len() >= 3
        && !matches!(rest[2], "status" | "finalize")
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: rest[0].to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    }))
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `fieldManager`, else the User-Agent up to its first `/` (printable, ≤128), else `unknown`.
fn field_manager(q: &HashMap<String, String>, headers: &HeaderMap, apply: bool) -> String {
    if let Some(m) = q.get("fieldManager") {
        return m.clone();
    }
    if apply {
        return String::new();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name: String = ua
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// The requesting user: the bearer token stands for the user's name (see [`RequestInfo::user`]).
fn user_of(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .unwrap_or("system:anonymous")
        .to_owned()
}

async fn handle(
    State(state): State<HttpState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let server = &state.server;
    if method == Method::POST && uri.path() == SELF_SUBJECT_ACCESS_REVIEWS {
        return self_subject_access_review(&body);
    }
    if api_group_of(uri.path())
        .is_some_and(|g| !server.registry.serves_group(g) && !reviews::serves_group(g))
    {
        return page_not_found();
    }
    let Some(r) = route(uri.path()) else {
        return unrouted(uri.path());
    };
    match r {
        Route::Version => json_response(StatusCode::OK, &discovery::version()),
        Route::Healthz => (StatusCode::OK, "ok").into_response(),
        Route::Api => json_response(StatusCode::OK, &discovery::api_versions(&headers)),
        Route::Apis => json_response(StatusCode::OK, &discovery::api_groups(&server.registry)),
        Route::Group(g) => match discovery::api_group(&server.registry, &g) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => page_not_found(),
        },
        Route::GroupVersion(g, v) => match discovery::resource_list(&server.registry, &g, &v) {
            Some(v) => json_response(StatusCode::OK, &v),
            None => ApiError::path_not_found().into_response(),
        },
        Route::OpenApiV3Root => json_response(StatusCode::OK, &openapi::root(&server.registry)),
        Route::OpenApiV3(gv) => match openapi::document(&server.registry, &gv) {
            Some(v) => json_response(StatusCode::OK, &v),
            // kube-apiserver's OpenAPI v3 handler answers an unknown group version with no body.
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Route::Resource(rp) => resource(&state, rp, method, uri, headers, body).await,
    }
}

const SELF_SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// The emulator authorizes every request, so it allows whatever a SelfSubjectAccessReview asks
/// (kube-apiserver answers the review with its status filled in and stores nothing).
fn self_subject_access_review(body: &Bytes) -> Response {
    let Ok(mut review) = serde_json::from_slice::<Value>(body) else {
        return ApiError::new(
            400,
            "BadRequest",
            "the body is not a SelfSubjectAccessReview",
        )
        .into_response();
    };
    review["status"] = serde_json::json!({"allowed": true});
    json_response(StatusCode::CREATED, &review)
}

/// The group of an `/apis/<group>/...` path.
fn api_group_of(path: &str) -> Option<&str> {
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    (segs.next() == Some("apis")).then(|| segs.next()).flatten()
}

/// Go's `http.NotFound`: what kube-apiserver answers for a path no handler is registered for (an
/// unknown API group, an unknown top-level path), plain text rather than a `Status`.
fn page_not_found() -> Response {
    let mut resp = (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A path no route matches: under `/api` or a served group the group's handler answers with a
/// `Status`; elsewhere nothing handles it.
fn unrouted(path: &str) -> Response {
    match path.split('/').find(|s| !s.is_empty()) {
        Some("api" | "apis") => ApiError::path_not_found().into_response(),
        _ => page_not_found(),
    }
}

fn verb_of(method: &Method, rp: &ResourcePath, q: &HashMap<String, String>) -> &'static str {
    let watching = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), rp.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

fn resolve(server: &ApiServer, rp: &ResourcePath) -> ApiResult<(Arc<ResourceType>, Sub)> {
    let rt = server
        .registry
        .find(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(ApiError::path_not_found)?;
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::path_not_found());
    }
    let sub = match rp.sub.as_deref() {
        None => Sub::Main,
        Some("status") if rt.status => Sub::Status,
        Some("scale") if rt.scale.is_some() => Sub::Scale,
        Some(_) => return Err(ApiError::path_not_found()),
    };
    Ok((rt, sub))
}

async fn resource(
    state: &HttpState,
    rp: ResourcePath,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = parse_query(&uri);
    let verb = verb_of(&method, &rp, &q);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ptype = PatchType::from_content_type(&content_type);
    let is_write = matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    let manager = if is_write {
        field_manager(&q, &headers, ptype == Some(PatchType::Apply))
    } else {
        String::new()
    };
    let server = &state.server;
    server.counters.record(RequestKey {
        verb: verb.to_string(),
        group: rp.group.clone(),
        resource: rp.plural.clone(),
        subresource: rp.sub.clone().unwrap_or_default(),
        field_manager: manager.clone(),
        patch_type: if verb == "patch" {
            ptype.map(|p| p.label()).unwrap_or("").to_string()
        } else {
            String::new()
        },
    });
    let info = RequestInfo {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        verb: verb.to_string(),
        group: rp.group.clone(),
        version: rp.version.clone(),
        resource: rp.plural.clone(),
        subresource: rp.sub.clone().unwrap_or_default(),
        namespace: rp.namespace.clone().unwrap_or_default(),
        name: rp.name.clone().unwrap_or_default(),
        field_manager: manager.clone(),
        user: user_of(&headers),
    };
    // Held until the answer is made: an injected delay counts as time in flight.
    let _in_flight = is_write.then(|| server.counters.write_in_flight(&manager));
    if let Some(d) = server.hook_delay(&info) {
        tokio::time::sleep(d).await;
    }
    if let Some(err) = server.run_hooks(&info) {
        // A watch learns of expiry inside its stream, as from kube-apiserver.
        if verb == "watch" && err.code == 410 {
            return watch::error_stream(&err);
        }
        return err.into_response();
    }
    if let Some(answer) = review(server, &rp, verb, &body, &manager) {
        return answer;
    }
    let (rt, sub) = match resolve(server, &rp) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let options_kind = match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        _ => "PatchOptions",
    };
    let ctx = Ctx {
        state,
        options_kind,
        rt: &rt,
        sub,
        rp: &rp,
        q: &q,
        headers: &headers,
        manager: &manager,
    };
    if let ("list" | "watch", Err(e)) = (verb, options::validate(&q, verb == "watch")) {
        return e.into_response();
    }
    let result = match verb {
        "get" => ctx.get(),
        "list" => ctx.list(),
        "watch" => return watch::serve(state, rt.clone(), &rp, &q, &headers).await,
        "create" => ctx.create(&content_type, &body),
        "update" => ctx.update(&content_type, &body),
        "patch" => ctx.patch(ptype, &content_type, &body),
        "delete" => ctx.delete(&body),
        "deletecollection" => ctx.delete_collection(&body),
        _ => Err(ApiError::method_not_allowed()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// TokenRequests, TokenReviews and SubjectAccessReviews ([`reviews`]): `None` for other requests.
fn review(
    server: &ApiServer,
    rp: &ResourcePath,
    verb: &str,
    body: &[u8],
    manager: &str,
) -> Option<Response> {
    let token_request =
        rp.group.is_empty() && rp.plural == "serviceaccounts" && rp.sub.as_deref() == Some("token");
    if !token_request && !reviews::serves_group(&rp.group) {
        return None;
    }
    let request = if verb == "create" {
        match decode_any(body) {
            Ok(request) => request,
            Err(error) => return Some(error.into_response()),
        }
    } else {
        Value::Null
    };
    let target = reviews::Request {
        group: &rp.group,
        plural: &rp.plural,
        namespace: rp.namespace.as_deref(),
        name: rp.name.as_deref(),
        sub: rp.sub.as_deref(),
        verb,
        manager,
    };
    let answer = reviews::serve(server, &target, &request)?;
    Some(match answer {
        Ok(object) => json_response(StatusCode::CREATED, &object),
        Err(error) => error.into_response(),
    })
}

struct Ctx<'a> {
    state: &'a HttpState,
    /// `CreateOptions`, `UpdateOptions` or `PatchOptions`: what a bad query parameter is reported as.
    options_kind: &'static str,
    rt: &'a Arc<ResourceType>,
    sub: Sub,
    rp: &'a ResourcePath,
    q: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    manager: &'a str,
}

/// A create or update body: JSON, YAML, or (for built-in kinds) Kubernetes protobuf.
fn decode_object(rt: &ResourceType, content_type: &str, body: &[u8]) -> ApiResult<Value> {
    if protobuf::is_protobuf(content_type) && !rt.is_custom() {
        return protobuf::decode(body, (&rt.api_version(), &rt.kind));
    }
    let base = content_type.split(';').next().unwrap_or("").trim();
    if !base.is_empty() && base != "application/json" && base != "application/yaml" && base != "*/*"
    {
        let mut accepted = vec!["application/json", "application/yaml"];
        if !rt.is_custom() {
            accepted.push(protobuf::MEDIA_TYPE);
        }
        return Err(ApiError::unsupported_media(&accepted));
    }
    decode_any(body)
}

/// JSON, or YAML (apply bodies may be either).
fn decode_any(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

impl Ctx<'_> {
    fn server(&self) -> &ApiServer {
        &self.state.server
    }

    fn namespace(&self) -> &str {
        self.rp.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.rp.name.as_deref().unwrap_or("")
    }

    fn respond(&self, code: StatusCode, obj: &Value) -> Response {
        if self.sub == Sub::Main && partial::wants_partial(self.headers) {
            return json_response(code, &partial::object(obj));
        }
        if self.sub == Sub::Main && table::wants_table(self.headers) {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            let include = self
                .q
                .get("includeObject")
                .map(String::as_str)
                .unwrap_or("Metadata");
            return json_response(code, &table::single(self.rt, obj, rv, include));
        }
        json_response(code, obj)
    }

    fn get(&self) -> ApiResult<Response> {
        let obj = self.server().get(self.rt, self.namespace(), self.name())?;
        let obj = if self.sub == Sub::Scale {
            ApiServer::read_scale(self.rt, &obj)?
        } else {
            obj
        };
        Ok(self.respond(StatusCode::OK, &obj))
    }

    fn list(&self) -> ApiResult<Response> {
        let lq = ListQuery {
            labels: self.q.get("labelSelector").map(String::as_str),
            fields: self.q.get("fieldSelector").map(String::as_str),
            limit: self.q.get("limit").and_then(|l| l.parse().ok()),
            continue_token: self
                .q
                .get("continue")
                .map(String::as_str)
                .filter(|c| !c.is_empty()),
        };
        let list = self
            .server()
            .list(self.rt, self.rp.namespace.as_deref(), &lq)?;
        if partial::wants_partial(self.headers) {
            return Ok(json_response(StatusCode::OK, &partial::list(&list)));
        }
        if table::wants_table(self.headers) {
            let include = self
                .q
                .get("includeObject")
                .map(String::as_str)
                .unwrap_or("Metadata");
            return Ok(json_response(
                StatusCode::OK,
                &table::list(self.rt, &list, include),
            ));
        }
        Ok(json_response(StatusCode::OK, &list))
    }

    fn validation(&self) -> ApiResult<FieldValidation> {
        match self.q.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    /// `fieldManager` must be at most 128 bytes of printable characters (ValidateFieldManager).
    fn check_manager(&self) -> ApiResult<()> {
        let Some(m) = self.q.get("fieldManager") else {
            return Ok(());
        };
        let mut causes = Vec::new();
        if m.len() > 128 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "fieldManager",
                "Too long: may not be more than 128 bytes",
            ));
        }
        for (i, c) in m.chars().enumerate() {
            if c.is_control() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "fieldManager",
                    format!(
                        "Invalid value: {m:?}: invalid character U+{:04X} (at position {i})",
                        c as u32
                    ),
                ));
            }
        }
        if causes.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(
            self.options_kind,
            "meta.k8s.io",
            "",
            causes,
        ))
    }

    fn request(&self) -> ApiResult<WriteRequest<'_>> {
        self.check_manager()?;
        Ok(WriteRequest {
            rt: self.rt,
            namespace: self.namespace(),
            name: self.name(),
            sub: self.sub,
            manager: self.manager,
            validation: self.validation()?,
            force: self.q.get("force").is_some_and(|f| f == "true"),
            dry_run: self.q.get("dryRun").is_some_and(|d| !d.is_empty()),
        })
    }

    fn written(&self, out: WriteOutcome) -> Response {
        let code = if out.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut resp = self.respond(code, &out.object);
        for w in out.warnings {
            // As kube-apiserver quotes the text: `"` and `\` escaped with a backslash.
            let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
                resp.headers_mut().append(header::WARNING, v);
            }
        }
        resp
    }

    fn create(&self, content_type: &str, body: &[u8]) -> ApiResult<Response> {
        if self.rp.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let obj = decode_object(self.rt, content_type, body)?;
        let out = self.server().create(&self.request()?, obj)?;
        Ok(self.written(out))
    }

    fn update(&self, content_type: &str, body: &[u8]) -> ApiResult<Response> {
        let obj = decode_object(self.rt, content_type, body)?;
        let out = self.server().update(&self.request()?, obj)?;
        Ok(self.written(out))
    }

    fn patch(
        &self,
        ptype: Option<PatchType>,
        content_type: &str,
        body: &[u8],
    ) -> ApiResult<Response> {
        let Some(ptype) = ptype else {
            let _ = content_type;
            return Err(ApiError::unsupported_media(&[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ]));
        };
        let obj = decode_any(body)?;
        let out = self.server().patch(&self.request()?, ptype, obj)?;
        Ok(self.written(out))
    }

    fn delete_options(&self, body: &[u8]) -> ApiResult<DeleteOptions> {
        let mut opts = if body.iter().all(u8::is_ascii_whitespace) {
            DeleteOptions::default()
        } else {
            DeleteOptions::from_body(&decode_any(body)?)?
        };
        if let Some(p) = self.q.get("propagationPolicy") {
            opts.propagation = parse_propagation(p)?;
        }
        if self.q.get("dryRun").is_some_and(|d| !d.is_empty()) {
            opts.dry_run = true;
        }
        Ok(opts)
    }

    fn delete(&self, body: &[u8]) -> ApiResult<Response> {
        if self.sub != Sub::Main {
            return Err(ApiError::method_not_allowed());
        }
        let opts = self.delete_options(body)?;
        let obj = self
            .server()
            .delete(self.rt, self.namespace(), self.name(), &opts)?;
        Ok(json_response(StatusCode::OK, &obj))
    }

    fn delete_collection(&self, body: &[u8]) -> ApiResult<Response> {
        let opts = self.delete_options(body)?;
        let lq = ListQuery {
            labels: self.q.get("labelSelector").map(String::as_str),
            fields: self.q.get("fieldSelector").map(String::as_str),
            limit: None,
            continue_token: None,
        };
        let list = self
            .server()
            .list(self.rt, self.rp.namespace.as_deref(), &lq)?;
        let mut deleted = Vec::new();
        for item in list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let ns = item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            match self.server().delete(self.rt, ns, name, &opts) {
                Ok(o) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let mut out = list;
        out["items"] = Value::Array(deleted);
        Ok(json_response(StatusCode::OK, &out))
    }
}

/// The body of a streamed response.
pub(crate) fn stream_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    use futures::StreamExt;
    let s =
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<Bytes, std::convert::Infallible>);
    Body::from_stream(s)
}
