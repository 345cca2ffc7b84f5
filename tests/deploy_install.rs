//! The install artefacts: RBAC least privilege, the committed kustomize files and OLM bundle against their
//! generators, the rendered kustomize install, and the bundle rules that can be checked offline.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use fieldwise::{
    deploy::{
        IMAGE_REPOSITORY, NAMESPACE,
        files::{Part, generated_files, value},
        manager::{self, METRICS_PORT},
        olm, rbac,
        rbac::Permission,
    },
    featurestore::{
        context::{DEFAULT_CRON_JOB_IMAGE, DEFAULT_FEATURE_SERVER_IMAGE, ImageDefaults},
        graph::SHIPPED_CLUSTER_ROLES,
        render::{Input, render},
    },
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    docs.into_iter().filter(|doc| !doc.is_null()).collect()
}

fn perm(group: &str, resource: &str, verb: &str) -> Permission {
    (group.to_owned(), resource.to_owned(), verb.to_owned())
}

/// The calls the controller's code makes besides the engine's (written here independently of
/// `rbac::CONTROLLER_CALLS`, from reading src/featurestore).
fn controller_calls() -> BTreeSet<Permission> {
    [
        ("feast.dev", "featurestores", "get"),
        ("feast.dev", "featurestores", "list"),
        ("feast.dev", "featurestores", "watch"),
        ("feast.dev", "featurestores", "patch"),
        ("feast.dev", "featurestores/status", "patch"),
        ("feast.dev", "featurestores/finalizers", "update"),
        ("", "secrets", "list"),
        ("", "secrets", "watch"),
        ("", "configmaps", "get"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        // The metrics endpoint authenticates and authorizes each scrape (src/metrics_access.rs).
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    ]
    .into_iter()
    .map(|(g, r, v)| perm(g, r, v))
    .collect()
}

/// FeatureStores that exercise every Role and ClusterRole the graph can create.
const RBAC_PROBES: &str = r#"
apiVersion: feast.dev/v1
kind: FeatureStore
metadata: {name: kube-auth, namespace: team}
spec:
  feastProject: probe
  authz:
    kubernetes:
      roles: [feast-writer, feast-reader]
  services:
    onlineStore: {server: {}}
    registry: {local: {server: {}}}
---
apiVersion: feast.dev/v1
kind: FeatureStore
metadata: {name: oidc-auth, namespace: team}
spec:
  feastProject: probe
  authz:
    oidc:
      secretRef: {name: oidc-secret}
---
apiVersion: v1
kind: Secret
metadata: {name: oidc-secret, namespace: team}
stringData:
  client_id: id
  auth_discovery_url: https://idp.example.com/.well-known/openid-configuration
"#;

/// The probes as the graph renders them.
fn rendered_probes() -> Vec<Value> {
    let input = Input {
        source_name: "probes".to_owned(),
        text: RBAC_PROBES.to_owned(),
    };
    documents(&render(&[input], &ImageDefaults::default()).expect("probes render"))
}

/// Permissions inside the Roles the graph renders: the operator must hold them to grant them.
fn delegated_by_graph() -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    let mut roles = 0;
    for doc in rendered_probes() {
        assert_ne!(
            doc["kind"], "ClusterRole",
            "the graph binds the shipped ClusterRoles and makes none"
        );
        if doc["kind"] == "Role" {
            roles += 1;
            let rules: Vec<PolicyRule> =
                serde_json::from_value(doc["rules"].clone()).unwrap_or_default();
            out.extend(permissions_ignoring_names(&rules));
        }
    }
    assert!(
        roles >= 4,
        "the probes should render token-review, custom and CronJob roles; got {roles}"
    );
    out
}

