//! Identity and access records: accounts (users and organisations), teams, namespace policies,
//! API keys, login sessions and token-signing keys, and the [`IdentityCommand`]s that change them.
//!
//! These are the replicated half of identity and access: the `meta` group's state machine stores
//! them, so every node decides access from the same data. Everything non-deterministic (password
//! hashing, random ids, the clock) happens before a command is proposed; `apply` only checks
//! preconditions and stores. The decisions themselves (who may do what) live in `gati-auth`.
//!
//! Users and organisations share one name space, and a name also may not be *confusable* with a
//! taken one ([`AccountName::skeleton`]): `paypa1` cannot be registered next to `paypal`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::name::{Namespace, RepoName};

fn invalid(what: &'static str, value: &str, reason: &'static str) -> CoreError {
    CoreError::IdentityInvalid { what, value: value.chars().take(80).collect(), reason }
}

/// Names that no account may take: API surfaces, well-known identities and words that would let
/// an account pass for the registry itself.
const RESERVED: &[&str] = &[
    "about",
    "abuse",
    "account",
    "accounts",
    "admin",
    "administrator",
    "api",
    "app",
    "apps",
    "assets",
    "auth",
    "billing",
    "blog",
    "cdn",
    "cloud",
    "cluster",
    "contact",
    "dashboard",
    "docs",
    "download",
    "explore",
    "gati",
    "gati-cloud",
    "gati-official",
    "gatiregistry",
    "graphql",
    "healthz",
    "help",
    "home",
    "library",
    "login",
    "logout",
    "marketplace",
    "metrics",
    "new",
    "null",
    "official",
    "oauth",
    "org",
    "orgs",
    "owner",
    "pricing",
    "privacy",
    "registry",
    "root",
    "search",
    "security",
    "settings",
    "signup",
    "staff",
    "status",
    "support",
    "system",
    "team",
    "teams",
    "terms",
    "token",
    "ui",
    "undefined",
    "user",
    "users",
    "v1",
    "v2",
    "verified",
    "www",
];

/// The longest account name (GitHub's limit, so names carry over).
pub const MAX_ACCOUNT_NAME_LEN: usize = 39;

/// A user or organisation name: 2 to 39 lowercase letters, digits and single hyphens, not starting
/// or ending with a hyphen. Every valid name is a valid repository path component.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

crate::newtype::string_newtype!(AccountName);

fn is_slug(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    (2..=max).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
        && !s.contains("--")
}

impl FromStr for AccountName {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        if !is_slug(s, MAX_ACCOUNT_NAME_LEN) {
            return Err(invalid(
                "account name",
                s,
                "2 to 39 lowercase letters, digits and single hyphens, not starting or ending with a hyphen",
            ));
        }
        Ok(AccountName(s.to_owned()))
    }
}

impl AccountName {
    /// Whether the name is held back for the registry itself. Checked at sign-up, not at parse
    /// time: existing records and the registry's own accounts may use these names.
    pub fn is_reserved(&self) -> bool {
        let skeleton = self.skeleton();
        RESERVED.iter().any(|r| *r == self.0 || skeleton_of(r) == skeleton)
    }

    /// The name with look-alike characters folded together and hyphens dropped: two names with
    /// the same skeleton are confusable (`paypa1`, `paypal`, `pay-pal`, `rnicrosoft`, `microsoft`).
    pub fn skeleton(&self) -> String {
        skeleton_of(&self.0)
    }

    /// The namespace a user owns (`users/<name>`).
    pub fn user_namespace(&self) -> Namespace {
        namespace_of(&format!("users/{}", self.0))
    }

    /// The namespace an organisation owns (`orgs/<name>`).
    pub fn org_namespace(&self) -> Namespace {
        namespace_of(&format!("orgs/{}", self.0))
    }
}

fn namespace_of(text: &str) -> Namespace {
    // An account name is a valid path component, so `users/<name>` is a valid repository name.
    match text.parse::<RepoName>() {
        Ok(repo) => repo.namespace(),
        Err(e) => unreachable!("account namespaces are valid names: {e}"),
    }
}

