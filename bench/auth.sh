#!/usr/bin/env bash
# What authentication costs a pull: manifest GET by tag, wrk at concurrency 64 for 10 s, on one
# node with authentication off (anonymous), and on one with it on: anonymous (public content),
# with a registry token (the Docker flow: Ed25519 signature check, account and session lookups,
# the access decision), and with an API key as the bearer. Request budgets are off on both, so
# this measures the checks, not the limiter. Writes bench/auth-results.json and prints a table.
#   bash bench/auth.sh          (needs wrk; builds the release binary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gati-registry/target}"
SECS="${WRK_SECS:-10}"
CONC="${WRK_CONC:-64}"
THREADS="${WRK_THREADS:-2}"
say() { printf '==> %s\n' "$*" >&2; }

say "build (release)"
cargo build --quiet --release --bin gati-registry
BIN="$CARGO_TARGET_DIR/release/gati-registry"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_node() { # name auth(true|false) -> port
    local name="$1" auth="$2" port
    port="$(free_port)"
    mkdir -p "$WORK/$name"
    printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/%s/data"\n[log]\nlevel = "warn"\n[auth]\nenabled = %s\n[limits]\nenabled = false\n' \
        "$port" "$WORK" "$name" "$auth" >"$WORK/$name/node.toml"
    "$BIN" serve --config "$WORK/$name/node.toml" >"$WORK/$name/log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 200); do
        if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then echo "$port"; return; fi
        sleep 0.1
    done
    say "node $name did not become ready"; cat "$WORK/$name/log" >&2; exit 1
}

push_image() { # port auth-header...
    local port="$1"; shift
    local config='{"architecture":"amd64","os":"linux"}' layer="bench layer" d_config d_layer manifest
    d_config="sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
    d_layer="sha256:$(printf '%s' "$layer" | sha256sum | cut -d' ' -f1)"
    for pair in "$config|$d_config" "$layer|$d_layer"; do
        curl -fsS -o /dev/null "$@" -X POST --data-binary "${pair%%|*}" \
            "http://127.0.0.1:$port/v2/users/bench/app/blobs/uploads/?digest=${pair##*|}"
    done
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$d_config\",\"size\":${#config}},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"$d_layer\",\"size\":${#layer}}]}"
    curl -fsS -o /dev/null "$@" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "$manifest" "http://127.0.0.1:$port/v2/users/bench/app/manifests/v1"
}

run_wrk() { # label port [authorization]
    local label="$1" port="$2" auth="${3:-}" lua="$WORK/$1.lua"
    sed "s|^wrk.method = \"GET\"|wrk.method = \"GET\"\n$( [ -n "$auth" ] && printf 'wrk.headers["Authorization"] = "%s"' "$auth")|" bench/manifest_get.lua >"$lua"
    local url="http://127.0.0.1:$port/v2/users/bench/app/manifests/v1"
    wrk -t"$THREADS" -c"$CONC" -d2s -s "$lua" "$url" >/dev/null
    wrk -t"$THREADS" -c"$CONC" -d"${SECS}s" --latency -s "$lua" "$url" | grep '^WRKJSON ' | sed "s/^WRKJSON /{\"case\":\"$label\",\"result\":/; s/\$/}/"
}

say "start a node with authentication off and one with it on"
OPEN="$(start_node open false)"
GUARDED="$(start_node guarded true)"
push_image "$OPEN"
pw="a long passphrase for load runs"
curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"email\":\"bench@example.com\",\"password\":\"$pw\"}" "http://127.0.0.1:$GUARDED/api/v1/users"
push_image "$GUARDED" -u "bench:$pw"
TOKEN="$(curl -fsS -u "bench:$pw" "http://127.0.0.1:$GUARDED/token?service=gati-registry&scope=repository:users/bench/app:pull" | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')"
SESSION="$(curl -fsS -X POST -H 'Content-Type: application/json' -d "{\"login\":\"bench\",\"password\":\"$pw\"}" "http://127.0.0.1:$GUARDED/api/v1/auth/login" | python3 -c 'import sys,json; print(json.load(sys.stdin)["accessToken"])')"
KEY="$(curl -fsS -X POST -H "Authorization: Bearer $SESSION" -H 'Content-Type: application/json' -d '{"label":"bench","permissions":["pull"]}' "http://127.0.0.1:$GUARDED/api/v1/user/keys" | python3 -c 'import sys,json; print(json.load(sys.stdin)["key"])')"

say "wrk -t$THREADS -c$CONC -d${SECS}s, manifest GET by tag"
{
    run_wrk "auth off, anonymous" "$OPEN"
    run_wrk "auth on, anonymous (public)" "$GUARDED"
    run_wrk "auth on, registry token" "$GUARDED" "Bearer $TOKEN"
    run_wrk "auth on, API key" "$GUARDED" "Bearer $KEY"
} | tee "$WORK/results.jsonl" >&2
python3 - "$WORK/results.jsonl" <<'PY' | tee bench/auth-results.json
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = rows[0]["result"]["req_per_s"]
out = []
for r in rows:
    res = r["result"]
    assert res["non2xx"] == 0 and res["socket_errors"] == 0, r
    out.append({"case": r["case"], "req_per_s": res["req_per_s"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
                "vs_auth_off": round(res["req_per_s"] / base, 3)})
print(json.dumps(out, indent=1))
PY
