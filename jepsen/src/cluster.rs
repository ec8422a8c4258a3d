//! The cluster under test: real `gati-registry` processes (one per node, each in its own network
//! namespace when available) sharing one real S3-compatible server, started, killed, paused,
//! restarted, removed and re-added by the harness.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::JepsenError;
use crate::client::Http;
use crate::net::Net;

/// HTTP port of a node (plus its loopback offset).
const HTTP_PORT: u16 = 5100;
/// Node-to-node gRPC port of a node (plus its loopback offset).
const RPC_PORT: u16 = 7100;
/// Port of the S3 server on the harness address.
const S3_PORT: u16 = 9300;
/// How long `gati-registry cluster leave` may take before the removal is abandoned.
const LEAVE_WAIT: Duration = Duration::from_secs(20);
/// How long a node gets to answer `/readyz` after a (re)start.
const READY_WAIT: Duration = Duration::from_secs(60);

/// A deliberately wrong server behaviour, to show the harness detects it (debug builds only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlantedBug {
    /// Linearizable tag reads are served from the local replica without a read index.
    StaleTagReads,
}

impl PlantedBug {
    /// The server's name for it (`debug.planted_bug`).
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::StaleTagReads => "stale-tag-reads",
        }
    }
}

/// The S3 server holding the cluster's blobs.
#[derive(Clone, Debug)]
pub enum ObjectStore {
    /// s3s-fs (the CI server), at this binary.
    S3sFs(PathBuf),
    /// Garage 2.5 (the long runs), at this binary. It ignores conditional writes, so the nodes run
    /// with `allow_unconditional_writes`.
    Garage(PathBuf),
}

/// Garage's key formats: GK + 24 hex digits and a 64-hex-digit secret.
const GARAGE_KEY: (&str, &str) =
    ("GK0123456789abcdef01234567", "6761746920746573742073656372657420666f72206761726167652072756e73");
const S3S_FS_KEY: (&str, &str) = ("gati-test-access", "gati-test-secret-key");

impl ObjectStore {
    fn keys(&self) -> (&'static str, &'static str) {
        match self {
            ObjectStore::S3sFs(_) => S3S_FS_KEY,
            ObjectStore::Garage(_) => GARAGE_KEY,
        }
    }

    /// The command that serves the bucket `gati` on `host:S3_PORT` with data under `dir`.
    fn command(&self, host: &str, dir: &Path) -> Result<Command, JepsenError> {
        let (key, secret) = self.keys();
        match self {
            ObjectStore::S3sFs(binary) => {
                fs::create_dir_all(dir.join("gati"))?;
                let mut c = Command::new(binary);
                c.args(["--host", host, "--port", &S3_PORT.to_string(), "--access-key", key, "--secret-key", secret])
                    .arg(dir);
                Ok(c)
            }
            ObjectStore::Garage(binary) => {
                fs::create_dir_all(dir)?;
                let config = format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n[s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"{host}:{S3_PORT}\"\n\
                     root_domain = \".s3.garage.localhost\"\n",
                    d = dir.display(),
                    rpc = S3_PORT + 1,
                );
                let path = dir.join("garage.toml");
                fs::write(&path, config)?;
                let mut c = Command::new(binary);
                c.arg("-c").arg(path).args(["server", "--single-node", "--default-bucket"]);
                c.env("GARAGE_DEFAULT_ACCESS_KEY", key)
                    .env("GARAGE_DEFAULT_SECRET_KEY", secret)
                    .env("GARAGE_DEFAULT_BUCKET", "gati");
                Ok(c)
            }
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Number of nodes (all founders).
    pub nodes: usize,
    /// Metadata shards.
    pub shards: u16,
    /// The `gati-registry` binary.
    pub binary: PathBuf,
    /// The S3 server.
    pub store: ObjectStore,
    /// Working directory of the run (data, configs, logs).
    pub dir: PathBuf,
    /// A planted bug, if any.
    pub planted_bug: Option<PlantedBug>,
}

/// One node slot: the process currently running in it, if any.
#[derive(Debug)]
struct Slot {
    /// The node's Raft id; a node removed and added back gets a new id and an empty data dir.
    id: u64,
    /// Whether the node currently belongs to the cluster (not removed).
    member: bool,
    child: Option<Child>,
    paused: bool,
}

/// A running cluster; dropping it kills every process it started.
pub struct Cluster {
    spec: Spec,
    net: Net,
    s3: Option<Child>,
    slots: Vec<Slot>,
    next_id: u64,
}

fn spawn_logged(mut command: Command, log: &Path) -> Result<Child, JepsenError> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    command.spawn().map_err(|e| JepsenError::Setup(format!("starting {command:?}: {e}")))
}

impl Cluster {
    /// Starts the S3 server and every node, and waits until each is ready.
    pub fn start(spec: Spec, net: Net) -> Result<Cluster, JepsenError> {
        let s3 = spec.store.command(&net.harness_addr().to_string(), &spec.dir.join("s3"))?;
        let s3 = spawn_logged(s3, &spec.dir.join("s3.log"))?;
        let slots = (1..=spec.nodes).map(|i| Slot { id: i as u64, member: true, child: None, paused: false }).collect();
        let mut cluster = Cluster { next_id: spec.nodes as u64 + 1, spec, net, s3: Some(s3), slots };
        wait_listening(SocketAddr::new(cluster.net.harness_addr().into(), S3_PORT), READY_WAIT)?;
        for i in 1..=cluster.spec.nodes {
            cluster.spawn(i)?;
        }
        for i in 1..=cluster.spec.nodes {
            cluster.wait_ready(i)?;
        }
        Ok(cluster)
    }