fn skeleton_of(name: &str) -> String {
    let folded: String = name
        .chars()
        .filter(|c| *c != '-')
        .map(|c| match c {
            '0' => 'o',
            '1' | 'i' => 'l',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            '9' => 'g',
            other => other,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

/// A team name inside an organisation; the same shape as an account name, never reserved.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TeamName(String);

crate::newtype::string_newtype!(TeamName);

impl FromStr for TeamName {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        if !is_slug(s, MAX_ACCOUNT_NAME_LEN) {
            return Err(invalid("team name", s, "2 to 39 lowercase letters, digits and single hyphens"));
        }
        Ok(TeamName(s.to_owned()))
    }
}

/// An email address, checked for shape only (deliverability is what verification proves). The
/// domain is lowercased; the local part is kept as given.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

crate::newtype::string_newtype!(Email);

impl FromStr for Email {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| invalid("email", s, reason);
        if s.len() > 254 {
            return Err(bad("longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(bad("the part before '@' must be 1 to 64 characters"));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !domain.contains('.') || !domain.split('.').all(label_ok) {
            return Err(bad("the domain must be dot-separated letters, digits and hyphens"));
        }
        if !local.bytes().all(|b| b.is_ascii_graphic() && !b"\"(),:;<>[\\]".contains(&b)) {
            return Err(bad("the part before '@' has characters that need quoting"));
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
}

impl Email {
    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(local, _)| local)
    }
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $len:literal, $alphabet:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        crate::newtype::string_newtype!($name);

        impl FromStr for $name {
            type Err = CoreError;

            fn from_str(s: &str) -> Result<Self> {
                let alphabet: fn(u8) -> bool = $alphabet;
                if s.len() != $len || !s.bytes().all(alphabet) {
                    return Err(invalid($what, s, $rule));
                }
                Ok($name(s.to_owned()))
            }
        }
    };
}

token_id!(
    /// An API key's public id (the part of the key that is not secret): 16 characters of
    /// lowercase base32 (`a-z`, `2-7`).
    ApiKeyId,
    "API key id",
    16,
    |b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b),
    "16 characters of a-z and 2-7"
);

token_id!(
    /// A token-signing key's id (the JWT `kid`): 16 lowercase hex characters.
    KeyId,
    "key id",
    16,
    |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
    "16 lowercase hex characters"
);

token_id!(
    /// A login session's id: 32 lowercase hex characters. Refresh tokens carry it, and revoking
    /// the session revokes every token issued under it.
    SessionId,
    "session id",
    32,
    |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
    "32 lowercase hex characters"
);

/// A role on a namespace; each includes everything the ones before it allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Pull content, including private content.
    Read,
    /// Push content and move tags.
    Write,
    /// Delete content, manage members below owner and change settings.
    Admin,
    /// Everything, including managing owners and deleting the namespace.
    Owner,
}

impl FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(invalid("role", s, "one of read, write, admin, owner")),
        }
    }
}

/// A member's standing in an organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Belongs to the organisation; rights on its namespace come from the namespace's roles.
    Member,
    /// Manages the organisation: members, teams, and its namespace as `owner`.
    Owner,
}

