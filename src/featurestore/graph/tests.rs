//! Rules of the desired graph, one test each (spec §2, §4).

use fieldwise_api::v1::FeatureStore;
use fieldwise_apply::ReplicasPolicy;
use serde_json::{Value, json};

use super::{DesiredGraph, desired_graph};
use crate::featurestore::context::GraphContext;

const DB_SECRET: &str = "feast-data-stores";

fn feature_store(spec: Value) -> FeatureStore {
    serde_json::from_value(json!({
        "apiVersion": "feast.dev/v1",
        "kind": "FeatureStore",
        "metadata": {"name": "fs", "namespace": "ns", "uid": "uid-1"},
        "spec": spec,
    }))
    .expect("a valid FeatureStore")
}

fn context_with_db_secret() -> GraphContext {
    let mut context = GraphContext::default();
    context.secrets.insert(
        DB_SECRET.to_owned(),
        [
            (
                "postgres".to_owned(),
                "host: db\nuser: feast\npassword: s3cr3t-value\n".to_owned(),
            ),
            (
                "sql".to_owned(),
                "path: postgresql://feast:s3cr3t-value@db/feast\n".to_owned(),
            ),
        ]
        .into(),
    );
    context
}

fn graph(spec: Value) -> DesiredGraph {
    desired_graph(&feature_store(spec), &context_with_db_secret()).expect("the graph builds")
}

fn object<'a>(graph: &'a DesiredGraph, kind: &str, name: &str) -> &'a Value {
    find(graph, kind, name).unwrap_or_else(|| panic!("no {kind} {name} in {:?}", names(graph)))
}

fn find<'a>(graph: &'a DesiredGraph, kind: &str, name: &str) -> Option<&'a Value> {
    graph
        .objects
        .iter()
        .map(|o| &o.body)
        .find(|b| b["kind"] == kind && b["metadata"]["name"] == name)
}

fn names(graph: &DesiredGraph) -> Vec<String> {
    graph
        .objects
        .iter()
        .map(|o| format!("{} {}", o.body["kind"], o.body["metadata"]["name"]))
        .collect()
}

fn scaling_spec(extra_services: Value) -> Value {
    let mut services = json!({
        "onlineStore": {"persistence": {"store": {"type": "postgres", "secretRef": {"name": DB_SECRET}}}},
        "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": DB_SECRET}}}}},
    });
    if let (Some(base), Some(extra)) = (services.as_object_mut(), extra_services.as_object()) {
        base.extend(extra.clone());
    }
    json!({"feastProject": "p", "services": services})
}

fn containers(graph: &DesiredGraph) -> Vec<String> {
    let deployment = object(graph, "Deployment", "feast-fs");
    let list = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_base_feature_store_gets_the_feast_operator_objects() {
    let graph = graph(json!({"feastProject": "p"}));
    for (kind, name) in [
        ("Secret", "feast-fs-server-config"),
        ("ConfigMap", "feast-fs-client"),
        ("ServiceAccount", "feast-fs"),
        ("Role", "feast-fs"),
        ("RoleBinding", "feast-fs"),
        ("ClusterRoleBinding", "feast.ns.fs.token-review"),
        ("Service", "feast-fs-online"),
        ("Deployment", "feast-fs"),
        ("ServiceAccount", "feast-fs-cronjob"),
        ("Role", "feast-fs-cronjob"),
        ("RoleBinding", "feast-fs-cronjob"),
        ("RoleBinding", "feast-fs-cronjob-exec"),
        ("CronJob", "feast-fs"),
    ] {
        object(&graph, kind, name);
    }
    assert_eq!(graph.objects.len(), 13, "{:?}", names(&graph));
    assert_eq!(containers(&graph), ["online"]);
}

#[test]
fn containers_come_in_registry_online_offline_ui_order() {
    let graph = graph(json!({"feastProject": "p", "services": {
        "ui": {}, "offlineStore": {"server": {}}, "registry": {"local": {"server": {}}}
    }}));
    assert_eq!(containers(&graph), ["registry", "online", "offline", "ui"]);
    for service in [
        "feast-fs-registry",
        "feast-fs-online",
        "feast-fs-offline",
        "feast-fs-ui",
    ] {
        object(&graph, "Service", service);
    }
}

#[test]
fn database_credentials_never_appear_in_the_deployment() {
    let graph = graph(scaling_spec(json!({})));
    let deployment = object(&graph, "Deployment", "feast-fs").to_string();
    assert!(
        !deployment.contains("s3cr3t-value"),
        "credentials leaked into the Deployment"
    );
    let env = &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["containers"]
        [0]["env"][0];
    assert_eq!(env["name"], "TMP_FEATURE_STORE_YAML_BASE64");
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"],
        "feast-fs-server-config"
    );
}

