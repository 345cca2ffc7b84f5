//! PrismCluster: the ADR's `prism-local` example becomes Running, every child applied by fieldwise;
//! a second PrismCluster in the namespace is refused and makes nothing; a restart and 60 resyncs
//! write nothing.

use std::{collections::BTreeSet, time::Duration};

use fieldwise::featurestore::context::ImageDefaults;
use fieldwise::featurestore::render::{Input, OFFLINE_UID, render};
use fieldwise::settings::Settings;
use fieldwise_api::prism::{Phase, PrismCluster};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};

use crate::harness::{Cluster, USER, contains, on_every_target, wait_for, wait_gone};

const PRISM_LOCAL: &str = include_str!("../../deploy/samples/prismcluster-local.yaml");

on_every_target!(prism_local_runs_and_owns_its_stack, prism_local_runs);

async fn prism_local_runs(mut cluster: Cluster) {
    let namespace = cluster.namespace.clone();
    // The sample names namespace `prism`; the scenario works in its own.
    let sample = PRISM_LOCAL.replace("  namespace: prism\n", "");
    cluster.apply_yaml(&sample, &namespace).await;
    let clusters: Api<PrismCluster> = Api::namespaced(cluster.client.clone(), &namespace);
    let running = tokio::time::timeout(
        crate::harness::patience(),
        kube::runtime::wait::await_condition(
            clusters.clone(),
            "prism-local",
            phase_is(Phase::Running),
        ),
    )
    .await;
    let running = match running {
        Ok(Ok(Some(running))) => running,
        other => {
            let now = clusters
                .get("prism-local")
                .await
                .ok()
                .and_then(|c| c.status);
            panic!("prism-local did not become Running ({other:?}); status: {now:#?}")
        }
    };
    let status = running.status.clone().expect("a status");
    assert_eq!(status.admin_ready.as_deref(), Some("1/1"));
    assert_eq!(status.patterns_ready.as_deref(), Some("4/4"));
    assert_eq!(status.backends_ready.as_deref(), Some("3/3"));

    let mut children = BTreeSet::new();
    for (kind, plural, group) in [
        ("StatefulSet", "statefulsets", "apps/v1"),
        ("Deployment", "deployments", "apps/v1"),
        ("Service", "services", "v1"),
        ("ConfigMap", "configmaps", "v1"),
        ("Secret", "secrets", "v1"),
        (
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "autoscaling/v2",
        ),
        ("Ingress", "ingresses", "networking.k8s.io/v1"),
    ] {
        let (group_name, version) = group.rsplit_once('/').unwrap_or(("", group));
        let resource = kube::discovery::ApiResource {
            group: group_name.to_owned(),
            version: version.to_owned(),
            api_version: group.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        };
        let api = cluster.dynamic_api(&resource, Some(&namespace));
        let selector = ListParams::default().labels("app.kubernetes.io/managed-by=fieldwise");
        for object in api.list(&selector).await.expect("list").items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let managers: Vec<String> = object
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter(|entry| entry.operation.as_deref() == Some("Apply"))
                .filter_map(|entry| entry.manager.clone())
                .collect();
            assert!(
                managers.iter().any(|m| m == "fieldwise"),
                "{kind} {name}: {managers:?}"
            );
            children.insert(format!("{kind}/{name}"));
        }
    }
    for expected in [
        "StatefulSet/redis",
        "StatefulSet/nats",
        "StatefulSet/minio",
        "Service/redis",
        "Service/nats",
        "Service/minio",
        "Deployment/prism-admin",
        "Deployment/prism-proxy",
        "Service/prism-admin",
        "Service/prism-proxy",
        "HorizontalPodAutoscaler/prism-proxy-hpa",
        "StatefulSet/keyvalue-runner",
        "StatefulSet/mailbox-runner",
        "Deployment/consumer-runner",
        "Deployment/producer-runner",
        "ConfigMap/prism-backends",
        "Secret/minio-credentials",
        "Ingress/prism-ingress",
    ] {
        assert!(
            children.contains(expected),
            "missing {expected} in {children:?}"
        );
    }

    // The live stack is what `fieldwise render` shows for the sample (generated passwords aside).
    matches_render(
        &cluster,
        &sample,
        running.metadata.uid.as_deref().unwrap_or_default(),
    )
    .await;

    // Credentials reach containers by reference only: no pod template carries a literal of them.
    let secret_api: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(cluster.client.clone(), &namespace);
    let generated = secret_api
        .get("minio-credentials")
        .await
        .expect("generated credentials");
    let password = generated
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .expect("password");
    let password = String::from_utf8(password.0.clone()).expect("text");
    let sts: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(cluster.client.clone(), &namespace);
    let minio = serde_json::to_string(&sts.get("minio").await.expect("minio")).expect("json");
    assert!(
        !minio.contains(&password),
        "the MinIO password is a literal in its StatefulSet"
    );

    // A second PrismCluster in the namespace is refused with a message naming the first.
    let second =
        "apiVersion: prism.io/v1alpha1\nkind: PrismCluster\nmetadata:\n  name: second\nspec: {}\n";
    cluster.apply_yaml(second, &namespace).await;
    let refused = wait_for(&clusters, "second", phase_is(Phase::Failed), "Failed").await;
    let ready = refused
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .expect("a Ready condition");
    assert!(ready.message.contains("prism-local"), "{}", ready.message);
    clusters
        .delete("second", &Default::default())
        .await
        .expect("second deleted");
    // Gone once the operator has removed its finalizer (that write comes before the count below).
    wait_gone(&clusters, "second").await;

    // The proxy's HPA brings it to its minimum of 2 (a real HPA controller on its next sync, after
    // Running): the stack is settled once the status shows it.
    let proxy_settled = |c: Option<&PrismCluster>| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.proxy_ready.as_deref())
            == Some("2/2")
    };
    wait_for(&clusters, "prism-local", proxy_settled, "proxy at 2/2").await;

    // A restart and 60 resyncs of the settled cluster (one every 250 ms) write nothing, and the
    // credentials never change.
    let resyncing = Settings {
        resync_period: Duration::from_millis(250),
        ..cluster.settings().clone()
    };
    let writes_before = cluster.operator_writes();
    if cluster.is_emulated() {
        cluster.emulator().counters().reset();
    }
    let status_before = clusters
        .get("prism-local")
        .await
        .expect("prism-local")
        .status;
    cluster.restart_operator_with(resyncing).await;
    let restarted = cluster.reconciles();
    cluster.wait_reconciles(restarted + 60).await;
    let writes = cluster.operator_writes() - writes_before;
    if cluster.is_emulated() {
        let counted = cluster.emulator().counters().snapshot();
        let requests: Vec<_> = counted.iter().filter(|(key, _)| key.is_write()).collect();
        assert!(
            requests.is_empty(),
            "write requests while resyncing: {requests:?}"
        );
    }
    assert_eq!(
        writes,
        0,
        "the operator wrote while restarted and resyncing a settled PrismCluster: {:?}; status before {:#?}, now {:#?}",
        cluster.operator_requests_after(writes_before),
        status_before,
        clusters
            .get("prism-local")
            .await
            .expect("prism-local")
            .status
    );
    let again = secret_api
        .get("minio-credentials")
        .await
        .expect("credentials");
    assert_eq!(again.data, generated.data, "generated credentials changed");
}

