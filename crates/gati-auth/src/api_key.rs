//! API keys: their text form `gati_<id>_<secret>`, generation, parsing, and the stored hash.
//!
//! A key is shown to its owner once, at creation; the registry keeps only the id (to find the key)
//! and a hash of the secret (to check it). Owns the key grammar and the random generation of ids and
//! secrets from the operating system's random source (through `aws-lc-rs`); which principal a key
//! belongs to and what it may do are recorded elsewhere (`gati_core::identity::ApiKeyRecord`, whose
//! `id` is the [`ApiKeyId`] and whose `secret_sha256` is the [`SecretHash`]).

use std::fmt;

use gati_core::identity::ApiKeyId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuthError, Result};

/// The prefix of every API key, which tells an API key apart from a password or a JWT.
pub const API_KEY_PREFIX: &str = "gati_";
/// The length of an [`ApiKeyId`] (80 random bits).
const ID_LEN: usize = 16;
/// The length of a secret: 43 base62 characters carry 43 × log2(62) ≈ 256.03 bits.
const SECRET_LEN: usize = 43;
/// The length of a whole key: prefix, id, `_`, secret.
const KEY_LEN: usize = API_KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN;

/// The lowercase RFC 4648 base32 alphabet of key ids.
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The base62 alphabet of secrets.
const SECRET_ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The secret part of a presented API key. Its `Debug` form hides it and it has no `Display`, so it
/// does not end up in logs by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(<redacted>)")
    }
}

/// The stored form of an API key's secret: the lowercase hex SHA-256 of the secret.
///
/// A single fast hash is enough here, unlike for passwords: the secret is 256 random bits, so
/// guessing it from the hash is out of reach whatever the hash costs, and a slow hash would only
/// slow down every API request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(String);

impl SecretHash {
    /// Returns the hash of `secret`.
    pub fn of(secret: &ApiKeySecret) -> SecretHash {
        SecretHash(hex::encode(Sha256::digest(secret.0.as_bytes())))
    }

    /// Returns whether `secret` hashes to this value, comparing in constant time. A malformed stored
    /// hash matches nothing.
    pub fn matches(&self, secret: &ApiKeySecret) -> bool {
        let candidate = SecretHash::of(secret);
        constant_time_eq(candidate.0.as_bytes(), self.0.as_bytes())
    }

    /// Takes a hash back from storage (the `secret_sha256` of an API key record). It is not
    /// checked: a malformed value simply matches nothing.
    pub fn from_stored(hex: String) -> SecretHash {
        SecretHash(hex)
    }

    /// Returns the hex text, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", self.0)
    }
}

/// A freshly generated API key.
pub struct NewApiKey {
    /// The key's id, to store and list.
    pub id: ApiKeyId,
    /// The whole key, `gati_<id>_<secret>`: shown to the owner once and never stored.
    pub text: String,
    /// The hash of the secret, to store.
    pub hash: SecretHash,
}

impl NewApiKey {
    /// Generates a key with a random id and a random 256-bit secret.
    pub fn generate() -> Result<NewApiKey> {
        let id: ApiKeyId =
            random_string(ID_ALPHABET, ID_LEN)?.parse().expect("the id alphabet and length are an API key id's");
        let secret = ApiKeySecret(random_string(SECRET_ALPHABET, SECRET_LEN)?);
        let text = format!("{API_KEY_PREFIX}{id}_{}", secret.0);
        debug_assert_eq!(text.len(), KEY_LEN);
        Ok(NewApiKey { hash: SecretHash::of(&secret), id, text })
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("text", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Returns `len` characters drawn uniformly from `alphabet` (at most 256 symbols) using the
/// operating system's random source. Bytes at or above the largest multiple of the alphabet size
/// are dropped rather than folded, so that no symbol is more likely than another.
fn random_string(alphabet: &[u8], len: usize) -> Result<String> {
    debug_assert!((1..=256).contains(&alphabet.len()));
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buffer = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buffer).map_err(|_| AuthError::Crypto("random source failed".into()))?;
        for &byte in buffer.iter().filter(|&&byte| usize::from(byte) < limit) {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(byte) % alphabet.len()]));
        }
    }
    Ok(out)
}

/// Splits a presented key into its id and secret. Strict: the prefix, both lengths, the separator
/// and both alphabets must be exactly right, so nothing malformed reaches a lookup.
pub fn parse_api_key(text: &str) -> Result<(ApiKeyId, ApiKeySecret)> {
    let rest = text.strip_prefix(API_KEY_PREFIX).ok_or(AuthError::ApiKeyMalformed)?;
    // ASCII first, so that the byte offsets below are character boundaries.
    if text.len() != KEY_LEN || !rest.is_ascii() || rest.as_bytes()[ID_LEN] != b'_' {
        return Err(AuthError::ApiKeyMalformed);
    }
    let id: ApiKeyId = rest[..ID_LEN].parse().map_err(|_| AuthError::ApiKeyMalformed)?;
    let secret = &rest[ID_LEN + 1..];
    if !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AuthError::ApiKeyMalformed);
    }
    Ok((id, ApiKeySecret(secret.to_owned())))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Returns whether a credential (a Basic-auth password, a bearer value) is meant as an API key, so