#[test]
fn static_replicas_are_owned_and_autoscaling_releases_them() {
    let static_graph = graph(
        json!({"feastProject": "p", "replicas": 3, "services": scaling_spec(json!({}))["services"]}),
    );
    let deployment = static_graph
        .objects
        .iter()
        .find(|o| o.body["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(deployment.body["spec"]["replicas"], 3);
    assert_eq!(deployment.replicas, ReplicasPolicy::Owned);

    let hpa_graph = graph(scaling_spec(
        json!({"scaling": {"autoscaling": {"maxReplicas": 10}}}),
    ));
    let deployment = hpa_graph
        .objects
        .iter()
        .find(|o| o.body["kind"] == "Deployment")
        .expect("a Deployment");
    assert!(
        deployment.body["spec"].get("replicas").is_none(),
        "the HPA owns spec.replicas"
    );
    assert_eq!(deployment.replicas, ReplicasPolicy::Released);
    let hpa = object(&hpa_graph, "HorizontalPodAutoscaler", "feast-fs");
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "feast-fs"})
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
}

#[test]
fn strategy_is_recreate_alone_and_rolling_update_when_scaling() {
    let strategy = |graph: &DesiredGraph| {
        object(graph, "Deployment", "feast-fs")["spec"]["strategy"]["type"].clone()
    };
    assert_eq!(strategy(&graph(json!({"feastProject": "p"}))), "Recreate");
    let scaled = json!({"feastProject": "p", "replicas": 2, "services": scaling_spec(json!({}))["services"]});
    assert_eq!(strategy(&graph(scaled)), "RollingUpdate");
    let user = scaling_spec(
        json!({"deploymentStrategy": {"type": "Recreate"}, "scaling": {"autoscaling": {"maxReplicas": 3}}}),
    );
    assert_eq!(
        strategy(&graph(user)),
        "Recreate",
        "the user's strategy wins"
    );
}

