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

/// A deliberate fault, planted so that the fault-injection harness (`jepsen/`) can show it
/// detects what it claims to; accepted only by debug builds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PlantedBug {
    /// Linearizable tag reads are served from the local replica with no read index, as a broken
    /// follower-read optimisation would.
    StaleTagReads,
}

/// Settings for testing the test harness; see [`PlantedBug`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// The fault to plant, if any.
    pub planted_bug: Option<PlantedBug>,
}

/// Identity and access.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether requests are authenticated and authorised. Off, anyone may push and pull
    /// anything: only for a registry on a trusted machine or network.
    pub enabled: bool,
    /// The service name in token challenges and the audience of access tokens.
    pub service: String,
    /// The token endpoint clients are sent to (`WWW-Authenticate: Bearer realm=...`); by default
    /// `http://<Host header>/token`.
    pub realm: Option<String>,
    /// The issuer of tokens.
    pub issuer: String,
    /// Seconds an access token is valid.
    pub access_token_secs: u64,
    /// Seconds a refresh token (a login session) is valid.
    pub refresh_token_secs: u64,
    /// Days after which the token-signing key is replaced (the old one keeps verifying until the
    /// tokens it signed have expired).
    pub key_rotation_days: u64,
    /// Whether anyone may create an account through the API.
    pub allow_signup: bool,
    /// Users who administer the registry, in addition to those marked so in the state.
    pub admins: Vec<String>,
    /// The registry's public base URL, for links in mail; by default `http://<listen>`.
    pub public_url: Option<String>,
    /// The sender of verification and password-reset mail.
    pub mail_from: String,
    /// Where mail is written, one RFC 5322 file per message, for the deployment's relay; by
    /// default `<data_dir>/outbox`.
    pub mail_outbox: Option<PathBuf>,
    /// External OpenID Connect providers users may sign in with (`[[auth.oidc]]`).
    pub oidc: Vec<gati_oidc::ProviderConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            service: "gati-registry".into(),
            realm: None,
            issuer: "gati-registry".into(),
            access_token_secs: 300,
            refresh_token_secs: 30 * 24 * 3600,
            key_rotation_days: 30,
            allow_signup: true,
            admins: Vec::new(),
            public_url: None,
            mail_from: "Gati Registry <no-reply@localhost>".into(),
            mail_outbox: None,
            oidc: Vec::new(),
        }
    }
}

/// Request budgets and sign-in lockouts, per node.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Whether budgets are enforced; by default they are whenever authentication is on.
    pub enabled: Option<bool>,
    /// Reads (GET, HEAD) per second per client address, and the burst allowed at once.
    pub reads_per_second: f64,
    /// See `reads_per_second`.
    pub read_burst: u32,
    /// Writes per second per client address, and the burst allowed at once.
    pub writes_per_second: f64,
    /// See `writes_per_second`.
    pub write_burst: u32,
    /// Sign-in attempts (token requests with credentials, logins, sign-ups) per minute per
    /// client address, and the burst allowed at once.
    pub logins_per_minute: f64,
    /// See `logins_per_minute`.
    pub login_burst: u32,
    /// Reads per second per signed-in principal, and the burst.
    pub principal_reads_per_second: f64,
    /// See `principal_reads_per_second`.
    pub principal_read_burst: u32,
    /// Writes per second per signed-in principal, and the burst.
    pub principal_writes_per_second: f64,
    /// See `principal_writes_per_second`.
    pub principal_write_burst: u32,
    /// Failed password sign-ins of one account name within `failure_window_secs` that lock the
    /// name out.
    pub failed_logins_before_lockout: u32,
    /// See `failed_logins_before_lockout`.
    pub failure_window_secs: u64,
    /// The first lockout; each further one doubles, up to `max_lockout_secs`.
    pub lockout_secs: u64,
    /// See `lockout_secs`.
    pub max_lockout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: None,
            reads_per_second: 500.0,
            read_burst: 1000,
            writes_per_second: 100.0,
            write_burst: 200,
            logins_per_minute: 30.0,
            login_burst: 10,
            principal_reads_per_second: 1000.0,
            principal_read_burst: 2000,
            principal_writes_per_second: 200.0,
            principal_write_burst: 400,
            failed_logins_before_lockout: 5,
            failure_window_secs: 15 * 60,
            lockout_secs: 60,
            max_lockout_secs: 3600,
        }
    }
}

/// One member of the cluster as listed in the bootstrap configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member's node id.
    pub id: u64,
    /// The member's node-to-node (gRPC) address, `host:port`.
    pub rpc: String,
}

