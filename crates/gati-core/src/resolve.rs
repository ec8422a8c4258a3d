//! Dependency resolution for Gati artifacts: picks one version of every package that a set of root
//! requirements reaches, so that every range in the graph holds.
//!
//! Owns the search only. The caller prefetches every version the search may touch into an [`Index`]
//! (the CLI over HTTP, the server from its state); nothing here does IO or looks at artifact names,
//! since packages are any [`PackageId`]. Ranges are npm's ([`VersionRange`], pre-release rule
//! included), but unlike npm the graph holds exactly one version per package, as with Go modules and
//! pip, so the result is a flat map that is the same for the same input.
//!
//! The search is a depth-first backtracking over decisions. Each decision takes the open package
//! (required, not yet chosen) with the fewest fitting versions, ties going to the smallest package,
//! and tries its versions in order of preference: non-deprecated ones highest first, then deprecated
//! ones highest first. Choosing a version places its dependency ranges; a choice is refused at once
//! when a range names an unknown package, excludes the version already chosen for its package, or
//! leaves its package with no fitting version. Backtracking withdraws exactly the ranges the refused
//! choice placed. Each tried version is one step, and the search gives up after a bound of steps.
//!
//! When no resolution exists, the error is the most informative dead end met: a definite one (an
//! unknown package, or a package whose ranges no published version satisfies at once) before one that
//! only clashed with an earlier choice, and among those the deepest, i.e. met on the path that got
//! furthest; of equals, the first met, which lies on the most preferred path.

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use thiserror::Error;

use crate::error::ErrorCode;
use crate::version_range::VersionRange;

/// How many versions [`resolve`] tries before giving up with [`ResolveError::TooComplex`].
pub const DEFAULT_MAX_STEPS: usize = 100_000;

/// A package's identity in the graph; generic so the resolver needs no knowledge of artifact names.
pub trait PackageId: Clone + Ord + fmt::Display {}

impl<T: Clone + Ord + fmt::Display> PackageId for T {}

/// One published version of a package as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<P> {
    /// The version.
    pub version: Version,
    /// The packages this version needs and the range each must fall in.
    pub dependencies: Vec<(P, VersionRange)>,
    /// Deprecation message, if the version is deprecated.
    pub deprecated: Option<String>,
}

/// Every version of every package the resolution may touch, prefetched by the caller (the CLI fetches
/// it over HTTP; the server reads it from its state). A package absent from the index is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index<P> {
    /// The versions of each package, highest first, without repeats.
    packages: BTreeMap<P, Vec<Candidate<P>>>,
}

impl<P: PackageId> Index<P> {
    /// Returns an empty index.
    pub fn new() -> Self {
        Index { packages: BTreeMap::new() }
    }

    /// Sets the published versions of `package`, replacing any set before. The order given does not
    /// matter; of two entries with the same version, the first given is kept.
    pub fn insert(&mut self, package: P, mut versions: Vec<Candidate<P>>) {
        // A stable sort keeps the first of equal versions first, and `dedup_by` keeps the first of a run.
        versions.sort_by(|a, b| b.version.cmp(&a.version));
        versions.dedup_by(|later, earlier| later.version == earlier.version);
        self.packages.insert(package, versions);
    }

    /// Returns whether `package` is known.
    pub fn contains(&self, package: &P) -> bool {
        self.packages.contains_key(package)
    }

    /// Returns the versions of `package`, highest first, or `None` when it is unknown.
    pub fn versions(&self, package: &P) -> Option<&[Candidate<P>]> {
        self.packages.get(package).map(Vec::as_slice)
    }
}

impl<P: PackageId> Default for Index<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The resolved graph: exactly one version per package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution<P> {
    /// Every package the roots reach, with its chosen version.
    pub packages: BTreeMap<P, Resolved<P>>,
}

/// One package of a [`Resolution`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<P> {
    /// The chosen version.
    pub version: Version,
    /// Each dependency of this version and the version chosen for it.
    pub dependencies: BTreeMap<P, Version>,
    /// The chosen version's deprecation message, if it is deprecated.
    pub deprecated: Option<String>,
}

/// Who placed a requirement: the project being resolved, or a chosen version of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirer<P> {
    /// The roots given to [`resolve`].
    Root,
    /// A version chosen during the search.
    Package(P, Version),
}

impl<P: fmt::Display> fmt::Display for Requirer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirer::Root => f.write_str("the project"),
            Requirer::Package(package, version) => write!(f, "{package}@{version}"),
        }
    }
}

