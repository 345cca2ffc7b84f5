//! The key conformance cases driven through the real `kubectl` (spec §4–§6): server-side apply with
//! and without client validation, conflicts, scale, tables, CRDs with CEL errors, patch no-ops,
//! delete and wait. Skipped, with a message, when kubectl is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fieldwise_e2e::Options;
use fieldwise_e2e::testkit::TestError;

use crate::target::Server;
use serde_json::Value;

/// Output of one kubectl run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Kubectl {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

fn kubectl_installed() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Kubectl {
    fn new(emu: &Server, test: &str) -> Result<Self, TestError> {
        let dir =
            std::env::temp_dir().join(format!("fieldwise-kubectl-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        emu.write_kubeconfig(&kubeconfig)?;
        Ok(Kubectl { dir, kubeconfig })
    }

    fn file(&self, name: &str, yaml: &str) -> Result<PathBuf, TestError> {
        let p = self.dir.join(name);
        std::fs::write(&p, yaml)?;
        Ok(p)
    }

    /// Runs kubectl off the async runtime so the in-process emulator keeps serving.
    async fn run(&self, args: &[&str]) -> Result<Run, TestError> {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join("cache"));
        cmd.args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        Ok(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        })
    }

    async fn ok(&self, args: &[&str]) -> Result<String, TestError> {
        let r = self.run(args).await?;
        if r.code != 0 {
            return Err(format!(
                "kubectl {args:?} failed ({}): {}{}",
                r.code, r.stdout, r.stderr
            )
            .into());
        }
        Ok(r.stdout)
    }

    async fn json(&self, args: &[&str]) -> Result<Value, TestError> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.ok(&a).await?)?)
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