    /// The network the nodes are on.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Number of node slots.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// The HTTP address of node slot `i` (1-based).
    pub fn http_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.net.node_addr(i).into(), HTTP_PORT + self.net.port_offset(i))
    }

    fn rpc_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.net.node_addr(i).into(), RPC_PORT + self.net.port_offset(i))
    }

    /// The slot of the member with Raft id `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id && s.member).map(|p| p + 1)
    }

    /// Slots whose process is running and not paused.
    pub fn up(&self) -> Vec<usize> {
        (1..=self.slots.len()).filter(|&i| self.slots[i - 1].child.is_some() && !self.slots[i - 1].paused).collect()
    }

    /// Slots that belong to the cluster (running or not).
    pub fn members(&self) -> Vec<usize> {
        (1..=self.slots.len()).filter(|&i| self.slots[i - 1].member).collect()
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.spec.dir.join(format!("node{i}-id{}", self.slots[i - 1].id))
    }

    fn write_config(&self, i: usize) -> Result<PathBuf, JepsenError> {
        let slot = &self.slots[i - 1];
        let mut members = String::new();
        for f in 1..=self.spec.nodes {
            let sep = if f > 1 { ", " } else { "" };
            let _ = write!(members, "{sep}{{ id = {f}, rpc = \"{}\" }}", self.rpc_addr(f));
        }
        let mut config = format!(
            "listen = \"{http}\"\ndata_dir = \"{data}\"\nnode_id = {id}\nshards = {shards}\nsnapshot_entries = 200\n\
             [log]\nlevel = \"info,openraft=warn\"\n\
             [blobs]\nbackend = \"s3\"\n\
             [blobs.s3]\nendpoint = \"http://{s3}:{S3_PORT}\"\nbucket = \"gati\"\naccess_key_id = \"{key}\"\n\
             secret_access_key = \"{secret}\"\nredirect_reads = false\nupload_lease_secs = 5\n\
             allow_unconditional_writes = {unconditional}\n\
             [cluster]\nrpc_listen = \"{rpc}\"\nreplicas = 3\nmembers = [{members}]\n",
            http = self.http_addr(i),
            data = self.data_dir(i).display(),
            id = slot.id,
            shards = self.spec.shards,
            s3 = self.net.harness_addr(),
            rpc = self.rpc_addr(i),
            key = self.spec.store.keys().0,
            secret = self.spec.store.keys().1,
            unconditional = matches!(self.spec.store, ObjectStore::Garage(_)),
        );
        if let Some(bug) = self.spec.planted_bug {
            let _ = write!(config, "[debug]\nplanted_bug = \"{}\"\n", bug.name());
        }
        let path = self.spec.dir.join(format!("node{i}.toml"));
        fs::write(&path, config)?;
        Ok(path)
    }

    fn spawn(&mut self, i: usize) -> Result<(), JepsenError> {
        let config = self.write_config(i)?;
        let prefix = self.net.exec_prefix(i);
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.spec.binary);
                c
            }
            None => Command::new(&self.spec.binary),
        };
        command.arg("serve").arg("--config").arg(&config);
        let child = spawn_logged(command, &self.spec.dir.join(format!("node{i}.log")))?;
        let slot = &mut self.slots[i - 1];
        slot.child = Some(child);
        slot.paused = false;
        Ok(())
    }

    /// Waits until node slot `i` answers `/readyz`.
    pub fn wait_ready(&mut self, i: usize) -> Result<(), JepsenError> {
        let deadline = Instant::now() + READY_WAIT;
        let http = Http::new(self.http_addr(i), Duration::from_secs(2));
        loop {
            if let Some(child) = self.slots[i - 1].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(JepsenError::Cluster(format!("node {i} exited during startup: {status}")));
            }
            if http.request("GET", "/readyz", &[], &[]).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(JepsenError::Cluster(format!("node {i} not ready within {READY_WAIT:?}")));
            }
            crate::pause(Duration::from_millis(100));
        }
    }

    fn signal(&mut self, i: usize, signal: i32) {
        if let Some(child) = &self.slots[i - 1].child {
            // SAFETY: kill(2) on a pid this harness spawned and has not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// `kill -9` node slot `i`.
    pub fn kill(&mut self, i: usize) {
        if self.slots[i - 1].paused {
            self.signal(i, libc::SIGCONT);
        }
        self.signal(i, libc::SIGKILL);
        if let Some(mut child) = self.slots[i - 1].child.take() {
            let _ = child.wait();
        }
        self.slots[i - 1].paused = false;
    }

    /// Restarts a killed member; it recovers from its data directory.
    pub fn restart(&mut self, i: usize) -> Result<(), JepsenError> {
        if self.slots[i - 1].child.is_none() && self.slots[i - 1].member {
            self.spawn(i)?;
        }
        Ok(())
    }

    /// `SIGSTOP` node slot `i`.
    pub fn pause(&mut self, i: usize) {
        if self.slots[i - 1].child.is_some() && !self.slots[i - 1].paused {
            self.signal(i, libc::SIGSTOP);
            self.slots[i - 1].paused = true;
        }
    }

    /// `SIGCONT` node slot `i`.
    pub fn resume(&mut self, i: usize) {
        if self.slots[i - 1].paused {
            self.signal(i, libc::SIGCONT);
            self.slots[i - 1].paused = false;
        }
    }

    /// Removes node slot `i` from the cluster (`gati-registry cluster leave` through another
    /// member), then stops it. Returns false when the change did not commit in time (a partition
    /// can withhold its quorum): the node then keeps running, and [`Cluster::finish_removal`]
    /// settles it once the network heals.
    pub fn remove(&mut self, i: usize) -> Result<bool, JepsenError> {
        if !self.leave(i)? {
            return Ok(false);
        }
        self.slots[i - 1].member = false;
        self.kill(i);
        Ok(true)
    }

    /// Completes a removal that [`Cluster::remove`] left pending (leaving is idempotent).
    pub fn finish_removal(&mut self, i: usize) -> Result<(), JepsenError> {
        for _ in 0..3 {
            if self.leave(i)? {
                self.slots[i - 1].member = false;
                self.kill(i);
                return Ok(());
            }
        }
        Err(JepsenError::Cluster(format!("node {i} could not be removed from a healed cluster")))
    }

    /// Runs `cluster leave` for slot `i`; false if it did not finish within [`LEAVE_WAIT`].
    fn leave(&mut self, i: usize) -> Result<bool, JepsenError> {
        let via = self.members().into_iter().find(|&m| m != i && self.up().contains(&m));
        let Some(via) = via else { return Err(JepsenError::Cluster("no other live member to remove through".into())) };
        let mut leave = Command::new(&self.spec.binary)
            .args(["cluster", "leave", "--via", &self.rpc_addr(via).to_string()])
            .args(["--node-id", &self.slots[i - 1].id.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Under a partition the change may never commit: give up on it, as an operator would.
        let deadline = Instant::now() + LEAVE_WAIT;
        let status = loop {
            if let Some(status) = leave.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = leave.kill();
                let _ = leave.wait();
                return Ok(false);
            }
            crate::pause(Duration::from_millis(100));
        };
        // A refusal (no leader yet, say) is as indeterminate as a timeout: the caller retries.
        Ok(status.success())
    }

    /// Adds a fresh node (new id, empty data directory) in removed slot `i`; it joins by itself.
    pub fn add(&mut self, i: usize) -> Result<(), JepsenError> {
        if self.slots[i - 1].member {
            return Ok(());
        }
        self.slots[i - 1].id = self.next_id;
        self.next_id += 1;
        self.slots[i - 1].member = true;
        self.spawn(i)
    }

    /// Undoes every process fault: resumes paused nodes and restarts killed members.
    pub fn recover(&mut self) -> Result<(), JepsenError> {
        for i in 1..=self.slots.len() {
            self.resume(i);
            self.restart(i)?;
        }
        Ok(())
    }

    /// Writes the nodes' status as JSON (for the report), through the first live node.
    pub fn status(&self) -> Option<String> {
        let i = *self.up().first()?;
        let http = Http::new(self.http_addr(i), Duration::from_secs(5));
        http.request("GET", "/cluster/status", &[], &[]).ok().map(|r| String::from_utf8_lossy(&r.body).into_owned())
    }
}

fn wait_listening(addr: SocketAddr, wait: Duration) -> Result<(), JepsenError> {
    let deadline = Instant::now() + wait;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(JepsenError::Setup(format!("nothing listens on {addr}")));
        }
        crate::pause(Duration::from_millis(50));
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 1..=self.slots.len() {
            self.kill(i);
        }
        if let Some(mut s3) = self.s3.take() {
            let _ = s3.kill();
            let _ = s3.wait();
        }
    }
}
