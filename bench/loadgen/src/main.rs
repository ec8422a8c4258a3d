//! `gati-bench-loadgen`: the OCI push/pull workloads of `bench/run.sh`, std only.
//!
//! Subcommands (all print one JSON object on stdout; exit 1 on any protocol error):
//!
//! * `push-big --addr A --repo R --file F --digest D [--pid P]`: monolithic upload, POST then one
//!   streamed PUT `?digest=`. With `--pid`, samples the server's VmRSS every 10 ms during the
//!   upload and reports idle, peak and VmHWM.
//! * `pull-big --addr A --repo R --digest D --size N`: GET the blob, discard bytes, check length.
//! * `push-small --addr A --repo R --count N --size S --concurrency C`: N distinct random blobs
//!   of S bytes, each POST + PUT `?digest=` over keep-alive connections from C threads; reports
//!   ops/s and p50/p99/max latency per push.
//! * `seed-manifest --addr A --repo R --tag T`: pushes a config, a layer and an image manifest
//!   tagged T (for the manifest GET benchmark).
//! * `wait-ready --addr A --path P [--pid P] [--secs S]`: polls GET P until it answers 200
//!   (bounded by S seconds, default 60); fails early if process P exits.
//! * `sha256 FILE`: prints the hex digest (self-check of the built-in SHA-256).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(120);
const BUF: usize = 1 << 20;

/// Receives a response body piece by piece instead of it being buffered.
type Sink<'a> = Option<&'a mut dyn FnMut(&[u8])>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        die("usage: gati-bench-loadgen <push-big|pull-big|push-small|seed-manifest|sha256> [--flag value]...")
    };
    let flags = parse_flags(&args[1..]);
    sha256_self_check();
    let out = match cmd.as_str() {
        "push-big" => push_big(&flags),
        "pull-big" => pull_big(&flags),
        "push-small" => push_small(&flags),
        "seed-manifest" => seed_manifest(&flags),
        "wait-ready" => wait_ready(&flags),
        "sha256" => {
            let path = args.get(1).unwrap_or_else(|| die("sha256 FILE"));
            let mut h = Sha256::new();
            let mut f = File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
            let mut buf = vec![0u8; BUF];
            loop {
                let n = f.read(&mut buf).unwrap_or_else(|e| die(&e.to_string()));
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            format!("\"{}\"", hex(&h.finish()))
        }
        other => die(&format!("unknown subcommand {other}")),
    };
    println!("{out}");
}

/// Poll interval of the bounded wait loops (a plain, non-async program).
#[allow(clippy::disallowed_methods, reason = "sync program, bounded poll interval")]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(1)
}

fn parse_flags(args: &[String]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        if let Some(name) = k.strip_prefix("--") {
            let v = it.next().unwrap_or_else(|| die(&format!("--{name} needs a value")));
            m.insert(name.to_string(), v.clone());
        }
    }
    m
}

fn flag<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or_else(|| die(&format!("missing --{k}")))
}

fn flag_num(f: &HashMap<String, String>, k: &str) -> u64 {
    flag(f, k).parse().unwrap_or_else(|_| die(&format!("--{k} must be a number")))
}

