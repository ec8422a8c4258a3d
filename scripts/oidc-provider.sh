#!/usr/bin/env bash
# The OpenID Connect provider the tests sign in through, never a mock: panva's certified
# `oidc-provider` (npm, pinned by scripts/oidc/package-lock.json) run by scripts/oidc/provider.mjs
# on loopback. One confidential client (gati-registry / gati-test-client-secret-0123456789,
# client_secret_basic or client_secret_post), scopes openid email profile, any login accepted
# (any password), RS256 ID tokens carrying sub, email, email_verified, preferred_username and name.
#
# The same port also plays GitHub (OAuth app endpoints, GitHub Enterprise Server layout: web base
# http://127.0.0.1:PORT, REST API base http://127.0.0.1:PORT/api/v3), on top of the same client,
# login and consent pages, PKCE policy and one-time codes:
#   GET  /login/oauth/authorize?client_id&redirect_uri&scope=read:user user:email&state
#        &code_challenge&code_challenge_method=S256      (no response_type, openid or nonce needed)
#        -> login + consent -> 303 redirect_uri?code=...&state=...   (no iss)
#   POST /login/oauth/access_token  form: client_id client_secret code redirect_uri code_verifier
#        -> always HTTP 200; with `Accept: application/json`
#           {"access_token":"...","token_type":"bearer","scope":"read:user,user:email"}, or
#           {"error":"bad_verification_code"|"incorrect_client_credentials"|"redirect_uri_mismatch",
#            "error_description":...,"error_uri":...}; without it the same fields form-urlencoded
#   GET  /api/v3/user         (Authorization: Bearer T or token T, and a User-Agent: else 403)
#        -> {"id":<FNV-1a 31-bit of the login>,"login":L,"name":L,"email":null}; 401 Bad credentials
#   GET  /api/v3/user/emails  -> [{"email":"L@github.test","primary":true,"verified":true,
#        "visibility":"private"},{"email":"L-alt@github.test","primary":false,"verified":false,
#        "visibility":null}]   (needs scope user:email or user: else 404)
#
#   oidc-provider.sh install      npm ci the package into the tool cache unless already there
#                                 (needs Node.js >= 20.19 and npm; a few seconds, once)
#   oidc-provider.sh path         print the install directory (exit 1 if not installed)
#   oidc-provider.sh start        start it on 127.0.0.1:$OIDC_PORT (unset or 0: a free port) for
#                                 the redirect URIs in $REDIRECT_URIS (comma-separated), keep
#                                 its pid file and log in $OIDC_DIR (unset: a new temp dir), wait
#                                 until /.well-known/openid-configuration answers, print KEY=VALUE
#                                 lines: issuer port pid dir log client_id client_secret
#   oidc-provider.sh stop [DIR]   stop the provider whose pid file is in DIR (default $OIDC_DIR)
#   oidc-provider.sh status [DIR] print state=running|stopped (+ pid, issuer); exit 0 if running
#
# Environment: GATI_TOOLS_DIR (default $HOME/.cache/gati-registry/tools), OIDC_PORT,
# REDIRECT_URIS, OIDC_DIR, OIDC_REQUIRE_PKCE (1 = default: authorization requests must carry an
# S256 code_challenge; 0: optional), OIDC_START_TIMEOUT_SECS (default 20).
# Loopback only: the provider binds 127.0.0.1 and never anything else.
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/oidc" && pwd)"
TOOLS_DIR="${GATI_TOOLS_DIR:-$HOME/.cache/gati-registry/tools}"
INSTALL_DIR="$TOOLS_DIR/oidc-provider"
VERSION="9.13.3" # must match scripts/oidc/package.json
START_TIMEOUT_SECS="${OIDC_START_TIMEOUT_SECS:-20}"
INSTALL_TIMEOUT_SECS=900
NODE_MIN="20.19"

log() { printf 'oidc-provider: %s\n' "$*" >&2; }

