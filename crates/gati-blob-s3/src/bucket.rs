//! [`Bucket`]: the SDK client bound to one bucket, and the only module that calls `aws-sdk-s3`.
//!
//! Owns client construction (static credentials, path-style addressing, the standard retry
//! strategy with backoff on throttling, timeouts) and one small method per S3 operation the
//! backend uses, each returning an [`S3Failure`] already classified by `error.rs`. Knows nothing
//! about blobs or sessions: callers pass keys from `keys.rs`.
//!
//! `ETags` are kept exactly as the service returned them (quoted), because that is the form the
//! conditional headers (`If-Match`, `x-amz-copy-source-if-match`) compare against.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use crate::config::S3Config;
use crate::error::{Failure, S3Failure};

/// Result of one S3 operation.
pub(crate) type S3Result<T> = Result<T, S3Failure>;

/// What a `PutObject` requires of the key's current state.
#[derive(Clone, Debug)]
pub(crate) enum PutCondition {
    /// Write whatever is there.
    Always,
    /// Write only if no object exists (`If-None-Match: *`).
    IfAbsent,
    /// Write only if the object has this `ETag` (`If-Match`), i.e. nobody changed it since we read it.
    IfMatch(String),
}

/// An object opened for reading.
pub(crate) struct ObjectRead {
    /// Size of the whole object.
    pub(crate) size_total: u64,
    /// The inclusive range being returned, as the service reported it; `None` for the whole object.
    pub(crate) range: Option<(u64, u64)>,
    pub(crate) etag: Option<String>,
    pub(crate) body: SdkByteStream,
}

/// One listed object.
pub(crate) struct Listed {
    pub(crate) key: String,
}

/// The client and the bucket every call goes to.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    client: Client,
    name: String,
    endpoint: String,
}

