//! Token signing keys: Ed25519 key pairs, their ids, the public keys still accepted after a
//! rotation, and the key ring that holds both and publishes them as a JWKS.
//!
//! Owns key generation, PKCS#8 parsing and the serde form in which keys are replicated (bytes as
//! base64url text). Calls `aws-lc-rs` for key generation and parsing; issuing and verifying tokens
//! with these keys is [`crate::token`]'s business. Nothing here reads a clock: retirement times are
//! compared with the `now` the caller passes.

use std::fmt;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gati_core::identity::{KeyId, SigningKeyRecord, SigningKeys};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuthError, Result};

/// The length of a raw Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Returns the id of a raw Ed25519 public key: the first 8 bytes of its SHA-256 in lowercase hex.
/// Deriving the id from the key means every node that holds a key agrees on its id.
pub fn key_id_for_public_key(public: &[u8; PUBLIC_KEY_LEN]) -> KeyId {
    let digest = Sha256::digest(public);
    hex::encode(&digest[..8]).parse().expect("16 lowercase hex characters are a key id")
}

/// Encodes bytes as unpadded base64url, the encoding JOSE uses everywhere.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_LEN]> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| AuthError::KeyInvalid { reason: "public key is not unpadded base64url" })?;
    bytes.try_into().map_err(|_| AuthError::KeyInvalid { reason: "an Ed25519 public key is 32 bytes" })
}

/// An Ed25519 key pair that signs tokens.
///
/// Holds the private key as a PKCS#8 v2 DER document, the raw public key and their [`KeyId`]; the
/// three are checked against each other whenever a key is built or deserialised. Serialises as
/// `{"kid", "pkcs8", "public"}` with the bytes in base64url, the same fields and encoding as the
/// replicated [`SigningKeyRecord`]. Its `Debug` form never shows the private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredSigningKey", into = "StoredSigningKey")]
pub struct SigningKey {
    kid: KeyId,
    pkcs8: Vec<u8>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl SigningKey {
    /// Generates a new key pair from the operating system's random source.
    pub fn generate() -> Result<SigningKey> {
        let pair = Ed25519KeyPair::generate().map_err(|_| AuthError::Crypto("ed25519 key generation failed".into()))?;
        SigningKey::from_pair(&pair)
    }

    /// Reads an unencrypted Ed25519 private key in PKCS#8 DER (v1, as `openssl genpkey` writes it,
    /// or v2). The key is kept re-encoded as v2, whose embedded public key is checked on every load.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|_| AuthError::KeyInvalid { reason: "not an Ed25519 PKCS#8 private key" })?;
        SigningKey::from_pair(&pair)
    }

    /// Reads a key from its replicated record, checking that its id, public and private halves agree.
    pub fn from_record(record: &SigningKeyRecord) -> Result<SigningKey> {
        SigningKey::from_stored_parts(&record.kid, &record.pkcs8, &record.public)
    }

