//! The type-specific `config` of each artifact kind: one Rust type per kind, from which both the
//! published JSON Schema (`/api/v1/schemas/<type>`) and the publish-time validation come, so the
//! two can never disagree. Unknown fields are kept (forward compatibility); known fields must
//! have the documented shape.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;

/// A WebAssembly module.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WasmModuleConfig {
    /// The module's `.wasm` file, a path among the artifact's files.
    pub wasm_file: String,
    /// Whether the module expects a WASI host.
    #[serde(default)]
    pub wasi: bool,
    /// Host capabilities the module imports (`db:read`, `crypto`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Exported functions callers may use.
    #[serde(default)]
    pub exports: Vec<String>,
}

/// A Node.js module.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeModuleConfig {
    /// The entry point, a path among the artifact's files.
    pub entry: String,
    /// The Node.js versions supported, as a range (`18.x`, `>=20`).
    pub node_version: Option<String>,
}

/// A module shipped as an OCI image.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciModuleConfig {
    /// The image reference (`registry/name:tag` or `@sha256:...`).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Platforms the image is built for (`linux/amd64`).
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// One build of a native binary module.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinaryBuild {
    /// Operating system (`linux`, `darwin`, `windows`).
    pub os: String,
    /// CPU architecture (`amd64`, `arm64`).
    pub arch: String,
    /// The executable or library, a path among the artifact's files.
    pub file: String,
}

/// A native binary module, one file per platform.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinaryModuleConfig {
    /// The builds, at least one.
    #[schemars(length(min = 1))]
    pub builds: Vec<BinaryBuild>,
}

/// A module hosted elsewhere.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalModuleConfig {
    /// Where the module lives (`https://...`).
    pub url: String,
    /// How it is reached (`http`, `grpc`).
    pub protocol: Option<String>,
}

/// How a plugin is run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginRuntime {
    /// A Node.js package.
    Node,
    /// A WebAssembly module.
    Wasm,
    /// A native executable.
    Binary,
}

/// A plugin.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfig {
    /// How the plugin is run.
    #[serde(rename = "type")]
    pub runtime: PluginRuntime,
    /// The entry point, a path among the artifact's files.
    pub entry: String,
    /// The Node.js versions supported, for Node plugins.
    pub node_version: Option<String>,
}

/// The file format of a model's weights.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// ONNX.
    Onnx,
    /// safetensors.
    Safetensors,
    /// GGUF (llama.cpp).
    Gguf,
    /// A `PyTorch` checkpoint.
    Pytorch,
    /// A `TensorFlow` `SavedModel`.
    Tensorflow,
    /// `TensorFlow` Lite.
    Tflite,
}

/// An AI model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// The format of the weights.
    pub model_format: ModelFormat,
    /// The weights file, a path among the artifact's files.
    pub model_file: String,
    /// The input tensor's shape; `-1` marks a dynamic dimension.
    #[serde(default)]
    pub input_shape: Vec<i64>,
    /// The output tensor's shape; `-1` marks a dynamic dimension.
    #[serde(default)]
    pub output_shape: Vec<i64>,
    /// The runtime that executes it (`onnx-runtime`).
    pub runtime: Option<String>,
}

/// An agent's skills and the skills each one builds on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillGraph {
    /// Every skill of the agent.
    pub skills: Vec<String>,
    /// For a skill, the skills it needs first. Must be acyclic.
    #[serde(default)]
    pub dependencies: BTreeMap<String, Vec<String>>,
}

/// An AI agent.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// How the agent runs (`wasm`, `node`).
    pub runtime: String,
    /// The agent's `.wasm` file, for WASM agents.
    pub wasm_file: Option<String>,
    /// The entry point, for Node agents.
    pub entry: Option<String>,
    /// Models the agent uses, as references (`users/openai/gpt-4:latest`); each must resolve.
    #[serde(default)]
    pub model_references: Vec<String>,
    /// The agent's skills.
    #[serde(default)]
    pub skill_graph: SkillGraph,
}

/// A variable a template asks for when it is rendered.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateVariable {
    /// The name used in the template's files as `{{name}}`: a letter, then letters, digits or `_`.
    pub name: String,
    /// What to ask the user.
    pub description: Option<String>,
    /// Whether a value must be given (a variable with a default never needs one).
    #[serde(default)]
    pub required: bool,
    /// The allowed values, when the variable is a choice.
    pub options: Option<Vec<String>>,
    /// The value used when none is given; one of `options` when those are listed.
    pub default: Option<String>,
}

