//! `plot`: one PNG of the bench's JSON lines (issue 23), for docs/PERFORMANCE.md: time from the
//! operator's start to every resource up, and the operator's resident memory, against N.
//!
//! `cargo run --release -p fieldwise-bench --bin plot -- --input results.jsonl --output docs/performance.png`
//!
//! Each run is a point; a line joins the medians of the runs at each N. Runs that timed out before
//! all were Ready have no time to plot and are left out of that panel (and said so on stderr).

use std::{
    collections::BTreeMap,
    ops::Range,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Parser;
use plotters::{coord::Shift, prelude::*, style::register_font};
use serde_json::Value;

/// Where Debian, Fedora and Arch put DejaVu Sans and Liberation Sans, tried in order when no
/// `--font` is given.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
/// The family plotters asks for when a style names none (mesh labels); the one font is registered
/// under it, and the captions use it too.
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (1200, 1100);

#[derive(Debug, Parser)]
#[command(
    name = "plot",
    about = "Plot time to Ready and operator RSS against N from bench JSON lines"
)]
struct Args {
    /// The bench's JSON lines (`bench --json`).
    #[arg(long)]
    input: PathBuf,
    /// The PNG to write.
    #[arg(long, default_value = "docs/performance.png")]
    output: PathBuf,
    /// A TrueType font for the text; by default the first of a few common system paths.
    #[arg(long)]
    font: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match plot(&args) {
        Ok(runs) => {
            eprintln!("{}: {runs} runs", args.output.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn plot(args: &Args) -> Result<usize, String> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("reading {}: {e}", args.input.display()))?;
    let runs = parse_runs(&text)?;
    for run in runs.iter().filter(|run| run.ready_seconds.is_none()) {
        eprintln!(
            "N = {}: not all Ready (timed out), left out of the time panel",
            run.n
        );
    }
    let font = font_path(args.font.as_deref(), FONT_CANDIDATES)?;
    register_font_file(&font)?;
    draw(&runs, &args.output)?;
    Ok(runs.len())
}

/// What the plot needs of one bench run.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    /// FeatureStores and PrismClusters.
    n: u64,
    /// Cold start to all Ready / Running; `None` when it timed out.
    ready_seconds: Option<f64>,
    /// Operator RSS when the cold start had settled.
    settled_rss_mib: f64,
    /// The most any operator process of the run held (cold start, restart, steady state).
    peak_rss_mib: f64,
}

/// The runs of the bench's JSON lines (blank lines skipped).
fn parse_runs(text: &str) -> Result<Vec<Run>, String> {
    let runs: Vec<Run> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| parse_run(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    if runs.is_empty() {
        return Err("no runs in the input".to_owned());
    }
    Ok(runs)
}

fn parse_run(line: &str) -> Result<Run, String> {
    let run: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let number = |pointer: &str| {
        run.pointer(pointer)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("no number at {pointer}"))
    };
    // Runs before PrismClusters existed in the bench have no `prism_clusters`.
    let prism_clusters = run["prism_clusters"].as_u64().unwrap_or(0);
    let feature_stores = run["feature_stores"]
        .as_u64()
        .ok_or("no number at /feature_stores")?;
    Ok(Run {
        n: feature_stores + prism_clusters,
        ready_seconds: run.pointer("/cold/ready_seconds").and_then(Value::as_f64),
        settled_rss_mib: number("/cold/operator_rss_kib")? / 1024.0,
        peak_rss_mib: number("/operator/peak_rss_kib")? / 1024.0,
    })
}

/// `given`, or else the first of `candidates` that exists.
fn font_path(given: Option<&Path>, candidates: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no font found at {}; give a TrueType font with --font (Debian: apt-get install fonts-dejavu-core)",
                candidates.join(", ")
            )
        })
}

fn register_font_file(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    // plotters keeps registered fonts for the life of the process and wants them 'static: this
    // program draws one picture and exits, so the font is leaked on purpose.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a font plotters can read", path.display()))
}

/// A series of (N, value) points, and the median at each N.
struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

