//! Password hashing, verification and the password policy.
//!
//! Owns the Argon2id parameters and the PHC-string form in which password hashes are replicated.
//! Calls only `argon2` and the operating system's random source (through `aws-lc-rs`); it knows
//! nothing of users or storage. Hashing is deliberately slow (tens of milliseconds): callers on an
//! async runtime run it on a blocking thread.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};

/// Argon2id memory cost in KiB, time cost and parallelism: OWASP's first recommended configuration
/// (<https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id>).
const ARGON2_M_COST_KIB: u32 = 19_456;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;
const ARGON2_OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// Evaluated at compile time, so invalid parameters fail the build rather than a login.
const ARGON2_PARAMS: Params =
    match Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, Some(ARGON2_OUTPUT_LEN)) {
        Ok(params) => params,
        Err(_) => panic!("the Argon2 parameters are out of range"),
    };

/// The shortest password the policy accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest password the policy accepts, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Context words (user name, email local part) shorter than this are not searched for.
const MIN_CONTEXT_WORD_CHARS: usize = 3;

/// Frequently used passwords that the length rule alone would let through, one per line, lowercase.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// A password hash as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the form in
/// which it is stored and replicated. Its `Debug` form hides the string, so it never reaches logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Takes a hash back from storage (the `password` of a user record). It is not checked: a
    /// malformed value simply verifies no password.
    pub fn from_stored(phc: String) -> PasswordHash {
        PasswordHash(phc)
    }

    /// Returns the PHC string, for storage.
    pub fn as_phc_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, ARGON2_PARAMS)
}

/// Hashes a password with Argon2id under a fresh random salt.
///
/// This does not apply the password policy: call [`check_password_policy`] first for new passwords.
pub fn hash_password(password: &str) -> Result<PasswordHash> {
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| AuthError::Crypto("random source failed".into()))?;
    let phc = argon2()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|error| AuthError::Crypto(format!("argon2 hashing failed: {error}")))?;
    Ok(PasswordHash(phc.to_string()))
}

/// Returns whether `password` matches `hash`. A malformed stored hash never matches, and still
/// costs one hash computation so that its verification takes as long as any other.
pub fn verify_password(password: &str, hash: &PasswordHash) -> bool {
    match argon2::PasswordHash::new(&hash.0) {
        // The parameters come from the stored hash, so hashes made under older parameters verify.
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => {
            verify_against_nothing(password);
            false
        }
    }
}

/// Spends the work of one [`verify_password`] without any hash to compare with.
///
/// Call it when the user does not exist, so that the time a failed login takes does not tell
/// whether the account exists.
pub fn verify_against_nothing(password: &str) {
    // A fixed salt is fine: the output is thrown away, only the cost matters.
    const DUMMY_SALT: [u8; SALT_LEN] = *b"gati-no-account!";
    let mut output = [0u8; ARGON2_OUTPUT_LEN];
    // Ignoring the result is deliberate: there is nothing to report and nothing to compare.
    let _ = argon2().hash_password_into(password.as_bytes(), &DUMMY_SALT, &mut output);
    std::hint::black_box(&output);
}

/// Checks a new password against the policy: 10 to 256 characters, not only whitespace, not
/// containing any context word of three characters or more (user name, email local part;
/// compared case-insensitively), and not one of the most common passwords.
pub fn check_password_policy(password: &str, context: &[&str]) -> Result<()> {
    let weak = |reason| Err(AuthError::WeakPassword { reason });
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return weak("shorter than 10 characters");
    }
    if chars > MAX_PASSWORD_CHARS {
        return weak("longer than 256 characters");
    }
    if password.chars().all(char::is_whitespace) {
        return weak("only whitespace");
    }
    let lowered = password.to_lowercase();
    for word in context {
        let word = word.trim().to_lowercase();
        if word.chars().count() >= MIN_CONTEXT_WORD_CHARS && lowered.contains(&word) {
            return weak("contains the user name or email");
        }
    }
    if COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        return weak("one of the most common passwords");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_the_right_password_only_and_uses_owasp_parameters() {
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(hash.as_phc_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_phc_str());
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("correct horse battery stapler", &hash));

        let again = hash_password("correct horse battery staple").unwrap();
        assert_ne!(hash, again, "each hash must get its own salt");
    }

    #[test]
    fn malformed_hash_never_verifies_and_nothing_costs_work() {
        let bogus = PasswordHash::from_stored("not a phc string".into());
        assert!(!verify_password("anything at all", &bogus));
        verify_against_nothing("anything at all");
    }

    #[test]
    fn debug_hides_the_hash_and_serde_is_the_bare_string() {
        let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into());
        assert_eq!(format!("{hash:?}"), "PasswordHash(<redacted>)");
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{}\"", hash.as_phc_str()));
        assert_eq!(serde_json::from_str::<PasswordHash>(&json).unwrap(), hash);
    }

    #[test]
    fn policy_refuses_weak_passwords() {
        let reason = |password: &str, context: &[&str]| match check_password_policy(password, context) {
            Err(AuthError::WeakPassword { reason }) => reason,
            other => panic!("{password:?} must be refused, got {other:?}"),
        };
        assert_eq!(reason("short", &[]), "shorter than 10 characters");
        assert_eq!(reason("ñññññññññ", &[]), "shorter than 10 characters", "characters, not bytes");
        assert_eq!(reason(&"x".repeat(257), &[]), "longer than 256 characters");
        assert_eq!(reason("           ", &[]), "only whitespace");
        assert_eq!(reason("\t\n \u{a0}\u{2003}      ", &[]), "only whitespace");
        assert_eq!(reason("my-Krishna-password", &["krishna"]), "contains the user name or email");
        assert_eq!(reason("KRISHNA.DEV is me!", &["alice", "krishna.dev"]), "contains the user name or email");
        assert_eq!(reason("Password123", &[]), "one of the most common passwords");
        assert_eq!(reason("QWERTYUIOP", &[]), "one of the most common passwords");
    }

    #[test]
    fn policy_accepts_reasonable_passwords() {
        for ok in ["correct horse battery staple", "Tr0ub4dor&3xyz", &"y".repeat(256), "ñññññññññññ"] {
            assert_eq!(check_password_policy(ok, &["krishna", "kr", ""]), Ok(()), "{ok:?}");
        }
        // Context words under three characters are too likely to occur by chance.
        assert_eq!(check_password_policy("a long passphrase by al", &["al", " "]), Ok(()));
    }

    #[test]
    fn common_list_holds_only_entries_the_length_rule_lets_through() {
        let entries: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(entries.len() >= 100);
        for entry in &entries {
            assert!(entry.chars().count() >= MIN_PASSWORD_CHARS, "{entry:?} is refused by length already");
            assert_eq!(*entry, entry.to_lowercase(), "entries are compared lowercase");
        }
        let unique: std::collections::BTreeSet<&&str> = entries.iter().collect();
        assert_eq!(unique.len(), entries.len());
    }
}
