#!/usr/bin/env bash
# Side-by-side benchmark: gati-registry (release build) vs the CNCF distribution registry
# (Debian `docker-registry`, filesystem driver), same machine, same workloads, one run.
#
#   bash bench/run.sh            # full run (1 GiB blob, 2,000 x 64 KiB pushes, 10 s of wrk)
#   bash bench/run.sh --quick    # smoke run (64 MiB blob, 200 pushes, 3 s of wrk)
#
# Workloads, on each server in turn (both servers stay up for the whole run):
#   1. monolithic push of a BIG blob (POST, then one streamed PUT ?digest=), with the server's RSS
#      sampled from /proc/PID/status during the push;
#   2. pull of that blob (one GET, bytes discarded), next to `cat FILE > /dev/null` from page cache;
#      1 and 2 run BENCH_BIG_REPEAT times (default 3, each into a new repository): median reported;
#   3. COUNT pushes of distinct 64 KiB blobs at concurrency 16 (POST + PUT, keep-alive);
#   4. manifest GET by tag at concurrency 64 with wrk (after a short warm-up).
# Prints a table and writes bench/RESULTS.md (ratios gati/distribution against the targets).
#
# Everything binds to 127.0.0.1 on free ports; every wait is bounded. If gati cannot be built or
# does not become ready, it is reported as NOT RUN and the distribution half still runs.
# Environment knobs: GATI_BIN (prebuilt gati binary), BENCH_WARM_MIB, BENCH_SETTLE_SECS, BENCH_BIG_MIB, BENCH_SMALL_COUNT,
# BENCH_BIG_REPEAT, BENCH_WRK_SECS, BENCH_WRK_THREADS, BENCH_TMP (scratch parent dir, default /tmp), RESULTS_MD.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

QUICK=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $a" >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    BIG_MIB="${BENCH_BIG_MIB:-64}"; SMALL_COUNT="${BENCH_SMALL_COUNT:-200}"; WRK_SECS="${BENCH_WRK_SECS:-3}"
else
    BIG_MIB="${BENCH_BIG_MIB:-1024}"; SMALL_COUNT="${BENCH_SMALL_COUNT:-2000}"; WRK_SECS="${BENCH_WRK_SECS:-10}"
fi
# Big push/pull are repeated (each time into another repository) and the median is reported.
BIG_REPEAT="${BENCH_BIG_REPEAT:-3}"
SMALL_SIZE=65536
SMALL_CONC=16
WRK_CONC=64
WRK_THREADS="${BENCH_WRK_THREADS:-2}"
RESULTS_MD="${RESULTS_MD:-$ROOT/bench/RESULTS.md}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gati-registry/target}"

say() { printf '\n==> %s\n' "$*" >&2; }

for tool in wrk python3 sha256sum; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run scripts/install-test-deps.sh)" >&2; exit 1; }
done

WORK="$(mktemp -d "${BENCH_TMP:-/tmp}/gati-bench.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- build ------------------------------------------------------------------------------------
say "build load generator"
cargo build --quiet --release --manifest-path bench/loadgen/Cargo.toml \
    --target-dir "$CARGO_TARGET_DIR/bench-loadgen"
LOADGEN="$CARGO_TARGET_DIR/bench-loadgen/release/gati-bench-loadgen"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A PORT PID
GATI_VERSION="n/a"
if [ -n "${GATI_BIN:-}" ]; then
    say "gati: using GATI_BIN=$GATI_BIN"
else
    say "build gati-registry (release)"
    if cargo build --quiet --release --bin gati-registry >"$WORK/gati-build.log" 2>&1; then
        GATI_BIN="$CARGO_TARGET_DIR/release/gati-registry"
    else
        tail -20 "$WORK/gati-build.log" >&2
        echo "gati-registry release build failed; see the cargo output above" >"$WORK/gati.skipped"
    fi
fi

