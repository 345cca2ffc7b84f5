//! The markdown tables: the measures of both operators side by side with their ratio, then the
//! cold start's requests by verb and resource.

use std::{collections::BTreeSet, fmt::Write as _, time::Duration};

use super::{Measured, audit::Counts};

/// Both runs (the Feast operator's first) as markdown, headed by the machine and the setup.
pub fn markdown(setup: &str, runs: &[Measured]) -> String {
    let [feast, fieldwise] = runs else {
        panic!("two runs expected");
    };
    let mut text = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(text, "{setup}; {cores} cores.");
    for run in runs {
        let _ = writeln!(
            text,
            "{} started {}, load average (1, 5, 15 min) then {}.",
            run.kind.name(),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            run.load_before
        );
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "| measure | Feast operator | fieldwise | Feast / fieldwise |"
    );
    let _ = writeln!(text, "|---|---|---|---|");
    for row in rows(feast, fieldwise) {
        let _ = writeln!(text, "{row}");
    }
    let _ = writeln!(text);
    let _ = write!(text, "{}", by_resource(feast, fieldwise));
    text
}

/// A row: the measure, each operator's figure and the ratio of the two numbers (if both are).
struct Row {
    measure: &'static str,
    feast: String,
    fieldwise: String,
    ratio: String,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {} |",
            self.measure, self.feast, self.fieldwise, self.ratio
        )
    }
}

fn numbers(measure: &'static str, feast: f64, fieldwise: f64, digits: usize) -> Row {
    Row {
        measure,
        feast: format!("{feast:.digits$}"),
        fieldwise: format!("{fieldwise:.digits$}"),
        ratio: ratio(feast, fieldwise),
    }
}

fn texts(measure: &'static str, feast: String, fieldwise: String) -> Row {
    Row {
        measure,
        feast,
        fieldwise,
        ratio: String::new(),
    }
}

fn ratio(feast: f64, fieldwise: f64) -> String {
    if fieldwise > 0.0 {
        format!("{:.1}", feast / fieldwise)
    } else if feast > 0.0 {
        "∞".into()
    } else {
        "–".into()
    }
}

fn rows(feast: &Measured, fieldwise: &Measured) -> Vec<Row> {
    let both = |f: fn(&Measured) -> f64| (f(feast), f(fieldwise));
    let mut rows = vec![ready_row(feast, fieldwise)];
    rows.push(last_write_row(feast, fieldwise));
    let (a, b) = both(|m| m.last_child_write.as_secs_f64());
    rows.push(numbers("cold start: last write of a child (s)", a, b, 1));
    let (a, b) = both(|m| m.cold.total() as f64);
    rows.push(numbers("cold start: requests", a, b, 0));
    let (a, b) = both(|m| m.cold.reads() as f64);
    rows.push(numbers("cold start: reads", a, b, 0));
    let (a, b) = both(|m| m.cold.writes() as f64);
    rows.push(numbers("cold start: writes", a, b, 0));
    rows.push(texts(
        "cold start: requests by verb",
        by_verb(&feast.cold),
        by_verb(&fieldwise.cold),
    ));
    let (a, b) = both(|m| m.cold.refused as f64);
    rows.push(numbers("cold start: answered ≥ 400", a, b, 0));
    let (a, b) = both(|m| m.cold_cost.cpu_seconds);
    rows.push(numbers("cold start: operator CPU s", a, b, 2));
    let (a, b) = both(|m| m.control_cold.apiserver);
    rows.push(numbers("cold start: kube-apiserver CPU s", a, b, 2));
    let (a, b) = both(|m| m.control_cold.etcd);
    rows.push(numbers("cold start: etcd CPU s", a, b, 2));
    let (a, b) = both(|m| m.control_cold.others);
    rows.push(numbers(
        "cold start: controller-manager, scheduler, kwok CPU s",
        a,
        b,
        2,
    ));
    rows.extend(steady_rows(feast, fieldwise));
    rows.extend(change_rows(feast, fieldwise));
    let (a, b) = both(|m| mib(m.end_cost.peak_rss_kib));
    rows.push(numbers("peak RSS (MiB)", a, b, 1));
    let (a, b) = both(|m| mib(m.end_cost.rss_kib));
    rows.push(numbers("RSS at the end (MiB)", a, b, 1));
    let (a, b) = both(|m| m.end_cost.cpu_seconds);
    rows.push(numbers("CPU s, whole run", a, b, 2));
    let (a, b) = both(|m| m.control_run.apiserver + m.control_run.etcd);
    rows.push(numbers("kube-apiserver + etcd CPU s, whole run", a, b, 2));
    rows
}

