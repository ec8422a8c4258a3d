//! Accounts: sign-up, password sign-in and changes, organisations and their members, namespace
//! visibility, settings and grants, and the registry administrator's verification badge.

use gati_auth::policy::{Action, Decision, Principal};
use gati_auth::{PasswordHash, check_password_policy, hash_password, verify_against_nothing, verify_password};
use gati_core::identity::{
    AccountName, Email, Grantee, IdentityCommand, NamespaceSettings, OrgRecord, OrgRole, Role, UserChange, UserRecord,
    Visibility,
};
use gati_core::{Namespace, RepoName};
use serde::Serialize;

use super::access::Target;
use super::api_keys::owner_with_full_rights;
use super::error::{IdentityError, Result};
use super::tokens::TokenPair;
use super::{Identity, now};

/// What sign-up needs.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The account name.
    pub name: String,
    /// The email address.
    pub email: String,
    /// The password.
    pub password: String,
}

/// A user as the APIs show it (never the password hash).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The name.
    pub name: AccountName,
    /// The namespace they own.
    pub namespace: String,
    /// The email address (shown to the user themselves and administrators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// Whether an administrator verified them as a publisher.
    pub verified_publisher: bool,
    /// Whether they administer the registry.
    pub registry_admin: bool,
    /// When the account was created (unix seconds).
    pub created_at: u64,
}

impl UserView {
    pub(super) fn of(user: &UserRecord, private: bool) -> UserView {
        UserView {
            name: user.name.clone(),
            namespace: user.name.user_namespace().to_string(),
            email: private.then(|| user.email.clone()),
            email_verified: user.email_verified,
            verified_publisher: user.verified_publisher,
            registry_admin: user.registry_admin,
            created_at: user.created_at,
        }
    }
}

/// An organisation as the APIs show it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    /// The name.
    pub name: AccountName,
    /// The namespace it owns.
    pub namespace: String,
    /// Whether an administrator verified it as a publisher.
    pub verified_publisher: bool,
    /// Members and their standing (shown to members only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<std::collections::BTreeMap<AccountName, OrgRole>>,
    /// Teams and their members (shown to members only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams:
        Option<std::collections::BTreeMap<gati_core::identity::TeamName, std::collections::BTreeSet<AccountName>>>,
}

/// Hashes a new password off the async workers; returns its PHC string.
pub(super) async fn hash_off_thread(password: String) -> Result<String> {
    let hash = blocking(move || hash_password(&password))
        .await?
        .map_err(|e| IdentityError::internal(&e, "password hashing"))?;
    Ok(hash.as_phc_str().to_owned())
}

/// Password hashes computed at once: each costs tens of milliseconds of CPU and 19 MiB, so a
/// flood of sign-ins queues here instead of exhausting memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// A password check runs off the async workers, a few at a time.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASHING.acquire().await.map_err(|e| IdentityError::internal(&e, "password hashing"))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| IdentityError::internal(&e, "password hashing"))
}

impl Identity {
    /// Creates an account and returns it.
    pub async fn sign_up(&self, new: NewUser) -> Result<UserView> {
        if !self.inner.config.allow_signup {
            return Err(IdentityError::SignupDisabled);
        }
        let name: AccountName = new.name.parse()?;
        if name.is_reserved() {
            return Err(IdentityError::Invalid(format!("the name {name:?} is reserved")));
        }
        let email: Email = new.email.parse()?;
        let context = [name.as_str(), email.local_part()];
        check_password_policy(&new.password, &context).map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let password = new.password;
        let hash = blocking(move || hash_password(&password))
            .await?
            .map_err(|e| IdentityError::internal(&e, "password hashing"))?;
        let user = UserRecord {
            name,
            email,
            email_verified: false,
            password: Some(hash.as_phc_str().to_owned()),
            registry_admin: false,
            verified_publisher: false,
            disabled: false,
            external: Default::default(),
            tokens_valid_after: 0,
            created_at: now(),
        };
        self.write(IdentityCommand::CreateUser { user: Box::new(user.clone()) }).await?;
        self.send_verification(&user.name, &user.email).await;
        Ok(UserView::of(&user, true))
    }

    /// Checks a name (or email) and password; the same work is done whether or not the account
    /// exists, so timing does not tell.
    pub(crate) async fn check_password(&self, login: &str, password: &str) -> Result<UserRecord> {
        let guard = self.inner.login_guard.as_ref();
        let started = std::time::Instant::now();
        // Names are case-insensitive for the guard, so case variants share one budget.
        let guard_key = login.to_lowercase();
        if let Some(Err(wait)) = guard.map(|g| g.may_try(&guard_key, started)) {
            return Err(IdentityError::RateLimited(wait));
        }
        let outcome = self.verify_password_of(login, password).await;
        if let Some(guard) = guard {
            match &outcome {
                Ok(_) => guard.succeeded(&guard_key),
                Err(IdentityError::Unauthenticated(_)) => guard.failed(&guard_key, started),
                Err(_) => {}
            }
        }
        outcome
    }

