//! Timing of the register checker on simulated histories: a linearizable one (must be found
//! valid) and the same with one read made stale (must be found invalid and shrunk).
//!
//!     cargo bench -p gati-jepsen --bench checker

use std::time::Instant;

use gati_jepsen::checker::register;
use gati_jepsen::sim::{make_one_read_stale, simulate_register};
use gati_jepsen::{RegisterConfig, Validity};

fn main() {
    println!("| history | valid check | one stale read found and shrunk |\n|---|---|---|");
    for (total, keys, clients, info) in [(2_000, 5, 10, 5), (5_000, 10, 20, 5), (10_000, 8, 20, 10), (4_000, 1, 20, 5)]
    {
        let history = simulate_register(42, total, keys, clients, info);
        let ops = history.operations().expect("a well-formed history");
        let started = Instant::now();
        let verdict = register::check(&ops, &RegisterConfig::default());
        let valid_time = started.elapsed();
        assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
        let (mutated, _) = make_one_read_stale(&history);
        let mutated_ops = mutated.operations().expect("a well-formed history");
        let started = Instant::now();
        let invalid = register::check(&mutated_ops, &RegisterConfig::default());
        let invalid_time = started.elapsed();
        assert_eq!(invalid.valid, Validity::Invalid, "{invalid}");
        println!(
            "| {total} ops, {keys} keys, {clients} clients, {info}% info | {valid_time:.1?} ({} states) | {invalid_time:.1?} ({} states) |",
            verdict.stats.states_explored, invalid.stats.states_explored
        );
    }
}
