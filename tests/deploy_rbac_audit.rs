//! Runs the operator against the emulator through FeatureStores that exercise every kind of child and the
//! finalizer, and checks every request it made is granted by the generated ClusterRole.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use fieldwise::{
    deploy::rbac::{self, Permission},
    runtime::{RunOptions, run},
};
use fieldwise_api::v1::{ConditionStatus, FeatureStore};
use fieldwise_e2e::{Emulator, Options};
use fieldwise_observability::{Health, Metrics};
use k8s_openapi::{
    api::core::v1::{Namespace, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
    runtime::wait::{await_condition, conditions},
};
use serde_json::json;

const NAMESPACE: &str = "team";
const PATIENCE: Duration = Duration::from_secs(60);

/// Kubernetes authorization (Roles, ClusterRoles and bindings), OIDC, HPA and PDB, a CronJob and PVCs.
fn feature_stores() -> Vec<serde_json::Value> {
    let kubernetes_auth = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "kube-auth", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "authz": {"kubernetes": {"roles": ["feast-reader"]}},
            "services": {"onlineStore": {"server": {}}, "registry": {"local": {"server": {}}}, "ui": {}},
        },
    });
    let oidc_scaled = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "oidc-scaled", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "authz": {"oidc": {"secretRef": {"name": "oidc-secret"}}},
            "services": {
                "scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
                "podDisruptionBudgets": {"minAvailable": 1},
                "onlineStore": {"persistence": {"store": {"type": "postgres", "secretRef": {"name": "stores"}}}},
                "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": "stores"}}}}},
            },
        },
    });
    let pvc = json!({
        "apiVersion": "feast.dev/v1", "kind": "FeatureStore",
        "metadata": {"name": "pvc", "namespace": NAMESPACE},
        "spec": {
            "feastProject": "audit",
            "services": {"onlineStore": {"persistence": {"file": {
                "path": "online_store.db",
                "pvc": {"create": {}, "mountPath": "/data/online"},
            }}}},
        },
    });
    vec![kubernetes_auth, oidc_scaled, pvc]
}

fn secrets() -> Vec<Secret> {
    let secret = |name: &str, data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "stringData": data,
        }))
        .expect("secret")
    };
    vec![
        secret(
            "oidc-secret",
            json!({"client_id": "id", "auth_discovery_url": "https://idp.example.com/.well-known"}),
        ),
        secret(
            "stores",
            json!({"postgres": "host: db\n", "sql": "path: postgresql://db\n"}),
        ),
    ]
}

#[test]
fn every_request_the_operator_makes_is_granted() {
    // The in-process emulator and the FeatureStore type need deep stacks in unoptimised builds.
    fieldwise_e2e::testkit::block_on(scenario());
}

