//! Shared helpers for integration tests that run the real `gati-registry` binary.
//!
//! * [`Registry`] starts the server on a free loopback port with a data dir, waits for it to be
//!   ready (bounded), can SIGKILL and restart it on the same port and data dir, and kills it on drop.
//! * [`http`] is a tiny std-only HTTP/1.1 client (one connection per request, `Connection: close`)
//!   so tests need no HTTP crate; [`oci`] builds the OCI Distribution calls on top of it.
//!
//! Dev-time switch (not used by CI): `GATI_TEST_REGISTRY=distribution` runs the CNCF
//! distribution registry (`/usr/bin/docker-registry`, filesystem driver) instead of gati, so the
//! tests themselves can be validated against a reference implementation. `GATI_TEST_REGISTRY_CMD`
//! overrides the gati binary path.
#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

pub mod oidc;

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `sha256:<hex>` digest of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// A small, fast, non-cryptographic PRNG (splitmix64) so tests need no `rand` crate. Seeded from
/// the clock and a process counter: every run and every call site gets different bytes.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let c = COUNTER.fetch_add(1, Ordering::Relaxed);
        Rng(nanos ^ (c.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ u64::from(std::process::id()) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// Blocks this (plain OS, non-async) test thread for `d`: the poll interval of the bounded wait
/// loops below. Integration tests here run no async runtime, so the workspace's ban on
/// `std::thread::sleep` (which protects async code) does not apply.
#[allow(clippy::disallowed_methods, reason = "sync test thread, bounded poll interval")]
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// Ports this test process has reserved, with the lock files that keep every other test process
/// off them until this one exits.
static RESERVED_PORTS: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// The reserved range: below the kernel's ephemeral range (32768 and up on Linux), so no
/// outgoing connection is ever given one of these as its local port between the reservation and
/// the server's bind — which is what made `bind(:0)`-then-release ports collide.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port for a server this test will start, reserved for the life of the test process.
///
/// Concurrent test processes (nextest runs each test in its own) coordinate through one lock
/// file per port under the temp dir: a port is handed out only while its file's exclusive lock
/// is held, and the lock goes with the process, also when it is killed. The port must also bind
/// right now, which skips ports that something outside the tests is using.
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("gati-test-ports");
    std::fs::create_dir_all(&dir).expect("create the test port lock dir");
    let mut rng = Rng::new();
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..2_000 {
        let port = TEST_PORTS.start + rng.below(span) as u16;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
            .expect("open a test port lock file");
        if lock.try_lock().is_err() {
            continue; // another live test process holds it
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // in use outside the tests; dropping `lock` releases it
        }
        RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
        return port;
    }
    panic!("no free loopback port in {TEST_PORTS:?} after 2000 tries");
}

/// Which server implementation the tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The real `gati-registry` binary of this package (the default, and what CI runs).
    Gati,
    /// The CNCF distribution registry, for validating the tests themselves (dev-time only).
    Distribution,
}

impl Kind {
    pub fn from_env() -> Kind {
        match std::env::var("GATI_TEST_REGISTRY").as_deref() {
            Ok("distribution") | Ok("docker-registry") => Kind::Distribution,
            Ok("") | Ok("gati") | Err(_) => Kind::Gati,
            Ok(other) => panic!("GATI_TEST_REGISTRY={other:?}: expected gati or distribution"),
        }
    }
}

/// A registry server process owned by a test. Killed (SIGKILL) and reaped on drop.
pub struct Registry {
    pub kind: Kind,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Holds the server log and, for distribution, its config file.
    aux: tempfile::TempDir,
    child: Option<Child>,
    starts: u32,
    /// A configuration file passed with `--config` (cluster nodes); flags still set the listen
    /// address and data dir.
    config: Option<PathBuf>,
}

