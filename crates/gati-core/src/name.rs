//! Repository names and namespaces.
//!
//! A repository name follows the distribution-spec grammar
//! (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`) and is parsed once into
//! a [`RepoName`]; nothing downstream re-validates or string-splits a name. The namespace (the unit of
//! ownership and of sharding) is derived here and nowhere else.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The longest repository name accepted. Distribution and most clients cap the full reference
/// (host included) at 255 characters; the host is configuration here, so the name alone gets 255.
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name such as `library/nginx` or `users/krishna/user-auth`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName(String);

crate::newtype::string_newtype!(RepoName);

impl RepoName {
    /// Returns the path components (`library`, `nginx`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Returns the namespace that owns this repository: the first two components under `users/`
    /// and `orgs/`, otherwise the first component.
    pub fn namespace(&self) -> Namespace {
        let mut parts = self.0.splitn(3, '/');
        let first = parts.next().unwrap_or_default();
        let end = match (first, parts.next()) {
            ("users" | "orgs", Some(second)) => first.len() + 1 + second.len(),
            _ => first.len(),
        };
        Namespace(self.0[..end].to_owned())
    }
}

fn invalid(name: &str, reason: &'static str) -> CoreError {
    CoreError::NameInvalid { name: name.chars().take(80).collect(), reason }
}

/// Checks one path component: alphanumeric runs joined by `.`, `_`, `__` or runs of `-`.
fn component_is_valid(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or one or more `-`; it must be followed by alnum.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= bytes.len() || !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid(s, "longer than 255 characters"));
        }
        if !s.split('/').all(component_is_valid) {
            return Err(invalid(s, "components must be lowercase alphanumerics separated by '.', '_', '__' or '-'"));
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// The owner prefix of repository names: the unit of ownership, of the namespace actor and of
/// sharding. Only obtainable from a [`RepoName`], so it is always valid.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Namespace(String);

crate::newtype::string_newtype!(text_only Namespace);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_spec_names() {
        for ok in [
            "a",
            "library/nginx",
            "users/krishna/user-auth",
            "a.b_c__d---e/f0",
            "0/1/2/3/4/5",
            "orgs/gati-official/postgres-adapter",
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_hostile_and_malformed_names() {
        let long = "a".repeat(300);
        for bad in [
            "",
            "..",
            "../etc",
            "a/../b",
            "a/./b",
            "Library/nginx",
            "UPPER",
            "a//b",
            "/a",
            "a/",
            "a___b",
            "a-",
            "-a",
            "a.",
            "a..b",
            "a b",
            "a\0b",
            "a/b\n",
            long.as_str(),
            "ñ",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn namespace_is_owner_prefix() {
        let ns = |s: &str| s.parse::<RepoName>().unwrap().namespace().to_string();
        assert_eq!(ns("library/nginx"), "library");
        assert_eq!(ns("nginx"), "nginx");
        assert_eq!(ns("users/krishna/user-auth"), "users/krishna");
        assert_eq!(ns("orgs/gati-official/a/b"), "orgs/gati-official");
        assert_eq!(ns("users"), "users");
        assert_eq!(ns("users/krishna"), "users/krishna");
    }

    proptest! {
        #[test]
        fn generated_valid_names_round_trip(
            parts in proptest::collection::vec("[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,2}", 1..5)
        ) {
            let s = parts.join("/");
            let n: RepoName = s.parse().unwrap();
            prop_assert_eq!(n.to_string(), s.clone());
            prop_assert!(s.starts_with(n.namespace().as_str()));
        }

        #[test]
        fn arbitrary_input_never_panics_and_valid_output_is_safe(s in ".{0,300}") {
            if let Ok(n) = s.parse::<RepoName>() {
                prop_assert!(!n.as_str().contains(".."));
                prop_assert!(n.as_str().len() <= MAX_NAME_LEN);
            }
        }
    }
}