async fn scenario() {
    let emulator = Emulator::start(Options::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    setup(&client).await;
    emulator.counters().reset();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        debounce: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let operator = tokio::spawn(run(
        client.clone(),
        options,
        Arc::new(Metrics::new()),
        Health::new(),
        async move {
            let _ = stopped.await;
        },
    ));
    let stores: Api<FeatureStore> = Api::namespaced(client.clone(), NAMESPACE);
    for store in feature_stores() {
        let store: FeatureStore = serde_json::from_value(store).expect("FeatureStore");
        stores
            .create(&PostParams::default(), &store)
            .await
            .expect("FeatureStore created");
    }
    for store in feature_stores() {
        let name = store["metadata"]["name"].as_str().expect("name").to_owned();
        let reconciled = |fs: Option<&FeatureStore>| {
            fs.and_then(|fs| fs.status.as_ref())
                .is_some_and(|s| s.phase.is_some())
        };
        let waited =
            tokio::time::timeout(PATIENCE, await_condition(stores.clone(), &name, reconciled))
                .await;
        waited.expect("reconciled in time").expect("watch");
    }
    // Deleting runs the finalizer: cluster-scoped children are removed by the operator.
    delete_and_await_gone(&stores, "kube-auth").await;
    stop_operator(stop, operator).await;

    let used = used_permissions(&emulator);
    let granted = rbac::permissions(&rbac::cluster_rules());
    let missing: Vec<&Permission> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the operator made requests its ClusterRole does not grant: {missing:?}"
    );
    // The graph binds the shipped ClusterRoles: the operator never touches a ClusterRole (it may only
    // bind those and read the Feast operator's, which a new FeatureStore does not look for).
    let on_cluster_roles: Vec<&Permission> = used
        .iter()
        .filter(|(_, r, _)| r == "clusterroles")
        .collect();
    assert!(
        on_cluster_roles.is_empty(),
        "the operator called {on_cluster_roles:?}"
    );
    // The scenario reached status writes and the finalizer's cleanup of cluster-scoped children.
    for expected in [
        ("feast.dev", "featurestores/status", "patch"),
        ("rbac.authorization.k8s.io", "clusterrolebindings", "patch"),
        ("rbac.authorization.k8s.io", "clusterrolebindings", "delete"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(
            used.contains(&expected),
            "the scenario did not exercise {expected:?}; used {used:?}"
        );
    }
}

async fn setup(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in fieldwise_api::crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD installs");
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    for secret in secrets() {
        secret_api
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
}

/// What was called since the reset, minus the test's own FeatureStore creates and delete.
fn used_permissions(emulator: &fieldwise_e2e::EmulatorHandle) -> BTreeSet<Permission> {
    let test_calls = [
        ("feast.dev", "featurestores", "create"),
        ("feast.dev", "featurestores", "delete"),
    ];
    emulator
        .counters()
        .snapshot()
        .into_iter()
        .map(|(key, _)| {
            let resource = if key.subresource.is_empty() {
                key.resource
            } else {
                format!("{}/{}", key.resource, key.subresource)
            };
            (key.group, resource, key.verb)
        })
        .filter(|(group, resource, verb)| {
            !test_calls
                .iter()
                .any(|(g, r, v)| g == group && r == resource && v == verb)
        })
        .collect()
}

/// One request of the operator: `METHOD path` and the status it was answered with.
type Answered = Arc<std::sync::Mutex<Vec<(String, u16)>>>;

/// The operator watching two namespaces on a real cluster (kube-apiserver's RBAC judges every
/// request), granted only what the namespaced install grants there: the Role with
/// `rbac::namespaced_rules` in each watched namespace and the leader-election Role in its own. No
/// request is refused, none is cluster-wide but discovery and the start-up SelfSubjectAccessReviews,
/// the cluster-scoped children are off with a condition saying how to grant them, and the
/// FeatureStore in a third namespace is never touched.
#[test]
#[ignore = "needs a real cluster: E2E_KUBECONFIG=path (see e2e/README.md)"]
fn a_namespaced_operator_makes_only_granted_namespaced_requests() {
    fieldwise_e2e::testkit::block_on(namespaced_audit());
}

async fn namespaced_audit() {
    let config = real_cluster_config().await;
    let admin = kube::Client::try_from(config.clone()).expect("admin client");
    install_crds(&admin).await;
    let suffix = format!("{:x}", std::process::id());
    let home = format!("fw-audit-{suffix}-operator");
    let (a, b, c) = (
        format!("fw-audit-{suffix}-a"),
        format!("fw-audit-{suffix}-b"),
        format!("fw-audit-{suffix}-c"),
    );
    for namespace in [&home, &a, &b, &c] {
        create(
            &admin,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace}}),
        )
        .await;
    }
    let token = operator_account(&admin, &home, &[&a, &b]).await;
    let answered = Answered::default();
    let client = recording_client(config.clone(), &token, answered.clone());
    let namespaces = vec![a.clone(), b.clone()];

    // As `fieldwise run --namespace a,b --leader-elect` starts.
    let cluster_scoped_off = fieldwise::cli::run::cluster_scoped_off(&client, &namespaces).await;
    assert!(
        cluster_scoped_off.is_some(),
        "the operator may not manage cluster-scoped objects"
    );
    let settings = fieldwise::settings::Settings {
        cluster_scoped_off,
        ..fieldwise::cli::run::settings(&client).await
    };
    // The elector makes its own client (its Lease requests are checked by `deploy_leader`).
    let elector_config = operator_config(config, &token);
    let elector = fieldwise::leader::LeaderElector::start(elector_config, &home, "audit")
        .await
        .expect("leader election starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        namespaces: namespaces.clone(),
        debounce: Duration::from_millis(50),
        settings,
        leadership: Some(elector.leadership()),
        ..RunOptions::default()
    };
    let operator = tokio::spawn(run(
        client.clone(),
        options,
        Arc::new(Metrics::new()),
        Health::new(),
        async move {
            let _ = stopped.await;
        },
    ));

    let store = |namespace: &str, authz: serde_json::Value| {
        json!({"apiVersion": "feast.dev/v1", "kind": "FeatureStore",
            "metadata": {"name": "store", "namespace": namespace},
            "spec": {"feastProject": "audit", "authz": authz}})
    };
    create(
        &admin,
        Some(&a),
        store(&a, json!({"kubernetes": {"roles": ["reader"]}})),
    )
    .await;
    create(&admin, Some(&b), store(&b, json!({"noAuth": true}))).await;
    create(&admin, Some(&c), store(&c, json!({"kubernetes": {}}))).await;
    let in_a: Api<FeatureStore> = Api::namespaced(admin.clone(), &a);
    let condition = |fs: Option<&FeatureStore>| {
        let conditions = fs.and_then(|fs| fs.status.as_ref()?.conditions.clone());
        conditions
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "ClusterScopedRBAC" && c.status == ConditionStatus::False)
    };
    let waited = tokio::time::timeout(PATIENCE, await_condition(in_a.clone(), "store", condition));
    let fs_a = waited
        .await
        .expect("condition in time")
        .expect("watch")
        .expect("a's store");
    let message = fs_a
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ClusterScopedRBAC")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains(&format!("ServiceAccount {a}/feast-store"))
            && message.contains("kubectl create clusterrolebinding fieldwise-cluster-scoped"),
        "{message}"
    );
    let in_b: Api<FeatureStore> = Api::namespaced(admin.clone(), &b);
    let reconciled = |fs: Option<&FeatureStore>| fs.and_then(|fs| fs.status.as_ref()).is_some();
    let waited = tokio::time::timeout(PATIENCE, await_condition(in_b.clone(), "store", reconciled));
    waited.await.expect("b reconciled in time").expect("watch");
    // The finalizer runs without cluster-scoped children.
    for stores in [&in_a, &in_b] {
        delete_and_await_gone(stores, "store").await;
    }
    stop_operator(stop, operator).await;
    elector.release().await;

    let in_c: Api<FeatureStore> = Api::namespaced(admin.clone(), &c);
    let fs_c = in_c.get("store").await.expect("c's store");
    assert!(
        fs_c.metadata.finalizers.is_none() && fs_c.status.is_none(),
        "c was touched"
    );
    let requests = answered.lock().map(|r| r.clone()).unwrap_or_default();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for namespace in [&home, &a, &b, &c] {
        let _ = namespaces
            .delete(namespace, &DeleteParams::background())
            .await;
    }

    let refused: Vec<_> = requests
        .iter()
        .filter(|(_, status)| [401, 403].contains(status))
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let allowed = [home.as_str(), a.as_str(), b.as_str()];
    let cluster_wide: Vec<_> = requests
        .iter()
        .filter(|(request, _)| !is_discovery(request) && !in_namespaces(request, &allowed))
        .filter(|(request, _)| {
            request != "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        })
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "requests outside the watched namespaces: {cluster_wide:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(r, s)| r.contains("/featurestores/store/status") && *s < 300),
        "the audit reached status writes: {requests:?}"
    );
}

