//! The desired graph as a pure function: what each spec and input produces.

use fieldwise_api::prism::{PatternBackend, PrismCluster};
use fieldwise_apply::ReplicasPolicy;
use serde_json::{Value, json};

use super::{Children, PrismGraph, desired_graph};
use crate::prismcluster::inputs::{Credentials, PrismInputs};

fn cluster(spec: Value) -> PrismCluster {
    serde_json::from_value(
        json!({"apiVersion": "prism.io/v1alpha1", "kind": "PrismCluster",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}),
    )
    .expect("a PrismCluster")
}

/// Inputs where every enabled backend is ready and MinIO's credentials were generated.
fn ready(cluster: &PrismCluster) -> PrismInputs {
    let mut inputs = PrismInputs::default();
    for backend in PatternBackend::ALL {
        if cluster.spec.backends.is_enabled(backend) {
            inputs.ready_backends.insert(backend);
        }
    }
    let credentials = Credentials {
        username: "prism".to_owned(),
        password: "generated-Secret-value-42".to_owned(),
    };
    inputs
        .credentials
        .insert(PatternBackend::Minio, credentials);
    inputs
}

fn graph(cluster: &PrismCluster, inputs: &PrismInputs) -> (Children, PrismGraph) {
    desired_graph(cluster, inputs).expect("a graph")
}

fn object<'a>(children: &'a Children, kind: &str, name: &str) -> Option<&'a Value> {
    children
        .iter()
        .map(|(_, desired)| &desired.body)
        .find(|body| body["kind"] == kind && body["metadata"]["name"] == name)
}

fn env(workload: &Value, variable: &str) -> Option<Value> {
    let containers = workload["spec"]["template"]["spec"]["containers"].as_array()?;
    containers
        .iter()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .find(|e| e["name"] == variable)
        .cloned()
}

fn digest(workload: &Value) -> Value {
    workload["spec"]["template"]["metadata"]["annotations"]["prism.io/backends-digest"].clone()
}

#[test]
fn credentials_reach_containers_by_reference_only() {
    let spec = json!({"backends": {"minio": {"enabled": true}},
        "patterns": [{"name": "mailbox", "backends": ["minio"]}]});
    let cluster = cluster(spec);
    let (children, _) = graph(&cluster, &ready(&cluster));
    let secret = object(&children, "Secret", "minio-credentials").expect("generated Secret");
    assert!(secret["data"]["password"].is_string());
    for (_, desired) in &children {
        if desired.body["kind"] != "Secret" {
            let text = desired.body.to_string();
            assert!(!text.contains("generated-Secret-value-42"), "{text}");
        }
    }
    let runner = object(&children, "Deployment", "mailbox-runner").expect("runner");
    let password = env(runner, "S3_SECRET_KEY").expect("S3_SECRET_KEY");
    assert_eq!(
        password["valueFrom"]["secretKeyRef"],
        json!({"name": "minio-credentials", "key": "password"})
    );
}

#[test]
fn a_runner_waits_for_the_backends_it_lists() {
    let spec = json!({"backends": {"redis": {"enabled": true}, "nats": {"enabled": true}},
        "patterns": [{"name": "kv", "backends": ["redis"]}, {"name": "queue", "backends": ["nats"]}]});
    let cluster = cluster(spec);
    let mut inputs = ready(&cluster);
    inputs.ready_backends.remove(&PatternBackend::Nats);
    let (children, graph) = graph(&cluster, &inputs);
    assert!(object(&children, "Deployment", "kv-runner").is_some());
    assert!(object(&children, "Deployment", "queue-runner").is_none());
    assert_eq!(graph.waiting["queue-runner"], [PatternBackend::Nats]);

    // Once made, a runner stays while its backend restarts.
    inputs.existing_runners.insert("queue-runner".to_owned());
    let (children, graph) = super::desired_graph(&cluster, &inputs).expect("a graph");
    assert!(object(&children, "Deployment", "queue-runner").is_some());
    assert!(graph.waiting.is_empty());
}

