//! The published document of an artifact (`gati.json`), its parsing and its validation.
//!
//! The document is stored byte for byte as the OCI config blob, so what a publisher wrote is what
//! every consumer reads back. Validation never rewrites it: it parses a typed view, checks it, and
//! reports every problem with the path of the field at fault (`manifest.config.skillGraph`), so
//! that a publisher can fix them all in one go.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::config;
use super::config::TypedConfig;
use super::kind::ArtifactKind;
use super::names::{ArtifactRef, ArtifactVersion, artifact_repo, strip_host};
use super::rules;
use crate::name::RepoName;
use crate::version_range::VersionRange;

/// The largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The most files an artifact may hold.
pub const MAX_FILES: usize = 10_000;

/// One problem with a document: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's path from the document's root (`manifest.dependencies[0].version`); empty for
    /// the document as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.field, self.message) }
    }
}

/// One file of an artifact, as listed in the document's `contents` and stored as one layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// The file's path inside the artifact (`dist/index.js`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its SHA-512, lowercase hex.
    pub sha512: String,
}

/// Checksums of the artifact as a whole: of its `contents` listing in `sha256sum` / `sha512sum`
/// format (see [`sums_listing`]), so one pair of values pins every file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// SHA-256 of the sha256sum listing, lowercase hex.
    pub sha256: String,
    /// SHA-512 of the sha512sum listing, lowercase hex.
    pub sha512: Option<String>,
}

/// Where and how the artifact was built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The source repository.
    pub repo: Option<String>,
    /// The source commit.
    pub commit: Option<String>,
    /// When it was built (RFC 3339).
    pub build_timestamp: Option<String>,
    /// What built it (`gati-cli/1.0.0`).
    pub builder: Option<String>,
}

/// A dependency as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DependencySpec {
    pub(crate) name: String,
    pub(crate) version: String,
}

/// A GType: a named record type the artifact exposes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct GTypeSpec {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) fields: BTreeMap<String, String>,
}

/// The document's author: a name, or a name with contact details.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Author {
    Name(String),
    Person { name: String, email: Option<String>, url: Option<String> },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimescapeEntry {
    pub(crate) version: String,
    pub(crate) timestamp: String,
    pub(crate) gtype_hash: Option<String>,
    #[serde(default)]
    pub(crate) parent_versions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Timescape {
    #[serde(default)]
    pub(crate) version_graph: Vec<TimescapeEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModelCard {
    pub(crate) dataset: Option<String>,
    pub(crate) accuracy: Option<f64>,
    pub(crate) f1_score: Option<f64>,
    pub(crate) precision: Option<f64>,
    pub(crate) recall: Option<f64>,
    pub(crate) training_date: Option<String>,
    pub(crate) intended_use: Option<String>,
    pub(crate) limitations: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Benchmarks {
    pub(crate) inference_time: Option<String>,
    pub(crate) memory_usage: Option<String>,
    pub(crate) throughput: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FieldChanges {
    #[serde(default)]
    pub(crate) added: Vec<String>,
    #[serde(default)]
    pub(crate) removed: Vec<String>,
    #[serde(default)]
    pub(crate) renamed: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Transformation {
    #[serde(rename = "type")]
    pub(crate) gtype: String,
    pub(crate) changes: FieldChanges,
}

/// The `manifest` object: what the artifact is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) author: Option<Author>,
    pub(crate) license: Option<String>,
    #[serde(default)]
    pub(crate) keywords: Vec<String>,
    pub(crate) config: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) dependencies: Vec<DependencySpec>,
    #[serde(default)]
    pub(crate) gtypes: Vec<GTypeSpec>,
    #[serde(default)]
    pub(crate) capabilities: Vec<String>,
    pub(crate) permissions: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) timescape: Option<Timescape>,
    pub(crate) model_card: Option<ModelCard>,
    pub(crate) benchmarks: Option<Benchmarks>,
    #[serde(default)]
    pub(crate) required_modules: Vec<String>,
    #[serde(default)]
    pub(crate) files: Vec<String>,
    pub(crate) from_artifact: Option<String>,
    pub(crate) from_version: Option<String>,
    pub(crate) to_version: Option<String>,
    #[serde(default)]
    pub(crate) transformations: Vec<Transformation>,
}

/// The whole published document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawDocument {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) namespace: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) manifest: Manifest,
    pub(crate) signature: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) checksums: Option<Checksums>,
    #[serde(default)]
    pub(crate) contents: Vec<FileEntry>,
    pub(crate) provenance: Option<Provenance>,
    pub(crate) billing: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A dependency, resolved to a repository and a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The artifact depended on.
    pub repo: RepoName,
    /// The versions accepted.
    pub range: VersionRange,
    /// The field it came from, for error messages.
    pub field: String,
}

