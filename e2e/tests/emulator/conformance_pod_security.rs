//! PodSecurity admission (the `pod-security.kubernetes.io/*` namespace labels), on the emulator and
//! on the real kube-apiserver: pods below the `enforce` level are refused with the API server's
//! message; objects with a pod template are admitted with a Warning, and their controller's pods
//! are refused (a Deployment reports `ReplicaFailure`); `warn` warns; invalid labels are refused;
//! tightening a namespace's level warns about its existing pods. Waits are watches with a timeout.

use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::sim::{SimOptions, Simulators};
use fieldwise_e2e::testkit::{RawClient, RawResponse, TestError};
use serde_json::{Value, json};

use crate::target::Server;

/// The controllers of a real cluster take seconds; the emulator's simulated ones act at once.
const WAIT: Duration = Duration::from_secs(60);

/// What every bare container fails at the restricted level.
const BARE_RESTRICTED: &str = "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
     unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
     runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
     seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

/// The server, its client, and the simulated controllers on the emulator (kube-controller-manager
/// does their work on a real cluster).
async fn setup() -> Result<(Server, RawClient, Option<Simulators>), TestError> {
    let (server, client) = crate::target::start(Options::default()).await?;
    let sims = match &server {
        Server::Emulator(emulator) => Some(Simulators::start(emulator, SimOptions::default())),
        Server::Real { .. } => None,
    };
    Ok((server, client, sims))
}

/// Creates namespace `name` with `labels`, and its `default` ServiceAccount (pods name it; a real
/// cluster's controller makes it a moment later, the emulator has none).
async fn namespace(c: &RawClient, name: &str, labels: Value) -> Result<(), TestError> {
    let created = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}),
        )
        .await?;
    assert_eq!(created.status, 201, "{}", created.text);
    let account = c
        .post(
            &format!("/api/v1/namespaces/{name}/serviceaccounts"),
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        )
        .await?;
    assert!(matches!(account.status, 201 | 409), "{}", account.text);
    Ok(())
}

fn pod(name: &str, container: Value, pod_security: Value) -> Value {
    let mut container = container;
    container["name"] = json!("c");
    container["image"] = json!("registry.example/app:1");
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [container], "securityContext": pod_security}})
}

fn restricted_container() -> Value {
    json!({"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})
}

fn restricted_pod_context() -> Value {
    json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
}

/// The texts of the response's Warning headers (`299 - "text"`, `"` and `\` escaped).
fn warnings(response: &RawResponse) -> Vec<String> {
    response
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| {
            let quoted = value
                .strip_prefix("299 - \"")
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            let mut text = String::new();
            let mut chars = quoted.chars();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    text.extend(chars.next());
                } else {
                    text.push(ch);
                }
            }
            text
        })
        .collect()
}

#[tokio::test]
async fn pods_below_the_enforce_level_are_forbidden() -> Result<(), TestError> {
    let Some((_server, c, _sims)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    namespace(
        &c,
        "pss-restricted",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await?;
    let pods = "/api/v1/namespaces/pss-restricted/pods";
    let refused = c.post(pods, &pod("bare", json!({}), json!({}))).await?;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.body["reason"], "Forbidden");
    assert_eq!(
        refused.body["details"],
        json!({"name": "bare", "kind": "pods"})
    );
    assert_eq!(
        refused.body["message"],
        format!(
            "pods \"bare\" is forbidden: violates PodSecurity \"restricted:latest\": {BARE_RESTRICTED}"
        )
    );
    // A dry run is refused alike; the object's own validation comes first.
    let dry = c
        .post(
            &format!("{pods}?dryRun=All"),
            &pod("bare", json!({}), json!({})),
        )
        .await?;
    assert_eq!(dry.status, 403);
    let mut invalid = pod("invalid", json!({}), json!({}));
    invalid["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(c.post(pods, &invalid).await?.status, 422);

    let admitted = c
        .post(
            pods,
            &pod("ok", restricted_container(), restricted_pod_context()),
        )
        .await?;
    assert_eq!(admitted.status, 201, "{}", admitted.text);
    assert!(warnings(&admitted).is_empty(), "{:?}", warnings(&admitted));

    // Root by number, a host port, a hostPath volume: every reason, baseline ones first.
    let mut worst = pod(
        "worst",
        json!({"ports": [{"containerPort": 80, "hostPort": 8080}],
               "securityContext": {"privileged": true, "runAsUser": 0}}),
        json!({"seccompProfile": {"type": "Unconfined"}}),
    );
    worst["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/etc"}}]);
    worst["spec"]["hostPID"] = json!(true);
    let refused = c.post(pods, &worst).await?;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.body["message"],
        "pods \"worst\" is forbidden: violates PodSecurity \"restricted:latest\": host namespaces (hostPID=true), \
         hostPort (container \"c\" uses hostPort 8080), \
         privileged (container \"c\" must not set securityContext.privileged=true), \
         allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         restricted volume types (volume \"host\" uses restricted volume type \"hostPath\"), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         runAsUser=0 (container \"c\" must not set runAsUser=0), \
         seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
    );
    Ok(())
}

