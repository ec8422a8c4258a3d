#!/usr/bin/env bash
# The S3-compatible server the tests run against: s3s-fs from crates.io, a real S3 implementation
# over a local directory (never a mock: it checks SigV4 signatures).
#
#   s3-server.sh install                      build it into the tool cache unless already there
#   s3-server.sh path                         print the binary path (exit 1 if not installed)
#   s3-server.sh start DATA_DIR [PORT]        start it on 127.0.0.1 (PORT 0 or omitted: a free
#                                             port), wait until it listens, print KEY=VALUE lines:
#                                             S3_ENDPOINT S3_PORT S3_PID S3_ACCESS_KEY_ID
#                                             S3_SECRET_ACCESS_KEY S3_REGION S3_LOG
#   s3-server.sh stop PID                     stop a server this script started
#
# Environment: GATI_TOOLS_DIR (default $HOME/.cache/gati-registry/tools), S3_ACCESS_KEY_ID and
# S3_SECRET_ACCESS_KEY (defaults below), S3_START_TIMEOUT_SECS (default 10).
# Loopback only: the server binds 127.0.0.1 and never anything else.
set -euo pipefail

S3S_FS_VERSION="0.14.1" # newer releases need rustc 1.96
TOOLS_DIR="${GATI_TOOLS_DIR:-$HOME/.cache/gati-registry/tools}"
BIN="$TOOLS_DIR/bin/s3s-fs"
ACCESS_KEY="${S3_ACCESS_KEY_ID:-gati-test-access}"
SECRET_KEY="${S3_SECRET_ACCESS_KEY:-gati-test-secret-key}"
START_TIMEOUT_SECS="${S3_START_TIMEOUT_SECS:-10}"

log() { printf 's3-server: %s\n' "$*" >&2; }

installed_version() {
    [ -x "$BIN" ] || return 1
    "$BIN" --version 2>/dev/null | awk '{ print $2 }'
}

cmd_install() {
    if [ "$(installed_version || true)" = "$S3S_FS_VERSION" ]; then
        return 0
    fi
    log "installing s3s-fs $S3S_FS_VERSION into $TOOLS_DIR (several minutes, once)"
    mkdir -p "$TOOLS_DIR"
    # The `binary` feature is what builds the server executable; its own target dir keeps this
    # build apart from the workspace's.
    CARGO_TARGET_DIR="$TOOLS_DIR/build" cargo install --locked --quiet \
        --root "$TOOLS_DIR" --version "$S3S_FS_VERSION" --features binary s3s-fs
    rm -rf "$TOOLS_DIR/build"
    [ "$(installed_version || true)" = "$S3S_FS_VERSION" ] || { log "ERROR: s3s-fs did not install"; exit 1; }
    log "installed $BIN"
}

cmd_path() {
    if [ "$(installed_version || true)" != "$S3S_FS_VERSION" ]; then
        log "ERROR: s3s-fs $S3S_FS_VERSION is not installed; run: scripts/s3-server.sh install"
        exit 1
    fi
    printf '%s\n' "$BIN"
}

cmd_start() {
    local data_dir="${1:?usage: s3-server.sh start DATA_DIR [PORT]}"
    local port="${2:-0}"
    local bin
    bin="$(cmd_path)"
    mkdir -p "$data_dir"
    local log_file="$data_dir.log"
    # s3s-fs logs its bound address at info level; that line is how a port-0 start learns its port.
    RUST_LOG="${RUST_LOG:-s3s_fs=info}" NO_COLOR=1 setsid "$bin" --host 127.0.0.1 --port "$port" \
        --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$data_dir" >"$log_file" 2>&1 </dev/null &
    local pid=$!
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    local address=""
    while [ -z "$address" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "ERROR: s3s-fs exited during startup; its log ($log_file):"
            cat "$log_file" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            log "ERROR: s3s-fs did not report its address within ${START_TIMEOUT_SECS}s; log: $log_file"
            exit 1
        fi
        address="$(grep -o 'server is running at http://127\.0\.0\.1:[0-9]*' "$log_file" | head -n1 | sed 's|.*http://||' || true)"
        [ -n "$address" ] || sleep 0.05
    done
    printf 'S3_ENDPOINT=http://%s\n' "$address"
    printf 'S3_PORT=%s\n' "${address##*:}"
    printf 'S3_PID=%s\n' "$pid"
    printf 'S3_ACCESS_KEY_ID=%s\n' "$ACCESS_KEY"
    printf 'S3_SECRET_ACCESS_KEY=%s\n' "$SECRET_KEY"
    printf 'S3_REGION=us-east-1\n'
    printf 'S3_LOG=%s\n' "$log_file"
}

cmd_stop() {
    local pid="${1:?usage: s3-server.sh stop PID}"
    # Only a process running the s3s-fs binary is ours to stop.
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" != "$(readlink -f "$BIN")" ]; then
        log "ERROR: $pid is not an s3s-fs server"
        exit 1
    fi
    kill "$pid"
    local deadline=$((SECONDS + 5))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
}

case "${1:-}" in
    install) cmd_install ;;
    path) cmd_path ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *)
        sed -n '2,14p' "$0" >&2
        exit 2
        ;;
esac
