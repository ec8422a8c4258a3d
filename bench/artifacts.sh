#!/usr/bin/env bash
# Publishing and installing a package graph: `gati` against a gati-registry node, and `npm`
# against Verdaccio (the npm registry people self-host), side by side in one run on this machine.
#
# The graph: LIBS packages (default 20), each with FILES files of FILE_KIB KiB of random bytes
# (default 8 x 128 KiB, so ~1 MiB each and ~20 MiB in all) and dependencies on the next two
# packages (a DAG, LIBS - 1 levels deep); the app requires the first five, which pull in the rest.
# Each round publishes a new version of every package, then times:
#   publish   every package, one after the other (gati publish / npm publish)
#   cold      an install into an empty project with empty caches (gati install / npm install)
#   warm      the same install again from the lock file and a warm cache, packages deleted
#             (gati install --frozen / npm ci --prefer-offline)
# and reports the median of ROUNDS rounds (default 3) with the ratio npm time / gati time.
#   bash bench/artifacts.sh        (builds release binaries; installs Verdaccio from npm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gati-registry/target}"
TOOLS="${GATI_TOOLS_DIR:-$HOME/.cache/gati-registry/tools}"
VERDACCIO_VERSION="5.33.0"  # the newest line that runs on Node 20
LIBS="${LIBS:-20}"
FILES="${FILES:-8}"
FILE_KIB="${FILE_KIB:-128}"
ROUNDS="${ROUNDS:-3}"
say() { printf '==> %s\n' "$*" >&2; }

say "build (release)"
cargo build --quiet --release --bin gati-registry -p gati-registry
cargo build --quiet --release --bin gati -p gati-cli
REGISTRY_BIN="$CARGO_TARGET_DIR/release/gati-registry"
GATI_BIN="$CARGO_TARGET_DIR/release/gati"

VERDACCIO="$TOOLS/verdaccio/node_modules/.bin/verdaccio"
if [ ! -x "$VERDACCIO" ]; then
    say "install verdaccio $VERDACCIO_VERSION"
    mkdir -p "$TOOLS/verdaccio"
    # A dependency asks for node-fetch by its `cjs` dist-tag, which some npm mirrors do not
    # carry; the tag names the 2.x line, pinned here instead.
    printf '{"private":true,"dependencies":{"verdaccio":"%s"},"overrides":{"node-fetch":"2.7.0"}}\n' \
        "$VERDACCIO_VERSION" >"$TOOLS/verdaccio/package.json"
    (cd "$TOOLS/verdaccio" && npm install --silent --no-audit --no-fund >&2)
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url
    for _ in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    say "$1 did not answer"; return 1
}

GATI_PORT="$(free_port)"
mkdir -p "$WORK/gati"
printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s/gati/data"\n[log]\nlevel = "warn"\n[limits]\nenabled = false\n' \
    "$GATI_PORT" "$WORK" >"$WORK/gati/node.toml"
"$REGISTRY_BIN" serve --config "$WORK/gati/node.toml" >"$WORK/gati/log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$GATI_PORT/readyz"

NPM_PORT="$(free_port)"
mkdir -p "$WORK/verdaccio/storage"
cat >"$WORK/verdaccio/config.yaml" <<YAML
storage: $WORK/verdaccio/storage
auth:
  htpasswd:
    file: $WORK/verdaccio/htpasswd
    max_users: 100
packages:
  '**':
    access: \$all
    publish: \$authenticated
max_body_size: 200mb
log: { type: stdout, format: pretty, level: error }
YAML
"$VERDACCIO" --config "$WORK/verdaccio/config.yaml" --listen "127.0.0.1:$NPM_PORT" >"$WORK/verdaccio/log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$NPM_PORT/-/ping"
TOKEN="$(curl -fsS -X PUT -H 'Content-Type: application/json' \
    -d '{"name":"bench","password":"bench-password-123"}' \
    "http://127.0.0.1:$NPM_PORT/-/user/org.couchdb.user:bench" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
NPMRC="$WORK/npmrc"
printf 'registry=http://127.0.0.1:%s/\n//127.0.0.1:%s/:_authToken=%s\nfund=false\naudit=false\nupdate-notifier=false\n' \
    "$NPM_PORT" "$NPM_PORT" "$TOKEN" >"$NPMRC"
export NPM_CONFIG_USERCONFIG="$NPMRC"

