//! Content hashing: turns bytes into a [`Digest`], incrementally or in one go.
//!
//! Owns the only use of `sha2` in the crate, so every backend hashes identically. Pure CPU work
//! with no IO and no async: callers run it on a blocking thread when the input is large.

use gati_core::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha512};

/// A running hash of one of the algorithms the registry accepts.
#[derive(Clone)]
pub enum ContentHasher {
    /// SHA-256, the algorithm every client uses by default.
    Sha256(Sha256),
    /// SHA-512, accepted because the OCI spec registers it.
    Sha512(Sha512),
}

impl ContentHasher {
    /// Returns a fresh hasher for `algorithm`.
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => ContentHasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => ContentHasher::Sha512(Sha512::new()),
        }
    }

    /// Returns the algorithm this hasher computes.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self {
            ContentHasher::Sha256(_) => DigestAlgorithm::Sha256,
            ContentHasher::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Sha256(h) => h.update(bytes),
            ContentHasher::Sha512(h) => h.update(bytes),
        }
    }

    /// Returns the digest of everything fed so far; the hasher is left untouched, so an upload can
    /// keep going after its digest was peeked at.
    pub fn current(&self) -> Digest {
        self.clone().finish()
    }

    /// Consumes the hasher and returns the digest of everything fed.
    pub fn finish(self) -> Digest {
        // sha2 0.11 outputs are `hybrid_array::Array`s, which do not implement `LowerHex`.
        let (algorithm, encoded) = match self {
            ContentHasher::Sha256(h) => (DigestAlgorithm::Sha256, hex::encode(h.finalize())),
            ContentHasher::Sha512(h) => (DigestAlgorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest::new(algorithm, &encoded).expect("hex of a sha2 output has the algorithm's length and alphabet")
    }
}

/// Returns the digest of `bytes` under `algorithm`.
pub fn digest_of(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
    let mut hasher = ContentHasher::new(algorithm);
    hasher.update(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_known_vectors() {
        assert_eq!(
            digest_of(DigestAlgorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_of(DigestAlgorithm::Sha256, b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest_of(DigestAlgorithm::Sha512, b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn current_does_not_disturb_the_running_state() {
        let mut h = ContentHasher::new(DigestAlgorithm::Sha256);
        h.update(b"ab");
        let _ = h.current();
        h.update(b"c");
        assert_eq!(h.finish(), digest_of(DigestAlgorithm::Sha256, b"abc"));
    }

    proptest! {
        /// Chunking a byte string arbitrarily never changes its digest.
        #[test]
        fn chunking_never_changes_the_digest(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16),
            sha512 in any::<bool>(),
        ) {
            let algorithm = if sha512 { DigestAlgorithm::Sha512 } else { DigestAlgorithm::Sha256 };
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.push(0);
            points.push(data.len());
            points.sort_unstable();
            let mut hasher = ContentHasher::new(algorithm);
            for pair in points.windows(2) {
                hasher.update(&data[pair[0]..pair[1]]);
            }
            prop_assert_eq!(hasher.finish(), digest_of(algorithm, &data));
        }
    }
}
