#!/usr/bin/env bash
# Cluster benchmark: a 3-node gati cluster on loopback (scripts/cluster, blobs in the local S3
# server) against a single gati node, same machine, one run.
#
#   bash bench/cluster.sh            # full run (10 s per measurement)
#   bash bench/cluster.sh --quick    # smoke run (2 s per measurement)
#
# Workloads:
#   1. tag updates (manifest PUT by tag, each one moving a tag between two manifests) at
#      concurrency 1, 16 and 64, sent to the shard's leader and to a follower (which forwards);
#      throughput and p50/p99 commit latency as the client sees it;
#   2. manifest GET by tag at concurrency 64: one node alone, then the 3-node cluster with the load
#      split over its nodes (linearizable reads, then stale reads);
#   3. the same reads with every node held to the same CPU budget (CAP_CPUS, default 0.4 of a CPU,
#      through a cgroup CPU quota), which stands in for one machine per node: on one shared machine
#      the three nodes otherwise compete for the same cores, and adding nodes cannot add capacity.
#      Skipped, and said so, where the cgroup CPU controller cannot be written (needs root).
# Writes the figures between the cluster markers of bench/RESULTS.md (the rest of the file is
# left alone). Loopback only; every run is bounded by wrk's duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
SECS=10
[ "${1:-}" = "--quick" ] && SECS=2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gati-registry/target}"
RESULTS_MD="${RESULTS_MD:-$ROOT/bench/RESULTS.md}"
CAP_CPUS="${CAP_CPUS:-0.4}"
# The quota's accounting period, in microseconds: the shortest whose quota is still the kernel's
# minimum of 1 ms (2500 us for 0.4 CPU), at most 10 ms.
CAP_PERIOD_US="${CAP_PERIOD_US:-$(python3 -c "print(min(10000, max(1000, int(1000 / float('$CAP_CPUS') + 0.5))))")}"
# scripts/cluster's nodes run with this secret, and `cluster status` must present it.
export GATI_CLUSTER_SECRET="${GATI_CLUSTER_SECRET:-local-cluster-secret-change-me}"
WORK="$(mktemp -d /tmp/gati-cluster-bench.XXXXXX)"
export GATI_CLUSTER_DIR="$WORK/cluster"
SOLO_PID=""
cleanup() {
    uncap_all
    bash scripts/cluster stop >/dev/null 2>&1 || true
    [ -n "$SOLO_PID" ] && kill -9 "$SOLO_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '\n==> %s\n' "$*" >&2; }

# ---- per-node CPU budgets ---------------------------------------------------------------------
# One cgroup per capped process, under the cgroup v2 hierarchy or the v1 `cpu` controller. Only the
# node processes are ever moved into one, never this shell (whose children would inherit it).
CGROUP_BASE=""
CAPPED=()
if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    CGROUP_BASE=/sys/fs/cgroup
    CGROUP_V=2
elif [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
    CGROUP_BASE=/sys/fs/cgroup/cpu
    CGROUP_V=1
fi

# cap PID: holds process PID (all its threads) to $CAP_CPUS CPUs.
cap() {
    local pid="$1" dir="$CGROUP_BASE/gati-bench-$1" quota
    # The shortest accounting period the kernel allows for this quota (a quota is at least 1 ms):
    # a node that spends its budget early in a period stalls for the rest of it, which a machine
    # of that size would not do. With the default 100 ms period that stall reached 60 ms, and
    # with 10 ms it still added up to 6 ms to every hop between nodes.
    quota="$(python3 -c "print(int(float('$CAP_CPUS') * $CAP_PERIOD_US))")"
    mkdir -p "$dir"
    if [ "$CGROUP_V" = 2 ]; then
        echo "+cpu" >"$CGROUP_BASE/cgroup.subtree_control" 2>/dev/null || true
        echo "$quota $CAP_PERIOD_US" >"$dir/cpu.max"
    else
        echo "$CAP_PERIOD_US" >"$dir/cpu.cfs_period_us"
        echo "$quota" >"$dir/cpu.cfs_quota_us"
    fi
    echo "$pid" >"$dir/cgroup.procs"
    CAPPED+=("$pid")
}

# Moves every capped process back to the root group and removes the groups.
uncap_all() {
    local pid
    for pid in "${CAPPED[@]}"; do
        echo "$pid" >"$CGROUP_BASE/cgroup.procs" 2>/dev/null || true
        rmdir "$CGROUP_BASE/gati-bench-$pid" 2>/dev/null || true
    done
    CAPPED=()
}

for tool in wrk python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/install-test-deps.sh)" >&2; exit 1; }
done
say "build (release)"
cargo build --quiet --release --bin gati-registry
cargo build --quiet --release --manifest-path bench/loadgen/Cargo.toml --target-dir "$CARGO_TARGET_DIR/bench-loadgen"
export GATI_BIN="$CARGO_TARGET_DIR/release/gati-registry"
LOADGEN="$CARGO_TARGET_DIR/bench-loadgen/release/gati-bench-loadgen"

wrk_json() { grep '^WRKJSON ' | sed 's/^WRKJSON //'; }

# One repository in each of the 16 shards (namespace teamN, the first N that lands in each shard
# by FNV-1a 64 mod 16), so a read load over them touches every shard and so every leader.
SPREAD_REPOS="$(python3 -c '
def fnv(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h
found = {}
n = 0
while len(found) < 16:
    found.setdefault(fnv(f"team{n}") % 16, f"team{n}/app")
    n += 1
print(" ".join(found[k] for k in sorted(found)))')"
seed_spread() {
    local repo
    for repo in $SPREAD_REPOS; do
        "$LOADGEN" seed-manifest --addr "$1" --repo "$repo" --tag latest >/dev/null
    done
}

# Seeds two manifests in REPO on ADDR and writes them to $WORK/a.json and $WORK/b.json.
seed_tags() {
    local addr="$1" repo="$2"
    "$LOADGEN" seed-manifest --addr "$addr" --repo "$repo" --tag a >/dev/null
    "$LOADGEN" seed-manifest --addr "$addr" --repo "$repo" --tag b >/dev/null
    local accept="application/vnd.oci.image.manifest.v1+json"
    curl -fsS -H "Accept: $accept" "http://$addr/v2/$repo/manifests/a" -o "$WORK/a.json"
    curl -fsS -H "Accept: $accept" "http://$addr/v2/$repo/manifests/b" -o "$WORK/b.json"
}

# put_load ADDR REPO CONCURRENCY -> WRKJSON of tag updates
put_load() {
    local threads=$(($3 < 2 ? 1 : 2))
    MANIFEST_A="$WORK/a.json" MANIFEST_B="$WORK/b.json" REPO="$2" TAGS=64 \
        timeout $((SECS + 60)) wrk -t"$threads" -c"$3" -d"${SECS}s" --latency -s bench/tag_put.lua "http://$1" | wrk_json
}

# get_load ADDR PATH CONNS SECS [stale] -> WRKJSON of manifest GETs
get_load() {
    local lua="bench/manifest_get.lua"
    if [ "${5:-}" = stale ]; then
        sed 's/^wrk.method = "GET"/wrk.method = "GET"\nwrk.headers["Gati-Read-Consistency"] = "stale"/' bench/manifest_get.lua >"$WORK/stale.lua"
        lua="$WORK/stale.lua"
    fi
    timeout $(($4 + 60)) wrk -t1 -c"$3" -d"${4}s" --latency -s "$lua" "http://$1$2" | wrk_json
}

declare -A R

# ---- single node ------------------------------------------------------------------------------
say "single node"
"$GATI_BIN" serve --listen 127.0.0.1:5190 --data-dir "$WORK/solo" --log-level warn >"$WORK/solo.log" 2>&1 &
SOLO_PID=$!
"$LOADGEN" wait-ready --addr 127.0.0.1:5190 --path /readyz --pid "$SOLO_PID" >/dev/null
seed_tags 127.0.0.1:5190 library/bench
"$LOADGEN" seed-manifest --addr 127.0.0.1:5190 --repo bench/manifest --tag latest >/dev/null
for c in 1 16 64; do
    R[solo_put_$c]="$(put_load 127.0.0.1:5190 library/bench "$c")"
done
get_load 127.0.0.1:5190 /v2/bench/manifest/manifests/latest 64 2 >/dev/null # warm-up
R[solo_get]="$(get_load 127.0.0.1:5190 /v2/bench/manifest/manifests/latest 64 "$SECS")"
if [ -n "$CGROUP_BASE" ]; then
    seed_spread 127.0.0.1:5190
    cap "$SOLO_PID"
    get_load 127.0.0.1:5190 /v2/bench/manifest/manifests/latest 64 2 >/dev/null # warm-up
    R[solo_get_capped]="$(get_load 127.0.0.1:5190 /v2/bench/manifest/manifests/latest 64 "$SECS")"
    R[solo_get_capped_spread]="$(REPOS="$SPREAD_REPOS" get_load 127.0.0.1:5190 / 64 "$SECS")"
    uncap_all
fi
kill "$SOLO_PID"; wait "$SOLO_PID" 2>/dev/null || true; SOLO_PID=""

# ---- 3-node cluster ---------------------------------------------------------------------------
say "3-node cluster"
bash scripts/cluster start -n 3 >/dev/null
seed_tags 127.0.0.1:5101 library/bench
"$LOADGEN" seed-manifest --addr 127.0.0.1:5101 --repo bench/manifest --tag latest >/dev/null
# `library` lives in shard FNV-1a("library") mod 16 = 0.
LEADER="$("$GATI_BIN" cluster status --rpc 127.0.0.1:7101 --json | python3 -c '
import json, sys
groups = json.load(sys.stdin)["groups"]
print(next(g["leader"] for g in groups if g["group"] == "shard-0000"))')"
FOLLOWER=$(( LEADER % 3 + 1 ))
for c in 1 16 64; do
    R[leader_put_$c]="$(put_load "127.0.0.1:510$LEADER" library/bench "$c")"
    R[follower_put_$c]="$(put_load "127.0.0.1:510$FOLLOWER" library/bench "$c")"
done
# cluster_get MODE [CONNS] -> one WRKJSON for CONNS connections to each node (default 21, so 64
# in all); with REPOS set, the reads rotate over those repositories.
cluster_get() {
    local mode="$1" conns="${2:-21}" n
    get_load 127.0.0.1:5101 /v2/bench/manifest/manifests/latest "$conns" 2 "$mode" >/dev/null # warm-up
    for n in 1 2 3; do
        get_load "127.0.0.1:510$n" /v2/bench/manifest/manifests/latest "$conns" "$SECS" "$mode" >"$WORK/get_${mode}_${n}.json" &
    done
    wait
    for n in 1 2 3; do
        if [ ! -s "$WORK/get_${mode}_${n}.json" ]; then
            echo "bench: the $mode reads from node $n reported nothing; the end of its log:" >&2
            tail -20 "$GATI_CLUSTER_DIR/node$n.log" >&2 || true
            exit 1
        fi
    done
    python3 -c '
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
print(json.dumps({"req_per_s": sum(r["req_per_s"] for r in runs), "p50_ms": max(r["p50_ms"] for r in runs),
                  "p99_ms": max(r["p99_ms"] for r in runs), "non2xx": sum(r["non2xx"] for r in runs)}))' \
        "$WORK/get_${mode}_1.json" "$WORK/get_${mode}_2.json" "$WORK/get_${mode}_3.json"
}
for mode in linearizable stale; do
    R[cluster_get_$mode]="$(cluster_get "$mode")"
done
if [ -n "$CGROUP_BASE" ]; then
    seed_spread 127.0.0.1:5101
    for n in 1 2 3; do cap "$(cat "$GATI_CLUSTER_DIR/node$n.pid")"; done
    # Each node gets the 64 connections the single node had: three machines, each serving its
    # own clients.
    for mode in linearizable stale; do
        R[cluster_get_${mode}_capped]="$(cluster_get "$mode" 64)"
        R[cluster_get_${mode}_capped_spread]="$(REPOS="$SPREAD_REPOS" cluster_get "$mode" 64)"
    done
    uncap_all
else
    say "no writable cgroup CPU controller: the per-node CPU budget reads are skipped"
fi

# ---- report -----------------------------------------------------------------------------------
args=()
for k in "${!R[@]}"; do args+=("$k=${R[$k]}"); done
python3 - "$RESULTS_MD" "$SECS" "$(nproc)" "$LEADER" "$CAP_CPUS" "$CAP_PERIOD_US" "${args[@]}" <<'PY'
import json, sys
path, secs, cpus, leader, cap, period = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
r = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[7:])}
def row(name, x):
    return f"| {name} | {x['req_per_s']:.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x.get('non2xx', 0)} |"