/// Why no resolution was returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError<P> {
    /// A requirement names a package that is not in the index.
    #[error("unknown package {package}, required by {required_by}")]
    Unknown {
        /// The unknown package.
        package: P,
        /// Who named it.
        required_by: Requirer<P>,
    },
    /// No single version of a package satisfies every requirement placed on it. When the ranges on
    /// each package can be met alone but not together (say `a@2` needs `b ^1` and every `b@1` needs
    /// `a ^1`), this names the package of the deepest clash, with the ranges placed on it there.
    #[error(
        "no version of {package} satisfies every requirement: {}; published: {}",
        list_requirements(.requirements),
        list_versions(.available)
    )]
    Conflict {
        /// The package that could not be satisfied.
        package: P,
        /// Each range placed on it and who placed it, in the order they were placed.
        requirements: Vec<(Requirer<P>, VersionRange)>,
        /// Every published version of the package, lowest first.
        available: Vec<Version>,
    },
    /// The search gave up after trying `steps` versions.
    #[error("dependency resolution gave up after {steps} steps; pin narrower ranges to shrink the search")]
    TooComplex {
        /// The bound that was reached.
        steps: usize,
    },
}

impl<P> ResolveError<P> {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::Unknown { .. } => ErrorCode::NotFound,
            ResolveError::Conflict { .. } => ErrorCode::Conflict,
            ResolveError::TooComplex { .. } => ErrorCode::Invalid,
        }
    }
}

fn list_requirements<P: fmt::Display>(requirements: &[(Requirer<P>, VersionRange)]) -> String {
    let listed: Vec<String> = requirements.iter().map(|(by, range)| format!("{range} ({by})")).collect();
    listed.join(", ")
}

fn list_versions(versions: &[Version]) -> String {
    if versions.is_empty() {
        return "none".to_owned();
    }
    let listed: Vec<String> = versions.iter().map(Version::to_string).collect();
    listed.join(", ")
}

/// Resolves `roots` against `index`, trying at most [`DEFAULT_MAX_STEPS`] versions.
///
/// Each root is a package and a range; the same package may appear more than once, and then its
/// version must be in every range given.
pub fn resolve<P: PackageId>(roots: &[(P, VersionRange)], index: &Index<P>) -> Result<Resolution<P>, ResolveError<P>> {
    resolve_within(roots, index, DEFAULT_MAX_STEPS)
}

/// Resolves `roots` against `index` as [`resolve`] does, trying at most `max_steps` versions.
pub fn resolve_within<P: PackageId>(
    roots: &[(P, VersionRange)],
    index: &Index<P>,
    max_steps: usize,
) -> Result<Resolution<P>, ResolveError<P>> {
    let mut search = Search { index, requirements: BTreeMap::new(), chosen: BTreeMap::new(), dead_end: None };
    for (package, range) in roots {
        if !index.contains(package) {
            return Err(ResolveError::Unknown { package: package.clone(), required_by: Requirer::Root });
        }
        search.requirements.entry(package).or_default().push(Placed { by: None, range });
    }
    if let Some(package) = search.requirements.keys().find(|package| search.fitting(package).next().is_none()) {
        return Err(search.conflict(package));
    }
    search.run(max_steps)
}

/// A range placed on a package, and the chosen version that placed it (`None`: a root).
struct Placed<'a, P> {
    by: Option<(&'a P, &'a Version)>,
    range: &'a VersionRange,
}

/// One decision on the search stack.
struct Decision<'a, P> {
    package: &'a P,
    /// The package's fitting versions when the decision was opened, in order of preference. Later
    /// decisions are undone before this one is revisited, so they stay the fitting ones.
    order: Vec<&'a Candidate<P>>,
    /// How many of `order` have been tried.
    tried: usize,
}

/// Orders dead ends: definite ones first, then deeper ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    definite: bool,
    depth: usize,
}

/// The state of one resolution: what is required, what is chosen, and the best explanation of failure.
struct Search<'a, P> {
    index: &'a Index<P>,
    /// The ranges placed on each package, oldest first: the roots', then each chosen version's in the
    /// order chosen. Choices are undone last-in first-out, so withdrawing a choice pops its ranges.
    /// A package is here exactly while something requires it.
    requirements: BTreeMap<&'a P, Vec<Placed<'a, P>>>,
    chosen: BTreeMap<&'a P, &'a Candidate<P>>,
    /// The most informative dead end met so far.
    dead_end: Option<(Rank, ResolveError<P>)>,
}

