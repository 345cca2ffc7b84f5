//! Defaults compared with a real kube-apiserver v1.33.13 (`kubectl create ... --dry-run=server`):
//! NodePort and LoadBalancer Services get node ports and `externalTrafficPolicy: Cluster`
//! (LoadBalancers also `allocateLoadBalancerNodePorts`); a CronJob's job template gets the pod
//! template defaults but not a Job's own (backoffLimit, completions, ...).

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::json;

#[tokio::test]
async fn node_port_and_load_balancer_services() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": 8443}]}});
    let r = c.post("/api/v1/namespaces/default/services", &lb).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let spec = &r.body["spec"];
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
    // The range is the server's setting (30000-32767 by default); a port is allocated.
    let node_port = spec["ports"][0]["nodePort"].as_i64().unwrap_or(0);
    assert!(node_port > 0, "{spec}");
    let cluster = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"},
        "spec": {"ports": [{"port": 80}]}});
    let r = c
        .post("/api/v1/namespaces/default/services", &cluster)
        .await?;
    assert!(r.body["spec"].get("externalTrafficPolicy").is_none());
    assert!(r.body["spec"]["ports"][0].get("nodePort").is_none());
    Ok(())
}

#[tokio::test]
async fn a_cron_job_template_is_not_defaulted_as_a_job() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "n"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    let r = c
        .post("/apis/batch/v1/namespaces/default/cronjobs", &cron)
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let job = &r.body["spec"]["jobTemplate"]["spec"];
    assert!(job.get("backoffLimit").is_none(), "{job}");
    assert!(job.get("completions").is_none(), "{job}");
    assert_eq!(job["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    Ok(())
}

#[tokio::test]
async fn a_new_job_gets_a_generated_selector_owned_by_nobody() -> Result<(), TestError> {
    let (_server, c) = crate::target::start(Options::default()).await?;
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}});
    let r = c
        .post(
            "/apis/batch/v1/namespaces/default/jobs?fieldManager=creator",
            &job,
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let uid = r.body["metadata"]["uid"].clone();
    assert_eq!(
        r.body["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &r.body["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "once");
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(r.body["spec"]["manualSelector"], false);
    let owned = r.body["metadata"]["managedFields"][0]["fieldsV1"].to_string();
    assert!(
        !owned.contains("selector") && !owned.contains("job-name"),
        "{owned}"
    );
    // A name too long for the job-name label is refused as kube-apiserver refuses it (once).
    let long = "j".repeat(64);
    let mut job = job;
    job["metadata"]["name"] = json!(long);
    let r = c
        .post("/apis/batch/v1/namespaces/default/jobs", &job)
        .await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(
        r.body["message"],
        format!(
            "Job.batch \"{long}\" is invalid: spec.template.labels: Invalid value: \"{long}\": must be no more than 63 characters"
        )
    );
    Ok(())
}