lines = ["<!-- cluster:begin -->", "## Cluster (bench/cluster.sh)", "",
         f"3 gati nodes on loopback, one {cpus}-CPU machine shared by all nodes, the S3 server and wrk; "
         f"{secs} s per measurement. Tag updates are manifest PUTs by tag, each moving a tag between two "
         f"manifests (a committed Raft write); the shard's leader was node {leader}.", "",
         "### Tag updates (commit latency as the client sees it)", "",
         "| target, concurrency | updates/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|"]
for c in (1, 16, 64):
    lines.append(row(f"single node, {c}", r[f"solo_put_{c}"]))
    lines.append(row(f"cluster via leader, {c}", r[f"leader_put_{c}"]))
    lines.append(row(f"cluster via follower (forwarded), {c}", r[f"follower_put_{c}"]))
p99_16 = r["leader_put_16"]["p99_ms"]
lines += ["", f"Target p99 < 10 ms at concurrency 16 (via leader): {p99_16:.2f} ms — "
          f"{'PASS' if p99_16 < 10 else 'FAIL'}.", "",
          "### Manifest GET by tag, 64 connections", "",
          "| setup | req/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|",
          row("1 node", r["solo_get"]),
          row("3 nodes, linearizable (read index)", r["cluster_get_linearizable"]),
          row("3 nodes, stale reads", r["cluster_get_stale"]), "",
          f"Read scaling 3 nodes / 1 node: linearizable {r['cluster_get_linearizable']['req_per_s'] / r['solo_get']['req_per_s']:.2f}x, "
          f"stale {r['cluster_get_stale']['req_per_s'] / r['solo_get']['req_per_s']:.2f}x "
          f"(all three nodes share the same {cpus} CPUs here, so this shows the cost of replication, not the "
          f"capacity of three machines)."]