/// API discovery (`/api`, `/apis`, a group, a group version, `/version`, OpenAPI).
fn is_discovery(request: &str) -> bool {
    let path = request.split_once(' ').map_or(request, |(_, path)| path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segments.as_slice(),
        ["api"]
            | ["api", _]
            | ["apis"]
            | ["apis", _]
            | ["apis", _, _]
            | ["version"]
            | ["openapi", ..]
    )
}

/// Whether a request addresses one of `namespaces` (`…/namespaces/<ns>/…`).
fn in_namespaces(request: &str, namespaces: &[&str]) -> bool {
    let path = request.split_once(' ').map_or(request, |(_, path)| path);
    let segments: Vec<&str> = path.split('/').collect();
    segments
        .windows(3)
        .any(|w| w[0] == "namespaces" && namespaces.contains(&w[1]) && !w[2].is_empty())
}

/// The operator's ServiceAccount in `home` with the namespaced install's Roles in `watched` and
/// the leader-election Role in `home`; returns a token of it.
async fn operator_account(admin: &kube::Client, home: &str, watched: &[&str]) -> String {
    let subject =
        json!([{"kind": "ServiceAccount", "name": rbac::SERVICE_ACCOUNT, "namespace": home}]);
    create(
        admin,
        Some(home),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": rbac::SERVICE_ACCOUNT, "namespace": home}}),
    )
    .await;
    let mut grants = vec![(home.to_owned(), rbac::leader_election_rules())];
    grants.extend(
        watched
            .iter()
            .map(|ns| ((*ns).to_owned(), rbac::namespaced_rules())),
    );
    for (namespace, rules) in grants {
        create(
            admin,
            Some(&namespace),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role", "metadata": {"name": "fieldwise", "namespace": namespace},
            "rules": rules}),
        )
        .await;
        create(admin, Some(&namespace), json!({"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding", "metadata": {"name": "fieldwise", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "fieldwise"},
            "subjects": subject}))
        .await;
    }
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin.clone(), home);
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("TokenRequest");
    let answer = accounts
        .create_token_request(rbac::SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .expect("a token");
    answer.status.map(|s| s.token).expect("a token")
}