impl Bucket {
    /// Builds the client; makes no request.
    pub(crate) fn new(config: &S3Config) -> Self {
        let credentials =
            Credentials::new(&config.access_key_id, &config.secret_access_key, None, None, "gati-registry-config");
        // Standard mode backs off exponentially with jitter and treats throttling errors (SlowDown,
        // 503) specially: they are retried with a longer backoff and drain the retry budget more
        // slowly than other failures, so a throttled bucket is not hammered.
        let retry = RetryConfig::standard()
            .with_max_attempts(config.max_attempts)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(20));
        // No overall operation timeout: a 5 GiB part legitimately takes long. Stalled transfers are
        // caught by the SDK's stalled-stream protection, which the behaviour version enables.
        let timeouts =
            TimeoutConfig::builder().connect_timeout(Duration::from_secs(config.connect_timeout_secs)).build();
        let sdk_config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&config.endpoint)
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(true)
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        Bucket { client: Client::from_conf(sdk_config), name: config.bucket.clone(), endpoint: config.endpoint.clone() }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Checks that the bucket exists and the credentials may use it.
    pub(crate) async fn head_bucket(&self) -> S3Result<()> {
        let what = || format!("check bucket {:?} at {}", self.name, self.endpoint);
        match self.client.head_bucket().bucket(&self.name).send().await {
            Ok(_) => Ok(()),
            // HeadBucket has no body, so a missing bucket is a bare 404.
            Err(e) => {
                let mut failure = S3Failure::from_sdk(what(), e);
                if failure.failure == Failure::NoSuchKey {
                    failure.failure = Failure::NoSuchBucket;
                }
                Err(failure)
            }
        }
    }

    /// Returns the size and `ETag` of an object, or `None` if there is none.
    pub(crate) async fn head(&self, key: &str) -> S3Result<Option<(u64, Option<String>)>> {
        match self.client.head_object().bucket(&self.name).key(key).send().await {
            Ok(out) => Ok(Some((length(out.content_length()), out.e_tag().map(str::to_owned)))),
            Err(e) => {
                let failure = S3Failure::from_sdk(format!("stat {key}"), e);
                if failure.failure == Failure::NoSuchKey { Ok(None) } else { Err(failure) }
            }
        }
    }

    /// Opens an object, or the inclusive byte range `(start, end)` of it (the service clamps
    /// `end` to the last byte).
    pub(crate) async fn get(&self, key: &str, range: Option<(u64, u64)>) -> S3Result<ObjectRead> {
        let mut request = self.client.get_object().bucket(&self.name).key(key);
        if let Some((start, end)) = range {
            // An end no object can reach means "to the end"; say so, since some services cannot
            // parse numbers that large.
            let end = if end >= i64::MAX as u64 { String::new() } else { end.to_string() };
            request = request.range(format!("bytes={start}-{end}"));
        }
        let out = request.send().await.map_err(|e| S3Failure::from_sdk(format!("read {key}"), e))?;
        let content_length = length(out.content_length());
        let (size_total, served) = match (range, out.content_range()) {
            (Some(_), Some(header)) => {
                let (start, end, total) = parse_content_range(header)
                    .ok_or_else(|| S3Failure::other(format!("read {key}"), format!("bad Content-Range {header:?}")))?;
                (total, Some((start, end)))
            }
            // A service may ignore a range covering the whole object and answer 200.
            _ => (content_length, None),
        };
        Ok(ObjectRead { size_total, range: served, etag: out.e_tag().map(str::to_owned), body: out.body })
    }

    /// Reads a small object whole; `None` if it does not exist. Returns its bytes and `ETag`.
    ///
    /// A body cut short is read again (a few times): the SDK retries failed requests but not a
    /// response whose body breaks off, which happens on flaky links and, with some S3-compatible
    /// servers, when the object is replaced while it is being read.
    pub(crate) async fn get_small(&self, key: &str) -> S3Result<Option<(Bytes, Option<String>)>> {
        const ATTEMPTS: u32 = 4;
        let mut attempt = 1;
        loop {
            let read = match self.get(key, None).await {
                Ok(read) => read,
                Err(failure) if failure.failure == Failure::NoSuchKey => return Ok(None),
                Err(failure) => return Err(failure),
            };
            match read.body.collect().await {
                Ok(bytes) => return Ok(Some((bytes.into_bytes(), read.etag))),
                Err(e) if attempt >= ATTEMPTS => return Err(S3Failure::other(format!("read {key}"), e)),
                Err(e) => {
                    tracing::debug!(key, attempt, error = %e, "small object body broke off; reading it again");
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Writes an object in one request under `condition`; returns its `ETag`.
    pub(crate) async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> S3Result<String> {
        let mut request = self.client.put_object().bucket(&self.name).key(key).body(SdkByteStream::from(body));
        request = match condition {
            PutCondition::Always => request,
            PutCondition::IfAbsent => request.if_none_match("*"),
            PutCondition::IfMatch(etag) => request.if_match(etag),
        };
        let out = request.send().await.map_err(|e| S3Failure::from_sdk(format!("write {key}"), e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Deletes an object; succeeds when there is none.
    pub(crate) async fn delete(&self, key: &str) -> S3Result<()> {
        match self.client.delete_object().bucket(&self.name).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = S3Failure::from_sdk(format!("delete {key}"), e);
                if failure.failure == Failure::NoSuchKey { Ok(()) } else { Err(failure) }
            }
        }
    }

    /// Lists every key starting with `prefix`, following continuation tokens.
    pub(crate) async fn list(&self, prefix: &str) -> S3Result<Vec<Listed>> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| S3Failure::from_sdk(format!("list {prefix}"), e))?;
            listed.extend(out.contents().iter().filter_map(|o| o.key()).map(|key| Listed { key: key.to_owned() }));
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(listed),
            }
        }
    }

    /// Starts a multipart upload to `key`; returns its upload id.
    pub(crate) async fn create_multipart(&self, key: &str) -> S3Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(format!("start multipart upload of {key}"), e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| S3Failure::other(format!("start multipart upload of {key}"), "no upload id in the answer"))
    }

    /// Uploads part `number` of a multipart upload; returns its `ETag`. The body is one contiguous
    /// buffer so the SDK can resend it when it retries.
    pub(crate) async fn upload_part(&self, key: &str, upload_id: &str, number: i32, body: Bytes) -> S3Result<String> {
        let what = || format!("upload part {number} of {key}");
        let out = self
            .client
            .upload_part()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(SdkByteStream::from(body))
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(what(), e))?;
        out.e_tag().map(str::to_owned).ok_or_else(|| S3Failure::other(what(), "no ETag in the answer"))
    }

    /// Copies the inclusive byte range `(start, end)` of `source_key`, only if it still has
    /// `ETag` `source_etag`, as part `number` of a multipart upload; returns the part's `ETag`.
    pub(crate) async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source_key: &str,
        source_etag: &str,
        (start, end): (u64, u64),
    ) -> S3Result<String> {
        let what = || format!("copy part {number} of {source_key} to {key}");
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(self.copy_source(source_key))
            .copy_source_if_match(source_etag)
            .copy_source_range(format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(what(), e))?;
        out.copy_part_result()
            .and_then(|r| r.e_tag())
            .map(str::to_owned)
            .ok_or_else(|| S3Failure::other(what(), "no ETag in the answer"))
    }

    /// Completes a multipart upload from exactly `parts` (`(number, etag)`, ascending); returns
    /// the `ETag` of the object it created.
    pub(crate) async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: impl IntoIterator<Item = (i32, String)>,
    ) -> S3Result<String> {
        let parts = parts
            .into_iter()
            .map(|(number, etag)| CompletedPart::builder().part_number(number).e_tag(etag).build())
            .collect();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(format!("complete multipart upload of {key}"), e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    /// Aborts a multipart upload; succeeds when it is already gone.
    pub(crate) async fn abort_multipart(&self, key: &str, upload_id: &str) -> S3Result<()> {
        match self.client.abort_multipart_upload().bucket(&self.name).key(key).upload_id(upload_id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = S3Failure::from_sdk(format!("abort multipart upload of {key}"), e);
                if failure.failure == Failure::NoSuchUpload { Ok(()) } else { Err(failure) }
            }
        }
    }

    /// Copies `source_key`, only if it still has `ETag` `source_etag`, to `key` unless `key`
    /// exists. Either condition failing is a [`Failure::PreconditionFailed`]; the caller tells
    /// them apart by looking at `key`.
    pub(crate) async fn copy_if_absent(&self, source_key: &str, source_etag: &str, key: &str) -> S3Result<()> {
        self.client
            .copy_object()
            .bucket(&self.name)
            .key(key)
            .copy_source(self.copy_source(source_key))
            .copy_source_if_match(source_etag)
            .if_none_match("*")
            .send()
            .await
            .map(drop)
            .map_err(|e| S3Failure::from_sdk(format!("copy {source_key} to {key}"), e))
    }

    /// Returns a URL that lets anyone holding it GET `key` until `expires_in` has passed.
    pub(crate) async fn presign_get(&self, key: &str, expires_in: Duration) -> S3Result<String> {
        let what = || format!("presign a read of {key}");
        let presigning = PresigningConfig::expires_in(expires_in).map_err(|e| S3Failure::other(what(), e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| S3Failure::from_sdk(what(), e))?;
        Ok(request.uri().to_owned())
    }

    /// Formats the `x-amz-copy-source` value. Keys hold only URL-safe characters (the config
    /// validates the prefix; the rest is hex and fixed names), so no escaping is needed.
    fn copy_source(&self, key: &str) -> String {
        format!("{}/{key}", self.name)
    }
}

/// Sizes come back as `i64`; a missing or negative one means an empty body.
fn length(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// Parses `bytes <start>-<end>/<total>` (RFC 9110 §14.4).
fn parse_content_range(header: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end, total) = (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (start <= end && end < total).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes 5-99/100"), Some((5, 99, 100)));
        for bad in ["bytes 5-4/100", "bytes 0-100/100", "bytes */100", "items 0-1/2", "bytes 0-1", ""] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