# Writes round R's packages: $WORK/src/R/{gati,npm}/lib-NN.
make_packages() { # round
    python3 - "$WORK/src/$1" "$1" "$LIBS" "$FILES" "$FILE_KIB" <<'PY'
import json, os, sys
root, rnd, libs, files, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
version = f"1.{rnd}.0"
for i in range(libs):
    name = f"lib-{i:02d}"
    deps = [f"lib-{j:02d}" for j in (i + 1, i + 2) if j < libs]
    payload = [(f"data/part-{k}.bin", os.urandom(kib * 1024)) for k in range(files)]
    code = b"module.exports = { name: '%s' };\n" % name.encode()
    for kind in ("gati", "npm"):
        d = os.path.join(root, kind, name)
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        with open(os.path.join(d, "index.js"), "wb") as f:
            f.write(code)
        for path, data in payload:
            with open(os.path.join(d, path), "wb") as f:
                f.write(data)
    gati = {"name": name, "version": version, "namespace": "users/bench", "type": "module-node",
            "manifest": {"description": f"{name} for the benchmark", "license": "MIT",
                         "config": {"entry": "index.js"},
                         "dependencies": [{"name": d, "version": f"^{version}"} for d in deps]}}
    with open(os.path.join(root, "gati", name, "gati.json"), "w") as f:
        json.dump(gati, f)
    npm = {"name": name, "version": version, "main": "index.js", "license": "MIT",
           "dependencies": {d: f"^{version}" for d in deps}}
    with open(os.path.join(root, "npm", name, "package.json"), "w") as f:
        json.dump(npm, f)
PY
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
RESULTS="$WORK/results.jsonl"

for round in $(seq 1 "$ROUNDS"); do
    say "round $round/$ROUNDS: packages"
    make_packages "$round"
    version="1.$round.0"
    roots=()
    for i in $(seq 0 $(( (LIBS < 5 ? LIBS : 5) - 1 ))); do roots+=("$(printf 'lib-%02d' "$i")"); done
    export GATI_REGISTRY="http://127.0.0.1:$GATI_PORT" GATI_CONFIG_DIR="$WORK/gati-config"

    say "round $round: publish"
    t0="$(now)"
    # Dependencies first (the registry checks that they exist; npm's does not, but the order is
    # the same for both).
    for d in $(ls -d "$WORK/src/$round/gati"/lib-* | sort -r); do "$GATI_BIN" publish "$d" >/dev/null; done
    t1="$(now)"
    for d in $(ls -d "$WORK/src/$round/npm"/lib-* | sort -r); do (cd "$d" && npm publish --silent >/dev/null 2>&1); done
    t2="$(now)"
    echo "{\"round\":$round,\"case\":\"publish\",\"gati\":$(elapsed "$t0" "$t1"),\"npm\":$(elapsed "$t1" "$t2")}" >>"$RESULTS"

    say "round $round: cold install"
    gp="$WORK/proj/$round/gati"; np="$WORK/proj/$round/npm"
    mkdir -p "$gp" "$np"
    printf '{"name":"bench-app","version":"1.0.0","private":true}\n' >"$np/package.json"
    export GATI_CACHE_DIR="$WORK/cache/$round/gati"
    sync; sleep 1
    t0="$(now)"
    "$GATI_BIN" install --dir "$gp" $(printf "users/bench/%s@^$version " "${roots[@]}") >/dev/null
    t1="$(now)"
    (cd "$np" && npm install --silent --cache "$WORK/cache/$round/npm" $(printf "%s@^$version " "${roots[@]}") >/dev/null)
    t2="$(now)"
    echo "{\"round\":$round,\"case\":\"cold\",\"gati\":$(elapsed "$t0" "$t1"),\"npm\":$(elapsed "$t1" "$t2")}" >>"$RESULTS"
    [ "$(find "$gp/gati_modules" -name '*.bin' | wc -l)" -eq $((LIBS * FILES)) ] || { say "gati installed the wrong files"; exit 1; }
    [ "$(find "$np/node_modules" -name '*.bin' | wc -l)" -eq $((LIBS * FILES)) ] || { say "npm installed the wrong files"; exit 1; }

    say "round $round: warm reinstall from the lock"
    rm -rf "$gp/gati_modules" "$np/node_modules"
    sync; sleep 1
    t0="$(now)"
    "$GATI_BIN" install --dir "$gp" --frozen >/dev/null
    t1="$(now)"
    (cd "$np" && npm ci --silent --prefer-offline --cache "$WORK/cache/$round/npm" >/dev/null)
    t2="$(now)"
    echo "{\"round\":$round,\"case\":\"warm\",\"gati\":$(elapsed "$t0" "$t1"),\"npm\":$(elapsed "$t1" "$t2")}" >>"$RESULTS"
done

python3 - "$RESULTS" "$LIBS" "$FILES" "$FILE_KIB" "$ROUNDS" <<'PY' | tee "$WORK/table.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
libs, files, kib, rounds = sys.argv[2:6]
print(f"{libs} packages x {files} files x {kib} KiB, {rounds} rounds, medians:\n")
print("| step | gati s | npm + Verdaccio s | npm time / gati time |")
print("|---|---|---|---|")
names = {"publish": "publish every package", "cold": "install, empty caches", "warm": "reinstall from the lock, warm cache"}
for case in ("publish", "cold", "warm"):
    g = statistics.median(r["gati"] for r in rows if r["case"] == case)
    n = statistics.median(r["npm"] for r in rows if r["case"] == case)
    print(f"| {names[case]} | {g:.2f} | {n:.2f} | {n / g:.2f}x |")
PY
