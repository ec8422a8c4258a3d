//! Content digests (`algorithm:encoded`), as defined by the OCI image spec's descriptor section.
//!
//! Owns parsing and canonical formatting only. Hashing bytes is `gati-blob`'s job; this module never
//! does IO and never computes a hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// A digest algorithm the registry accepts for content it stores.
///
/// The OCI spec registers sha256 and sha512; anything else is rejected as `DIGEST_INVALID`
/// (clients then fall back to sha256), because the registry must be able to verify what it stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// SHA-256, 64 lowercase hex characters.
    Sha256,
    /// SHA-512, 128 lowercase hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// Returns the algorithm's name as it appears before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Returns the length of the hex encoding of this algorithm's output.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:9f86d0…`.
///
/// Always canonical: a known algorithm and lowercase hex of the right length, so two equal digests
/// are equal strings and the value is safe to use as a path component.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from an algorithm and its lowercase hex encoding, validating both.
    pub fn new(algorithm: DigestAlgorithm, hex: &str) -> Result<Self> {
        let well_formed =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !well_formed {
            return Err(CoreError::DigestInvalid(format!("{algorithm}:{hex}")));
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }

    /// Returns the digest's algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// Returns the lowercase hex encoding of the hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let (algorithm, encoded) = s.split_once(':').ok_or_else(|| CoreError::DigestInvalid(s.to_owned()))?;
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            other => return Err(CoreError::DigestUnsupported(other.to_owned())),
        };
        Digest::new(algorithm, encoded)
    }
}

impl TryFrom<String> for Digest {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_formats_canonical_sha256() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:../../../../etc/passwd000000000000000000000000000000000000000",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn unknown_algorithm_is_unsupported_not_invalid() {
        let err = "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>().unwrap_err();
        assert!(matches!(err, CoreError::DigestUnsupported(_)));
    }

    proptest! {
        #[test]
        fn display_round_trips(hex in "[0-9a-f]{64}", long in "[0-9a-f]{128}") {
            for s in [format!("sha256:{hex}"), format!("sha512:{long}")] {
                let d: Digest = s.parse().unwrap();
                prop_assert_eq!(d.to_string(), s);
                let json = serde_json::to_string(&d).unwrap();
                prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in ".{0,200}") {
            let _ = s.parse::<Digest>();
        }
    }
}
