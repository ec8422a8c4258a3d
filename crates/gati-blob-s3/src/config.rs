//! [`S3Config`]: everything an operator sets about the S3 backend, with its defaults and the one
//! `validate` that every constructor runs, so no other module re-checks or re-defaults a value.
//!
//! Owns parsing and validation only; building the SDK client from it is `client.rs`'s job.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::parts::{MAX_PART_SIZE, MIN_PART_SIZE};

/// Default size of an upload part: 8 MiB, the SDKs' usual choice.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;

/// The largest object one `CopyObject` may copy (an S3 limit), and the default copy part size.
pub(crate) const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// The longest lifetime `SigV4` allows a presigned URL: seven days.
const MAX_PRESIGN_SECS: u64 = 7 * 24 * 60 * 60;

/// Settings of an [`S3BlobStore`](crate::S3BlobStore), as read from the server's TOML config.
///
/// Only `endpoint`, `bucket`, `access_key_id` and `secret_access_key` are required; every other
/// field has a default suited to production.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of the S3 service, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`. Requests use path-style addressing (`<endpoint>/<bucket>/<key>`).
    pub endpoint: String,
    /// Region the requests are signed for; S3-compatible servers mostly accept any.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket holding blobs and upload sessions; it must exist.
    pub bucket: String,
    /// Access key id of the static credentials.
    pub access_key_id: String,
    /// Secret access key of the static credentials; never printed by `Debug`.
    pub secret_access_key: String,
    /// Prefix put before every key (`<prefix>/blobs/...`, `<prefix>/uploads/...`), so several
    /// registries or tests can share a bucket. Empty means the bucket root. Segments may use
    /// ASCII letters, digits, `.`, `_` and `-`, separated by `/`.
    #[serde(default)]
    pub key_prefix: String,
    /// Size of each multipart upload part in bytes, between 5 MiB (the S3 minimum) and 5 GiB.
    /// Memory per upload stays under `part_size * (parts_in_flight + 1)`.
    #[serde(default = "default_part_size")]
    pub part_size: u64,
    /// How many parts of one upload may be uploading at once (1 to 16).
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
    /// Largest blob committed with one `CopyObject`; larger ones are copied with `UploadPartCopy`
    /// in parts of this size. Between 5 MiB and 5 GiB (the S3 limit and default).
    #[serde(default = "default_copy_part_size")]
    pub copy_part_size: u64,
    /// How long an upload writer owns its session without renewing the claim (renewed on every
    /// sync and during long writes). After a node dies mid-upload, another node may take the
    /// session over this long after the last renewal. Node clocks must agree to well within it.
    /// Zero gives no exclusion at all and is meant for tests.
    #[serde(default = "default_upload_lease_secs")]
    pub upload_lease_secs: u64,
    /// Whether pulls may be redirected to presigned GET URLs
    /// ([`BlobStore::presigned_read_url`](gati_blob::BlobStore::presigned_read_url)).
    #[serde(default)]
    pub redirect_reads: bool,
    /// Upper bound on the lifetime of a presigned URL, in seconds (at most seven days).
    #[serde(default = "default_redirect_expiry_secs")]
    pub redirect_expiry_secs: u64,
    /// Attempts per request, the first included, before an error is returned (1 to 10). Throttling
    /// and transient errors are retried with exponential backoff.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Seconds allowed to establish a connection to the endpoint.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Accept an object store that ignores conditional writes (`If-None-Match: *`), such as
    /// Garage 2.5. The store then cannot keep an upload session to one writer: two nodes that
    /// are sent chunks of the same session at the same moment can both write it, and the upload
    /// fails at completion (the digest and part checks still keep a wrong blob from being
    /// committed). Off by default: [`S3BlobStore::connect`](crate::S3BlobStore::connect) probes the
    /// store and refuses one without conditional writes.
    #[serde(default)]
    pub allow_unconditional_writes: bool,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_part_size() -> u64 {
    DEFAULT_PART_SIZE
}
fn default_parts_in_flight() -> usize {
    2
}
fn default_copy_part_size() -> u64 {
    MAX_SINGLE_COPY
}
/// Short enough that an upload whose node died mid-request can be resumed elsewhere within
/// seconds (clients retry for longer than that), long enough that the renewal halfway through it
/// is one small record write every 7.5 s and that NTP-synchronised clocks agree well within it.
fn default_upload_lease_secs() -> u64 {
    15
}
fn default_redirect_expiry_secs() -> u64 {
    15 * 60
}
fn default_max_attempts() -> u32 {
    5
}
fn default_connect_timeout_secs() -> u64 {
    5
}