/// Creates an object as the admin (the dynamic API of its kind, found by discovery).
async fn create(admin: &kube::Client, namespace: Option<&str>, object: serde_json::Value) {
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
    let types = object.types.clone().expect("apiVersion and kind");
    let gvk = kube::api::GroupVersionKind::try_from(&types).expect("gvk");
    let (resource, _) = kube::discovery::pinned_kind(admin, &gvk)
        .await
        .expect("served");
    let api: Api<kube::api::DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(admin.clone(), namespace, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
}

async fn install_crds(admin: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in fieldwise_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let params = kube::api::PatchParams::apply("e2e").force();
        crds.patch(&name, &params, &kube::api::Patch::Apply(&crd))
            .await
            .expect("CRD applied");
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(PATIENCE, established)
            .await
            .expect("established")
            .expect("watch");
    }
}

async fn real_cluster_config() -> kube::Config {
    let path = std::env::var("E2E_KUBECONFIG").expect("E2E_KUBECONFIG names a real cluster");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config")
}

/// A client as `fieldwise run` builds it, authenticated by `token` only, noting every request
/// and its answer's status.
/// The operator's client configuration, authenticated by the ServiceAccount `token`.
fn operator_config(mut config: kube::Config, token: &str) -> kube::Config {
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..kube::config::AuthInfo::default()
    };
    fieldwise::cli::run::operator_config(config)
}

fn recording_client(config: kube::Config, token: &str, answered: Answered) -> kube::Client {
    kube::client::ClientBuilder::try_from(operator_config(config, token))
        .expect("a client")
        .with_layer(&tower::layer::layer_fn(move |inner| Record {
            inner,
            answered: answered.clone(),
        }))
        .build()
}

#[derive(Clone)]
struct Record<S> {
    inner: S,
    answered: Answered,
}

impl<S, B, R> tower::Service<http::Request<B>> for Record<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let noted = format!("{} {}", request.method(), request.uri().path());
        let answered = self.answered.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            if let Ok(mut answered) = answered.lock() {
                answered.push((noted, response.status().as_u16()));
            }
            Ok(response)
        })
    }
}

/// Deletes the FeatureStore and waits until it is gone (the operator's finalizer has run).
async fn delete_and_await_gone(stores: &Api<FeatureStore>, name: &str) {
    let deleted = stores
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    let uid = deleted
        .left()
        .and_then(|fs| fs.metadata.uid)
        .unwrap_or_default();
    let gone = await_condition(stores.clone(), name, conditions::is_deleted(&uid));
    tokio::time::timeout(PATIENCE, gone)
        .await
        .expect("finalizer removed in time")
        .expect("watch");
}

/// Stops the operator task and waits until it has returned without error.
async fn stop_operator<E: std::fmt::Debug>(
    stop: tokio::sync::oneshot::Sender<()>,
    operator: tokio::task::JoinHandle<Result<(), E>>,
) {
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, operator)
        .await
        .expect("operator stops")
        .expect("joins")
        .expect("runs");
}
