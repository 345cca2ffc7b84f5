//! Protobuf request bodies: every `kubectl create <kind>` generator for a kind the emulator serves
//! (kubectl's typed clients send `application/vnd.kubernetes.protobuf`) creates the object, and
//! what is stored is what the same object sent as JSON would be.

use base64::Engine;
use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;
use serde_json::{Value, json};

use crate::kubectl_cli::{Kubectl, skip_without_kubectl};

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Each generator and the line kubectl prints for it.
const GENERATORS: &[(&[&str], &str)] = &[
    (&["create", "namespace", "pb"], "namespace/pb created"),
    (
        &["create", "configmap", "cm", "--from-literal=a=1"],
        "configmap/cm created",
    ),
    (
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=token=s3cret",
        ],
        "secret/creds created",
    ),
    (
        &[
            "create",
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=r.example",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "secret/reg created",
    ),
    (
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=0",
            "--port=8080",
        ],
        "deployment.apps/web created",
    ),
    (
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
        "job.batch/once created",
    ),
    (
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=*/5 * * * *",
        ],
        "cronjob.batch/nightly created",
    ),
    (
        &["create", "job", "from-cron", "--from=cronjob/nightly"],
        "job.batch/from-cron created",
    ),
    (
        &["create", "service", "clusterip", "svc", "--tcp=80:8080"],
        "service/svc created",
    ),
    (
        &["create", "service", "nodeport", "np", "--tcp=81:http"],
        "service/np created",
    ),
    (
        &["create", "service", "loadbalancer", "lb", "--tcp=443:8443"],
        "service/lb created",
    ),
    (
        &[
            "create",
            "service",
            "externalname",
            "ext",
            "--external-name=db.example",
        ],
        "service/ext created",
    ),
    (
        &["create", "serviceaccount", "robot"],
        "serviceaccount/robot created",
    ),
    (
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods",
        ],
        "role.rbac.authorization.k8s.io/reader created",
    ),
    (
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--serviceaccount=default:robot",
        ],
        "rolebinding.rbac.authorization.k8s.io/reader created",
    ),
    (
        &[
            "create",
            "clusterrole",
            "cm-reader",
            "--verb=get",
            "--resource=configmaps",
        ],
        "clusterrole.rbac.authorization.k8s.io/cm-reader created",
    ),
    (
        &[
            "create",
            "clusterrolebinding",
            "cm-reader",
            "--clusterrole=cm-reader",
            "--user=alice",
        ],
        "clusterrolebinding.rbac.authorization.k8s.io/cm-reader created",
    ),
    (
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=50%",
        ],
        "poddisruptionbudget.policy/web created",
    ),
    (
        &["create", "ingress", "web", "--rule=web.example/=svc:80"],
        "ingress.networking.k8s.io/web created",
    ),
];

/// The cluster-scoped objects the generators create (the namespace aside: every test's start on a
/// real server removes earlier namespaces).
const CLUSTER_SCOPED: &[&str] = &[
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/cm-reader",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cm-reader",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubectl_create_generator_works() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    crate::target::remove_cluster_scoped(&c, CLUSTER_SCOPED).await?;
    let k = Kubectl::new(&server, "protobuf-create")?;
    for (args, printed) in GENERATORS {
        let out = k.ok(args).await?;
        assert_eq!(out.trim(), *printed, "kubectl {args:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_store_what_json_would() -> Result<(), TestError> {
    skip_without_kubectl!();
    let (server, c) = crate::target::start(Options::default()).await?;
    crate::target::remove_cluster_scoped(&c, CLUSTER_SCOPED).await?;
    let k = Kubectl::new(&server, "protobuf-fields")?;
    for (args, _) in GENERATORS {
        k.ok(args).await?;
    }
    let secret = k
        .json(&["get", "secret", "creds", "--show-managed-fields"])
        .await?;
    assert_eq!(secret["data"], json!({"token": b64("s3cret")}));
    assert_eq!(secret["type"], "Opaque");
    let creator = &secret["metadata"]["managedFields"][0];
    assert_eq!(creator["manager"], "kubectl-create");
    assert_eq!(creator["operation"], "Update");
    // Zero strings Go leaves out of JSON (namespace, uid, ...) are not in the owned fields.
    assert_eq!(
        creator["fieldsV1"],
        json!({"f:data": {".": {}, "f:token": {}}, "f:type": {}})
    );

    let web = k.json(&["get", "deployment", "web"]).await?;
    assert_eq!(web["spec"]["replicas"], 0, "a pointer field's zero is kept");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(container["resources"], json!({}));
    assert_eq!(
        web["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );

    let svc = k.json(&["get", "service", "svc"]).await?;
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"], 8080,
        "IntOrString int"
    );
    let np = k.json(&["get", "service", "np"]).await?;
    assert_eq!(
        np["spec"]["ports"][0]["targetPort"], "http",
        "IntOrString string"
    );
    assert_eq!(np["spec"]["type"], "NodePort");

    let pdb = k.json(&["get", "poddisruptionbudget", "web"]).await?;
    assert_eq!(pdb["spec"]["minAvailable"], "50%");

    let cron = k.json(&["get", "cronjob", "nightly"]).await?;
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
    let job = k.json(&["get", "job", "from-cron"]).await?;
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["controller"], true);

    let binding = k.json(&["get", "rolebinding", "reader"]).await?;
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}])
    );
    let ingress = k.json(&["get", "ingress", "web"]).await?;
    let backend: &Value = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"];
    assert_eq!(
        backend,
        &json!({"service": {"name": "svc", "port": {"number": 80}}})
    );
    Ok(())
}
