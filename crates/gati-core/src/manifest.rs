//! Parsing and validation of OCI image manifests and indexes and their Docker schema 2
//! equivalents.
//!
//! The bytes a client pushes are stored exactly as sent (their digest is the manifest's identity);
//! this module only reads them to learn what they reference, so the registry can refuse manifests
//! that point at content it does not hold and can index `subject` for the referrers API.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{CoreError, Result};
use crate::media_type::{self, ManifestKind, MediaType};

/// The largest manifest the registry accepts (the OCI distribution spec's recommended floor).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor, as found in a manifest's `config`, `layers`, `manifests` and `subject`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: MediaType,
    /// The referenced content's digest.
    pub digest: Digest,
    /// The referenced content's size in bytes.
    pub size: u64,
    /// The artifact type, for descriptors of artifacts.
    pub artifact_type: Option<MediaType>,
    /// Free-form annotations.
    pub annotations: BTreeMap<String, String>,
    /// Alternate locations; content with URLs (foreign layers) need not be in this registry.
    pub urls: Vec<String>,
}

/// What a manifest says, reduced to what the registry needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The format of the manifest.
    pub kind: ManifestKind,
    /// The config blob of an image manifest.
    pub config: Option<Descriptor>,
    /// The layer blobs of an image manifest.
    pub layers: Vec<Descriptor>,
    /// The child manifests of an index.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 `subject`).
    pub subject: Option<Descriptor>,
    /// The top-level `artifactType`.
    pub artifact_type: Option<MediaType>,
    /// The top-level annotations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::ManifestInvalid(msg.into())
}

fn descriptor(raw: RawDescriptor, field: &str) -> Result<Descriptor> {
    let media_type = raw
        .media_type
        .ok_or_else(|| invalid(format!("{field}: descriptor without mediaType")))?
        .parse()
        .map_err(|e| invalid(format!("{field}: {e}")))?;
    let digest = raw.digest.parse().map_err(|e| invalid(format!("{field}: {e}")))?;
    let size = u64::try_from(raw.size).map_err(|_| invalid(format!("{field}: negative size")))?;
    let artifact_type = artifact_type(raw.artifact_type).map_err(|e| invalid(format!("{field}: {e}")))?;
    Ok(Descriptor { media_type, digest, size, artifact_type, annotations: raw.annotations, urls: raw.urls })
}

/// Parses an `artifactType`; an empty string means none (OCI distribution spec 1.1, "Listing
/// Referrers": "if the artifactType is empty or missing").
fn artifact_type(raw: Option<String>) -> Result<Option<MediaType>> {
    raw.filter(|a| !a.is_empty()).map(|a| a.parse()).transpose()
}

fn descriptors(raw: Vec<RawDescriptor>, field: &str) -> Result<Vec<Descriptor>> {
    raw.into_iter().enumerate().map(|(i, d)| descriptor(d, &format!("{field}[{i}]"))).collect()
}

fn refuse_schema1(media_type: &str) -> Result<()> {
    if media_type == media_type::DOCKER_SCHEMA1 || media_type == media_type::DOCKER_SCHEMA1_SIGNED {
        return Err(CoreError::ManifestUnsupported(media_type.to_owned()));
    }
    Ok(())
}

/// Parses and validates a pushed manifest.
///
/// `content_type` is the request's `Content-Type` without parameters. When it names a manifest
/// format it decides the kind, and a `mediaType` field in the body must agree with it; otherwise the
/// body's `mediaType` decides, and failing that the shape (`manifests` makes an index).
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest> {
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(invalid(format!("manifest exceeds {MAX_MANIFEST_BYTES} bytes")));
    }
    if let Some(ct) = content_type {
        refuse_schema1(ct)?;
    }
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    if let Some(mt) = raw.media_type.as_deref() {
        refuse_schema1(mt)?;
    }
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let header_kind = content_type.and_then(ManifestKind::from_media_type);
    let body_kind = match raw.media_type.as_deref() {
        Some(mt) => {
            Some(ManifestKind::from_media_type(mt).ok_or_else(|| CoreError::ManifestUnsupported(mt.to_owned()))?)
        }
        None => None,
    };
    let kind = match (header_kind, body_kind) {
        (Some(h), Some(b)) if h != b => {
            return Err(invalid(format!(
                "mediaType {} does not match Content-Type {}",
                b.media_type(),
                h.media_type()
            )));
        }
        (Some(h), _) => h,
        (None, Some(b)) => b,
        (None, None) if raw.manifests.is_some() => ManifestKind::OciIndex,
        (None, None) if raw.config.is_some() => ManifestKind::OciManifest,
        (None, None) => match content_type {
            Some(ct) => return Err(CoreError::ManifestUnsupported(ct.to_owned())),
            None => return Err(invalid("cannot tell the manifest's media type")),
        },
    };

    let artifact_type = artifact_type(raw.artifact_type).map_err(|e| invalid(format!("artifactType: {e}")))?;
    let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;

    let (config, layers, manifests) = if kind.is_index() {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(invalid("an index must not have config or layers"));
        }
        // A missing or null list is an empty one: Go clients serialise empty slices as null.
        (None, Vec::new(), descriptors(raw.manifests.unwrap_or_default(), "manifests")?)
    } else {
        if raw.manifests.is_some() {
            return Err(invalid("an image manifest must not have manifests"));
        }
        let config = raw.config.ok_or_else(|| invalid("an image manifest needs a config"))?;
        // Layer-less images exist (and Go clients write an empty list as null): none is empty.
        let layers = raw.layers.unwrap_or_default();
        (Some(descriptor(config, "config")?), descriptors(layers, "layers")?, Vec::new())
    };
    Ok(ParsedManifest { kind, config, layers, manifests, subject, artifact_type, annotations: raw.annotations })
}

