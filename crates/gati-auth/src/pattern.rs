//! Repository patterns such as `orgs/acme/*` or `orgs/acme/**`, which limit an API key (or a grant)
//! to part of the repository tree.
//!
//! Owns the pattern grammar and the matcher. `*` matches any run of characters within one path
//! component (no `/`), `**` matches any run including `/`; every other character stands for itself
//! and must be one a repository name may contain. Matching runs in O(pattern × name) time whatever
//! the input, so a hostile pattern cannot make it backtrack exponentially.

use std::fmt;
use std::str::FromStr;

use gati_core::RepoName;
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result, echo};

/// The longest pattern accepted, the same bound as a repository name.
pub const MAX_PATTERN_LEN: usize = 255;

/// A validated repository pattern.
///
/// `orgs/acme/*` matches `orgs/acme/web` but not `orgs/acme/web/api`; `orgs/acme/**` matches both;
/// neither matches `orgs/acme` itself, since the pattern asks for the `/` after it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoPattern(String);

impl RepoPattern {
    /// Returns the pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns whether `name` matches this pattern.
    pub fn matches(&self, name: &RepoName) -> bool {
        wildcard_match(self.0.as_bytes(), name.as_str().as_bytes())
    }
}

impl TryFrom<String> for RepoPattern {
    type Error = AuthError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<RepoPattern> for String {
    fn from(pattern: RepoPattern) -> String {
        pattern.0
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoPattern({})", self.0)
    }
}

impl FromStr for RepoPattern {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self> {
        let refuse = |reason| AuthError::PatternInvalid { pattern: echo(s), reason };
        if s.is_empty() {
            return Err(refuse("empty"));
        }
        if s.len() > MAX_PATTERN_LEN {
            return Err(refuse("longer than 255 characters"));
        }
        if !s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' | b'*')) {
            return Err(refuse("only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed"));
        }
        if s.contains("***") {
            return Err(refuse("more than two '*' in a row"));
        }
        // Such patterns could never match a repository name; refusing them catches typos.
        if s.starts_with('/') || s.ends_with('/') || s.contains("//") {
            return Err(refuse("empty path component"));
        }
        Ok(RepoPattern(s.to_owned()))
    }
}

