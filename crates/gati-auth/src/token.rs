//! Signed bearer tokens: their claims, and issuing and verifying them with a [`Keyring`].
//!
//! Tokens are JWTs signed with `EdDSA` (Ed25519) whose claims follow the Docker registry token
//! format (an `access` list of `{type, name, actions}`), so the token flow `docker`, `podman` and
//! `skopeo` speak works unchanged. Owns the verification rules: which header algorithms are
//! acceptable (only `EdDSA`), how keys are chosen (`kid`), and the time, audience and issuer
//! checks. Calls `jsonwebtoken` for the signature and JSON handling only; all clock comparisons use
//! the caller's `now`, never the system clock, so tests and the state machine control time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gati_core::identity::SessionId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{AuthError, Result};
use crate::signing::Keyring;

/// The longest token accepted, checked before any parsing. Also refused at issue time, so this
/// server never hands out a token it would not take back.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Clock skew tolerated between the issuing and the verifying node, in seconds.
pub const CLOCK_LEEWAY_SECS: u64 = 30;

/// The only header algorithm accepted. Everything else, `none`, `HS256` (whose "secret" an attacker
/// could take from our public JWKS) and `RS256` included, is refused before any key is looked at.
const ACCEPTED_ALG: &str = "EdDSA";

/// What a token may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A short-lived token presented to the registry API.
    Access,
    /// A longer-lived token exchanged at the token endpoint for new access tokens.
    Refresh,
}

/// One entry of the Docker token `access` claim: the actions granted on one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    /// The resource type: `repository` or `registry`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// The resource name: a repository name, or `catalog`.
    pub name: String,
    /// The granted actions, such as `pull`, `push`, `delete` or `*`.
    pub actions: Vec<String>,
}

/// The claims of a Gati token. Times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: this registry's token service.
    pub iss: String,
    /// The subject: the authenticated principal.
    pub sub: String,
    /// The audience: the service the token is for (the `service` of the token request).
    pub aud: String,
    /// The expiry time; the token is refused from `exp + 30 s` on.
    pub exp: u64,
    /// The time before which (less 30 s) the token is refused.
    pub nbf: u64,
    /// The issue time.
    pub iat: u64,
    /// A unique id of this token.
    pub jti: String,
    /// The login session this token belongs to, so that revoking the session revokes its tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    /// What the token may be used for.
    #[serde(rename = "knd")]
    pub kind: TokenKind,
    /// The granted access, in the Docker registry token format.
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
    /// The API key the token was issued for, if any: revoking the key ends the token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<gati_core::identity::ApiKeyId>,
}

/// The part of a JWS header read before the signature is checked.
#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: a recipient must refuse extensions it does not understand; we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::TokenInvalid { reason }
}

/// Splits a compact JWS into its three parts and reads its header, without trusting either.
fn read_unverified_header(token: &str) -> Result<UnverifiedHeader> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS of three parts"));
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| invalid("header is not base64url"))?;
    let header: UnverifiedHeader = serde_json::from_slice(&json).map_err(|_| invalid("header is not a JWS header"))?;
    if header.crit.is_some() {
        return Err(invalid("critical header extensions are not supported"));
    }
    Ok(header)
}

