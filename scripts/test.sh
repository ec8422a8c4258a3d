#!/usr/bin/env bash
# THE test command (README and .ci/run call it):
#   test deps -> rustfmt check -> clippy (-D warnings) -> nextest (profile ci) or cargo test.
# The target dir lives outside the clone and is reused as a cache between runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gati-registry/target}"
mkdir -p "$CARGO_TARGET_DIR"
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "install test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests: run them first, so that nextest's summary closes the log.
    step "cargo test --workspace --doc"
    cargo test --workspace --doc
    step "cargo nextest run --workspace --profile ci"
    cargo nextest run --workspace --profile ci
else
    step "cargo test --workspace (cargo-nextest not installed)"
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    set +e
    cargo test --workspace 2>&1 | tee "$log"
    status="${PIPESTATUS[0]}"
    set -e
    # cargo test ends with the (often empty) doctest runs; close with the totals of all runs.
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
         END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
    exit "$status"
fi