#[test]
fn a_rolling_update_carries_the_servers_default_parameters() {
    let parameters = |graph: &DesiredGraph| {
        object(graph, "Deployment", "feast-fs")["spec"]["strategy"]["rollingUpdate"].clone()
    };
    let scaled = json!({"feastProject": "p", "replicas": 2, "services": scaling_spec(json!({}))["services"]});
    assert_eq!(
        parameters(&graph(scaled)),
        json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
        "owned by fieldwise, so a later Recreate removes them"
    );
    let user = scaling_spec(json!({"deploymentStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1}}, "scaling": {"autoscaling": {"maxReplicas": 3}}}));
    assert_eq!(
        parameters(&graph(user)),
        json!({"maxSurge": 1, "maxUnavailable": "25%"}),
        "the user's parameters win, the rest are the defaults"
    );
    assert_eq!(
        parameters(&graph(json!({"feastProject": "p"}))),
        Value::Null,
        "Recreate has none"
    );
}

#[test]
fn scaling_adds_soft_spread_and_anti_affinity_unless_the_user_gave_them() {
    let scaled = graph(scaling_spec(
        json!({"scaling": {"autoscaling": {"maxReplicas": 3}}}),
    ));
    let pod = &object(&scaled, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    assert_eq!(
        pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "ScheduleAnyway"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["feast.dev/name"],
        "fs"
    );
    let term =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["weight"], 100);
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );

    let disabled = graph(scaling_spec(
        json!({"topologySpreadConstraints": [], "scaling": {"autoscaling": {"maxReplicas": 3}}}),
    ));
    let pod = &object(&disabled, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([]),
        "[] disables the spread"
    );

    let alone = graph(json!({"feastProject": "p"}));
    let pod = &object(&alone, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    assert!(pod.get("topologySpreadConstraints").is_none() && pod.get("affinity").is_none());
}

#[test]
fn a_pdb_exists_only_when_configured_and_scaling() {
    let pdb = json!({"podDisruptionBudgets": {"maxUnavailable": 1}});
    let not_scaling = graph(scaling_spec(pdb.clone()));
    assert!(find(&not_scaling, "PodDisruptionBudget", "feast-fs").is_none());
    let mut scaled_spec = scaling_spec(pdb);
    scaled_spec["replicas"] = json!(2);
    let scaled = graph(scaled_spec);
    let pdb = object(&scaled, "PodDisruptionBudget", "feast-fs");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["feast.dev/name"],
        "fs"
    );
}

#[test]
fn tls_switches_ports_flags_probes_and_mounts() {
    let graph = graph(
        json!({"feastProject": "p", "services": {"onlineStore": {"server": {
            "tls": {"secretRef": {"name": "online-tls"}}
        }}}}),
    );
    let container =
        &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .expect("a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        &command[command.len() - 6..],
        [
            "--key",
            "/tls/online/tls.key",
            "--cert",
            "/tls/online/tls.crt",
            "-p",
            "6567"
        ]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let service = object(&graph, "Service", "feast-fs-online");
    assert_eq!(
        service["spec"]["ports"][0],
        json!({"name": "https", "port": 443, "targetPort": 6567})
    );
    assert_eq!(
        graph.hostnames.online_store.as_deref(),
        Some("feast-fs-online.ns.svc.cluster.local:443")
    );
}

#[test]
fn log_level_metrics_and_worker_flags_reach_the_online_command() {
    let graph = graph(
        json!({"feastProject": "p", "services": {"onlineStore": {"server": {
            "logLevel": "debug", "metrics": true, "workerConfigs": {"workers": 4, "maxRequests": 100}
        }}}}),
    );
    let container =
        &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        json!([
            "feast",
            "--log-level",
            "DEBUG",
            "serve",
            "--metrics",
            "-h",
            "0.0.0.0",
            "--workers",
            "4",
            "--max-requests",
            "100",
            "-p",
            "6566"
        ])
    );
    assert_eq!(
        container["ports"][1],
        json!({"name": "metrics", "containerPort": 8000})
    );
    assert_eq!(
        object(&graph, "Service", "feast-fs-online")["spec"]["ports"][1]["port"],
        8000
    );
}

#[test]
fn pvc_create_makes_a_claim_with_default_size_and_mounts_it_everywhere() {
    let graph = graph(
        json!({"feastProject": "p", "services": {"offlineStore": {"persistence": {"file": {
            "pvc": {"create": {}, "mountPath": "/data/offline"}
        }}}}}),
    );
    let claim = object(&graph, "PersistentVolumeClaim", "feast-fs-offline");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let pod = &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    let mounted = |container: &Value| {
        container["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == "/data/offline"))
    };
    assert!(
        mounted(&pod["containers"][0])
            && mounted(&pod["initContainers"][0])
            && mounted(&pod["initContainers"][1])
    );
    assert_eq!(
        pod["initContainers"][0]["workingDir"], "/data/offline",
        "the repository lives on the offline PVC"
    );
}

#[test]
fn no_auth_removes_the_authorization_objects_and_oidc_binds_token_review() {
    let no_auth = graph(json!({"feastProject": "p", "authz": {"noAuth": true}}));
    assert!(
        no_auth
            .objects
            .iter()
            .all(|o| o.component != "authorization"),
        "{:?}",
        names(&no_auth)
    );
    let mut context = context_with_db_secret();
    context.secrets.insert(
        "oidc".to_owned(),
        [("client_id".to_owned(), "feast".to_owned())].into(),
    );
    let fs = feature_store(json!({"feastProject": "p", "authz": {"oidc": {
        "issuerUrl": "https://idp.example.com", "secretRef": {"name": "oidc"}
    }}}));
    let oidc = desired_graph(&fs, &context).expect("the graph builds");
    let binding = object(&oidc, "ClusterRoleBinding", "feast.ns.fs.oidc-token-review");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": "fieldwise-feast-oidc-token-review"})
    );
    assert!(find(&oidc, "Role", "feast-fs").is_none());
}

/// The graph binds the shipped ClusterRoles and makes no ClusterRole: the permissions the Feast operator
/// puts into ClusterRoles and the CronJob's Role are in the ClusterRoles shipped with the install.
#[test]
fn the_graph_binds_the_shipped_cluster_roles_and_makes_none() {
    let graph = graph(json!({"feastProject": "p", "authz": {"kubernetes": {"roles": ["reader"]}}}));
    assert!(find(&graph, "ClusterRole", "feast.ns.fs.token-review").is_none());
    assert!(
        graph
            .objects
            .iter()
            .all(|o| o.body["kind"] != "ClusterRole"),
        "{:?}",
        names(&graph)
    );
    let role_ref = |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    let binding = object(&graph, "ClusterRoleBinding", "feast.ns.fs.token-review");
    assert_eq!(
        binding["roleRef"],
        role_ref("ClusterRole", "fieldwise-feast-token-review")
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "feast-fs", "namespace": "ns"}])
    );
    // The namespaced Role keeps what a Role can grant: Roles and RoleBindings of its namespace.
    let rule = |resource: &str| {
        json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": [resource],
            "verbs": ["get", "list", "watch"]})
    };
    assert_eq!(
        object(&graph, "Role", "feast-fs")["rules"],
        json!([rule("roles"), rule("rolebindings")])
    );
    assert_eq!(object(&graph, "Role", "reader")["rules"], Value::Null);
    // The CronJob's own Role reads its Deployment; exec comes from the shipped ClusterRole, bound in
    // the namespace only.
    assert_eq!(
        object(&graph, "Role", "feast-fs-cronjob")["rules"],
        json!([{"apiGroups": ["apps"], "resources": ["deployments"],
            "resourceNames": ["feast-fs"], "verbs": ["get"]}])
    );
    assert_eq!(
        object(&graph, "RoleBinding", "feast-fs-cronjob")["roleRef"],
        role_ref("Role", "feast-fs-cronjob")
    );
    let exec = object(&graph, "RoleBinding", "feast-fs-cronjob-exec");
    assert_eq!(
        exec["roleRef"],
        role_ref("ClusterRole", "fieldwise-feast-cronjob-exec")
    );
    assert_eq!(
        exec["subjects"],
        json!([{"kind": "ServiceAccount", "name": "feast-fs-cronjob", "namespace": "ns"}])
    );
}