/// Upper bound for a server to become ready (debug builds on a loaded 2-CPU CI machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Registry {
    /// Starts a server on a free loopback port with `data_dir` as its data directory.
    pub fn start(data_dir: &Path) -> Registry {
        let mut reg = Registry {
            kind: Kind::from_env(),
            port: free_port(),
            data_dir: data_dir.to_path_buf(),
            aux: tempfile::tempdir().expect("tempdir"),
            child: None,
            starts: 0,
            config: None,
        };
        reg.spawn();
        reg
    }

    /// Starts a gati node on `port` with `config` and returns without waiting until it is ready
    /// (a cluster member is ready only once its peers run too): call [`Registry::wait_ready`].
    pub fn launch_configured(port: u16, data_dir: &Path, config: &Path) -> Registry {
        let mut reg = Registry {
            kind: Kind::Gati,
            port,
            data_dir: data_dir.to_path_buf(),
            aux: tempfile::tempdir().expect("tempdir"),
            child: None,
            starts: 0,
            config: Some(config.to_path_buf()),
        };
        reg.launch();
        reg
    }

    /// Whether the process is running (it has not been killed or exited).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("server is not running")
    }

    fn log_path(&self) -> PathBuf {
        self.aux.path().join("server.log")
    }

    /// The last `max` bytes of the server's stdout+stderr, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        let log = std::fs::read(self.log_path()).unwrap_or_default();
        let start = log.len().saturating_sub(max);
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    fn command(&self) -> Command {
        match self.kind {
            Kind::Gati => {
                let bin = std::env::var("GATI_TEST_REGISTRY_CMD")
                    .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gati-registry").to_string());
                let mut cmd = Command::new(bin);
                cmd.arg("serve").arg("--listen").arg(self.addr()).arg("--data-dir").arg(&self.data_dir);
                if let Some(config) = &self.config {
                    cmd.arg("--config").arg(config);
                }
                cmd
            }
            Kind::Distribution => {
                let config = self.aux.path().join("config.yml");
                // A fixed http.secret so upload state survives a restart.
                let yaml = format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                     delete:\n    enabled: true\nhttp:\n  addr: {}\n  secret: gati-test-secret\n",
                    self.data_dir.display(),
                    self.addr()
                );
                std::fs::write(&config, yaml).expect("write distribution config");
                let mut cmd = Command::new("docker-registry");
                cmd.arg("serve").arg(config);
                cmd
            }
        }
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        std::fs::create_dir_all(&self.data_dir).expect("create data dir");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open server log");
        let log2 = log.try_clone().expect("clone log handle");
        self.starts += 1;
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        if self.kind == Kind::Gati {
            cmd.env("RUST_BACKTRACE", "1");
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {:?} server: {e}", self.kind));
        self.child = Some(child);
    }

    /// Polls until the server answers: gati `/healthz` then `/readyz` with 200 and `/v2/` with 200
    /// (or its token challenge), distribution `/v2/` with 200. Bounded by [`READY_TIMEOUT`]; panics with the server log if it exits or times out.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let paths: &[&str] = match self.kind {
            Kind::Gati => &["/healthz", "/readyz", "/v2/"],
            Kind::Distribution => &["/v2/"],
        };
        let mut last;
        for path in paths {
            loop {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    panic!(
                        "registry exited with {status} before {path} answered 200 (start #{})\n--- log ---\n{}",
                        self.starts,
                        self.log_tail(8000)
                    );
                }
                match http::get_with_timeout(&self.addr(), path, Duration::from_secs(2)) {
                    Ok(r) if r.status == 200 => break,
                    // With authentication on, `/v2/` answers the token challenge once it serves.
                    Ok(r) if *path == "/v2/" && r.status == 401 && r.header("www-authenticate").is_some() => break,
                    Ok(r) => last = format!("HTTP {} {}", r.status, r.text()),
                    Err(e) => last = e.to_string(),
                }
                if Instant::now() > deadline {
                    panic!(
                        "registry on {} not ready within {READY_TIMEOUT:?}: {path}: {last}\n--- log ---\n{}",
                        self.addr(),
                        self.log_tail(8000)
                    );
                }
                pause(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL the server (no graceful shutdown) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (a graceful shutdown) and waits, bounded by `timeout`, for the process to
    /// exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.pid();
        let sent = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("server is not running");
            if let Some(status) = child.try_wait().expect("wait for the server") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {timeout:?} of SIGTERM\n{}",
                self.log_tail(4000)
            );
            pause(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port and data dir without waiting for it to be ready.
    pub fn relaunch(&mut self) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() && Instant::now() < deadline {
            pause(Duration::from_millis(50));
        }
        self.launch();
    }

    /// Starts the server again on the same port and data dir (after [`Registry::kill9`]).
    pub fn restart(&mut self) {
        self.kill9();
        // The port was ours a moment ago; a server binding with SO_REUSEADDR gets it back at once,
        // but allow a few attempts in case the old socket lingers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() && Instant::now() < deadline {
            pause(Duration::from_millis(50));
        }
        self.spawn();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {:?} registry log (127.0.0.1:{}) ---\n{}", self.kind, self.port, self.log_tail(6000));
        }
        self.kill9();
    }
}