/// The ClusterRoles the rendered bindings refer to: the operator must be allowed to `bind` each.
fn bound_by_graph() -> BTreeSet<String> {
    rendered_probes()
        .iter()
        .filter(|doc| {
            matches!(
                doc["kind"].as_str(),
                Some("RoleBinding" | "ClusterRoleBinding")
            )
        })
        .filter(|doc| doc["roleRef"]["kind"] == "ClusterRole")
        .filter_map(|doc| doc["roleRef"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Like `rbac::permissions`, but counting rules limited to resource names as the whole resource (the
/// operator holds the unrestricted permission).
fn permissions_ignoring_names(rules: &[PolicyRule]) -> BTreeSet<Permission> {
    let unnamed: Vec<PolicyRule> = rules
        .iter()
        .cloned()
        .map(|rule| PolicyRule {
            resource_names: None,
            ..rule
        })
        .collect();
    rbac::permissions(&unnamed)
}

fn needs() -> BTreeSet<Permission> {
    let mut needs = rbac::permissions(&fieldwise::runtime::all_kinds().policy_rules());
    needs.extend(controller_calls());
    needs.extend(delegated_by_graph());
    needs
}

#[test]
fn cluster_role_grants_every_permission_the_operator_needs() {
    let granted = rbac::permissions(&rbac::cluster_rules());
    let missing: Vec<_> = needs().difference(&granted).cloned().collect();
    assert!(missing.is_empty(), "the ClusterRole lacks {missing:?}");
}

/// Resources that exist only cluster-wide.
const CLUSTER_SCOPED_RESOURCES: [&str; 5] = [
    "clusterroles",
    "clusterrolebindings",
    "namespaces",
    "tokenreviews",
    "subjectaccessreviews",
];

#[test]
fn namespaced_and_cluster_scoped_rules_together_are_the_cluster_role() {
    let mut both = rbac::permissions(&rbac::namespaced_rules());
    both.extend(rbac::permissions(&rbac::cluster_scoped_rules()));
    assert_eq!(both, rbac::permissions(&rbac::cluster_rules()));
}

#[test]
fn namespaced_rules_write_nothing_cluster_scoped() {
    // A FeatureStore's Role names cluster-scoped resources (its token-review rules), so the
    // operator holds those read verbs in the namespace to grant them; in a Role they reach
    // nothing beyond the namespace itself.
    let namespaced = rbac::permissions(&rbac::namespaced_rules());
    let cluster_scoped: Vec<_> = namespaced
        .iter()
        .filter(|(_, resource, _)| CLUSTER_SCOPED_RESOURCES.contains(&resource.as_str()))
        .collect();
    for (group, resource, verb) in &cluster_scoped {
        assert!(
            ["get", "list", "watch"].contains(&verb.as_str()),
            "the namespaced rules may {verb} {resource}.{group}"
        );
    }
    let cluster = rbac::permissions(&rbac::cluster_scoped_rules());
    for (_, resource, _) in &cluster {
        assert!(
            CLUSTER_SCOPED_RESOURCES.contains(&resource.as_str())
                || resource == "roles"
                || resource == "rolebindings"
                || resource == "tokenreviews",
            "{resource} is not cluster-scoped by nature"
        );
    }
}

#[test]
fn namespaced_overlay_grants_roles_in_the_watched_namespaces_only() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        println!("skipped: the namespaced overlay's patches need `kubectl kustomize`");
        return;
    }
    let docs = rendered_install("deploy/overlays/namespaced");
    let cluster_roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    let mut expected = vec![
        rbac::CLUSTER_SCOPED_ROLE,
        rbac::CLUSTER_SCOPED_ROLE,
        rbac::METRICS_READER_ROLE,
    ];
    expected.extend(fieldwise::featurestore::graph::SHIPPED_CLUSTER_ROLES);
    let mut found = cluster_roles.clone();
    found.sort();
    expected.sort();
    assert_eq!(
        found, expected,
        "only what is cluster-scoped by nature: the operator's cluster-scoped role and binding, and the ClusterRoles FeatureStores bind"
    );
    let cluster_role = find(&docs, "ClusterRole", rbac::CLUSTER_SCOPED_ROLE);
    assert_eq!(
        cluster_role["rules"],
        serde_json::to_value(rbac::cluster_scoped_rules()).expect("rules")
    );
    let roles: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == rbac::NAMESPACED_ROLE)
        .collect();
    let namespaces: Vec<&str> = roles
        .iter()
        .filter_map(|d| d["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(
        namespaces,
        fieldwise::deploy::files::EXAMPLE_WATCH_NAMESPACES
    );
    for role in roles {
        assert_eq!(
            role["rules"],
            serde_json::to_value(rbac::namespaced_rules()).expect("rules")
        );
    }
    let bindings = docs
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" && d["metadata"]["name"] == rbac::NAMESPACED_ROLE);
    assert_eq!(bindings.count(), 2);
    let deployment = find(&docs, "Deployment", manager::DEPLOYMENT);
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    let watch = env
        .iter()
        .find(|e| e["name"] == "WATCH_NAMESPACE")
        .expect("WATCH_NAMESPACE");
    assert_eq!(watch["value"], "team-a,team-b");
    assert_eq!(
        fieldwise::runtime::namespaces::parse_watch_namespaces(&[watch["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()]),
        Ok(vec!["team-a".to_owned(), "team-b".to_owned()])
    );
}

#[test]
fn cluster_role_grants_nothing_unused() {
    let unused: Vec<_> = rbac::permissions(&rbac::cluster_rules())
        .difference(&needs())
        .cloned()
        .collect();
    assert!(
        unused.is_empty(),
        "the ClusterRole grants verbs nothing uses: {unused:?}"
    );
}

/// The operator's permissions limited to object names, with the names: binding the shipped ClusterRoles,
/// reading the Feast operator's shared ones (for the leftovers report).
fn expected_named() -> BTreeSet<rbac::NamedPermission> {
    let named = |verb: &str, name: &str| {
        (
            "rbac.authorization.k8s.io".to_owned(),
            "clusterroles".to_owned(),
            verb.to_owned(),
            name.to_owned(),
        )
    };
    let mut expected: BTreeSet<_> = bound_by_graph()
        .iter()
        .map(|name| named("bind", name))
        .collect();
    expected.extend(
        ["feast-token-review-cluster-role", "feast-oidc-token-review"].map(|n| named("get", n)),
    );
    expected
}

#[test]
fn named_rules_grant_exactly_binding_the_shipped_roles_and_reading_the_feast_ones() {
    assert_eq!(
        bound_by_graph(),
        SHIPPED_CLUSTER_ROLES
            .iter()
            .map(|n| (*n).to_owned())
            .collect(),
        "the probes bind every shipped ClusterRole, and only those"
    );
    assert_eq!(
        rbac::named_permissions(&rbac::cluster_rules()),
        expected_named()
    );
}

#[test]
fn roles_have_no_wildcards_urls_or_escalation() {
    let rules = rbac::cluster_rules()
        .into_iter()
        .chain(rbac::leader_election_rules());
    for rule in rules {
        let words = rule
            .api_groups
            .iter()
            .flatten()
            .chain(rule.resources.iter().flatten())
            .chain(rule.resource_names.iter().flatten())
            .chain(&rule.verbs);
        for word in words {
            assert!(!word.contains('*'), "wildcard in {rule:?}");
        }
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        assert!(
            !rule
                .verbs
                .iter()
                .any(|v| v == "escalate" || v == "impersonate"),
            "{rule:?}"
        );
        if rule.verbs.iter().any(|v| v == "bind") {
            assert_eq!(rule.verbs, ["bind"], "{rule:?}");
            assert!(
                rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()),
                "bind without resourceNames: {rule:?}"
            );
        }
    }
}

/// What the operator held only to grant it in a FeatureStore's ClusterRoles and CronJob Role, and
/// writes on ClusterRoles, are gone: the shipped ClusterRoles carry them and the graph only binds.
#[test]
fn the_operator_holds_none_of_the_rights_the_shipped_roles_took_over() {
    let rules: Vec<PolicyRule> = rbac::cluster_rules()
        .into_iter()
        .chain(rbac::leader_election_rules())
        .collect();
    let any_name = rbac::permissions(&rules);
    let named = rbac::named_permissions(&rules);
    let held = |group: &str, resource: &str| {
        let verbs = |g: &String, r: &String| g == group && r == resource;
        let mut out: BTreeSet<String> = any_name
            .iter()
            .filter(|(g, r, _)| verbs(g, r))
            .map(|(_, _, v)| v.clone())
            .collect();
        out.extend(
            named
                .iter()
                .filter(|(g, r, _, _)| verbs(g, r))
                .map(|(_, _, v, _)| v.clone()),
        );
        out
    };
    for (group, resource) in [
        ("", "pods"),
        ("", "pods/exec"),
        ("", "pods/attach"),
        ("", "namespaces"),
    ] {
        assert!(
            held(group, resource).is_empty(),
            "the operator holds {:?} on {group}/{resource}",
            held(group, resource)
        );
    }
    // Token and access reviews authenticate /metrics requests only: create, nothing else.
    for (group, resource) in [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ] {
        assert_eq!(
            held(group, resource),
            BTreeSet::from(["create".to_owned()]),
            "{group}/{resource}"
        );
        assert!(
            rbac::METRICS_AUTH_CALLS
                .iter()
                .any(|c| c.resource == resource && c.why.contains("/metrics")),
            "{resource} is held for the metrics endpoint only"
        );
    }
    assert!(
        any_name.iter().all(|(_, r, _)| r != "clusterroles"),
        "ClusterRoles of any name: {any_name:?}"
    );
    let on_cluster_roles: BTreeSet<String> = named
        .iter()
        .filter(|(_, r, _, _)| r == "clusterroles")
        .map(|(_, _, v, _)| v.clone())
        .collect();
    assert_eq!(
        on_cluster_roles,
        BTreeSet::from(["bind".to_owned(), "get".to_owned()]),
        "no write verb on ClusterRoles"
    );
    let bound: BTreeSet<&str> = named
        .iter()
        .filter(|(_, r, v, _)| r == "clusterroles" && v == "bind")
        .map(|(_, _, _, name)| name.as_str())
        .collect();
    assert_eq!(bound, BTreeSet::from(SHIPPED_CLUSTER_ROLES));
    for (_, resource, verb) in &any_name {
        assert!(
            !["bind", "escalate", "impersonate"].contains(&verb.as_str()),
            "{verb} on {resource}"
        );
    }
}

/// The shipped ClusterRoles grant what the graph's own ClusterRoles and CronJob Role granted before
/// (the Feast operator's token-review rules plus reading namespaces and cluster RBAC; OIDC token
/// review; listing pods and exec), nothing more.
#[test]
fn shipped_cluster_roles_grant_what_the_feature_servers_and_cron_job_need() {
    let grants = |name: &str| -> BTreeSet<Permission> {
        let roles = rbac::shipped_cluster_roles();
        let role = roles
            .iter()
            .find(|role| role.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no shipped ClusterRole {name}"));
        let rules = role.rules.clone().unwrap_or_default();
        assert!(rules.iter().all(|r| r.resource_names.is_none()));
        rbac::permissions(&rules)
    };
    let set = |perms: &[(&str, &str, &str)]| -> BTreeSet<Permission> {
        perms.iter().map(|(g, r, v)| perm(g, r, v)).collect()
    };
    let rbac_group = "rbac.authorization.k8s.io";
    assert_eq!(
        grants("fieldwise-feast-token-review"),
        set(&[
            ("authentication.k8s.io", "tokenreviews", "create"),
            ("", "namespaces", "get"),
            ("", "namespaces", "list"),
            ("", "namespaces", "watch"),
            (rbac_group, "roles", "get"),
            (rbac_group, "roles", "list"),
            (rbac_group, "roles", "watch"),
            (rbac_group, "rolebindings", "list"),
            (rbac_group, "clusterroles", "get"),
            (rbac_group, "clusterroles", "list"),
            (rbac_group, "clusterrolebindings", "get"),
            (rbac_group, "clusterrolebindings", "list"),
        ])
    );
    assert_eq!(
        grants("fieldwise-feast-oidc-token-review"),
        set(&[("authentication.k8s.io", "tokenreviews", "create")])
    );
    assert_eq!(
        grants("fieldwise-feast-cronjob-exec"),
        set(&[("", "pods", "list"), ("", "pods/exec", "create")])
    );
    assert_eq!(
        rbac::shipped_cluster_roles().len(),
        SHIPPED_CLUSTER_ROLES.len()
    );
}

#[test]
fn rules_are_merged_one_per_group_and_verb_set() {
    let (named, rules): (Vec<PolicyRule>, Vec<PolicyRule>) = rbac::cluster_rules()
        .into_iter()
        .partition(|rule| rule.resource_names.is_some());
    let named_total: usize = named
        .iter()
        .map(|r| {
            r.resources.as_ref().map_or(0, Vec::len)
                * r.verbs.len()
                * r.resource_names.as_ref().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(
        named_total,
        rbac::named_permissions(&named).len(),
        "a named permission is granted twice"
    );
    let keys: BTreeSet<_> = rules
        .iter()
        .map(|r| (r.api_groups.clone(), r.verbs.clone()))
        .collect();
    assert_eq!(
        keys.len(),
        rules.len(),
        "duplicate group/verb sets: {rules:?}"
    );
    let total: usize = rules
        .iter()
        .map(|r| r.resources.as_ref().map_or(0, Vec::len) * r.verbs.len())
        .sum();
    assert_eq!(
        total,
        rbac::permissions(&rules).len(),
        "a permission is granted twice"
    );
}

#[test]
fn leader_election_role_is_exactly_what_kube_lease_manager_calls() {
    let rules = rbac::leader_election_rules();
    assert_eq!(
        rbac::permissions(&rules),
        BTreeSet::from([perm("coordination.k8s.io", "leases", "create")]),
        "only a create cannot name its Lease"
    );
    let named: BTreeSet<_> = ["get", "patch"]
        .map(|verb| {
            let (group, resource, verb) = perm("coordination.k8s.io", "leases", verb);
            (
                group,
                resource,
                verb,
                fieldwise::leader::LEASE_NAME.to_owned(),
            )
        })
        .into();
    assert_eq!(rbac::named_permissions(&rules), named);
}

#[test]
fn committed_kustomize_files_match_the_generator() {
    for (path, content) in generated_files(VERSION).expect("manifests generate") {
        let committed = read(&repo().join("deploy").join(&path));
        assert!(
            committed == content,
            "deploy/{} is stale: run `fieldwise manifests --output deploy`",
            path.display()
        );
    }
}

#[test]
fn committed_olm_bundle_matches_the_generator() {
    let root = repo().join("deploy/olm/bundle");
    let files = olm::bundle_files(VERSION).expect("bundle generates");
    for (path, content) in &files {
        assert!(
            read(&root.join(path)) == *content,
            "deploy/olm/bundle/{} is stale: run `fieldwise olm-bundle`",
            path.display()
        );
    }
    let expected: BTreeSet<PathBuf> = files.into_iter().map(|(path, _)| path).collect();
    assert_eq!(
        files_under(&root, &root),
        expected,
        "deploy/olm/bundle has files the generator does not write"
    );
}

fn files_under(root: &Path, dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(root, &path));
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.insert(relative.to_path_buf());
        }
    }
    out
}

/// The install as kubectl would apply it: `kubectl kustomize` when available, else the kustomization's
/// resources concatenated (what kustomize produces for a kustomization without transformers besides images).
fn rendered_install(dir: &str) -> Vec<Value> {
    let path = repo().join(dir);
    match Command::new("kubectl").arg("kustomize").arg(&path).output() {
        Ok(output) => {
            assert!(
                output.status.success(),
                "kubectl kustomize {dir}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            documents(&String::from_utf8_lossy(&output.stdout))
        }
        Err(error) => {
            println!(
                "kubectl not available ({error}); checking the kustomization's files directly"
            );
            resources_of(&path)
        }
    }
}

fn resources_of(dir: &Path) -> Vec<Value> {
    let kustomization = &documents(&read(&dir.join("kustomization.yaml")))[0];
    let mut out = Vec::new();
    for resource in kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let path = dir.join(resource);
        if path.is_dir() {
            out.extend(resources_of(&path));
        } else {
            out.extend(documents(&read(&path)));
        }
    }
    out
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the install"))
}

#[test]
fn kustomize_install_has_every_object_with_secure_settings() {
    let docs = rendered_install("deploy/default");
    find(&docs, "Namespace", NAMESPACE);
    for crd in fieldwise_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let installed = numbers_as_floats(find(&docs, "CustomResourceDefinition", &name));
        let generated = numbers_as_floats(&value(&crd));
        assert!(installed == generated, "CRD {name} differs from crds/");
    }
    assert_eq!(
        find(&docs, "ServiceAccount", rbac::SERVICE_ACCOUNT),
        &value(&rbac::service_account())
    );
    assert_eq!(
        find(&docs, "ClusterRole", rbac::CLUSTER_ROLE),
        &value(&rbac::cluster_role())
    );
    assert_eq!(
        find(&docs, "ClusterRoleBinding", rbac::CLUSTER_ROLE),
        &value(&rbac::cluster_role_binding())
    );
    assert_eq!(
        find(&docs, "Role", rbac::LEADER_ELECTION_ROLE),
        &value(&rbac::leader_election_role())
    );
    assert_eq!(
        find(&docs, "RoleBinding", rbac::LEADER_ELECTION_ROLE),
        &value(&rbac::leader_election_role_binding())
    );
    for role in rbac::shipped_cluster_roles() {
        let name = role.metadata.name.clone().unwrap_or_default();
        assert_eq!(find(&docs, "ClusterRole", &name), &value(&role));
    }
    assert_eq!(
        find(&docs, "ClusterRole", rbac::METRICS_READER_ROLE),
        &value(&rbac::metrics_reader_role())
    );
    assert_eq!(
        find(&docs, "Service", manager::METRICS_SERVICE)["spec"]["ports"][0]["port"],
        METRICS_PORT
    );
    check_deployment(find(&docs, "Deployment", manager::DEPLOYMENT));
    for doc in &docs {
        let cluster_scoped = matches!(
            doc["kind"].as_str(),
            Some("Namespace" | "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding")
        );
        let namespace = doc["metadata"]["namespace"].as_str();
        assert_eq!(
            namespace.is_none(),
            cluster_scoped,
            "namespace of {}",
            doc["metadata"]["name"]
        );
        assert!(cluster_scoped || namespace == Some(NAMESPACE));
    }
}

/// kustomize re-serialises YAML and writes `0.0` as `0`; compare numbers by value only.
fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, Value::from),
        Value::Array(items) => items.iter().map(numbers_as_floats).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
            .collect(),
        other => other.clone(),
    }
}

