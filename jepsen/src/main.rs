//! `gati-jepsen`: runs the fault-injection harness against real `gati-registry` nodes.
//!
//! ```text
//! gati-jepsen run   --nemesis kill --seed 7 --time-limit 30 --out jepsen/runs/kill-7
//! gati-jepsen suite --seeds 20 --time-limit 30 --out jepsen/runs/suite
//! gati-jepsen check jepsen/runs/kill-7/history.jsonl
//! ```
//! See `jepsen/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gati_jepsen::cluster::PlantedBug;
use gati_jepsen::nemesis::NemesisKind;
use gati_jepsen::runner::{self, RunConfig};
use gati_jepsen::{History, check_all, workload};

#[derive(Parser)]
#[command(name = "gati-jepsen", about = "Fault-injection tests of a Gati Registry cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One run: one seed, one nemesis.
    Run {
        #[command(flatten)]
        common: Common,
        /// The seed of every random choice (printed in the report; pass it again to replay).
        #[arg(long)]
        seed: Option<u64>,
        /// The fault schedule: none, partition-majority, partition-bridge, partition-halves,
        /// isolate-leader, kill, pause, membership or mixed.
        #[arg(long, default_value = "mixed")]
        nemesis: String,
        /// Report directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Many runs: every nemesis (or the chosen ones) with seeds 1..=N.
    Suite {
        #[command(flatten)]
        common: Common,
        /// Seeds per nemesis.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Nemeses, comma-separated (default: all).
        #[arg(long)]
        nemeses: Option<String>,
        /// Report directory (one sub-directory per run, plus suite.md).
        #[arg(long, default_value = "jepsen/runs/suite")]
        out: PathBuf,
    },
    /// Checks a recorded history again.
    Check {
        /// A `history.jsonl` file.
        history: PathBuf,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Workloads, comma-separated: register, append, blobs.
    #[arg(long, default_value = "register,append,blobs")]
    workloads: String,
    /// Seconds of operations and faults per run.
    #[arg(long, default_value_t = 30)]
    time_limit: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Milliseconds each client waits between operations.
    #[arg(long, default_value_t = 20)]
    op_interval_ms: u64,
    /// Cluster nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Metadata shards.
    #[arg(long, default_value_t = 4)]
    shards: u16,
    /// Plant a server bug the run must detect (debug builds of the server only).
    #[arg(long)]
    planted_bug: Option<String>,
    /// The server binary (default: `gati-registry` beside this executable, or `$GATI_BIN`).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Run every node on loopback instead of in network namespaces (no partitions).
    #[arg(long)]
    loopback: bool,
}

impl Common {
    fn config(&self, seed: u64, nemesis: NemesisKind, out: PathBuf) -> Result<RunConfig, String> {
        let workloads: Vec<String> = self.workloads.split(',').map(str::trim).map(str::to_owned).collect();
        if let Some(w) = workloads.iter().find(|w| !workload::ALL.contains(&w.as_str())) {
            return Err(format!("unknown workload {w}"));
        }
        let planted_bug = match self.planted_bug.as_deref() {
            None => None,
            Some("stale-tag-reads") => Some(PlantedBug::StaleTagReads),
            Some(other) => return Err(format!("unknown planted bug {other}")),
        };
        Ok(RunConfig {
            seed,
            nemesis,
            workloads,
            time_limit: Duration::from_secs(self.time_limit),
            clients: self.clients,
            op_interval: Duration::from_millis(self.op_interval_ms),
            nodes: self.nodes,
            shards: self.shards,
            planted_bug,
            binary: self.binary.clone().unwrap_or_else(runner::default_binary),
            store: runner::default_object_store().map_err(|e| e.to_string())?,
            out,
            namespaces: !self.loopback,
        })
    }
}

fn parse_nemesis(name: &str) -> Result<NemesisKind, String> {
    NemesisKind::parse(name).ok_or_else(|| format!("unknown nemesis {name}"))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("gati-jepsen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether everything checked was valid.
fn run(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Command::Run { common, seed, nemesis, out } => {
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
            });
            let nemesis = parse_nemesis(&nemesis)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("jepsen/runs/{}-{seed}", nemesis.name())));
            let config = common.config(seed, nemesis, out)?;
            println!("gati-jepsen: seed {seed}, nemesis {}, report in {}", nemesis.name(), config.out.display());
            let outcome = runner::run(&config).map_err(|e| e.to_string())?;
            println!("{}", outcome.report);
            println!(
                "{} operations, {} faults; report: {}",
                outcome.operations,
                outcome.windows.len(),
                outcome.dir.display()
            );
            Ok(outcome.report.is_valid())
        }
        Command::Suite { common, seeds, nemeses, out } => {
            let kinds: Vec<NemesisKind> = match nemeses {
                None => NemesisKind::ALL.to_vec(),
                Some(list) => list.split(',').map(|n| parse_nemesis(n.trim())).collect::<Result<_, _>>()?,
            };
            let mut table = String::from("| nemesis | seed | operations | faults | verdict |\n|---|---|---|---|---|\n");
            let mut all_valid = true;
            for kind in &kinds {
                for seed in 1..=seeds {
                    let dir = out.join(format!("{}-{seed}", kind.name()));
                    let config = common.config(seed, *kind, dir)?;
                    let (ops, faults, verdict) = match runner::run(&config) {
                        Ok(o) => {
                            all_valid &= o.report.is_valid();
                            (o.operations, o.windows.len(), format!("{:?}", o.report.valid))
                        }
                        Err(e) => {
                            all_valid = false;
                            (0, 0, format!("run failed: {e}"))
                        }
                    };
                    println!("{} seed {seed}: {ops} operations, {faults} faults, {verdict}", kind.name());
                    table.push_str(&format!("| {} | {seed} | {ops} | {faults} | {verdict} |\n", kind.name()));
                    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
                    std::fs::write(out.join("suite.md"), &table).map_err(|e| e.to_string())?;
                }
            }
            Ok(all_valid)
        }
        Command::Check { history } => {
            let file = std::fs::File::open(&history).map_err(|e| format!("{}: {e}", history.display()))?;
            let history = History::read_json_lines(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
            let report = check_all(&history).map_err(|e| e.to_string())?;
            println!("{report}");
            Ok(report.is_valid())
        }
    }
}
