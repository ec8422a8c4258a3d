#!/usr/bin/env bash
# The S3-compatible server the tests run against, never a mock (both check SigV4 signatures):
#   S3_SERVER=s3s-fs (default)  s3s-fs from crates.io, a real S3 implementation over a local
#                               directory; builds in ~6 min; what CI uses.
#   S3_SERVER=garage            Garage 2.5 from crates.io, a real distributed object store (single
#                               node, sqlite metadata); builds in ~20 min; for long runs:
#                               `S3_SERVER=garage scripts/test.sh` runs every S3 test against it.
#
#   s3-server.sh install                      build it into the tool cache unless already there
#   s3-server.sh path                         print the binary path (exit 1 if not installed)
#   s3-server.sh start DATA_DIR [PORT]        start it on 127.0.0.1 (PORT 0 or omitted: a free
#                                             port), wait until it listens, print KEY=VALUE lines:
#                                             S3_ENDPOINT S3_PORT S3_PID S3_ACCESS_KEY_ID
#                                             S3_SECRET_ACCESS_KEY S3_REGION S3_LOG
#   s3-server.sh stop PID                     stop a server this script started
#
# A started server has the bucket `gati` (s3s-fs keeps buckets as directories of DATA_DIR and the
# script creates that one; Garage creates it at startup).
# Environment: S3_SERVER, GATI_TOOLS_DIR (default $HOME/.cache/gati-registry/tools),
# S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (s3s-fs only: Garage keys have a format of their own,
# so Garage always gets the fixed test pair below), S3_START_TIMEOUT_SECS (default 10).
# Loopback only: the server binds 127.0.0.1 and never anything else.
set -euo pipefail

S3S_FS_VERSION="0.14.1" # newer releases need rustc 1.96
GARAGE_VERSION="2.5.0"
SERVER="${S3_SERVER:-s3s-fs}"
TOOLS_DIR="${GATI_TOOLS_DIR:-$HOME/.cache/gati-registry/tools}"
START_TIMEOUT_SECS="${S3_START_TIMEOUT_SECS:-10}"

log() { printf 's3-server: %s\n' "$*" >&2; }

case "$SERVER" in
    s3s-fs)
        BIN="$TOOLS_DIR/bin/s3s-fs"
        VERSION="$S3S_FS_VERSION"
        ACCESS_KEY="${S3_ACCESS_KEY_ID:-gati-test-access}"
        SECRET_KEY="${S3_SECRET_ACCESS_KEY:-gati-test-secret-key}"
        ;;
    garage)
        BIN="$TOOLS_DIR/bin/garage"
        VERSION="$GARAGE_VERSION"
        # Garage's formats: GK + 24 hex digits, and a 64-hex-digit secret.
        ACCESS_KEY="GK0123456789abcdef01234567"
        SECRET_KEY="6761746920746573742073656372657420666f72206761726167652072756e73"
        ;;
    *)
        log "S3_SERVER must be s3s-fs or garage, not $SERVER"
        exit 2
        ;;
esac

installed_version() {
    [ -x "$BIN" ] || return 1
    # `s3s-fs 0.14.1`, or `garage cargo:2.5.0 [features: ...]`
    "$BIN" --version 2>/dev/null | head -n1 | awk '{ print $2 }' | sed 's/^cargo://'
}

cmd_install() {
    if [ "$(installed_version || true)" = "$VERSION" ]; then
        return 0
    fi
    log "installing $SERVER $VERSION into $TOOLS_DIR (several minutes, once)"
    mkdir -p "$TOOLS_DIR"
    # Each build gets a target dir of its own, apart from the workspace's, removed afterwards.
    if [ "$SERVER" = s3s-fs ]; then
        # The `binary` feature is what builds the server executable.
        CARGO_TARGET_DIR="$TOOLS_DIR/build" cargo install --locked --quiet \
            --root "$TOOLS_DIR" --version "$VERSION" --features binary s3s-fs
    else
        # Bundled sqlite instead of LMDB and system libraries: nothing to install from apt.
        CARGO_TARGET_DIR="$TOOLS_DIR/build" cargo install --locked --quiet \
            --root "$TOOLS_DIR" --version "$VERSION" --no-default-features --features bundled-libs,sqlite garage
    fi
    rm -rf "$TOOLS_DIR/build"
    [ "$(installed_version || true)" = "$VERSION" ] || { log "ERROR: $SERVER did not install"; exit 1; }
    log "installed $BIN"
}