start_gati() {
    [ -e "$WORK/gati.skipped" ] && return 0
    if [ ! -x "${GATI_BIN:-}" ]; then
        echo "no gati-registry binary at '${GATI_BIN:-}'" >"$WORK/gati.skipped"
        return 0
    fi
    GATI_VERSION="$("$GATI_BIN" --version 2>/dev/null | head -1 || true)"
    PORT[gati]="$(free_port)"
    mkdir -p "$WORK/gati-data"
    RUST_LOG="${RUST_LOG:-warn}" "$GATI_BIN" serve --listen "127.0.0.1:${PORT[gati]}" \
        --data-dir "$WORK/gati-data" >"$WORK/gati.log" 2>&1 &
    PID[gati]=$!
    PIDS+=("${PID[gati]}")
    if ! "$LOADGEN" wait-ready --addr "127.0.0.1:${PORT[gati]}" --path /healthz --pid "${PID[gati]}" --secs 60 >/dev/null ||
        ! "$LOADGEN" wait-ready --addr "127.0.0.1:${PORT[gati]}" --path /readyz --pid "${PID[gati]}" --secs 60 >/dev/null; then
        {
            echo "gati-registry did not become ready (/healthz, /readyz) on 127.0.0.1:${PORT[gati]}."
            echo "Its log ends with: $(tail -c 600 "$WORK/gati.log" | tr '\n' ' ')"
        } >"$WORK/gati.skipped"
        kill -9 "${PID[gati]}" 2>/dev/null || true
    fi
}

start_distribution() {
    if ! command -v docker-registry >/dev/null; then
        echo "docker-registry is not installed (run scripts/install-test-deps.sh)" >"$WORK/distribution.skipped"
        return 0
    fi
    PORT[distribution]="$(free_port)"
    mkdir -p "$WORK/dist-data"
    cat >"$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/dist-data
http:
  addr: 127.0.0.1:${PORT[distribution]}
  secret: gati-bench
EOF
    docker-registry serve "$WORK/dist.yml" >"$WORK/distribution.log" 2>&1 &
    PID[distribution]=$!
    PIDS+=("${PID[distribution]}")
    if ! "$LOADGEN" wait-ready --addr "127.0.0.1:${PORT[distribution]}" --path /v2/ \
        --pid "${PID[distribution]}" --secs 60 >/dev/null; then
        echo "docker-registry did not become ready: $(tail -c 600 "$WORK/distribution.log")" >"$WORK/distribution.skipped"
    fi
}

LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg)"
say "start both servers"
start_gati
start_distribution
for s in gati distribution; do
    if [ -e "$WORK/$s.skipped" ]; then
        printf '\n!!! %s: NOT RUN: %s\n' "$s" "$(cat "$WORK/$s.skipped")" >&2
    else
        echo "$s: pid ${PID[$s]} on 127.0.0.1:${PORT[$s]}" >&2
    fi
done

# ---- fair footing -----------------------------------------------------------------------------
# On a virtual machine, guest memory that has never been touched costs the host a page fault on
# first write (measured here: 10 GiB took 29.7 s to write the first time, 11.9 s the next). Page
# cache grown by the workloads would charge that to whichever server happens to grow it. Touch
# the memory the workloads will use once, up front, so neither server pays the hypervisor.
WARM_MIB="${BENCH_WARM_MIB:-$(( (BIG_REPEAT * 2 + 4) * BIG_MIB ))}"
avail_mib="$(awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)"
if [ "$WARM_MIB" -gt "$((avail_mib / 2))" ]; then WARM_MIB="$((avail_mib / 2))"; fi
say "pre-fault ${WARM_MIB} MiB of memory (tmpfs write, then free)"
warm="$(mktemp -p /dev/shm gati-bench-warm.XXXXXX)"
head -c "$((WARM_MIB * 1024 * 1024))" /dev/zero >"$warm" || true
rm -f "$warm"

# A server that does not fsync (distribution) leaves its writes dirty in the page cache; the
# kernel flushes them later, during whatever runs next. And this VM's disk takes bursts into a
# host-side cache, then sustains only ~450 MB/s while that drains (measured: 4 GiB written and
# synced, the next fsync'd GiB took 2.8 s, then 0.7 s once drained). Before every timed push,
# outside the timing: flush, then let the disk settle, so each server meets the same idle disk and
# is measured with its own IO only.
SETTLE_SECS="${BENCH_SETTLE_SECS:-15}"
flush_dirty_pages() { sync; sleep "$SETTLE_SECS"; }

# ---- inputs -----------------------------------------------------------------------------------
say "create a $BIG_MIB MiB random blob"
BIG="$WORK/big.bin"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$BIG"
BIG_SIZE="$(stat -c %s "$BIG")"
BIG_DIGEST="sha256:$(sha256sum "$BIG" | cut -c1-64)"

say "page-cache baseline: cat big.bin > /dev/null"
cat "$BIG" >/dev/null
t0="$(date +%s%N)"; cat "$BIG" >/dev/null; t1="$(date +%s%N)"
python3 -c "import sys; print('{\"cat_mb_per_s\": %.1f}' % ($BIG_SIZE / (($t1 - $t0) / 1e9) / 1e6))" >"$WORK/baseline.json"
cat "$WORK/baseline.json" >&2