/// Runs `cmd` with a wall-clock bound, capturing stdout and stderr. Returns the output; panics
/// (with both streams) if it times out. Exit status is for the caller to check.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = out_t.join().unwrap_or_default();
            let err = err_t.join().unwrap_or_default();
            panic!(
                "timed out after {timeout:?}: {desc}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        pause(Duration::from_millis(20));
    };
    std::process::Output { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default() }
}

/// Like [`run_bounded`] but panics with both streams unless the command exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let desc = format!("{cmd:?}");
    let out = run_bounded(cmd, timeout);
    assert!(
        out.status.success(),
        "command failed ({}): {desc}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Path of a file under `tests/interop/`.
pub fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("interop").join(name)
}

/// Fails loudly when an external tool the tests need is missing, naming the installer.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "required tool `{tool}` is not on PATH: run `sudo bash scripts/install-test-deps.sh` \
         (Debian packages skopeo podman docker-registry wrk, PyPI oras)"
    );
}

/// Environment shared by skopeo and podman: a private registries.conf (so host mirrors or
/// blocked registries cannot interfere) and a permissive signature policy.
pub struct ContainersEnv {
    pub registries_conf: PathBuf,
    pub policy: PathBuf,
    pub tmp: PathBuf,
}

impl ContainersEnv {
    pub fn new(dir: &Path, reg: &Registry) -> ContainersEnv {
        std::fs::create_dir_all(dir).expect("mkdir");
        let registries_conf = dir.join("registries.conf");
        std::fs::write(
            &registries_conf,
            format!(
                "unqualified-search-registries = []\n\n[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
                reg.addr()
            ),
        )
        .expect("write registries.conf");
        let policy = dir.join("policy.json");
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).expect("write policy");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir tmp");
        // An empty private auth file: no host credentials leak in (podman wants it to exist).
        std::fs::write(tmp.join("auth.json"), r#"{"auths":{}}"#).expect("write auth.json");
        ContainersEnv { registries_conf, policy, tmp }
    }

    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("CONTAINERS_REGISTRIES_CONF", &self.registries_conf)
            .env("TMPDIR", &self.tmp)
            .env("REGISTRY_AUTH_FILE", self.tmp.join("auth.json"))
    }

    pub fn skopeo(&self) -> Command {
        let mut cmd = Command::new("skopeo");
        self.apply(&mut cmd);
        cmd.arg("--policy").arg(&self.policy);
        cmd
    }
}

/// A minimal HTTP/1.1 client over `std::net`: one connection per request, `Connection: close`.
pub mod http {
    use super::*;

    /// Default per-socket read/write timeout.
    pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

    #[derive(Debug, Clone)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        /// First header named `name` (case-insensitive).
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
        }

        pub fn is_success(&self) -> bool {
            (200..300).contains(&self.status)
        }
    }

    /// Connects with bounded timeouts.
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
        let sock: std::net::SocketAddr =
            addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
        let stream = TcpStream::connect_timeout(&sock, timeout.min(Duration::from_secs(5)))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Writes the request line and headers (plus `Host`, `Connection: close`, `Content-Length`).
    pub fn write_head(
        stream: &mut TcpStream,
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: Option<u64>,
    ) -> std::io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(len) = content_length {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())
    }

    /// Sends one request and reads the whole response.
    pub fn request_with_timeout(
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> std::io::Result<Response> {
        let mut stream = connect(addr, timeout)?;
        let has_body = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
        write_head(&mut stream, addr, method, path, headers, has_body.then_some(body.len() as u64))?;
        stream.write_all(body)?;
        stream.flush()?;
        read_response(stream, method == "HEAD")
    }

    pub fn request(
        addr: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        request_with_timeout(addr, method, path, headers, body, IO_TIMEOUT)
    }

    pub fn get_with_timeout(addr: &str, path: &str, timeout: Duration) -> std::io::Result<Response> {
        request_with_timeout(addr, "GET", path, &[], &[], timeout)
    }

    /// Like [`request`] but panics on IO errors (the server is expected to be up).
    pub fn must(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
    }

    fn invalid(msg: String) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
    }

    /// Reads a response; the body is framed by `Content-Length`, chunked encoding, or EOF.
    /// A body cut short of its declared length is an error, never a short success.
    pub fn read_response(stream: TcpStream, head_only: bool) -> std::io::Result<Response> {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        // Skip interim 1xx responses (e.g. 100 Continue).
        let (status, headers) = loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a status line",
                ));
            }
            let mut parts = line.trim_end().splitn(3, ' ');
            let _version = parts.next();
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
            let mut headers = Vec::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err(invalid("EOF inside headers".into()));
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').ok_or_else(|| invalid(format!("bad header {l:?}")))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            if !(100..200).contains(&status) {
                break (status, headers);
            }
        };
        let find = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 {
            // No body by definition.
        } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size_str = line.trim().split(';').next().unwrap_or("");
                let size =
                    usize::from_str_radix(size_str, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    // Trailers until an empty line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                reader.read_exact(&mut body[start..])?;
                line.clear();
                reader.read_line(&mut line)?; // CRLF after the chunk
            }
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        } else {
            reader.read_to_end(&mut body)?;
        }
        let _ = reader.get_ref().shutdown(Shutdown::Both);
        Ok(Response { status, headers, body })
    }
}