/// Who can see a namespace's content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone, signed in or not, may pull.
    #[default]
    Public,
    /// Only principals with a role on the namespace know it exists.
    Private,
}

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for IpNetwork {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || invalid("network", s, "an IP address or CIDR network such as 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNetwork { addr, prefix })
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<IpNetwork> for String {
    fn from(n: IpNetwork) -> String {
        n.to_string()
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl IpNetwork {
    /// Whether `ip` is inside this network. An IPv4 address seen as IPv4-mapped IPv6
    /// (`::ffff:10.0.0.1`, as dual-stack listeners report it) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The per-namespace settings users can change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceSettings {
    /// Whether anyone signed in may publish new repositories into the namespace.
    pub allow_public_publish: bool,
    /// Whether pushes must carry a verifiable signature.
    pub require_signed_artifacts: bool,
    /// Whether pushed content is scanned for vulnerabilities automatically.
    pub auto_scan_vulnerabilities: bool,
    /// The SPDX license expression applied when an artifact names none.
    pub default_license: Option<String>,
    /// When not empty, requests to the namespace are only served from these networks.
    pub ip_allowlist: Vec<IpNetwork>,
}

/// Who a namespace role is granted to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grantee {
    /// One user.
    User {
        /// The user.
        name: AccountName,
    },
    /// Every member of a team of an organisation.
    Team {
        /// The organisation.
        org: AccountName,
        /// The team.
        team: TeamName,
    },
}

/// Visibility, roles and settings of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePolicy {
    /// Who may see its content.
    pub visibility: Visibility,
    /// Roles granted on it, beyond what ownership gives.
    pub grants: BTreeMap<String, (Grantee, Role)>,
    /// Its settings.
    pub settings: NamespaceSettings,
}

impl Grantee {
    /// The key a grant is stored under in [`NamespacePolicy::grants`] (JSON maps need text keys).
    pub fn key(&self) -> String {
        match self {
            Grantee::User { name } => format!("user:{name}"),
            Grantee::Team { org, team } => format!("team:{org}/{team}"),
        }
    }
}

/// An identity from an external OAuth/OIDC provider linked to a user.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's stable subject id for the user.
    pub subject: String,
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's name, also their namespace `users/<name>`.
    pub name: AccountName,
    /// Their email address.
    pub email: Email,
    /// Whether they proved they receive mail at `email`.
    pub email_verified: bool,
    /// Their password as an Argon2id PHC string; `None` for accounts that only sign in through an
    /// external provider.
    pub password: Option<String>,
    /// Whether they administer the registry itself.
    pub registry_admin: bool,
    /// Whether an administrator verified them as a publisher.
    pub verified_publisher: bool,
    /// Whether the account is disabled (no sign-in, no tokens honoured).
    pub disabled: bool,
    /// External identities that sign in as this user.
    pub external: BTreeSet<ExternalIdentity>,
    /// Tokens issued before this time (unix seconds) are no longer honoured: set on a password
    /// change or "sign out everywhere".
    pub tokens_valid_after: u64,
    /// When the account was created (unix seconds).
    pub created_at: u64,
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// Its name, also its namespace `orgs/<name>`.
    pub name: AccountName,
    /// Its members and their standing; there is always at least one owner.
    pub members: BTreeMap<AccountName, OrgRole>,
    /// Its teams and their members (each a member of the organisation).
    pub teams: BTreeMap<TeamName, BTreeSet<AccountName>>,
    /// Whether an administrator verified it as a publisher.
    pub verified_publisher: bool,
    /// When it was created (unix seconds).
    pub created_at: u64,
}

/// What an API key lets its bearer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPermission {
    /// Pull content.
    Pull,
    /// Push content and move tags.
    Push,
    /// Delete content.
    Delete,
    /// Manage namespaces' members and settings.
    Admin,
}

/// An API key as stored: its secret only as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Its public id.
    pub id: ApiKeyId,
    /// The user it acts as; it can never do more than they can.
    pub owner: AccountName,
    /// A label for people.
    pub label: String,
    /// Hex SHA-256 of the secret part.
    pub secret_sha256: String,
    /// What it may do.
    pub permissions: BTreeSet<KeyPermission>,
    /// Repository patterns it is limited to (`orgs/acme/*`); empty means every repository the
    /// owner can reach.
    pub repositories: Vec<String>,
    /// When it stops working (unix seconds); `None` never.
    pub expires_at: Option<u64>,
    /// When it was created (unix seconds).
    pub created_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// When it was last used (unix seconds; recorded within a minute or so of the use).
    #[serde(default)]
    pub last_used_at: Option<u64>,
}

