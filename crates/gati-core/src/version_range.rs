//! npm-style version ranges, the dependency language of Gati artifacts: `^1.2.3`, `~1.2`,
//! `1.x`, `>=1.2.0 <2.0.0`, `1.2.3 - 2.0.0`, exact versions, and unions joined by `||`.
//!
//! The rules are npm's (node-semver), not Cargo's: a bare version is exact, `^` allows changes
//! that do not modify the left-most non-zero part, and a pre-release version matches only a
//! range whose comparators name the same `major.minor.patch` with a pre-release, so `^1.2.0`
//! never picks up `1.3.0-beta`. Versions are `semver::Version` (`SemVer` 2.0 precedence).

use std::fmt;
use std::str::FromStr;

use semver::{Prerelease, Version};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The longest range text accepted.
const MAX_RANGE_LEN: usize = 1024;

/// One comparison against a version.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Exact,
    Greater,
    GreaterEq,
    Less,
    LessEq,
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        match self.op {
            Op::Exact => v == &self.version,
            Op::Greater => v > &self.version,
            Op::GreaterEq => v >= &self.version,
            Op::Less => v < &self.version,
            Op::LessEq => v <= &self.version,
        }
    }
}

/// A validated range: versions matching every comparator of at least one set.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionRange {
    text: String,
    /// Alternatives (`||`); each is an intersection of comparators. Empty intersection: any.
    sets: Vec<Vec<Comparator>>,
}

fn invalid(range: &str, reason: &'static str) -> CoreError {
    CoreError::VersionRangeInvalid { range: range.chars().take(80).collect(), reason }
}

/// A partial version as written in a range: `1`, `1.2`, `1.2.3`, `1.x`, `*`, with an optional
/// pre-release on full versions.
#[derive(Clone, Debug)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: Prerelease,
}

fn parse_partial(text: &str, whole: &str) -> Result<Partial> {
    let text = text.strip_prefix('v').unwrap_or(text);
    let text = text.strip_prefix('=').unwrap_or(text);
    if text.is_empty() || text == "*" || text.eq_ignore_ascii_case("x") {
        return Ok(Partial { major: None, minor: None, patch: None, pre: Prerelease::EMPTY });
    }
    // Build metadata never matters for ranges.
    let text = text.split('+').next().unwrap_or_default();
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Prerelease::new(pre).map_err(|_| invalid(whole, "malformed pre-release"))?),
        None => (text, Prerelease::EMPTY),
    };
    let mut parts = core.split('.');
    let mut next = || -> Result<Option<u64>> {
        match parts.next() {
            None | Some("*" | "x" | "X") => Ok(None),
            Some(n) if !n.is_empty() && n.len() <= 16 && n.bytes().all(|b| b.is_ascii_digit()) => {
                if n.len() > 1 && n.starts_with('0') {
                    return Err(invalid(whole, "numbers have no leading zeros"));
                }
                n.parse().map(Some).map_err(|_| invalid(whole, "number too large"))
            }
            Some(_) => Err(invalid(whole, "expected a number, x or *")),
        }
    };
    let (major, minor, patch) = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err(invalid(whole, "at most three numbers"));
    }
    if (major.is_none() && minor.is_some()) || (minor.is_none() && patch.is_some()) {
        return Err(invalid(whole, "a wildcard must be followed only by wildcards"));
    }
    if !pre.is_empty() && patch.is_none() {
        return Err(invalid(whole, "a pre-release needs a full version"));
    }
    Ok(Partial { major, minor, patch, pre })
}

fn version(major: u64, minor: u64, patch: u64, pre: Prerelease) -> Version {
    Version { major, minor, patch, pre, build: semver::BuildMetadata::EMPTY }
}