fn check_deployment(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], rbac::SERVICE_ACCOUNT);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_eq!(container["image"], format!("{IMAGE_REPOSITORY}:{VERSION}"));
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(security["privileged"].is_null() && security["capabilities"]["add"].is_null());
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][kind][resource].is_string(),
                "{kind}.{resource} missing"
            );
        }
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], METRICS_PORT);
    // The kubelet probes the plain-HTTP probe port; the metrics port needs a token.
    assert_eq!(container["ports"][1]["containerPort"], manager::PROBE_PORT);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"],
            manager::PROBE_PORT_NAME
        );
    }
    let args: Vec<&str> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args.first(), Some(&"run"));
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    assert!(
        args.contains(&format!("--metrics-bind-address=0.0.0.0:{METRICS_PORT}").as_str()),
        "{args:?}"
    );
    assert!(
        args.contains(
            &format!(
                "--health-probe-bind-address=0.0.0.0:{}",
                manager::PROBE_PORT
            )
            .as_str()
        ),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|arg| arg.starts_with("--metrics-insecure")),
        "the install serves metrics with authentication: {args:?}"
    );
    let env = |name: &str| {
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        env("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env("RELATED_IMAGE_FEATURE_SERVER")["value"],
        DEFAULT_FEATURE_SERVER_IMAGE
    );
    assert_eq!(
        env("RELATED_IMAGE_CRON_JOB")["value"],
        DEFAULT_CRON_JOB_IMAGE
    );
}

