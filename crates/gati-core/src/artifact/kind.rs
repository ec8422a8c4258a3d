//! The artifact types of the product.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The type of an artifact; fixed when its first version is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ArtifactKind {
    /// A Node.js module.
    ModuleNode,
    /// A module shipped as an OCI image.
    ModuleOci,
    /// A WebAssembly module.
    ModuleWasm,
    /// A native binary module.
    ModuleBinary,
    /// A module hosted elsewhere and referenced by URL.
    ModuleExternal,
    /// A plugin extending the Gati runtime.
    Plugin,
    /// An AI model.
    Model,
    /// An AI agent.
    Agent,
    /// A project template.
    Template,
    /// An environment snapshot.
    Snapshot,
    /// A GType transformer between versions of another artifact.
    Transformer,
}

impl ArtifactKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ArtifactKind; 11] = [
        ArtifactKind::ModuleNode,
        ArtifactKind::ModuleOci,
        ArtifactKind::ModuleWasm,
        ArtifactKind::ModuleBinary,
        ArtifactKind::ModuleExternal,
        ArtifactKind::Plugin,
        ArtifactKind::Model,
        ArtifactKind::Agent,
        ArtifactKind::Template,
        ArtifactKind::Snapshot,
        ArtifactKind::Transformer,
    ];

    /// The type's name as written in `gati.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::ModuleNode => "module-node",
            ArtifactKind::ModuleOci => "module-oci",
            ArtifactKind::ModuleWasm => "module-wasm",
            ArtifactKind::ModuleBinary => "module-binary",
            ArtifactKind::ModuleExternal => "module-external",
            ArtifactKind::Plugin => "plugin",
            ArtifactKind::Model => "model",
            ArtifactKind::Agent => "agent",
            ArtifactKind::Template => "template",
            ArtifactKind::Snapshot => "snapshot",
            ArtifactKind::Transformer => "transformer",
        }
    }

    /// The OCI `artifactType` of this kind's manifests.
    pub fn artifact_type(self) -> String {
        format!("application/vnd.gati.{}.v1+json", self.as_str())
    }

    /// Whether this kind is a module (what plugins and templates may require).
    pub fn is_module(self) -> bool {
        matches!(
            self,
            ArtifactKind::ModuleNode
                | ArtifactKind::ModuleOci
                | ArtifactKind::ModuleWasm
                | ArtifactKind::ModuleBinary
                | ArtifactKind::ModuleExternal
        )
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArtifactKind {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        ArtifactKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| CoreError::ArtifactKindUnknown { kind: s.chars().take(64).collect() })
    }
}

impl TryFrom<String> for ArtifactKind {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ArtifactKind> for String {
    fn from(k: ArtifactKind) -> String {
        k.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for k in ArtifactKind::ALL {
            assert_eq!(k.as_str().parse::<ArtifactKind>().unwrap(), k);
        }
        assert!("module".parse::<ArtifactKind>().is_err());
        assert!("Model".parse::<ArtifactKind>().is_err());
        assert_eq!(ArtifactKind::Agent.artifact_type(), "application/vnd.gati.agent.v1+json");
    }
}