#[tokio::test]
async fn baseline_enforces_and_warn_warns() -> Result<(), TestError> {
    let Some((_server, c, _sims)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let labels = json!({"pod-security.kubernetes.io/enforce": "baseline",
                        "pod-security.kubernetes.io/warn": "restricted"});
    namespace(&c, "pss-baseline", labels).await?;
    let pods = "/api/v1/namespaces/pss-baseline/pods";
    let admitted = c.post(pods, &pod("bare", json!({}), json!({}))).await?;
    assert_eq!(admitted.status, 201, "{}", admitted.text);
    assert_eq!(
        warnings(&admitted),
        [format!(
            "would violate PodSecurity \"restricted:latest\": {BARE_RESTRICTED}"
        )]
    );
    let mut privileged = pod(
        "privileged",
        json!({"securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}),
        json!({}),
    );
    privileged["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/etc"}}]);
    let refused = c.post(pods, &privileged).await?;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.body["message"],
        "pods \"privileged\" is forbidden: violates PodSecurity \"baseline:latest\": \
         non-default capabilities (container \"c\" must not include \"NET_ADMIN\" in securityContext.capabilities.add), \
         hostPath volumes (volume \"host\"), \
         privileged (container \"c\" must not set securityContext.privileged=true)"
    );
    assert!(
        warnings(&refused).is_empty(),
        "no warning on a refused request"
    );
    Ok(())
}

#[tokio::test]
async fn workloads_are_admitted_with_a_warning_and_their_pods_refused() -> Result<(), TestError> {
    let Some((_server, c, _sims)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    namespace(
        &c,
        "pss-workloads",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await?;
    let template = |container: Value, pod_security: Value| {
        let mut pod = pod("", container, pod_security);
        let spec = pod["spec"].take();
        json!({"metadata": {"labels": {"app": "web"}}, "spec": spec})
    };
    let bare = template(json!({}), json!({}));
    let expected = format!("would violate PodSecurity \"restricted:latest\": {BARE_RESTRICTED}");
    let selector = json!({"matchLabels": {"app": "web"}});
    let mut job_template = bare.clone();
    job_template["spec"]["restartPolicy"] = json!("Never");
    let workloads = [
        (
            "/apis/apps/v1",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"selector": selector, "template": bare}}),
        ),
        (
            "/apis/apps/v1",
            "statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"}, "spec": {"selector": selector, "serviceName": "db", "template": bare}}),
        ),
        (
            "/apis/batch/v1",
            "jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "once"}, "spec": {"template": job_template}}),
        ),
        (
            "/apis/batch/v1",
            "cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly"}, "spec": {"schedule": "@yearly", "suspend": true,
                "jobTemplate": {"spec": {"template": job_template}}}}),
        ),
    ];
    for (group, plural, body) in &workloads {
        let created = c
            .post(&format!("{group}/namespaces/pss-workloads/{plural}"), body)
            .await?;
        assert_eq!(created.status, 201, "{plural}: {}", created.text);
        assert_eq!(
            warnings(&created),
            std::slice::from_ref(&expected),
            "{plural}"
        );
    }
    // Subresources are not evaluated; a restricted template gets no warning.
    let deployment = "/apis/apps/v1/namespaces/pss-workloads/deployments";
    let scaled = c
        .patch(
            &format!("{deployment}/web/scale"),
            "merge",
            &json!({"spec": {"replicas": 2}}),
        )
        .await?;
    assert_eq!(scaled.status, 200, "{}", scaled.text);
    assert!(warnings(&scaled).is_empty());
    let compliant = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "compliant"},
        "spec": {"selector": {"matchLabels": {"app": "ok"}},
                 "template": {"metadata": {"labels": {"app": "ok"}},
                              "spec": template(restricted_container(), restricted_pod_context())["spec"]}}});
    let created = c.post(deployment, &compliant).await?;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(warnings(&created).is_empty(), "{:?}", warnings(&created));

    // The Deployment's pods are refused when its controller creates them.
    let mut watch = c
        .watch(&format!(
            "{deployment}?watch=true&fieldSelector=metadata.name%3Dweb"
        ))
        .await?;
    let failure = |event: &Value| {
        event["object"]["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|condition| condition["type"] == "ReplicaFailure")
            .cloned()
    };
    // Once the scale to 2 is reflected too.
    let settled = |event: &Value| {
        failure(event).is_some() && event["object"]["status"]["unavailableReplicas"] == 2
    };
    let event = watch.until(WAIT, settled).await?;
    let condition = failure(&event).expect("ReplicaFailure");
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "FailedCreate");
    let message = condition["message"].as_str().unwrap_or_default();
    let (pod_name, rest) = message
        .strip_prefix("pods \"")
        .and_then(|m| m.split_once('"'))
        .unwrap_or_else(|| panic!("{message}"));
    assert!(pod_name.starts_with("web-"), "{message}");
    assert_eq!(
        rest,
        format!(" is forbidden: violates PodSecurity \"restricted:latest\": {BARE_RESTRICTED}")
    );
    // No pod exists: only unavailable replicas are counted; the conditions in the controller's order.
    let status = &event["object"]["status"];
    assert_eq!(status["unavailableReplicas"], 2, "{status}");
    for absent in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert!(status.get(absent).is_none(), "{absent}: {status}");
    }
    let types: Vec<&Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["type"])
        .collect();
    assert_eq!(types, ["Progressing", "Available", "ReplicaFailure"]);
    assert_eq!(status["conditions"][0]["reason"], "NewReplicaSetCreated");
    Ok(())
}

