//! Background processes of the control plane: started in process groups of their own with their output
//! in `logs/<name>.log` and their pid in `pids/<name>`, stopped by pid.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{ClusterError, logs_dir};

/// A started component: its child handle tells whether it has exited while we wait for it.
pub struct Started {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Started {
    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(error) => Some(format!("{} cannot be waited for: {error}", self.name)),
        }
    }
}

/// Starts `binaries/<name> args...` in the background.
pub fn spawn(
    binaries: &Path,
    state: &Path,
    name: &'static str,
    args: &[String],
) -> Result<Started, ClusterError> {
    let log = logs_dir(state).join(format!("{name}.log"));
    let output =
        File::create(&log).map_err(ClusterError::io(format!("creating {}", log.display())))?;
    let errors = output
        .try_clone()
        .map_err(ClusterError::io(format!("opening {}", log.display())))?;
    let child = Command::new(binaries.join(name))
        .args(args)
        .current_dir(state)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        // Its own process group: a Ctrl-C meant for the command that started it does not reach it.
        .process_group(0)
        .spawn()
        .map_err(ClusterError::io(format!("starting {name}")))?;
    let pids = pids_dir(state);
    std::fs::write(pids.join(name), child.id().to_string())
        .map_err(ClusterError::io(format!("writing the pid of {name}")))?;
    Ok(Started { name, child, log })
}

fn pids_dir(state: &Path) -> PathBuf {
    state.join("pids")
}

/// Creates the directories [`spawn`] writes to.
pub fn prepare(state: &Path) -> Result<(), ClusterError> {
    for dir in [logs_dir(state), pids_dir(state)] {
        std::fs::create_dir_all(&dir)
            .map_err(ClusterError::io(format!("creating {}", dir.display())))?;
    }
    Ok(())
}

/// Stops every process whose pid is recorded under `state` (SIGTERM, then SIGKILL after 20 s), in the
/// reverse order of their start. A recorded pid that now belongs to another program is left alone.
pub fn stop_all(state: &Path) -> Result<(), ClusterError> {
    let Ok(entries) = std::fs::read_dir(pids_dir(state)) else {
        return Ok(());
    };
    let mut recorded: Vec<(std::time::SystemTime, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let started = entry.metadata().ok()?.modified().ok()?;
            let pid = std::fs::read_to_string(entry.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((started, pid))
        })
        .collect();
    recorded.sort();
    let ours: Vec<u32> = recorded
        .into_iter()
        .rev()
        .map(|(_, pid)| pid)
        .filter(|pid| runs_from(*pid, state))
        .collect();
    for pid in &ours {
        signal("TERM", *pid);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while ours.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in ours.iter().filter(|pid| alive(**pid)) {
        signal("KILL", *pid);
    }
    Ok(())
}

/// Whether `pid` is a process started for this state directory (its working directory is `state`), so
/// a pid recycled by an unrelated program is never signalled.
fn runs_from(pid: u32, state: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    match (cwd, state.canonicalize()) {
        (Ok(cwd), Ok(state)) => cwd == state,
        _ => false,
    }
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn signal(name: &str, pid: u32) {
    // `kill` spares this crate unsafe code; a failure means the process is already gone.
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The last lines of a log, for an error message.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|line| format!("\n    | {line}"))
        .collect()
}
