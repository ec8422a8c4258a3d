//! The one mapping from S3 failures to [`BlobError`]s.
//!
//! Every SDK call's error goes through [`S3Failure::from_sdk`], which classifies it once
//! ([`Failure`]) from the S3 error code and HTTP status. Call sites that give a class its meaning
//! in context (a `412` on a conditional record write means another writer owns the session)
//! match on the class; everything else becomes a [`BlobError`] through [`S3Failure::into_blob`],
//! whose kind is what retry policy and the protocol layers branch on.
//!
//! Throttling and transient errors have already been retried by the SDK's standard retry
//! strategy when they get here; they surface as `Throttled` / `Timeout` so callers may retry later.

use std::error::Error as StdError;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use gati_blob::{BlobError, BlobErrorKind};

/// What an S3 failure means, independent of the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The object does not exist (`NoSuchKey`, or a `404` to a HEAD).
    NoSuchKey,
    /// The multipart upload does not exist (aborted, completed, or never created).
    NoSuchUpload,
    /// The bucket does not exist.
    NoSuchBucket,
    /// A conditional request's precondition failed (`412`, or `409 ConditionalRequestConflict`).
    PreconditionFailed,
    /// A `Range` starting at or past the end of the object (`416`).
    InvalidRange,
    /// Credentials refused or not allowed (`403`, bad signature, unknown key).
    Denied,
    /// The service asked us to slow down, even after the SDK's retries.
    Throttled,
    /// No answer in time.
    Timeout,
    /// The network failed, or the service answered with an error not listed here.
    Other,
}

/// Error codes S3 and S3-compatible services use for "slow down"; mirrors the SDK's own
/// throttling classifier, which has already backed off and retried these.
const THROTTLING_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
];

/// A classified S3 failure with its context and source, not yet given a [`BlobErrorKind`].
#[derive(Debug)]
pub(crate) struct S3Failure {
    pub(crate) failure: Failure,
    what: String,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl S3Failure {
    /// Classifies an SDK error; `what` says what was being done ("read blob sha256:...").
    pub(crate) fn from_sdk<E>(what: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let failure = classify(&err);
        S3Failure { failure, what: what.into(), source: Box::new(err) }
    }

    /// Builds a failure that did not come from the SDK (a stream error, a malformed answer).
    pub(crate) fn other(what: impl Into<String>, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        S3Failure { failure: Failure::Other, what: what.into(), source: source.into() }
    }

    /// Turns the failure into a [`BlobError`] with the kind its class has in any context.
    pub(crate) fn into_blob(self) -> BlobError {
        let (kind, note) = match self.failure {
            Failure::NoSuchKey => (BlobErrorKind::NotFound, ""),
            Failure::NoSuchUpload => (BlobErrorKind::UploadUnknown, ": the multipart upload is gone"),
            Failure::NoSuchBucket => (BlobErrorKind::Io, ": the bucket does not exist"),
            Failure::PreconditionFailed => (BlobErrorKind::UploadBusy, ": another writer changed it first"),
            Failure::InvalidRange => (BlobErrorKind::RangeNotSatisfiable, ""),
            Failure::Denied => (BlobErrorKind::Io, ": access denied (check the credentials and bucket policy)"),
            Failure::Throttled => (BlobErrorKind::Throttled, ": the service asked to slow down"),
            Failure::Timeout => (BlobErrorKind::Timeout, ""),
            Failure::Other => (BlobErrorKind::Io, ""),
        };
        BlobError::with_source(kind, format!("{}{note}", self.what), self.source)
    }

    /// Turns the failure into a [`BlobError`] of `kind`, for call sites that know better.
    pub(crate) fn into_blob_as(self, kind: BlobErrorKind, note: &str) -> BlobError {
        BlobError::with_source(kind, format!("{}: {note}", self.what), self.source)
    }
}

fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Failure {
    match err {
        SdkError::TimeoutError(_) => return Failure::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => return Failure::Timeout,
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => return Failure::Other,
        _ => {}
    }
    let code = err.code().unwrap_or_default();
    let status = err.raw_response().map(|response| response.status().as_u16());
    match (code, status) {
        ("NoSuchKey" | "NotFound", _) => Failure::NoSuchKey,
        ("NoSuchUpload", _) => Failure::NoSuchUpload,
        ("NoSuchBucket", _) => Failure::NoSuchBucket,
        ("PreconditionFailed" | "ConditionalRequestConflict", _) | (_, Some(412)) => Failure::PreconditionFailed,
        ("InvalidRange", _) | (_, Some(416)) => Failure::InvalidRange,
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch", _) | (_, Some(401 | 403)) => Failure::Denied,
        (code, _) if THROTTLING_CODES.contains(&code) => Failure::Throttled,
        (_, Some(429 | 503)) => Failure::Throttled,
        ("RequestTimeout" | "RequestTimeoutException", _) | (_, Some(408 | 504)) => Failure::Timeout,
        // A HEAD has no body, so a missing object is a bare 404 without a code.
        (_, Some(404)) => Failure::NoSuchKey,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn service_error(code: Option<&str>, status: u16) -> SdkError<GetObjectError, HttpResponse> {
        let mut metadata = ErrorMetadata::builder();
        if let Some(code) = code {
            metadata = metadata.code(code);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(metadata.build()), raw)
    }

    #[test]
    fn classifies_by_code_then_status() {
        let cases = [
            (Some("NoSuchKey"), 404, Failure::NoSuchKey),
            (None, 404, Failure::NoSuchKey),
            (Some("NoSuchUpload"), 404, Failure::NoSuchUpload),
            (Some("NoSuchBucket"), 404, Failure::NoSuchBucket),
            (Some("PreconditionFailed"), 412, Failure::PreconditionFailed),
            (None, 412, Failure::PreconditionFailed),
            (Some("ConditionalRequestConflict"), 409, Failure::PreconditionFailed),
            (Some("InvalidRange"), 416, Failure::InvalidRange),
            (Some("SignatureDoesNotMatch"), 403, Failure::Denied),
            (None, 403, Failure::Denied),
            (Some("SlowDown"), 503, Failure::Throttled),
            (None, 503, Failure::Throttled),
            (Some("TooManyRequestsException"), 400, Failure::Throttled),
            (Some("RequestTimeout"), 400, Failure::Timeout),
            (Some("InternalError"), 500, Failure::Other),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify(&service_error(code, status)), want, "{code:?} {status}");
        }
    }

    #[test]
    fn kinds_follow_classes() {
        let cases = [
            (Failure::NoSuchKey, BlobErrorKind::NotFound),
            (Failure::NoSuchUpload, BlobErrorKind::UploadUnknown),
            (Failure::NoSuchBucket, BlobErrorKind::Io),
            (Failure::PreconditionFailed, BlobErrorKind::UploadBusy),
            (Failure::InvalidRange, BlobErrorKind::RangeNotSatisfiable),
            (Failure::Denied, BlobErrorKind::Io),
            (Failure::Throttled, BlobErrorKind::Throttled),
            (Failure::Timeout, BlobErrorKind::Timeout),
            (Failure::Other, BlobErrorKind::Io),
        ];
        for (failure, kind) in cases {
            let err = S3Failure { failure, what: "do a thing".into(), source: "boom".into() };
            let blob = err.into_blob();
            assert_eq!(blob.kind(), kind, "{failure:?}");
            assert!(blob.message().starts_with("do a thing"), "{blob}");
            assert_eq!(StdError::source(&blob).map(ToString::to_string).as_deref(), Some("boom"));
        }
    }
}