#[test]
fn enabling_a_backend_changes_only_the_digests_of_runners_that_list_it() {
    let patterns = |consumer: Value| json!([{"name": "kv", "backends": ["redis"]}, {"name": "consumer", "backends": consumer}]);
    let before = cluster(
        json!({"backends": {"redis": {"enabled": true}, "nats": {"enabled": true}},
        "patterns": patterns(json!(["nats"]))}),
    );
    let after = cluster(
        json!({"backends": {"redis": {"enabled": true}, "nats": {"enabled": true},
        "kafka": {"enabled": true}}, "patterns": patterns(json!(["nats", "kafka"]))}),
    );
    let (old, _) = graph(&before, &ready(&before));
    let (new, _) = graph(&after, &ready(&after));
    let runner = |children: &Children, name: &str| {
        object(children, "Deployment", name)
            .cloned()
            .expect("runner")
    };
    assert_eq!(
        runner(&old, "kv-runner"),
        runner(&new, "kv-runner"),
        "kv-runner changed"
    );
    assert_ne!(
        digest(&runner(&old, "consumer-runner")),
        digest(&runner(&new, "consumer-runner"))
    );
    let brokers = env(&runner(&new, "consumer-runner"), "KAFKA_BROKERS").expect("KAFKA_BROKERS");
    assert_eq!(
        brokers["valueFrom"]["configMapKeyRef"]["name"],
        "prism-backends"
    );
}

#[test]
fn kafka_votes_with_every_replica_in_kraft_mode() {
    let cluster = cluster(json!({"backends": {"kafka": {"enabled": true, "replicas": 3}}}));
    let (children, _) = graph(&cluster, &ready(&cluster));
    let kafka = object(&children, "StatefulSet", "kafka").expect("kafka");
    assert_eq!(kafka["spec"]["replicas"], 3);
    let voters = env(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS").expect("voters");
    let voters = voters["value"].as_str().unwrap_or_default();
    assert_eq!(voters.split(',').count(), 3, "{voters}");
    assert!(voters.starts_with("0@kafka-0."), "{voters}");
    assert_eq!(
        env(kafka, "KAFKA_PROCESS_ROLES").expect("roles")["value"],
        "broker,controller"
    );
}

#[test]
fn proxy_autoscaling_releases_replicas_to_its_hpa() {
    let cluster = cluster(json!({"proxy": {"replicas": 3,
        "autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 6}}}));
    let (children, _) = graph(&cluster, &ready(&cluster));
    let proxy = children
        .iter()
        .find(|(_, d)| {
            d.body["kind"] == "Deployment" && d.body["metadata"]["name"] == "prism-proxy"
        })
        .map(|(_, d)| d)
        .expect("proxy");
    assert_eq!(proxy.replicas, ReplicasPolicy::Released);
    let hpa = object(&children, "HorizontalPodAutoscaler", "prism-proxy-hpa").expect("HPA");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "prism-proxy");
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].clone(),
            hpa["spec"]["maxReplicas"].clone()
        ),
        (json!(2), json!(6))
    );
}

#[test]
fn a_keda_runner_without_keda_runs_unscaled_and_says_why() {
    let spec = json!({"backends": {"nats": {"enabled": true}}, "patterns": [{"name": "consumer",
        "backends": ["nats"], "autoscaling": {"scaler": "keda", "minReplicas": 1, "maxReplicas": 5,
            "triggers": [{"type": "nats-jetstream", "metadata": {"stream": "orders"}}]}}]});
    let cluster = cluster(spec);
    let mut inputs = ready(&cluster);
    let (children, graph) = super::desired_graph(&cluster, &inputs).expect("a graph");
    assert!(object(&children, "ScaledObject", "consumer-runner").is_none());
    assert!(
        graph
            .notes
            .iter()
            .any(|n| n.contains("KEDA is not installed")),
        "{:?}",
        graph.notes
    );

    inputs.scaled_objects = true;
    let (children, _) = super::desired_graph(&cluster, &inputs).expect("a graph");
    let scaled = object(&children, "ScaledObject", "consumer-runner").expect("ScaledObject");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "consumer-runner");
    assert_eq!(scaled["spec"]["pollingInterval"], 10);
    assert_eq!(scaled["spec"]["cooldownPeriod"], 300);
    assert_eq!(scaled["spec"]["triggers"][0]["type"], "nats-jetstream");
    assert!(object(&children, "HorizontalPodAutoscaler", "consumer-runner").is_none());
}