impl Series {
    fn medians(&self) -> Vec<(f64, f64)> {
        let mut by_n: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (n, value) in &self.points {
            by_n.entry(*n as u64).or_default().push(*value);
        }
        by_n.into_iter()
            .map(|(n, mut values)| (n as f64, median(&mut values)))
            .collect()
    }
}

/// The middle value (the mean of the two middle ones for an even count); `values` is not empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

fn draw(runs: &[Run], output: &Path) -> Result<(), String> {
    let canvas = BitMapBackend::new(output, SIZE).into_drawing_area();
    canvas.fill(&WHITE).map_err(drawing_error)?;
    let root = canvas
        .margin(12, 0, 0, 0)
        .titled(
            "fieldwise against the API emulator: cold start by number of resources (bench/)",
            (FAMILY, 26),
        )
        .map_err(drawing_error)?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    // Both panels over the same N, so that a point in one lines up with its run in the other.
    let n_range = n_axis(runs.iter().map(|run| run.n as f64));
    let ready = Series {
        label: "all Ready",
        color: BLUE,
        points: runs
            .iter()
            .filter_map(|run| Some((run.n as f64, run.ready_seconds?)))
            .collect(),
    };
    panel(
        &top,
        "Time from operator start to all Ready",
        "seconds",
        n_range.clone(),
        &[ready],
    )?;
    let settled = Series {
        label: "after cold start",
        color: BLUE,
        points: runs
            .iter()
            .map(|run| (run.n as f64, run.settled_rss_mib))
            .collect(),
    };
    let peak = Series {
        label: "peak over the run",
        color: RED,
        points: runs
            .iter()
            .map(|run| (run.n as f64, run.peak_rss_mib))
            .collect(),
    };
    panel(
        &bottom,
        "Operator resident memory (RSS)",
        "MiB",
        n_range,
        &[settled, peak],
    )?;
    canvas
        .present()
        .map_err(|e| format!("writing {}: {e}", output.display()))
}

/// One chart: the points of each series and a line through its medians, N on a log axis.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    caption: &str,
    unit: &str,
    n_range: Range<f64>,
    series: &[Series],
) -> Result<(), String> {
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|(_, y)| *y)
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(n_range.log_scale(), 0.0..(y_max * 1.15).max(1.0))
        .map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc("N: FeatureStores + PrismClusters (log scale)")
        .y_desc(unit)
        .x_label_formatter(&one_two_five)
        // The log axis's minor lines crowd each decade's top into a grey band.
        .light_line_style(TRANSPARENT)
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 18))
        .draw()
        .map_err(drawing_error)?;
    for one in series {
        let color = one.color;
        chart
            .draw_series(
                one.points
                    .iter()
                    .map(|point| Circle::new(*point, 4, color.mix(0.5).filled())),
            )
            .map_err(drawing_error)?;
        chart
            .draw_series(LineSeries::new(one.medians(), color.stroke_width(2)))
            .map_err(drawing_error)?
            .label(format!("{} (points: runs; line: median per N)", one.label))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 16))
        .draw()
        .map_err(drawing_error)
}

/// The N axis: the runs' N with a margin, so that no point sits on an edge, and at least a decade
/// wide: over less, plotters puts its ticks at values that are no multiple of a power of ten, and
/// `one_two_five` would label none of them. 1 to 10 without runs.
fn n_axis(ns: impl Iterator<Item = f64>) -> Range<f64> {
    let (low, high) = ns.fold((f64::INFINITY, 0.0_f64), |(low, high), n| {
        (low.min(n), high.max(n))
    });
    if !low.is_finite() {
        return 1.0..10.0;
    }
    let (low, high) = ((low / 1.5).max(0.5), high * 1.5);
    if high / low >= 10.0 {
        return low..high;
    }
    let middle = (low * high).sqrt();
    middle / 10f64.sqrt()..middle * 10f64.sqrt()
}

