//! The network the cluster under test runs on, and the faults it can suffer.
//!
//! With network namespaces (root, Linux): every node gets its own namespace, joined to a bridge
//! in the harness's namespace by a veth pair, on a private /24 that exists only while the run
//! does. The harness (clients, the S3 server) sits on the bridge's address. A partition installs
//! blackhole routes inside the nodes' namespaces, so packets between separated nodes are really
//! dropped (established connections stall, exactly as on a cut link) while clients still reach
//! every node. Everything is torn down on drop.
//!
//! Without namespaces the nodes share loopback (`127.0.0.x`); partitions are then unavailable and
//! the nemeses that need them are refused up front rather than silently skipped.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use crate::JepsenError;

/// How the nodes are connected.
#[derive(Debug)]
pub enum Net {
    /// One namespace per node behind a bridge.
    Namespaces(Namespaces),
    /// All nodes on loopback: no partitions.
    Loopback,
}

/// The namespaces, bridge and addresses of one run.
#[derive(Debug)]
pub struct Namespaces {
    tag: String,
    subnet: u8,
    nodes: usize,
    bridge: String,
}

fn ip(args: &[&str]) -> Result<(), JepsenError> {
    let out = Command::new("ip").args(args).output().map_err(|e| JepsenError::Setup(format!("ip {args:?}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(JepsenError::Setup(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl Net {
    /// Creates namespaces for `nodes` nodes when the machine allows it, otherwise falls back to
    /// loopback. `run` distinguishes concurrent runs' names and subnets.
    pub fn create(nodes: usize, run: u32, want_namespaces: bool) -> Net {
        if !want_namespaces {
            return Net::Loopback;
        }
        match Namespaces::create(nodes, run) {
            Ok(ns) => Net::Namespaces(ns),
            Err(e) => {
                eprintln!("jepsen: network namespaces unavailable ({e}); nodes share loopback, no partitions");
                Net::Loopback
            }
        }
    }

    /// The address node `i` (1-based) listens on.
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        match self {
            Net::Namespaces(ns) => Ipv4Addr::new(10, 77, ns.subnet, i as u8),
            Net::Loopback => Ipv4Addr::new(127, 0, 0, 1),
        }
    }

    /// Port offset of node `i`: on loopback every node needs its own ports.
    pub fn port_offset(&self, i: usize) -> u16 {
        match self {
            Net::Namespaces(_) => 0,
            Net::Loopback => i as u16,
        }
    }

    /// The address of the harness itself (clients and the S3 server), as the nodes see it.
    pub fn harness_addr(&self) -> Ipv4Addr {
        match self {
            Net::Namespaces(ns) => Ipv4Addr::new(10, 77, ns.subnet, 254),
            Net::Loopback => Ipv4Addr::new(127, 0, 0, 1),
        }
    }

    /// The command prefix that runs a program inside node `i`'s namespace.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        match self {
            Net::Namespaces(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.name(i)],
            Net::Loopback => Vec::new(),
        }
    }

    /// Whether partitions can be injected.
    pub fn can_partition(&self) -> bool {
        matches!(self, Net::Namespaces(_))
    }

    /// Cuts every link between a node of `a` and a node of `b` (1-based ids), both ways.
    pub fn cut(&self, a: &BTreeSet<usize>, b: &BTreeSet<usize>) -> Result<(), JepsenError> {
        let Net::Namespaces(ns) = self else {
            return Err(JepsenError::Setup("partitions need network namespaces".into()));
        };
        for &x in a {
            for &y in b {
                if x != y {
                    ns.blackhole(x, y)?;
                    ns.blackhole(y, x)?;
                }
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&self) -> Result<(), JepsenError> {
        if let Net::Namespaces(ns) = self {
            for i in 1..=ns.nodes {
                ip(&["-n", &ns.name(i), "route", "flush", "type", "blackhole"])?;
            }
        }
        Ok(())
    }
}

impl Namespaces {
    fn create(nodes: usize, run: u32) -> Result<Namespaces, JepsenError> {
        let tag = format!("gj{}", run % 100_000);
        let subnet = (run % 250) as u8 + 1;
        let ns = Namespaces { bridge: format!("{tag}br"), tag, subnet, nodes };
        // From here on, `Drop` removes whatever part was created.
        ip(&["link", "add", &ns.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.77.{subnet}.254/24"), "dev", &ns.bridge])?;
        ip(&["link", "set", &ns.bridge, "up"])?;
        for i in 1..=nodes {
            let name = ns.name(i);
            let outside = format!("{}v{i}", ns.tag);
            ip(&["netns", "add", &name])?;
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &name])?;
            ip(&["link", "set", &outside, "master", &ns.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            ip(&["-n", &name, "addr", "add", &format!("10.77.{subnet}.{i}/24"), "dev", "eth0"])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        allow_bridged_traffic(&ns.bridge);
        Ok(ns)
    }

    fn name(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    fn blackhole(&self, from: usize, to: usize) -> Result<(), JepsenError> {
        let dest = format!("10.77.{}.{to}/32", self.subnet);
        // `replace` makes a repeated cut idempotent.
        ip(&["-n", &self.name(from), "route", "replace", "blackhole", &dest])
    }
}

/// Hosts where bridged frames pass through iptables (`br_netfilter`) may drop them in a
/// restrictive FORWARD chain; accept this bridge's own traffic explicitly. Best effort: without
/// iptables there is no such filtering to get past.
fn allow_bridged_traffic(bridge: &str) {
    let _ = Command::new("iptables").args(["-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]).output();
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for i in 1..=self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &self.name(i)]).output();
        }
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", "-i", &self.bridge, "-o", &self.bridge, "-j", "ACCEPT"])
            .output();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}
