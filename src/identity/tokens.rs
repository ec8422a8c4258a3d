//! Token issuing and checking: the key ring built from the replicated signing keys, its
//! rotation, login sessions with refresh tokens, and registry (OCI bearer) tokens.
//!
//! Two audiences keep the two kinds of access token apart: registry tokens (`aud` = the
//! service) carry the Docker `access` claim and allow exactly those actions; session tokens
//! (`aud` = `<service>/api`) act with the user's full rights and are what the REST API and the
//! CLI use. Refresh tokens belong to a login session recorded in the `meta` group, so revoking
//! the session ends them on every node.

use std::sync::Arc;

use sha2::Digest as _;

use gati_auth::token::{Claims, ResourceAccess, TokenKind};
use gati_auth::{Keyring, SigningKey};
use gati_core::identity::{IdentityCommand, SessionId, SessionRecord, SigningKeys, UserRecord};
use tracing::{info, warn};

use super::error::{IdentityError, Result};
use super::mail::random_hex;
use super::{Identity, now};

/// How long (seconds) a verified token is remembered at most.
const VERIFIED_FOR: u64 = 60;
/// How many verified tokens a node remembers.
const VERIFIED_KEPT: usize = 50_000;

/// A token whose signature and claims were checked.
pub(crate) struct VerifiedToken {
    claims: Claims,
    /// Whether it is a registry token (scoped to its `access` claim).
    scoped: bool,
    /// The generation of the key ring it was checked against.
    generation: u64,
    /// Until when (unix seconds) it may be taken as checked.
    until: u64,
}

/// The key ring and the replicated keys it was built from.
pub(crate) struct CachedKeyring {
    source: SigningKeys,
    ring: Arc<Keyring>,
    /// Counts rebuilds, so what was checked against an earlier ring is never taken as current.
    generation: u64,
}

/// A session's tokens, as a sign-in or a refresh returns them.
#[derive(Clone, Debug)]
pub struct TokenPair {
    /// The access token (`aud` = `<service>/api`).
    pub access_token: String,
    /// The refresh token of the session.
    pub refresh_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// The session's id.
    pub session: SessionId,
}

fn auth_error(e: gati_auth::AuthError) -> IdentityError {
    match e.code() {
        gati_core::ErrorCode::Internal => IdentityError::internal(&e, "token keys"),
        _ => IdentityError::Unauthenticated(e.to_string()),
    }
}

impl Identity {
    /// The audience of session access tokens.
    pub(crate) fn api_audience(&self) -> String {
        format!("{}/api", self.inner.config.service)
    }

    /// The key ring of the replicated signing keys; unavailable until the first key exists.
    pub(crate) fn keyring(&self) -> Result<Arc<Keyring>> {
        Ok(self.keyring_generation()?.0)
    }

    /// The key ring and its generation (which changes whenever the ring is rebuilt).
    fn keyring_generation(&self) -> Result<(Arc<Keyring>, u64)> {
        let keys = self.state().signing_keys()?;
        let mut cached = self.inner.keyring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = cached.as_ref().filter(|c| c.source == keys) {
            return Ok((cached.ring.clone(), cached.generation));
        }
        let generation = cached.as_ref().map_or(0, |c| c.generation + 1);
        let active =
            keys.active.as_ref().ok_or_else(|| IdentityError::Unavailable("no token-signing key yet".into()))?;
        let mut ring = None;
        let mut verifying = Vec::new();
        for record in &keys.keys {
            let key = SigningKey::from_record(record).map_err(|e| IdentityError::internal(&e, "stored signing key"))?;
            if &record.kid == active {
                ring = Some(key);
            } else {
                verifying.push(key.verifying_key(record.retire_after));
            }
        }
        let active = ring.ok_or_else(|| IdentityError::Unavailable("the active signing key is missing".into()))?;
        let ring = Arc::new(Keyring { active, verifying });
        *cached = Some(CachedKeyring { source: keys, ring: ring.clone(), generation });
        Ok((ring, generation))
    }

    /// Whether tokens can be issued and checked: identity is off, or a signing key exists.
    pub fn ready(&self) -> bool {
        !self.enabled() || self.keyring().is_ok()
    }

    /// The public keys tokens are verified with, as a JSON Web Key Set.
    pub fn jwks(&self) -> Result<serde_json::Value> {
        // Keys past their retirement verify nothing, so they are not published either.
        let mut ring = self.keyring()?.as_ref().clone();
        ring.prune_retired(now());
        Ok(ring.jwks())
    }