/// A login session: what a refresh token stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Its id.
    pub id: SessionId,
    /// The user signed in.
    pub user: AccountName,
    /// When it began (unix seconds).
    pub created_at: u64,
    /// When its refresh token stops working (unix seconds).
    pub expires_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
}

/// A token-signing key as stored in the replicated state, so every node signs and verifies with
/// the same keys. The private half is in the state because every node must issue tokens; the
/// state is only readable by the nodes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// Its id (the JWT `kid`).
    pub kid: KeyId,
    /// Base64url of the Ed25519 PKCS#8 document.
    pub pkcs8: String,
    /// Base64url of the raw 32-byte public key.
    pub public: String,
    /// When it was created (unix seconds).
    pub created_at: u64,
    /// After this time (unix seconds) tokens signed with it are refused; set when a newer key
    /// takes over, to the moment the last token it signed expires.
    pub retire_after: Option<u64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retire_after", &self.retire_after)
            .finish_non_exhaustive()
    }
}

/// The token-signing keys: the one that signs, and every one whose tokens are still accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeys {
    /// The key new tokens are signed with.
    pub active: Option<KeyId>,
    /// Every key not yet removed, the active one included.
    pub keys: Vec<SigningKeyRecord>,
}

/// What an emailed one-time token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTokenPurpose {
    /// Proves the user receives mail at their address.
    VerifyEmail,
    /// Lets the user choose a new password.
    ResetPassword,
}

/// A one-time token sent by email, stored by its id with only a hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTokenRecord {
    /// Its public id (32 lowercase hex characters).
    pub id: SessionId,
    /// The user it was sent to.
    pub user: AccountName,
    /// What it is for.
    pub purpose: EmailTokenPurpose,
    /// Hex SHA-256 of its secret.
    pub secret_sha256: String,
    /// When it stops working (unix seconds).
    pub expires_at: u64,
    /// When it was used, if it was (a token works once).
    pub used_at: Option<u64>,
}

/// How a request ended, as the audit log records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Allowed and served with this HTTP status.
    Allowed,
    /// Refused by access control (401, 403, 404 for hidden content, 429).
    Denied,
    /// Allowed, but the operation itself failed.
    Failed,
}

/// One entry of a namespace's audit log: who did what, when, from where, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// When, in unix milliseconds (the clock of the node that served the request).
    pub at_ms: u64,
    /// The signed-in user; `None` for anonymous requests.
    pub actor: Option<AccountName>,
    /// The credential used (`password`, `session`, `token`, `api-key:<id>`, `anonymous`).
    pub credential: String,
    /// What was asked (`pull`, `push`, `delete`, or `<METHOD> <API path>`).
    pub action: String,
    /// What it was asked of (a repository, namespace or account).
    pub target: String,
    /// The client's address, when known.
    pub client: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The HTTP status answered.
    pub status: u16,
    /// The node that served it.
    pub node: u64,
}

/// A change to one user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum UserChange {
    /// Replaces the password hash and ends every session and token issued before `at`.
    SetPassword {
        /// The new Argon2id PHC string.
        hash: String,
        /// The time of the change (unix seconds).
        at: u64,
    },
    /// Marks the email address verified.
    VerifyEmail,
    /// Grants or takes away registry administration.
    SetRegistryAdmin {
        /// Whether the user administers the registry.
        admin: bool,
    },
    /// Grants or takes away the verified-publisher badge.
    SetVerifiedPublisher {
        /// Whether the user is verified.
        verified: bool,
    },
    /// Disables or re-enables the account; disabling ends every token at once.
    SetDisabled {
        /// Whether the account is disabled.
        disabled: bool,
        /// The time of the change (unix seconds).
        at: u64,
    },
    /// Links an external identity to the account.
    LinkExternal {
        /// The identity.
        identity: ExternalIdentity,
    },
    /// Ends every session and token issued before `at` ("sign out everywhere").
    RevokeTokens {
        /// The time of the change (unix seconds).
        at: u64,
    },
}

