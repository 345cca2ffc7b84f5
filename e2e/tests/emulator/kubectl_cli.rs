//! The real `kubectl` against a test's server (an emulator, or the real one: see `target`), for the
//! test files added after `conformance_kubectl` (which keeps its own copy). Tests skip, with one line, when kubectl is not installed.

use std::path::PathBuf;
use std::process::Command;

use fieldwise_e2e::testkit::TestError;
use serde_json::Value;

use crate::target::Server;

/// Output of one kubectl run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Kubectl {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

pub fn kubectl_installed() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Returns early from a test (passing) with one line on stderr when kubectl is absent.
macro_rules! skip_without_kubectl {
    () => {
        if !$crate::kubectl_cli::kubectl_installed() {
            eprintln!("SKIPPED: kubectl is not installed; this kubectl test did not run");
            return Ok(());
        }
    };
}
pub(crate) use skip_without_kubectl;

impl Kubectl {
    pub fn new(server: &Server, test: &str) -> Result<Self, TestError> {
        let dir = std::env::temp_dir().join(format!(
            "fieldwise-kubectl-cli-{test}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig)?;
        Ok(Kubectl { dir, kubeconfig })
    }

    /// The arguments every run starts with (kubeconfig and cache directory).
    pub fn global_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            "--kubeconfig".into(),
            self.kubeconfig.clone().into(),
            "--cache-dir".into(),
            self.dir.join("cache").into(),
        ]
    }

    /// Runs kubectl off the async runtime so the in-process emulator keeps serving.
    pub async fn run(&self, args: &[&str]) -> Result<Run, TestError> {
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

    /// Runs kubectl and fails the test unless it exits 0; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> Result<String, TestError> {
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

    /// `kubectl ARGS -o json`, parsed.
    pub async fn json(&self, args: &[&str]) -> Result<Value, TestError> {
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