impl<'a, P: PackageId> Search<'a, P> {
    fn run(mut self, max_steps: usize) -> Result<Resolution<P>, ResolveError<P>> {
        let mut stack: Vec<Decision<'a, P>> = Vec::new();
        let mut steps = 0;
        while let Some(package) = self.next_open_package() {
            let order: Vec<&'a Candidate<P>> = self.fitting(package).collect();
            // The roots were checked to fit and every placed range keeps its package fitting, so an
            // empty order is a bug; it still ends as a conflict rather than a panic.
            debug_assert!(!order.is_empty(), "open package {package} has no fitting version");
            if order.is_empty() {
                self.record(Rank { definite: true, depth: stack.len() + 1 }, |search| search.conflict(package));
            }
            stack.push(Decision { package, order, tried: 0 });
            // Choose for the top decision, backtracking into earlier ones as their choices run out.
            loop {
                let Some(top) = stack.last_mut() else {
                    let (_, error) = self.dead_end.expect("every exhausted decision recorded a dead end");
                    return Err(error);
                };
                let Some(&candidate) = top.order.get(top.tried) else {
                    stack.pop();
                    if let Some(parent) = stack.last() {
                        self.withdraw(parent.package);
                    }
                    continue;
                };
                top.tried += 1;
                steps += 1;
                if steps > max_steps {
                    return Err(ResolveError::TooComplex { steps: max_steps });
                }
                let deciding = top.package;
                if self.choose(deciding, candidate, stack.len()) {
                    break;
                }
            }
        }
        Ok(self.resolution())
    }

