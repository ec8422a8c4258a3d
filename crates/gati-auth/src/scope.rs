//! Token scopes: the Docker token-auth scope grammar, parsed into typed [`Scope`]s.
//!
//! A scope is `resourcetype[(class)]:resourcename:action[,action...]`
//! (<https://distribution.github.io/distribution/spec/auth/scope/>), as sent in the `scope`
//! parameter of a token request, several per parameter when space-separated (the `OAuth2` form).
//! Owns the parsing, its limits and the canonical text form; deciding which requested actions to
//! grant is the policy's job. Scopes arrive from unauthenticated clients, so everything here is
//! bounded and every name is parsed into a [`RepoName`] before anything else sees it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use gati_core::RepoName;

use crate::error::{AuthError, Result, echo};
use crate::token::ResourceAccess;

/// The most scopes accepted in one token request, after splitting and before merging.
pub const MAX_SCOPES: usize = 64;
/// The longest single scope accepted, in bytes.
pub const MAX_SCOPE_LEN: usize = 1024;

/// What a scope is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeResource {
    /// `repository:<name>`: one repository.
    Repository(RepoName),
    /// `registry:catalog`: the repository listing (`GET /v2/_catalog`).
    Catalog,
}

/// An action a scope asks for. Ordered as printed in the canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeAction {
    /// `pull`: read manifests, tags and blobs.
    Pull,
    /// `push`: upload blobs and manifests.
    Push,
    /// `delete`: delete manifests, tags and blobs.
    Delete,
    /// `*`: every action on the resource.
    All,
}

impl ScopeAction {
    /// Returns the action as it appears in a scope and in the token `access` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeAction::Pull => "pull",
            ScopeAction::Push => "push",
            ScopeAction::Delete => "delete",
            ScopeAction::All => "*",
        }
    }

    fn from_known(text: &str) -> Option<ScopeAction> {
        match text {
            "pull" => Some(ScopeAction::Pull),
            "push" => Some(ScopeAction::Push),
            "delete" => Some(ScopeAction::Delete),
            "*" => Some(ScopeAction::All),
            _ => None,
        }
    }
}

/// One requested scope: a resource and the known actions asked for on it.
///
/// The action set may be empty when every requested action was unknown: the distribution spec lets
/// a server ignore actions it does not know, and a token then grants nothing on that resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The resource the scope is about.
    pub resource: ScopeResource,
    /// The actions asked for.
    pub actions: BTreeSet<ScopeAction>,
}

impl Scope {
    /// Returns this scope as an entry of the Docker token `access` claim.
    pub fn to_access(&self) -> ResourceAccess {
        let (r#type, name) = match &self.resource {
            ScopeResource::Repository(name) => ("repository", name.as_str()),
            ScopeResource::Catalog => ("registry", "catalog"),
        };
        ResourceAccess {
            r#type: r#type.to_owned(),
            name: name.to_owned(),
            actions: self.actions.iter().map(|action| action.as_str().to_owned()).collect(),
        }
    }
}

/// Prints the canonical form: `repository:<name>:<actions>` or `registry:catalog:<actions>`, the
/// actions comma-separated in [`ScopeAction`] order, without the resource class.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            ScopeResource::Repository(name) => write!(f, "repository:{name}:")?,
            ScopeResource::Catalog => f.write_str("registry:catalog:")?,
        }
        for (i, action) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(action.as_str())?;
        }
        Ok(())
    }
}

/// Checks `[a-z0-9]+(?:[._-][a-z0-9]+)*`, the grammar of a resource type and of its class.
fn is_resource_type_value(text: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = text.as_bytes();
    let mut previous_was_separator = true;
    for &b in bytes {
        if alnum(b) {
            previous_was_separator = false;
        } else if matches!(b, b'.' | b'_' | b'-') && !previous_was_separator {
            previous_was_separator = true;
        } else {
            return false;
        }
    }
    !previous_was_separator
}