    async fn verify_password_of(&self, login: &str, password: &str) -> Result<UserRecord> {
        let state = self.fresh().await?;
        let user = match login.parse::<AccountName>() {
            Ok(name) => state.user(&name)?,
            Err(_) => match login.parse::<Email>() {
                Ok(email) => state.user_by_email(&email)?,
                Err(_) => None,
            },
        };
        let password = password.to_owned();
        let stored = user.as_ref().and_then(|u| u.password.clone());
        let matches = blocking(move || match stored.map(PasswordHash::from_stored) {
            Some(hash) => verify_password(&password, &hash),
            None => {
                verify_against_nothing(&password);
                false
            }
        })
        .await?;
        match user {
            Some(user) if matches => self.usable_user(state, &user.name, u64::MAX),
            _ => Err(IdentityError::Unauthenticated("invalid credentials".into())),
        }
    }

    /// Signs in with a name (or email) and password, starting a session.
    pub async fn sign_in(&self, login: &str, password: &str) -> Result<(UserView, TokenPair)> {
        let user = self.check_password(login, password).await?;
        let tokens = self.start_session(&user).await?;
        Ok((UserView::of(&user, true), tokens))
    }

    /// The signed-in user's own account.
    pub fn whoami(&self, principal: &Principal) -> Result<UserView> {
        match principal {
            Principal::User { user, .. } => Ok(UserView::of(user, true)),
            Principal::Anonymous => Err(IdentityError::Unauthenticated("sign in first".into())),
        }
    }

    /// A user's public profile.
    pub fn user(&self, principal: &Principal, name: &str) -> Result<UserView> {
        let name: AccountName = name.parse().map_err(|_| IdentityError::NotFound("user"))?;
        let user = self.state().user(&name)?.ok_or(IdentityError::NotFound("user"))?;
        let private = principal.user_name() == Some(&name) || principal.is_registry_admin();
        Ok(UserView::of(&user, private))
    }

    /// Changes the signed-in user's password; every earlier session and token stops working.
    pub async fn change_password(&self, principal: &Principal, current: &str, new: &str) -> Result<()> {
        let name = owner_with_full_rights(principal)?.clone();
        let user = self.check_password(name.as_str(), current).await?;
        check_password_policy(new, &[name.as_str(), user.email.local_part()])
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let new = new.to_owned();
        let hash = blocking(move || hash_password(&new))
            .await?
            .map_err(|e| IdentityError::internal(&e, "password hashing"))?;
        let change = UserChange::SetPassword { hash: hash.as_phc_str().to_owned(), at: now() };
        self.write(IdentityCommand::UpdateUser { name, change }).await
    }

    /// Ends every session and token of the signed-in user.
    pub async fn sign_out_everywhere(&self, principal: &Principal) -> Result<()> {
        let name = owner_with_full_rights(principal)?.clone();
        self.write(IdentityCommand::UpdateUser { name, change: UserChange::RevokeTokens { at: now() } }).await
    }

    /// Registry administration: changes another account (verification badge, admin role,
    /// disabling, email verification).
    pub async fn administer_user(&self, principal: &Principal, name: &str, change: UserChange) -> Result<()> {
        if !principal.is_registry_admin() {
            return Err(IdentityError::Forbidden("only registry administrators may do this".into()));
        }
        let name: AccountName = name.parse().map_err(|_| IdentityError::NotFound("user"))?;
        self.write(IdentityCommand::UpdateUser { name, change }).await
    }

    /// Registry administration: grants or takes away an organisation's verified-publisher badge.
    pub async fn verify_org(&self, principal: &Principal, org: &str, verified: bool) -> Result<OrgView> {
        if !principal.is_registry_admin() {
            return Err(IdentityError::Forbidden("only registry administrators may do this".into()));
        }
        let name: AccountName = org.parse().map_err(|_| IdentityError::NotFound("organisation"))?;
        self.write(IdentityCommand::SetOrgVerified { org: name, verified }).await?;
        self.org(principal, org)
    }

    /// Creates an organisation owned by the signed-in user.
    pub async fn create_org(&self, principal: &Principal, name: &str) -> Result<OrgView> {
        let owner = owner_with_full_rights(principal)?.clone();
        let name: AccountName = name.parse()?;
        if name.is_reserved() && !principal.is_registry_admin() {
            return Err(IdentityError::Invalid(format!("the name {name:?} is reserved")));
        }
        self.write(IdentityCommand::CreateOrg { name: name.clone(), owner, at: now() }).await?;
        self.org(principal, name.as_str())
    }

    /// An organisation; members and teams only for its members and administrators.
    pub fn org(&self, principal: &Principal, name: &str) -> Result<OrgView> {
        let name: AccountName = name.parse().map_err(|_| IdentityError::NotFound("organisation"))?;
        let org = self.state().org(&name)?.ok_or(IdentityError::NotFound("organisation"))?;
        let member =
            principal.user_name().is_some_and(|u| org.members.contains_key(u)) || principal.is_registry_admin();
        Ok(OrgView {
            name: org.name.clone(),
            namespace: org.name.org_namespace().to_string(),
            verified_publisher: org.verified_publisher,
            members: member.then(|| org.members.clone()),
            teams: member.then(|| org.teams.clone()),
        })
    }