fn ready_row(feast: &Measured, fieldwise: &Measured) -> Row {
    let seconds = |m: &Measured| m.ready.map(|d| d.as_secs_f64());
    let shown = |m: &Measured| match seconds(m) {
        Some(s) => format!("{s:.1}"),
        None => format!("not all: {} Ready at the timeout", m.ready_count),
    };
    let ratio = match (seconds(feast), seconds(fieldwise)) {
        (Some(a), Some(b)) => ratio(a, b),
        _ => String::new(),
    };
    Row {
        measure: "cold start: all Ready (s)",
        feast: shown(feast),
        fieldwise: shown(fieldwise),
        ratio,
    }
}

/// The last write before 10 s without any; an operator still writing at the limit is marked.
fn last_write_row(feast: &Measured, fieldwise: &Measured) -> Row {
    let shown = |m: &Measured| {
        let seconds = m.last_write.as_secs_f64();
        if m.settled {
            format!("{seconds:.1}")
        } else {
            format!("{seconds:.1} (still writing at the limit)")
        }
    };
    Row {
        measure: "cold start: last write (s)",
        feast: shown(feast),
        fieldwise: shown(fieldwise),
        ratio: ratio(
            feast.last_write.as_secs_f64(),
            fieldwise.last_write.as_secs_f64(),
        ),
    }
}

fn steady_rows(feast: &Measured, fieldwise: &Measured) -> Vec<Row> {
    vec![
        numbers(
            "steady state: window (s)",
            feast.steady_seconds,
            fieldwise.steady_seconds,
            1,
        ),
        numbers(
            "steady state: writes in the window",
            feast.steady.writes() as f64,
            fieldwise.steady.writes() as f64,
            0,
        ),
        texts(
            "steady state: requests by verb",
            by_verb(&feast.steady),
            by_verb(&fieldwise.steady),
        ),
    ]
}

fn change_rows(feast: &Measured, fieldwise: &Measured) -> Vec<Row> {
    let mean = |m: &Measured, f: fn(&Counts) -> u64| {
        let total: u64 = m.changes.iter().map(|c| f(&c.counts)).sum();
        total as f64 / m.changes.len().max(1) as f64
    };
    let range = |m: &Measured, f: fn(&Counts) -> u64| {
        let values: Vec<u64> = m.changes.iter().map(|c| f(&c.counts)).collect();
        let min = values.iter().min().copied().unwrap_or(0);
        let max = values.iter().max().copied().unwrap_or(0);
        format!("{:.1} ({min}–{max})", mean(m, f))
    };
    let latency = |m: &Measured| {
        let total: Duration = m.changes.iter().map(|c| c.latency).sum();
        total.as_secs_f64() * 1000.0 / m.changes.len().max(1) as f64
    };
    let unsettled = |m: &Measured| m.changes.iter().filter(|c| !c.settled).count();
    let mut rows = vec![
        Row {
            measure: "one spec change: writes (mean, min–max)",
            feast: range(feast, Counts::writes),
            fieldwise: range(fieldwise, Counts::writes),
            ratio: ratio(mean(feast, Counts::writes), mean(fieldwise, Counts::writes)),
        },
        Row {
            measure: "one spec change: reads (mean, min–max)",
            feast: range(feast, Counts::reads),
            fieldwise: range(fieldwise, Counts::reads),
            ratio: ratio(mean(feast, Counts::reads), mean(fieldwise, Counts::reads)),
        },
        texts(
            "one spec change: requests by verb, all changes",
            by_verb(&summed(feast)),
            by_verb(&summed(fieldwise)),
        ),
        numbers(
            "one spec change: until the Deployment has it (ms, mean)",
            latency(feast),
            latency(fieldwise),
            0,
        ),
    ];
    if unsettled(feast) + unsettled(fieldwise) > 0 {
        rows.push(numbers(
            "one spec change: changes not settled in time",
            unsettled(feast) as f64,
            unsettled(fieldwise) as f64,
            0,
        ));
    }
    rows
}

fn summed(m: &Measured) -> Counts {
    let mut sum = Counts::default();
    for change in &m.changes {
        for (verb, count) in &change.counts.by_verb {
            *sum.by_verb.entry(verb.clone()).or_default() += count;
        }
    }
    sum
}

fn by_verb(counts: &Counts) -> String {
    if counts.by_verb.is_empty() {
        return "none".into();
    }
    counts
        .by_verb
        .iter()
        .map(|(verb, count)| format!("{verb} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The cold start's requests by verb and resource, both operators.
fn by_resource(feast: &Measured, fieldwise: &Measured) -> String {
    let keys: BTreeSet<&(String, String)> = feast
        .cold
        .by_verb_and_resource
        .keys()
        .chain(fieldwise.cold.by_verb_and_resource.keys())
        .collect();
    let mut text =
        String::from("| cold start: verb resource | Feast operator | fieldwise |\n|---|---|---|\n");
    for key in keys {
        let count = |m: &Measured| m.cold.by_verb_and_resource.get(key).copied().unwrap_or(0);
        let _ = writeln!(
            text,
            "| {} {} | {} | {} |",
            key.0,
            key.1,
            count(feast),
            count(fieldwise)
        );
    }
    text
}
