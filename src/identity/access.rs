//! Who is asking, and may they: turning a presented credential into a [`Principal`], and the
//! access decision for one repository and action.
//!
//! Credentials are checked against this node's replica of the `meta` group as applied, which
//! every node reaches within a heartbeat of a change being committed; access tokens are short
//! (minutes) on top of that.

use std::net::IpAddr;

use gati_auth::policy::{self, Action, Decision, Limits, NamespaceView, Owner, Principal};
use gati_auth::{Scope, ScopeAction, ScopeResource, SecretHash, looks_like_api_key, parse_api_key};
use gati_core::identity::{AccountName, UserRecord};
use gati_core::{Namespace, RepoName};
use gati_meta::StateMachine;

use super::error::{IdentityError, Result};
use super::{Identity, now};

/// A credential as presented with a request.
#[derive(Clone, Debug)]
pub enum Credential {
    /// None at all.
    None,
    /// HTTP Basic: a user name and a password or API key.
    Basic {
        /// The user name.
        user: String,
        /// The password or API key.
        secret: String,
    },
    /// A bearer value: an access token or an API key.
    Bearer(String),
}

impl Credential {
    /// The credential's kind for the audit log; an API key by its (public) id.
    pub fn kind(&self) -> String {
        let key_id =
            |text: &str| parse_api_key(text).map_or_else(|_| "api-key".to_owned(), |(id, _)| format!("api-key:{id}"));
        match self {
            Credential::None => "anonymous".into(),
            Credential::Basic { secret, .. } if looks_like_api_key(secret) => key_id(secret),
            Credential::Basic { .. } => "password".into(),
            Credential::Bearer(value) if looks_like_api_key(value) => key_id(value),
            Credential::Bearer(_) => "token".into(),
        }
    }
}

/// What a request wants to reach: a repository, or the registry as a whole.
#[derive(Clone, Debug)]
pub enum Target<'a> {
    /// One repository.
    Repo(&'a RepoName),
    /// The registry itself (`/v2/` and the catalog).
    Registry,
}

fn bad_credentials() -> IdentityError {
    IdentityError::Unauthenticated("invalid credentials".into())
}

impl Identity {
    /// Establishes who presents `credential`. No credential is [`Principal::Anonymous`]; a
    /// wrong, expired or revoked one is an error (never silently anonymous).
    pub async fn authenticate(&self, credential: &Credential) -> Result<Principal> {
        match credential {
            Credential::None => Ok(Principal::Anonymous),
            Credential::Basic { user, secret } if looks_like_api_key(secret) => {
                let principal = self.api_key_principal(secret)?;
                if principal.user_name().is_none_or(|owner| owner.as_str() != user) {
                    return Err(bad_credentials());
                }
                Ok(principal)
            }
            Credential::Basic { user, secret } => {
                let user = self.check_password(user, secret).await?;
                Ok(Principal::User { user: Box::new(user), limits: Limits::None })
            }
            Credential::Bearer(value) if looks_like_api_key(value) => self.api_key_principal(value),
            Credential::Bearer(token) => self.token_principal(token),
        }
    }