/// The lowest pre-release of a version: `x.y.z-0` sorts below every other pre-release, so
/// `< x.y.z-0` excludes the pre-releases of `x.y.z` too (as npm's desugaring does).
fn floor(major: u64, minor: u64, patch: u64) -> Version {
    version(major, minor, patch, Prerelease::new("0").unwrap_or(Prerelease::EMPTY))
}

fn cmp(op: Op, version: Version) -> Comparator {
    Comparator { op, version }
}

/// Desugars one range term (`^1.2`, `~1`, `>=1.2`, `1.x`, ...) into comparators.
fn term(text: &str, whole: &str) -> Result<Vec<Comparator>> {
    let (op, rest) = [">=", "<=", ">", "<", "^", "~", "="]
        .iter()
        .find_map(|op| text.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("", text));
    let p = parse_partial(rest.trim(), whole)?;
    let Partial { major, minor, patch, pre } = p;
    Ok(match (op, major, minor, patch) {
        (_, None, _, _) => match op {
            "<" | ">" => vec![cmp(Op::Less, version(0, 0, 0, Prerelease::EMPTY))], // matches nothing
            _ => vec![],
        },
        ("^", Some(ma), mi, pa) => {
            let lower = version(ma, mi.unwrap_or(0), pa.unwrap_or(0), pre);
            let upper = match (ma, mi, pa) {
                (0, Some(0), Some(pa)) => floor(0, 0, pa + 1),
                (0, Some(mi), _) if mi > 0 || pa.is_none() => floor(0, mi + 1, 0),
                (ma, _, _) => floor(ma + 1, 0, 0),
            };
            vec![cmp(Op::GreaterEq, lower), cmp(Op::Less, upper)]
        }
        ("~", Some(ma), mi, pa) => {
            let lower = version(ma, mi.unwrap_or(0), pa.unwrap_or(0), pre);
            let upper = match mi {
                Some(mi) => floor(ma, mi + 1, 0),
                None => floor(ma + 1, 0, 0),
            };
            vec![cmp(Op::GreaterEq, lower), cmp(Op::Less, upper)]
        }
        ("" | "=", Some(ma), Some(mi), Some(pa)) => vec![cmp(Op::Exact, version(ma, mi, pa, pre))],
        ("" | "=", Some(ma), mi, _) => {
            let upper = match mi {
                Some(mi) => floor(ma, mi + 1, 0),
                None => floor(ma + 1, 0, 0),
            };
            vec![cmp(Op::GreaterEq, floor(ma, mi.unwrap_or(0), 0)), cmp(Op::Less, upper)]
        }
        (">=", Some(ma), mi, pa) => vec![cmp(Op::GreaterEq, version(ma, mi.unwrap_or(0), pa.unwrap_or(0), pre))],
        ("<", Some(ma), mi, pa) => {
            let bound = if pa.is_some() {
                version(ma, mi.unwrap_or(0), pa.unwrap_or(0), pre)
            } else {
                floor(ma, mi.unwrap_or(0), 0)
            };
            vec![cmp(Op::Less, bound)]
        }
        (">", Some(ma), mi, pa) => match (mi, pa) {
            (Some(mi), Some(pa)) => vec![cmp(Op::Greater, version(ma, mi, pa, pre))],
            (Some(mi), None) => vec![cmp(Op::GreaterEq, floor(ma, mi + 1, 0))],
            (None, _) => vec![cmp(Op::GreaterEq, floor(ma + 1, 0, 0))],
        },
        ("<=", Some(ma), mi, pa) => match (mi, pa) {
            (Some(mi), Some(pa)) => vec![cmp(Op::LessEq, version(ma, mi, pa, pre))],
            (Some(mi), None) => vec![cmp(Op::Less, floor(ma, mi + 1, 0))],
            (None, _) => vec![cmp(Op::Less, floor(ma + 1, 0, 0))],
        },
        _ => return Err(invalid(whole, "unknown operator")),
    })
}