# ---- workloads --------------------------------------------------------------------------------
run_server() {
    local s="$1" addr="127.0.0.1:${PORT[$1]}" pid="${PID[$1]}"
    local i
    for i in $(seq 1 "$BIG_REPEAT"); do
        # Every repetition pushes new content (the same sequence on both servers), so each timed
        # push stores a new blob; repeating one blob would measure deduplication instead.
        printf 'gati-bench repetition %08d\n' "$i" | dd of="$BIG" conv=notrunc status=none
        BIG_DIGEST="sha256:$(sha256sum "$BIG" | cut -c1-64)"
        say "$s: ${BIG_MIB} MiB monolithic push #$i of $BIG_REPEAT (new content; RSS sampled)"
        flush_dirty_pages
        sleep 1 # let the server settle to its idle RSS
        timeout 600 "$LOADGEN" push-big --addr "$addr" --repo "bench/big$i" --file "$BIG" --digest "$BIG_DIGEST" \
            --pid "$pid" | tee -a "$WORK/$s.push_big.json" >&2

        say "$s: ${BIG_MIB} MiB pull #$i of $BIG_REPEAT"
        timeout 600 "$LOADGEN" pull-big --addr "$addr" --repo "bench/big$i" --digest "$BIG_DIGEST" \
            --size "$BIG_SIZE" | tee -a "$WORK/$s.pull_big.json" >&2
    done

    flush_dirty_pages
    say "$s: $SMALL_COUNT x 64 KiB pushes at concurrency $SMALL_CONC"
    timeout 600 "$LOADGEN" push-small --addr "$addr" --repo bench/small --count "$SMALL_COUNT" \
        --size "$SMALL_SIZE" --concurrency "$SMALL_CONC" | tee "$WORK/$s.push_small.json" >&2

    say "$s: manifest GET by tag, wrk -t$WRK_THREADS -c$WRK_CONC -d${WRK_SECS}s"
    "$LOADGEN" seed-manifest --addr "$addr" --repo bench/manifest --tag latest >/dev/null
    local url="http://$addr/v2/bench/manifest/manifests/latest"
    timeout 60 wrk -t"$WRK_THREADS" -c"$WRK_CONC" -d2s -s bench/manifest_get.lua "$url" >/dev/null # warm-up
    timeout "$((WRK_SECS + 60))" wrk -t"$WRK_THREADS" -c"$WRK_CONC" -d"${WRK_SECS}s" --latency \
        -s bench/manifest_get.lua "$url" >"$WORK/$s.wrk.txt"
    grep '^WRKJSON ' "$WORK/$s.wrk.txt" | sed 's/^WRKJSON //' | tee "$WORK/$s.manifest_get.json" >&2

    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$s exited during the benchmark" >&2
        return 1
    fi
}

for s in distribution gati; do
    [ -e "$WORK/$s.skipped" ] && continue
    if ! run_server "$s"; then
        echo "workloads failed on $s; log tail:" >&2
        tail -20 "$WORK/$s.log" >&2 || true
        exit 1
    fi
done

# ---- report -----------------------------------------------------------------------------------
NOTE=""
if [ "$QUICK" = 1 ]; then NOTE="Quick run (--quick): smaller sizes than the targets are defined for."; fi
python3 - "$WORK/meta.json" <<EOF
import json, os, platform, subprocess, sys, time
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
mem = sh("awk '/MemTotal/ {printf \"%.1f GiB RAM\", \$2/1048576}' /proc/meminfo")
json.dump({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu, "nproc": os.cpu_count(),
           "mem": mem, "kernel": platform.release(), "gati_version": """$GATI_VERSION""",
           "dist_version": sh("docker-registry --version"), "wrk_version": sh("wrk -v 2>&1 | head -1 | cut -d' ' -f1-2"),
           "loadavg": """$LOADAVG""",
           "big_mib": $BIG_MIB, "big_repeat": $BIG_REPEAT, "small_count": $SMALL_COUNT, "small_kib": $((SMALL_SIZE / 1024)),
           "small_conc": $SMALL_CONC, "wrk_conc": $WRK_CONC, "wrk_threads": $WRK_THREADS,
           "wrk_secs": $WRK_SECS, "note": """$NOTE"""}, open(sys.argv[1], "w"))
EOF
say "results"
python3 bench/report.py "$WORK" "$RESULTS_MD"
