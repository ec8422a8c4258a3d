//! Emailed one-time links: email verification and password reset.
//!
//! A link carries `<id>.<secret>`; the `meta` group stores the id with a hash of the secret, and
//! redeeming it is one replicated write that checks it is unused, unexpired and for that
//! purpose. Mail is written as RFC 5322 messages into the outbox directory, one file per
//! message, for the mail relay of the deployment to pick up (or a person, on a laptop).
//! Asking for a password reset never tells whether an account has that address.

use std::path::PathBuf;

use gati_core::identity::{AccountName, Email, EmailTokenPurpose, EmailTokenRecord, IdentityCommand, SessionId};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use super::error::{IdentityError, Result};
use super::{Identity, now};

/// How long a verification link works.
const VERIFY_SECS: u64 = 7 * 24 * 3600;
/// How long a password-reset link works.
const RESET_SECS: u64 = 3600;

/// Where mail goes, and the address links point at.
#[derive(Clone, Debug)]
pub struct Mailer {
    /// The outbox directory.
    pub outbox: PathBuf,
    /// The sender address.
    pub from: String,
    /// The registry's public base URL, for links.
    pub public_url: String,
}

/// `bytes` random bytes as lowercase hex, from the thread's cryptographically secure generator.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
pub(super) fn same(a: &str, b: &str) -> bool {
    gati_auth::constant_time_eq(a.as_bytes(), b.as_bytes())
}

impl Mailer {
    /// Writes one message into the outbox.
    fn send(&self, to: &Email, subject: &str, body: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.outbox)?;
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let file = self.outbox.join(format!("{}-{}.eml", at.as_micros(), random_hex(4)));
        let message = format!(
            "From: {}\r\nTo: {to}\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            self.from
        );
        // Written aside and renamed, so a relay never picks up half a message.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, message)?;
        std::fs::rename(&partial, &file)?;
        Ok(file)
    }
}

impl Identity {
    /// Creates a one-time token for `user` and mails its link.
    async fn mail_token(&self, user: &AccountName, email: &Email, purpose: EmailTokenPurpose) -> Result<()> {
        let Some(mailer) = &self.inner.mailer else { return Ok(()) };
        let id: SessionId = random_hex(16).parse()?;
        let secret = random_hex(32);
        let lifetime = match purpose {
            EmailTokenPurpose::VerifyEmail => VERIFY_SECS,
            EmailTokenPurpose::ResetPassword => RESET_SECS,
        };
        let token = EmailTokenRecord {
            id: id.clone(),
            user: user.clone(),
            purpose,
            secret_sha256: sha256_hex(&secret),
            expires_at: now().saturating_add(lifetime),
            used_at: None,
        };
        self.write(IdentityCommand::CreateEmailToken { token: Box::new(token) }).await?;
        let text = format!("{id}.{secret}");
        let (subject, body) = match purpose {
            EmailTokenPurpose::VerifyEmail => (
                "Verify your email address",
                format!(
                    "Confirm that {email} belongs to {user}:\r\n\r\n  {}/ui/verify-email#token={text}\r\n\r\n\
                     or send the token to POST /api/v1/auth/verify-email:\r\n\r\n  {text}\r\n\r\n\
                     The link works once, for 7 days.",
                    mailer.public_url
                ),
            ),
            EmailTokenPurpose::ResetPassword => (
                "Reset your password",
                format!(
                    "Someone asked to reset the password of {user}. If it was you:\r\n\r\n  \
                     {}/ui/reset-password#token={text}\r\n\r\nor send the token with a new password to \
                     POST /api/v1/auth/password-reset/confirm:\r\n\r\n  {text}\r\n\r\n\
                     The link works once, for an hour. If it was not you, ignore this message.",
                    mailer.public_url
                ),
            ),
        };
        match mailer.send(email, subject, &body) {
            Ok(file) => info!(%user, ?purpose, file = %file.display(), "mail written to the outbox"),
            Err(e) => {
                warn!(%user, error = %e, "mail could not be written to the outbox");
                return Err(IdentityError::Unavailable("mail cannot be sent now".into()));
            }
        }
        Ok(())
    }

    /// Mails a verification link to a new account (failures are logged; the user can ask again).
    pub(crate) async fn send_verification(&self, user: &AccountName, email: &Email) {
        if let Err(e) = self.mail_token(user, email, EmailTokenPurpose::VerifyEmail).await {
            warn!(%user, error = %e, "verification mail not sent");
        }
    }

    /// Mails a new verification link to the signed-in user.
    pub async fn resend_verification(&self, principal: &super::Principal) -> Result<()> {
        super::api_keys::owner_with_full_rights(principal)?;
        let super::Principal::User { user, .. } = principal else {
            return Err(IdentityError::Unauthenticated("sign in first".into()));
        };
        if user.email_verified {
            return Err(IdentityError::Conflict("the email address is already verified".into()));
        }
        self.mail_token(&user.name, &user.email, EmailTokenPurpose::VerifyEmail).await
    }

    /// Checks an emailed token's secret and returns its id, for redeeming.
    async fn check_email_token(&self, text: &str, purpose: EmailTokenPurpose) -> Result<SessionId> {
        let unusable = || IdentityError::Invalid("the link is invalid, expired or already used".into());
        let (id, secret) = text.trim().split_once('.').ok_or_else(unusable)?;
        let id: SessionId = id.parse().map_err(|_| unusable())?;
        let state = self.fresh().await?;
        let record = state.email_token(&id)?.ok_or_else(unusable)?;
        if !same(&sha256_hex(secret), &record.secret_sha256) || record.purpose != purpose {
            return Err(unusable());
        }
        Ok(id)
    }

    /// Verifies an email address with the token from its link.
    pub async fn verify_email(&self, token: &str) -> Result<()> {
        let id = self.check_email_token(token, EmailTokenPurpose::VerifyEmail).await?;
        let purpose = EmailTokenPurpose::VerifyEmail;
        self.write(IdentityCommand::RedeemEmailToken { id, purpose, password: None, at: now() }).await
    }

    /// Mails a password-reset link if an account has `email`; answers the same, at once, either
    /// way: the lookup and the mail happen after the answer, so neither its content nor its
    /// timing tells whether the address has an account.
    pub async fn request_password_reset(&self, email: &str) -> Result<()> {
        let Ok(email) = email.parse::<Email>() else { return Ok(()) };
        let identity = self.clone();
        tokio::spawn(async move {
            let outcome = async {
                let state = identity.fresh().await?;
                if let Some(user) = state.user_by_email(&email)?
                    && !user.disabled
                {
                    identity.mail_token(&user.name, &user.email, EmailTokenPurpose::ResetPassword).await?;
                }
                Ok::<(), IdentityError>(())
            };
            if let Err(e) = outcome.await {
                warn!(error = %e, "password reset mail not sent");
            }
        });
        Ok(())
    }

    /// Sets a new password with the token from a reset link; every earlier session ends.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<()> {
        let id = self.check_email_token(token, EmailTokenPurpose::ResetPassword).await?;
        let state = self.fresh().await?;
        let record = state.email_token(&id)?.ok_or(IdentityError::Internal)?;
        let user = state.user(&record.user)?.ok_or(IdentityError::NotFound("user"))?;
        gati_auth::check_password_policy(password, &[user.name.as_str(), user.email.local_part()])
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let hash = super::accounts::hash_off_thread(password.to_owned()).await?;
        let command = IdentityCommand::RedeemEmailToken {
            id,
            purpose: EmailTokenPurpose::ResetPassword,
            password: Some(hash),
            at: now(),
        };
        self.write(command).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
