//! One run: start the cluster, prepare the workloads, let the clients and the nemesis loose for
//! the time limit, heal, read everything back from every node, check the history and write the
//! report.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::Http;
use crate::cluster::{Cluster, ObjectStore, PlantedBug, Spec};
use crate::history::{EventType, History, Op, ProcessId};
use crate::nemesis::{self, NemesisKind, Window};
use crate::net::Net;
use crate::report;
use crate::rng::Rng;
use crate::workload::{self, Answer, Workload, append};
use crate::{JepsenError, Report, check_all};

/// How long a client waits for an answer before it records the operation as indeterminate.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per node of each final read (the cluster may still be electing right after healing).
const FINAL_READ_ATTEMPTS: usize = 60;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The fault schedule.
    pub nemesis: NemesisKind,
    /// Workload names (see [`workload::ALL`]).
    pub workloads: Vec<String>,
    /// How long clients and nemesis run.
    pub time_limit: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Pause between one client's operations.
    pub op_interval: Duration,
    /// Cluster nodes.
    pub nodes: usize,
    /// Metadata shards.
    pub shards: u16,
    /// A planted server bug to detect.
    pub planted_bug: Option<PlantedBug>,
    /// The `gati-registry` binary.
    pub binary: PathBuf,
    /// The S3 server.
    pub store: ObjectStore,
    /// The run's output directory.
    pub out: PathBuf,
    /// Whether to use network namespaces when available.
    pub namespaces: bool,
}

/// What a run found.
#[derive(Debug)]
pub struct RunOutcome {
    /// The checkers' report.
    pub report: Report,
    /// Operations invoked (final reads included).
    pub operations: usize,
    /// The fault windows.
    pub windows: Vec<Window>,
    /// Where the report was written.
    pub dir: PathBuf,
}

/// The history of a run, shared by its clients.
struct Recorder {
    history: Mutex<History>,
    started: Instant,
    next_process: AtomicU64,
}