    fn org_for_owner(&self, principal: &Principal, name: &str) -> Result<OrgRecord> {
        let name: AccountName = name.parse().map_err(|_| IdentityError::NotFound("organisation"))?;
        let org = self.state().org(&name)?.ok_or(IdentityError::NotFound("organisation"))?;
        let user = owner_with_full_rights(principal)?;
        match org.members.get(user) {
            Some(OrgRole::Owner) => Ok(org),
            _ if principal.is_registry_admin() => Ok(org),
            Some(OrgRole::Member) => Err(IdentityError::Forbidden("only organisation owners may do this".into())),
            None => Err(IdentityError::NotFound("organisation")),
        }
    }

    /// Adds a member to an organisation, changes their standing, or (`None`) removes them.
    pub async fn set_org_member(
        &self,
        principal: &Principal,
        org: &str,
        user: &str,
        role: Option<OrgRole>,
    ) -> Result<()> {
        let org = self.org_for_owner(principal, org)?;
        let user: AccountName = user.parse().map_err(|_| IdentityError::NotFound("user"))?;
        self.write(IdentityCommand::SetOrgMember { org: org.name, user, role }).await
    }

    /// Creates or replaces a team (`Some`), or deletes it (`None`).
    pub async fn set_team(
        &self,
        principal: &Principal,
        org: &str,
        team: &str,
        members: Option<Vec<String>>,
    ) -> Result<()> {
        let org = self.org_for_owner(principal, org)?;
        let team = team.parse()?;
        let members = match members {
            Some(names) => Some(names.iter().map(|n| n.parse()).collect::<Result<_, _>>()?),
            None => None,
        };
        self.write(IdentityCommand::SetTeam { org: org.name, team, members }).await
    }

    /// Checks that `principal` may administer `namespace` (404 when it may not even see it).
    pub(super) fn namespace_admin(&self, principal: &Principal, namespace: &str) -> Result<Namespace> {
        // Any repository of the namespace decides alike, so one under it stands in.
        let probe: RepoName = format!("{namespace}/x").parse()?;
        if probe.namespace().as_str() != namespace {
            return Err(IdentityError::Invalid(format!("{namespace:?} is not a namespace")));
        }
        let namespace = probe.namespace();
        match self.decide(principal, Target::Repo(&probe), Action::Admin, None)? {
            Decision::Allow => Ok(namespace),
            Decision::NotFound => Err(IdentityError::NotFound("namespace")),
            Decision::Unauthenticated { .. } => Err(IdentityError::Unauthenticated("sign in first".into())),
            Decision::Forbidden { reason } => Err(IdentityError::Forbidden(reason.into())),
        }
    }

    /// Sets a namespace's visibility and settings.
    pub async fn set_namespace_policy(
        &self,
        principal: &Principal,
        namespace: &str,
        visibility: Visibility,
        settings: NamespaceSettings,
    ) -> Result<()> {
        let namespace = self.namespace_admin(principal, namespace)?;
        self.write(IdentityCommand::SetNamespacePolicy { namespace, visibility, settings }).await
    }

    /// A namespace's policy, for those who may administer it.
    pub fn namespace_policy(
        &self,
        principal: &Principal,
        namespace: &str,
    ) -> Result<gati_core::identity::NamespacePolicy> {
        let namespace = self.namespace_admin(principal, namespace)?;
        Ok(self.state().namespace_policy(&namespace)?)
    }

    /// Grants a role on a namespace, or (`None`) takes it away. Granting or taking away `owner`
    /// needs `owner`.
    pub async fn set_namespace_grant(
        &self,
        principal: &Principal,
        namespace: &str,
        grantee: Grantee,
        role: Option<Role>,
    ) -> Result<()> {
        let namespace = self.namespace_admin(principal, namespace)?;
        let current = self.state().namespace_policy(&namespace)?.grants.get(&grantee.key()).map(|(_, r)| *r);
        if (role == Some(Role::Owner) || current == Some(Role::Owner))
            && !self.is_namespace_owner(principal, &namespace)?
        {
            return Err(IdentityError::Forbidden("only owners may grant or take away the owner role".into()));
        }
        self.write(IdentityCommand::SetNamespaceGrant { namespace, grantee, role }).await
    }

    /// Whether `principal` owns `namespace` (by ownership, organisation, a grant to them or to a
    /// team of theirs, or administration): the policy's own rule.
    fn is_namespace_owner(&self, principal: &Principal, namespace: &Namespace) -> Result<bool> {
        let Principal::User { user, .. } = principal else { return Ok(false) };
        let probe: RepoName = format!("{namespace}/x").parse()?;
        Ok(self.role_on(user, &probe)? == Some(Role::Owner))
    }
}