// ------------------------------------------------------------------------------------------------
// HTTP/1.1 keep-alive client
// ------------------------------------------------------------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    body_len: u64,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Conn {
    addr: String,
    reader: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        Conn { addr: addr.to_string(), reader: None }
    }

    fn stream(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.reader.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.reader = Some(BufReader::with_capacity(BUF, s));
        }
        Ok(self.reader.as_mut().expect("just connected"))
    }

    /// Sends a request whose body is `body` (bytes) and returns the response. `sink` receives
    /// the response body instead of it being stored when given.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        sink: Sink<'_>,
    ) -> std::io::Result<Resp> {
        // One retry on a stale keep-alive connection (only possible before anything was read).
        for attempt in 0..2 {
            let fresh = self.reader.is_none();
            let r = self.try_request(method, path, headers, body.len() as u64, &mut |w| w.write_all(body));
            match r {
                Ok(()) => return self.read_response(method == "HEAD", sink),
                Err(e) if !fresh && attempt == 0 => {
                    let _ = e;
                    self.reader = None;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        len: u64,
        write_body: &mut dyn FnMut(&mut TcpStream) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let addr = self.addr.clone();
        let r = self.stream()?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let s = r.get_mut();
        s.write_all(head.as_bytes())?;
        write_body(s)?;
        s.flush()
    }

    fn read_response(&mut self, head_only: bool, mut sink: Sink<'_>) -> std::io::Result<Resp> {
        let r = self.reader.as_mut().expect("connected");
        let mut line = String::new();
        let (status, headers) = loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no status line"));
            }
            let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad(&line))?;
            let mut headers = Vec::new();
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').ok_or_else(|| bad(l))?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            if !(100..200).contains(&status) {
                break (status, headers);
            }
        };
        let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut body = Vec::new();
        let mut body_len = 0u64;
        let mut emit = |chunk: &[u8], body: &mut Vec<u8>| {
            body_len += chunk.len() as u64;
            match sink.as_mut() {
                Some(s) => s(chunk),
                None => body.extend_from_slice(chunk),
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        if head_only || status == 204 || status == 304 {
        } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let size =
                    usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad(&line))?;
                if size == 0 {
                    loop {
                        line.clear();
                        if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let mut left = size;
                while left > 0 {
                    let cap = buf.len();
                    let n = r.read(&mut buf[..left.min(cap)])?;
                    if n == 0 {
                        return Err(bad("EOF in chunk"));
                    }
                    emit(&buf[..n], &mut body);
                    left -= n;
                }
                line.clear();
                r.read_line(&mut line)?;
            }
        } else if let Some(len) = get("content-length") {
            let mut left: u64 = len.parse().map_err(|_| bad(&len))?;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(bad("EOF in body"));
                }
                emit(&buf[..n], &mut body);
                left -= n as u64;
            }
        } else {
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                emit(&buf[..n], &mut body);
            }
            self.reader = None;
        }
        if close {
            self.reader = None;
        }
        Ok(Resp { status, headers, body, body_len })
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response: {what:?}"))
}

fn location_path(loc: &str) -> String {
    match loc.strip_prefix("http://").or_else(|| loc.strip_prefix("https://")) {
        Some(rest) => rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_else(|| "/".into()),
        None => loc.to_string(),
    }
}

fn with_query(path: &str, kv: &str) -> String {
    if path.contains('?') { format!("{path}&{kv}") } else { format!("{path}?{kv}") }
}

