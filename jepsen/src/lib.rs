//! Gati's Jepsen-style harness: it runs a real cluster under faults, records every client operation
//! and checks the recorded history against the guarantees the registry promises.