#[test]
fn cluster_scoped_children_are_left_out_when_the_operator_may_not_manage_them() {
    let fs = feature_store(json!({"feastProject": "p", "authz": {"kubernetes": {}}}));
    let context = GraphContext {
        cluster_scoped_off: Some("grant it".to_owned()),
        ..context_with_db_secret()
    };
    let graph = desired_graph(&fs, &context).expect("the graph builds");
    assert!(find(&graph, "ClusterRole", "feast.ns.fs.token-review").is_none());
    assert!(find(&graph, "ClusterRoleBinding", "feast.ns.fs.token-review").is_none());
    object(&graph, "Role", "feast-fs");
    object(&graph, "RoleBinding", "feast-fs");
    assert_eq!(
        graph.cluster_scoped_left_out,
        ["ClusterRoleBinding feast.ns.fs.token-review"]
    );
    let managed = desired_graph(&fs, &context_with_db_secret()).expect("the graph builds");
    object(&managed, "ClusterRoleBinding", "feast.ns.fs.token-review");
    assert!(managed.cluster_scoped_left_out.is_empty());
}

#[test]
fn the_cron_job_is_suspended_and_yearly_without_a_schedule() {
    let graph = graph(json!({"feastProject": "p"}));
    let cron = object(&graph, "CronJob", "feast-fs");
    assert_eq!(cron["spec"]["schedule"], "@yearly");
    assert_eq!(cron["spec"]["suspend"], true);
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["command"][7], "feast apply");
    assert_eq!(pod["containers"][0]["name"], "feast-1");
    assert_eq!(pod["containers"][0]["command"][2], "deploy/feast-fs");
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
}