#[test]
fn servicemonitor_overlay_adds_a_monitor_of_the_metrics_service() {
    let docs = rendered_install("deploy/overlays/servicemonitor");
    let monitor = find(&docs, "ServiceMonitor", "fieldwise");
    let service = find(&docs, "Service", manager::METRICS_SERVICE);
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    for (key, wanted) in selector {
        assert_eq!(
            &service["metadata"]["labels"][key], wanted,
            "the monitor does not select the metrics Service"
        );
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    // The metrics port speaks HTTPS and wants the scraper's ServiceAccount token.
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(endpoint["bearerTokenFile"], manager::SCRAPER_TOKEN_FILE);
    assert_eq!(endpoint["tlsConfig"]["insecureSkipVerify"], true);
    assert_eq!(docs.len(), rendered_install("deploy/default").len() + 1);
}

#[test]
fn every_part_prints_parseable_yaml() {
    for part in Part::ALL {
        let yaml = part.yaml(VERSION).expect("part renders");
        assert!(!documents(&yaml).is_empty(), "{part:?} is empty");
    }
}

// ---- OLM bundle ----

fn bundle_file(path: &str) -> String {
    read(&repo().join("deploy/olm/bundle").join(path))
}

fn csv() -> Value {
    documents(&bundle_file(
        "manifests/fieldwise.clusterserviceversion.yaml",
    ))
    .remove(0)
}

#[test]
fn bundle_annotations_declare_a_registry_v1_bundle() {
    let annotations = documents(&bundle_file("metadata/annotations.yaml")).remove(0);
    let annotations = annotations["annotations"]
        .as_object()
        .expect("annotations")
        .clone();
    for (key, wanted) in [
        (
            "operators.operatorframework.io.bundle.mediatype.v1",
            "registry+v1",
        ),
        (
            "operators.operatorframework.io.bundle.manifests.v1",
            "manifests/",
        ),
        (
            "operators.operatorframework.io.bundle.metadata.v1",
            "metadata/",
        ),
        (
            "operators.operatorframework.io.bundle.package.v1",
            "fieldwise",
        ),
        (
            "operators.operatorframework.io.test.config.v1",
            "tests/scorecard/",
        ),
    ] {
        assert_eq!(
            annotations.get(key).and_then(Value::as_str),
            Some(wanted),
            "{key}"
        );
    }
    let channels = annotations["operators.operatorframework.io.bundle.channels.v1"]
        .as_str()
        .expect("channels");
    let default = annotations["operators.operatorframework.io.bundle.channel.default.v1"]
        .as_str()
        .expect("default");
    assert!(
        channels.split(',').any(|c| c == default),
        "default channel {default} not in {channels}"
    );
    let dockerfile = bundle_file("bundle.Dockerfile");
    for (key, value) in &annotations {
        let label = format!("LABEL {key}={}", value.as_str().unwrap_or_default());
        assert!(
            dockerfile.contains(&label),
            "bundle.Dockerfile lacks {label}"
        );
    }
    for dir in ["manifests", "metadata", "tests/scorecard"] {
        assert!(
            dockerfile.contains(&format!("COPY {dir} /{dir}/")),
            "bundle.Dockerfile does not copy {dir}"
        );
        assert!(repo().join("deploy/olm/bundle").join(dir).is_dir());
    }
}

#[test]
fn csv_has_the_required_fields() {
    let csv = csv();
    assert_eq!(csv["apiVersion"], "operators.coreos.com/v1alpha1");
    assert_eq!(csv["metadata"]["name"], format!("fieldwise.v{VERSION}"));
    let spec = &csv["spec"];
    assert_eq!(spec["version"], VERSION);
    for field in ["displayName", "description", "minKubeVersion", "maturity"] {
        assert!(
            spec[field].as_str().is_some_and(|s| !s.is_empty()),
            "spec.{field}"
        );
    }
    assert!(spec["provider"]["name"].is_string());
    let modes: Vec<(String, bool)> = serde_json::from_value(Value::Array(
        spec["installModes"]
            .as_array()
            .expect("installModes")
            .iter()
            .map(|m| serde_json::json!([m["type"], m["supported"]]))
            .collect(),
    ))
    .expect("install modes");
    assert_eq!(
        modes,
        [
            ("OwnNamespace", true),
            ("SingleNamespace", true),
            ("MultiNamespace", true),
            ("AllNamespaces", true)
        ]
        .map(|(t, s)| (t.to_owned(), s))
    );
    assert_eq!(spec["install"]["strategy"], "deployment");
    let install = &spec["install"]["spec"];
    // OLM grants `permissions` in each target namespace (and the install namespace, the leader
    // Lease's), or cluster-wide in AllNamespaces mode; `clusterPermissions` always cluster-wide.
    let namespaced = rbac::merge(
        rbac::namespaced_rules()
            .into_iter()
            .chain(rbac::leader_election_rules()),
    );
    assert_eq!(
        install["permissions"][0]["rules"],
        serde_json::to_value(namespaced).expect("rules")
    );
    assert_eq!(
        install["clusterPermissions"][0]["rules"],
        serde_json::to_value(rbac::cluster_scoped_rules()).expect("rules")
    );
    assert_eq!(
        install["clusterPermissions"][0]["serviceAccountName"],
        rbac::SERVICE_ACCOUNT
    );
    let deployment = &install["deployments"][0];
    assert_eq!(deployment["name"], manager::DEPLOYMENT);
    check_deployment(&serde_json::json!({"spec": deployment["spec"]}));
    let images: BTreeSet<&str> = spec["relatedImages"]
        .as_array()
        .expect("relatedImages")
        .iter()
        .filter_map(|i| i["image"].as_str())
        .collect();
    let container_images = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("RELATED_IMAGE_"))
        })
        .filter_map(|e| e["value"].as_str())
        .chain(deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str());
    for image in container_images {
        assert!(images.contains(image), "relatedImages lacks {image}");
    }
    assert_eq!(
        csv["metadata"]["annotations"]["containerImage"],
        format!("{IMAGE_REPOSITORY}:{VERSION}")
    );
}

