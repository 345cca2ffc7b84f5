use serde_json::{Value, json};

use super::*;
use crate::v1::FeatureStoreSpec;

fn spec(value: Value) -> FeatureStoreSpec {
    serde_json::from_value(value).expect("test spec is valid")
}

fn applied_json(value: Value) -> Value {
    serde_json::to_value(applied_with(&spec(value), &DefaultsContext::new("ns1")))
        .expect("spec serialises")
}

#[test]
fn minimal_spec_gets_every_top_level_default() {
    let applied = applied_json(json!({"feastProject": "demo"}));
    assert_eq!(
        applied,
        json!({
            "feastProject": "demo",
            "feastProjectDir": {"init": {}},
            "services": {
                "onlineStore": {
                    "server": {"image": DEFAULT_FEATURE_SERVER_IMAGE},
                    "persistence": {"file": {"path": "/feast-data/online_store.db"}}
                },
                "runFeastApplyOnInit": true
            },
            "authz": {"kubernetes": {}},
            "cronJob": {
                "containerConfigs": {
                    "image": "quay.io/openshift/origin-cli:4.17",
                    "commands": ["feast apply", "feast materialize-incremental $(date -u +'%Y-%m-%dT%H:%M:%S')"]
                },
                "schedule": "@yearly",
                "startingDeadlineSeconds": 5,
                "concurrencyPolicy": "Replace",
                "suspend": true
            },
            "replicas": 1
        })
    );
}

#[test]
fn local_registry_gets_file_persistence_grpc_and_pvc_defaults() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {"registry": {"local": {
            "server": {"restAPI": true},
            "persistence": {"file": {"pvc": {"mountPath": "/data/registry", "create": {}}}}
        }}}
    }));
    let local = &applied["services"]["registry"]["local"];
    assert_eq!(
        local["server"],
        json!({"restAPI": true, "grpc": true, "image": DEFAULT_FEATURE_SERVER_IMAGE})
    );
    assert_eq!(
        local["persistence"]["file"],
        json!({
            "path": "registry.db",
            "pvc": {
                "mountPath": "/data/registry",
                "create": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}
            }
        })
    );
}

#[test]
fn empty_registry_defaults_to_a_local_ephemeral_file() {
    let applied = applied_json(json!({"feastProject": "demo", "services": {"registry": {}}}));
    assert_eq!(
        applied["services"]["registry"],
        json!({"local": {"persistence": {"file": {"path": "/feast-data/registry.db"}}}})
    );
}

#[test]
fn absent_registry_stays_absent() {
    let applied = applied_json(json!({"feastProject": "demo"}));
    assert_eq!(applied["services"].get("registry"), None);
}

#[test]
fn offline_file_store_defaults_to_dask_and_20gi() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {"offlineStore": {"persistence": {"file": {"pvc": {
            "mountPath": "/data/offline",
            "create": {"accessModes": ["ReadWriteMany"], "storageClassName": "fast"}
        }}}}}
    }));
    assert_eq!(
        applied["services"]["offlineStore"]["persistence"]["file"],
        json!({
            "type": "dask",
            "pvc": {
                "mountPath": "/data/offline",
                "create": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "fast",
                    "resources": {"requests": {"storage": "20Gi"}}
                }
            }
        })
    );
}

#[test]
fn online_pvc_path_is_a_bare_file_name_and_requests_5gi() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {"onlineStore": {"persistence": {"file": {"pvc": {"mountPath": "/data/online", "create": {}}}}}}
    }));
    let file = &applied["services"]["onlineStore"]["persistence"]["file"];
    assert_eq!(file["path"], "online_store.db");
    assert_eq!(
        file["pvc"]["create"]["resources"]["requests"]["storage"],
        "5Gi"
    );
}