/// Desugars `a - b` (inclusive; a partial upper bound includes all it names).
fn hyphen(lower: &str, upper: &str, whole: &str) -> Result<Vec<Comparator>> {
    let mut set = term(&format!(">={lower}"), whole)?;
    let up = parse_partial(upper, whole)?;
    set.extend(match (up.major, up.minor, up.patch) {
        (None, _, _) => vec![],
        (Some(ma), Some(mi), Some(pa)) => vec![cmp(Op::LessEq, version(ma, mi, pa, up.pre))],
        (Some(ma), Some(mi), None) => vec![cmp(Op::Less, floor(ma, mi + 1, 0))],
        (Some(ma), None, _) => vec![cmp(Op::Less, floor(ma + 1, 0, 0))],
    });
    Ok(set)
}

impl FromStr for VersionRange {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self> {
        if text.len() > MAX_RANGE_LEN {
            return Err(invalid(text, "longer than 1024 characters"));
        }
        if text.chars().any(|c| c.is_control()) {
            return Err(invalid(text, "control characters"));
        }
        let mut sets = Vec::new();
        for alternative in text.split("||") {
            let words: Vec<&str> = alternative.split_whitespace().collect();
            let set = match words.as_slice() {
                [lower, "-", upper] => hyphen(lower, upper, text)?,
                words => {
                    // An operator may stand apart from its version (`>= 1.2.0`).
                    let mut set = Vec::new();
                    let mut pending: Option<&str> = None;
                    for word in words {
                        if matches!(*word, ">=" | "<=" | ">" | "<" | "=" | "^" | "~") {
                            if pending.replace(word).is_some() {
                                return Err(invalid(text, "two operators in a row"));
                            }
                            continue;
                        }
                        let joined = format!("{}{word}", pending.take().unwrap_or_default());
                        set.extend(term(&joined, text)?);
                    }
                    if pending.is_some() {
                        return Err(invalid(text, "an operator without a version"));
                    }
                    set
                }
            };
            sets.push(set);
        }
        Ok(VersionRange { text: text.trim().to_owned(), sets })
    }
}

impl VersionRange {
    /// Whether `v` is in the range. A pre-release matches only when some comparator of the
    /// matching set names the same `major.minor.patch` with a pre-release of its own.
    pub fn matches(&self, v: &Version) -> bool {
        self.sets.iter().any(|set| {
            set.iter().all(|c| c.matches(v))
                && (v.pre.is_empty()
                    || set.iter().any(|c| {
                        !c.version.pre.is_empty()
                            && c.version.pre.as_str() != "0"
                            && (c.version.major, c.version.minor, c.version.patch) == (v.major, v.minor, v.patch)
                    }))
        })
    }

    /// The highest of `candidates` in the range.
    pub fn best<'a>(&self, candidates: impl IntoIterator<Item = &'a Version>) -> Option<&'a Version> {
        candidates.into_iter().filter(|v| self.matches(v)).max()
    }

    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VersionRange({})", self.text)
    }
}