impl ParsedManifest {
    /// What the state machine records about this manifest, whose exact bytes have `digest` and
    /// are `size` long.
    pub fn into_record(self, digest: Digest, size: u64) -> Result<crate::command::ManifestRecord> {
        Ok(crate::command::ManifestRecord {
            digest,
            kind: self.kind,
            media_type: self.kind.media_type().parse()?,
            size,
            blobs: self.required_blobs(),
            manifests: self.required_manifests(),
            subject: self.subject.as_ref().map(|s| s.digest.clone()),
            artifact_type: self.referrer_artifact_type(),
            annotations: self.annotations,
        })
    }

    /// Returns the blobs that must already be in the repository: the config and every layer that
    /// is not a foreign layer (one with `urls`, served from elsewhere).
    pub fn required_blobs(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self
            .config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_empty()))
            .map(|d| d.digest.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Returns the child manifests that must already be in the repository.
    pub fn required_manifests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self.manifests.iter().map(|d| d.digest.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Returns the artifact type the referrers API reports: `artifactType`, else the config's
    /// media type (OCI distribution spec 1.1, "Listing Referrers").
    pub fn referrer_artifact_type(&self) -> Option<MediaType> {
        self.artifact_type.clone().or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":7}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":42}},
                      {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":1,"urls":["https://example.invalid/x"]}}]{extra}}}"#,
            media_type::OCI_MANIFEST,
            d('a'),
            d('b'),
            d('c')
        )
    }

    #[test]
    fn parses_image_manifest_and_lists_local_blobs() {
        let m = parse_manifest(Some(media_type::OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        let want: Vec<Digest> = vec![d('a').parse().unwrap(), d('b').parse().unwrap()];
        assert_eq!(m.required_blobs(), want);
        assert_eq!(m.referrer_artifact_type().unwrap().as_str(), "application/vnd.oci.image.config.v1+json");
    }

    #[test]
    fn subject_and_artifact_type_are_read() {
        let extra = format!(
            r#","artifactType":"application/vnd.example.sbom","subject":{{"mediaType":"{}","digest":"{}","size":10}}"#,
            media_type::OCI_MANIFEST,
            d('e')
        );
        let m = parse_manifest(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(m.subject.as_ref().unwrap().digest, d('e').parse().unwrap());
        assert_eq!(m.referrer_artifact_type().unwrap().as_str(), "application/vnd.example.sbom");
    }

    #[test]
    fn parses_index_without_media_type_by_shape() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_type::OCI_MANIFEST,
            d('f')
        );
        let m = parse_manifest(None, body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert_eq!(m.required_manifests(), vec![d('f').parse().unwrap()]);
        assert!(m.required_blobs().is_empty());
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases: Vec<(Option<&str>, String)> = vec![
            (None, "not json".into()),
            (None, "{}".into()),
            (None, r#"{"schemaVersion":1}"#.into()),
            (Some(media_type::OCI_INDEX), image("")),
            (Some(media_type::DOCKER_SCHEMA1_SIGNED), image("")),
            (None, image("").replace(&d('b'), "sha256:nothex")),
            (None, image("").replace("\"size\":42", "\"size\":-1")),
            (None, image("").replace(r#""config":"#, r#""manifests":[],"config":"#)),
            (None, r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.into()),
            (None, image("").replace(r#""size":7"#, r#""size":7,"artifactType":"not a media type""#)),
            (None, "x".repeat(MAX_MANIFEST_BYTES + 1)),
        ];
        for (ct, body) in cases {
            assert!(parse_manifest(ct, body.as_bytes()).is_err(), "{ct:?} {}", &body[..body.len().min(120)]);
        }
    }

    #[test]
    fn null_or_missing_lists_are_empty_and_empty_artifact_type_is_none() {
        let config = format!(
            r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}}"#,
            d('a')
        );
        for body in [
            format!(r#"{{"schemaVersion":2,"mediaType":"{}",{config}}}"#, media_type::OCI_MANIFEST),
            format!(r#"{{"schemaVersion":2,"mediaType":"{}",{config},"layers":null}}"#, media_type::OCI_MANIFEST),
            format!(r#"{{"schemaVersion":2,{config},"layers":[],"artifactType":""}}"#),
        ] {
            let m = parse_manifest(None, body.as_bytes()).unwrap();
            assert!(m.layers.is_empty() && m.artifact_type.is_none(), "{body}");
        }
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":null}}"#, media_type::OCI_INDEX);
        assert!(parse_manifest(None, index.as_bytes()).unwrap().manifests.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_manifest(None, &body);
            let _ = parse_manifest(Some(media_type::OCI_INDEX), &body);
        }
    }
}