/// it is checked as one rather than as a password or a token. Only the prefix is looked at.
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_back_and_matches_its_hash_only() {
        let key = NewApiKey::generate().unwrap();
        assert_eq!(key.text.len(), KEY_LEN);
        assert!(looks_like_api_key(&key.text));
        let (id, secret) = parse_api_key(&key.text).unwrap();
        assert_eq!(id, key.id);
        assert!(key.text.starts_with(&format!("gati_{id}_")));
        assert!(key.hash.matches(&secret));
        assert_eq!(key.hash.as_str().len(), 64);

        let other = NewApiKey::generate().unwrap();
        let (_, other_secret) = parse_api_key(&other.text).unwrap();
        assert!(!key.hash.matches(&other_secret));
    }

    #[test]
    fn generated_keys_are_distinct_and_use_the_whole_alphabets() {
        let keys: Vec<NewApiKey> = (0..200).map(|_| NewApiKey::generate().unwrap()).collect();
        let ids: std::collections::BTreeSet<&ApiKeyId> = keys.iter().map(|key| &key.id).collect();
        assert_eq!(ids.len(), keys.len());
        let secrets: std::collections::BTreeSet<&str> = keys.iter().map(|key| &key.text[22..]).collect();
        assert_eq!(secrets.len(), keys.len());

        // 200 × 43 = 8600 draws over 62 symbols: every symbol shows up (a miss has odds of about 1e-58).
        let seen: std::collections::BTreeSet<u8> = secrets.iter().flat_map(|secret| secret.bytes()).collect();
        assert_eq!(seen.len(), SECRET_ALPHABET.len());
        let seen: std::collections::BTreeSet<u8> = ids.iter().flat_map(|id| id.as_str().bytes()).collect();
        assert_eq!(seen.len(), ID_ALPHABET.len());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let key = NewApiKey::generate().unwrap();
        let (_, secret) = parse_api_key(&key.text).unwrap();
        let secret_text = &key.text[22..];
        for debug in [format!("{key:?}"), format!("{secret:?}")] {
            assert!(debug.contains("<redacted>"), "{debug}");
            assert!(!debug.contains(secret_text), "{debug}");
        }
        assert!(format!("{key:?}").contains(key.id.as_str()));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = NewApiKey::generate().unwrap().text;
        let id = &good[5..21];
        let secret = &good[22..];
        let cases = [
            String::new(),
            "gati_".into(),
            good.replacen("gati_", "GATI_", 1),
            good.replacen("gati_", "gat1_", 1),
            format!("gati-{id}_{secret}"),
            format!("gati_{id}-{secret}"),
            format!("gati_{id}{secret}x"),
            format!("gati_{id}_{secret}x"),
            format!("gati_{id}_{}", &secret[1..]),
            format!("gati_{}_{secret}", id.to_uppercase()),
            format!("gati_{}1_{secret}", &id[1..]),
            format!("gati_{}8_{secret}", &id[1..]),
            format!("gati_{id}_{}-", &secret[1..]),
            format!("gati_{id}_{}\n", &secret[1..]),
            format!(" {}", &good[1..]),
            format!("gati_{id}_{}é", &secret[2..]),
            format!("gati_{}é_{secret}", &id[2..]),
            format!("gati_{}", "é".repeat(30)),
        ];
        for bad in &cases {
            assert_eq!(parse_api_key(bad).map(|(id, _)| id), Err(AuthError::ApiKeyMalformed), "{bad:?}");
        }
        assert!(parse_api_key(&good).is_ok());
    }

    #[test]
    fn routing_looks_at_the_prefix_only() {
        assert!(looks_like_api_key("gati_whatever"));
        assert!(!looks_like_api_key("hunter2hunter2"));
        assert!(!looks_like_api_key("eyJhbGciOiJFZERTQSJ9.e30.sig"));
        assert!(!looks_like_api_key("GATI_x"));
    }

    #[test]
    fn id_and_hash_serialise_as_strings() {
        let key = NewApiKey::generate().unwrap();
        let json = serde_json::to_string(&(&key.id, &key.hash)).unwrap();
        let (id, hash): (ApiKeyId, SecretHash) = serde_json::from_str(&json).unwrap();
        assert_eq!((id, hash), (key.id.clone(), key.hash.clone()));
        assert!(serde_json::from_str::<ApiKeyId>(r#""ABCDEFGHIJKLMNOP""#).is_err());

        let (_, secret) = parse_api_key(&key.text).unwrap();
        let damaged: SecretHash = serde_json::from_str(r#""not hex""#).unwrap();
        assert!(!damaged.matches(&secret));
        assert!(SecretHash::from_stored(key.hash.as_str().to_owned()).matches(&secret));
        let upper = SecretHash::from_stored(key.hash.as_str().to_uppercase());
        assert!(!upper.matches(&secret), "the stored form is lowercase hex");
    }
}