#[test]
fn user_values_are_never_overwritten() {
    let input = json!({
        "feastProject": "demo",
        "feastProjectDir": {"git": {"url": "https://example.com/repo.git"}},
        "replicas": 3,
        "services": {
            "offlineStore": {"persistence": {"file": {"type": "duckdb"}}},
            "onlineStore": {
                "server": {"image": "custom:1"},
                "persistence": {"file": {"path": "/data/custom.db"}}
            },
            "registry": {"local": {"server": {"grpc": false, "restAPI": true}, "persistence": {"file": {"path": "s3://bucket/registry.db"}}}},
            "runFeastApplyOnInit": false
        },
        "authz": {"noAuth": true},
        "cronJob": {
            "schedule": "0 * * * *",
            "containerConfigs": {"image": "cron:1", "commands": ["feast apply"]}
        }
    });
    let applied = applied_json(input.clone());
    assert_eq!(applied["feastProjectDir"], input["feastProjectDir"]);
    assert_eq!(applied["replicas"], 3);
    assert_eq!(
        applied["services"]["offlineStore"]["persistence"]["file"]["type"],
        "duckdb"
    );
    assert_eq!(
        applied["services"]["onlineStore"]["server"],
        json!({"image": "custom:1"})
    );
    assert_eq!(
        applied["services"]["onlineStore"]["persistence"]["file"]["path"],
        "/data/custom.db"
    );
    assert_eq!(
        applied["services"]["registry"]["local"]["server"]["grpc"],
        false
    );
    assert_eq!(
        applied["services"]["registry"]["local"]["persistence"]["file"]["path"],
        "s3://bucket/registry.db"
    );
    assert_eq!(applied["services"]["runFeastApplyOnInit"], false);
    assert_eq!(applied["authz"], json!({"noAuth": true}));
    // A scheduled CronJob keeps its own settings: the suspend/concurrency/deadline defaults only come
    // with the placeholder schedule.
    assert_eq!(
        applied["cronJob"],
        json!({"schedule": "0 * * * *", "containerConfigs": {"image": "cron:1", "commands": ["feast apply"]}})
    );
}

#[test]
fn db_stores_get_no_file_defaults() {
    let store = json!({"type": "postgres", "secretRef": {"name": "db"}});
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {
            "offlineStore": {"persistence": {"store": store}},
            "onlineStore": {"persistence": {"store": store}},
            "registry": {"local": {"persistence": {"store": {"type": "sql", "secretRef": {"name": "db"}}}}}
        }
    }));
    assert_eq!(
        applied["services"]["offlineStore"]["persistence"],
        json!({"store": store})
    );
    assert_eq!(
        applied["services"]["onlineStore"]["persistence"],
        json!({"store": store})
    );
    assert_eq!(
        applied["services"]["registry"]["local"]["persistence"].get("file"),
        None
    );
}

#[test]
fn remote_feast_ref_defaults_to_the_feature_store_namespace() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {"registry": {"remote": {"feastRef": {"name": "central"}}}}
    }));
    assert_eq!(
        applied["services"]["registry"],
        json!({"remote": {"feastRef": {"name": "central", "namespace": "ns1"}}})
    );

    let explicit = applied_json(json!({
        "feastProject": "demo",
        "services": {"registry": {"remote": {"feastRef": {"name": "central", "namespace": "other"}}}}
    }));
    assert_eq!(
        explicit["services"]["registry"]["remote"]["feastRef"]["namespace"],
        "other"
    );
}

#[test]
fn tls_key_names_default_only_when_tls_is_on_and_are_empty_otherwise() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "services": {
            "onlineStore": {"server": {"tls": {"secretRef": {"name": "online-tls"}}}},
            "offlineStore": {"server": {"tls": {"secretRef": {"name": "offline-tls"}, "secretKeyNames": {"tlsCrt": "cert.pem"}}}},
            "ui": {"tls": {"disable": true}}
        }
    }));
    let services = &applied["services"];
    assert_eq!(
        services["onlineStore"]["server"]["tls"]["secretKeyNames"],
        json!({"tlsCrt": "tls.crt", "tlsKey": "tls.key"})
    );
    assert_eq!(
        services["offlineStore"]["server"]["tls"]["secretKeyNames"],
        json!({"tlsCrt": "cert.pem", "tlsKey": "tls.key"})
    );
    // The Feast operator's status shows its never-omitted struct as `{}`.
    assert_eq!(
        services["ui"]["tls"],
        json!({"disable": true, "secretKeyNames": {}})
    );
}