#[test]
fn a_scheduled_cron_job_keeps_the_api_servers_concurrency_default() {
    let unscheduled = graph(json!({"feastProject": "p"}));
    let cron = object(&unscheduled, "CronJob", "feast-fs");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Replace");
    let scheduled = graph(json!({"feastProject": "p", "cronJob": {"schedule": "*/5 * * * *"}}));
    let cron = object(&scheduled, "CronJob", "feast-fs");
    assert_eq!(
        cron["spec"]["concurrencyPolicy"],
        Value::Null,
        "unset: Allow"
    );
    let chosen = graph(json!({"feastProject": "p", "cronJob": {
        "schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid"}}));
    let cron = object(&chosen, "CronJob", "feast-fs");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
}

#[test]
fn the_cron_job_runs_as_1001_except_on_openshift() {
    let pod_security = |context: &GraphContext| {
        let graph = desired_graph(&feature_store(json!({"feastProject": "p"})), context)
            .expect("the graph builds");
        object(&graph, "CronJob", "feast-fs")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            ["securityContext"]
            .clone()
    };
    let plain = pod_security(&GraphContext::default());
    assert_eq!(plain["runAsUser"], 1001);
    assert_eq!(plain["runAsNonRoot"], true);
    let openshift = pod_security(&GraphContext {
        openshift: true,
        ..GraphContext::default()
    });
    assert_eq!(
        openshift["runAsUser"],
        Value::Null,
        "OpenShift picks the UID"
    );
    assert_eq!(openshift["runAsNonRoot"], true);
}

#[test]
fn serving_metrics_turn_the_metrics_port_and_service_monitor_on() {
    let spec = json!({"feastProject": "p", "services": {"onlineStore": {
        "server": {}, "serving": {"metrics": {"enabled": true}}
    }}});
    let context = GraphContext {
        service_monitor_available: true,
        ..GraphContext::default()
    };
    let graph = desired_graph(&feature_store(spec), &context).expect("the graph builds");
    let container =
        &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["ports"][1],
        json!({"name": "metrics", "containerPort": 8000})
    );
    let command = container["command"].as_array().expect("a command");
    assert!(
        !command.contains(&json!("--metrics")),
        "the flag belongs to server.metrics; the server reads serving.metrics itself"
    );
    assert_eq!(
        object(&graph, "Service", "feast-fs-online")["spec"]["ports"][1],
        json!({"name": "metrics", "port": 8000, "targetPort": 8000})
    );
    object(&graph, "ServiceMonitor", "feast-fs-online");
    let off = json!({"feastProject": "p", "services": {"onlineStore": {
        "server": {}, "serving": {"metrics": {"enabled": false}}
    }}});
    let graph = desired_graph(&feature_store(off), &context).expect("the graph builds");
    assert!(find(&graph, "ServiceMonitor", "feast-fs-online").is_none());
}

#[test]
fn a_rest_only_registry_is_probed_on_its_rest_port_at_the_root() {
    let graph = graph(
        json!({"feastProject": "p", "services": {"registry": {"local": {
            "server": {"grpc": false, "restAPI": true}
        }}}}),
    );
    let containers =
        object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
    let registry = containers
        .iter()
        .find(|c| c["name"] == "registry")
        .expect("a registry container");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            registry[probe]["httpGet"],
            json!({"path": "/", "port": 6572, "scheme": "HTTP"}),
            "{probe}"
        );
    }
}

#[test]
fn a_missing_secret_stops_the_graph_with_the_api_server_message() {
    let fs = feature_store(scaling_spec(json!({})));
    let error = desired_graph(&fs, &GraphContext::default()).expect_err("the Secret is missing");
    assert_eq!(error.message, "secrets \"feast-data-stores\" not found");
}

