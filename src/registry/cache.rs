//! A byte-budgeted cache of manifest bytes by digest.
//!
//! Content addressing makes it trivially coherent: a digest always names the same bytes, so entries
//! never go stale. Access control is not the cache's concern; callers look the manifest up in the
//! state machine first, so a deleted manifest is not served even while its bytes are cached.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use gati_core::Digest;

pub(crate) struct ManifestCache {
    budget: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<Digest, Bytes>,
    /// Insertion order, for first-in-first-out eviction.
    order: VecDeque<Digest>,
    bytes: usize,
}

impl ManifestCache {
    pub(crate) fn new(budget: usize) -> Self {
        ManifestCache { budget, inner: Mutex::new(CacheInner::default()) }
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.lock().expect("manifest cache lock poisoned").entries.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: Digest, bytes: Bytes) {
        if bytes.len() > self.budget / 8 {
            return; // one huge manifest must not flush everything else
        }
        let mut inner = self.inner.lock().expect("manifest cache lock poisoned");
        if inner.entries.contains_key(&digest) {
            return;
        }
        while inner.bytes + bytes.len() > self.budget {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.entries.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
        inner.bytes += bytes.len();
        inner.order.push_back(digest.clone());
        inner.entries.insert(digest, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(n: u8) -> Digest {
        format!("sha256:{:064x}", n).parse().unwrap()
    }

    #[test]
    fn evicts_oldest_within_budget() {
        let cache = ManifestCache::new(80);
        for n in 0..10u8 {
            cache.insert(dg(n), Bytes::from(vec![n; 10]));
        }
        assert!(cache.get(&dg(0)).is_none());
        assert_eq!(cache.get(&dg(9)).unwrap(), Bytes::from(vec![9u8; 10]));
        let inner = cache.inner.lock().unwrap();
        assert!(inner.bytes <= 80);
        assert_eq!(inner.bytes, inner.entries.values().map(Bytes::len).sum::<usize>());
    }

    #[test]
    fn oversized_entries_are_not_cached() {
        let cache = ManifestCache::new(80);
        cache.insert(dg(1), Bytes::from(vec![0; 11]));
        assert!(cache.get(&dg(1)).is_none());
    }
}
