//! Printing results and failures, as text or as JSON.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::exit::Failure;

/// Prints a result: `value` as JSON with `--json`, else the text `human` makes.
pub fn print(json_mode: bool, value: &Value, human: impl FnOnce() -> String) {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
}

/// Reports a failure and returns its exit status. With `--json` the failure is a JSON object on
/// stdout (so a script reads one stream); otherwise text on stderr.
pub fn fail(json_mode: bool, failure: &Failure) -> ExitCode {
    if json_mode {
        let errors: Vec<Value> = failure.errors.iter().map(|(f, m)| json!({ "field": f, "message": m })).collect();
        let body = json!({ "error": { "code": failure.code, "message": failure.message, "errors": errors } });
        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    } else {
        eprintln!("error: {}", failure.message);
        for (field, message) in &failure.errors {
            if field.is_empty() {
                eprintln!("  - {message}");
            } else {
                eprintln!("  - {field}: {message}");
            }
        }
    }
    ExitCode::from(failure.code)
}

/// A human size: 1.5 MiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A progress bar of `total` bytes on stderr, hidden in JSON mode and when stderr is not a terminal.
pub fn bytes_bar(json_mode: bool, total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if json_mode || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

/// A note on stderr (never in JSON mode's stdout).
pub fn note(json_mode: bool, text: &str) {
    let _ = json_mode;
    eprintln!("{text}");
}
