//! The two operators as processes of their own against the kubeconfig, with what they cost read
//! from `/proc/<pid>`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

/// Which operator, and how its requests are told apart in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Feast,
    Fieldwise,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Feast => "Feast operator",
            Kind::Fieldwise => "fieldwise",
        }
    }

    /// The start of its `User-Agent`: client-go's default is the binary's name (`manager`), and
    /// fieldwise's is `fieldwise/<version>`.
    pub fn agent(self) -> &'static str {
        match self {
            Kind::Feast => "manager/",
            Kind::Fieldwise => "fieldwise/",
        }
    }

    /// The letter in its namespaces' names.
    pub fn letter(self) -> char {
        match self {
            Kind::Feast => 'f',
            Kind::Fieldwise => 'w',
        }
    }
}

/// CPU time and memory of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub cpu_seconds: f64,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

pub struct Operator {
    pub kind: Kind,
    child: tokio::process::Child,
    pid: u32,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `binary` against `kubeconfig`, its log (stdout and stderr) in a file of its own. The
    /// Feast operator gets the flags of a manager outside the cluster (no leader election, no
    /// metrics or probe listeners); fieldwise gets `run` and its defaults.
    pub fn start(kind: Kind, binary: &Path, kubeconfig: &Path) -> Self {
        let log = std::env::temp_dir().join(format!(
            "feast-performance-{}-{}.log",
            kind.letter(),
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = tokio::process::Command::new(binary);
        match kind {
            Kind::Feast => command.arg("--kubeconfig").arg(kubeconfig).args([
                "--leader-elect=false",
                "--metrics-bind-address=0",
                "--health-probe-bind-address=0",
            ]),
            Kind::Fieldwise => command.arg("run").env("KUBECONFIG", kubeconfig),
        };
        // Whatever the calling shell set for either must not change their defaults.
        for variable in [
            "RELATED_IMAGE_FEATURE_SERVER",
            "RELATED_IMAGE_CRON_JOB",
            "OIDC_ISSUER_URL",
            "WATCH_NAMESPACE",
            "RUST_LOG",
            "POD_NAME",
            "FIELDWISE_TAKE_OVER_FROM",
        ] {
            command.env_remove(variable);
        }
        if kind == Kind::Feast {
            command.env_remove("KUBECONFIG");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let pid = child.id().expect("a running child");
        eprintln!(
            "feast_performance: {} (pid {pid}) logs to {}",
            kind.name(),
            log.display()
        );
        Self {
            kind,
            child,
            pid,
            log,
        }
    }

    pub fn cost(&self) -> Cost {
        process_cost(self.pid)
    }

    /// Fails the run when the operator has exited (a port in use, a bad kubeconfig): its figures
    /// would be meaningless.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log: {}",
                self.kind.name(),
                self.log.display()
            );
        }
    }

    /// SIGTERM, as the kubelet stops a pod; SIGKILL if it has not exited after 30 s.
    pub async fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.pid).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet (we hold `child`).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let exited = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        if exited.is_err() {
            eprintln!(
                "feast_performance: {} ignored SIGTERM for 30 s; killed",
                self.kind.name()
            );
            let _ = self.child.kill().await;
        }
    }
}

/// CPU seconds of the control plane's processes, which share the machine with the operator: what
/// serving the operator's requests costs them shows here.
#[derive(Clone, Copy, Debug, Default)]
pub struct ControlPlaneCpu {
    pub apiserver: f64,
    pub etcd: f64,
    /// kube-controller-manager, kube-scheduler and kwok: the pods and their status.
    pub others: f64,
}

impl ControlPlaneCpu {
    /// Read now, from the pids `e2e/cluster/up` recorded in the state directory beside `kubeconfig`.
    pub fn now(kubeconfig: &Path) -> Self {
        let pids = kubeconfig.parent().expect("a state directory").join("pids");
        let cpu = |name: &str| {
            std::fs::read_to_string(pids.join(name))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .map_or(0.0, |pid| process_cost(pid).cpu_seconds)
        };
        Self {
            apiserver: cpu("kube-apiserver"),
            etcd: cpu("etcd"),
            others: cpu("kube-controller-manager") + cpu("kube-scheduler") + cpu("kwok"),
        }
    }

    /// What was spent since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            apiserver: self.apiserver - earlier.apiserver,
            etcd: self.etcd - earlier.etcd,
            others: self.others - earlier.others,
        }
    }
}

/// CPU (utime + stime, every thread) and memory (VmHWM, VmRSS) of process `pid`.
fn process_cost(pid: u32) -> Cost {
    let cost = fieldwise_e2e::procfs::process_cost(&format!("/proc/{pid}"));
    Cost {
        cpu_seconds: cost.cpu_seconds,
        peak_rss_kib: cost.peak_rss_kib,
        rss_kib: cost.rss_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spends CPU until `/proc` shows some for `pid` (its clock ticks every 10 ms, and a loaded
    /// machine may not run us for a while): at most 10 s.
    fn spend_cpu_until_counted(pid: u32) -> Cost {
        let started = std::time::Instant::now();
        let mut cost = process_cost(pid);
        while cost.cpu_seconds == 0.0 && started.elapsed() < Duration::from_secs(10) {
            std::hint::black_box((0..10_000u64).sum::<u64>());
            cost = process_cost(pid);
        }
        cost
    }

    #[test]
    fn the_cost_of_this_process_is_read() {
        let cost = spend_cpu_until_counted(std::process::id());
        assert!(cost.cpu_seconds > 0.0, "{cost:?}");
        assert!(
            cost.peak_rss_kib >= cost.rss_kib && cost.rss_kib > 0,
            "{cost:?}"
        );
    }

    #[test]
    fn the_control_plane_is_found_by_its_recorded_pids() {
        let state = std::env::temp_dir().join(format!("pids-test-{}", std::process::id()));
        std::fs::create_dir_all(state.join("pids")).unwrap();
        // This process stands for the API server; the others were never started.
        let pid = std::process::id();
        std::fs::write(state.join("pids/kube-apiserver"), pid.to_string()).unwrap();
        spend_cpu_until_counted(pid);
        let cpu = ControlPlaneCpu::now(&state.join("kubeconfig"));
        assert!(cpu.apiserver > 0.0, "{cpu:?}");
        assert_eq!((cpu.etcd, cpu.others), (0.0, 0.0));
        assert_eq!(cpu.since(cpu).apiserver, 0.0);
        std::fs::remove_dir_all(&state).unwrap();
    }
}