impl Keyring {
    /// Checks a compact JWS's length, header (`alg` must be `EdDSA`, no `crit`), `kid` (known
    /// and not retired at `now`) and signature, and decodes its payload. Every claim check is the
    /// caller's, against `now`: jsonwebtoken's own would read the system clock.
    fn decode_signed<T: for<'de> Deserialize<'de>>(&self, text: &str, now: u64, misfit: &'static str) -> Result<T> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(invalid("longer than 8 KiB"));
        }
        let header = read_unverified_header(text)?;
        if header.alg != ACCEPTED_ALG {
            return Err(invalid("signing algorithm not accepted"));
        }
        let Some(kid) = header.kid else {
            return Err(AuthError::UnknownKey { kid: String::new() });
        };
        let public = self.public_key_for(&kid, now)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let decoded = jsonwebtoken::decode::<T>(text, &DecodingKey::from_ed_der(public), &validation).map_err(
            |error| match error.kind() {
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::Json(_) => invalid(misfit),
                _ => invalid("malformed token"),
            },
        )?;
        Ok(decoded.claims)
    }
    /// Signs `claims` with the active key (`EdDSA`), with `kid` and `typ: "JWT"` in the header.
    ///
    /// Refuses with [`AuthError::TokenTooLarge`] a token longer than [`MAX_TOKEN_LEN`] (too many
    /// scopes), since [`Keyring::verify`] would refuse it.
    pub fn issue(&self, claims: &Claims) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.active.kid().to_string());
        let key = EncodingKey::from_ed_der(self.active.pkcs8_der());
        let token = jsonwebtoken::encode(&header, claims, &key)
            .map_err(|error| AuthError::Crypto(format!("token signing failed: {error}")))?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TokenTooLarge);
        }
        Ok(token)
    }

    /// Verifies a token at time `now` (unix seconds) for `audience` and `issuer`, and returns its
    /// claims. Checks, in order: length, header (`alg` must be `EdDSA`, no `crit`), `kid` (known and
    /// not retired at `now`), signature, `iss`, `aud`, then `exp` and `nbf` with 30 s of leeway.
    ///
    /// Accepts both token kinds: a caller that serves the registry API must refuse refresh tokens,
    /// or use [`Keyring::verify_kind`].
    pub fn verify(&self, token: &str, now: u64, audience: &str, issuer: &str) -> Result<Claims> {
        let claims: Claims = self.decode_signed(token, now, "claims do not fit the token format")?;

        if claims.iss != issuer {
            return Err(invalid("wrong issuer"));
        }
        if claims.aud != audience {
            return Err(invalid("wrong audience"));
        }
        if claims.exp.saturating_add(CLOCK_LEEWAY_SECS) <= now {
            return Err(AuthError::TokenExpired);
        }
        if claims.nbf > now.saturating_add(CLOCK_LEEWAY_SECS) {
            return Err(AuthError::TokenNotYetValid);
        }
        Ok(claims)
    }

    /// Verifies a token like [`Keyring::verify`] and also refuses it unless it is of `kind`.
    pub fn verify_kind(&self, token: &str, now: u64, audience: &str, issuer: &str, kind: TokenKind) -> Result<Claims> {
        let claims = self.verify(token, now, audience, issuer)?;
        if claims.kind != kind {
            return Err(invalid("wrong token kind"));
        }
        Ok(claims)
    }
}

/// A short-lived value the registry hands to a client and must get back unaltered (the state of
/// an external sign-in, kept in a cookie): signed like a token, never accepted as one, because
/// its audience is its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed<T> {
    /// What the value is for; checked on opening.
    pub aud: String,
    /// When it stops being accepted (unix seconds).
    pub exp: u64,
    /// The value.
    pub value: T,
}

