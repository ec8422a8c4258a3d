//! Policy decisions: may this principal do this to that repository?
//!
//! One pure function, [`decide`], over what the replicated state says about the namespace and
//! the principal, so every API surface (OCI, REST, GraphQL, gRPC) decides alike. The rules:
//!
//! 1. A principal's **role** on a namespace is the highest of: owner of their own `users/<name>`,
//!    owner or member of the organisation owning `orgs/<name>` (members read), roles granted to
//!    them or to a team they are in, and owner everywhere for registry administrators.
//! 2. A **private** namespace does not exist for a signed-in principal without a role (404), and
//!    asks an anonymous one to sign in (401): the two are indistinguishable from a namespace
//!    that does not exist, so probing reveals nothing.
//! 3. Pull needs the namespace to be public or a `read` role; push needs `write`; delete and
//!    settings need `admin`. `allowPublicPublish` lets any signed-in user push a repository that
//!    does not exist yet.
//! 4. An **IP allowlist** refuses principals outside it once the namespace is visible to them.
//! 5. An **API key** can never do more than its owner, and further only what its permissions and
//!    repository patterns allow. A **scoped token** (OCI bearer token) allows only the actions
//!    it was issued for; anything else asks for a new token (401 `insufficient_scope`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use gati_core::identity::{
    AccountName, ApiKeyRecord, Grantee, KeyPermission, NamespacePolicy, OrgRecord, OrgRole, Role, TeamName, UserRecord,
    Visibility,
};
use gati_core::{Namespace, RepoName};

use crate::pattern::RepoPattern;

/// What a request wants to do to a repository (or its namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read content: manifests, blobs, tags, referrers.
    Pull,
    /// Write content: uploads, manifests, tags.
    Push,
    /// Delete content.
    Delete,
    /// Change the namespace's members and settings.
    Admin,
}

impl Action {
    /// The least role that allows the action on a namespace.
    pub fn required_role(self) -> Role {
        match self {
            Action::Pull => Role::Read,
            Action::Push => Role::Write,
            Action::Delete | Action::Admin => Role::Admin,
        }
    }

    /// The API key permission the action needs.
    pub fn key_permission(self) -> KeyPermission {
        match self {
            Action::Pull => KeyPermission::Pull,
            Action::Push => KeyPermission::Push,
            Action::Delete => KeyPermission::Delete,
            Action::Admin => KeyPermission::Admin,
        }
    }

    /// The action an OCI token scope action name stands for; `None` for names it does not know.
    pub fn from_scope_name(name: &str) -> Option<Action> {
        [Action::Pull, Action::Push, Action::Delete, Action::Admin].into_iter().find(|a| a.scope_name() == name)
    }

    /// The OCI token scope action name (`pull`, `push`, `delete`; `*` for admin).
    pub fn scope_name(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "*",
        }
    }
}

/// Who is asking, as established by authentication.
#[derive(Clone, Debug)]
pub enum Principal {
    /// Nobody signed in.
    Anonymous,
    /// A signed-in user, with the limits of the credential they used.
    User {
        /// The account.
        user: Box<UserRecord>,
        /// The limits of the credential, beyond the user's own rights.
        limits: Limits,
    },
}

/// What a credential narrows a user's rights to.
#[derive(Clone, Debug, Default)]
pub enum Limits {
    /// A password, session or unscoped token: everything the user may do.
    #[default]
    None,
    /// An API key: its permissions and repository patterns.
    ApiKey {
        /// The key, so tokens issued for it can name it.
        id: gati_core::identity::ApiKeyId,
        /// The permissions.
        permissions: BTreeSet<KeyPermission>,
        /// The repositories it is limited to; empty means all.
        repositories: Vec<RepoPattern>,
    },
    /// An OCI bearer token: the actions it was issued for, per repository.
    Scoped {
        /// `(repository, action)` pairs the token allows.
        granted: BTreeSet<(RepoName, Action)>,
        /// Whether the token also allows listing the catalog.
        catalog: bool,
    },
}