#[test]
fn disabled_online_store_gets_no_server() {
    let applied = applied_json(
        json!({"feastProject": "demo", "services": {"onlineStore": {"disabled": true}}}),
    );
    assert_eq!(applied["services"]["onlineStore"].get("server"), None);
}

#[test]
fn crd_defaults_are_filled_for_specs_that_skipped_the_api_server() {
    let applied = applied_json(json!({
        "feastProject": "demo",
        "dataQualityMonitoring": {},
        "openlineage": {"enabled": true, "consumer": {"enabled": true, "lineageServer": {}}}
    }));
    assert_eq!(
        applied["dataQualityMonitoring"],
        json!({"autoBaseline": true})
    );
    assert_eq!(
        applied["openlineage"]["consumer"],
        json!({"enabled": true, "storeType": "sql", "retentionDays": 30, "retentionCheckIntervalHours": 6, "lineageServer": {"replicas": 1}})
    );
}

#[test]
fn cron_job_image_comes_from_the_context() {
    let context = DefaultsContext {
        namespace: Some("ns1".into()),
        cron_job_image: Some("mirror/cli:1".into()),
        feature_server_image: None,
    };
    let applied = applied_with(&spec(json!({"feastProject": "demo"})), &context);
    let image = applied
        .cron_job
        .and_then(|c| c.container_configs)
        .and_then(|c| c.container.image);
    assert_eq!(image.as_deref(), Some("mirror/cli:1"));
}

#[test]
fn applied_without_context_leaves_namespace_and_cron_image_unset() {
    let input = spec(json!({
        "feastProject": "demo",
        "services": {"registry": {"remote": {"feastRef": {"name": "central"}}}}
    }));
    let applied = applied(&input);
    let remote = applied
        .services
        .as_ref()
        .and_then(|s| s.registry.as_ref())
        .and_then(|r| r.remote.as_ref());
    let namespace = remote
        .and_then(|r| r.feast_ref.as_ref())
        .and_then(|f| f.namespace.as_deref());
    assert_eq!(namespace, None);
    let containers = applied
        .cron_job
        .and_then(|c| c.container_configs)
        .expect("cron job containers defaulted");
    assert_eq!(containers.container.image, None);
    assert_eq!(containers.commands.map(|c| c.len()), Some(2));
}

#[test]
fn applying_defaults_twice_changes_nothing() {
    let context = DefaultsContext::new("ns1");
    for input in [
        json!({"feastProject": "demo"}),
        json!({"feastProject": "demo", "services": {"registry": {}, "offlineStore": {}, "ui": {}}}),
        json!({"feastProject": "demo", "services": {"registry": {"remote": {"feastRef": {"name": "x"}}}}}),
    ] {
        let once = applied_with(&spec(input), &context);
        assert_eq!(applied_with(&once, &context), once);
    }
}

#[test]
fn scaling_and_replicas_follow_replicas_and_autoscaling() {
    let single = spec(json!({"feastProject": "demo"}));
    assert!(!is_scaling(&single));
    assert_eq!(replicas(&single), Some(1));

    let static_three = spec(json!({"feastProject": "demo", "replicas": 3}));
    assert!(is_scaling(&static_three));
    assert_eq!(replicas(&static_three), Some(3));

    let autoscaled = spec(json!({
        "feastProject": "demo",
        "services": {"scaling": {"autoscaling": {"minReplicas": 2, "maxReplicas": 10}}}
    }));
    assert!(is_scaling(&autoscaled));
    assert!(autoscaling_enabled(&autoscaled));
    assert_eq!(
        replicas(&autoscaled),
        None,
        "the HPA owns the replica count"
    );
}

