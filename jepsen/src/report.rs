//! A run's report directory:
//!
//! - `history.jsonl`: every event, one JSON object per line (replayable through `gati-jepsen check`);
//! - `verdict.json`: the checkers' full report, anomalies with their minimal sub-histories;
//! - `summary.md`: the seed, the schedule, operation counts and verdicts, for humans;
//! - `latency.svg`: every operation's latency over time by outcome, fault windows shaded;
//! - `nemesis.json`, `cluster-status.json`, and `cluster/` with each node's log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::BufWriter;
use std::path::Path;

use crate::history::{History, Operation, Outcome};
use crate::nemesis::Window;
use crate::runner::RunConfig;
use crate::{JepsenError, Report};

/// Writes every file of the report into `dir`.
pub fn write(
    dir: &Path,
    config: &RunConfig,
    history: &History,
    report: &Report,
    windows: &[Window],
    status: Option<&str>,
) -> Result<(), JepsenError> {
    history.write_json_lines(BufWriter::new(fs::File::create(dir.join("history.jsonl"))?))?;
    let json = |v: &dyn erased::Json| v.to_pretty();
    fs::write(dir.join("verdict.json"), json(report))?;
    fs::write(dir.join("nemesis.json"), json(&windows.to_vec()))?;
    if let Some(status) = status {
        fs::write(dir.join("cluster-status.json"), status)?;
    }
    let operations = history.operations()?;
    fs::write(dir.join("latency.svg"), latency_svg(&operations, windows))?;
    fs::write(dir.join("summary.md"), summary(config, &operations, report, windows))?;
    Ok(())
}

/// Pretty JSON of the report's serialisable parts without naming each type.
mod erased {
    pub trait Json {
        fn to_pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// The summary table.
fn summary(config: &RunConfig, operations: &[Operation], report: &Report, windows: &[Window]) -> String {
    let mut s = String::new();
    let verdict = if report.is_valid() { "VALID" } else { "NOT VALID" };
    let _ = writeln!(s, "# gati-jepsen run: {verdict}\n");
    let _ = writeln!(s, "| setting | value |\n|---|---|");
    let _ = writeln!(s, "| seed | {} |", config.seed);
    let _ = writeln!(s, "| nemesis | {} |", config.nemesis.name());
    let _ = writeln!(s, "| workloads | {} |", config.workloads.join(", "));
    let _ = writeln!(s, "| nodes, shards | {}, {} |", config.nodes, config.shards);
    let _ = writeln!(s, "| clients | {} |", config.clients);
    let _ = writeln!(s, "| time limit | {:?} |", config.time_limit);
    let bug = config.planted_bug.map_or("none".to_owned(), |b| b.name().to_owned());
    let _ = writeln!(s, "| planted bug | {bug} |");
    let _ = writeln!(
        s,
        "\nReplay: `gati-jepsen run --seed {} --nemesis {} --workloads {} --time-limit {}`\n",
        config.seed,
        config.nemesis.name(),
        config.workloads.join(","),
        config.time_limit.as_secs()
    );
    let mut counts: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
    for op in operations {
        *counts.entry((op.op.f(), outcome_name(op.outcome))).or_default() += 1;
    }
    let _ = writeln!(s, "## Operations\n\n| function | ok | fail | info |\n|---|---|---|---|");
    let functions: std::collections::BTreeSet<&str> = counts.keys().map(|(f, _)| *f).collect();
    for f in functions {
        let n = |o| counts.get(&(f, o)).copied().unwrap_or(0);
        let _ = writeln!(s, "| {f} | {} | {} | {} |", n("ok"), n("fail"), n("info"));
    }
    let _ = writeln!(s, "\n## Faults\n\n| from (s) | to (s) | fault |\n|---|---|---|");
    for w in windows {
        let _ = writeln!(s, "| {:.1} | {:.1} | {} |", w.start_ns as f64 / 1e9, w.end_ns as f64 / 1e9, w.description);
    }
    let _ = writeln!(s, "\n## Verdict\n\n```\n{report}\n```");
    s
}

/// Latency (log scale) against invocation time, one dot per operation, coloured by outcome.
fn latency_svg(operations: &[Operation], windows: &[Window]) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 400.0;
    const LEFT: f64 = 60.0;
    const BOTTOM: f64 = 40.0;
    let end_ns = operations
        .iter()
        .map(|o| o.completion_time_ns.unwrap_or(o.invoke_time_ns))
        .chain(windows.iter().map(|w| w.end_ns))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |ns: f64| LEFT + ns / end_ns * (W - LEFT - 10.0);
    // 0.1 ms .. 10 s on a log axis.
    let (lo, hi) = (0.1f64.log10(), 10_000f64.log10());
    let y = |ms: f64| {
        let v = ms.clamp(0.1, 10_000.0).log10();
        H - BOTTOM - (v - lo) / (hi - lo) * (H - BOTTOM - 10.0)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
    );
    for w in windows {
        let (x0, x1) = (x(w.start_ns as f64), x(w.end_ns as f64));
        let _ = writeln!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"10\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ddd\"><title>{}</title></rect>",
            (x1 - x0).max(1.0),
            H - BOTTOM - 10.0,
            escape(&w.description)
        );
    }
    for ms in [1.0, 10.0, 100.0, 1_000.0, 10_000.0] {
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{W}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#eee\"/><text x=\"5\" y=\"{0:.1}\">{1} ms</text>",
            y(ms),
            ms
        );
    }
    let seconds = (end_ns / 1e9).ceil() as u64;
    let step = (seconds / 10).max(1);
    for s in (0..=seconds).step_by(step as usize) {
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{}\">{s} s</text>", x(s as f64 * 1e9), H - 20.0);
    }
    for op in operations {
        let Some(done) = op.completion_time_ns else { continue };
        let colour = match op.outcome {
            Outcome::Ok => "#1a7f37",
            Outcome::Fail => "#cf222e",
            Outcome::Info => "#d97706",
        };
        let ms = (done.saturating_sub(op.invoke_time_ns)) as f64 / 1e6;
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{colour}\" fill-opacity=\"0.6\"/>",
            x(op.invoke_time_ns as f64),
            y(ms)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\">latency by invocation time — green ok, red fail, orange info; grey: faults</text>\n</svg>",
        H - 5.0
    );
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