/// A project template.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateConfig {
    /// What the template creates (`app`, `module`, `plugin`, `agent`).
    pub template_type: String,
    /// The framework it is built on (`nextjs`).
    pub framework: Option<String>,
    /// The main language (`typescript`).
    pub language: Option<String>,
    /// Modules the generated project uses.
    #[serde(default)]
    pub includes_modules: Vec<String>,
    /// The variables it asks for.
    #[serde(default)]
    pub variables: Vec<TemplateVariable>,
}

/// An environment snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotConfig {
    /// When the environment was captured (RFC 3339).
    pub captured_at: String,
    /// The runtime it was captured from.
    pub runtime: Option<String>,
    /// The artifacts the environment ran, pinned (`users/krishna/user-auth@2.1.0`).
    #[serde(default)]
    pub artifacts: Vec<String>,
}

/// A transformer's `config`: transformers describe themselves at the top of their manifest
/// (`fromArtifact`, `fromVersion`, `toVersion`, `transformations`), so their config is optional
/// and free-form.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformerConfig {
    /// The runtime that applies the transformations, if not the default.
    pub runtime: Option<String>,
}

/// The JSON Schema of `kind`'s `config`.
pub fn schema(kind: ArtifactKind) -> serde_json::Value {
    let mut schema = match kind {
        ArtifactKind::ModuleWasm => schemars::schema_for!(WasmModuleConfig),
        ArtifactKind::ModuleNode => schemars::schema_for!(NodeModuleConfig),
        ArtifactKind::ModuleOci => schemars::schema_for!(OciModuleConfig),
        ArtifactKind::ModuleBinary => schemars::schema_for!(BinaryModuleConfig),
        ArtifactKind::ModuleExternal => schemars::schema_for!(ExternalModuleConfig),
        ArtifactKind::Plugin => schemars::schema_for!(PluginConfig),
        ArtifactKind::Model => schemars::schema_for!(ModelConfig),
        ArtifactKind::Agent => schemars::schema_for!(AgentConfig),
        ArtifactKind::Template => schemars::schema_for!(TemplateConfig),
        ArtifactKind::Snapshot => schemars::schema_for!(SnapshotConfig),
        ArtifactKind::Transformer => schemars::schema_for!(TransformerConfig),
    }
    .to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), format!("/api/v1/schemas/{kind}").into());
        obj.insert("title".into(), format!("config of a Gati {kind}").into());
    }
    schema
}

/// A kind's config, parsed.
#[derive(Clone, Debug)]
pub enum TypedConfig {
    /// `module-wasm`.
    Wasm(WasmModuleConfig),
    /// `module-node`.
    Node(NodeModuleConfig),
    /// `module-oci`.
    Oci(OciModuleConfig),
    /// `module-binary`.
    Binary(BinaryModuleConfig),
    /// `module-external`.
    External(ExternalModuleConfig),
    /// `plugin`.
    Plugin(PluginConfig),
    /// `model`.
    Model(ModelConfig),
    /// `agent`.
    Agent(AgentConfig),
    /// `template`.
    Template(TemplateConfig),
    /// `snapshot`.
    Snapshot(SnapshotConfig),
    /// `transformer`.
    Transformer(TransformerConfig),
}

/// Parses `value` as `kind`'s config; the error names the offending field below `config`.
pub fn parse(kind: ArtifactKind, value: &serde_json::Value) -> Result<TypedConfig, (String, String)> {
    fn typed<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            (if path == "." { String::new() } else { path }, e.into_inner().to_string())
        })
    }
    Ok(match kind {
        ArtifactKind::ModuleWasm => TypedConfig::Wasm(typed(value)?),
        ArtifactKind::ModuleNode => TypedConfig::Node(typed(value)?),
        ArtifactKind::ModuleOci => TypedConfig::Oci(typed(value)?),
        ArtifactKind::ModuleBinary => TypedConfig::Binary(typed(value)?),
        ArtifactKind::ModuleExternal => TypedConfig::External(typed(value)?),
        ArtifactKind::Plugin => TypedConfig::Plugin(typed(value)?),
        ArtifactKind::Model => TypedConfig::Model(typed(value)?),
        ArtifactKind::Agent => TypedConfig::Agent(typed(value)?),
        ArtifactKind::Template => TypedConfig::Template(typed(value)?),
        ArtifactKind::Snapshot => TypedConfig::Snapshot(typed(value)?),
        ArtifactKind::Transformer => TypedConfig::Transformer(typed(value)?),
    })
}