/// Cluster settings; absent for the embedded single-node registry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Address the node-to-node gRPC service listens on.
    pub rpc_listen: SocketAddr,
    /// Address peers use to reach this node's gRPC service; defaults to `rpc_listen`.
    #[serde(default)]
    pub advertise_rpc: Option<String>,
    /// Voting replicas per shard (all members when there are fewer).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The members the cluster is created with; the same list on every founding node. A node
    /// joining a running cluster lists the members it can reach instead.
    pub members: Vec<MemberConfig>,
    /// The secret every node-to-node call carries and every node requires (the same on every
    /// node, at least 16 characters). Required when authentication is on; without it anything
    /// that reaches the RPC port could write to the cluster.
    #[serde(default)]
    pub secret: Option<String>,
}

fn default_replicas() -> usize {
    3
}

impl ClusterConfig {
    /// The address peers reach this node at.
    pub fn advertised_rpc(&self) -> String {
        self.advertise_rpc.clone().unwrap_or_else(|| self.rpc_listen.to_string())
    }
}

/// Which store holds blob bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobBackend {
    /// A local (or shared POSIX) directory: the embedded default.
    #[default]
    Fs,
    /// An S3-compatible object store, configured in `[blobs.s3]`: the backend of clusters.
    S3,
}

/// Where blob bytes live.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    /// The backend.
    pub backend: BlobBackend,
    /// Directory of the filesystem backend; defaults to `<data_dir>/blobs`. Nodes of a cluster on
    /// the filesystem backend must share it (one POSIX filesystem, e.g. NFS or one machine).
    pub path: Option<PathBuf>,
    /// Settings of the S3 backend.
    pub s3: Option<gati_blob_s3::S3Config>,
}