/// A write to identity and access state; applied by the `meta` group only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "identity", rename_all = "snake_case")]
pub enum IdentityCommand {
    /// Creates a user; refused when the name (or a confusable one) or the email is taken.
    CreateUser {
        /// The account.
        user: Box<UserRecord>,
    },
    /// Changes a user account.
    UpdateUser {
        /// The user.
        name: AccountName,
        /// The change.
        change: UserChange,
    },
    /// Creates an organisation with `owner` as its first owner; refused when the name (or a
    /// confusable one) is taken.
    CreateOrg {
        /// The organisation's name.
        name: AccountName,
        /// Its first owner.
        owner: AccountName,
        /// The time (unix seconds).
        at: u64,
    },
    /// Adds a member, changes their standing, or (`None`) removes them; the last owner cannot
    /// be removed or demoted.
    SetOrgMember {
        /// The organisation.
        org: AccountName,
        /// The user.
        user: AccountName,
        /// Their standing, or `None` to remove them (and from every team).
        role: Option<OrgRole>,
    },
    /// Creates or replaces a team (`Some`), or deletes it (`None`); members must belong to the
    /// organisation.
    SetTeam {
        /// The organisation.
        org: AccountName,
        /// The team.
        team: TeamName,
        /// Its members.
        members: Option<BTreeSet<AccountName>>,
    },
    /// Sets a namespace's visibility and settings.
    SetNamespacePolicy {
        /// The namespace.
        namespace: Namespace,
        /// Who may see it.
        visibility: Visibility,
        /// Its settings.
        settings: NamespaceSettings,
    },
    /// Grants a role on a namespace (`Some`) or takes it away (`None`).
    SetNamespaceGrant {
        /// The namespace.
        namespace: Namespace,
        /// Who.
        grantee: Grantee,
        /// The role.
        role: Option<Role>,
    },
    /// Stores a new API key.
    CreateApiKey {
        /// The key.
        key: Box<ApiKeyRecord>,
    },
    /// Revokes an API key.
    RevokeApiKey {
        /// The key.
        id: ApiKeyId,
        /// The time (unix seconds).
        at: u64,
    },
    /// Records when API keys were last used (a node's recent uses, in one write); unknown keys
    /// are skipped, and a time never moves back.
    TouchApiKeys {
        /// Each key with the time of its last use seen (unix seconds).
        used: Vec<(ApiKeyId, u64)>,
    },
    /// Records a new login session.
    CreateSession {
        /// The session.
        session: SessionRecord,
    },
    /// Revokes a login session and every token issued under it.
    RevokeSession {
        /// The session.
        id: SessionId,
        /// The time (unix seconds).
        at: u64,
    },
    /// Stores an emailed one-time token.
    CreateEmailToken {
        /// The token.
        token: Box<EmailTokenRecord>,
    },
    /// Uses an emailed token: verifies the user's email, or (with `password`, a new Argon2id
    /// PHC string) replaces their password and ends their sessions. Refused when the token is
    /// unknown, used, expired at `at`, or for another purpose.
    RedeemEmailToken {
        /// The token.
        id: SessionId,
        /// What the caller means to use it for.
        purpose: EmailTokenPurpose,
        /// The new password hash, for a reset.
        password: Option<String>,
        /// The time of use (unix seconds).
        at: u64,
    },
    /// Appends entries to namespaces' audit logs (a node's buffered entries, in one write).
    AppendAudit {
        /// Each entry with the namespace whose log it belongs to.
        entries: Vec<(Namespace, AuditEvent)>,
    },
    /// Grants or takes away an organisation's verified-publisher badge.
    SetOrgVerified {
        /// The organisation.
        org: AccountName,
        /// Whether it is verified.
        verified: bool,
    },
    /// Adds a signing key and makes it the active one; the previously active key stays
    /// accepted until `retire_previous_after`.
    RotateSigningKey {
        /// The new key.
        key: Box<SigningKeyRecord>,
        /// Until when (unix seconds) tokens signed by the previous key are still accepted.
        retire_previous_after: u64,
        /// Keys retired before this time (unix seconds) are dropped.
        now: u64,
    },
}