    /// Returns the replicated record of this key, created at `created_at` (unix seconds) and not
    /// retiring.
    pub fn to_record(&self, created_at: u64) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: self.kid.clone(),
            pkcs8: base64url(&self.pkcs8),
            public: base64url(&self.public),
            created_at,
            retire_after: None,
        }
    }

    fn from_stored_parts(kid: &KeyId, pkcs8: &str, public: &str) -> Result<SigningKey> {
        let der = URL_SAFE_NO_PAD
            .decode(pkcs8)
            .map_err(|_| AuthError::KeyInvalid { reason: "private key is not unpadded base64url" })?;
        let key = SigningKey::from_pkcs8(&der)?;
        if decode_public_key(public)? != key.public {
            return Err(AuthError::KeyInvalid { reason: "public key does not match the private key" });
        }
        if *kid != key.kid {
            return Err(AuthError::KeyInvalid { reason: "key id does not match the public key" });
        }
        Ok(key)
    }

    fn from_pair(pair: &Ed25519KeyPair) -> Result<SigningKey> {
        let pkcs8 = pair.to_pkcs8().map_err(|_| AuthError::Crypto("ed25519 key encoding failed".into()))?;
        let public: [u8; PUBLIC_KEY_LEN] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| AuthError::Crypto("ed25519 public key has the wrong length".into()))?;
        Ok(SigningKey { kid: key_id_for_public_key(&public), pkcs8: pkcs8.as_ref().to_vec(), public })
    }

    /// Returns the key's id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// Returns the raw 32-byte public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Returns the private key as PKCS#8 v2 DER, for signing.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Returns the public half, accepted until `retire_after` (unix seconds) if one is given.
    pub fn verifying_key(&self, retire_after: Option<u64>) -> VerifyingKey {
        VerifyingKey { kid: self.kid.clone(), public: self.public, retire_after }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("public", &base64url(&self.public))
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

/// The serde form of a [`SigningKey`].
#[derive(Serialize, Deserialize)]
struct StoredSigningKey {
    kid: KeyId,
    pkcs8: String,
    public: String,
}

impl From<SigningKey> for StoredSigningKey {
    fn from(key: SigningKey) -> Self {
        StoredSigningKey { pkcs8: base64url(&key.pkcs8), public: base64url(&key.public), kid: key.kid }
    }
}

impl TryFrom<StoredSigningKey> for SigningKey {
    type Error = AuthError;

    fn try_from(stored: StoredSigningKey) -> Result<Self> {
        SigningKey::from_stored_parts(&stored.kid, &stored.pkcs8, &stored.public)
    }
}

/// The public half of a signing key, accepted for verification until an optional retirement time.
///
/// After a rotation the previous key stays here so that tokens it signed keep working until they
/// expire; `retire_after` (unix seconds) should be at least the longest token lifetime past the
/// rotation. Serialises as `{"kid", "public", "retire_after"?}` with the key in base64url.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredVerifyingKey", into = "StoredVerifyingKey")]
pub struct VerifyingKey {
    kid: KeyId,
    public: [u8; PUBLIC_KEY_LEN],
    retire_after: Option<u64>,
}

impl VerifyingKey {
    /// Builds a verifying key from a raw Ed25519 public key; its id is derived from the key.
    pub fn new(public: [u8; PUBLIC_KEY_LEN], retire_after: Option<u64>) -> VerifyingKey {
        VerifyingKey { kid: key_id_for_public_key(&public), public, retire_after }
    }

    /// Reads the public half of a replicated key record (its private half is not looked at),
    /// checking that its id matches the public key.
    pub fn from_record(record: &SigningKeyRecord) -> Result<VerifyingKey> {
        VerifyingKey::from_stored_parts(&record.kid, &record.public, record.retire_after)
    }

    fn from_stored_parts(kid: &KeyId, public: &str, retire_after: Option<u64>) -> Result<VerifyingKey> {
        let key = VerifyingKey::new(decode_public_key(public)?, retire_after);
        if *kid != key.kid {
            return Err(AuthError::KeyInvalid { reason: "key id does not match the public key" });
        }
        Ok(key)
    }

    /// Returns the key's id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// Returns the raw 32-byte public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// Returns the time (unix seconds) after which tokens under this key are refused, if any.
    pub fn retire_after(&self) -> Option<u64> {
        self.retire_after
    }

    /// Returns whether tokens under this key are still accepted at `now` (unix seconds).
    pub fn accepts_at(&self, now: u64) -> bool {
        self.retire_after.is_none_or(|retire_after| now <= retire_after)
    }

    /// Returns the key as a JSON Web Key (RFC 8037 `OKP`).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64url(&self.public),
            "kid": self.kid.as_str(),
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// The serde form of a [`VerifyingKey`].
#[derive(Serialize, Deserialize)]
struct StoredVerifyingKey {
    kid: KeyId,
    public: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retire_after: Option<u64>,
}

impl From<VerifyingKey> for StoredVerifyingKey {
    fn from(key: VerifyingKey) -> Self {
        StoredVerifyingKey { public: base64url(&key.public), kid: key.kid, retire_after: key.retire_after }
    }
}

impl TryFrom<StoredVerifyingKey> for VerifyingKey {
    type Error = AuthError;

    fn try_from(stored: StoredVerifyingKey) -> Result<Self> {
        VerifyingKey::from_stored_parts(&stored.kid, &stored.public, stored.retire_after)
    }
}

/// The keys of a token issuer: the active key, which signs, and the public keys of earlier keys,
/// which still verify until they retire. The active key's public half is always accepted.
///
/// Tokens are issued and verified with [`Keyring::issue`] and [`Keyring::verify`] (in
/// [`crate::token`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    /// The key that signs new tokens.
    pub active: SigningKey,
    /// Earlier keys whose tokens are still accepted, each until its `retire_after`.
    pub verifying: Vec<VerifyingKey>,
}

impl Keyring {
    /// Builds a ring with one active key and no earlier keys.
    pub fn new(active: SigningKey) -> Keyring {
        Keyring { active, verifying: Vec::new() }
    }

    /// Builds the ring from the replicated [`SigningKeys`]: the active record signs, every other
    /// record verifies until its `retire_after`. Fails when there is no active key or any record is
    /// inconsistent.
    pub fn from_signing_keys(keys: &SigningKeys) -> Result<Keyring> {
        let no_active = AuthError::KeyInvalid { reason: "no active signing key" };
        let active_kid = keys.active.as_ref().ok_or_else(|| no_active.clone())?;
        let active = keys.keys.iter().find(|record| record.kid == *active_kid).ok_or(no_active)?;
        let verifying = keys
            .keys
            .iter()
            .filter(|record| record.kid != *active_kid)
            .map(VerifyingKey::from_record)
            .collect::<Result<Vec<_>>>()?;
        Ok(Keyring { active: SigningKey::from_record(active)?, verifying })
    }

    /// Makes `next` the active key. The previous active key keeps verifying until `retire_after`
    /// (unix seconds), which should be at least the rotation time plus the longest token lifetime.
    pub fn rotate(&mut self, next: SigningKey, retire_after: u64) {
        let previous = std::mem::replace(&mut self.active, next);
        self.verifying.retain(|key| key.kid != previous.kid && key.kid != self.active.kid);
        self.verifying.push(previous.verifying_key(Some(retire_after)));
    }

    /// Drops the earlier keys that no longer verify at `now` (unix seconds).
    pub fn prune_retired(&mut self, now: u64) {
        self.verifying.retain(|key| key.accepts_at(now));
    }

    /// Returns the public key that verifies tokens with header `kid` at `now`: the active key's, or
    /// an earlier key's that has not retired.
    pub(crate) fn public_key_for(&self, kid: &str, now: u64) -> Result<&[u8; PUBLIC_KEY_LEN]> {
        if kid == self.active.kid.as_str() {
            return Ok(&self.active.public);
        }
        match self.verifying.iter().find(|key| key.kid.as_str() == kid) {
            Some(key) if key.accepts_at(now) => Ok(&key.public),
            Some(_) => Err(AuthError::TokenInvalid { reason: "signing key retired" }),
            None => Err(AuthError::UnknownKey { kid: crate::error::echo(kid) }),
        }
    }

    /// Returns the JSON Web Key Set (`{"keys": [...]}`) of every key this ring accepts: the active key
    /// first, then the earlier keys (including any whose retirement time has passed but which have
    /// not been pruned yet).
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys = vec![self.active.verifying_key(None).jwk()];
        keys.extend(self.verifying.iter().filter(|key| key.kid != self.active.kid).map(VerifyingKey::jwk));
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pkcs8_and_serde() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(key.kid(), &key_id_for_public_key(key.public_key()));
        assert_eq!(SigningKey::from_pkcs8(key.pkcs8_der()).unwrap(), key);

        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["kid"], key.kid().as_str());
        assert_eq!(json["public"], base64url(key.public_key()));
        assert_eq!(serde_json::from_value::<SigningKey>(json).unwrap(), key);

        assert_ne!(SigningKey::generate().unwrap().kid(), key.kid(), "keys must be fresh");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = SigningKey::generate().unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains(&base64url(key.pkcs8_der())), "{debug}");
        assert!(!debug.contains(&format!("{:?}", key.pkcs8_der())), "{debug}");
    }

    #[test]
    fn accepts_a_pkcs8_v1_key_and_stores_it_as_v2() {
        let v1 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let key = SigningKey::from_pkcs8(v1.as_ref()).unwrap();
        assert_ne!(key.pkcs8_der(), v1.as_ref());
        assert_eq!(SigningKey::from_pkcs8(key.pkcs8_der()).unwrap(), key);
    }

    #[test]
    fn inconsistent_or_garbage_key_material_is_refused() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        assert!(matches!(SigningKey::from_pkcs8(b"not der"), Err(AuthError::KeyInvalid { .. })));

        let mut json = serde_json::to_value(&key).unwrap();
        json["public"] = base64url(other.public_key()).into();
        assert!(serde_json::from_value::<SigningKey>(json).is_err(), "public key swapped");

        let mut json = serde_json::to_value(&key).unwrap();
        json["kid"] = other.kid().as_str().into();
        assert!(serde_json::from_value::<SigningKey>(json).is_err(), "kid swapped");

        let mut json = serde_json::to_value(key.verifying_key(None)).unwrap();
        json["kid"] = other.kid().as_str().into();
        assert!(serde_json::from_value::<VerifyingKey>(json).is_err(), "verifying kid swapped");

        let json = serde_json::json!({ "kid": key.kid().as_str(), "public": "AAAA" });
        assert!(serde_json::from_value::<VerifyingKey>(json).is_err(), "short public key");
    }

    #[test]
    fn key_id_is_the_sha256_prefix_of_the_public_key() {
        // SHA-256 of 32 zero bytes is 66687aadf862bd77 6c8f...
        assert_eq!(key_id_for_public_key(&[0; PUBLIC_KEY_LEN]).as_str(), "66687aadf862bd77");
        let key = SigningKey::generate().unwrap();
        assert_eq!(VerifyingKey::new(*key.public_key(), None), key.verifying_key(None));
    }

    #[test]
    fn replicated_records_round_trip_and_build_the_ring() {
        let first = SigningKey::generate().unwrap();
        let second = SigningKey::generate().unwrap();
        let record = first.to_record(10);
        assert_eq!(record.created_at, 10);
        assert_eq!(record.retire_after, None);
        assert_eq!(SigningKey::from_record(&record).unwrap(), first);
        // The record's fields carry the same text as this crate's own serde form.
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(
            (json["kid"].as_str(), json["pkcs8"].as_str()),
            (Some(record.kid.as_str()), Some(record.pkcs8.as_str()))
        );

        let mut retired = first.to_record(10);
        retired.retire_after = Some(500);
        let keys = SigningKeys { active: Some(second.kid().clone()), keys: vec![retired, second.to_record(20)] };
        let ring = Keyring::from_signing_keys(&keys).unwrap();
        assert_eq!(ring.active, second);
        assert_eq!(ring.verifying, vec![first.verifying_key(Some(500))]);

        let mut tampered = second.to_record(20);
        tampered.public = first.to_record(10).public;
        assert!(SigningKey::from_record(&tampered).is_err());
        assert!(VerifyingKey::from_record(&tampered).is_err());

        let no_active = SigningKeys { active: None, keys: vec![first.to_record(10)] };
        assert_eq!(
            Keyring::from_signing_keys(&no_active),
            Err(AuthError::KeyInvalid { reason: "no active signing key" })
        );
        let missing = SigningKeys { active: Some(second.kid().clone()), keys: vec![first.to_record(10)] };
        assert!(Keyring::from_signing_keys(&missing).is_err());
    }

    #[test]
    fn verifying_key_retires_after_its_time_and_serialises_compactly() {
        let key = SigningKey::generate().unwrap();
        let forever = key.verifying_key(None);
        assert!(forever.accepts_at(u64::MAX));
        let json = serde_json::to_value(&forever).unwrap();
        assert!(json.get("retire_after").is_none());
        assert_eq!(serde_json::from_value::<VerifyingKey>(json).unwrap(), forever);

        let retiring = key.verifying_key(Some(100));
        assert!(retiring.accepts_at(100));
        assert!(!retiring.accepts_at(101));
        let json = serde_json::to_value(&retiring).unwrap();
        assert_eq!(serde_json::from_value::<VerifyingKey>(json).unwrap(), retiring);
    }

    #[test]
    fn rotation_keeps_the_previous_key_until_it_retires() {
        let first = SigningKey::generate().unwrap();
        let second = SigningKey::generate().unwrap();
        let mut ring = Keyring::new(first.clone());
        ring.rotate(second.clone(), 1_000);
        assert_eq!(ring.active, second);
        assert_eq!(ring.verifying, vec![first.verifying_key(Some(1_000))]);
        assert!(ring.public_key_for(first.kid().as_str(), 1_000).is_ok());
        assert_eq!(
            ring.public_key_for(first.kid().as_str(), 1_001),
            Err(AuthError::TokenInvalid { reason: "signing key retired" })
        );
        assert!(ring.public_key_for(second.kid().as_str(), u64::MAX).is_ok());
        assert!(matches!(ring.public_key_for("0000000000000000", 0), Err(AuthError::UnknownKey { .. })));

        // Rotating back to a key that is in `verifying` must not leave it there twice.
        ring.rotate(first.clone(), 2_000);
        assert_eq!(ring.verifying, vec![second.verifying_key(Some(2_000))]);

        ring.prune_retired(2_001);
        assert!(ring.verifying.is_empty());
        assert_eq!(serde_json::from_value::<Keyring>(serde_json::to_value(&ring).unwrap()).unwrap(), ring);
    }

    #[test]
    fn jwks_lists_every_accepted_key_as_an_okp_jwk() {
        let first = SigningKey::generate().unwrap();
        let second = SigningKey::generate().unwrap();
        let mut ring = Keyring::new(first.clone());
        ring.rotate(second.clone(), 1_000);
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0],
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64url(second.public_key()),
                "kid": second.kid().as_str(),
                "alg": "EdDSA",
                "use": "sig",
            })
        );
        assert_eq!(keys[1]["kid"], first.kid().as_str());
        assert_eq!(URL_SAFE_NO_PAD.decode(keys[1]["x"].as_str().unwrap()).unwrap(), first.public_key());
    }
}