macro_rules! require_kubectl {
    () => {
        if !kubectl_installed() {
            eprintln!(
                "SKIPPED: kubectl is not installed; the kubectl conformance cases did not run"
            );
            return Ok(());
        }
    };
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.27
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply() -> Result<(), TestError> {
    require_kubectl!();
    let (emu, _) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&emu, "ssa")?;
    let f = k.file("deploy.yaml", DEPLOYMENT)?;
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&f)])
        .await?;
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            path_str(&f),
        ])
        .await?;
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let d = k
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await?;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let mf = d["metadata"]["managedFields"]
        .as_array()
        .ok_or("no managedFields")?;
    assert!(
        mf.iter()
            .any(|e| e["manager"] == "kubectl" && e["operation"] == "Apply")
    );

    let other = k.file(
        "other.yaml",
        &DEPLOYMENT.replace("replicas: 2", "replicas: 5"),
    )?;
    let r = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            path_str(&other),
        ])
        .await?;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Please review the fields above--they currently have other managers."),
        "{}",
        r.stderr
    );
    let forced = k
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            path_str(&other),
        ])
        .await?;
    assert_eq!(forced.trim(), "deployment.apps/web serverside-applied");

    let scaled = k.ok(&["scale", "deployment/web", "--replicas=4"]).await?;
    assert_eq!(scaled.trim(), "deployment.apps/web scaled");
    let d = k
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await?;
    assert_eq!(d["spec"]["replicas"], 4);
    let mf = d["metadata"]["managedFields"]
        .as_array()
        .ok_or("no managedFields")?;
    assert!(
        mf.iter()
            .any(|e| e["manager"] == "kubectl" && e["subresource"] == "scale"),
        "{mf:?}"
    );

    let table = k.ok(&["get", "deployments"]).await?;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("web"), "{table}");
    let missing = k.run(&["get", "deployment", "nope"]).await?;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patch_delete_wait() -> Result<(), TestError> {
    require_kubectl!();
    let (emu, _) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&emu, "patch")?;
    let f = k.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  a: \"1\"\n",
    )?;
    assert_eq!(
        k.ok(&["create", "-f", path_str(&f)]).await?.trim(),
        "configmap/c1 created"
    );
    let p = k
        .ok(&[
            "patch",
            "configmap",
            "c1",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .await?;
    assert_eq!(p.trim(), "configmap/c1 patched");
    let p = k
        .ok(&[
            "patch",
            "configmap",
            "c1",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ])
        .await?;
    assert_eq!(p.trim(), "configmap/c1 patched (no change)");
    let waiter = {
        let args: Vec<String> = ["wait", "--for=delete", "configmap/c1", "--timeout=20s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let kubeconfig = k.kubeconfig.clone();
        let cache = k.dir.join("cache-wait");
        tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .arg("--cache-dir")
                .arg(cache)
                .args(args)
                .output()
        })
    };
    let d = k.ok(&["delete", "configmap", "c1", "--wait=false"]).await?;
    assert_eq!(d.trim(), "configmap \"c1\" deleted");
    let waited = tokio::time::timeout(Duration::from_secs(30), waiter).await???;
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    Ok(())
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.replicas <= 10
              message: at most 10 replicas
            properties:
              replicas: {type: integer, minimum: 0}
          status:
            type: object
            properties:
              replicas: {type: integer}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_custom_resources() -> Result<(), TestError> {
    require_kubectl!();
    let Some((emu, _)) =
        crate::target::unless_diverging(crate::target::start(Options::default())).await?
    else {
        return Ok(());
    };
    let k = Kubectl::new(&emu, "crd")?;
    let crd = k.file("crd.yaml", CRD)?;
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&crd)])
        .await?;
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await?;
    let w = k.file(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  replicas: 3\n",
    )?;
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&w)])
        .await?;
    assert_eq!(out.trim(), "widget.example.com/w1 serverside-applied");
    let table = k.ok(&["get", "widgets"]).await?;
    let header = table.lines().next().unwrap_or_default().to_string();
    // The CRD's printer columns replace the default AGE column.
    assert!(
        header.contains("NAME") && header.contains("REPLICAS") && !header.contains("AGE"),
        "{table}"
    );
    let bad = k.file(
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  replicas: 11\n",
    )?;
    let r = k
        .run(&["apply", "--server-side", "-f", path_str(&bad)])
        .await?;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "The Widget \"w1\" is invalid: spec: Invalid value: \"object\": at most 10 replicas"
        ),
        "{}",
        r.stderr
    );
    let scaled = k.ok(&["scale", "widget/w1", "--replicas=5"]).await?;
    assert_eq!(scaled.trim(), "widget.example.com/w1 scaled");
    let r = k.run(&["scale", "widget/w1", "--replicas=12"]).await?;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("at most 10 replicas"), "{}", r.stderr);
    let got = k.json(&["get", "wd", "w1"]).await?;
    assert_eq!(got["spec"]["replicas"], 5);
    let st = k.file(
        "status.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nstatus:\n  replicas: 5\n",
    )?;
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--subresource=status",
            "-f",
            path_str(&st),
        ])
        .await?;
    assert_eq!(out.trim(), "widget.example.com/w1 serverside-applied");
    let got = k
        .json(&["get", "wd", "w1", "--show-managed-fields"])
        .await?;
    assert_eq!(got["status"]["replicas"], 5);
    let mf = got["metadata"]["managedFields"]
        .as_array()
        .ok_or("no managedFields")?;
    assert!(
        mf.iter()
            .any(|e| e["subresource"] == "status" && e["operation"] == "Apply"),
        "{mf:?}"
    );
    Ok(())
}

/// `kubectl get -w`: the header once, then one row per change (Table watch events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch() -> Result<(), TestError> {
    require_kubectl!();
    let (emu, _) = crate::target::start(Options::default()).await?;
    let k = Kubectl::new(&emu, "getw")?;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .arg("--cache-dir")
        .arg(k.dir.join("cache-w"))
        .args(["get", "configmaps", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // An empty namespace prints nothing until the first event; create one and expect a header and a row.
    let f = k.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w1\n",
    )?;
    k.ok(&["apply", "--server-side", "-f", path_str(&f)])
        .await?;
    let mut lines = Vec::new();
    while let Some(l) = next_line(&mut rx).await {
        lines.push(l);
        if lines.iter().any(|l| l.starts_with("w1")) {
            break;
        }
    }
    let f2 = k.file(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w2\n",
    )?;
    k.ok(&["apply", "--server-side", "-f", path_str(&f2)])
        .await?;
    while let Some(l) = next_line(&mut rx).await {
        lines.push(l);
        if l_is(&lines, "w2") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("NAME")).count(),
        1,
        "{lines:?}"
    );
    assert!(l_is(&lines, "w1") && l_is(&lines, "w2"), "{lines:?}");
    Ok(())
}

fn l_is(lines: &[String], name: &str) -> bool {
    lines
        .iter()
        .any(|l| l.split_whitespace().next() == Some(name))
}

async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> Option<String> {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .ok()
        .flatten()
}
