//! Upload session identifiers.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// Identifies one resumable blob upload session.
///
/// 32 lowercase hex characters (128 random bits chosen by the server), so it is unguessable and safe
/// as a file name; anything else a client sends back is rejected before it reaches storage.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

crate::newtype::string_newtype!(UploadId);

impl UploadId {
    /// Builds an id from 128 random bits.
    pub fn from_random(bits: u128) -> Self {
        UploadId(format!("{bits:032x}"))
    }
}

impl FromStr for UploadId {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(CoreError::UploadIdInvalid(s.chars().take(64).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_paths() {
        let id = UploadId::from_random(0xdead_beef);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(id.to_string().parse::<UploadId>().unwrap(), id);
        for bad in ["", "../../etc/passwd", "ABCDEF0123456789ABCDEF0123456789", "0123"] {
            assert!(bad.parse::<UploadId>().is_err());
        }
    }
}