/// An artifact that a document refers to and that must exist for it to be published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredArtifact {
    /// The reference.
    pub reference: ArtifactRef,
    /// The kinds it may be; empty means any.
    pub kinds: Vec<ArtifactKind>,
    /// The field it came from, for error messages.
    pub field: String,
}

/// A document that passed every check that needs no registry state.
#[derive(Clone, Debug)]
pub struct ValidatedDocument {
    /// The artifact (`namespace/name`).
    pub repo: RepoName,
    /// The version published.
    pub version: ArtifactVersion,
    /// The artifact's type.
    pub kind: ArtifactKind,
    /// The one-line description.
    pub description: String,
    /// The license expression.
    pub license: Option<String>,
    /// Keywords.
    pub keywords: Vec<String>,
    /// The type-specific config.
    pub config: Option<TypedConfig>,
    /// Dependencies with their ranges.
    pub dependencies: Vec<Dependency>,
    /// Artifacts that must already exist (an agent's models, a plugin's modules).
    pub required: Vec<RequiredArtifact>,
    /// The files.
    pub contents: Vec<FileEntry>,
    /// The whole-artifact checksums, if given.
    pub checksums: Option<Checksums>,
}

/// The document as published, with its validated view.
#[derive(Clone, Debug)]
pub struct ArtifactDocument {
    /// The exact bytes, as stored and served.
    pub bytes: Vec<u8>,
    /// The checked view.
    pub view: ValidatedDocument,
}

impl ArtifactDocument {
    /// Parses and checks a document; every problem found is reported.
    pub fn parse(bytes: &[u8]) -> Result<ArtifactDocument, Vec<FieldError>> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(vec![FieldError::new("", format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"))]);
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| vec![FieldError::new("", format!("not valid JSON: {e}"))])?;
        if !value.is_object() {
            return Err(vec![FieldError::new("", "the document must be a JSON object")]);
        }
        // The type is checked first: every other rule depends on it, and "unknown type" is a
        // clearer message than the shape errors a wrong type would cause.
        let kind = match value.get("type") {
            None => return Err(vec![FieldError::new("type", "missing; one of ".to_owned() + &kinds_list())]),
            Some(serde_json::Value::String(s)) => s
                .parse::<ArtifactKind>()
                .map_err(|_| vec![FieldError::new("type", format!("unknown type {s:?}; one of {}", kinds_list()))])?,
            Some(_) => return Err(vec![FieldError::new("type", "must be a string")]),
        };
        let raw: RawDocument = serde_path_to_error::deserialize(&value).map_err(|e| {
            let field = e.path().to_string();
            vec![FieldError::new(if field == "." { String::new() } else { field }, e.into_inner().to_string())]
        })?;
        let view = rules::check(kind, &raw)?;
        Ok(ArtifactDocument { bytes: bytes.to_vec(), view })
    }
}

fn kinds_list() -> String {
    ArtifactKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
}

/// Parses the `namespace` + `name` of a document into the artifact's repository.
pub(crate) fn repo_of(namespace: &str, name: &str) -> Result<RepoName, String> {
    let ns = strip_host(namespace.trim_end_matches('/'));
    artifact_repo(&format!("{ns}/{name}")).map_err(|e| e.to_string())
}

/// The `sha256sum`-style listing of `contents` for `algorithm` (`sha256` or `sha512`): one
/// `<hex>  <path>` line per file, sorted by path. The whole-artifact checksums hash this text.
pub fn sums_listing(contents: &[FileEntry], algorithm: &str) -> String {
    let mut sorted: Vec<&FileEntry> = contents.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for f in sorted {
        let hex = if algorithm == "sha512" { &f.sha512 } else { &f.sha256 };
        out.push_str(hex);
        out.push_str("  ");
        out.push_str(&f.path);
        out.push('\n');
    }
    out
}

/// Checks a file path inside an artifact: relative, `/`-separated, no empty, `.` or `..`
/// component, no backslash or control character, at most 1024 bytes.
pub fn file_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() || path.len() > 1024 {
        return Some("a file path is 1 to 1024 bytes");
    }
    if path.starts_with('/') {
        return Some("a file path is relative");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Some("a file path has no backslash or control character");
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Some("a file path has no empty, '.' or '..' component");
    }
    None
}