#[test]
fn a_feast_ref_registry_uses_the_referenced_hostname_once_ready() {
    let spec = json!({"feastProject": "p", "services": {"registry": {"remote": {"feastRef": {"name": "central"}}}}});
    let fs = feature_store(spec);
    let missing =
        desired_graph(&fs, &GraphContext::default()).expect_err("nothing is referenced yet");
    assert_eq!(
        missing.message,
        "Referenced FeatureStore 'central' was not found"
    );

    let mut central = feature_store(
        json!({"feastProject": "c", "services": {"registry": {"local": {"server": {}}}}}),
    );
    central.metadata.name = Some("central".to_owned());
    let mut context = GraphContext::default();
    context
        .feature_stores
        .insert(("ns".to_owned(), "central".to_owned()), central.clone());
    let not_ready = desired_graph(&fs, &context).expect_err("central has no status yet");
    assert_eq!(
        not_ready.message,
        "Remote feast registry of referenced FeatureStore 'central' is not ready"
    );

    central.status = serde_json::from_value(json!({
        "applied": {"feastProject": "c", "services": {"registry": {"local": {"server": {"grpc": true}}}}},
        "conditions": [{"type": "Registry", "status": "True", "reason": "Ready", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "serviceHostnames": {"registry": "feast-central-registry.ns.svc.cluster.local:80"},
    }))
    .expect("a valid status");
    context
        .feature_stores
        .insert(("ns".to_owned(), "central".to_owned()), central);
    let graph = desired_graph(&fs, &context).expect("central is ready");
    assert_eq!(
        graph.hostnames.registry.as_deref(),
        Some("feast-central-registry.ns.svc.cluster.local:80")
    );
}

#[test]
fn a_config_change_changes_the_pod_template_hash() {
    let hash = |graph: &DesiredGraph| {
        object(graph, "Deployment", "feast-fs")["spec"]["template"]["metadata"]["annotations"]["fieldwise.dev/config-hash"].clone()
    };
    let before = graph(json!({"feastProject": "p"}));
    let same = graph(json!({"feastProject": "p"}));
    let after = graph(json!({"feastProject": "q"}));
    assert_eq!(hash(&before), hash(&same));
    assert_ne!(hash(&before), hash(&after));
}

#[test]
fn the_config_hash_is_keyed_by_the_key_kept_in_the_config_secret() {
    use crate::featurestore::context::ConfigHashKey;
    let with_key = |key: &str| {
        let context = GraphContext {
            config_hash_key: Some(ConfigHashKey::new(key.to_owned())),
            ..context_with_db_secret()
        };
        desired_graph(&feature_store(json!({"feastProject": "p"})), &context)
            .expect("the graph builds")
    };
    let hash = |graph: &DesiredGraph| {
        object(graph, "Deployment", "feast-fs")["spec"]["template"]["metadata"]["annotations"]
            ["fieldwise.dev/config-hash"]
            .clone()
    };
    let (a, again, b) = (with_key("key-a"), with_key("key-a"), with_key("key-b"));
    assert_eq!(hash(&a), hash(&again));
    // Someone who can read pods but not the Secret cannot test a guess of the configuration:
    // the same configuration under another key gives an unrelated digest.
    assert_ne!(hash(&a), hash(&b));
    let secret = object(&a, "Secret", "feast-fs-server-config");
    assert_eq!(
        secret["data"]["config-hash-key"],
        json!(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "key-a"
        ))
    );
    let deployment = serde_json::to_string(object(&a, "Deployment", "feast-fs")).expect("json");
    assert!(
        !deployment.contains("config-hash-key"),
        "the key never reaches a pod"
    );
    let context = GraphContext {
        config_hash_key: Some(ConfigHashKey::new("key-a".to_owned())),
        ..GraphContext::default()
    };
    assert!(
        !format!("{context:?}").contains("key-a"),
        "Debug hides the key"
    );
}

#[test]
fn node_selectors_overlay_in_registry_offline_online_ui_order() {
    let graph = graph(json!({"feastProject": "p", "services": {
        "nodeSelector": {"pool": "default", "zone": "a"},
        "onlineStore": {"server": {"nodeSelector": {"pool": "online"}}},
        "offlineStore": {"server": {"nodeSelector": {"pool": "offline", "disk": "ssd"}}}
    }}));
    let selector =
        &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]["nodeSelector"];
    assert_eq!(
        selector,
        &json!({"disk": "ssd", "pool": "online", "zone": "a"})
    );
}