/// OCI Distribution calls on top of [`http`]. Functions named `try_*` return the raw response;
/// the others assert the success status the spec requires.
pub mod oci {
    use super::http::{self, Response};
    use super::*;

    pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
        application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json";

    /// Turns a `Location` header (absolute URL or absolute path) into a request path.
    pub fn location_path(location: &str) -> String {
        if let Some(rest) = location.strip_prefix("http://").or_else(|| location.strip_prefix("https://")) {
            match rest.find('/') {
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            }
        } else {
            location.to_string()
        }
    }

    /// Appends `key=value` to a path that may already carry a query string.
    pub fn with_query(path: &str, kv: &str) -> String {
        if path.contains('?') { format!("{path}&{kv}") } else { format!("{path}?{kv}") }
    }

    /// The `Location` of a response as a path, panicking if missing.
    pub fn location(resp: &Response) -> String {
        location_path(
            resp.header("Location")
                .unwrap_or_else(|| panic!("HTTP {} without Location: {:?}", resp.status, resp.headers)),
        )
    }

    /// `POST /v2/<repo>/blobs/uploads/` → 202 + Location (as a path).
    pub fn start_upload(addr: &str, repo: &str) -> std::io::Result<Result<String, Response>> {
        let r = http::request(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[])?;
        if r.status != 202 {
            return Ok(Err(r));
        }
        Ok(Ok(location(&r)))
    }

    /// Monolithic upload: POST, then PUT `?digest=` with the whole body. Returns the final response.
    pub fn try_push_blob(addr: &str, repo: &str, data: &[u8]) -> std::io::Result<Response> {
        let loc = match start_upload(addr, repo)? {
            Ok(loc) => loc,
            Err(r) => return Ok(r),
        };
        let digest = digest_of(data);
        http::request(
            addr,
            "PUT",
            &with_query(&loc, &format!("digest={digest}")),
            &[("Content-Type", "application/octet-stream")],
            data,
        )
    }

    /// Chunked upload: POST, PATCH per chunk (with Content-Range), PUT `?digest=` with no body.
    pub fn try_push_blob_chunked(addr: &str, repo: &str, data: &[u8], chunk: usize) -> std::io::Result<Response> {
        let mut loc = match start_upload(addr, repo)? {
            Ok(loc) => loc,
            Err(r) => return Ok(r),
        };
        let mut offset = 0usize;
        for piece in data.chunks(chunk.max(1)) {
            let range = format!("{}-{}", offset, offset + piece.len() - 1);
            let r = http::request(
                addr,
                "PATCH",
                &loc,
                &[("Content-Type", "application/octet-stream"), ("Content-Range", &range)],
                piece,
            )?;
            if r.status != 202 {
                return Ok(r);
            }
            loc = location(&r);
            offset += piece.len();
        }
        http::request(addr, "PUT", &with_query(&loc, &format!("digest={}", digest_of(data))), &[], &[])
    }

