//! Behaviour of the history model and the checkers on hand-written and simulated histories.

use std::time::Instant;

use gati_jepsen::checker::{durability, list_append, register};
use gati_jepsen::sim::{make_one_read_stale, simulate_register};
use gati_jepsen::{
    Anomaly, Event, EventType, History, JepsenError, Op, Operation, ProcessId, RegisterConfig, Validity, Verdict,
    check_all,
};

/// Builds histories event by event; time advances 1 µs per event.
#[derive(Default)]
struct Recorder {
    history: History,
}

impl Recorder {
    fn new() -> Self {
        Recorder::default()
    }

    fn event(&mut self, kind: EventType, process: u64, op: Op) -> &mut Self {
        let time_ns = self.history.next_index() * 1_000;
        self.history.record(kind, ProcessId(process), time_ns, op);
        self
    }

    fn invoke(&mut self, process: u64, op: Op) -> &mut Self {
        self.event(EventType::Invoke, process, op)
    }

    fn ok(&mut self, process: u64, op: Op) -> &mut Self {
        self.event(EventType::Ok, process, op)
    }

    fn fail(&mut self, process: u64, op: Op) -> &mut Self {
        self.event(EventType::Fail, process, op)
    }

    fn info(&mut self, process: u64, op: Op) -> &mut Self {
        self.event(EventType::Info, process, op)
    }

    /// Records an invocation and its `ok` completion back to back.
    fn call(&mut self, process: u64, invoke: Op, ok: Op) -> &mut Self {
        self.invoke(process, invoke).ok(process, ok)
    }

    /// Sets the node of the last event.
    fn on(&mut self, node: &str) -> &mut Self {
        let mut events = self.history.events().to_vec();
        events.last_mut().expect("an event was recorded").node = Some(node.to_owned());
        self.history = History::from_events(events);
        self
    }

    fn history(&self) -> History {
        self.history.clone()
    }
}

fn operations(history: &History) -> Vec<Operation> {
    history.operations().expect("well-formed history")
}

fn check_register(history: &History) -> Verdict {
    register::check(&operations(history), &RegisterConfig::default())
}

fn check_lists(history: &History) -> Verdict {
    list_append::check(&operations(history))
}

fn check_blobs(history: &History) -> Verdict {
    durability::check(&operations(history))
}

fn kinds(verdict: &Verdict) -> Vec<&'static str> {
    verdict.anomalies.iter().map(Anomaly::kind).collect()
}

/// Returns the register anomaly's failing sub-history as `(invoke index, op)` pairs.
fn failing_ops(verdict: &Verdict) -> Vec<(u64, Op)> {
    match verdict.anomalies.as_slice() {
        [Anomaly::NonLinearizable { ops, .. }] => ops.iter().map(|o| (o.invoke_index, o.op.clone())).collect(),
        other => panic!("expected one non-linearizable anomaly, got {other:#?}"),
    }
}

fn read(key: &str) -> Op {
    Op::read(key)
}

fn read_ok(key: &str, value: Option<&str>) -> Op {
    Op::read_ok(key, value)
}

fn write(key: &str, value: &str) -> Op {
    Op::write(key, value)
}

fn cas(key: &str, expected: Option<&str>, new: &str) -> Op {
    Op::cas(key, expected, new)
}

// ---------------------------------------------------------------------------------------------
// Register (linearizable tags)
// ---------------------------------------------------------------------------------------------