impl TryFrom<String> for VersionRange {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<VersionRange> for String {
    fn from(r: VersionRange) -> String {
        r.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn check(range: &str, yes: &[&str], no: &[&str]) {
        let r: VersionRange = range.parse().unwrap_or_else(|e| panic!("{range}: {e}"));
        for y in yes {
            assert!(r.matches(&v(y)), "{range} should match {y}");
        }
        for n in no {
            assert!(!r.matches(&v(n)), "{range} should not match {n}");
        }
    }

    #[test]
    fn caret_follows_the_leftmost_non_zero_part() {
        check("^1.2.3", &["1.2.3", "1.9.0", "1.99.99"], &["1.2.2", "2.0.0", "2.0.0-0", "1.3.0-beta.1"]);
        check("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]);
        check("^0.0.3", &["0.0.3"], &["0.0.4", "0.0.2"]);
        check("^1.2", &["1.2.0", "1.5.1"], &["2.0.0", "1.1.9"]);
        check("^0.0", &["0.0.0", "0.0.9"], &["0.1.0"]);
        check("^0", &["0.0.0", "0.9.9"], &["1.0.0"]);
        check("^1.2.3-beta.2", &["1.2.3-beta.2", "1.2.3-beta.4", "1.2.3", "1.9.0"], &["1.2.3-beta.1", "1.2.4-beta.9"]);
    }

    #[test]
    fn tilde_allows_patch_changes() {
        check("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        check("~1.2", &["1.2.0", "1.2.9"], &["1.3.0"]);
        check("~1", &["1.0.0", "1.9.9"], &["2.0.0"]);
        check("~0.2.3", &["0.2.3", "0.2.5"], &["0.3.0"]);
    }

    #[test]
    fn wildcards_bare_versions_and_comparisons() {
        check("*", &["0.0.0", "9.9.9"], &["1.0.0-rc.1"]);
        check("", &["1.2.3"], &[]);
        check("1.x", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.9"]);
        check("1.2.*", &["1.2.0", "1.2.7"], &["1.3.0"]);
        check("1.2.3", &["1.2.3"], &["1.2.4", "1.2.3-rc.1"]);
        check("=1.2.3", &["1.2.3"], &["1.2.4"]);
        check("v1.2.3", &["1.2.3"], &["1.2.4"]);
        check(">=1.2.0 <2.0.0", &["1.2.0", "1.9.9"], &["2.0.0", "1.1.9", "2.0.0-rc.1"]);
        check(">= 1.2.0 < 2", &["1.2.0", "1.9.9"], &["2.0.0"]);
        check(">1.2", &["1.3.0"], &["1.2.9"]);
        check("<=1.2", &["1.2.9"], &["1.3.0"]);
        check(">1.2.3", &["1.2.4"], &["1.2.3"]);
        check("<1.2.3", &["1.2.2"], &["1.2.3", "1.2.3-alpha"]);
        check("<*", &[], &["0.0.0", "1.0.0"]);
    }

    #[test]
    fn hyphen_ranges_and_unions() {
        check("1.2.3 - 2.3.4", &["1.2.3", "2.3.4"], &["2.3.5", "1.2.2"]);
        check("1.2 - 2.3", &["1.2.0", "2.3.9"], &["2.4.0"]);
        check("1 - 2", &["1.0.0", "2.9.9"], &["3.0.0"]);
        check("^1.2.0 || ^3.0.0", &["1.5.0", "3.1.0"], &["2.0.0", "4.0.0"]);
        check("1.x || >=2.5.0 <3", &["1.1.1", "2.5.0"], &["2.4.9", "3.0.0"]);
    }

    #[test]
    fn the_best_version_is_the_highest_in_range() {
        let versions: Vec<Version> = ["1.0.0", "1.4.2", "1.5.0-rc.1", "2.0.0"].iter().map(|s| v(s)).collect();
        let r: VersionRange = "^1.0.0".parse().unwrap();
        assert_eq!(r.best(&versions), Some(&v("1.4.2")));
        let none: VersionRange = "^3".parse().unwrap();
        assert_eq!(none.best(&versions), None);
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "^",
            ">=",
            "1.2.3.4",
            "1.x.3",
            "a.b.c",
            "01.2.3",
            "1.2-beta",
            ">= >= 1",
            "^1 ~",
            "1.2.3\n",
            "=>1",
            &"1".repeat(20),
        ] {
            assert!(bad.parse::<VersionRange>().is_err(), "{bad:?}");
        }
        assert!("x".repeat(2000).parse::<VersionRange>().is_err());
    }

    #[test]
    fn ranges_round_trip_through_json() {
        let r: VersionRange = serde_json::from_str("\"^1.2.0 || ~2.0\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"^1.2.0 || ~2.0\"");
        assert!(serde_json::from_str::<VersionRange>("\"^x.y\"").is_err());
    }
}