    /// Monolithic push that must succeed with 201 and the right `Docker-Content-Digest`.
    pub fn push_blob(addr: &str, repo: &str, data: &[u8]) -> String {
        let digest = digest_of(data);
        let r = try_push_blob(addr, repo, data).unwrap_or_else(|e| panic!("push blob to {repo}: {e}"));
        assert_eq!(r.status, 201, "blob PUT: {}", r.text());
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()), "blob PUT digest header");
        digest
    }

    pub fn try_put_manifest(
        addr: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> std::io::Result<Response> {
        http::request(addr, "PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("Content-Type", media_type)], bytes)
    }

    /// PUT a manifest that must succeed with 201 and the right `Docker-Content-Digest`.
    pub fn put_manifest(addr: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Response {
        let r = try_put_manifest(addr, repo, reference, media_type, bytes)
            .unwrap_or_else(|e| panic!("PUT manifest {repo}:{reference}: {e}"));
        assert_eq!(r.status, 201, "manifest PUT {repo}:{reference}: {}", r.text());
        assert_eq!(r.header("Docker-Content-Digest"), Some(digest_of(bytes).as_str()), "manifest PUT digest header");
        r
    }

    pub fn get_blob(addr: &str, repo: &str, digest: &str) -> std::io::Result<Response> {
        http::request(addr, "GET", &format!("/v2/{repo}/blobs/{digest}"), &[], &[])
    }

    pub fn get_manifest(addr: &str, repo: &str, reference: &str) -> std::io::Result<Response> {
        http::request(addr, "GET", &format!("/v2/{repo}/manifests/{reference}"), &[("Accept", ACCEPT_MANIFESTS)], &[])
    }

    /// A descriptor JSON object.
    pub fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
        serde_json::json!({ "mediaType": media_type, "digest": digest_of(data), "size": data.len() })
    }

    /// Serialized OCI image manifest with `config` and `layers` (given as (media type, bytes)).
    pub fn image_manifest(
        config: (&str, &[u8]),
        layers: &[(&str, &[u8])],
        artifact_type: Option<&str>,
        subject: Option<serde_json::Value>,
        annotations: Option<serde_json::Value>,
    ) -> Vec<u8> {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": descriptor(config.0, config.1),
            "layers": layers.iter().map(|(mt, b)| descriptor(mt, b)).collect::<Vec<_>>(),
        });
        if let Some(a) = artifact_type {
            m["artifactType"] = a.into();
        }
        if let Some(s) = subject {
            m["subject"] = s;
        }
        if let Some(a) = annotations {
            m["annotations"] = a;
        }
        serde_json::to_vec(&m).expect("serialize manifest")
    }
}

/// A cluster of real `gati-registry` processes on loopback, sharing one blob directory.
pub mod cluster {
    use super::*;

    /// N founding nodes with free HTTP and gRPC ports, their configs and data in a temporary dir.
    pub struct TestCluster {
        pub nodes: Vec<Registry>,
        pub dir: tempfile::TempDir,
        /// Node-to-node address of each node, by index.
        pub rpc: Vec<String>,
        members: String,
        shards: u16,
        extra: String,
        blobs: String,
    }

    /// The secret the test clusters' nodes share (node-to-node calls must carry it).
    pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";

    /// Writes node `id`'s configuration: `extra` top-level settings, and `blobs` as its
    /// `[blobs]` section (by default a directory shared by all nodes).
    fn node_config(dir: &Path, id: usize, shards: u16, rpc: &str, members: &str, extra: &str, blobs: &str) -> PathBuf {
        let config = dir.join(format!("node{id}.toml"));
        let blobs = if blobs.is_empty() {
            format!("[blobs]\npath = \"{}\"\n", dir.join("blobs").display())
        } else {
            blobs.to_owned()
        };
        let text = format!(
            "node_id = {id}\nshards = {shards}\nupload_idle_secs = 2\n{extra}\n[log]\nlevel = \"info,openraft=error\"\n\
             {blobs}\n[cluster]\nrpc_listen = \"{rpc}\"\nmembers = [{members}]\nsecret = \"{CLUSTER_SECRET}\"\n"
        );
        std::fs::write(&config, text).expect("write node config");
        config
    }

    impl TestCluster {
        /// Writes the configs, launches every node, and waits until each one is ready (every
        /// consensus group it runs has a leader).
        pub fn start(n: usize, shards: u16) -> TestCluster {
            TestCluster::start_with(n, shards, "", "")
        }

