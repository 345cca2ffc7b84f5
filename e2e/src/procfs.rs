//! CPU time and memory of a process from `/proc`, for the benchmark and the side-by-side measurements
//! (Linux only; a process that is gone reads as zero).

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time and memory of one process.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessCost {
    /// utime + stime of every thread, in seconds.
    pub cpu_seconds: f64,
    /// `VmHWM`: the peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// `VmRSS`: the resident set now, KiB.
    pub rss_kib: u64,
}

/// The cost of the process at `proc_dir` (`/proc/<pid>`).
pub fn process_cost(proc_dir: &str) -> ProcessCost {
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap_or_default();
    cost_of(&stat, &status)
}

fn cost_of(stat: &str, status: &str) -> ProcessCost {
    // Fields after the parenthesised command name (which may hold spaces and parentheses); utime and
    // stime are the 14th and 15th of the line.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ProcessCost {
        cpu_seconds: (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND,
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_are_read_past_a_command_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(
            cost_of(stat, status),
            ProcessCost {
                cpu_seconds: 3.0,
                peak_rss_kib: 2048,
                rss_kib: 1024,
            }
        );
    }

    #[test]
    fn this_process_has_a_cost() {
        let cost = process_cost(&format!("/proc/{}", std::process::id()));
        assert!(
            cost.rss_kib > 0 && cost.peak_rss_kib >= cost.rss_kib,
            "{cost:?}"
        );
    }
}