impl Limits {
    /// The limits of an API key. Patterns that no longer parse are dropped, and a key whose
    /// patterns all failed to parse allows nothing rather than everything.
    pub fn of_api_key(key: &ApiKeyRecord) -> Limits {
        let repositories: Vec<RepoPattern> = key.repositories.iter().filter_map(|p| p.parse().ok()).collect();
        let permissions =
            if repositories.len() == key.repositories.len() { key.permissions.clone() } else { BTreeSet::new() };
        Limits::ApiKey { id: key.id.clone(), permissions, repositories }
    }
}

impl Principal {
    /// The signed-in user's name, if any.
    pub fn user_name(&self) -> Option<&AccountName> {
        match self {
            Principal::Anonymous => None,
            Principal::User { user, .. } => Some(&user.name),
        }
    }

    /// The signed-in user, when the credential carries their full rights (a password or a
    /// session, not an API key or a registry token): what managing the account itself needs.
    pub fn with_full_rights(&self) -> Option<&AccountName> {
        match self {
            Principal::User { user, limits: Limits::None } => Some(&user.name),
            _ => None,
        }
    }

    /// Whether the principal administers the registry (with a credential that does not narrow it).
    pub fn is_registry_admin(&self) -> bool {
        matches!(self, Principal::User { user, limits: Limits::None } if user.registry_admin)
    }
}

/// Who owns a namespace, as the state knows it.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// `users/<name>`: that user, whether or not the account exists.
    User(&'a AccountName),
    /// `orgs/<name>` of an existing organisation.
    Org(&'a OrgRecord),
    /// Any other namespace (`library`), or `orgs/<name>` without an organisation: only grants
    /// and registry administrators give roles on it.
    Nobody,
}

/// Everything [`decide`] needs to know about the namespace of the repository.
#[derive(Clone, Copy, Debug)]
pub struct NamespaceView<'a> {
    /// The namespace.
    pub namespace: &'a Namespace,
    /// Its owner.
    pub owner: Owner<'a>,
    /// Its policy (the default when none was set).
    pub policy: &'a NamespacePolicy,
    /// Whether the repository asked about already has content.
    pub repo_exists: bool,
}

/// The outcome of a decision, in the terms every protocol maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Sign in (or get a token with more scope) first: 401 with a challenge.
    Unauthenticated {
        /// Whether the principal was signed in but its token lacks the scope.
        insufficient_scope: bool,
    },
    /// Signed in and the content is visible, but the action is not allowed: 403.
    Forbidden {
        /// Why, safe to show.
        reason: &'static str,
    },
    /// As far as this principal is concerned, the repository does not exist: 404.
    NotFound,
}

/// The principal's role on a namespace, before any credential limits. `in_team` answers whether
/// a user belongs to a team of an organisation (the caller looks the organisation up).
pub fn role_of(
    user: &UserRecord,
    view: &NamespaceView<'_>,
    in_team: &dyn Fn(&AccountName, &TeamName, &AccountName) -> bool,
) -> Option<Role> {
    if user.disabled {
        return None;
    }
    if user.registry_admin {
        return Some(Role::Owner);
    }
    let from_owner = match view.owner {
        Owner::User(owner) if *owner == user.name => Some(Role::Owner),
        Owner::Org(org) => org.members.get(&user.name).map(|standing| match standing {
            OrgRole::Owner => Role::Owner,
            OrgRole::Member => Role::Read,
        }),
        _ => None,
    };
    let from_grants = view.policy.grants.values().filter_map(|(grantee, role)| {
        let applies = match grantee {
            Grantee::User { name } => *name == user.name,
            Grantee::Team { org, team } => in_team(org, team, &user.name),
        };
        applies.then_some(*role)
    });
    from_owner.into_iter().chain(from_grants).max()
}