#[test]
fn sequential_register_history_is_valid() {
    let mut r = Recorder::new();
    r.call(1, read("t"), read_ok("t", None))
        .call(1, write("t", "d1"), write("t", "d1"))
        .call(2, read("t"), read_ok("t", Some("d1")))
        .call(2, cas("t", Some("d1"), "d2"), cas("t", Some("d1"), "d2"))
        .call(1, read("t"), read_ok("t", Some("d2")))
        .call(3, write("t", "d3"), write("t", "d3"))
        .call(1, read("t"), read_ok("t", Some("d3")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
    assert!(verdict.anomalies.is_empty());
    assert_eq!(verdict.stats.ops_checked, 7);
    assert_eq!(verdict.stats.keys, 1);
}

#[test]
fn concurrent_writes_let_a_read_see_either_value() {
    for seen in ["d1", "d2"] {
        let mut r = Recorder::new();
        r.invoke(1, write("t", "d1"))
            .invoke(2, write("t", "d2"))
            .invoke(3, read("t"))
            .ok(1, write("t", "d1"))
            .ok(2, write("t", "d2"))
            .ok(3, read_ok("t", Some(seen)))
            // Afterwards the value is settled: a later read sees the same as long as nothing writes.
            .call(4, read("t"), read_ok("t", Some(seen)));
        let verdict = check_register(&r.history());
        assert_eq!(verdict.valid, Validity::Valid, "read of {seen}: {verdict}");
    }
}

#[test]
fn concurrent_writes_then_reads_disagreeing_is_invalid() {
    let mut r = Recorder::new();
    r.invoke(1, write("t", "d1"))
        .invoke(2, write("t", "d2"))
        .ok(1, write("t", "d1"))
        .ok(2, write("t", "d2"))
        .call(3, read("t"), read_ok("t", Some("d1")))
        .call(3, read("t"), read_ok("t", Some("d2")));
    assert_eq!(check_register(&r.history()).valid, Validity::Invalid);
}

#[test]
fn stale_read_is_invalid_with_a_minimal_sub_history() {
    let mut r = Recorder::new();
    r.call(5, read("t"), read_ok("t", None))
        .call(1, write("t", "d1"), write("t", "d1"))
        .call(5, read("t"), read_ok("t", Some("d1")))
        .call(2, write("t", "d2"), write("t", "d2"))
        .call(6, read("other"), read_ok("other", None))
        .call(3, read("t"), read_ok("t", Some("d1")))
        .call(5, read("t"), read_ok("t", Some("d1")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid, "{verdict}");
    let ops = failing_ops(&verdict);
    // The write of d1 stays because the read observed it; the second write and the stale read are
    // the anomaly. Nothing else is needed.
    assert_eq!(ops, vec![(2, write("t", "d1")), (6, write("t", "d2")), (10, read_ok("t", Some("d1")))]);
    let Anomaly::NonLinearizable { key, minimal, explanation, frontier, .. } = &verdict.anomalies[0] else {
        unreachable!()
    };
    assert_eq!(key, "t");
    assert!(minimal);
    assert_eq!(
        explanation,
        "read by p3 [#10..#11] returned d1, but every furthest linearization has the tag at d2 \
         (e.g. after write d1 by p1 [#2..#3], then write d2 by p2 [#6..#7])"
    );
    assert_eq!(frontier[0].linearized, vec![2, 6]);
    assert_eq!(frontier[0].state.as_deref(), Some("d2"));
    assert_eq!(frontier[0].blocked[0].invoke_index, 10);
    // The human summary names the tag and lists the operations.
    let text = verdict.to_string();
    assert!(text.contains("non-linearizable tag t"), "{text}");
    assert!(text.contains("p3 ok read t -> d1 [#10..#11]"), "{text}");
}

#[test]
fn lost_update_two_cas_from_the_same_value_both_ok_is_invalid() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d0"), write("t", "d0"))
        .call(9, read("t"), read_ok("t", Some("d0")))
        .invoke(1, cas("t", Some("d0"), "d1"))
        .invoke(2, cas("t", Some("d0"), "d2"))
        .ok(2, cas("t", Some("d0"), "d2"))
        .ok(1, cas("t", Some("d0"), "d1"));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid, "{verdict}");
    let ops = failing_ops(&verdict);
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(ops.contains(&(4, cas("t", Some("d0"), "d1"))));
    assert!(ops.contains(&(5, cas("t", Some("d0"), "d2"))));
}

#[test]
fn lost_update_two_creations_if_none_match_both_ok_is_invalid() {
    let mut r = Recorder::new();
    r.invoke(1, cas("t", None, "d1"))
        .invoke(2, cas("t", None, "d2"))
        .ok(1, cas("t", None, "d1"))
        .ok(2, cas("t", None, "d2"));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid);
    assert_eq!(failing_ops(&verdict).len(), 2);
}