/// Parses one scope. The type ends at the first `:` and the actions start after the last, so a name
/// containing `:` reaches the name check (and fails it: repository names have no `:`).
impl FromStr for Scope {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self> {
        let refuse = |reason| AuthError::ScopeInvalid { scope: echo(s), reason };
        if s.len() > MAX_SCOPE_LEN {
            return Err(refuse("longer than 1024 bytes"));
        }
        let (resource_type, rest) = s.split_once(':').ok_or_else(|| refuse("not of the form type:name:actions"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| refuse("not of the form type:name:actions"))?;

        // The optional class, as in `repository(plugin)`, is accepted and ignored.
        let resource_type = match resource_type.split_once('(') {
            Some((resource_type, class)) => {
                let class = class.strip_suffix(')').ok_or_else(|| refuse("malformed resource class"))?;
                if !is_resource_type_value(class) {
                    return Err(refuse("malformed resource class"));
                }
                resource_type
            }
            None => resource_type,
        };
        if !is_resource_type_value(resource_type) {
            return Err(refuse("malformed resource type"));
        }

        if actions.is_empty() {
            return Err(refuse("no actions"));
        }
        let mut known = BTreeSet::new();
        for action in actions.split(',') {
            if action != "*" && (action.is_empty() || !action.bytes().all(|b| b.is_ascii_lowercase())) {
                return Err(refuse("malformed action"));
            }
            // Unknown but well-formed actions are dropped, as the distribution spec allows.
            known.extend(ScopeAction::from_known(action));
        }

        let resource = match resource_type {
            "repository" => ScopeResource::Repository(
                name.parse().map_err(|_| refuse("resource name is not a valid repository name"))?,
            ),
            "registry" if name == "catalog" => ScopeResource::Catalog,
            "registry" => return Err(refuse("unknown registry resource")),
            _ => return Err(refuse("unknown resource type")),
        };
        Ok(Scope { resource, actions: known })
    }
}

/// Parses the `scope` values of a token request. Each value may hold several scopes separated by
/// spaces. Scopes for the same resource are merged (their actions united), in order of first
/// appearance. Refuses more than [`MAX_SCOPES`] scopes in all, or any one longer than
/// [`MAX_SCOPE_LEN`] bytes.
pub fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>> {
    let mut merged: Vec<Scope> = Vec::new();
    let mut count = 0usize;
    for value in values {
        // Bounds the work on one absurd value (a megabyte of spaces) before splitting it.
        if value.len() > MAX_SCOPES * (MAX_SCOPE_LEN + 1) {
            return Err(AuthError::ScopeInvalid { scope: echo(value), reason: "scope parameter too long" });
        }
        for text in value.split(' ').filter(|text| !text.is_empty()) {
            count += 1;
            if count > MAX_SCOPES {
                return Err(AuthError::ScopeInvalid { scope: echo(text), reason: "more than 64 scopes" });
            }
            let scope: Scope = text.parse()?;
            match merged.iter_mut().find(|existing| existing.resource == scope.resource) {
                Some(existing) => existing.actions.extend(scope.actions),
                None => merged.push(scope),
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str) -> ScopeResource {
        ScopeResource::Repository(name.parse().unwrap())
    }

    fn actions(list: &[ScopeAction]) -> BTreeSet<ScopeAction> {
        list.iter().copied().collect()
    }

    fn reason(input: &str) -> &'static str {
        match parse_scopes([input]) {
            Err(AuthError::ScopeInvalid { reason, .. }) => reason,
            other => panic!("{input:?} must be refused, got {other:?}"),
        }
    }

    #[test]
    fn parses_docker_scopes() {
        use ScopeAction::*;
        let scopes = parse_scopes(["repository:library/nginx:pull,push", "registry:catalog:*"]).unwrap();
        assert_eq!(
            scopes,
            vec![
                Scope { resource: repo("library/nginx"), actions: actions(&[Pull, Push]) },
                Scope { resource: ScopeResource::Catalog, actions: actions(&[All]) },
            ]
        );
        let scope: Scope = "repository(plugin):users/krishna/tool:delete,*".parse().unwrap();
        assert_eq!(scope, Scope { resource: repo("users/krishna/tool"), actions: actions(&[Delete, All]) });
    }

    #[test]
    fn space_separated_scopes_are_split_and_same_resource_merged() {
        use ScopeAction::*;
        let scopes =
            parse_scopes(["repository:a:pull  repository:b:pull", "repository:a:push repository:a:pull", ""]).unwrap();
        assert_eq!(
            scopes,
            vec![
                Scope { resource: repo("a"), actions: actions(&[Pull, Push]) },
                Scope { resource: repo("b"), actions: actions(&[Pull]) },
            ]
        );
        assert_eq!(parse_scopes([]).unwrap(), vec![]);
    }

    #[test]
    fn unknown_actions_are_dropped_but_malformed_ones_refused() {
        let scope: Scope = "repository:a:pull,mount,frobnicate".parse().unwrap();
        assert_eq!(scope.actions, actions(&[ScopeAction::Pull]));
        let scope: Scope = "repository:a:mount".parse().unwrap();
        assert!(scope.actions.is_empty());
        assert_eq!(scope.to_string(), "repository:a:");

        assert_eq!(reason("repository:a:"), "no actions");
        assert_eq!(reason("repository:a:pull,"), "malformed action");
        assert_eq!(reason("repository:a:,pull"), "malformed action");
        assert_eq!(reason("repository:a:PULL"), "malformed action");
        assert_eq!(reason("repository:a:pull;push"), "malformed action");
        assert_eq!(reason("repository:a:**"), "malformed action");
    }

    #[test]
    fn unknown_resource_types_are_refused() {
        assert_eq!(reason("plugin:a:pull"), "unknown resource type");
        assert_eq!(reason("Repository:a:pull"), "malformed resource type");
        assert_eq!(reason("registry:everything:*"), "unknown registry resource");
        assert_eq!(reason(":a:pull"), "malformed resource type");
        assert_eq!(reason("repository(:a:pull"), "malformed resource class");
        assert_eq!(reason("repository():a:pull"), "malformed resource class");
        assert_eq!(reason("repository(x)y:a:pull"), "malformed resource class");
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "repository:../etc:pull",
            "repository:a/../../etc:pull",
            "repository:./a:pull",
            "repository:a//b:pull",
            "repository:/a:pull",
            "repository:a/:pull",
            "repository:Library/Nginx:pull",
            "repository:%2e%2e/etc:pull",
            "repository:a%2fb:pull",
            "repository:registry.example:5000/a:pull",
            "repository:a\u{0}b:pull",
            "repository:a\nb:pull",
            "repository::pull",
            "repository:a b:pull",
        ] {
            let error = parse_scopes([bad]).unwrap_err();
            assert!(matches!(error, AuthError::ScopeInvalid { .. }), "{bad:?}: {error:?}");
        }
        assert_eq!(reason("repository:a"), "not of the form type:name:actions");
        assert_eq!(reason("repository"), "not of the form type:name:actions");
        assert_eq!(reason("::"), "malformed resource type");
    }

    #[test]
    fn sizes_and_counts_are_bounded() {
        let long_name = format!("repository:{}:pull", "a/".repeat(600));
        assert_eq!(reason(&long_name), "longer than 1024 bytes");
        let megabyte = " ".repeat(1 << 20);
        assert_eq!(reason(&megabyte), "scope parameter too long");

        let sixty_four: Vec<String> = (0..64).map(|i| format!("repository:r{i}:pull")).collect();
        assert_eq!(parse_scopes(sixty_four.iter().map(String::as_str)).unwrap().len(), 64);
        let sixty_five: Vec<String> = (0..65).map(|i| format!("repository:r{i}:pull")).collect();
        assert!(parse_scopes(sixty_five.iter().map(String::as_str)).is_err());
        // The cap counts scopes before merging, so repeating one scope cannot bypass it.
        let repeated = vec!["repository:a:pull"; 65].join(" ");
        assert_eq!(reason(&repeated), "more than 64 scopes");

        // Error messages echo only a short prefix of the input.
        let error = parse_scopes([long_name.as_str()]).unwrap_err().to_string();
        assert!(error.len() < 200, "{error}");
    }

    #[test]
    fn display_is_canonical_and_access_matches_the_docker_format() {
        let scope: Scope = "repository(x):library/nginx:*,push,pull,pull".parse().unwrap();
        assert_eq!(scope.to_string(), "repository:library/nginx:pull,push,*");
        assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        assert_eq!(
            scope.to_access(),
            ResourceAccess {
                r#type: "repository".into(),
                name: "library/nginx".into(),
                actions: vec!["pull".into(), "push".into(), "*".into()],
            }
        );
        let catalog: Scope = "registry:catalog:*".parse().unwrap();
        assert_eq!(catalog.to_string(), "registry:catalog:*");
        assert_eq!(
            serde_json::to_value(catalog.to_access()).unwrap(),
            serde_json::json!({"type": "registry", "name": "catalog", "actions": ["*"]})
        );
    }
}
