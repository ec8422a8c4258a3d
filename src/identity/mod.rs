//! The identity facade: accounts, sign-in, tokens, API keys, and the access decision every API
//! surface asks before it serves a request.
//!
//! Reads come from this node's replica of the `meta` group (identity records) and of the shards
//! (whether a repository exists); writes are [`IdentityCommand`]s proposed to the `meta` group
//! from any node. The rules themselves are `gati-auth`'s; this module gathers the records they
//! read, and does the non-deterministic parts (password hashing, random ids, the clock) before a
//! command is proposed. Must not know about HTTP.
//!
//! [`IdentityCommand`]: gati_core::identity::IdentityCommand

mod access;
mod accounts;
mod api_keys;
mod audit;
pub mod error;
mod mail;
mod oidc;
mod tokens;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gati_core::identity::{AccountName, IdentityCommand};
use gati_core::{Applied, Rejection};

pub use access::{Credential, Target};
pub use accounts::{NewUser, OrgView, UserView};
pub use api_keys::{ApiKeyView, NewApiKeyRequest};
pub use audit::AuditEntry;
pub use error::{IdentityError, Result};
pub use gati_auth::policy::{Action, Decision, Principal};
pub use mail::Mailer;
pub use tokens::TokenPair;

use crate::cluster::Cluster;
use crate::config::AuthConfig;
use crate::limits::LoginGuard;

/// How long an identity write waits for every node to apply it.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Handle to identity and access; cheap to clone.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    config: AuthConfig,
    /// Registry administrators named in the configuration.
    admins: BTreeSet<AccountName>,
    /// The key ring built from the replicated signing keys, rebuilt when they change.
    keyring: Mutex<Option<tokens::CachedKeyring>>,
    /// Locks account names out of password sign-in after repeated failures, when limits are on.
    login_guard: Option<LoginGuard>,
    /// The node's audit queue, when identity is on.
    audit: Option<audit::AuditQueue>,
    /// Where verification and reset mail goes, when identity is on.
    mailer: Option<Mailer>,
    /// External sign-in providers, by name.
    oidc: std::collections::BTreeMap<String, Arc<gati_oidc::Provider>>,
    /// The registry's public base URL, for links and sign-in callbacks.
    public_url: String,
    /// API key uses not yet recorded.
    key_uses: Mutex<api_keys::KeyUses>,
    /// Access tokens already verified, by a digest of their text.
    verified: Mutex<std::collections::HashMap<[u8; 32], tokens::VerifiedToken>>,
}

/// The current time in unix seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Identity {
    /// Builds the facade. Names in `config.admins` were validated with the configuration;
    /// `login_guard` locks names out after failed sign-ins (none: never); `mailer` sends
    /// verification and reset links (none: no mail). With identity on, it
    /// starts the node's audit queue, so it must be called inside the runtime. Fails when an
    /// external sign-in provider's settings are unusable.
    pub fn new(
        cluster: Cluster,
        config: AuthConfig,
        login_guard: Option<LoginGuard>,
        mailer: Option<Mailer>,
    ) -> std::result::Result<Self, String> {
        let admins = config.admins.iter().filter_map(|a| a.parse().ok()).collect();
        let oidc = if config.enabled { oidc::providers(&config.oidc)? } else { Default::default() };
        let audit = config.enabled.then(|| audit::AuditQueue::start(cluster.clone()));
        let public_url = mailer.as_ref().map(|m| m.public_url.trim_end_matches('/').to_owned()).unwrap_or_default();
        let mailer = mailer.filter(|_| config.enabled);
        let keyring = Mutex::new(None);
        let key_uses = Mutex::new(api_keys::KeyUses::default());
        let verified = Mutex::new(std::collections::HashMap::new());
        let inner = Inner {
            cluster,
            config,
            admins,
            keyring,
            login_guard,
            audit,
            mailer,
            oidc,
            public_url,
            key_uses,
            verified,
        };
        Ok(Identity { inner: Arc::new(inner) })
    }

    /// Whether requests are authenticated and authorised at all.
    pub fn enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The service name used in token challenges.
    pub fn service(&self) -> &str {
        &self.inner.config.service
    }

    /// The token endpoint clients are sent to: the configured realm, or `<public_url>/token`
    /// when a public URL is configured; `None` derives it from the request.
    pub fn realm(&self) -> Option<String> {
        match (&self.inner.config.realm, &self.inner.config.public_url) {
            (Some(realm), _) => Some(realm.clone()),
            (None, Some(public)) => Some(format!("{}/token", public.trim_end_matches('/'))),
            (None, None) => None,
        }
    }

    /// Where a provider sends the browser back after an external sign-in.
    pub fn oidc_callback_url(&self, provider: &str) -> String {
        format!("{}/api/v1/auth/oidc/{provider}/callback", self.inner.public_url)
    }

    /// Whether sign-in cookies need the `Secure` attribute (the registry is served over https).
    pub fn public_url_is_https(&self) -> bool {
        self.inner.public_url.starts_with("https://")
    }

    fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// Proposes an identity write, turns a refusal into an error, and returns once every
    /// reachable node has applied it: a revoked key, session or grant stops working on all of
    /// them before the caller hears it is done.
    async fn write(&self, command: IdentityCommand) -> Result<()> {
        match self.cluster().propose_meta(command).await? {
            Applied::IdentityChanged => {
                let unconfirmed = self.cluster().settle_meta(SETTLE_TIMEOUT).await?;
                if !unconfirmed.is_empty() {
                    tracing::warn!(?unconfirmed, "an identity change is not yet applied on every node");
                }
                Ok(())
            }
            Applied::Rejected(Rejection::Identity(rejection)) => Err(IdentityError::refused(rejection)),
            other => {
                tracing::error!(?other, "unexpected outcome of an identity write");
                Err(IdentityError::Internal)
            }
        }
    }

    /// Makes the local `meta` replica current, for reads that must see every acknowledged write
    /// (sign-in right after sign-up on another node, a revocation).
    async fn fresh(&self) -> Result<&gati_meta::StateMachine> {
        self.cluster().linearizable_meta().await?;
        Ok(self.cluster().meta_state())
    }

    /// The local `meta` replica as applied, for the hot path (every request's credential check).
    fn state(&self) -> &gati_meta::StateMachine {
        self.cluster().meta_state()
    }
}