#[test]
fn failed_cas_did_not_happen_even_if_its_precondition_held() {
    // The server answered 412 although the tag held d1 in every linearization: a `fail` means the
    // update did not take effect, which is all the register promises.
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, cas("t", Some("d1"), "d2"))
        .fail(2, cas("t", Some("d1"), "d2"))
        .call(3, read("t"), read_ok("t", Some("d1")));
    assert_eq!(check_register(&r.history()).valid, Validity::Valid);
}

#[test]
fn failed_cas_whose_effect_is_visible_is_invalid() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, cas("t", Some("d1"), "d2"))
        .fail(2, cas("t", Some("d1"), "d2"))
        .call(3, read("t"), read_ok("t", Some("d2")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid);
    let Anomaly::NonLinearizable { explanation, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(
        explanation,
        "read by p3 [#4..#5] returned d2, a value no update that may have taken effect wrote to tag t"
    );
}

#[test]
fn info_write_whose_effect_appears_later_is_valid() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, write("t", "d2"))
        .info(2, write("t", "d2"))
        .call(3, read("t"), read_ok("t", Some("d1")))
        .call(3, read("t"), read_ok("t", Some("d1")))
        .call(3, read("t"), read_ok("t", Some("d2")))
        .call(4, read("t"), read_ok("t", Some("d2")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
}

#[test]
fn info_write_that_appears_disappears_and_reappears_is_invalid() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, write("t", "d2"))
        .info(2, write("t", "d2"))
        .call(3, read("t"), read_ok("t", Some("d2")))
        .call(3, read("t"), read_ok("t", Some("d1")))
        .call(3, read("t"), read_ok("t", Some("d2")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid, "{verdict}");
    // Already the disappearance is impossible: once d2 was read, d1 (written once, before d2's
    // write began) cannot return. The reappearance is not needed to show it.
    let ops = failing_ops(&verdict);
    assert_eq!(
        ops,
        vec![
            (0, write("t", "d1")),
            (2, write("t", "d2")),
            (4, read_ok("t", Some("d2"))),
            (6, read_ok("t", Some("d1")))
        ]
    );
    let Anomaly::NonLinearizable { ops, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert!(ops[1].is_info());
}

#[test]
fn info_write_never_taking_effect_is_valid_and_info_is_never_a_failure() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, cas("t", Some("d1"), "d2"))
        .info(2, cas("t", Some("d1"), "d2"))
        .call(3, read("t"), read_ok("t", Some("d1")));
    assert_eq!(check_register(&r.history()).valid, Validity::Valid);
}

#[test]
fn unfinished_invocation_counts_as_info() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1"))
        .invoke(2, write("t", "d2"))
        .call(3, read("t"), read_ok("t", Some("d2")))
        .call(3, read("t"), read_ok("t", Some("d2")));
    let history = r.history();
    let ops = operations(&history);
    assert!(ops[1].is_info());
    assert_eq!(ops[1].completion_index, None);
    assert_eq!(check_register(&history).valid, Validity::Valid);
}

#[test]
fn info_read_constrains_nothing() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1")).invoke(2, read("t")).info(2, read("t")).call(
        3,
        read("t"),
        read_ok("t", Some("d1")),
    );
    assert_eq!(check_register(&r.history()).valid, Validity::Valid);
}

#[test]
fn reads_of_a_nonexistent_tag() {
    // A tag that was never pushed reads as absent; If-None-Match creates it once.
    let mut r = Recorder::new();
    r.call(1, read("t"), read_ok("t", None))
        .call(2, cas("t", None, "d1"), cas("t", None, "d1"))
        .invoke(3, cas("t", None, "d2"))
        .fail(3, cas("t", None, "d2"))
        .call(1, read("t"), read_ok("t", Some("d1")));
    assert_eq!(check_register(&r.history()).valid, Validity::Valid);

    // Reading it absent after a completed write is a stale read.
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1")).call(2, read("t"), read_ok("t", None));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid);
    let Anomaly::NonLinearizable { explanation, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert!(
        explanation.contains("returned absent, but every furthest linearization has the tag at d1"),
        "{explanation}"
    );
}

#[test]
fn read_of_a_value_nobody_wrote_shrinks_to_the_read() {
    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1")).call(2, read("t"), read_ok("t", Some("d1"))).call(
        2,
        read("t"),
        read_ok("t", Some("d9")),
    );
    let verdict = check_register(&r.history());
    assert_eq!(failing_ops(&verdict), vec![(4, read_ok("t", Some("d9")))]);
}

