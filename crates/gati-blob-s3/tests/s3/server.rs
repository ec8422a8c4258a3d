//! A real S3 server for the tests: s3s-fs, installed by `scripts/s3-server.sh install`, started on
//! a loopback port the kernel picks, over a fresh temporary directory. Stopped when dropped.
//!
//! A missing server is a test failure with the command that fixes it, never a skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use gati_blob_s3::S3Config;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ACCESS_KEY: &str = "gati-test-access";
pub const SECRET_KEY: &str = "gati-test-secret-key";

/// Bounds the wait for the server to report its address; it normally takes milliseconds.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running s3s-fs with one bucket created for the test.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    _child: Child,
    _data: tempfile::TempDir,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Asks the install script where the binary is; panics with the fix when it is not installed.
fn s3s_fs_binary() -> PathBuf {
    let script = repo_root().join("scripts/s3-server.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .arg("path")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "the s3s-fs test server is not installed ({}); install it with `scripts/s3-server.sh install` \
         (scripts/install-test-deps.sh does this)",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

impl S3Server {
    /// Starts a server and creates a bucket in it.
    pub async fn start() -> S3Server {
        let binary = s3s_fs_binary();
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(data.path())
            // s3s-fs reports its bound address at info level; that line is how we learn the port.
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let marker = "server is running at http://";
        let address = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find(marker) {
                    return line[at + marker.len()..].trim().to_owned();
                }
            }
            panic!("s3s-fs exited before reporting its address");
        })
        .await
        .expect("s3s-fs reports its address in time");
        // Keep draining its output so a chatty server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let endpoint = format!("http://{address}");
        let bucket = format!("gati-test-{:08x}", rand::random::<u32>());
        create_bucket(&endpoint, &bucket).await;
        S3Server { endpoint, bucket, _child: child, _data: data }
    }

    /// Returns a config for this server's bucket with the smallest part size S3 allows, so tests
    /// reach multipart uploads with little data.
    pub fn config(&self) -> S3Config {
        let mut config = S3Config::new(&self.endpoint, &self.bucket, ACCESS_KEY, SECRET_KEY);
        config.part_size = 5 * 1024 * 1024;
        config
    }

    /// Returns a plain SDK client for looking behind the store's back.
    pub fn client(&self) -> aws_sdk_s3::Client {
        client(&self.endpoint)
    }
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tests"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn create_bucket(endpoint: &str, bucket: &str) {
    client(endpoint).create_bucket().bucket(bucket).send().await.expect("create the test bucket");
}
