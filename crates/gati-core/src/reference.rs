//! Tags and manifest references (`<name>:<tag>` or `<name>@<digest>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{CoreError, Result};

/// A validated tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

crate::newtype::string_newtype!(Tag);

impl FromStr for Tag {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let first_ok = bytes.first().is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        let rest_ok = bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && bytes.len() <= 128 {
            Ok(Tag(s.to_owned()))
        } else {
            Err(CoreError::TagInvalid(s.chars().take(140).collect()))
        }
    }
}

/// The `<reference>` path segment of a manifest URL: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A mutable tag.
    Tag(Tag),
    /// An immutable content digest.
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = CoreError;

    /// A colon can never appear in a tag, so its presence selects the digest grammar.
    fn from_str(s: &str) -> Result<Self> {
        if s.contains(':') { s.parse().map(Reference::Digest) } else { s.parse().map(Reference::Tag) }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", &"a".repeat(129), "ü"] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_pick_grammar_by_colon() {
        assert!(matches!("latest".parse::<Reference>(), Ok(Reference::Tag(_))));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(d.parse::<Reference>(), Ok(Reference::Digest(_))));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }

    proptest! {
        #[test]
        fn tag_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            let t: Tag = s.parse().unwrap();
            prop_assert_eq!(t.to_string(), s.clone());
            let r: Reference = s.parse().unwrap();
            prop_assert_eq!(r.to_string(), s);
        }

        #[test]
        fn arbitrary_reference_never_panics(s in ".{0,200}") {
            let _ = s.parse::<Reference>();
        }
    }
}
