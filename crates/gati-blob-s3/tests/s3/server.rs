//! A real S3 server for the tests, started through `scripts/s3-server.sh` on a loopback port the
//! kernel picks, over a fresh temporary directory, and stopped when dropped: s3s-fs by default,
//! Garage with `S3_SERVER=garage` (the long runs). Each test gets its own server and uses the
//! bucket the script creates.
//!
//! A missing server is a test failure with the command that fixes it, never a skip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use gati_blob_s3::S3Config;

/// A running S3 server with the bucket `gati`.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    /// Whether the server honours conditional writes (s3s-fs does, Garage 2.5 does not).
    pub conditional_writes: bool,
    access_key: String,
    secret_key: String,
    pid: String,
    _data: tempfile::TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-server.sh")
}

impl S3Server {
    /// Starts a server; panics with the fix when it is not installed.
    pub async fn start() -> S3Server {
        let data = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(data.path().join("s3"))
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
        assert!(
            output.status.success(),
            "the S3 test server did not start ({}); install it with `scripts/s3-server.sh install` \
             (scripts/install-test-deps.sh does this)",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let vars: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("s3-server.sh printed no {k}"));
        S3Server {
            endpoint: var("S3_ENDPOINT"),
            bucket: "gati".to_owned(),
            conditional_writes: std::env::var("S3_SERVER").map_or(true, |s| s != "garage"),
            access_key: var("S3_ACCESS_KEY_ID"),
            secret_key: var("S3_SECRET_ACCESS_KEY"),
            pid: var("S3_PID"),
            _data: data,
        }
    }

    /// Returns a config for this server's bucket with the smallest part size S3 allows, so tests
    /// reach multipart uploads with little data.
    pub fn config(&self) -> S3Config {
        let mut config = S3Config::new(&self.endpoint, &self.bucket, &self.access_key, &self.secret_key);
        config.part_size = 5 * 1024 * 1024;
        config.allow_unconditional_writes = !self.conditional_writes;
        config
    }

    /// Returns a plain SDK client for looking behind the store's back.
    pub fn client(&self) -> aws_sdk_s3::Client {
        client(&self.endpoint, &self.access_key, &self.secret_key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").arg(script()).arg("stop").arg(&self.pid).output();
    }
}

fn client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "tests"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