/// Decides whether `principal` may do `action` to `repo`, from `client` (when known).
pub fn decide(
    principal: &Principal,
    view: &NamespaceView<'_>,
    repo: &RepoName,
    action: Action,
    client: Option<IpAddr>,
    in_team: &dyn Fn(&AccountName, &TeamName, &AccountName) -> bool,
) -> Decision {
    let (user, limits) = match principal {
        Principal::Anonymous => (None, &Limits::None),
        Principal::User { user, limits } => (Some(user.as_ref()), limits),
    };
    let role = user.and_then(|u| role_of(u, view, in_team));
    let public = view.policy.visibility == Visibility::Public;
    // The key's repository patterns decide visibility too: a key limited to other
    // repositories cannot learn that a private one exists.
    let key_reaches = match limits {
        Limits::ApiKey { repositories, .. } => repositories.is_empty() || repositories.iter().any(|p| p.matches(repo)),
        _ => true,
    };
    let visible = public || (role.is_some() && key_reaches);
    if !visible {
        return match user {
            None => Decision::Unauthenticated { insufficient_scope: false },
            Some(_) => Decision::NotFound,
        };
    }
    if !view.policy.settings.ip_allowlist.is_empty()
        && !client.is_some_and(|ip| view.policy.settings.ip_allowlist.iter().any(|net| net.contains(ip)))
    {
        return Decision::Forbidden { reason: "requests to this namespace are not allowed from this network" };
    }
    let by_role = role.is_some_and(|r| r >= action.required_role());
    let allowed = match action {
        Action::Pull => public || by_role,
        Action::Push => by_role || (user.is_some() && view.policy.settings.allow_public_publish && !view.repo_exists),
        Action::Delete | Action::Admin => by_role,
    };
    if !allowed {
        return match user {
            None => Decision::Unauthenticated { insufficient_scope: false },
            Some(_) => Decision::Forbidden { reason: "your role on this namespace does not allow this" },
        };
    }
    match limits {
        Limits::None => Decision::Allow,
        Limits::ApiKey { permissions, .. } => {
            if !key_reaches {
                Decision::Forbidden { reason: "the API key is limited to other repositories" }
            } else if !permissions.contains(&action.key_permission()) {
                Decision::Forbidden { reason: "the API key does not have this permission" }
            } else {
                Decision::Allow
            }
        }
        Limits::Scoped { granted, .. } => {
            if granted.contains(&(repo.clone(), action)) {
                Decision::Allow
            } else {
                Decision::Unauthenticated { insufficient_scope: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gati_core::identity::{NamespaceSettings, UserRecord};

    use super::*;

    fn name(s: &str) -> AccountName {
        s.parse().unwrap()
    }

    fn user(n: &str) -> Box<UserRecord> {
        Box::new(UserRecord {
            name: name(n),
            email: format!("{n}@x.io").parse().unwrap(),
            email_verified: true,
            password: None,
            registry_admin: false,
            verified_publisher: false,
            disabled: false,
            external: Default::default(),
            tokens_valid_after: 0,
            created_at: 0,
        })
    }

    fn signed_in(n: &str) -> Principal {
        Principal::User { user: user(n), limits: Limits::None }
    }

    fn no_teams(_: &AccountName, _: &TeamName, _: &AccountName) -> bool {
        false
    }

    struct Case {
        namespace: Namespace,
        policy: NamespacePolicy,
        org: Option<OrgRecord>,
        owner_name: AccountName,
    }

    impl Case {
        fn user_ns(owner: &str, visibility: Visibility) -> Case {
            Case {
                namespace: name(owner).user_namespace(),
                policy: NamespacePolicy { visibility, ..Default::default() },
                org: None,
                owner_name: name(owner),
            }
        }

        fn org_ns(org: &str, members: &[(&str, OrgRole)], visibility: Visibility) -> Case {
            let record = OrgRecord {
                name: name(org),
                members: members.iter().map(|(m, r)| (name(m), *r)).collect(),
                teams: BTreeMap::new(),
                verified_publisher: false,
                created_at: 0,
            };
            Case {
                namespace: name(org).org_namespace(),
                policy: NamespacePolicy { visibility, ..Default::default() },
                org: Some(record),
                owner_name: name(org),
            }
        }

        fn decide(&self, principal: &Principal, action: Action) -> Decision {
            let owner = match &self.org {
                Some(org) => Owner::Org(org),
                None => Owner::User(&self.owner_name),
            };
            let view = NamespaceView { namespace: &self.namespace, owner, policy: &self.policy, repo_exists: true };
            let repo: RepoName = format!("{}/app", self.namespace).parse().unwrap();
            decide(principal, &view, &repo, action, Some("10.0.0.1".parse().unwrap()), &no_teams)
        }
    }

    #[test]
    fn owners_do_everything_and_strangers_only_pull_public_content() {
        let public = Case::user_ns("alice", Visibility::Public);
        for action in [Action::Pull, Action::Push, Action::Delete, Action::Admin] {
            assert_eq!(public.decide(&signed_in("alice"), action), Decision::Allow, "{action:?}");
        }
        assert_eq!(public.decide(&signed_in("bob"), Action::Pull), Decision::Allow);
        assert!(matches!(public.decide(&signed_in("bob"), Action::Push), Decision::Forbidden { .. }));
        assert_eq!(public.decide(&Principal::Anonymous, Action::Pull), Decision::Allow);
        assert_eq!(
            public.decide(&Principal::Anonymous, Action::Push),
            Decision::Unauthenticated { insufficient_scope: false }
        );
    }

    #[test]
    fn private_namespaces_do_not_exist_for_principals_without_a_role() {
        let private = Case::user_ns("alice", Visibility::Private);
        for action in [Action::Pull, Action::Push, Action::Delete] {
            assert_eq!(private.decide(&signed_in("bob"), action), Decision::NotFound, "{action:?}");
            assert_eq!(
                private.decide(&Principal::Anonymous, action),
                Decision::Unauthenticated { insufficient_scope: false }
            );
        }
        assert_eq!(private.decide(&signed_in("alice"), Action::Pull), Decision::Allow);
    }

    #[test]
    fn organisation_members_read_and_grants_raise_roles() {
        let mut case =
            Case::org_ns("acme", &[("alice", OrgRole::Owner), ("bob", OrgRole::Member)], Visibility::Private);
        assert_eq!(case.decide(&signed_in("alice"), Action::Delete), Decision::Allow);
        assert_eq!(case.decide(&signed_in("bob"), Action::Pull), Decision::Allow);
        assert!(matches!(case.decide(&signed_in("bob"), Action::Push), Decision::Forbidden { .. }));
        let grantee = Grantee::User { name: name("bob") };
        case.policy.grants.insert(grantee.key(), (grantee, Role::Write));
        assert_eq!(case.decide(&signed_in("bob"), Action::Push), Decision::Allow);
        assert!(matches!(case.decide(&signed_in("bob"), Action::Delete), Decision::Forbidden { .. }));
        let carol = Grantee::Team { org: name("acme"), team: "devs".parse().unwrap() };
        case.policy.grants.insert(carol.key(), (carol, Role::Admin));
        let view = NamespaceView {
            namespace: &case.namespace,
            owner: Owner::Org(case.org.as_ref().unwrap()),
            policy: &case.policy,
            repo_exists: true,
        };
        let in_devs = |org: &AccountName, team: &TeamName, u: &AccountName| {
            org.as_str() == "acme" && team.as_str() == "devs" && u.as_str() == "carol"
        };
        let repo: RepoName = "orgs/acme/app".parse().unwrap();
        assert_eq!(decide(&signed_in("carol"), &view, &repo, Action::Delete, None, &in_devs), Decision::Allow);
    }

    #[test]
    fn registry_admins_own_everything_and_disabled_users_nothing() {
        let private = Case::user_ns("alice", Visibility::Private);
        let mut admin = user("root-admin");
        admin.registry_admin = true;
        let admin = Principal::User { user: admin, limits: Limits::None };
        assert!(admin.is_registry_admin());
        assert_eq!(private.decide(&admin, Action::Delete), Decision::Allow);
        let mut alice = user("alice");
        alice.disabled = true;
        assert_eq!(
            private.decide(&Principal::User { user: alice, limits: Limits::None }, Action::Pull),
            Decision::NotFound
        );
    }

    #[test]
    fn api_keys_never_exceed_their_permissions_or_patterns() {
        let private = Case::user_ns("alice", Visibility::Private);
        let key = |permissions: &[KeyPermission], patterns: &[&str]| Principal::User {
            user: user("alice"),
            limits: Limits::ApiKey {
                id: "abcdefghabcdefgh".parse().unwrap(),
                permissions: permissions.iter().copied().collect(),
                repositories: patterns.iter().map(|p| p.parse().unwrap()).collect(),
            },
        };
        assert_eq!(private.decide(&key(&[KeyPermission::Pull], &[]), Action::Pull), Decision::Allow);
        assert!(matches!(private.decide(&key(&[KeyPermission::Pull], &[]), Action::Push), Decision::Forbidden { .. }));
        assert_eq!(private.decide(&key(&[KeyPermission::Pull], &["users/alice/*"]), Action::Pull), Decision::Allow);
        assert_eq!(
            private.decide(&key(&[KeyPermission::Pull], &["users/alice/other"]), Action::Pull),
            Decision::NotFound,
            "a key limited elsewhere cannot see a private repository"
        );
        let bob_key = Principal::User {
            user: user("bob"),
            limits: Limits::ApiKey {
                id: "abcdefghabcdefgh".parse().unwrap(),
                permissions: [KeyPermission::Push].into(),
                repositories: vec![],
            },
        };
        assert_eq!(private.decide(&bob_key, Action::Push), Decision::NotFound, "a key never exceeds its owner");
    }

    #[test]
    fn scoped_tokens_allow_only_what_they_were_issued_for() {
        let public = Case::user_ns("alice", Visibility::Public);
        let repo: RepoName = "users/alice/app".parse().unwrap();
        let token = Principal::User {
            user: user("alice"),
            limits: Limits::Scoped { granted: [(repo, Action::Pull)].into(), catalog: false },
        };
        assert_eq!(public.decide(&token, Action::Pull), Decision::Allow);
        assert_eq!(public.decide(&token, Action::Push), Decision::Unauthenticated { insufficient_scope: true });
    }

    #[test]
    fn allowlists_and_public_publishing() {
        let mut case = Case::user_ns("alice", Visibility::Public);
        case.policy.settings =
            NamespaceSettings { ip_allowlist: vec!["192.168.0.0/16".parse().unwrap()], ..Default::default() };
        assert!(matches!(case.decide(&signed_in("alice"), Action::Pull), Decision::Forbidden { .. }));
        case.policy.settings.ip_allowlist.push("10.0.0.0/8".parse().unwrap());
        assert_eq!(case.decide(&signed_in("alice"), Action::Pull), Decision::Allow);
        let mut open = Case::user_ns("alice", Visibility::Public);
        open.policy.settings.allow_public_publish = true;
        let view = NamespaceView {
            namespace: &open.namespace,
            owner: Owner::User(&open.owner_name),
            policy: &open.policy,
            repo_exists: false,
        };
        let repo: RepoName = "users/alice/new".parse().unwrap();
        assert_eq!(decide(&signed_in("bob"), &view, &repo, Action::Push, None, &no_teams), Decision::Allow);
        let existing = NamespaceView { repo_exists: true, ..view };
        assert!(matches!(
            decide(&signed_in("bob"), &existing, &repo, Action::Push, None, &no_teams),
            Decision::Forbidden { .. }
        ));
        assert_eq!(
            decide(&Principal::Anonymous, &view, &repo, Action::Push, None, &no_teams),
            Decision::Unauthenticated { insufficient_scope: false }
        );
    }
}