    /// The user an access token speaks for, with its scope when it is a registry token.
    fn token_principal(&self, token: &str) -> Result<Principal> {
        let (claims, scoped) = self.verify_access_token(token)?;
        let limits = if scoped {
            let mut granted = std::collections::BTreeSet::new();
            let mut catalog = false;
            for access in &claims.access {
                if access.r#type == "registry" && access.name == "catalog" {
                    catalog = true;
                    continue;
                }
                let Ok(repo) = access.name.parse::<RepoName>() else { continue };
                for action in access.actions.iter().filter_map(|a| Action::from_scope_name(a)) {
                    granted.insert((repo.clone(), action));
                }
            }
            Limits::Scoped { granted, catalog }
        } else {
            Limits::None
        };
        if claims.sub.is_empty() {
            // An anonymous registry token: only what anonymous may do, which is already public.
            return Ok(Principal::Anonymous);
        }
        let name: AccountName = claims.sub.parse().map_err(|_| bad_credentials())?;
        let state = self.state();
        if let Some(sid) = &claims.sid {
            let session = state.session(sid)?.ok_or_else(bad_credentials)?;
            if session.revoked_at.is_some() {
                return Err(IdentityError::Unauthenticated("the session was signed out".into()));
            }
        }
        if let Some(id) = &claims.key {
            // Issued for an API key: it ends when the key does.
            let key = state.api_key(id)?.ok_or_else(bad_credentials)?;
            if key.revoked_at.is_some() || key.expires_at.is_some_and(|at| at <= now()) || key.owner != name {
                return Err(IdentityError::Unauthenticated("the API key the token was issued for was revoked".into()));
            }
        }
        let user = self.usable_user(state, &name, claims.iat)?;
        Ok(Principal::User { user: Box::new(user), limits })
    }

    /// The user an API key acts for, limited by the key.
    fn api_key_principal(&self, text: &str) -> Result<Principal> {
        let (id, secret) = parse_api_key(text).map_err(|_| bad_credentials())?;
        let state = self.state();
        let key = state.api_key(&id)?.ok_or_else(bad_credentials)?;
        let hash: SecretHash = serde_json::from_value(serde_json::Value::String(key.secret_sha256.clone()))
            .map_err(|e| IdentityError::internal(&e, "stored API key hash"))?;
        if !hash.matches(&secret) {
            return Err(bad_credentials());
        }
        if key.revoked_at.is_some() {
            return Err(IdentityError::Unauthenticated("the API key was revoked".into()));
        }
        if key.expires_at.is_some_and(|at| at <= now()) {
            return Err(IdentityError::Unauthenticated("the API key has expired".into()));
        }
        let user = self.usable_user(state, &key.owner, u64::MAX)?;
        self.note_key_use(&key.id, now());
        Ok(Principal::User { user: Box::new(user), limits: Limits::of_api_key(&key) })
    }

    /// The account named `name`, if it may still act: it exists, is enabled, and (for a token
    /// issued at `issued_at`) was not signed out everywhere since.
    pub(crate) fn usable_user(&self, state: &StateMachine, name: &AccountName, issued_at: u64) -> Result<UserRecord> {
        let mut user = state.user(name)?.ok_or_else(bad_credentials)?;
        if user.disabled {
            return Err(IdentityError::Unauthenticated("the account is disabled".into()));
        }
        if issued_at < user.tokens_valid_after {
            return Err(IdentityError::Unauthenticated("the token was revoked".into()));
        }
        if self.inner.admins.contains(&user.name) {
            user.registry_admin = true;
        }
        Ok(user)
    }

    /// Decides whether `principal` may do `action` to `target`, from `client`.
    pub fn decide(
        &self,
        principal: &Principal,
        target: Target<'_>,
        action: Action,
        client: Option<IpAddr>,
    ) -> Result<Decision> {
        let repo = match target {
            Target::Repo(repo) => repo,
            // `/v2/` (Pull) needs any valid credential; the catalog (Admin) a registry
            // administrator, whose registry token must also carry the catalog scope.
            Target::Registry => {
                let admin = match principal {
                    Principal::Anonymous => false,
                    Principal::User { user, limits } => {
                        user.registry_admin && matches!(limits, Limits::None | Limits::Scoped { catalog: true, .. })
                    }
                };
                return Ok(match (principal, action) {
                    (Principal::Anonymous, _) => Decision::Unauthenticated { insufficient_scope: false },
                    (_, Action::Pull) => Decision::Allow,
                    _ if admin => Decision::Allow,
                    _ => Decision::Forbidden { reason: "only registry administrators may list the catalog" },
                });
            }
        };
        self.with_view(repo, |view, in_team| policy::decide(principal, view, repo, action, client, in_team))
    }

    /// The role `user` holds on `repo`'s namespace, before any credential limits.
    pub(super) fn role_on(&self, user: &UserRecord, repo: &RepoName) -> Result<Option<gati_core::identity::Role>> {
        self.with_view(repo, |view, in_team| policy::role_of(user, view, in_team))
    }

    /// Gathers what the policy reads about `repo`'s namespace (owner, policy, whether the
    /// repository exists, team membership) from the local replica and hands it to `f`.
    fn with_view<R>(
        &self,
        repo: &RepoName,
        f: impl FnOnce(&NamespaceView<'_>, &dyn Fn(&AccountName, &gati_core::identity::TeamName, &AccountName) -> bool) -> R,
    ) -> Result<R> {
        let state = self.state();
        let namespace = repo.namespace();
        let policy = state.namespace_policy(&namespace)?;
        let org;
        let owner_name;
        let owner = match owner_of(&namespace) {
            Some(("users", name)) => {
                owner_name = name;
                Owner::User(&owner_name)
            }
            Some(("orgs", name)) => match state.org(&name)? {
                Some(record) => {
                    org = record;
                    Owner::Org(&org)
                }
                None => Owner::Nobody,
            },
            _ => Owner::Nobody,
        };
        let repo_exists = self.cluster().state_of(repo).repo_exists(repo)?;
        let view = NamespaceView { namespace: &namespace, owner, policy: &policy, repo_exists };
        let in_team = |org: &AccountName, team: &gati_core::identity::TeamName, user: &AccountName| {
            state.org(org).ok().flatten().is_some_and(|o| o.teams.get(team).is_some_and(|m| m.contains(user)))
        };
        Ok(f(&view, &in_team))
    }

    /// Whether `repo`'s namespace is private (reads of it are audited).
    pub fn is_private(&self, repo: &RepoName) -> Result<bool> {
        let policy = self.state().namespace_policy(&repo.namespace())?;
        Ok(policy.visibility == gati_core::identity::Visibility::Private)
    }

    /// The actions of `scopes` that `principal` may do, as the `access` claim of a registry
    /// token: requested actions that are not allowed are left out, never an error (the
    /// distribution token specification's rule).
    pub fn grant_scopes(
        &self,
        principal: &Principal,
        scopes: &[Scope],
        client: Option<IpAddr>,
    ) -> Result<Vec<gati_auth::token::ResourceAccess>> {
        let mut access = Vec::new();
        for scope in scopes {
            match &scope.resource {
                ScopeResource::Catalog => {
                    if principal.is_registry_admin() {
                        access.push(scope.to_access());
                    }
                }
                ScopeResource::Repository(repo) => {
                    let wanted: Vec<Action> = scope
                        .actions
                        .iter()
                        .flat_map(|a| match a {
                            ScopeAction::Pull => vec![Action::Pull],
                            ScopeAction::Push => vec![Action::Push],
                            ScopeAction::Delete => vec![Action::Delete],
                            ScopeAction::All => vec![Action::Pull, Action::Push, Action::Delete, Action::Admin],
                        })
                        .collect();
                    let mut actions = Vec::new();
                    for action in wanted {
                        let decision = self.decide(principal, Target::Repo(repo), action, client)?;
                        if decision == Decision::Allow && !actions.contains(&action.scope_name()) {
                            actions.push(action.scope_name());
                        }
                    }
                    if !actions.is_empty() {
                        access.push(gati_auth::token::ResourceAccess {
                            r#type: "repository".into(),
                            name: repo.to_string(),
                            actions: actions.into_iter().map(str::to_owned).collect(),
                        });
                    }
                }
            }
        }
        Ok(access)
    }
}

/// The account kind and name owning a namespace (`users/<name>`, `orgs/<name>`), if any.
fn owner_of(namespace: &Namespace) -> Option<(&str, AccountName)> {
    let (kind, name) = namespace.as_str().split_once('/')?;
    Some((kind, name.parse().ok()?))
}