#[test]
fn every_container_of_the_deployment_is_restricted_by_default() {
    let graph = graph(json!({"feastProject": "p", "services": {"ui": {}}}));
    let pod = &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}),
        "the feature-server image runs as its numeric user 1001: no runAsUser"
    );
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| pod[*list].as_array().expect(list))
        .collect();
    assert!(
        containers.len() >= 4,
        "init, apply, online, ui: {containers:?}"
    );
    for container in containers {
        assert_eq!(
            container["securityContext"],
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
            "{}",
            container["name"]
        );
    }
}

#[test]
fn the_users_pod_security_context_wins_field_by_field() {
    let graph = graph(
        json!({"feastProject": "p", "services": {"securityContext": {
            "fsGroup": 2000, "seccompProfile": {"type": "Localhost", "localhostProfile": "feast.json"}
        }}}),
    );
    let pod = &object(&graph, "Deployment", "feast-fs")["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"fsGroup": 2000, "runAsNonRoot": true,
               "seccompProfile": {"type": "Localhost", "localhostProfile": "feast.json"}})
    );
}

#[test]
fn custom_roles_are_shared_with_the_feature_stores_of_the_namespace_that_list_them() {
    use fieldwise_apply::CoOwner;
    let fs = feature_store(json!({"feastProject": "p",
        "authz": {"kubernetes": {"roles": ["feast-writer", "feast-reader", "feast-writer"]}}}));
    let other = CoOwner {
        name: "other".into(),
        uid: "uid-2".into(),
    };
    let mut context = context_with_db_secret();
    context
        .role_sharers
        .insert("feast-writer".into(), vec![other.clone()]);
    let graph = desired_graph(&fs, &context).expect("the graph builds");
    let roles: Vec<_> = graph
        .objects
        .iter()
        .filter(|o| o.body["kind"] == "Role" && o.shared_by.is_some())
        .map(|o| (o.body["metadata"]["name"].clone(), o.shared_by.clone()))
        .collect();
    let this = CoOwner {
        name: "fs".into(),
        uid: "uid-1".into(),
    };
    assert_eq!(
        roles,
        [
            (json!("feast-reader"), Some(vec![this.clone()])),
            (json!("feast-writer"), Some(vec![this, other])),
        ],
        "each listed Role once, with every FeatureStore that wants it"
    );
    let writer = object(&graph, "Role", "feast-writer");
    assert_eq!(
        writer["metadata"]["labels"],
        json!({"feast.dev/service-type": "authorization"}),
        "only labels every sharer agrees on"
    );
}

fn pod_spec(graph: &DesiredGraph) -> &Value {
    &object(graph, "Deployment", "feast-fs")["spec"]["template"]["spec"]
}

fn names_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| item[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_pods_carry_the_selector_label_and_managed_by_only() {
    let graph = graph(json!({"feastProject": "p"}));
    let template = &object(&graph, "Deployment", "feast-fs")["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"],
        json!({"feast.dev/name": "fs", "app.kubernetes.io/managed-by": "fieldwise"})
    );
}

#[test]
fn feast_init_runs_the_feast_operators_script_and_feast_apply_reads_its_file() {
    let graph = graph(json!({"feastProject": "p"}));
    let init = &pod_spec(&graph)["initContainers"];
    assert_eq!(init[0]["command"], json!(["bash", "-c"]));
    assert_eq!(
        init[0]["args"],
        json!([
            "echo \"Creating feast repository...\"\necho 'feast init p'\n\
             if [[ ! -d /feast-data/p/feature_repo ]]; then feast init p; fi;\n\
             echo $TMP_FEATURE_STORE_YAML_BASE64 | base64 -d > /feast-data/p/feature_repo/feature_store.yaml;\n\
             echo \"Feast repo creation complete\";\n"
        ])
    );
    assert_eq!(
        names_of(&init[0]["env"], "name"),
        ["TMP_FEATURE_STORE_YAML_BASE64"]
    );
    assert_eq!(init[1]["command"], json!(["feast", "apply"]));
    assert!(init[1].get("env").is_none(), "{}", init[1]);
}