/// Why the state machine refused an identity write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "identity_reason", rename_all = "snake_case")]
pub enum IdentityRejection {
    /// The name, or one confusable with it, belongs to another account.
    NameTaken {
        /// The account holding it.
        holder: AccountName,
    },
    /// The email address belongs to another account.
    EmailTaken,
    /// No such user.
    UserUnknown {
        /// The name asked for.
        name: AccountName,
    },
    /// No such organisation.
    OrgUnknown {
        /// The name asked for.
        name: AccountName,
    },
    /// The user is not a member of the organisation.
    NotAMember {
        /// The user.
        user: AccountName,
    },
    /// The change would leave the organisation without an owner.
    LastOwner,
    /// No such team.
    TeamUnknown,
    /// No such API key.
    ApiKeyUnknown,
    /// The id is already used (a random id collided, or the command was replayed).
    IdTaken,
    /// No such session.
    SessionUnknown,
    /// The namespace belongs to no account, or the grant names an account that does not exist.
    NamespaceUnknown,
    /// The emailed token is unknown, used, expired or for something else.
    TokenUnusable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_slug_rules() {
        for ok in ["ab", "krishna", "gati-official", "a1", "x".repeat(39).as_str()] {
            assert!(ok.parse::<AccountName>().is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "ab-", "a--b", "Ab", "a_b", "a.b", "a/b", "", "é", &"x".repeat(40), "..", "a b"] {
            assert!(bad.parse::<AccountName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reserved_and_confusable_names_are_recognised() {
        let name = |s: &str| s.parse::<AccountName>().unwrap();
        assert!(name("admin").is_reserved());
        assert!(name("adm1n").is_reserved(), "a look-alike of a reserved name is reserved");
        assert!(name("g4ti").is_reserved());
        assert!(!name("krishna").is_reserved());
        assert_eq!(name("paypa1").skeleton(), name("paypal").skeleton());
        assert_eq!(name("pay-pal").skeleton(), name("paypal").skeleton());
        assert_eq!(name("rnicrosoft").skeleton(), name("microsoft").skeleton());
        assert_ne!(name("alice").skeleton(), name("bob").skeleton());
        assert_eq!(name("krishna").user_namespace().as_str(), "users/krishna");
        assert_eq!(name("acme").org_namespace().as_str(), "orgs/acme");
    }

    #[test]
    fn emails_are_checked_for_shape() {
        let e: Email = "Dev.Ops+x@Example.COM".parse().unwrap();
        assert_eq!(e.as_str(), "Dev.Ops+x@example.com");
        assert_eq!(e.local_part(), "Dev.Ops+x");
        for bad in ["", "a", "a@", "@b.c", "a@b", "a@-b.c", "a b@c.d", "a@b..c", "a@@b.c", "a\n@b.c", "<a>@b.c"] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_ids_are_strict() {
        assert!("abcdefgh23456777".parse::<ApiKeyId>().is_ok());
        assert!("abcdefgh23456789".parse::<ApiKeyId>().is_err(), "8 and 9 are not base32");
        assert!("0123456789abcdef".parse::<KeyId>().is_ok());
        assert!("0123456789ABCDEF".parse::<KeyId>().is_err());
        assert!("0123456789abcdef0123456789abcdef".parse::<SessionId>().is_ok());
        assert!("0123".parse::<SessionId>().is_err());
    }

    #[test]
    fn networks_match_addresses() {
        let net: IpNetwork = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped addresses match");
        let one: IpNetwork = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: IpNetwork = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "::/129", "x", "10.0.0.0/+8", "10.0.0.0/0008"] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin && Role::Admin < Role::Owner);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