if "solo_get_capped" in r:
    def scale(key, solo_key):
        return r[key]["req_per_s"] / r[solo_key]["req_per_s"]
    lines += ["", f"### Manifest GET by tag, every node held to {cap} CPU", "",
              f"Each node process runs in a cgroup with a CPU quota of {cap} CPU ({int(period) / 1000:g} ms periods), the single "
              "node as well as each of the three, so every node has the capacity of one small machine of its "
              "own; wrk runs outside the quotas. Every node gets 64 connections, as the single node does. "
              "*One repository*: every read is of one tag in one shard, whose one leader answers every "
              "follower's read-index request. *16 repositories*: one in each shard, so the reads reach every "
              "shard's leader, spread over the nodes.", "",
              "| setup | req/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|",
              row(f"1 node, {cap} CPU, one repository", r["solo_get_capped"]),
              row(f"3 nodes, {cap} CPU each, one repository, linearizable", r["cluster_get_linearizable_capped"]),
              row(f"3 nodes, {cap} CPU each, one repository, stale", r["cluster_get_stale_capped"]),
              row(f"1 node, {cap} CPU, 16 repositories", r["solo_get_capped_spread"]),
              row(f"3 nodes, {cap} CPU each, 16 repositories, linearizable", r["cluster_get_linearizable_capped_spread"]),
              row(f"3 nodes, {cap} CPU each, 16 repositories, stale", r["cluster_get_stale_capped_spread"]), "",
              "Read scaling 3 nodes / 1 node at equal capacity per node (target: reads scale with nodes): "
              f"one repository: linearizable {scale('cluster_get_linearizable_capped', 'solo_get_capped'):.2f}x, "
              f"stale {scale('cluster_get_stale_capped', 'solo_get_capped'):.2f}x; 16 repositories: linearizable "
              f"{scale('cluster_get_linearizable_capped_spread', 'solo_get_capped_spread'):.2f}x, stale "
              f"{scale('cluster_get_stale_capped_spread', 'solo_get_capped_spread'):.2f}x."]
else:
    lines += ["", "(The per-node CPU budget measurement was skipped: no writable cgroup CPU controller.)"]
lines.append("<!-- cluster:end -->")
section = "\n".join(lines) + "\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
if "<!-- cluster:begin -->" in text:
    head, rest = text.split("<!-- cluster:begin -->", 1)
    tail = rest.split("<!-- cluster:end -->", 1)[1] if "<!-- cluster:end -->" in rest else ""
    text = head + section + tail.lstrip("\n")
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
print(section)
PY
