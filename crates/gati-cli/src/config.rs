//! Where the CLI keeps things: credentials per registry (`$GATI_CONFIG_DIR/config.json`, else
//! `$XDG_CONFIG_HOME/gati`, else `~/.config/gati`; written with mode 0600) and the content
//! cache (`$GATI_CACHE_DIR`, else `$XDG_CACHE_HOME/gati`, else `~/.cache/gati`), where every
//! downloaded file is kept under its sha256 so that reinstalls work offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gati_client::{Auth, RegistryClient, Tokens};
use serde::{Deserialize, Serialize};

use crate::exit::{Failure, io};

const DEFAULT_REGISTRY: &str = "http://127.0.0.1:5000";

/// Stored credentials of one registry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub username: Option<String>,
    pub api_key: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    /// When the access token expires, seconds since the epoch.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    default_registry: Option<String>,
    #[serde(default)]
    registries: BTreeMap<String, Credentials>,
}

/// What every command gets.
pub struct Context {
    pub registry: String,
    pub json: bool,
    config_file: PathBuf,
    pub cache_dir: PathBuf,
}

fn home_dir(env: &str, xdg: &str, fallback: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(env) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os(xdg) {
        return PathBuf::from(dir).join("gati");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(fallback).join("gati")
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Context {
    pub fn new(registry: Option<&str>, json: bool) -> Result<Context, Failure> {
        let config_file = home_dir("GATI_CONFIG_DIR", "XDG_CONFIG_HOME", ".config").join("config.json");
        let cache_dir = home_dir("GATI_CACHE_DIR", "XDG_CACHE_HOME", ".cache");
        let stored = load(&config_file)?;
        let registry = registry
            .map(str::to_owned)
            .or(stored.default_registry)
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_owned())
            .trim_end_matches('/')
            .to_owned();
        Ok(Context { registry, json, config_file, cache_dir })
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Result<RegistryClient, Failure> {
        RegistryClient::new(&self.registry).map_err(Failure::from)
    }

    /// A client with the stored credential, refreshing an expired session first.
    pub async fn client(&self) -> Result<RegistryClient, Failure> {
        let client = self.anonymous()?;
        let Some(mut creds) = self.credentials()? else { return Ok(client) };
        if let Some(key) = &creds.api_key {
            return Ok(client.with_auth(Some(Auth::Bearer(key.clone()))));
        }
        let fresh = creds.expires_at.is_some_and(|t| t > now() + 30);
        if let (Some(token), true) = (&creds.access_token, fresh) {
            return Ok(client.with_auth(Some(Auth::Bearer(token.clone()))));
        }
        if let Some(refresh) = creds.refresh_token.clone() {
            match client.refresh(&refresh).await {
                Ok(tokens) => {
                    apply_tokens(&mut creds, &tokens);
                    self.save_credentials(Some(creds))?;
                    return Ok(client.with_auth(Some(Auth::Bearer(tokens.access_token))));
                }
                Err(e) if e.status() == Some(401) || e.status() == Some(400) => {
                    return Err(Failure::new(4, "the session expired; sign in again with `gati login`"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(client)
    }

    pub fn credentials(&self) -> Result<Option<Credentials>, Failure> {
        Ok(load(&self.config_file)?.registries.get(&self.registry).cloned())
    }

    /// Stores (or, with `None`, forgets) this registry's credentials; a stored one becomes the default registry.
    pub fn save_credentials(&self, creds: Option<Credentials>) -> Result<(), Failure> {
        let mut stored = load(&self.config_file)?;
        match creds {
            Some(c) => {
                stored.registries.insert(self.registry.clone(), c);
                stored.default_registry = Some(self.registry.clone());
            }
            None => {
                stored.registries.remove(&self.registry);
            }
        }
        save(&self.config_file, &stored)
    }

    /// Where the cache keeps the bytes with this sha256.
    pub fn cached(&self, sha256: &str) -> PathBuf {
        self.cache_dir.join("content").join("sha256").join(sha256)
    }
}

pub fn apply_tokens(creds: &mut Credentials, tokens: &Tokens) {
    creds.access_token = Some(tokens.access_token.clone());
    creds.refresh_token = Some(tokens.refresh_token.clone());
    creds.expires_at = Some(now() + tokens.expires_in);
    creds.api_key = None;
}

fn load(file: &Path) -> Result<Stored, Failure> {
    match std::fs::read(file) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| Failure::other(format!("{} is not valid: {e}", file.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(io(format_args!("reading {}", file.display()), e)),
    }
}

fn save(file: &Path, stored: &Stored) -> Result<(), Failure> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(format_args!("creating {}", dir.display()), e))?;
    }
    let tmp = file.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(stored).map_err(|e| Failure::other(e.to_string()))?;
    {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(|e| io(format_args!("writing {}", tmp.display()), e))?;
        f.write_all(&bytes).map_err(|e| io(format_args!("writing {}", tmp.display()), e))?;
    }
    std::fs::rename(&tmp, file).map_err(|e| io(format_args!("writing {}", file.display()), e))
}