#[test]
fn selector_names_the_feature_store() {
    assert_eq!(selector("sample"), "feast.dev/name=sample");
    assert_eq!(
        selector_labels("sample")
            .get("feast.dev/name")
            .map(String::as_str),
        Some("sample")
    );
}

#[test]
fn feature_server_image_prefers_server_then_packaged_then_related_image() {
    let packaged = spec(json!({
        "feastProject": "demo",
        "feastProjectDir": {"packaged": {"image": "packaged:1", "featureRepoPath": "/app/repo"}}
    }));
    let server: ServerConfigs =
        serde_json::from_value(json!({"image": "server:1"})).expect("valid server");
    assert_eq!(
        feature_server_image(&packaged, Some(&server), Some("related:1")),
        "server:1"
    );
    assert_eq!(
        feature_server_image(&packaged, None, Some("related:1")),
        "packaged:1"
    );
    let plain = spec(json!({"feastProject": "demo"}));
    assert_eq!(
        feature_server_image(&plain, None, Some("related:1")),
        "related:1"
    );
    assert_eq!(
        feature_server_image(&plain, None, None),
        DEFAULT_FEATURE_SERVER_IMAGE
    );
}

#[test]
fn repo_dir_follows_offline_pvc_git_path_and_packaged_repos() {
    assert_eq!(
        repo_dir(&spec(json!({"feastProject": "demo"}))),
        "/feast-data/demo/feature_repo"
    );
    let git_on_pvc = spec(json!({
        "feastProject": "demo",
        "feastProjectDir": {"git": {"url": "https://example.com/r.git", "featureRepoPath": "sub/repo"}},
        "services": {"offlineStore": {"persistence": {"file": {"pvc": {"mountPath": "/offline", "ref": {"name": "p"}}}}}}
    }));
    assert_eq!(repo_dir(&git_on_pvc), "/offline/demo/sub/repo");
    let packaged = spec(json!({
        "feastProject": "demo",
        "feastProjectDir": {"packaged": {"featureRepoPath": "/app/repo"}},
        "services": {"disableInitContainers": true}
    }));
    assert_eq!(repo_dir(&packaged), "/app/repo");
}

#[test]
fn every_running_server_names_its_image_the_packaged_one_first() {
    let context = DefaultsContext {
        feature_server_image: Some("mirror/feature-server:1".into()),
        ..DefaultsContext::new("ns1")
    };
    let services = json!({"registry": {"local": {"server": {}}}, "offlineStore": {"server": {}},
        "ui": {"image": "own/ui:2"}});
    let applied = |spec_value: Value| {
        serde_json::to_value(applied_with(&spec(spec_value), &context)).expect("serialises")
    };
    let plain = applied(json!({"feastProject": "demo", "services": services}));
    let image = |applied: &Value, pointer: &str| applied["services"].pointer(pointer).cloned();
    let relayed = Some(json!("mirror/feature-server:1"));
    assert_eq!(image(&plain, "/registry/local/server/image"), relayed);
    assert_eq!(image(&plain, "/offlineStore/server/image"), relayed);
    assert_eq!(image(&plain, "/onlineStore/server/image"), relayed);
    assert_eq!(image(&plain, "/ui/image"), Some(json!("own/ui:2")));
    let packaged = applied(
        json!({"feastProject": "demo", "services": {"onlineStore": {"disabled": true},
        "offlineStore": {"server": {}}},
        "feastProjectDir": {"packaged": {"image": "team/repo:3", "featureRepoPath": "/app/repo"}}}),
    );
    assert_eq!(
        image(&packaged, "/offlineStore/server/image"),
        Some(json!("team/repo:3"))
    );
    assert_eq!(
        image(&packaged, "/onlineStore/server"),
        None,
        "a disabled server runs nothing"
    );
}