impl Recorder {
    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn process(&self) -> ProcessId {
        ProcessId(self.next_process.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, kind: EventType, process: ProcessId, op: Op, node: usize, error: Option<String>) {
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let time = self.now_ns();
        let event = history.record(kind, process, time, op);
        event.node = Some(format!("n{node}"));
        event.error = error;
    }

    /// Runs `op` of `workload` against node `node` as `process`, recording invocation and
    /// completion; returns the outcome (after `Info` the caller must continue as a new process).
    fn run_op(&self, workload: &dyn Workload, http: &Http, node: usize, process: ProcessId, op: Op) -> Answer<()> {
        self.record(EventType::Invoke, process, op.clone(), node, None);
        match workload.execute(http, &op) {
            Answer::Ok(done) => {
                self.record(EventType::Ok, process, done, node, None);
                Answer::Ok(())
            }
            Answer::Fail(e) => {
                self.record(EventType::Fail, process, op, node, Some(e.clone()));
                Answer::Fail(e)
            }
            Answer::Info(e) => {
                self.record(EventType::Info, process, op, node, Some(e.clone()));
                Answer::Info(e)
            }
        }
    }
}

/// Locates the `gati-registry` binary next to the running executable's target directory.
pub fn default_binary() -> PathBuf {
    if let Ok(path) = std::env::var("GATI_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/gati-jepsen or target/<profile>/deps/<test>.
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("gati-registry")
}

/// The S3 server `scripts/s3-server.sh` installed: s3s-fs, or Garage when `S3_SERVER=garage`.
pub fn default_object_store() -> Result<ObjectStore, JepsenError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3-server.sh");
    let out = std::process::Command::new("bash").arg(script).arg("path").output()?;
    if !out.status.success() {
        return Err(JepsenError::Setup(format!("S3 server: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    let binary = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(match std::env::var("S3_SERVER").as_deref() {
        Ok("garage") => ObjectStore::Garage(binary),
        _ => ObjectStore::S3sFs(binary),
    })
}

/// FNV-1a-64 of the namespace, modulo the shard count: the documented namespace-to-shard map.
fn shard_of(namespace: &str, shards: u16) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in namespace.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(shards)) as u16
}

/// The slot leading `group`, from the cluster's status.
fn leader_slot(cluster: &Cluster, group: &str) -> Option<usize> {
    let status: serde_json::Value = serde_json::from_str(&cluster.status()?).ok()?;
    let leader = status["groups"].as_array()?.iter().find(|g| g["group"] == group)?["leader"].as_u64()?;
    cluster.slot_of(leader)
}

/// Runs one test and writes its report into `config.out`.
pub fn run(config: &RunConfig) -> Result<RunOutcome, JepsenError> {
    fs::create_dir_all(&config.out)?;
    let cluster_dir = config.out.join("cluster");
    let _ = fs::remove_dir_all(&cluster_dir);
    let net = Net::create(config.nodes, std::process::id() ^ (config.seed as u32), config.namespaces);
    if config.nemesis.needs_partitions() && !net.can_partition() {
        return Err(JepsenError::Setup(format!(
            "nemesis {} needs network namespaces, which this machine does not offer",
            config.nemesis.name()
        )));
    }
    let spec = Spec {
        nodes: config.nodes,
        shards: config.shards,
        binary: config.binary.clone(),
        store: config.store.clone(),
        dir: cluster_dir.clone(),
        planted_bug: config.planted_bug,
    };
    let cluster = Cluster::start(spec, net)?;
    let mut workloads: Vec<Box<dyn Workload>> = Vec::new();
    for name in &config.workloads {
        let mut w = workload::by_name(name, config.seed)
            .ok_or_else(|| JepsenError::Setup(format!("unknown workload {name}")))?;
        let http = Http::new(cluster.http_addr(1), REQUEST_TIMEOUT);
        w.setup(&http).map_err(|e| JepsenError::Cluster(format!("setting up {name}: {e}")))?;
        workloads.push(w);
    }
    let workloads: Arc<Vec<Box<dyn Workload>>> = Arc::new(workloads);
    let recorder = Arc::new(Recorder {
        history: Mutex::new(History::new()),
        started: Instant::now(),
        next_process: AtomicU64::new(0),
    });
    let addrs: Vec<_> = (1..=cluster.size()).map(|i| cluster.http_addr(i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + config.time_limit;

    // Clients: each picks a node and a workload per operation.
    let mut clients = Vec::new();
    for c in 0..config.clients {
        let (workloads, recorder, stop, addrs) = (workloads.clone(), recorder.clone(), stop.clone(), addrs.clone());
        let mut rng = Rng::fork(config.seed, 1 + c as u64);
        let interval = config.op_interval;
        clients.push(std::thread::spawn(move || {
            let mut process = recorder.process();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let node = 1 + rng.below(addrs.len() as u64) as usize;
                let workload = &workloads[rng.below(workloads.len() as u64) as usize];
                let op = workload.generate(&mut rng);
                let http = Http::new(addrs[node - 1], REQUEST_TIMEOUT);
                if let Answer::Info(_) = recorder.run_op(workload.as_ref(), &http, node, process, op) {
                    // The operation may still be in flight: this client continues as a new process.
                    process = recorder.process();
                }
                crate::pause(interval);
            }
        }));
    }

    // The nemesis, on this thread.
    let cluster = Mutex::new(cluster);
    let group = format!("shard-{:04}", shard_of("jepsen", config.shards));
    let mut rng = Rng::fork(config.seed, 0);
    let mut windows = Vec::new();
    let mut nemesis_error = None;
    let mut faults_on = config.nemesis != NemesisKind::None;
    while faults_on {
        let quiet = nemesis::draw(&mut rng, nemesis::QUIET);
        let length = nemesis::draw(&mut rng, nemesis::FAULT);
        if Instant::now() + quiet + length >= deadline {
            faults_on = false;
            continue;
        }
        crate::pause(quiet);
        let mut c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        let start_ns = recorder.now_ns();
        let fault = match nemesis::inject(config.nemesis, &mut c, &mut rng, &|c| leader_slot(c, &group)) {
            Ok(fault) => fault,
            Err(e) => {
                nemesis_error = Some(e);
                break;
            }
        };
        drop(c);
        let Some(fault) = fault else { continue };
        eprintln!("jepsen: [{:>6.1}s] {}", start_ns as f64 / 1e9, fault.description);
        crate::pause(length);
        let description = fault.description.clone();
        let mut c = cluster.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = nemesis::undo(fault, &mut c) {
            nemesis_error = Some(e);
            break;
        }
        windows.push(Window { start_ns, end_ns: recorder.now_ns(), description });
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    crate::pause(remaining);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }

    // Heal everything, then read back from every node.
    let mut cluster = cluster.into_inner().unwrap_or_else(PoisonError::into_inner);
    cluster.net().heal()?;
    cluster.recover()?;
    for i in cluster.members() {
        cluster.wait_ready(i)?;
    }
    if let Some(e) = nemesis_error {
        return Err(e);
    }
    let finals: Vec<(usize, Vec<Op>)> = {
        let history = recorder.history.lock().unwrap_or_else(PoisonError::into_inner);
        workloads.iter().enumerate().map(|(w, workload)| (w, workload.final_reads(&history))).collect()
    };
    // One reader per node, side by side: every node must answer every final read.
    std::thread::scope(|scope| {
        for node in cluster.members() {
            let (http, finals, workloads, recorder) =
                (Http::new(cluster.http_addr(node), REQUEST_TIMEOUT), &finals, &workloads, &recorder);
            scope.spawn(move || {
                for (w, ops) in finals {
                    for op in ops {
                        for _ in 0..FINAL_READ_ATTEMPTS {
                            let process = recorder.process();
                            let done = recorder.run_op(workloads[*w].as_ref(), &http, node, process, op.clone());
                            if let Answer::Ok(()) = done {
                                break;
                            }
                            crate::pause(Duration::from_millis(250));
                        }
                    }
                }
            });
        }
    });
    let status = cluster.status();
    drop(cluster);

    let mut history = Arc::try_unwrap(recorder)
        .map_err(|_| JepsenError::Setup("a client thread outlived the run".into()))?
        .history
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    append::order_reads(&mut history);
    let report = check_all(&history)?;
    report::write(&config.out, config, &history, &report, &windows, status.as_deref())?;
    // The nodes' data is large and useless after the check; their logs stay.
    for entry in fs::read_dir(&cluster_dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("node") && entry.path().is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let _ = fs::remove_dir_all(cluster_dir.join("s3"));
    Ok(RunOutcome { operations: history.len() / 2, report, windows, dir: config.out.clone() })
}

#[cfg(test)]
mod tests {
    use super::shard_of;

    #[test]
    fn the_shard_map_matches_the_registry_documentation() {
        // Pinned by the registry's own tests: FNV-1a-64("library") mod 16 = 0.
        assert_eq!(shard_of("library", 16), 0);
    }
}
