//! Rate limits: a keyed GCRA limiter (the token bucket without the refill timer) for request
//! budgets, and a failed-sign-in guard that locks an account name out after repeated failures.
//!
//! Both are per node: a cluster behind a load balancer admits up to the node count times the
//! configured rates, which the documentation says. They hold only recent keys: an entry whose
//! budget is full again carries no information and is dropped, and the table is capped so that
//! a flood of distinct keys (spoofed names, many addresses) cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Independent shards of each table, so concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;
/// Most keys one table holds; beyond it, new keys are refused until old ones expire.
const MAX_KEYS: usize = 200_000;

/// A rate with a burst: `per_second` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl Rate {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second.max(1e-9))
    }

    /// How far ahead of now the theoretical arrival time may run: `burst - 1` intervals, so
    /// exactly `burst` requests pass at once.
    fn tolerance(&self) -> Duration {
        self.interval().saturating_mul(self.burst.max(1) - 1)
    }
}

/// A table of GCRA states: per key, the theoretical arrival time of the next request.
pub struct Limiter {
    rate: Rate,
    shards: Vec<Mutex<HashMap<String, Instant>>>,
}

impl Limiter {
    /// A limiter allowing `rate` per key.
    pub fn new(rate: Rate) -> Limiter {
        Limiter { rate, shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Instant>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        &self.shards[(hasher.finish() as usize) % SHARDS]
    }

    /// Takes one request from `key`'s budget at `now`; `Err(wait)` when it is spent, with how
    /// long until one more request fits.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let interval = self.rate.interval();
        let tolerance = self.rate.tolerance();
        let mut table = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !table.contains_key(key) && table.len() >= MAX_KEYS / SHARDS {
            table.retain(|_, tat| *tat > now);
            if table.len() >= MAX_KEYS / SHARDS {
                return Err(interval);
            }
        }
        let tat = table.get(key).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(tolerance).unwrap_or(now);
        if now < allowed_at {
            return Err(allowed_at - now);
        }
        table.insert(key.to_owned(), tat + interval);
        Ok(())
    }
}

/// The table key of a login name: a fixed-size digest, so a long name costs no more memory.
fn guard_key(login: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(login.as_bytes()).into()
}

/// The state of one account name's failed sign-ins.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
    lockouts: u32,
}

/// Locks an account name out of password sign-in after `threshold` failures within `window`:
/// first for `base`, doubling with each further lockout up to `max`. A success clears it.
pub struct LoginGuard {
    threshold: u32,
    window: Duration,
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<[u8; 32], Failures>>,
}

impl LoginGuard {
    /// A guard with the given policy.
    pub fn new(threshold: u32, window: Duration, base: Duration, max: Duration) -> LoginGuard {
        LoginGuard { threshold: threshold.max(1), window, base, max, failures: Mutex::new(HashMap::new()) }
    }

    /// Whether `login` may try a password at `now`; `Err(wait)` while it is locked out.
    pub fn may_try(&self, login: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match failures.get(&guard_key(login)).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt for `login` at `now`. When the table is full of live entries a
    /// new name is not tracked (the per-address budget still bounds its guesses).
    pub fn failed(&self, login: &str, now: Instant) {
        let key = guard_key(login);
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_KEYS && !failures.contains_key(&key) {
            let window = self.window;
            failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.first) < window);
            if failures.len() >= MAX_KEYS {
                return;
            }
        }
        let entry = failures.entry(key).or_insert(Failures { count: 0, first: now, locked_until: None, lockouts: 0 });
        if now.duration_since(entry.first) >= self.window {
            entry.count = 0;
            entry.first = now;
        }
        entry.count += 1;
        if entry.count >= self.threshold {
            let lock = self.base.saturating_mul(1u32 << entry.lockouts.min(16)).min(self.max);
            entry.locked_until = Some(now + lock);
            entry.lockouts += 1;
            entry.count = 0;
            entry.first = now;
        }
    }

    /// Clears `login`'s failures after a successful sign-in.
    pub fn succeeded(&self, login: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&guard_key(login));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate() {
        let limiter = Limiter::new(Rate { per_second: 10.0, burst: 5 });
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(limiter.check("a", t0).is_ok(), "request {i} of the burst");
        }
        let wait = limiter.check("a", t0).expect_err("the burst is spent");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.check("b", t0).is_ok(), "keys have their own budgets");
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_ok(), "one interval later one more fits");
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_err());
        let later = t0 + Duration::from_secs(10);
        for _ in 0..5 {
            assert!(limiter.check("a", later).is_ok(), "a quiet period restores the burst");
        }
    }

    #[test]
    fn repeated_failures_lock_out_and_lockouts_grow() {
        let guard = LoginGuard::new(3, Duration::from_secs(60), Duration::from_secs(10), Duration::from_secs(25));
        let t0 = Instant::now();
        for _ in 0..2 {
            guard.failed("alice", t0);
        }
        assert!(guard.may_try("alice", t0).is_ok());
        guard.failed("alice", t0);
        assert_eq!(guard.may_try("alice", t0), Err(Duration::from_secs(10)));
        assert!(guard.may_try("bob", t0).is_ok());
        let t1 = t0 + Duration::from_secs(11);
        assert!(guard.may_try("alice", t1).is_ok(), "the lockout ends");
        for _ in 0..3 {
            guard.failed("alice", t1);
        }
        assert_eq!(guard.may_try("alice", t1), Err(Duration::from_secs(20)), "the second lockout is longer");
        let t2 = t1 + Duration::from_secs(21);
        for _ in 0..3 {
            guard.failed("alice", t2);
        }
        assert_eq!(guard.may_try("alice", t2), Err(Duration::from_secs(25)), "capped");
        guard.succeeded("alice");
        assert!(guard.may_try("alice", t2).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let guard = LoginGuard::new(2, Duration::from_secs(5), Duration::from_secs(10), Duration::from_secs(60));
        let t0 = Instant::now();
        guard.failed("alice", t0);
        guard.failed("alice", t0 + Duration::from_secs(6));
        assert!(guard.may_try("alice", t0 + Duration::from_secs(6)).is_ok());
    }
}