/// Matches `name` against `pattern` by computing, token after token, the set of name positions the
/// pattern prefix can end at. One pass over the name per pattern token: O(pattern × name).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let mut reachable = vec![false; name.len() + 1];
    reachable[0] = true;
    let mut next = vec![false; name.len() + 1];
    let mut p = 0;
    while p < pattern.len() {
        if pattern[p] == b'*' {
            let crosses_slash = pattern.get(p + 1) == Some(&b'*');
            p += if crosses_slash { 2 } else { 1 };
            // `carry`: some reachable start lies at or before j with nothing forbidden in between.
            let mut carry = false;
            for j in 0..=name.len() {
                carry |= reachable[j];
                next[j] = carry;
                if !crosses_slash && name.get(j) == Some(&b'/') {
                    carry = false;
                }
            }
        } else {
            let literal = pattern[p];
            p += 1;
            next[0] = false;
            for j in 0..name.len() {
                next[j + 1] = reachable[j] && name[j] == literal;
            }
        }
        std::mem::swap(&mut reachable, &mut next);
        if !reachable.contains(&true) {
            return false;
        }
    }
    reachable[name.len()]
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        pattern.parse::<RepoPattern>().unwrap().matches(&name.parse().unwrap())
    }

    /// The obvious backtracking matcher, exponential but correct, to compare against.
    fn reference_match(pattern: &[u8], name: &[u8]) -> bool {
        match pattern {
            [] => name.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=name.len()).any(|i| reference_match(rest, &name[i..])),
            [b'*', rest @ ..] => (0..=name.len())
                .take_while(|&i| i == 0 || name[i - 1] != b'/')
                .any(|i| reference_match(rest, &name[i..])),
            [literal, rest @ ..] => name.first() == Some(literal) && reference_match(rest, &name[1..]),
        }
    }

    #[test]
    fn single_star_stays_within_a_component() {
        assert!(matches("orgs/acme/*", "orgs/acme/web"));
        assert!(!matches("orgs/acme/*", "orgs/acme/web/api"));
        assert!(!matches("orgs/acme/*", "orgs/acme"));
        assert!(!matches("orgs/acme/*", "orgs/acmecorp/web"));
        assert!(matches("orgs/*/tools", "orgs/acme/tools"));
        assert!(!matches("orgs/*/tools", "orgs/a/b/tools"));
        assert!(matches("orgs/acme-*", "orgs/acme-web"));
        assert!(matches("*", "nginx"));
        assert!(!matches("*", "library/nginx"));
        assert!(matches("lib*/ng*x", "library/nginx"));
    }

    #[test]
    fn double_star_crosses_components() {
        assert!(matches("orgs/acme/**", "orgs/acme/web"));
        assert!(matches("orgs/acme/**", "orgs/acme/web/api/v2"));
        assert!(!matches("orgs/acme/**", "orgs/acme"));
        assert!(!matches("orgs/acme/**", "orgs/acme-evil/web"));
        assert!(matches("**", "a/b/c"));
        assert!(matches("**/tools", "orgs/acme/tools"));
        assert!(!matches("**/tools", "orgs/acme/tools-evil"));
        assert!(matches("orgs/**/api", "orgs/acme/web/api"));
    }

    #[test]
    fn literal_pattern_matches_only_itself() {
        assert!(matches("library/nginx", "library/nginx"));
        assert!(!matches("library/nginx", "library/nginx2"));
        assert!(!matches("library/nginx", "library/ngin"));
        assert!(!matches("library/nginx", "xlibrary/nginx"));
    }

    #[test]
    fn agrees_with_the_reference_matcher_on_every_small_input() {
        fn all_strings(alphabet: &[u8], max_len: usize) -> Vec<Vec<u8>> {
            let mut out = vec![Vec::new()];
            let mut frontier = vec![Vec::new()];
            for _ in 0..max_len {
                frontier = frontier
                    .iter()
                    .flat_map(|s| {
                        alphabet.iter().map(move |&c| {
                            let mut t = s.clone();
                            t.push(c);
                            t
                        })
                    })
                    .collect();
                out.extend(frontier.iter().cloned());
            }
            out
        }
        let patterns = all_strings(b"a/*", 5);
        let names = all_strings(b"ab/", 5);
        for pattern in &patterns {
            if pattern.windows(3).any(|w| w == b"***") {
                continue;
            }
            for name in &names {
                assert_eq!(
                    wildcard_match(pattern, name),
                    reference_match(pattern, name),
                    "pattern {:?} name {:?}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(name)
                );
            }
        }
    }

    #[test]
    fn pathological_patterns_finish_fast() {
        let name: RepoName = "a".repeat(250).parse().unwrap();
        let start = Instant::now();
        for pattern in ["a*a*a*a*a*a*a*b", "a**a**a**a**a**a**a**b", &format!("{}b", "*a".repeat(120))] {
            assert!(!pattern.parse::<RepoPattern>().unwrap().matches(&name), "{pattern}");
        }
        assert!(matches(&"a*".repeat(120), &"a".repeat(250)));
        // Unoptimised this takes a few milliseconds; the backtracking matcher would not finish.
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        let long = "a".repeat(256);
        for (bad, why) in [
            ("", "empty"),
            (long.as_str(), "longer than 255 characters"),
            ("Orgs/*", "only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed"),
            ("orgs/acme/?", "only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed"),
            ("orgs/[ab]", "only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed"),
            ("orgs/ac me", "only lowercase letters, digits, '.', '_', '-', '/' and '*' are allowed"),
            ("orgs/***", "more than two '*' in a row"),
            ("/orgs/*", "empty path component"),
            ("orgs/", "empty path component"),
            ("orgs//*", "empty path component"),
        ] {
            match bad.parse::<RepoPattern>() {
                Err(AuthError::PatternInvalid { reason, .. }) => assert_eq!(reason, why, "{bad:?}"),
                other => panic!("{bad:?} must be refused, got {other:?}"),
            }
        }
        assert!("a".repeat(255).parse::<RepoPattern>().is_ok());
    }

    #[test]
    fn serde_is_the_validated_string() {
        let pattern: RepoPattern = serde_json::from_str(r#""orgs/acme/**""#).unwrap();
        assert_eq!(pattern.as_str(), "orgs/acme/**");
        assert_eq!(serde_json::to_string(&pattern).unwrap(), r#""orgs/acme/**""#);
        assert!(serde_json::from_str::<RepoPattern>(r#""orgs//x""#).is_err());
        assert_eq!(format!("{pattern:?}"), "RepoPattern(orgs/acme/**)");
    }
}