#[test]
fn owned_crds_are_in_the_bundle_and_identical_to_crds_dir() {
    let csv = csv();
    let owned = csv["spec"]["customresourcedefinitions"]["owned"]
        .as_array()
        .expect("owned")
        .clone();
    for crd in fieldwise_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let file = olm::crd_file_name(&crd);
        assert_eq!(
            bundle_file(&format!("manifests/{file}")),
            read(&repo().join("crds").join(&file)),
            "{file} differs from crds/"
        );
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let entry = owned
                .iter()
                .find(|o| o["name"] == name.as_str() && o["version"] == version.name.as_str())
                .unwrap_or_else(|| panic!("{name} {} is not owned by the CSV", version.name));
            assert_eq!(entry["kind"], crd.spec.names.kind.as_str());
            let spec_paths = descriptor_paths(&entry["specDescriptors"]);
            let status_paths = descriptor_paths(&entry["statusDescriptors"]);
            let schema = serde_json::to_value(&version.schema).expect("schema")["openAPIV3Schema"]
                ["properties"]
                .clone();
            assert_eq!(
                spec_paths,
                keys(&schema["spec"]["properties"]),
                "spec descriptors"
            );
            assert_eq!(
                status_paths,
                keys(&schema["status"]["properties"]),
                "status descriptors"
            );
            assert!(!entry["resources"].as_array().expect("resources").is_empty());
        }
    }
}