fn start_upload(c: &mut Conn, repo: &str) -> Result<String, String> {
    let r =
        c.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[], None).map_err(|e| format!("POST: {e}"))?;
    if r.status != 202 {
        return Err(format!("POST: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    r.header("Location").map(location_path).ok_or_else(|| "POST: no Location".to_string())
}

fn push_blob(c: &mut Conn, repo: &str, data: &[u8], digest: &str) -> Result<(), String> {
    let loc = start_upload(c, repo)?;
    let r = c
        .request(
            "PUT",
            &with_query(&loc, &format!("digest={digest}")),
            &[("Content-Type", "application/octet-stream")],
            data,
            None,
        )
        .map_err(|e| format!("PUT: {e}"))?;
    if r.status != 201 {
        return Err(format!("PUT: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------------

fn read_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

fn push_big(f: &HashMap<String, String>) -> String {
    let addr = flag(f, "addr");
    let repo = flag(f, "repo");
    let path = flag(f, "file");
    let digest = flag(f, "digest");
    let pid: Option<u32> = f.get("pid").map(|p| p.parse().unwrap_or_else(|_| die("--pid")));
    let size = std::fs::metadata(path).unwrap_or_else(|e| die(&format!("{path}: {e}"))).len();

    // RSS sampler.
    let stop = Arc::new(AtomicBool::new(false));
    let idle_kib = pid.and_then(|p| read_kib(p, "VmRSS:"));
    let sampler = pid.map(|p| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            let mut samples = 0u64;
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Some(v) = read_kib(p, "VmRSS:") {
                    peak = peak.max(v);
                    samples += 1;
                }
                pause(Duration::from_millis(10));
            }
            (peak, samples)
        })
    });

    let mut c = Conn::new(addr);
    let t0 = Instant::now();
    let loc = start_upload(&mut c, repo).unwrap_or_else(|e| die(&e));
    let mut file = File::open(path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
    let mut buf = vec![0u8; BUF];
    c.try_request(
        "PUT",
        &with_query(&loc, &format!("digest={digest}")),
        &[("Content-Type", "application/octet-stream")],
        size,
        &mut |w| loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            w.write_all(&buf[..n])?;
        },
    )
    .unwrap_or_else(|e| die(&format!("PUT body: {e}")));
    let r = c.read_response(false, None).unwrap_or_else(|e| die(&format!("PUT response: {e}")));
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if r.status != 201 {
        die(&format!("PUT: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    if r.header("Docker-Content-Digest") != Some(digest) {
        die(&format!("PUT: Docker-Content-Digest {:?} != {digest}", r.header("Docker-Content-Digest")));
    }
    let (peak_kib, samples) = sampler.map(|s| s.join().unwrap_or((0, 0))).unwrap_or((0, 0));
    let hwm_kib = pid.and_then(|p| read_kib(p, "VmHWM:"));
    format!(
        "{{\"bytes\":{size},\"secs\":{secs:.4},\"mb_per_s\":{:.1},\"idle_rss_kib\":{},\"peak_rss_kib\":{peak_kib},\"hwm_kib\":{},\"rss_samples\":{samples}}}",
        size as f64 / secs / 1e6,
        idle_kib.unwrap_or(0),
        hwm_kib.unwrap_or(0)
    )
}

fn pull_big(f: &HashMap<String, String>) -> String {
    let addr = flag(f, "addr");
    let repo = flag(f, "repo");
    let digest = flag(f, "digest");
    let size = flag_num(f, "size");
    let mut c = Conn::new(addr);
    let t0 = Instant::now();
    let mut got = 0u64;
    let mut sink = |b: &[u8]| got += b.len() as u64;
    let r = c
        .request("GET", &format!("/v2/{repo}/blobs/{digest}"), &[], &[], Some(&mut sink))
        .unwrap_or_else(|e| die(&format!("GET: {e}")));
    let secs = t0.elapsed().as_secs_f64();
    if r.status != 200 || r.body_len != size {
        die(&format!("GET: HTTP {} with {} bytes, expected 200 with {size}", r.status, r.body_len));
    }
    format!("{{\"bytes\":{size},\"secs\":{secs:.4},\"mb_per_s\":{:.1}}}", size as f64 / secs / 1e6)
}

fn wait_ready(f: &HashMap<String, String>) -> String {
    let addr = flag(f, "addr");
    let path = flag(f, "path");
    let secs = f.get("secs").and_then(|s| s.parse().ok()).unwrap_or(60u64);
    let pid = f.get("pid");
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).try_exists().unwrap_or(false)
        {
            die(&format!("process {pid} exited before {path} answered 200 ({last})"));
        }
        let mut c = Conn::new(addr);
        match c.request("GET", path, &[], &[], None) {
            Ok(r) if r.status == 200 => {
                return format!("{{\"ready_after_s\":{:.3}}}", t0.elapsed().as_secs_f64());
            }
            Ok(r) => last = format!("HTTP {}", r.status),
            Err(e) => last = e.to_string(),
        }
        pause(Duration::from_millis(50));
    }
    die(&format!("{addr}{path} not ready within {secs}s: {last}"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn push_small(f: &HashMap<String, String>) -> String {
    let addr = flag(f, "addr").to_string();
    let repo = flag(f, "repo").to_string();
    let count = flag_num(f, "count") as usize;
    let size = flag_num(f, "size") as usize;
    let conc = flag_num(f, "concurrency") as usize;
    // Distinct random blobs and their digests, prepared before the clock starts.
    let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ (u64::from(std::process::id()) << 20) ^ 0x5DEECE66D;
    let blobs: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
        (0..count)
            .map(|_| {
                let mut v = Vec::with_capacity(size + 8);
                while v.len() < size {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    v.extend_from_slice(&seed.to_le_bytes());
                }
                v.truncate(size);
                let d = format!("sha256:{}", hex(&sha256(&v)));
                (v, d)
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(300);
    let threads: Vec<_> = (0..conc)
        .map(|_| {
            let (blobs, next, lat, errors, addr, repo) =
                (blobs.clone(), next.clone(), lat.clone(), errors.clone(), addr.clone(), repo.clone());
            std::thread::spawn(move || {
                let mut c = Conn::new(&addr);
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= blobs.len() || Instant::now() > deadline {
                        break;
                    }
                    let t = Instant::now();
                    match push_blob(&mut c, &repo, &blobs[i].0, &blobs[i].1) {
                        Ok(()) => mine.push(t.elapsed()),
                        Err(e) => {
                            c.reader = None;
                            errors.lock().expect("errors").push(e);
                        }
                    }
                }
                lat.lock().expect("lat").extend(mine);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut lat = Arc::try_unwrap(lat).map(|m| m.into_inner().expect("lat")).unwrap_or_default();
    lat.sort();
    let errors = errors.lock().expect("errors");
    if let Some(e) = errors.first() {
        eprintln!("loadgen: {} failed pushes, first: {e}", errors.len());
    }
    format!(
        "{{\"ok\":{},\"errors\":{},\"secs\":{secs:.4},\"ops_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        lat.len(),
        errors.len(),
        lat.len() as f64 / secs,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    )
}

fn seed_manifest(f: &HashMap<String, String>) -> String {
    let addr = flag(f, "addr");
    let repo = flag(f, "repo");
    let tag = flag(f, "tag");
    let mut c = Conn::new(addr);
    // The tag goes into the image config, so manifests seeded under different tags differ and a
    // load that moves a tag between two of them really changes it.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"gati.bench.seed-tag":"{tag}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes();
    let layer = b"gati bench layer".repeat(64);
    let cd = format!("sha256:{}", hex(&sha256(&config)));
    let ld = format!("sha256:{}", hex(&sha256(&layer)));
    push_blob(&mut c, repo, &config, &cd).unwrap_or_else(|e| die(&e));
    push_blob(&mut c, repo, &layer, &ld).unwrap_or_else(|e| die(&e));
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
         \"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{cd}\",\"size\":{}}},\
         \"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"{ld}\",\"size\":{}}}]}}",
        config.len(),
        layer.len()
    );
    let r = c
        .request(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
            None,
        )
        .unwrap_or_else(|e| die(&format!("PUT manifest: {e}")));
    if r.status != 201 {
        die(&format!("PUT manifest: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body)));
    }
    let md = format!("sha256:{}", hex(&sha256(manifest.as_bytes())));
    format!("{{\"digest\":\"{md}\",\"size\":{}}}", manifest.len())
}

// ------------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), so the load generator needs no crates.
// ------------------------------------------------------------------------------------------------

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

struct Sha256 {
    h: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Sha256 {
    fn new() -> Sha256 {
        Sha256 {
            h: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    fn block(&mut self, block: &[u8]) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in self.h.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len == 64 {
                let b = self.buf;
                self.block(&b);
                self.buf_len = 0;
            }
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            self.block(c);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len += rest.len();
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let len_after = (self.buf_len + 1) % 64;
        pad.extend(std::iter::repeat_n(0u8, if len_after <= 56 { 56 - len_after } else { 120 - len_after }));
        pad.extend_from_slice(&bits.to_be_bytes());
        let total = self.total;
        self.update(&pad);
        self.total = total;
        let mut out = [0u8; 32];
        for (o, v) in out.chunks_exact_mut(4).zip(self.h) {
            o.copy_from_slice(&v.to_be_bytes());
        }
        out
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_self_check() {
    let cases: [(&[u8], &str); 3] = [
        (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];
    for (input, want) in cases {
        if hex(&sha256(input)) != want {
            die("built-in SHA-256 failed its self-check");
        }
    }
}