/// The node's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
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
    /// How many shards the metadata is split into; fixed when the data directory is created.
    pub shards: u16,
    /// Each consensus group snapshots its state (and then compacts its log) every this many
    /// entries.
    pub snapshot_entries: u64,
    /// Log entries each consensus group keeps proposed and uncommitted at once.
    pub proposal_pipeline: usize,
    /// Blob storage.
    pub blobs: BlobConfig,
    /// Cluster membership and node-to-node RPC; `None` runs one node on its own.
    pub cluster: Option<ClusterConfig>,
    /// Identity and access.
    pub auth: AuthConfig,
    /// Request budgets and sign-in lockouts.
    pub limits: LimitsConfig,
    /// Planted faults for harness tests (debug builds only).
    pub debug: DebugConfig,
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
            shards: gati_core::ShardCount::DEFAULT.get(),
            snapshot_entries: 10_000,
            proposal_pipeline: 1,
            blobs: BlobConfig::default(),
            cluster: None,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            debug: DebugConfig::default(),
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
    /// Whether request budgets are enforced.
    pub fn limits_enabled(&self) -> bool {
        self.limits.enabled.unwrap_or(self.auth.enabled)
    }

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
        self.shard_count()?;
        match (&self.blobs.backend, &self.blobs.s3) {
            (BlobBackend::S3, None) => {
                return Err(ConfigError::Invalid("blobs.backend = \"s3\" needs a [blobs.s3] section".into()));
            }
            (BlobBackend::S3, Some(s3)) => s3.validate().map_err(|e| ConfigError::Invalid(format!("blobs.s3: {e}")))?,
            (BlobBackend::Fs, _) => {}
        }
        if self.snapshot_entries < 10 {
            return Err(ConfigError::Invalid("snapshot_entries must be at least 10".into()));
        }
        if cfg!(not(debug_assertions)) && self.debug.planted_bug.is_some() {
            return Err(ConfigError::Invalid("debug.planted_bug is accepted only by debug builds".into()));
        }
        if !(10..=24 * 3600).contains(&self.auth.access_token_secs) {
            return Err(ConfigError::Invalid("auth.access_token_secs must be between 10 and 86400".into()));
        }
        if self.auth.refresh_token_secs < self.auth.access_token_secs {
            return Err(ConfigError::Invalid("auth.refresh_token_secs must be at least auth.access_token_secs".into()));
        }
        let l = &self.limits;
        let rates = [
            l.reads_per_second,
            l.writes_per_second,
            l.logins_per_minute,
            l.principal_reads_per_second,
            l.principal_writes_per_second,
        ];
        if rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            return Err(ConfigError::Invalid("limits: every rate must be a positive number".into()));
        }
        let bursts = [l.read_burst, l.write_burst, l.login_burst, l.principal_read_burst, l.principal_write_burst];
        if bursts.contains(&0) || l.failed_logins_before_lockout == 0 || l.lockout_secs == 0 {
            return Err(ConfigError::Invalid(
                "limits: bursts, the lockout threshold and lockout_secs must be at least 1".into(),
            ));
        }
        if l.max_lockout_secs < l.lockout_secs {
            return Err(ConfigError::Invalid("limits.max_lockout_secs must be at least limits.lockout_secs".into()));
        }
        if self.auth.key_rotation_days == 0 {
            return Err(ConfigError::Invalid("auth.key_rotation_days must be at least 1".into()));
        }
        for provider in &self.auth.oidc {
            provider.validate().map_err(|e| ConfigError::Invalid(format!("auth.oidc: {e}")))?;
        }
        for admin in &self.auth.admins {
            admin
                .parse::<gati_core::identity::AccountName>()
                .map_err(|e| ConfigError::Invalid(format!("auth.admins: {e}")))?;
        }
        if !(1..=64).contains(&self.proposal_pipeline) {
            return Err(ConfigError::Invalid("proposal_pipeline must be between 1 and 64".into()));
        }
        if let Some(cluster) = &self.cluster {
            match &cluster.secret {
                Some(secret) if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(ConfigError::Invalid(
                        "cluster.secret must be at least 16 printable characters without spaces".into(),
                    ));
                }
                None if self.auth.enabled => {
                    return Err(ConfigError::Invalid(
                        "cluster.secret is required when auth is enabled: node-to-node calls must be authenticated"
                            .into(),
                    ));
                }
                _ => {}
            }
            if cluster.replicas == 0 {
                return Err(ConfigError::Invalid("cluster.replicas must be at least 1".into()));
            }
            let mut ids: Vec<u64> = cluster.members.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != cluster.members.len() || ids.contains(&0) {
                return Err(ConfigError::Invalid("cluster.members need distinct node ids of at least 1".into()));
            }
            if cluster.members.is_empty() {
                return Err(ConfigError::Invalid("cluster.members must list at least one reachable member".into()));
            }
        }
        Ok(())
    }

    /// The configured shard count.
    pub fn shard_count(&self) -> Result<gati_core::ShardCount, ConfigError> {
        gati_core::ShardCount::try_from(self.shards).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The blob directory of the filesystem backend.
    pub fn blob_dir(&self) -> PathBuf {
        self.blobs.path.clone().unwrap_or_else(|| self.data_dir.join("blobs"))
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
        assert!(Config { shards: 0, ..Config::default() }.validate().is_err());
    }

    #[test]
    fn cluster_section_parses_and_is_checked() {
        let text = r#"
            node_id = 2
            shards = 8
            [blobs]
            path = "/srv/blobs"
            [cluster]
            rpc_listen = "127.0.0.1:7002"
            members = [{ id = 1, rpc = "127.0.0.1:7001" }, { id = 2, rpc = "127.0.0.1:7002" }]
        "#;
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        let cluster = c.cluster.as_ref().unwrap();
        assert_eq!(cluster.replicas, 3);
        assert_eq!(cluster.advertised_rpc(), "127.0.0.1:7002");
        assert_eq!(c.blob_dir(), PathBuf::from("/srv/blobs"));
        assert_eq!(c.shard_count().unwrap().get(), 8);
        let s3 = format!(
            "{text}\n[blobs.s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"gati\"\n\
             access_key_id = \"a\"\nsecret_access_key = \"b\"\n"
        )
        .replace("[blobs]\n", "[blobs]\nbackend = \"s3\"\n");
        let parsed: Config = toml::from_str(&s3).unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.blobs.backend, BlobBackend::S3);
        assert_eq!(parsed.blobs.s3.as_ref().map(|s| s.bucket.as_str()), Some("gati"));
        let no_section = text.replace("[blobs]\n", "[blobs]\nbackend = \"s3\"\n");
        assert!(toml::from_str::<Config>(&no_section).unwrap().validate().is_err());
        let dup = text.replace("id = 2,", "id = 1,");
        assert!(toml::from_str::<Config>(&dup).unwrap().validate().is_err());
        // With authentication on, node-to-node calls must carry a secret of some strength.
        let with_auth = |secret: &str| format!("{text}{secret}\n[auth]\nenabled = true\n");
        assert!(toml::from_str::<Config>(&with_auth("")).unwrap().validate().is_err(), "no cluster secret");
        let short = with_auth("secret = \"short\"");
        assert!(toml::from_str::<Config>(&short).unwrap().validate().is_err(), "a short secret");
        let good = with_auth("secret = \"a-long-enough-cluster-secret\"");
        toml::from_str::<Config>(&good).unwrap().validate().unwrap();
    }
}