    /// Returns the required, unchosen package with the fewest fitting versions, the smallest of equals.
    fn next_open_package(&self) -> Option<&'a P> {
        self.requirements
            .keys()
            .copied()
            .filter(|package| !self.chosen.contains_key(package))
            .min_by_key(|package| self.fitting(package).count())
    }

    /// Returns the versions of `package` in every range placed on it, in order of preference.
    fn fitting(&self, package: &P) -> impl Iterator<Item = &'a Candidate<P>> {
        let versions = self.index.versions(package).unwrap_or_default();
        let placed = self.requirements.get(package).map(Vec::as_slice).unwrap_or_default();
        let fits = move |candidate: &&'a Candidate<P>| placed.iter().all(|p| p.range.matches(&candidate.version));
        let current = versions.iter().filter(|c| c.deprecated.is_none()).filter(fits);
        let deprecated = versions.iter().filter(|c| c.deprecated.is_some()).filter(fits);
        current.chain(deprecated)
    }

    /// Chooses `candidate` for `package` and places its ranges, or refuses it, leaving no trace but a
    /// recorded dead end, when one of them leads into a dead end. `depth` is the decision's depth.
    fn choose(&mut self, package: &'a P, candidate: &'a Candidate<P>, depth: usize) -> bool {
        // Chosen before placing, so that a range the version places on its own package checks it.
        self.chosen.insert(package, candidate);
        for (placed, (dependency, range)) in candidate.dependencies.iter().enumerate() {
            if !self.place(package, candidate, dependency, range, depth) {
                for (dependency, _) in candidate.dependencies[..placed].iter().rev() {
                    self.pop_requirement(dependency);
                }
                self.chosen.remove(package);
                return false;
            }
        }
        true
    }

    /// Places one range of the chosen `candidate` of `by`, unless it leads into a dead end, which it
    /// records instead.
    fn place(
        &mut self,
        by: &'a P,
        candidate: &'a Candidate<P>,
        dependency: &'a P,
        range: &'a VersionRange,
        depth: usize,
    ) -> bool {
        if !self.index.contains(dependency) {
            self.record(Rank { definite: true, depth }, |_| ResolveError::Unknown {
                package: dependency.clone(),
                required_by: Requirer::Package(by.clone(), candidate.version.clone()),
            });
            return false;
        }
        self.requirements.entry(dependency).or_default().push(Placed { by: Some((by, &candidate.version)), range });
        let fits = match self.chosen.get(dependency) {
            Some(chosen) => range.matches(&chosen.version),
            None => self.fitting(dependency).next().is_some(),
        };
        if fits {
            return true;
        }
        // Definite when no published version fits every range now placed; otherwise the range only
        // clashes with the version chosen earlier, and another choice there might do.
        let rank = Rank { definite: self.fitting(dependency).next().is_none(), depth };
        self.record(rank, |search| search.conflict(dependency));
        self.pop_requirement(dependency);
        false
    }

    fn pop_requirement(&mut self, package: &P) {
        let placed = self.requirements.get_mut(package).expect("a withdrawn range was placed");
        placed.pop();
        if placed.is_empty() {
            self.requirements.remove(package);
        }
    }

    /// Undoes the choice made for `package` and the ranges it placed.
    fn withdraw(&mut self, package: &P) {
        let candidate = self.chosen.remove(package).expect("only chosen packages are withdrawn");
        for (dependency, _) in candidate.dependencies.iter().rev() {
            self.pop_requirement(dependency);
        }
    }

    /// Keeps the dead end `make` describes if it outranks the one kept so far; ties keep the earlier.
    fn record(&mut self, rank: Rank, make: impl FnOnce(&Self) -> ResolveError<P>) {
        if self.dead_end.as_ref().is_none_or(|(kept, _)| rank > *kept) {
            self.dead_end = Some((rank, make(self)));
        }
    }

    /// Describes the ranges now placed on `package` as a conflict.
    fn conflict(&self, package: &P) -> ResolveError<P> {
        let placed = self.requirements.get(package).map(Vec::as_slice).unwrap_or_default();
        let requirements = placed
            .iter()
            .map(|p| {
                let by = match p.by {
                    None => Requirer::Root,
                    Some((package, version)) => Requirer::Package(package.clone(), version.clone()),
                };
                (by, p.range.clone())
            })
            .collect();
        let available = self.index.versions(package).unwrap_or_default().iter().rev().map(|c| c.version.clone());
        ResolveError::Conflict { package: package.clone(), requirements, available: available.collect() }
    }

    fn resolution(&self) -> Resolution<P> {
        debug_assert!(self.requirements.iter().all(|(package, placed)| {
            self.chosen.get(package).is_some_and(|chosen| placed.iter().all(|p| p.range.matches(&chosen.version)))
        }));
        debug_assert_eq!(self.requirements.len(), self.chosen.len(), "every chosen package is required");
        let packages = self.chosen.iter().map(|(package, candidate)| {
            let dependencies = candidate.dependencies.iter().map(|(dependency, _)| {
                let chosen = self.chosen.get(dependency).expect("the search ends only once every dependency is chosen");
                (dependency.clone(), chosen.version.clone())
            });
            let resolved = Resolved {
                version: candidate.version.clone(),
                dependencies: dependencies.collect(),
                deprecated: candidate.deprecated.clone(),
            };
            ((*package).clone(), resolved)
        });
        Resolution { packages: packages.collect() }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn r(s: &str) -> VersionRange {
        s.parse().unwrap()
    }

    /// A version with its dependencies written `"name range"`.
    fn version(number: &str, dependencies: &[&str]) -> Candidate<String> {
        let dependencies = dependencies
            .iter()
            .map(|d| {
                let (name, range) = d.split_once(' ').unwrap_or((d, "*"));
                (name.to_owned(), r(range))
            })
            .collect();
        Candidate { version: v(number), dependencies, deprecated: None }
    }

    fn deprecated(number: &str, message: &str) -> Candidate<String> {
        Candidate { deprecated: Some(message.to_owned()), ..version(number, &[]) }
    }

    fn index(packages: Vec<(&str, Vec<Candidate<String>>)>) -> Index<String> {
        let mut index = Index::new();
        for (name, versions) in packages {
            index.insert(name.to_owned(), versions);
        }
        index
    }

    fn roots(requirements: &[&str]) -> Vec<(String, VersionRange)> {
        requirements
            .iter()
            .map(|d| {
                let (name, range) = d.split_once(' ').unwrap_or((d, "*"));
                (name.to_owned(), r(range))
            })
            .collect()
    }

    /// The chosen versions as `name@version`, sorted by name.
    fn chosen(resolution: &Resolution<String>) -> Vec<String> {
        resolution.packages.iter().map(|(name, resolved)| format!("{name}@{}", resolved.version)).collect()
    }

    #[test]
    fn a_diamond_that_agrees_picks_the_highest_common_version() {
        let index = index(vec![
            ("app", vec![version("1.0.0", &["left ^1", "right ^1"])]),
            ("left", vec![version("1.0.0", &["base >=1.1.0"])]),
            ("right", vec![version("1.0.0", &["base ^1.0.0"])]),
            ("base", vec![version("1.0.0", &[]), version("1.1.0", &[]), version("1.2.0", &[]), version("2.0.0", &[])]),
        ]);
        let resolution = resolve(&roots(&["app ^1"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["app@1.0.0", "base@1.2.0", "left@1.0.0", "right@1.0.0"]);
        let app = &resolution.packages["app"];
        assert_eq!(
            app.dependencies,
            BTreeMap::from([("left".to_owned(), v("1.0.0")), ("right".to_owned(), v("1.0.0"))])
        );
        assert_eq!(resolution.packages["left"].dependencies["base"], v("1.2.0"));
    }

    #[test]
    fn a_diamond_conflict_names_both_requirers_and_the_published_versions() {
        let index = index(vec![
            ("left", vec![version("1.0.0", &["base ^1.0.0"])]),
            ("right", vec![version("1.3.0", &["base ^2.0.0"])]),
            ("base", vec![version("2.0.0", &[]), version("1.0.0", &[])]),
        ]);
        let error = resolve(&roots(&["left ^1", "right ^1"]), &index).unwrap_err();
        assert_eq!(
            error,
            ResolveError::Conflict {
                package: "base".to_owned(),
                requirements: vec![
                    (Requirer::Package("left".to_owned(), v("1.0.0")), r("^1.0.0")),
                    (Requirer::Package("right".to_owned(), v("1.3.0")), r("^2.0.0")),
                ],
                available: vec![v("1.0.0"), v("2.0.0")],
            }
        );
        assert_eq!(error.code(), ErrorCode::Conflict);
        assert_eq!(
            error.to_string(),
            "no version of base satisfies every requirement: ^1.0.0 (left@1.0.0), ^2.0.0 (right@1.3.0); \
             published: 1.0.0, 2.0.0"
        );
    }

    #[test]
    fn a_conflict_with_the_project_reads_as_a_sentence() {
        let index = index(vec![
            ("user-auth", vec![version("2.1.0", &["crypto-utils ^2.0.0"])]),
            ("crypto-utils", vec![version("1.0.0", &[]), version("1.4.2", &[]), version("2.0.0", &[])]),
        ]);
        let error = resolve(&roots(&["crypto-utils ^1.0.0", "user-auth ^2"]), &index).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no version of crypto-utils satisfies every requirement: ^1.0.0 (the project), ^2.0.0 (user-auth@2.1.0); \
             published: 1.0.0, 1.4.2, 2.0.0"
        );
    }

    #[test]
    fn an_older_version_is_found_when_the_newest_leads_into_a_conflict() {
        // a@1.1.0 needs c ^2, and c@2 needs a d the project excludes: only a@1.0.0 works, and the
        // ranges a@1.1.0 placed (on c and on e) must be withdrawn with it.
        let index = index(vec![
            ("a", vec![version("1.1.0", &["c ^2", "e ^1"]), version("1.0.0", &["c ^1"])]),
            ("c", vec![version("1.0.0", &["d ^1"]), version("2.0.0", &["d ^2"])]),
            ("d", vec![version("1.0.0", &[]), version("1.5.0", &[]), version("2.0.0", &[])]),
            ("e", vec![version("1.0.0", &[])]),
        ]);
        let resolution = resolve(&roots(&["a ^1", "d ^1"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["a@1.0.0", "c@1.0.0", "d@1.5.0"]);
    }

    #[test]
    fn pre_releases_are_chosen_only_when_a_range_admits_them() {
        let index = index(vec![(
            "lib",
            vec![version("1.0.0", &[]), version("1.1.0-beta.1", &[]), version("1.1.0-beta.2", &[])],
        )]);
        let stable = resolve(&roots(&["lib ^1.0.0"]), &index).unwrap();
        assert_eq!(chosen(&stable), ["lib@1.0.0"]);
        let beta = resolve(&roots(&["lib ^1.1.0-beta.1"]), &index).unwrap();
        assert_eq!(chosen(&beta), ["lib@1.1.0-beta.2"]);
    }

    #[test]
    fn deprecated_versions_are_chosen_only_when_nothing_else_fits() {
        let index = index(vec![("lib", vec![version("1.0.0", &[]), deprecated("1.1.0", "broken, use 1.0.0")])]);
        let avoided = resolve(&roots(&["lib ^1"]), &index).unwrap();
        assert_eq!(chosen(&avoided), ["lib@1.0.0"]);
        assert_eq!(avoided.packages["lib"].deprecated, None);
        let forced = resolve(&roots(&["lib ~1.1"]), &index).unwrap();
        assert_eq!(chosen(&forced), ["lib@1.1.0"]);
        assert_eq!(forced.packages["lib"].deprecated.as_deref(), Some("broken, use 1.0.0"));
    }

    #[test]
    fn a_deprecated_version_is_taken_when_the_others_lead_into_conflicts() {
        let index = index(vec![
            ("lib", vec![version("1.2.0", &["base ^2"]), deprecated("1.1.0", "old")]),
            ("base", vec![version("1.0.0", &[]), version("2.0.0", &[])]),
        ]);
        let resolution = resolve(&roots(&["lib ^1", "base ^1"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["base@1.0.0", "lib@1.1.0"]);
    }

    #[test]
    fn unknown_packages_name_who_required_them() {
        let index = index(vec![("app", vec![version("1.0.0", &["ghost ^1"])])]);
        let error = resolve(&roots(&["app ^1"]), &index).unwrap_err();
        assert_eq!(
            error,
            ResolveError::Unknown {
                package: "ghost".to_owned(),
                required_by: Requirer::Package("app".to_owned(), v("1.0.0"))
            }
        );
        assert_eq!(error.to_string(), "unknown package ghost, required by app@1.0.0");
        assert_eq!(error.code(), ErrorCode::NotFound);
        let error = resolve(&roots(&["ghost"]), &index).unwrap_err();
        assert_eq!(error.to_string(), "unknown package ghost, required by the project");
    }

    #[test]
    fn a_version_needing_an_unknown_package_is_passed_over() {
        let index = index(vec![("app", vec![version("1.1.0", &["ghost ^1"]), version("1.0.0", &[])])]);
        let resolution = resolve(&roots(&["app ^1"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["app@1.0.0"]);
    }

    #[test]
    fn cycles_resolve_to_one_version_each() {
        let index = index(vec![
            ("a", vec![version("1.0.0", &["b ^1"])]),
            ("b", vec![version("1.0.0", &["a ^1"])]),
            ("self", vec![version("1.0.0", &["self ^1", "a ^1"])]),
        ]);
        let resolution = resolve(&roots(&["self ^1"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["a@1.0.0", "b@1.0.0", "self@1.0.0"]);
        assert_eq!(resolution.packages["b"].dependencies["a"], v("1.0.0"));
        assert_eq!(resolution.packages["self"].dependencies["self"], v("1.0.0"));
    }

    #[test]
    fn a_cycle_that_excludes_the_newest_version_backs_off_to_an_older_one() {
        let index = index(vec![
            ("a", vec![version("2.0.0", &["b ^1"]), version("1.0.0", &["b ^1"])]),
            ("b", vec![version("1.0.0", &["a ^1"])]),
        ]);
        let resolution = resolve(&roots(&["a"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["a@1.0.0", "b@1.0.0"]);
    }

    #[test]
    fn the_project_may_name_a_package_twice_and_gets_the_intersection() {
        let index = index(vec![("lib", vec![version("1.0.0", &[]), version("1.5.0", &[]), version("2.0.0", &[])])]);
        let resolution = resolve(&roots(&["lib >=1.0.0", "lib <2.0.0"]), &index).unwrap();
        assert_eq!(chosen(&resolution), ["lib@1.5.0"]);
        let error = resolve(&roots(&["lib ^1", "lib ^2"]), &index).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no version of lib satisfies every requirement: ^1 (the project), ^2 (the project); \
             published: 1.0.0, 1.5.0, 2.0.0"
        );
    }

    #[test]
    fn the_result_does_not_depend_on_insertion_order() {
        let packages = || {
            vec![
                ("x", vec![version("1.0.0", &["y ^1", "z ^1"]), version("1.1.0", &["y ^1.1", "z ^1"])]),
                ("y", vec![version("1.0.0", &["z ~1.0"]), version("1.1.0", &["z ^1"]), version("1.2.0", &[])]),
                ("z", vec![version("1.0.0", &[]), version("1.0.5", &[]), version("1.3.0", &[])]),
            ]
        };
        let forward = resolve(&roots(&["x ^1", "y"]), &index(packages())).unwrap();
        let mut reversed = packages();
        reversed.reverse();
        for (_, versions) in &mut reversed {
            versions.reverse();
        }
        assert_eq!(resolve(&roots(&["y", "x ^1"]), &index(reversed)).unwrap(), forward);
        assert_eq!(chosen(&forward), ["x@1.1.0", "y@1.2.0", "z@1.3.0"]);
    }

    #[test]
    fn the_deepest_dead_end_explains_a_failure() {
        // a@2 fails at once on c; a@1 gets one decision further before d fails.
        let index = index(vec![
            ("a", vec![version("2.0.0", &["c ^5"]), version("1.0.0", &["b"])]),
            ("b", vec![version("1.0.0", &["d ^9"])]),
            ("c", vec![version("1.0.0", &[])]),
            ("d", vec![version("1.0.0", &[])]),
        ]);
        let error = resolve(&roots(&["a"]), &index).unwrap_err();
        assert_eq!(error.to_string(), "no version of d satisfies every requirement: ^9 (b@1.0.0); published: 1.0.0");
    }

    #[test]
    fn a_conflict_spread_over_a_cycle_is_reported_at_its_deepest_clash() {
        // Each version of a needs a b whose every version needs the other a.
        let index = index(vec![
            ("a", vec![version("1.1.0", &["b ^1"]), version("1.0.0", &["b ^2"])]),
            ("b", vec![version("1.0.0", &["a =1.0.0"]), version("2.0.0", &["a =1.1.0"])]),
        ]);
        let error = resolve(&roots(&["a"]), &index).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no version of a satisfies every requirement: * (the project), =1.0.0 (b@1.0.0); published: 1.0.0, 1.1.0"
        );
    }

    /// `width` independent packages of two versions each are decided before `z`, whose every version
    /// needs a `w` that does not exist in range: without learning, all 2^width combinations get tried.
    fn pathological(width: usize) -> (Vec<(String, VersionRange)>, Index<String>) {
        let mut index = index(vec![
            ("z", vec![version("1.0.0", &["w ^1"]), version("2.0.0", &["w ^2"])]),
            ("w", vec![version("3.0.0", &[])]),
        ]);
        let mut roots = roots(&["z"]);
        for i in 0..width {
            index.insert(format!("a{i:02}"), vec![version("1.0.0", &[]), version("2.0.0", &[])]);
            roots.push((format!("a{i:02}"), r("*")));
        }
        (roots, index)
    }

    #[test]
    fn an_exhaustive_search_stops_at_the_step_bound() {
        let (roots, index) = pathological(17);
        let started = Instant::now();
        assert_eq!(resolve(&roots, &index), Err(ResolveError::TooComplex { steps: DEFAULT_MAX_STEPS }));
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        let error = resolve_within(&roots, &index, 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "dependency resolution gave up after 10 steps; pin narrower ranges to shrink the search"
        );
    }

    #[test]
    fn an_exhaustive_search_within_the_bound_reports_the_conflict() {
        let (roots, index) = pathological(6);
        let error = resolve(&roots, &index).unwrap_err();
        assert!(matches!(&error, ResolveError::Conflict { package, .. } if package == "w"), "{error}");
        assert_eq!(error.to_string(), "no version of w satisfies every requirement: ^2 (z@2.0.0); published: 3.0.0");
    }

    // Random small graphs over the packages p0..p4; dependencies and roots may also name the unknown p5.
    const POOL: &[&str] = &["0.1.0", "1.0.0", "1.1.0-beta.1", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0"];
    const RANGES: &[&str] = &[
        "*",
        "*",
        ">=0.1.0",
        "^1.0.0",
        "^1 || ^2",
        "~1.1.0",
        ">=1.1.0 <3.0.0",
        "^2.0.0",
        "1.x || 3.x",
        "^1.1.0-beta.1",
        "0.1.0",
        "<1.2.0",
    ];
    const PACKAGES: usize = 5;

    type Requirement = (usize, usize);
    /// Per package, its versions as (index in `POOL`, deprecated, dependencies).
    type Graph = Vec<Vec<(usize, bool, Vec<Requirement>)>>;

    fn requirement() -> impl Strategy<Value = Requirement> {
        (prop_oneof![24 => 0..PACKAGES, 1 => Just(PACKAGES)], 0..RANGES.len())
    }

    fn graph() -> impl Strategy<Value = Graph> {
        let version = (0..POOL.len(), prop::bool::weighted(0.2), prop::collection::vec(requirement(), 0..=3));
        prop::collection::vec(prop::collection::vec(version, 1..=4), PACKAGES)
    }

    fn name(package: usize) -> String {
        format!("p{package}")
    }

    fn candidates(versions: &[(usize, bool, Vec<Requirement>)]) -> Vec<Candidate<String>> {
        let mut seen = Vec::new();
        let mut candidates = Vec::new();
        for (number, deprecated, dependencies) in versions {
            if seen.contains(number) {
                continue;
            }
            seen.push(*number);
            candidates.push(Candidate {
                version: v(POOL[*number]),
                dependencies: dependencies.iter().map(|&(p, range)| (name(p), r(RANGES[range]))).collect(),
                deprecated: deprecated.then(|| "deprecated".to_owned()),
            });
        }
        candidates
    }

    fn build(graph: &Graph, reversed: bool) -> Index<String> {
        let mut index = Index::new();
        let mut order: Vec<usize> = (0..PACKAGES).collect();
        if reversed {
            order.reverse();
        }
        for package in order {
            let mut versions = candidates(&graph[package]);
            if reversed {
                versions.reverse();
            }
            index.insert(name(package), versions);
        }
        index
    }

    /// Checks that `resolution` is a correct answer for `roots`: every range holds, the dependency maps
    /// match the choices, and every chosen package is required by something.
    fn check(roots: &[(String, VersionRange)], index: &Index<String>, resolution: &Resolution<String>) {
        let packages = &resolution.packages;
        let mut required: Vec<&String> = Vec::new();
        for (package, range) in roots {
            assert!(range.matches(&packages[package].version), "root {package} {range}");
            required.push(package);
        }
        for (package, resolved) in packages {
            let candidate = index.versions(package).unwrap().iter().find(|c| c.version == resolved.version).unwrap();
            assert_eq!(resolved.deprecated, candidate.deprecated);
            for (dependency, range) in &candidate.dependencies {
                let dependency_version = &packages[dependency].version;
                assert!(range.matches(dependency_version), "{package}@{} needs {dependency} {range}", resolved.version);
                assert_eq!(&resolved.dependencies[dependency], dependency_version);
                required.push(dependency);
            }
            assert_eq!(
                resolved.dependencies.len(),
                candidate.dependencies.iter().map(|(d, _)| d).collect::<std::collections::BTreeSet<_>>().len()
            );
        }
        for package in packages.keys() {
            assert!(required.contains(&package), "{package} is chosen but required by nothing");
        }
    }

    /// Returns whether some assignment of at most one version per package satisfies every range, by
    /// trying them all.
    fn solvable(roots: &[(String, VersionRange)], index: &Index<String>) -> bool {
        let names: Vec<String> = (0..PACKAGES).map(name).collect();
        let options: Vec<usize> = names.iter().map(|n| index.versions(n).unwrap().len() + 1).collect();
        let total: usize = options.iter().product();
        (0..total).any(|mut code| {
            // Digit i is package i's choice: 0 for none, k for its (k-1)-th version.
            let mut assignment: BTreeMap<&String, &Version> = BTreeMap::new();
            let mut picked = Vec::new();
            for (package, count) in names.iter().zip(&options) {
                let digit = code % count;
                code /= count;
                if digit > 0 {
                    let candidate = &index.versions(package).unwrap()[digit - 1];
                    assignment.insert(package, &candidate.version);
                    picked.push(candidate);
                }
            }
            let holds =
                |package: &String, range: &VersionRange| assignment.get(package).is_some_and(|v| range.matches(v));
            roots.iter().all(|(p, range)| holds(p, range))
                && picked.iter().all(|c| c.dependencies.iter().all(|(p, range)| holds(p, range)))
        })
    }

    proptest! {
        // Small graphs are cheap, and most draws end in a conflict; more cases reach more resolutions.
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_graphs_resolve_correctly_completely_and_repeatably(
            graph in graph(),
            root_requirements in prop::collection::vec(requirement(), 1..=3),
        ) {
            let index = build(&graph, false);
            let roots: Vec<(String, VersionRange)> =
                root_requirements.iter().map(|&(p, range)| (name(p), r(RANGES[range]))).collect();
            let outcome = resolve(&roots, &index);
            match &outcome {
                Ok(resolution) => check(&roots, &index, resolution),
                Err(ResolveError::TooComplex { .. }) => prop_assert!(false, "tiny graphs never reach the bound"),
                Err(_) => {}
            }
            prop_assert_eq!(outcome.is_ok(), solvable(&roots, &index), "{:?}", outcome);
            prop_assert_eq!(&resolve(&roots, &index), &outcome);
            prop_assert_eq!(&resolve(&roots, &build(&graph, true)), &outcome);
        }
    }
}