cmd_path() {
    if [ "$(installed_version || true)" != "$VERSION" ]; then
        log "ERROR: $SERVER $VERSION is not installed; run: S3_SERVER=$SERVER scripts/s3-server.sh install"
        exit 1
    fi
    printf '%s\n' "$BIN"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Writes DATA_DIR/garage.toml: one node, sqlite metadata, S3 API on PORT, RPC on a free port.
garage_config() {
    local data_dir="$1" port="$2"
    local rpc_port secret
    rpc_port="$(free_port)"
    secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    {
        printf 'metadata_dir = "%s/meta"\n' "$data_dir"
        printf 'data_dir = "%s/data"\n' "$data_dir"
        printf 'db_engine = "sqlite"\n'
        printf 'replication_factor = 1\n'
        printf 'rpc_bind_addr = "127.0.0.1:%s"\n' "$rpc_port"
        printf 'rpc_public_addr = "127.0.0.1:%s"\n' "$rpc_port"
        printf 'rpc_secret = "%s"\n' "$secret"
        printf '[s3_api]\n'
        printf 's3_region = "us-east-1"\n'
        printf 'api_bind_addr = "127.0.0.1:%s"\n' "$port"
        printf 'root_domain = ".s3.garage.localhost"\n'
    } >"$data_dir/garage.toml"
}

cmd_start() {
    local data_dir="${1:?usage: s3-server.sh start DATA_DIR [PORT]}"
    local port="${2:-0}"
    local bin
    bin="$(cmd_path)"
    mkdir -p "$data_dir"
    data_dir="$(cd "$data_dir" && pwd)"
    local log_file="$data_dir.log"
    local pid pattern
    if [ "$SERVER" = garage ]; then
        # Garage logs the configured address, so a port-0 start picks a free port here.
        [ "$port" != 0 ] || port="$(free_port)"
        garage_config "$data_dir" "$port"
        GARAGE_DEFAULT_ACCESS_KEY="$ACCESS_KEY" GARAGE_DEFAULT_SECRET_KEY="$SECRET_KEY" GARAGE_DEFAULT_BUCKET=gati \
            RUST_LOG="${RUST_LOG:-garage=info}" NO_COLOR=1 setsid "$bin" -c "$data_dir/garage.toml" server \
            --single-node --default-bucket >"$log_file" 2>&1 </dev/null &
        pid=$!
        pattern='S3 API server listening on http://127\.0\.0\.1:[0-9]*'
    else
        mkdir -p "$data_dir/gati"
        # s3s-fs logs its bound address at info level; that line is how a port-0 start learns its port.
        RUST_LOG="${RUST_LOG:-s3s_fs=info}" NO_COLOR=1 setsid "$bin" --host 127.0.0.1 --port "$port" \
            --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$data_dir" >"$log_file" 2>&1 </dev/null &
        pid=$!
        pattern='server is running at http://127\.0\.0\.1:[0-9]*'
    fi
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    local address=""
    while [ -z "$address" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "ERROR: $SERVER exited during startup; its log ($log_file):"
            cat "$log_file" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            log "ERROR: $SERVER did not report its address within ${START_TIMEOUT_SECS}s; log: $log_file"
            exit 1
        fi
        address="$(grep -o "$pattern" "$log_file" | head -n1 | sed 's|.*http://||' || true)"
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
    # Only a process running the server binary is ours to stop.
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" != "$(readlink -f "$BIN")" ]; then
        log "ERROR: $pid is not a $SERVER server"
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
        sed -n '2,22p' "$0" >&2
        exit 2
        ;;
esac