require_node() {
    command -v node >/dev/null 2>&1 || { log "ERROR: node is not on PATH (Node.js >= $NODE_MIN is needed)"; exit 1; }
    local v
    v="$(node -p 'process.versions.node')"
    if ! node -e '
        const [a, b] = process.argv[1].split(".").map(Number), [c, d] = process.argv[2].split(".").map(Number);
        process.exit(a > c || (a === c && b >= d) ? 0 : 1)' "$v" "$NODE_MIN"; then
        log "ERROR: Node.js $v is too old; oidc-provider $VERSION needs >= $NODE_MIN"
        exit 1
    fi
}

installed_version() {
    # Installed means: the cache holds exactly this lock file, and npm ci finished there.
    [ -f "$INSTALL_DIR/.installed" ] || return 1
    cmp -s "$SRC_DIR/package.json" "$INSTALL_DIR/package.json" || return 1
    cmp -s "$SRC_DIR/package-lock.json" "$INSTALL_DIR/package-lock.json" || return 1
    node -p 'require(process.argv[1]).version' "$INSTALL_DIR/node_modules/oidc-provider/package.json" 2>/dev/null
}

cmd_install() {
    require_node
    if [ "$(installed_version || true)" = "$VERSION" ]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || { log "ERROR: npm is not on PATH"; exit 1; }
    log "installing oidc-provider $VERSION into $INSTALL_DIR"
    mkdir -p "$TOOLS_DIR"
    # Install into a staging directory and swap it in, so an interrupted install leaves nothing
    # that looks installed.
    local staging="$INSTALL_DIR.staging.$$"
    rm -rf "$staging"
    mkdir -p "$staging"
    cp "$SRC_DIR/package.json" "$SRC_DIR/package-lock.json" "$staging/"
    local npm_timeout=()
    command -v timeout >/dev/null 2>&1 && npm_timeout=(timeout "$INSTALL_TIMEOUT_SECS")
    if ! (cd "$staging" && "${npm_timeout[@]}" npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2); then
        rm -rf "$staging"
        log "ERROR: npm ci failed"
        exit 1
    fi
    touch "$staging/.installed"
    rm -rf "$INSTALL_DIR"
    mv "$staging" "$INSTALL_DIR"
    [ "$(installed_version || true)" = "$VERSION" ] || { log "ERROR: oidc-provider $VERSION did not install"; exit 1; }
    log "installed $INSTALL_DIR"
}

cmd_path() {
    if [ "$(installed_version || true)" != "$VERSION" ]; then
        log "ERROR: oidc-provider $VERSION is not installed; run: bash scripts/oidc-provider.sh install"
        exit 1
    fi
    printf '%s\n' "$INSTALL_DIR"
}