#[tokio::test]
async fn invalid_labels_are_refused_and_tightening_warns_about_existing_pods()
-> Result<(), TestError> {
    let Some((_server, c, _sims)) = crate::target::unless_diverging(setup()).await? else {
        return Ok(());
    };
    let invalid = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pss-invalid",
                "labels": {"pod-security.kubernetes.io/enforce": "strict",
                           "pod-security.kubernetes.io/enforce-version": "1.30"}}}),
        )
        .await?;
    assert_eq!(invalid.status, 422, "{}", invalid.text);
    assert_eq!(
        invalid.body["message"],
        "Namespace \"pss-invalid\" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted, \
         metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"1.30\": must be \"latest\" or \"v1.x\"]"
    );

    namespace(&c, "pss-tighten", json!({})).await?;
    let pods = "/api/v1/namespaces/pss-tighten/pods";
    for name in ["legacy-b", "legacy-a"] {
        let created = c.post(pods, &pod(name, json!({}), json!({}))).await?;
        assert_eq!(created.status, 201, "{}", created.text);
    }
    let mut root = pod("root", restricted_container(), restricted_pod_context());
    root["spec"]["securityContext"]["runAsUser"] = json!(0);
    assert_eq!(c.post(pods, &root).await?.status, 201);
    let expected = [
        "existing pods in namespace \"pss-tighten\" violate the new PodSecurity enforce level \"restricted:latest\"",
        "legacy-a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        "root: runAsUser=0",
    ];
    // kube-apiserver judges the existing pods from its own pod cache, which may not hold a pod
    // created a moment ago; nothing outside it can be watched for that, so the label is set again
    // (after taking it off) until the answer names every pod, a bounded number of times.
    let mut seen = Vec::new();
    for _ in 0..20 {
        let labelled = c
            .patch(
                "/api/v1/namespaces/pss-tighten",
                "merge",
                &json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
            )
            .await?;
        assert_eq!(labelled.status, 200, "{}", labelled.text);
        seen = warnings(&labelled);
        if seen == expected {
            break;
        }
        let off = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": null}}});
        let removed = c
            .patch("/api/v1/namespaces/pss-tighten", "merge", &off)
            .await?;
        assert_eq!(removed.status, 200, "{}", removed.text);
    }
    assert_eq!(seen, expected);
    // Relabelling with the same level warns about nothing.
    let again = c
        .patch(
            "/api/v1/namespaces/pss-tighten",
            "merge",
            &json!({"metadata": {"labels": {"team": "data"}}}),
        )
        .await?;
    assert!(warnings(&again).is_empty(), "{:?}", warnings(&again));
    // An existing pod's metadata can change; a new image is evaluated.
    let legacy = format!("{pods}/legacy-a");
    let relabelled = c
        .patch(
            &legacy,
            "merge",
            &json!({"metadata": {"labels": {"tier": "old"}}}),
        )
        .await?;
    assert_eq!(relabelled.status, 200, "{}", relabelled.text);
    let new_image = c
        .patch(
            &legacy,
            "strategic",
            &json!({"spec": {"containers": [{"name": "c", "image": "registry.example/app:2"}]}}),
        )
        .await?;
    assert_eq!(new_image.status, 403, "{}", new_image.text);
    assert_eq!(
        new_image.body["message"],
        format!(
            "pods \"legacy-a\" is forbidden: violates PodSecurity \"restricted:latest\": {BARE_RESTRICTED}"
        )
    );
    Ok(())
}