#[test]
fn a_packaged_repository_is_staged_by_the_feast_operators_script() {
    let graph = graph(json!({"feastProject": "p",
        "feastProjectDir": {"packaged": {"featureRepoPath": "/app/repo"}}}));
    let init = &pod_spec(&graph)["initContainers"][0];
    let script = init["args"][0].as_str().expect("a script");
    assert!(script.starts_with("set -euo pipefail\n"), "{script}");
    assert!(
        script.contains(
            "if [[ ! -d \"${FEAST_PACKAGED_FEATURE_REPO_PATH}\" ]]; then echo \"Packaged feature \
             repository not found: ${FEAST_PACKAGED_FEATURE_REPO_PATH}\" >&2; exit 1; fi\n"
        ),
        "{script}"
    );
    assert!(
        script.contains(
            "printf '%s' \"${TMP_FEATURE_STORE_YAML_BASE64}\" | base64 -d > \
             \"${FEAST_STAGED_FEATURE_REPO_PATH}/feature_store.yaml\"\n"
        ),
        "{script}"
    );
    assert_eq!(
        names_of(&init["env"], "name"),
        [
            "TMP_FEATURE_STORE_YAML_BASE64",
            "FEAST_PACKAGED_FEATURE_REPO_PATH",
            "FEAST_STAGED_FEATURE_REPO_PATH"
        ]
    );
}

#[test]
fn volumes_and_mounts_come_in_the_feast_operators_order() {
    let graph = graph(json!({"feastProject": "p", "services": {
        "offlineStore": {"persistence": {"file": {"pvc": {"create": {}, "mountPath": "/data/offline"}}}},
        "registry": {"local": {
            "persistence": {"file": {"pvc": {"create": {}, "mountPath": "/data/registry"}}},
            "server": {"tls": {"secretRef": {"name": "registry-certs"}}}}},
        "onlineStore": {"server": {"volumeMounts": [{"name": "creds", "mountPath": "/creds"}]}},
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]
    }}));
    let pod = pod_spec(&graph);
    assert_eq!(
        names_of(&pod["volumes"], "name"),
        [
            "registry-tls",
            "feast-fs-registry",
            "feast-fs-offline",
            "feast-data",
            "creds"
        ]
    );
    let mounts = |list: &str, index: usize| names_of(&pod[list][index]["volumeMounts"], "name");
    assert_eq!(
        mounts("containers", 0),
        [
            "registry-tls",
            "feast-fs-registry",
            "feast-fs-offline",
            "feast-data"
        ]
    );
    assert_eq!(
        mounts("containers", 1),
        [
            "creds",
            "feast-fs-registry",
            "feast-fs-offline",
            "feast-data"
        ]
    );
    assert_eq!(
        mounts("initContainers", 0),
        [
            "registry-tls",
            "feast-fs-registry",
            "feast-fs-offline",
            "feast-data"
        ]
    );
    assert_eq!(
        mounts("initContainers", 1),
        [
            "creds",
            "registry-tls",
            "feast-fs-registry",
            "feast-fs-offline",
            "feast-data"
        ]
    );
}

#[test]
fn the_autoscaler_and_the_disruption_budget_are_applied_before_the_deployment() {
    let graph = graph(scaling_spec(json!({
        "scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
        "podDisruptionBudgets": {"minAvailable": 1}
    })));
    let position = |kind: &str| {
        graph
            .objects
            .iter()
            .position(|o| o.body["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {:?}", names(&graph)))
    };
    assert!(position("HorizontalPodAutoscaler") < position("Deployment"));
    assert!(position("PodDisruptionBudget") < position("Deployment"));
}