free_port() {
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# Whether PID is a running provider.mjs (so a stale pid file never makes us signal a stranger).
is_provider() {
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep "node .*scripts/oidc/provider\.mjs" >/dev/null
}

# One HTTP GET of the discovery document with a 2 s bound; exit 0 if it names ISSUER.
discovery_ok() {
    node -e '
        const [url, issuer] = process.argv.slice(1);
        fetch(url, { signal: AbortSignal.timeout(2000) })
            .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
            .then((d) => process.exit(d.issuer === issuer ? 0 : 1), () => process.exit(1));
    ' "$1/.well-known/openid-configuration" "$1" 2>/dev/null
}

cmd_start() {
    require_node
    cmd_path >/dev/null
    [ -n "${REDIRECT_URIS:-}" ] || { log "ERROR: set REDIRECT_URIS (comma-separated redirect URIs of the client)"; exit 2; }
    local dir="${OIDC_DIR:-}"
    if [ -z "$dir" ]; then
        dir="$(mktemp -d "${TMPDIR:-/tmp}/gati-oidc.XXXXXX")"
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local pid_file="$dir/oidc-provider.pid" log_file="$dir/oidc-provider.log"
    if [ -f "$pid_file" ] && is_provider "$(cat "$pid_file")"; then
        log "ERROR: a provider already runs from $dir (pid $(cat "$pid_file")); stop it first"
        exit 1
    fi
    # A picked free port can be taken before node binds it: then pick another (3 attempts).
    local attempts=1 port="${OIDC_PORT:-0}"
    [ "$port" != 0 ] || attempts=3
    local attempt pid issuer
    for attempt in $(seq 1 "$attempts"); do
        [ "${OIDC_PORT:-0}" != 0 ] || port="$(free_port)"
        issuer="http://127.0.0.1:$port"
        # The log is appended to; only what this start writes counts (after byte $offset).
        local offset=0
        [ -f "$log_file" ] && offset="$(wc -c <"$log_file")"
        PORT="$port" REDIRECT_URIS="$REDIRECT_URIS" OIDC_PROVIDER_HOME="$INSTALL_DIR" NO_COLOR=1 \
            setsid node "$SRC_DIR/provider.mjs" >>"$log_file" 2>&1 </dev/null &
        pid=$!
        printf '%s\n' "$pid" >"$pid_file"
        printf '%s\n' "$issuer" >"$dir/issuer"
        local deadline=$((SECONDS + START_TIMEOUT_SECS))
        # Ready once this process says it listens (so no other server on the port can answer for
        # it) and its discovery document answers.
        while ! { tail -c "+$((offset + 1))" "$log_file" | grep "^oidc-provider listening on $issuer " >/dev/null &&
            discovery_ok "$issuer"; }; do
            if ! kill -0 "$pid" 2>/dev/null; then
                rm -f "$pid_file"
                if [ "$attempt" -lt "$attempts" ] && tail -c "+$((offset + 1))" "$log_file" | grep EADDRINUSE >/dev/null; then
                    log "port $port was taken; trying another"
                    continue 2
                fi
                log "ERROR: the provider exited during startup; its log ($log_file):"
                tail -c "+$((offset + 1))" "$log_file" >&2
                exit 1
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                kill "$pid" 2>/dev/null || true
                rm -f "$pid_file"
                log "ERROR: $issuer/.well-known/openid-configuration did not answer within ${START_TIMEOUT_SECS}s; log: $log_file"
                tail -c "+$((offset + 1))" "$log_file" >&2
                exit 1
            fi
            sleep 0.1
        done
        printf 'issuer=%s\n' "$issuer"
        printf 'port=%s\n' "$port"
        printf 'pid=%s\n' "$pid"
        printf 'dir=%s\n' "$dir"
        printf 'log=%s\n' "$log_file"
        printf 'client_id=gati-registry\n'
        printf 'client_secret=gati-test-client-secret-0123456789\n'
        return 0
    done
}

cmd_stop() {
    local dir="${1:-${OIDC_DIR:-}}"
    [ -n "$dir" ] || { log "ERROR: usage: oidc-provider.sh stop DIR (or set OIDC_DIR)"; exit 2; }
    local pid_file="$dir/oidc-provider.pid"
    [ -f "$pid_file" ] || { log "no pid file in $dir: nothing to stop"; return 0; }
    local pid
    pid="$(cat "$pid_file")"
    if ! is_provider "$pid"; then
        log "pid $pid from $pid_file is not a running provider"
        rm -f "$pid_file"
        return 0
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
    rm -f "$pid_file"
}

cmd_status() {
    local dir="${1:-${OIDC_DIR:-}}"
    [ -n "$dir" ] || { log "ERROR: usage: oidc-provider.sh status DIR (or set OIDC_DIR)"; exit 2; }
    local pid=""
    [ -f "$dir/oidc-provider.pid" ] && pid="$(cat "$dir/oidc-provider.pid")"
    if is_provider "$pid"; then
        printf 'state=running\npid=%s\nissuer=%s\n' "$pid" "$(cat "$dir/issuer" 2>/dev/null || true)"
    else
        printf 'state=stopped\n'
        return 1
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    path) cmd_path ;;
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    *)
        sed -n '2,39p' "$0" >&2
        exit 2
        ;;
esac