impl S3Config {
    /// Returns a config with the required fields set and every other field at its default.
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        S3Config {
            endpoint: endpoint.into(),
            region: default_region(),
            bucket: bucket.into(),
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            key_prefix: String::new(),
            part_size: default_part_size(),
            parts_in_flight: default_parts_in_flight(),
            copy_part_size: default_copy_part_size(),
            upload_lease_secs: default_upload_lease_secs(),
            redirect_reads: false,
            redirect_expiry_secs: default_redirect_expiry_secs(),
            max_attempts: default_max_attempts(),
            connect_timeout_secs: default_connect_timeout_secs(),
            allow_unconditional_writes: false,
        }
    }

    /// Checks every field; returns a message naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(format!("endpoint {:?} must start with http:// or https://", self.endpoint));
        }
        if !valid_bucket_name(&self.bucket) {
            return Err(format!("bucket {:?} is not a valid S3 bucket name", self.bucket));
        }
        if self.region.is_empty() || self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err("region, access_key_id and secret_access_key must not be empty".to_owned());
        }
        if !valid_key_prefix(&self.key_prefix) {
            return Err(format!(
                "key_prefix {:?} must be `/`-separated non-empty segments of ASCII letters, digits, `.`, `_`, `-`",
                self.key_prefix
            ));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(format!("part_size {} must be between 5 MiB and 5 GiB", self.part_size));
        }
        if !(1..=16).contains(&self.parts_in_flight) {
            return Err(format!("parts_in_flight {} must be between 1 and 16", self.parts_in_flight));
        }
        if !(MIN_PART_SIZE..=MAX_SINGLE_COPY).contains(&self.copy_part_size) {
            return Err(format!("copy_part_size {} must be between 5 MiB and 5 GiB", self.copy_part_size));
        }
        if !(1..=MAX_PRESIGN_SECS).contains(&self.redirect_expiry_secs) {
            return Err(format!("redirect_expiry_secs {} must be between 1 and 604800", self.redirect_expiry_secs));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(format!("max_attempts {} must be between 1 and 10", self.max_attempts));
        }
        if self.connect_timeout_secs == 0 {
            return Err("connect_timeout_secs must be positive".to_owned());
        }
        Ok(())
    }

    /// Returns the upload lease as a duration.
    pub(crate) fn upload_lease(&self) -> Duration {
        Duration::from_secs(self.upload_lease_secs)
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("copy_part_size", &self.copy_part_size)
            .field("upload_lease_secs", &self.upload_lease_secs)
            .field("redirect_reads", &self.redirect_reads)
            .field("redirect_expiry_secs", &self.redirect_expiry_secs)
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

/// Follows the S3 naming rules for new buckets: 3-63 characters of lowercase letters, digits, `.`
/// and `-`, starting and ending with a letter or digit.
fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Restricts the prefix to characters that need no escaping in a URL path or in a `CopySource`
/// header, so keys can be used verbatim everywhere.
fn valid_key_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> S3Config {
        S3Config::new("http://127.0.0.1:9000", "gati-blobs", "key", "secret")
    }

    #[test]
    fn defaults_are_valid_and_toml_fills_them() {
        sample().validate().unwrap();
        let parsed: S3Config = serde_json::from_str(
            r#"{"endpoint":"http://127.0.0.1:9000","bucket":"gati-blobs","access_key_id":"key","secret_access_key":"secret"}"#,
        )
        .unwrap();
        assert_eq!(parsed, sample());
        assert_eq!(parsed.part_size, 8 * 1024 * 1024);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<S3Config>(
            r#"{"endpoint":"http://x","bucket":"b-b","access_key_id":"k","secret_access_key":"s","part_sise":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("part_sise"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        type BreakIt = fn(&mut S3Config);
        let cases: [(BreakIt, &str); 8] = [
            (|c| c.endpoint = "127.0.0.1:9000".into(), "endpoint"),
            (|c| c.bucket = "Has_Upper".into(), "bucket"),
            (|c| c.key_prefix = "a//b".into(), "key_prefix"),
            (|c| c.key_prefix = "../x".into(), "key_prefix"),
            (|c| c.part_size = 1024, "part_size"),
            (|c| c.parts_in_flight = 0, "parts_in_flight"),
            (|c| c.redirect_expiry_secs = 8 * 24 * 3600, "redirect_expiry_secs"),
            (|c| c.copy_part_size = 6 * 1024 * 1024 * 1024, "copy_part_size"),
        ];
        for (break_it, field) in cases {
            let mut config = sample();
            break_it(&mut config);
            let message = config.validate().unwrap_err();
            assert!(message.contains(field), "{message}");
        }
        let mut config = sample();
        config.key_prefix = "tenants/a-1/v2".into();
        config.validate().unwrap();
    }

    #[test]
    fn debug_hides_the_secret() {
        assert!(!format!("{:?}", sample()).contains("secret\""));
        assert!(format!("{:?}", sample()).contains("<redacted>"));
    }
}
