//! The harness against real clusters, sized for CI: one seed of every nemesis must find the
//! cluster valid, and a planted stale-read bug must be caught by a schedule that is valid without
//! it. Each run starts 5 `gati-registry` processes (the debug build beside this test) in network
//! namespaces, so these tests need root; the report of every run stays in the temp directory.

use std::path::Path;
use std::time::Duration;

use gati_jepsen::cluster::PlantedBug;
use gati_jepsen::nemesis::NemesisKind;
use gati_jepsen::runner::{self, RunConfig, RunOutcome};
use gati_jepsen::{Anomaly, workload};

fn config(name: &str, seed: u64, nemesis: NemesisKind, workloads: &[&str], secs: u64) -> RunConfig {
    let binary = runner::default_binary();
    assert!(
        binary.try_exists().unwrap_or(false),
        "{} is missing: build the workspace (cargo build --workspace) first",
        binary.display()
    );
    RunConfig {
        seed,
        nemesis,
        workloads: workloads.iter().map(|w| (*w).to_owned()).collect(),
        time_limit: Duration::from_secs(secs),
        clients: 8,
        op_interval: Duration::from_millis(20),
        nodes: 5,
        shards: 4,
        planted_bug: None,
        binary,
        store: runner::default_object_store().expect("an S3 server (scripts/s3-server.sh install)"),
        out: std::env::temp_dir().join("gati-jepsen-tests").join(name),
        namespaces: true,
    }
}

fn run(config: &RunConfig) -> RunOutcome {
    let outcome = runner::run(config).unwrap_or_else(|e| panic!("run {} failed: {e}", config.out.display()));
    eprintln!("{}\nreport: {}", outcome.report, outcome.dir.display());
    outcome
}

fn assert_valid(outcome: &RunOutcome, dir: &Path) {
    assert!(outcome.report.is_valid(), "anomalies found, report in {}:\n{}", dir.display(), outcome.report);
    assert!(outcome.operations > 100, "too few operations to mean anything: {}", outcome.operations);
}

#[test]
fn a_planted_stale_read_bug_is_caught_and_the_same_schedule_without_it_is_valid() {
    let mut buggy = config("planted-stale-reads", 11, NemesisKind::PartitionMajority, &["register"], 15);
    buggy.planted_bug = Some(PlantedBug::StaleTagReads);
    let found = run(&buggy);
    let register = found.report.register.as_ref().expect("register verdict");
    assert!(!found.report.is_valid(), "the planted bug went unnoticed: {}", found.report);
    assert!(
        register.anomalies.iter().any(|a| matches!(a, Anomaly::NonLinearizable { .. })),
        "expected a non-linearizable tag: {register:?}"
    );
    assert!(!found.windows.is_empty(), "the schedule injected no fault");

    let mut clean = buggy.clone();
    clean.planted_bug = None;
    clean.out = buggy.out.with_file_name("planted-stale-reads-control");
    let control = run(&clean);
    assert_valid(&control, &clean.out);
    assert_eq!(
        control.windows.iter().map(|w| &w.description).collect::<Vec<_>>(),
        found.windows.iter().map(|w| &w.description).collect::<Vec<_>>(),
        "the same seed must replay the same faults"
    );
}

macro_rules! one_seed {
    ($($test:ident => $kind:expr),* $(,)?) => {$(
        #[test]
        fn $test() {
            let kind: NemesisKind = $kind;
            let config = config(&format!("ci-{}", kind.name()), 1, kind, workload::ALL, 12);
            let outcome = run(&config);
            assert_valid(&outcome, &config.out);
            assert!(!outcome.windows.is_empty(), "{} injected no fault", kind.name());
        }
    )*};
}

one_seed! {
    partition_majority_is_survived => NemesisKind::PartitionMajority,
    partition_bridge_is_survived => NemesisKind::PartitionBridge,
    partition_halves_is_survived => NemesisKind::PartitionHalves,
    leader_isolation_is_survived => NemesisKind::IsolateLeader,
    kill_and_restart_is_survived => NemesisKind::Kill,
    pause_is_survived => NemesisKind::Pause,
    membership_changes_are_survived => NemesisKind::Membership,
    mixed_faults_are_survived => NemesisKind::Mixed,
}
