//! Configuration: a TOML file, overridden by environment variables and command-line flags.
//!
//! Every default lives here. Precedence, lowest first: built-in defaults, the TOML file
//! (`--config`), `GATI_*` environment variables, flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `gati_registry=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        // openraft narrates every election and heartbeat at info; operators want its warnings only.
        LogConfig { format: LogFormat::Text, level: "info,openraft=warn".into() }
    }
}

/// The node's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory holding metadata, blobs and upload sessions.
    pub data_dir: PathBuf,
    /// This node's id in its Raft group.
    pub node_id: u64,
    /// Logging.
    pub log: LogConfig,
    /// Seconds an upload session may sit without requests before its actor parks (it stays
    /// resumable from disk).
    pub upload_idle_secs: u64,
    /// Seconds after which an upload session that is not running is discarded.
    pub upload_expiry_secs: u64,
    /// Seconds a namespace actor may sit without writes before it stops.
    pub namespace_idle_secs: u64,
    /// Bytes of manifest content kept in memory.
    pub manifest_cache_bytes: usize,
    /// Seconds in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("./data"),
            node_id: 1,
            log: LogConfig::default(),
            upload_idle_secs: 300,
            upload_expiry_secs: 7 * 24 * 3600,
            namespace_idle_secs: 300,
            manifest_cache_bytes: 64 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse failure.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads a TOML file; missing keys take their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::Invalid("node_id must be at least 1".into()));
        }
        if self.upload_idle_secs == 0 || self.namespace_idle_secs == 0 {
            return Err(ConfigError::Invalid("idle timeouts must be at least one second".into()));
        }
        Ok(())
    }

    /// The upload-session idle period.
    pub fn upload_idle(&self) -> Duration {
        Duration::from_secs(self.upload_idle_secs)
    }

    /// The age at which parked upload sessions are discarded.
    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }

    /// The namespace-actor idle period.
    pub fn namespace_idle(&self) -> Duration {
        Duration::from_secs(self.namespace_idle_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\n[log]\nformat = \"json\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(matches!(Config::from_file(&path), Err(ConfigError::Parse { .. })));
        std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
        assert!(Config::from_file(&path).is_err());
    }

    #[test]
    fn validation() {
        assert!(Config::default().validate().is_ok());
        let bad = Config { node_id: 0, ..Config::default() };
        assert!(bad.validate().is_err());
    }
}
