//! Simulated histories of a linearizable register, for testing and timing the checkers: many
//! clients, random overlap, `info` outcomes whose effect lands late or never. Linearizable by
//! construction, and a mutation that makes one read stale must then be caught.

use crate::history::{EventType, History, Op, Operation, ProcessId};
use crate::rng::Rng;

struct Pending {
    op: Op,
    /// The completion once the operation took effect: its op and whether it succeeded.
    applied: Option<(Op, bool)>,
}

/// Simulates `clients` concurrent clients doing `total` register operations over `keys` tags of
/// one atomic register each. Every operation takes effect at a random point between its
/// invocation and completion; `info_percent` of them end `info`, and an `info` one that had not
/// taken effect yet may take effect later, or never. The history is linearizable by construction.
pub fn simulate_register(seed: u64, total: usize, keys: usize, clients: usize, info_percent: usize) -> History {
    let mut rng = Rng::new(seed);
    let mut history = History::new();
    let mut state: Vec<Option<String>> = vec![None; keys];
    let mut written: Vec<Vec<String>> = vec![Vec::new(); keys];
    let mut processes: Vec<u64> = (0..clients as u64).collect();
    let mut pending: Vec<Option<Pending>> = (0..clients).map(|_| None).collect();
    let mut ghosts: Vec<Op> = Vec::new();
    let mut next_process = clients as u64;
    let mut next_digest = 0u64;
    let mut invoked = 0;
    let mut clock = 0u64;

    fn apply(op: &Op, state: &mut [Option<String>]) -> (Op, bool) {
        match op {
            Op::Read { key, .. } => {
                let k = key_index(key);
                (Op::read_ok(key.clone(), state[k].as_deref()), true)
            }
            Op::Write { key, value, .. } => {
                state[key_index(key)] = Some(value.clone());
                (op.clone(), true)
            }
            Op::Cas { key, expected, new } => {
                let k = key_index(key);
                let holds = state[k] == *expected;
                if holds {
                    state[k] = Some(new.clone());
                }
                (op.clone(), holds)
            }
            _ => unreachable!("register ops only"),
        }
    }
    fn key_index(key: &str) -> usize {
        key.trim_start_matches("tag").parse().expect("simulated key")
    }

    while invoked < total || pending.iter().any(Option::is_some) {
        clock += 1 + rng.below(1_000);
        if !ghosts.is_empty() && rng.below(100) < 3 {
            let ghost = ghosts.swap_remove(rng.below(ghosts.len() as u64) as usize);
            if rng.below(100) < 50 {
                apply(&ghost, &mut state);
            }
            continue;
        }
        let c = rng.below(clients as u64) as usize;
        let process = ProcessId(processes[c]);
        match pending[c].take() {
            None if invoked < total => {
                let k = rng.below(keys as u64) as usize;
                let key = format!("tag{k}");
                next_digest += 1;
                let fresh = format!("sha256:{next_digest:064x}");
                let op = match rng.below(100) {
                    0..40 => Op::read(&key),
                    40..65 => Op::write(&key, fresh),
                    _ => {
                        let expected = if rng.below(100) < 60 || written[k].is_empty() {
                            state[k].clone()
                        } else {
                            Some(written[k][rng.below(written[k].len() as u64) as usize].clone())
                        };
                        Op::Cas { key: key.clone(), expected, new: fresh }
                    }
                };
                if let Op::Write { value, .. } | Op::Cas { new: value, .. } = &op {
                    written[k].push(value.clone());
                }
                history.record(EventType::Invoke, process, clock, op.clone()).node = Some(format!("n{}", c % 3));
                pending[c] = Some(Pending { op, applied: None });
                invoked += 1;
            }
            None => {}
            Some(Pending { op, applied: None }) => {
                if rng.below(100) < (info_percent / 2) as u64 {
                    // The answer is lost before the operation took effect; it may still do so.
                    history.record(EventType::Info, process, clock, op.clone()).error = Some("timeout".into());
                    processes[c] = next_process;
                    next_process += 1;
                    if !matches!(op, Op::Read { .. }) {
                        ghosts.push(op);
                    }
                } else {
                    let applied = apply(&op, &mut state);
                    pending[c] = Some(Pending { op, applied: Some(applied) });
                }
            }
            Some(Pending { op, applied: Some((completion, succeeded)) }) => {
                if rng.below(100) < (info_percent / 2) as u64 {
                    history.record(EventType::Info, process, clock, op).error = Some("timeout".into());
                    processes[c] = next_process;
                    next_process += 1;
                } else {
                    let kind = if succeeded { EventType::Ok } else { EventType::Fail };
                    history.record(kind, process, clock, completion);
                }
            }
        }
    }
    history
}

/// Makes one `ok` read return a value that was overwritten, in real time, before the read began:
/// the value was written once (values are unique) by an `ok` write that completed before another
/// `ok` update was invoked, which itself completed before the read was invoked. Returns the new
/// history and the read's invocation index.
pub fn make_one_read_stale(history: &History) -> (History, u64) {
    let ops = history.operations().expect("a simulated history is well formed");
    let updates = |key: &str| -> Vec<&Operation> {
        ops.iter()
            .filter(|o| o.is_ok() && o.op.key() == key && matches!(o.op, Op::Write { .. } | Op::Cas { .. }))
            .collect()
    };
    let new_value = |o: &Operation| match &o.op {
        Op::Write { value, .. } | Op::Cas { new: value, .. } => value.clone(),
        _ => unreachable!(),
    };
    for candidate in ops.iter().skip(ops.len() / 2) {
        let Op::Read { key, value: Some(observed) } = &candidate.op else { continue };
        if !candidate.is_ok() {
            continue;
        }
        let updates = updates(key);
        let later = updates.iter().filter(|w1| w1.precedes(candidate)).max_by_key(|w1| w1.invoke_index);
        let Some(w1) = later else { continue };
        let Some(w0) = updates.iter().find(|w0| w0.precedes(w1) && Some(new_value(w0)) != *observed) else {
            continue;
        };
        let stale = new_value(w0);
        let completion = candidate.completion_index.expect("ok");
        let events = history
            .events()
            .iter()
            .cloned()
            .map(|mut e| {
                if e.index == completion {
                    e.op = Op::read_ok(key.clone(), Some(&stale));
                }
                e
            })
            .collect();
        return (History::from_events(events), candidate.invoke_index);
    }
    panic!("the simulation produced no read to make stale");
}