pub(crate) fn unique_paths(contents: &[FileEntry]) -> BTreeSet<&str> {
    contents.iter().map(|f| f.path.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: [(&str, &str); 6] = [
        ("user-auth", include_str!("../../../../examples/artifacts/user-auth.json")),
        ("postgres-adapter", include_str!("../../../../examples/artifacts/postgres-adapter.json")),
        ("sentiment-analyzer", include_str!("../../../../examples/artifacts/sentiment-analyzer.json")),
        ("code-reviewer", include_str!("../../../../examples/artifacts/code-reviewer.json")),
        ("nextjs-gati-starter", include_str!("../../../../examples/artifacts/nextjs-gati-starter.json")),
        ("user-auth-v1-to-v2", include_str!("../../../../examples/artifacts/user-auth-v1-to-v2.json")),
    ];

    fn file(path: &str) -> serde_json::Value {
        serde_json::json!({"path": path, "size": 1, "sha256": "a".repeat(64), "sha512": "b".repeat(128)})
    }

    /// An example with the files its config names listed in `contents`, as `gati publish` does.
    fn with_files(text: &str) -> serde_json::Value {
        let mut doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let contents: Vec<_> = ["user-auth.wasm", "dist/index.js", "sentiment-bert.onnx", "agent.wasm", "package.json"]
            .into_iter()
            .map(file)
            .collect();
        doc["contents"] = contents.into();
        doc
    }

    fn parse(doc: &serde_json::Value) -> Result<ArtifactDocument, Vec<FieldError>> {
        ArtifactDocument::parse(&serde_json::to_vec(doc).unwrap())
    }

    fn fields(doc: &serde_json::Value) -> Vec<String> {
        parse(doc).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn every_example_is_valid_and_read_as_its_type() {
        for (name, text) in EXAMPLES {
            let doc = parse(&with_files(text)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(doc.view.repo.as_str().rsplit('/').next(), Some(name));
            assert!(!doc.view.repo.as_str().starts_with("gati.dev"), "the host is dropped");
        }
        let agent = parse(&with_files(EXAMPLES[3].1)).unwrap().view;
        assert_eq!(agent.kind, ArtifactKind::Agent);
        let models: Vec<_> = agent.required.iter().map(|r| r.reference.repo.to_string()).collect();
        assert_eq!(models, ["users/openai/gpt-4", "users/ml-researcher/code-embeddings"]);
        let module = parse(&with_files(EXAMPLES[0].1)).unwrap().view;
        assert_eq!(module.dependencies[0].repo.as_str(), "users/krishna/crypto-utils");
        assert_eq!(module.dependencies[0].range.as_str(), "^1.0.0");
        let plugin = parse(&with_files(EXAMPLES[1].1)).unwrap().view;
        assert_eq!(plugin.required[0].reference.repo.as_str(), "orgs/gati-official/database-core");
    }

    #[test]
    fn the_bytes_are_kept_exactly() {
        let text = serde_json::to_string_pretty(&with_files(EXAMPLES[0].1)).unwrap() + "\n";
        let doc = ArtifactDocument::parse(text.as_bytes()).unwrap();
        assert_eq!(doc.bytes, text.as_bytes());
    }

    #[test]
    fn a_cyclic_skill_graph_is_refused_with_the_cycle() {
        let mut doc = with_files(EXAMPLES[3].1);
        doc["manifest"]["config"]["skillGraph"]["dependencies"]["analyze-code"] = serde_json::json!(["generate-tests"]);
        let errors = parse(&doc).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].field.starts_with("manifest.config.skillGraph.dependencies."), "{errors:?}");
        assert!(errors[0].message.contains("analyze-code -> generate-tests -> analyze-code"), "{errors:?}");
        doc["manifest"]["config"]["skillGraph"]["dependencies"]["analyze-code"] = serde_json::json!(["nope"]);
        assert_eq!(fields(&doc), ["manifest.config.skillGraph.dependencies.analyze-code[0]"]);
    }

    #[test]
    fn an_unknown_type_is_refused_at_type() {
        let mut doc = with_files(EXAMPLES[0].1);
        doc["type"] = "module-rust".into();
        let errors = parse(&doc).unwrap_err();
        assert_eq!(errors[0].field, "type");
        assert!(errors[0].message.contains("module-wasm"), "the message lists the types");
    }

    #[test]
    fn a_bad_range_and_schema_violations_name_their_field() {
        let mut doc = with_files(EXAMPLES[0].1);
        doc["manifest"]["dependencies"][0]["version"] = "^^1".into();
        assert_eq!(fields(&doc), ["manifest.dependencies[0].version"]);

        let mut doc = with_files(EXAMPLES[2].1);
        doc["manifest"]["config"]["inputShape"] = serde_json::json!([1, "512"]);
        assert_eq!(fields(&doc), ["manifest.config.inputShape[1]"]);
        doc["manifest"]["config"]["inputShape"] = serde_json::json!([1, 0]);
        assert_eq!(fields(&doc), ["manifest.config.inputShape[1]"]);

        let mut doc = with_files(EXAMPLES[2].1);
        doc["manifest"]["config"].as_object_mut().unwrap().remove("modelFile");
        let errors = parse(&doc).unwrap_err();
        assert_eq!(errors[0].field, "manifest.config");
        assert!(errors[0].message.contains("modelFile"), "{errors:?}");

        let mut doc = with_files(EXAMPLES[2].1);
        doc["manifest"]["config"]["modelFormat"] = "pickle".into();
        assert_eq!(fields(&doc), ["manifest.config.modelFormat"]);
    }

    #[test]
    fn type_rules_beyond_the_schema() {
        let mut doc = with_files(EXAMPLES[2].1);
        doc["manifest"]["modelCard"]["accuracy"] = 1.5.into();
        doc["manifest"]["modelCard"]["trainingDate"] = "yesterday".into();
        doc["manifest"]["benchmarks"]["inferenceTime"] = "fast".into();
        assert_eq!(
            fields(&doc),
            ["manifest.modelCard.accuracy", "manifest.modelCard.trainingDate", "manifest.benchmarks.inferenceTime"]
        );

        let mut doc = with_files(EXAMPLES[4].1);
        doc["manifest"]["config"]["variables"][1]["default"] = "sqlite".into();
        doc["manifest"]["config"]["variables"][0]["name"] = "project name".into();
        assert_eq!(fields(&doc), ["manifest.config.variables[0].name", "manifest.config.variables[1].default"]);

        let mut doc = with_files(EXAMPLES[0].1);
        doc["manifest"]["license"] = "MIT OR NOPE-1.0".into();
        doc["manifest"]["config"]["wasmFile"] = "missing.wasm".into();
        doc["version"] = "2.1".into();
        assert_eq!(fields(&doc), ["version", "manifest.license", "manifest.config.wasmFile"]);

        let mut doc = with_files(EXAMPLES[0].1);
        doc["contents"][1]["path"] = "../etc/passwd".into();
        doc["name"] = "User-Auth".into();
        assert_eq!(fields(&doc), ["name", "manifest.name", "contents[1].path"]);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for bad in [&b""[..], b"[]", b"{", b"{\"type\":1}", b"{\"type\":\"model\"}", &[0xff, 0xfe][..]] {
            assert!(ArtifactDocument::parse(bad).is_err());
        }
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(ArtifactDocument::parse(&big).is_err());
    }

    proptest::proptest! {
        /// Hostile text in any string field of any example is refused or accepted, never a panic.
        #[test]
        fn hostile_strings_never_panic(text in "\\PC{0,40}", which in 0usize..6, field in 0usize..12) {
            let mut doc = with_files(EXAMPLES[which].1);
            let targets = [
                "/version", "/name", "/namespace", "/manifest/license", "/manifest/modelCard/trainingDate",
                "/provenance/buildTimestamp", "/manifest/config/wasmFile", "/manifest/dependencies/0/version",
                "/manifest/dependencies/0/name", "/manifest/timescape/versionGraph/0/timestamp",
                "/manifest/benchmarks/inferenceTime", "/manifest/config/modelReferences/0",
            ];
            if let Some(slot) = doc.pointer_mut(targets[field]) {
                *slot = serde_json::Value::String(text.clone());
            } else if let Some(obj) = doc.as_object_mut() {
                obj.insert("version".into(), serde_json::Value::String(text.clone()));
            }
            let _ = parse(&doc);
        }
    }

    #[test]
    fn every_kind_has_a_schema() {
        for kind in ArtifactKind::ALL {
            let schema = config::schema(kind);
            assert_eq!(schema["$id"], format!("/api/v1/schemas/{kind}"));
            assert_eq!(schema["type"], "object", "{kind}");
        }
        let model = config::schema(ArtifactKind::Model);
        let required: Vec<&str> = model["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(required.contains(&"modelFile") && required.contains(&"modelFormat"), "{required:?}");
    }

    #[test]
    fn sums_listing_is_sorted_sha256sum_format() {
        let a = FileEntry { path: "b".into(), size: 1, sha256: "1".repeat(64), sha512: "2".repeat(128) };
        let b = FileEntry { path: "a".into(), size: 1, sha256: "3".repeat(64), sha512: "4".repeat(128) };
        let listing = sums_listing(&[a, b], "sha256");
        assert_eq!(listing, format!("{}  a\n{}  b\n", "3".repeat(64), "1".repeat(64)));
    }
}