#[test]
fn keys_are_checked_independently() {
    let mut r = Recorder::new();
    r.invoke(1, write("a", "x1"))
        .invoke(2, write("b", "y1"))
        .ok(1, write("a", "x1"))
        .ok(2, write("b", "y1"))
        .call(1, read("b"), read_ok("b", Some("y1")))
        .call(2, write("b", "y2"), write("b", "y2"))
        .call(1, read("a"), read_ok("a", Some("x1")))
        .call(1, read("b"), read_ok("b", Some("y1")));
    let verdict = check_register(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid);
    assert_eq!(verdict.stats.keys, 2);
    let Anomaly::NonLinearizable { key, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(key, "b");
}

#[test]
fn search_limit_is_unknown_never_valid() {
    let mut r = Recorder::new();
    for p in 0..6 {
        r.invoke(p, write("t", &format!("d{p}")));
    }
    for p in 0..6 {
        r.ok(p, write("t", &format!("d{p}")));
    }
    r.call(9, read("t"), read_ok("t", Some("d0")));
    let config = RegisterConfig { max_states_per_key: 2, ..RegisterConfig::default() };
    let verdict = register::check(&operations(&r.history()), &config);
    assert_eq!(verdict.valid, Validity::Unknown, "{verdict}");
    assert!(!verdict.is_valid());
    assert_eq!(verdict.undecided.len(), 1);
    assert!(verdict.undecided[0].reason.contains("search limit"), "{:?}", verdict.undecided);
    // With the default budget the same history is decided.
    assert_eq!(check_register(&r.history()).valid, Validity::Valid);
}

#[test]
fn shrinking_can_be_turned_off() {
    let mut r = Recorder::new();
    r.call(3, read("u"), read_ok("u", None))
        .call(1, write("t", "d1"), write("t", "d1"))
        .call(2, write("t", "d2"), write("t", "d2"))
        .call(3, read("t"), read_ok("t", Some("d2")))
        .call(3, read("t"), read_ok("t", Some("d1")));
    let config = RegisterConfig { shrink: false, ..RegisterConfig::default() };
    let verdict = register::check(&operations(&r.history()), &config);
    let Anomaly::NonLinearizable { ops, minimal, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(ops.len(), 4);
    assert!(!minimal);
}

#[test]
fn simulated_linearizable_register_history_is_valid_and_a_stale_read_is_found() {
    let history = simulate_register(7, 2_000, 6, 16, 6);
    let ops = operations(&history);
    assert_eq!(ops.len(), 2_000);
    assert!(ops.iter().filter(|o| o.is_info()).count() > 20, "the simulation exercises info ops");
    assert!(ops.iter().filter(|o| o.is_fail()).count() > 20, "the simulation exercises failed cas");

    let started = Instant::now();
    let verdict = register::check(&ops, &RegisterConfig::default());
    assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
    assert!(started.elapsed().as_secs() < 20, "took {:?}", started.elapsed());

    let (mutated, stale_read) = make_one_read_stale(&history);
    let verdict = register::check(&operations(&mutated), &RegisterConfig::default());
    assert_eq!(verdict.valid, Validity::Invalid, "{verdict}");
    let Anomaly::NonLinearizable { ops, minimal, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(verdict.anomalies.len(), 1);
    assert!(*minimal);
    assert!(ops.iter().any(|o| o.invoke_index == stale_read), "{verdict}");
    assert!(ops.len() <= 6, "{verdict}");
}

#[test]
fn simulated_histories_with_many_seeds_are_valid() {
    for seed in 0..20 {
        let history = simulate_register(seed, 300, 2, 12, 15);
        let verdict = check_register(&history);
        assert_eq!(verdict.valid, Validity::Valid, "seed {seed}: {verdict}");
    }
}

// ---------------------------------------------------------------------------------------------
// List-append
// ---------------------------------------------------------------------------------------------

fn append(key: &str, element: u64) -> Op {
    Op::append(key, element)
}

fn list(key: &str, value: &[u64]) -> Op {
    Op::read_list_ok(key, value.to_vec())
}

#[test]
fn list_append_valid_history_with_concurrency_and_info() {
    let mut r = Recorder::new();
    r.call(1, append("k", 1), append("k", 1))
        .invoke(2, append("k", 2))
        .invoke(3, Op::read_list("k"))
        .ok(3, list("k", &[1]))
        .ok(2, append("k", 2))
        .invoke(4, append("k", 3))
        .info(4, append("k", 3))
        .invoke(5, append("k", 4))
        .fail(5, append("k", 4))
        .call(6, Op::read_list("k"), list("k", &[1, 2]))
        .call(6, Op::read_list("k"), list("k", &[1, 2, 3]))
        .call(7, Op::read_list("j"), list("j", &[]));
    let verdict = check_lists(&r.history());
    assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
    assert_eq!(verdict.stats.keys, 2);
}

#[test]
fn list_append_duplicate_element() {
    let mut r = Recorder::new();
    r.call(1, append("k", 1), append("k", 1)).call(2, Op::read_list("k"), list("k", &[1, 1]));
    let verdict = check_lists(&r.history());
    assert_eq!(kinds(&verdict), vec!["duplicate_elements"]);
    let Anomaly::DuplicateElements { elements, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(elements, &vec![1]);
}

#[test]
fn list_append_lost_append_in_final_read() {
    let mut r = Recorder::new();
    r.call(1, append("k", 1), append("k", 1))
        .call(1, append("k", 2), append("k", 2))
        .call(1, append("k", 3), append("k", 3))
        .call(2, Op::read_list("k"), list("k", &[1, 3]));
    let verdict = check_lists(&r.history());
    assert_eq!(verdict.valid, Validity::Invalid);
    // [1, 3] also disagrees with nothing longer, so the lost append is the only finding.
    assert_eq!(kinds(&verdict), vec!["lost_append"]);
    let Anomaly::LostAppend { element, append: a, final_read, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(*element, 2);
    assert_eq!(a.invoke_index, 2);
    assert_eq!(final_read.invoke_index, 6);
}

#[test]
fn list_append_stale_read() {
    let mut r = Recorder::new();
    r.call(1, append("k", 1), append("k", 1))
        .call(1, append("k", 2), append("k", 2))
        .call(2, Op::read_list("k"), list("k", &[1]))
        .call(2, Op::read_list("k"), list("k", &[1, 2]));
    let verdict = check_lists(&r.history());
    assert_eq!(kinds(&verdict), vec!["stale_read"]);
    let Anomaly::StaleRead { missing, read, appends, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(missing, &vec![2]);
    assert_eq!(read.invoke_index, 4);
    assert_eq!(appends[0].invoke_index, 2);
}

#[test]
fn list_append_concurrent_append_may_be_missing() {
    let mut r = Recorder::new();
    r.invoke(1, append("k", 1)).call(2, Op::read_list("k"), list("k", &[])).ok(1, append("k", 1));
    assert_eq!(check_lists(&r.history()).valid, Validity::Valid);
}

#[test]
fn list_append_non_prefix_reads() {
    let mut r = Recorder::new();
    r.invoke(1, append("k", 1))
        .invoke(2, append("k", 2))
        .ok(1, append("k", 1))
        .ok(2, append("k", 2))
        .call(3, Op::read_list("k"), list("k", &[1, 2]))
        .call(4, Op::read_list("k"), list("k", &[2, 1]));
    let verdict = check_lists(&r.history());
    assert_eq!(kinds(&verdict), vec!["incompatible_order"]);
    let Anomaly::IncompatibleOrder { position, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(*position, 0);
}

#[test]
fn list_append_failed_append_appearing() {
    let mut r = Recorder::new();
    r.invoke(1, append("k", 1)).fail(1, append("k", 1)).call(2, Op::read_list("k"), list("k", &[1]));
    assert_eq!(kinds(&check_lists(&r.history())), vec!["failed_append_visible"]);
}

#[test]
fn list_append_phantom_element_and_element_from_another_key() {
    let mut r = Recorder::new();
    r.call(1, append("j", 5), append("j", 5)).call(2, Op::read_list("k"), list("k", &[5]));
    let verdict = check_lists(&r.history());
    assert_eq!(kinds(&verdict), vec!["phantom_element"]);
}

#[test]
fn list_append_element_visible_before_its_append_began() {
    let mut r = Recorder::new();
    r.call(2, Op::read_list("k"), list("k", &[1])).call(1, append("k", 1), append("k", 1)).call(
        2,
        Op::read_list("k"),
        list("k", &[1]),
    );
    assert_eq!(kinds(&check_lists(&r.history())), vec!["element_before_append"]);
}

#[test]
fn list_append_info_element_that_vanishes_is_a_read_regression() {
    let mut r = Recorder::new();
    r.invoke(1, append("k", 1)).info(1, append("k", 1)).call(2, Op::read_list("k"), list("k", &[1])).call(
        2,
        Op::read_list("k"),
        list("k", &[]),
    );
    assert_eq!(kinds(&check_lists(&r.history())), vec!["read_regression"]);
}

// ---------------------------------------------------------------------------------------------
// Blob durability
// ---------------------------------------------------------------------------------------------

const D1: &str = "sha256:1111";
const D2: &str = "sha256:2222";

/// Puts D1 (ok, 10 B) and D2 (info, 20 B), then the final reads of both on n1 and n2.
fn blob_history(final_reads: &[(&str, &str, Op)]) -> History {
    let mut r = Recorder::new();
    r.invoke(1, Op::put_blob(D1, 10)).on("n1").ok(1, Op::put_blob(D1, 10)).on("n1");
    r.invoke(2, Op::put_blob(D2, 20)).on("n2").info(2, Op::put_blob(D2, 20));
    for (i, (node, digest, completion)) in final_reads.iter().enumerate() {
        let p = 100 + i as u64;
        r.invoke(p, Op::get_blob(*digest)).on(node).ok(p, completion.clone()).on(node);
    }
    r.history()
}

#[test]
fn durability_valid_when_every_node_serves_acknowledged_blobs() {
    let history = blob_history(&[
        ("n1", D1, Op::get_blob_found(D1, "1111", 10)),
        ("n2", D1, Op::get_blob_found(D1, "sha256:1111", 10)),
        // The info upload is readable on one node and not on the other: both fine.
        ("n1", D2, Op::get_blob_found(D2, "2222", 20)),
        ("n2", D2, Op::get_blob_missing(D2)),
    ]);
    let verdict = check_blobs(&history);
    assert_eq!(verdict.valid, Validity::Valid, "{verdict}");
    assert_eq!(verdict.stats.keys, 2);
}

#[test]
fn durability_missing_blob_on_one_node() {
    let history = blob_history(&[("n1", D1, Op::get_blob_found(D1, "1111", 10)), ("n2", D1, Op::get_blob_missing(D1))]);
    let verdict = check_blobs(&history);
    assert_eq!(kinds(&verdict), vec!["blob_missing"]);
    let Anomaly::BlobMissing { node, final_read, read, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(node.as_deref(), Some("n2"));
    assert!(final_read);
    assert!(read.is_some());
    assert!(verdict.to_string().contains("missing on n2"), "{verdict}");
}

#[test]
fn durability_node_without_a_final_read_of_an_acknowledged_blob() {
    let history = blob_history(&[("n1", D1, Op::get_blob_found(D1, "1111", 10)), ("n2", D2, Op::get_blob_missing(D2))]);
    let verdict = check_blobs(&history);
    assert_eq!(kinds(&verdict), vec!["blob_missing"]);
    let Anomaly::BlobMissing { node, read, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!(node.as_deref(), Some("n2"));
    assert!(read.is_none());
}

#[test]
fn durability_wrong_size_or_content() {
    let history =
        blob_history(&[("n1", D1, Op::get_blob_found(D1, "1111", 9)), ("n2", D1, Op::get_blob_found(D1, "ffff", 10))]);
    let verdict = check_blobs(&history);
    assert_eq!(kinds(&verdict), vec!["blob_corrupt", "blob_corrupt"]);
    let Anomaly::BlobCorrupt { node, expected_size, observed_size, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert_eq!((node.as_deref(), *expected_size, *observed_size), (Some("n1"), Some(10), 9));
}

#[test]
fn durability_read_after_write_miss_during_the_test() {
    let mut r = Recorder::new();
    r.call(1, Op::put_blob(D1, 10), Op::put_blob(D1, 10))
        .invoke(2, Op::get_blob(D1))
        .on("n3")
        .ok(2, Op::get_blob_missing(D1))
        .call(3, Op::put_blob(D2, 20), Op::put_blob(D2, 20))
        .invoke(4, Op::get_blob(D1))
        .on("n3")
        .ok(4, Op::get_blob_found(D1, "1111", 10))
        .invoke(4, Op::get_blob(D2))
        .on("n3")
        .ok(4, Op::get_blob_found(D2, "2222", 20));
    let verdict = check_blobs(&r.history());
    assert_eq!(kinds(&verdict), vec!["blob_missing"]);
    let Anomaly::BlobMissing { final_read, .. } = &verdict.anomalies[0] else { unreachable!() };
    assert!(!final_read);
}

#[test]
fn durability_without_final_reads_is_unknown() {
    let mut r = Recorder::new();
    r.call(1, Op::put_blob(D1, 10), Op::put_blob(D1, 10));
    let verdict = check_blobs(&r.history());
    assert_eq!(verdict.valid, Validity::Unknown);
}

// ---------------------------------------------------------------------------------------------
// History model
// ---------------------------------------------------------------------------------------------

fn every_op_kind() -> History {
    let mut r = Recorder::new();
    r.invoke(1, read("t"))
        .on("n1")
        .ok(1, read_ok("t", None))
        .invoke(2, write("t", "d"))
        .info(2, write("t", "d"))
        .call(1, read("t"), read_ok("t", Some("d")))
        .invoke(3, cas("t", None, "e"))
        .fail(3, cas("t", None, "e"))
        .call(3, cas("t", Some("d"), "e"), cas("t", Some("d"), "e"))
        .call(4, append("k", 7), append("k", 7))
        .call(4, Op::read_list("k"), list("k", &[7]))
        .call(5, Op::put_blob(D1, 10), Op::put_blob(D1, 10))
        .call(5, Op::get_blob(D1), Op::get_blob_found(D1, "1111", 10))
        .call(5, Op::get_blob(D2), Op::get_blob_missing(D2))
        .invoke(6, read("t"));
    let mut events = r.history().events().to_vec();
    assert_eq!(events[3].kind, EventType::Info);
    events[3].error = Some("timeout after 5s".into());
    History::from_events(events)
}

#[test]
fn json_lines_round_trip() {
    let history = every_op_kind();
    let mut buffer = Vec::new();
    history.write_json_lines(&mut buffer).unwrap();
    let text = String::from_utf8(buffer.clone()).unwrap();
    assert_eq!(text.lines().count(), history.len());
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"index":0,"type":"invoke","process":1,"time_ns":0,"node":"n1","f":"read","key":"t"}"#
    );
    assert!(
        text.contains(r#""type":"info","process":2,"time_ns":3000,"error":"timeout after 5s","f":"write""#),
        "{text}"
    );
    assert!(text.contains(r#""f":"get_blob","digest":"sha256:2222","value":{"outcome":"missing"}"#), "{text}");
    let back = History::read_json_lines(buffer.as_slice()).unwrap();
    assert_eq!(back, history);
    // Blank lines are tolerated.
    let spaced = text.replace('\n', "\n\n");
    assert_eq!(History::read_json_lines(spaced.as_bytes()).unwrap(), history);
}

#[test]
fn json_decode_error_names_the_line() {
    let input = "{\"index\":0,\"type\":\"invoke\",\"process\":1,\"time_ns\":0,\"f\":\"read\",\"key\":\"t\"}\n{\"index\":1,\"type\":\"bogus\"}\n";
    let error = History::read_json_lines(input.as_bytes()).unwrap_err();
    assert!(matches!(error, JepsenError::Decode { line: 2, .. }), "{error}");
}

#[test]
fn check_all_runs_every_workload_and_summarises() {
    let report = check_all(&every_op_kind()).unwrap();
    assert!(report.register.is_some() && report.list_append.is_some() && report.durability.is_some());
    // The reads of D1 name no node, so the history has no final reads: durability is undecided.
    assert_eq!(report.valid, Validity::Unknown, "{report}");
    assert_eq!(report.register.as_ref().unwrap().valid, Validity::Valid);
    let text = report.to_string();
    assert!(text.contains("register: valid"), "{text}");
    assert!(text.ends_with("overall: UNKNOWN"), "{text}");

    let mut r = Recorder::new();
    r.call(1, write("t", "d1"), write("t", "d1")).call(2, read("t"), read_ok("t", None)).call(
        3,
        append("k", 1),
        append("k", 1),
    );
    let report = check_all(&r.history()).unwrap();
    assert_eq!(report.valid, Validity::Invalid);
    assert!(report.durability.is_none());
    assert_eq!(report.anomalies().count(), 1);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["valid"], "invalid");
    assert_eq!(json["register"]["anomalies"][0]["kind"], "non_linearizable");
}

fn malformed(events: Vec<Event>) -> JepsenError {
    History::from_events(events).operations().expect_err("malformed history")
}

fn event(index: u64, kind: EventType, process: u64, op: Op) -> Event {
    Event::new(index, kind, ProcessId(process), index, op)
}

#[test]
fn malformed_histories_are_rejected() {
    use EventType::{Fail, Info, Invoke, Ok};
    let error = malformed(vec![event(0, Ok, 1, write("t", "d"))]);
    assert!(matches!(error, JepsenError::CompletionWithoutInvoke { index: 0, .. }), "{error}");

    let error = malformed(vec![event(0, Invoke, 1, write("t", "d")), event(1, Invoke, 1, read("t"))]);
    assert!(matches!(error, JepsenError::ConcurrentInvoke { index: 1, outstanding: 0, .. }), "{error}");

    let error = malformed(vec![
        event(0, Invoke, 1, write("t", "d")),
        event(1, Info, 1, write("t", "d")),
        event(2, Invoke, 1, read("t")),
    ]);
    assert!(matches!(error, JepsenError::ProcessReusedAfterInfo { index: 2, info_index: 1, .. }), "{error}");

    let error = malformed(vec![event(0, Invoke, 1, write("t", "d")), event(1, Fail, 1, write("t", "e"))]);
    assert!(matches!(error, JepsenError::MismatchedCompletion { index: 1, invoke_index: 0, .. }), "{error}");

    let error = malformed(vec![event(0, Invoke, 1, read("t")), event(1, Ok, 1, read("t"))]);
    assert!(matches!(error, JepsenError::MissingResult { index: 1, f: "read" }), "{error}");

    let error = malformed(vec![event(3, Invoke, 1, read("t")), event(3, Ok, 1, read_ok("t", None))]);
    assert!(matches!(error, JepsenError::IndexNotIncreasing { index: 3, previous: 3 }), "{error}");

    // check_all refuses to judge a malformed history.
    assert!(check_all(&History::from_events(vec![event(0, Ok, 1, write("t", "d"))])).is_err());
}

#[test]
fn a_process_may_continue_after_ok_and_fail() {
    use EventType::{Fail, Invoke, Ok};
    let history = History::from_events(vec![
        event(0, Invoke, 1, cas("t", None, "d")),
        event(1, Fail, 1, cas("t", None, "d")),
        event(2, Invoke, 1, read("t")),
        event(3, Ok, 1, read_ok("t", None)),
        event(4, Invoke, 1, write("t", "d")),
    ]);
    let ops = history.operations().unwrap();
    assert_eq!(ops.len(), 3);
    assert!(ops[0].is_fail() && ops[1].is_ok() && ops[2].is_info());
}