    /// Creates the first signing key, or replaces one older than the rotation period. Only the
    /// `meta` leader does this, so nodes do not rotate over each other.
    pub async fn maintain_signing_keys(&self) -> Result<()> {
        if !self.cluster().meta().is_leader() {
            return Ok(());
        }
        let keys = self.state().signing_keys()?;
        let now = now();
        let rotation = self.inner.config.key_rotation_days.saturating_mul(24 * 3600);
        let current = keys.active.as_ref().and_then(|kid| keys.keys.iter().find(|k| &k.kid == kid));
        if current.is_some_and(|k| k.created_at.saturating_add(rotation) > now) {
            return Ok(());
        }
        let key = SigningKey::generate().map_err(|e| IdentityError::internal(&e, "signing key generation"))?;
        // The previous key verifies until every token it signed has expired.
        let longest = self.inner.config.refresh_token_secs.max(self.inner.config.access_token_secs);
        let command = IdentityCommand::RotateSigningKey {
            key: Box::new(key.to_record(now)),
            retire_previous_after: now.saturating_add(longest),
            now,
        };
        self.write(command).await?;
        info!(kid = %key.kid(), "token-signing key rotated in");
        Ok(())
    }

    /// Registry administration: replaces the signing key now, for instance after a leak. Tokens
    /// signed by the previous key stay valid for `retire_previous_in` more seconds (0 ends them
    /// at once, signing everyone out).
    pub async fn rotate_signing_key(
        &self,
        principal: &gati_auth::policy::Principal,
        retire_previous_in: u64,
    ) -> Result<gati_core::identity::KeyId> {
        if !principal.is_registry_admin() {
            return Err(IdentityError::Forbidden("only registry administrators may do this".into()));
        }
        let now = now();
        let key = SigningKey::generate().map_err(|e| IdentityError::internal(&e, "signing key generation"))?;
        let kid = key.kid().clone();
        let command = IdentityCommand::RotateSigningKey {
            key: Box::new(key.to_record(now)),
            retire_previous_after: now.saturating_add(retire_previous_in),
            now,
        };
        self.write(command).await?;
        info!(%kid, retire_previous_in, "token-signing key rotated by an administrator");
        Ok(kid)
    }

    /// Keeps the signing keys current for as long as the node runs.
    pub async fn run_key_maintenance(self) {
        loop {
            if let Err(e) = self.maintain_signing_keys().await {
                warn!(error = %e, "signing key maintenance failed; retrying");
            }
            let pause = if self.keyring().is_ok() { 60 } else { 1 };
            tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
        }
    }

    fn claims(&self, user: &str, audience: String, kind: TokenKind, ttl: u64) -> Result<Claims> {
        let now = now();
        Ok(Claims {
            iss: self.inner.config.issuer.clone(),
            sub: user.to_owned(),
            aud: audience,
            exp: now.saturating_add(ttl),
            nbf: now,
            iat: now,
            jti: random_hex(16),
            sid: None,
            kind,
            access: Vec::new(),
            key: None,
        })
    }

    /// The principal a valid refresh token speaks for, with the user's full rights.
    pub async fn principal_of_refresh_token(&self, token: &str) -> Result<gati_auth::policy::Principal> {
        let (user, _) = self.check_refresh_token(token).await?;
        Ok(gati_auth::policy::Principal::User { user: Box::new(user), limits: gati_auth::policy::Limits::None })
    }

    /// Starts a login session for `user`, already authenticated: records it, then issues its
    /// access and refresh tokens.
    pub async fn start_session(&self, user: &UserRecord) -> Result<TokenPair> {
        let now = now();
        let session = SessionRecord {
            id: random_hex(16).parse()?,
            user: user.name.clone(),
            created_at: now,
            expires_at: now.saturating_add(self.inner.config.refresh_token_secs),
            revoked_at: None,
        };
        let id = session.id.clone();
        self.write(IdentityCommand::CreateSession { session }).await?;
        self.session_tokens(user, &id)
    }

    fn session_tokens(&self, user: &UserRecord, session: &SessionId) -> Result<TokenPair> {
        let ring = self.keyring()?;
        let config = &self.inner.config;
        let mut access =
            self.claims(user.name.as_str(), self.api_audience(), TokenKind::Access, config.access_token_secs)?;
        access.sid = Some(session.clone());
        let mut refresh =
            self.claims(user.name.as_str(), self.api_audience(), TokenKind::Refresh, config.refresh_token_secs)?;
        refresh.sid = Some(session.clone());
        Ok(TokenPair {
            access_token: ring.issue(&access).map_err(auth_error)?,
            refresh_token: ring.issue(&refresh).map_err(auth_error)?,
            expires_in: config.access_token_secs,
            session: session.clone(),
        })
    }