impl Keyring {
    /// Signs `sealed` with the active key.
    pub fn seal<T: Serialize>(&self, sealed: &Sealed<T>) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active.kid().to_string());
        let key = EncodingKey::from_ed_der(self.active.pkcs8_der());
        let text = jsonwebtoken::encode(&header, sealed, &key)
            .map_err(|error| AuthError::Crypto(format!("sealing failed: {error}")))?;
        if text.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TokenTooLarge);
        }
        Ok(text)
    }

    /// Opens a value sealed by [`Keyring::seal`] for `audience`, refusing it after its `exp`.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, text: &str, now: u64, audience: &str) -> Result<T> {
        let sealed: Sealed<T> = self.decode_signed(text, now, "malformed sealed value")?;
        if sealed.aud != audience {
            return Err(invalid("wrong audience"));
        }
        if sealed.exp <= now {
            return Err(AuthError::TokenExpired);
        }
        Ok(sealed.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    const NOW: u64 = 1_700_000_000;
    const AUD: &str = "registry.example";
    const ISS: &str = "gati-token-service";

    fn claims() -> Claims {
        Claims {
            iss: ISS.into(),
            sub: "krishna".into(),
            aud: AUD.into(),
            exp: NOW + 300,
            nbf: NOW,
            iat: NOW,
            jti: "0123456789abcdef".into(),
            sid: Some("0123456789abcdef0123456789abcdef".parse().unwrap()),
            key: None,
            kind: TokenKind::Access,
            access: vec![ResourceAccess {
                r#type: "repository".into(),
                name: "library/nginx".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
        }
    }

    fn ring() -> Keyring {
        Keyring::new(SigningKey::generate().unwrap())
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Returns the token with its payload replaced by `payload`, keeping header and signature.
    fn with_payload(token: &str, payload: &serde_json::Value) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2])
    }

    #[test]
    fn round_trip_in_docker_token_format() {
        let ring = ring();
        let token = ring.issue(&claims()).unwrap();
        assert_eq!(ring.verify(&token, NOW, AUD, ISS).unwrap(), claims());

        let parts: Vec<&str> = token.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], ring.active.kid().as_str());
        let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["knd"], "access");
        assert_eq!(
            payload["access"][0],
            serde_json::json!({"type": "repository", "name": "library/nginx", "actions": ["pull", "push"]})
        );

        let mut no_session = claims();
        no_session.sid = None;
        no_session.kind = TokenKind::Refresh;
        let token = ring.issue(&no_session).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert!(payload.get("sid").is_none(), "{payload}");
        assert_eq!(payload["knd"], "refresh");
        assert_eq!(ring.verify(&token, NOW, AUD, ISS).unwrap(), no_session);
    }

    #[test]
    fn verify_kind_refuses_the_other_kind() {
        let ring = ring();
        let mut refresh = claims();
        refresh.kind = TokenKind::Refresh;
        let token = ring.issue(&refresh).unwrap();
        assert!(ring.verify_kind(&token, NOW, AUD, ISS, TokenKind::Refresh).is_ok());
        assert_eq!(
            ring.verify_kind(&token, NOW, AUD, ISS, TokenKind::Access),
            Err(AuthError::TokenInvalid { reason: "wrong token kind" })
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let ring = ring();
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": ring.active.kid().as_str()});
        let payload = serde_json::to_value(claims()).unwrap();
        for signature in ["", "AAAA"] {
            let token =
                format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
            assert_eq!(
                ring.verify(&token, NOW, AUD, ISS),
                Err(AuthError::TokenInvalid { reason: "signing algorithm not accepted" })
            );
        }
        // Other spellings of "none" and a missing alg fare no better.
        for header in
            [serde_json::json!({"alg": "None"}), serde_json::json!({"alg": "NONE"}), serde_json::json!({"typ": "JWT"})]
        {
            let token = format!("{}.{}.", b64(header.to_string().as_bytes()), b64(payload.to_string().as_bytes()));
            assert!(matches!(ring.verify(&token, NOW, AUD, ISS), Err(AuthError::TokenInvalid { .. })));
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let ring = ring();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(ring.active.kid().to_string());
        let token =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(ring.active.public_key())).unwrap();
        assert_eq!(
            ring.verify(&token, NOW, AUD, ISS),
            Err(AuthError::TokenInvalid { reason: "signing algorithm not accepted" })
        );
    }

    #[test]
    fn rs256_header_is_refused() {
        let ring = ring();
        let good = ring.issue(&claims()).unwrap();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": ring.active.kid().as_str()});
        let parts: Vec<&str> = good.split('.').collect();
        let token = format!("{}.{}.{}", b64(header.to_string().as_bytes()), parts[1], parts[2]);
        assert_eq!(
            ring.verify(&token, NOW, AUD, ISS),
            Err(AuthError::TokenInvalid { reason: "signing algorithm not accepted" })
        );
    }

    #[test]
    fn token_from_a_key_outside_the_ring_is_refused() {
        let ring = ring();
        let stranger = Keyring::new(SigningKey::generate().unwrap());
        let token = stranger.issue(&claims()).unwrap();
        assert_eq!(
            ring.verify(&token, NOW, AUD, ISS),
            Err(AuthError::UnknownKey { kid: stranger.active.kid().to_string() })
        );

        // The stranger claiming our key id fails on the signature.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ring.active.kid().to_string());
        let forged =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_ed_der(stranger.active.pkcs8_der())).unwrap();
        assert_eq!(ring.verify(&forged, NOW, AUD, ISS), Err(AuthError::TokenInvalid { reason: "bad signature" }));

        // No kid at all.
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = None;
        let anonymous =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_ed_der(ring.active.pkcs8_der())).unwrap();
        assert_eq!(ring.verify(&anonymous, NOW, AUD, ISS), Err(AuthError::UnknownKey { kid: String::new() }));
    }

    #[test]
    fn tampered_payload_or_signature_is_refused() {
        let ring = ring();
        let token = ring.issue(&claims()).unwrap();

        let mut escalated = serde_json::to_value(claims()).unwrap();
        escalated["access"][0]["name"] = "library/postgres".into();
        assert_eq!(
            ring.verify(&with_payload(&token, &escalated), NOW, AUD, ISS),
            Err(AuthError::TokenInvalid { reason: "bad signature" })
        );
        let mut longer = serde_json::to_value(claims()).unwrap();
        longer["exp"] = (NOW + 1_000_000).into();
        assert!(ring.verify(&with_payload(&token, &longer), NOW, AUD, ISS).is_err());

        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{message}.{}", b64(&bytes));
        assert_eq!(ring.verify(&flipped, NOW, AUD, ISS), Err(AuthError::TokenInvalid { reason: "bad signature" }));
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let ring = ring();
        let token = ring.issue(&claims()).unwrap();
        let crit_header = b64(br#"{"alg":"EdDSA","kid":"0123456789abcdef","crit":["exp"]}"#);
        let crit = format!("{crit_header}.{}", token.split_once('.').unwrap().1);
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            "a.b.c.d",
            &format!("{token}.extra"),
            "!!!.e30.",
            "e30.e30.",
            "bnVsbA.e30.",
            &crit,
            &token.replacen('.', "=.", 1),
        ] {
            assert!(matches!(ring.verify(bad, NOW, AUD, ISS), Err(AuthError::TokenInvalid { .. })), "{bad:?}");
        }
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused_with_leeway() {
        let ring = ring();
        let token = ring.issue(&claims()).unwrap();
        let exp = claims().exp;
        assert!(ring.verify(&token, exp, AUD, ISS).is_ok());
        assert!(ring.verify(&token, exp + CLOCK_LEEWAY_SECS - 1, AUD, ISS).is_ok());
        assert_eq!(ring.verify(&token, exp + CLOCK_LEEWAY_SECS, AUD, ISS), Err(AuthError::TokenExpired));
        assert_eq!(ring.verify(&token, u64::MAX, AUD, ISS), Err(AuthError::TokenExpired));

        let nbf = claims().nbf;
        assert!(ring.verify(&token, nbf - CLOCK_LEEWAY_SECS, AUD, ISS).is_ok());
        assert_eq!(ring.verify(&token, nbf - CLOCK_LEEWAY_SECS - 1, AUD, ISS), Err(AuthError::TokenNotYetValid));

        let mut far_future = claims();
        far_future.exp = u64::MAX;
        let token = ring.issue(&far_future).unwrap();
        assert!(ring.verify(&token, u64::MAX - 1, AUD, ISS).is_ok(), "no overflow near u64::MAX");
    }

    #[test]
    fn rotation_keeps_old_tokens_until_the_old_key_retires() {
        let mut ring = ring();
        let old_token = ring.issue(&claims()).unwrap();
        ring.rotate(SigningKey::generate().unwrap(), NOW + 100);
        let new_token = ring.issue(&claims()).unwrap();
        assert_ne!(old_token.split('.').next(), new_token.split('.').next(), "new kid in the header");

        assert!(ring.verify(&old_token, NOW + 100, AUD, ISS).is_ok());
        assert_eq!(
            ring.verify(&old_token, NOW + 101, AUD, ISS),
            Err(AuthError::TokenInvalid { reason: "signing key retired" })
        );
        assert!(ring.verify(&new_token, NOW + 101, AUD, ISS).is_ok());

        ring.prune_retired(NOW + 101);
        assert!(matches!(ring.verify(&old_token, NOW, AUD, ISS), Err(AuthError::UnknownKey { .. })));
        assert!(ring.verify(&new_token, NOW, AUD, ISS).is_ok());
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let ring = ring();
        let token = ring.issue(&claims()).unwrap();
        assert_eq!(
            ring.verify(&token, NOW, "other.example", ISS),
            Err(AuthError::TokenInvalid { reason: "wrong audience" })
        );
        assert_eq!(
            ring.verify(&token, NOW, AUD, "someone-else"),
            Err(AuthError::TokenInvalid { reason: "wrong issuer" })
        );
        assert_eq!(ring.verify(&token, NOW, "", ""), Err(AuthError::TokenInvalid { reason: "wrong issuer" }));
    }

    #[test]
    fn oversized_tokens_are_refused_to_verify_and_to_issue() {
        let ring = ring();
        let huge = format!("{}.{}.{}", "e".repeat(10), "A".repeat(MAX_TOKEN_LEN), "B");
        assert_eq!(ring.verify(&huge, NOW, AUD, ISS), Err(AuthError::TokenInvalid { reason: "longer than 8 KiB" }));

        let mut greedy = claims();
        greedy.access = (0..64)
            .map(|i| ResourceAccess {
                r#type: "repository".into(),
                name: format!("orgs/acme/{}{i}", "x".repeat(200)),
                actions: vec!["pull".into()],
            })
            .collect();
        assert_eq!(ring.issue(&greedy), Err(AuthError::TokenTooLarge));
    }

    #[test]
    fn sealed_values_open_only_unaltered_in_time_and_for_their_audience() {
        let ring = Keyring::new(SigningKey::generate().unwrap());
        let sealed = Sealed { aud: "oidc".to_owned(), exp: NOW + 60, value: ("state".to_owned(), 7u32) };
        let text = ring.seal(&sealed).unwrap();
        assert_eq!(ring.open::<(String, u32)>(&text, NOW, "oidc").unwrap(), ("state".to_owned(), 7));
        assert!(ring.open::<(String, u32)>(&text, NOW, "other").is_err(), "another audience");
        assert!(matches!(ring.open::<(String, u32)>(&text, NOW + 60, "oidc"), Err(AuthError::TokenExpired)));
        let other = Keyring::new(SigningKey::generate().unwrap());
        assert!(other.open::<(String, u32)>(&text, NOW, "oidc").is_err(), "another key");
        assert!(ring.verify(&text, NOW, "oidc", ISS).is_err(), "a sealed value is never a token");
    }
}