fn descriptor_paths(descriptors: &Value) -> BTreeSet<String> {
    descriptors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect()
}

fn keys(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn every_alm_example_is_a_valid_feature_store_or_prism_cluster() {
    let csv = csv();
    let text = csv["metadata"]["annotations"]["alm-examples"]
        .as_str()
        .expect("alm-examples is a string");
    let examples: Vec<Value> = serde_json::from_str(text).expect("alm-examples is JSON");
    assert_eq!(examples.len(), olm::SAMPLES.len());
    let mut kinds = BTreeSet::new();
    for example in &examples {
        assert!(
            example["metadata"].get("namespace").is_none(),
            "alm-examples name no namespace"
        );
        let result = match (example["apiVersion"].as_str(), example["kind"].as_str()) {
            (Some("feast.dev/v1"), Some("FeatureStore")) => {
                fieldwise_api::validate::validate_feature_store(example)
            }
            (Some("prism.io/v1alpha1"), Some("PrismCluster")) => {
                fieldwise_api::validate::validate_prism_cluster(example)
            }
            other => panic!("unexpected alm-example kind {other:?}"),
        };
        if let Err(rejection) = result {
            panic!(
                "alm-example {} is invalid: {}",
                example["metadata"]["name"], rejection.message
            );
        }
        kinds.insert(example["kind"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["FeatureStore".to_owned(), "PrismCluster".to_owned()])
    );
}

#[test]
fn every_sample_is_an_alm_example() {
    let listed: BTreeSet<&str> = olm::SAMPLES.iter().map(|(name, _)| *name).collect();
    for entry in std::fs::read_dir(repo().join("deploy/samples"))
        .expect("samples")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let has_custom_resource = documents(&read(&entry.path()))
            .iter()
            .any(|d| d["kind"] == "FeatureStore" || d["kind"] == "PrismCluster");
        assert_eq!(
            has_custom_resource,
            listed.contains(name.as_str()),
            "deploy/samples/{name} vs olm::SAMPLES"
        );
    }
}

#[test]
fn scorecard_config_runs_the_basic_and_olm_suites() {
    let config = documents(&bundle_file("tests/scorecard/config.yaml")).remove(0);
    assert_eq!(config["kind"], "Configuration");
    let tests: BTreeSet<&str> = config["stages"][0]["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter_map(|t| t["entrypoint"][1].as_str())
        .collect();
    for test in [
        "basic-check-spec",
        "olm-bundle-validation",
        "olm-crds-have-validation",
        "olm-spec-descriptors",
        "olm-status-descriptors",
    ] {
        assert!(tests.contains(test), "scorecard lacks {test}");
    }
}

#[test]
fn olm_bundle_rejects_a_bad_version() {
    assert!(olm::bundle_files("v1").is_err());
    assert!(olm::bundle_files("1.2").is_err());
    assert!(olm::bundle_files("1.2.x").is_err());
    assert!(olm::bundle_files("1.2.3").is_ok());
}

/// What OperatorHub shows and OLM upgrades by: who makes it and where its source is, an icon, when
/// it was made, the stable channel, and the upgrade edge (`replaces`, `olm.skipRange`).
#[test]
fn the_csv_names_its_project_and_how_it_upgrades() {
    let csv = csv();
    let annotations = &csv["metadata"]["annotations"];
    assert_eq!(annotations["repository"], olm::REPOSITORY_URL);
    assert_eq!(annotations["createdAt"], olm::CREATED_AT);
    assert!(
        annotations["support"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(annotations["olm.skipRange"], format!("<{VERSION}"));
    assert_eq!(csv["spec"]["provider"]["url"], olm::REPOSITORY_URL);
    let maintainers = csv["spec"]["maintainers"].as_array().expect("maintainers");
    assert!(
        maintainers
            .iter()
            .all(|m| m["name"].is_string() && m["email"].as_str().is_some_and(|e| e.contains('@'))),
        "{maintainers:?}"
    );
    let icon = &csv["spec"]["icon"][0];
    assert_eq!(icon["mediatype"], "image/svg+xml");
    let svg = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        icon["base64data"].as_str().expect("base64data"),
    )
    .expect("base64");
    assert!(String::from_utf8(svg).expect("UTF-8").starts_with("<svg"));
    assert_eq!(
        csv["spec"].get("replaces"),
        None,
        "the first release replaces nothing"
    );
    let metadata = bundle_file("metadata/annotations.yaml");
    assert!(metadata.contains("operators.operatorframework.io.bundle.channels.v1: stable"));
    assert!(metadata.contains("operators.operatorframework.io.bundle.channel.default.v1: stable"));
}

#[test]
fn a_later_release_replaces_the_previous_one_and_names_its_image_by_digest() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let release = olm::Release {
        version: "0.2.0".into(),
        replaces: Some("0.1.0".into()),
        created_at: "2027-01-01T00:00:00Z".into(),
        operator_digest: Some(digest.clone()),
    };
    let csv = olm::release_cluster_service_version(&release).expect("a CSV");
    let by_digest = format!("{IMAGE_REPOSITORY}@{digest}");
    assert_eq!(csv["spec"]["replaces"], "fieldwise.v0.1.0");
    assert_eq!(csv["metadata"]["annotations"]["olm.skipRange"], "<0.2.0");
    assert_eq!(
        csv["metadata"]["annotations"]["createdAt"],
        "2027-01-01T00:00:00Z"
    );
    assert_eq!(
        csv["metadata"]["annotations"]["containerImage"],
        by_digest.as_str()
    );
    assert_eq!(csv["spec"]["relatedImages"][0]["image"], by_digest.as_str());
    let container = &csv["spec"]["install"]["spec"]["deployments"][0]["spec"]["template"]["spec"]["containers"]
        [0];
    assert_eq!(
        container["image"],
        by_digest.as_str(),
        "the Deployment runs what the CSV names"
    );
    for (replaces, digest) in [
        ("0.2.0", None),
        ("0.3.0", None),
        ("0.1.0", Some("sha256:short")),
    ] {
        let bad = olm::Release {
            replaces: Some(replaces.into()),
            operator_digest: digest.map(str::to_owned),
            ..release.clone()
        };
        assert!(olm::release_bundle_files(&bad).is_err(), "{bad:?}");
    }
}

/// The generated table between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->` in deploy/README.md
/// is `generated` (`FIELDWISE_BLESS=1` writes it there).
fn assert_readme_table(marker: &str, generated: &str) {
    // Two tests bless the one file: one at a time.
    static README: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _only_writer = README
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let begin = format!("<!-- {marker}:begin -->\n");
    let end_marker = format!("<!-- {marker}:end -->");
    let path = repo().join("deploy/README.md");
    let readme = read(&path);
    let (Some(start), Some(end)) = (readme.find(&begin), readme.find(&end_marker)) else {
        panic!("deploy/README.md has no {marker} markers");
    };
    let start = start + begin.len();
    if std::env::var_os("FIELDWISE_BLESS").is_some_and(|v| v == "1") {
        let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).expect("README written");
        return;
    }
    assert!(
        readme[start..end] == *generated,
        "deploy/README.md's {marker} table is stale: FIELDWISE_BLESS=1 cargo test --test deploy_install readme"
    );
}

/// deploy/README.md's table of every permission and why is the generator's.
#[test]
fn the_readme_lists_every_permission_and_why() {
    let generated = rbac::permission_table();
    assert_readme_table("permissions", &generated);
    let row_of = |group: &str, resource: &str, names: &str| {
        let group = if group.is_empty() { "core" } else { group };
        generated
            .lines()
            .find(|line| {
                line.starts_with(&format!("| {group} | {resource} |"))
                    && line.split(" | ").nth(3) == Some(names)
            })
            .unwrap_or_else(|| panic!("no row for {group} {resource} ({names})"))
            .to_owned()
    };
    let has_verb = |row: &str, verb: &str| {
        row.split(" | ")
            .nth(2)
            .is_some_and(|verbs| verbs.split(' ').any(|v| v == verb))
    };
    let rules: Vec<PolicyRule> = rbac::cluster_rules()
        .into_iter()
        .chain(rbac::leader_election_rules())
        .collect();
    for (group, resource, verb) in rbac::permissions(&rules) {
        let row = row_of(&group, &resource, "any");
        assert!(has_verb(&row, &verb), "{row}");
    }
    for (group, resource, verb, name) in rbac::named_permissions(&rules) {
        let row = generated.lines().find(|line| {
            let group = if group.is_empty() { "core" } else { &group };
            line.starts_with(&format!("| {group} | {resource} |"))
                && line.contains(&format!("`{name}`"))
                && has_verb(line, &verb)
        });
        assert!(row.is_some(), "no row grants {verb} on {resource} {name}");
    }
}

/// deploy/README.md's table of the shipped ClusterRoles is the generator's.
#[test]
fn the_readme_lists_the_shipped_cluster_roles() {
    let generated = rbac::shipped_roles_table();
    for name in SHIPPED_CLUSTER_ROLES {
        assert!(generated.contains(&format!("| {name} |")), "{generated}");
    }
    assert_readme_table("shipped-roles", &generated);
}

/// The OLM bundle installs the shipped ClusterRoles as extra manifests, as the kustomize install does.
#[test]
fn the_olm_bundle_ships_the_cluster_roles_feature_stores_bind() {
    let files = olm::bundle_files(VERSION).expect("bundle generates");
    for role in rbac::shipped_cluster_roles() {
        let name = role.metadata.name.clone().unwrap_or_default();
        let path = PathBuf::from(format!(
            "manifests/{name}_rbac.authorization.k8s.io_v1_clusterrole.yaml"
        ));
        let (_, text) = files
            .iter()
            .find(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("no {}", path.display()));
        assert_eq!(documents(text), [value(&role)]);
    }
}