#[test]
fn a_second_prism_cluster_in_a_namespace_makes_nothing() {
    let cluster = cluster(json!({}));
    let inputs = PrismInputs {
        namespace_held_by: Some("first".to_owned()),
        ..PrismInputs::default()
    };
    let error = desired_graph(&cluster, &inputs).expect_err("refused");
    assert!(error.message.contains("first"), "{}", error.message);
}

#[test]
fn the_graph_is_a_pure_function_of_its_inputs() {
    let cluster = cluster(json!({"backends": {"redis": {"enabled": true}},
        "patterns": [{"name": "kv", "type": "StatefulSet", "backends": ["redis"], "storage": {"size": "1Gi"}}]}));
    let inputs = ready(&cluster);
    let bodies =
        |children: Children| -> Vec<Value> { children.into_iter().map(|(_, d)| d.body).collect() };
    assert_eq!(
        bodies(graph(&cluster, &inputs).0),
        bodies(graph(&cluster, &inputs).0)
    );
}

#[test]
fn every_workload_runs_restricted_as_a_numeric_user_its_image_supports() {
    let cluster = cluster(json!({
        "backends": {"redis": {}, "nats": {}, "postgres": {}, "minio": {}, "kafka": {"version": "3.7.0"}},
        "patterns": [{"name": "keyvalue", "backends": ["redis"]},
                     {"name": "mailbox", "type": "StatefulSet", "backends": ["nats"],
                      "storage": {"size": "1Gi"}}]
    }));
    let (children, _) = graph(&cluster, &ready(&cluster));
    let expected = [
        ("StatefulSet", "redis", 999, 1000),
        ("StatefulSet", "postgres", 70, 70),
        ("StatefulSet", "nats", 1000, 1000),
        ("StatefulSet", "minio", 1000, 1000),
        ("StatefulSet", "kafka", 1000, 1000),
        ("Deployment", "prism-admin", 65532, 65532),
        ("Deployment", "prism-proxy", 65532, 65532),
        ("Deployment", "keyvalue-runner", 65532, 65532),
        ("StatefulSet", "mailbox-runner", 65532, 65532),
    ];
    for (kind, name, user, group) in expected {
        let workload = object(&children, kind, name).unwrap_or_else(|| panic!("{kind} {name}"));
        let pod = &workload["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"],
            json!({"runAsNonRoot": true, "runAsUser": user, "runAsGroup": group,
                   "fsGroup": group, "seccompProfile": {"type": "RuntimeDefault"}}),
            "{kind} {name}"
        );
        for container in pod["containers"].as_array().expect("containers") {
            assert_eq!(
                container["securityContext"],
                json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
                "{kind} {name}"
            );
        }
    }
}

#[test]
fn the_debian_variants_of_redis_and_postgres_run_as_their_debian_users() {
    let cluster =
        cluster(json!({"backends": {"redis": {"version": "7.2"}, "postgres": {"version": "16"}}}));
    let (children, _) = graph(&cluster, &ready(&cluster));
    let user = |name: &str| {
        let pod = &object(&children, "StatefulSet", name).expect(name)["spec"]["template"]["spec"];
        (
            pod["securityContext"]["runAsUser"].clone(),
            pod["securityContext"]["fsGroup"].clone(),
        )
    };
    assert_eq!(user("redis"), (json!(999), json!(999)));
    assert_eq!(user("postgres"), (json!(999), json!(999)));
}
