#!/usr/bin/env bash
# The one command to run the registry locally: http://127.0.0.1:5000/v2/, data in ./data.
# Extra arguments are passed to `gati-registry serve`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec cargo run --release -- serve --listen 127.0.0.1:5000 --data-dir ./data "$@"
