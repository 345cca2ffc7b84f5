//! Which CPUs the operator child and the bench process run on.
//!
//! Against a real cluster the API server runs on other machines. Here the emulator shares this
//! machine's CPUs with the operator, and when both run on the same CPUs each keeps preempting the
//! other: measured per reconcile (getrusage), a cold-start reconcile was preempted 2 to 4 times, and
//! its thread CPU time (the reconcile CPU the bench reports) grew by about half from the caches the
//! other process left cold. So by default the operator child gets a CPU of its own and the bench
//! process (emulator, simulators, driver) the others; `--shared-cpus` runs both on all of them.

use std::{fmt, io};

/// How the CPUs this process may run on are divided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuSplit {
    /// The operator child and this process share these CPUs (`--shared-cpus`, or only one CPU).
    Shared(Vec<usize>),
    /// The operator child runs on `operator` alone, this process on `rest`.
    Split { operator: usize, rest: Vec<usize> },
}

impl CpuSplit {
    /// The split of `allowed` (this process's CPUs): the last one for the operator unless `shared`
    /// or there is only one.
    pub fn of(allowed: &[usize], shared: bool) -> Self {
        match allowed.split_last() {
            Some((&operator, rest)) if !shared && !rest.is_empty() => CpuSplit::Split {
                operator,
                rest: rest.to_vec(),
            },
            _ => CpuSplit::Shared(allowed.to_vec()),
        }
    }

    /// The CPU the operator child is pinned to, if any.
    pub fn operator_cpu(&self) -> Option<usize> {
        match self {
            CpuSplit::Split { operator, .. } => Some(*operator),
            CpuSplit::Shared(_) => None,
        }
    }

    /// For the JSON line: `{"operator": [..], "bench": [..]}` or `{"shared": [..]}`.
    pub fn json(&self) -> serde_json::Value {
        match self {
            CpuSplit::Split { operator, rest } => {
                serde_json::json!({"operator": [operator], "bench": rest})
            }
            CpuSplit::Shared(cpus) => serde_json::json!({"shared": cpus}),
        }
    }
}

impl fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |cpus: &[usize]| {
            cpus.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            CpuSplit::Split { operator, rest } => {
                write!(
                    f,
                    "operator on CPU {operator}; emulator on CPU {}",
                    list(rest)
                )
            }
            CpuSplit::Shared(cpus) => write!(f, "shared: CPU {}", list(cpus)),
        }
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid for writes of size_of::<cpu_set_t>() bytes; pid 0 is this thread.
    let failed =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            != 0;
    if failed {
        return Err(io::Error::last_os_error());
    }
    let count = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    // SAFETY: CPU_ISSET only reads the initialised set, for indexes below CPU_SETSIZE.
    Ok((0..count)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread, and every thread it creates afterwards, to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET writes one bit of the set; indexes are below CPU_SETSIZE (they come
        // from `allowed`).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid, initialised cpu_set_t of the given size; pid 0 is this thread.
    let failed =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0;
    if failed {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_cpu_goes_to_the_operator_unless_shared_or_alone() {
        assert_eq!(
            CpuSplit::of(&[0, 1], false),
            CpuSplit::Split {
                operator: 1,
                rest: vec![0]
            }
        );
        assert_eq!(
            CpuSplit::of(&[2, 5, 7], false),
            CpuSplit::Split {
                operator: 7,
                rest: vec![2, 5]
            }
        );
        assert_eq!(CpuSplit::of(&[0, 1], true), CpuSplit::Shared(vec![0, 1]));
        assert_eq!(CpuSplit::of(&[3], false), CpuSplit::Shared(vec![3]));
        assert_eq!(CpuSplit::of(&[], false), CpuSplit::Shared(vec![]));
        assert_eq!(
            CpuSplit::of(&[0, 1], false).to_string(),
            "operator on CPU 1; emulator on CPU 0"
        );
    }

    #[test]
    fn a_thread_can_be_pinned_to_a_cpu_it_may_use() {
        // On a thread of its own, so that the test harness's other threads keep their CPUs.
        std::thread::spawn(|| {
            let cpus = allowed().expect("affinity");
            let first = *cpus.first().expect("at least one CPU");
            pin_current_thread(&[first]).expect("pinned");
            assert_eq!(allowed().expect("affinity"), vec![first]);
        })
        .join()
        .expect("thread");
    }
}