/// Labels the log axis at 1, 2 and 5 times a power of ten only: plotters puts a tick at every
/// digit, whose labels run into each other near the top of a decade.
fn one_two_five(n: &f64) -> String {
    let power = 10f64.powf(n.log10().floor());
    let leading = (n / power).round();
    if [1.0, 2.0, 5.0].contains(&leading) && (n / power - leading).abs() < 1e-6 {
        format!("{n:.0}")
    } else {
        String::new()
    }
}

fn drawing_error(error: impl std::fmt::Display) -> String {
    format!("drawing: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four runs in the shape of `bench --json` lines (made-up figures, every other field trimmed):
    /// two at N = 100, one at N = 1000, and one at N = 3000 that timed out before all were Ready.
    const FIXTURE: &str = include_str!("../../fixtures/bench-results.jsonl");

    #[test]
    fn the_fixture_runs_are_read() {
        let runs = parse_runs(FIXTURE).expect("parsed");
        assert_eq!(runs.len(), 4);
        assert_eq!(
            runs[2],
            Run {
                n: 1000,
                ready_seconds: Some(12.7),
                settled_rss_mib: 50.0,
                peak_rss_mib: 51.5,
            }
        );
        // 2990 FeatureStores and 10 PrismClusters.
        assert_eq!((runs[3].n, runs[3].ready_seconds), (3000, None));
    }

    #[test]
    fn a_line_without_the_figures_is_named() {
        let error = parse_runs("\n{\"feature_stores\": 5, \"cold\": {}}\n").unwrap_err();
        assert_eq!(error, "line 2: no number at /cold/operator_rss_kib");
        assert_eq!(parse_runs("\n\n").unwrap_err(), "no runs in the input");
        assert!(parse_runs("not json").unwrap_err().starts_with("line 1: "));
    }

    #[test]
    fn the_line_goes_through_the_median_of_each_n() {
        let series = Series {
            label: "t",
            color: BLUE,
            points: vec![
                (100.0, 3.0),
                (10.0, 1.0),
                (100.0, 2.0),
                (100.0, 9.0),
                (10.0, 2.0),
            ],
        };
        assert_eq!(series.medians(), vec![(10.0, 1.5), (100.0, 3.0)]);
    }

    #[test]
    fn the_n_axis_is_labelled_at_one_two_and_five() {
        let labels: Vec<String> = [100.0, 200.0, 300.0, 500.0, 900.0, 1000.0, 2000.0]
            .iter()
            .map(one_two_five)
            .collect();
        assert_eq!(labels, ["100", "200", "", "500", "", "1000", "2000"]);
        assert_eq!(n_axis([100.0, 3000.0].into_iter()), 100.0 / 1.5..4500.0);
        assert_eq!(n_axis(std::iter::empty()), 1.0..10.0);
        // One N: a decade around it.
        let around_200 = n_axis([200.0].into_iter());
        assert!((around_200.start - 63.25).abs() < 0.01, "{around_200:?}");
        assert!((around_200.end - 632.46).abs() < 0.01, "{around_200:?}");
    }

    #[test]
    fn a_missing_font_is_named_and_a_given_one_is_taken() {
        let error = font_path(None, &["/nonexistent/a.ttf", "/nonexistent/b.ttf"]).unwrap_err();
        assert!(
            error.contains("/nonexistent/a.ttf, /nonexistent/b.ttf"),
            "{error}"
        );
        assert!(error.contains("--font"), "{error}");
        let given = Path::new("/some/font.ttf");
        assert_eq!(font_path(Some(given), &[]), Ok(given.to_owned()));
    }

    #[test]
    fn the_fixture_is_drawn_as_a_png() {
        let dir = std::env::temp_dir().join(format!("fieldwise-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let output = dir.join("performance.png");
        let font = font_path(None, FONT_CANDIDATES).expect("a system font (fonts-dejavu-core)");
        register_font_file(&font).expect("font registered");
        draw(&parse_runs(FIXTURE).expect("parsed"), &output).expect("drawn");
        let png = std::fs::read(&output).expect("written");
        std::fs::remove_dir_all(&dir).expect("temp dir removed");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // A white 1200x1100 canvas alone compresses to a few KB; points, lines and text make more.
        assert!(png.len() > 20_000, "{} bytes", png.len());
    }
}