pub(crate) fn phase_is(phase: Phase) -> impl Fn(Option<&PrismCluster>) -> bool {
    move |cluster: Option<&PrismCluster>| {
        cluster
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.phase)
            == Some(phase)
    }
}

/// Applies the PrismCluster `name` with `spec`, as a user's `kubectl apply --server-side` would.
pub(crate) async fn apply_prism(cluster: &Cluster, name: &str, spec: serde_json::Value) {
    let body = serde_json::json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismCluster",
        "metadata": {"name": name, "namespace": cluster.namespace}, "spec": spec});
    Api::<PrismCluster>::namespaced(cluster.client.clone(), &cluster.namespace)
        .patch(
            name,
            &PatchParams::apply(USER).force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("PrismCluster applied");
}

/// Every object `fieldwise render` shows for `sample` is live and holds every rendered field, but
/// for the generated credentials, whose values render cannot know.
async fn matches_render(cluster: &Cluster, sample: &str, uid: &str) {
    let input = Input {
        source_name: "prismcluster-local.yaml".to_owned(),
        text: sample.to_owned(),
    };
    let inputs = crate::samples::in_namespace(vec![input], &cluster.namespace);
    let rendered = render(&inputs, &ImageDefaults::default()).expect("renders");
    let rendered: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&rendered).expect("rendered YAML parses");
    assert!(rendered.len() > 10, "render shows the stack: {rendered:?}");
    for child in rendered {
        let mut child: serde_json::Value =
            serde_json::from_str(&child.to_string().replace(OFFLINE_UID, uid)).expect("JSON");
        let described = crate::samples::describe(&child);
        if child["kind"] == "Secret" {
            child.as_object_mut().map(|secret| secret.remove("data"));
        }
        let live = crate::samples::live_object(cluster, &child)
            .await
            .unwrap_or_else(|| panic!("{described} rendered but not live"));
        let live = serde_json::to_value(&live).expect("JSON");
        if let Err(difference) = contains(&live, &child, "") {
            panic!("live {described} differs from render: {difference}");
        }
    }
}