        /// Like [`TestCluster::start`], with `extra` top-level settings and `blobs` as the
        /// `[blobs]` section (empty: a shared directory) in every node's config.
        pub fn start_with(n: usize, shards: u16, extra: &str, blobs: &str) -> TestCluster {
            let dir = tempfile::tempdir().expect("tempdir");
            let rpc: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
            let members = rpc
                .iter()
                .enumerate()
                .map(|(i, addr)| format!("{{ id = {}, rpc = \"{addr}\" }}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let mut nodes = Vec::with_capacity(n);
            for (i, addr) in rpc.iter().enumerate() {
                let config = node_config(dir.path(), i + 1, shards, addr, &members, extra, blobs);
                let data = dir.path().join(format!("node{}", i + 1));
                nodes.push(Registry::launch_configured(free_port(), &data, &config));
            }
            for node in &mut nodes {
                node.wait_ready();
            }
            TestCluster { nodes, dir, rpc, members, shards, extra: extra.to_owned(), blobs: blobs.to_owned() }
        }

        /// Starts one more node that joins the running cluster by itself (its configuration lists
        /// the founders, not itself) and waits until it is ready. Returns its index.
        pub fn add_node(&mut self) -> usize {
            self.add_node_at(format!("127.0.0.1:{}", free_port()))
        }

        /// Like [`TestCluster::add_node`], with node-to-node address `addr` (which may be the
        /// address of a node that died).
        pub fn add_node_at(&mut self, addr: String) -> usize {
            let id = self.nodes.len() + 1;
            let config = node_config(self.dir.path(), id, self.shards, &addr, &self.members, &self.extra, &self.blobs);
            let data = self.dir.path().join(format!("node{id}"));
            let mut node = Registry::launch_configured(free_port(), &data, &config);
            node.wait_ready();
            self.nodes.push(node);
            self.rpc.push(addr);
            id - 1
        }

        /// `127.0.0.1:PORT` of node `i` (0-based).
        pub fn addr(&self, i: usize) -> String {
            self.nodes[i].addr()
        }

        /// Node `i`'s view of its consensus groups (`GET /cluster/status`).
        pub fn status(&self, i: usize) -> serde_json::Value {
            let r = http::must(&self.addr(i), "GET", "/cluster/status", &[], &[]);
            assert_eq!(r.status, 200, "cluster status: {}", r.text());
            r.json()
        }

        /// The node id (1-based) that node `i` believes leads `group`.
        pub fn leader_of(&self, i: usize, group: &str) -> Option<u64> {
            let status = self.status(i);
            let groups = status["groups"].as_array().expect("groups");
            groups.iter().find(|g| g["group"] == group).and_then(|g| g["leader"].as_u64())
        }
    }
}

/// A real S3-compatible server (s3s-fs, started through `scripts/s3-server.sh`) with one bucket,
/// stopped on drop.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server on a free loopback port; fails (never skips) if it is not installed.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("s3");
        let bucket = "gati".to_owned();
        // s3s-fs keeps each bucket as a directory of its root.
        std::fs::create_dir_all(data.join(&bucket)).expect("create the bucket directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-server.sh");
        let out = run_bounded(Command::new("bash").arg(script).arg("start").arg(&data), Duration::from_secs(30));
        assert!(
            out.status.success(),
            "the S3 server did not start (install it with scripts/install-test-deps.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let var = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("s3-server.sh printed no {k}"));
        S3Server {
            endpoint: var("S3_ENDPOINT"),
            bucket,
            access_key: var("S3_ACCESS_KEY_ID"),
            secret_key: var("S3_SECRET_ACCESS_KEY"),
            pid: var("S3_PID").parse().expect("pid"),
            _dir: dir,
        }
    }

    /// The `[blobs]` section of a node configuration that stores blobs in this server.
    pub fn blobs_toml(&self, redirect_reads: bool) -> String {
        format!(
            "[blobs]\nbackend = \"s3\"\n[blobs.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\naccess_key_id = \"{}\"\n\
             secret_access_key = \"{}\"\npart_size = 5242880\nredirect_reads = {redirect_reads}\n\
             allow_unconditional_writes = {}\n",
            self.endpoint,
            self.bucket,
            self.access_key,
            self.secret_key,
            // Garage 2.5 (the long runs) ignores conditional writes; s3s-fs honours them.
            std::env::var("S3_SERVER").is_ok_and(|s| s == "garage"),
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-9").arg(self.pid.to_string()).status();
    }
}