    /// Checks a refresh token against the current state (session live, account enabled, not
    /// signed out everywhere since) and returns its user and session.
    pub(crate) async fn check_refresh_token(&self, token: &str) -> Result<(UserRecord, SessionId)> {
        let ring = self.keyring()?;
        let claims = ring
            .verify_kind(token, now(), &self.api_audience(), &self.inner.config.issuer, TokenKind::Refresh)
            .map_err(auth_error)?;
        let state = self.fresh().await?;
        let session =
            claims.sid.clone().ok_or_else(|| IdentityError::Unauthenticated("refresh token has no session".into()))?;
        let record = state.session(&session)?.ok_or_else(|| IdentityError::Unauthenticated("session ended".into()))?;
        if record.revoked_at.is_some() || record.expires_at <= now() || record.user.as_str() != claims.sub {
            return Err(IdentityError::Unauthenticated("session ended".into()));
        }
        let user = self.usable_user(state, &record.user, claims.iat)?;
        Ok((user, session))
    }

    /// Issues new session tokens for a valid refresh token (the refresh token is reissued too, so
    /// an active client never hits the session's original expiry early).
    pub async fn refresh(&self, token: &str) -> Result<TokenPair> {
        let (user, session) = self.check_refresh_token(token).await?;
        self.session_tokens(&user, &session)
    }

    /// Signs out the session a refresh token belongs to: its refresh and access tokens stop
    /// working on every node.
    pub async fn sign_out(&self, refresh_token: &str) -> Result<()> {
        let (_, session) = self.check_refresh_token(refresh_token).await?;
        self.write(IdentityCommand::RevokeSession { id: session, at: now() }).await
    }

    /// Issues a registry token for `user` (`None` for anonymous) with exactly `access`.
    /// A token issued for an API key names it (`key`), so revoking the key ends the token too.
    pub fn registry_token(
        &self,
        user: Option<&UserRecord>,
        access: Vec<ResourceAccess>,
        key: Option<gati_core::identity::ApiKeyId>,
    ) -> Result<String> {
        let ring = self.keyring()?;
        let subject = user.map_or("", |u| u.name.as_str());
        let mut claims = self.claims(
            subject,
            self.inner.config.service.clone(),
            TokenKind::Access,
            self.inner.config.access_token_secs,
        )?;
        claims.access = access;
        claims.key = key;
        ring.issue(&claims).map_err(auth_error)
    }

    /// Seconds registry and session access tokens are valid.
    pub fn access_token_secs(&self) -> u64 {
        self.inner.config.access_token_secs
    }

    /// Verifies an access token of either audience and returns its claims and whether it is a
    /// registry token (scoped to its `access` claim).
    ///
    /// A client repeats one token for many requests, so a verified token is remembered (by a
    /// digest of its text) until it expires, for at most [`VERIFIED_FOR`], and only while the key
    /// ring it was checked against is current: a rotation forgets every entry at once. The
    /// revocation checks that follow (account, session, API key) run on every request.
    pub(crate) fn verify_access_token(&self, token: &str) -> Result<(Claims, bool)> {
        let (ring, generation) = self.keyring_generation()?;
        let now = now();
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        {
            let verified = self.inner.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(hit) = verified.get(&digest)
                && hit.generation == generation
                && now < hit.until
            {
                return Ok((hit.claims.clone(), hit.scoped));
            }
        }
        let issuer = &self.inner.config.issuer;
        let (claims, scoped) = match ring.verify_kind(token, now, &self.inner.config.service, issuer, TokenKind::Access)
        {
            Ok(claims) => (claims, true),
            Err(gati_auth::AuthError::TokenInvalid { reason: "wrong audience" }) => {
                let claims = ring
                    .verify_kind(token, now, &self.api_audience(), issuer, TokenKind::Access)
                    .map_err(auth_error)?;
                (claims, false)
            }
            Err(e) => return Err(auth_error(e)),
        };
        let until = claims.exp.saturating_add(gati_auth::token::CLOCK_LEEWAY_SECS).min(now + VERIFIED_FOR);
        let mut verified = self.inner.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_KEPT {
            verified.retain(|_, hit| hit.generation == generation && now < hit.until);
            if verified.len() >= VERIFIED_KEPT {
                verified.clear();
            }
        }
        verified.insert(digest, VerifiedToken { claims: claims.clone(), scoped, generation, until });
        Ok((claims, scoped))
    }
}
