#!/usr/bin/env bash
# Installs the external tools the integration tests and benches drive, only if missing:
#   Debian packages: skopeo podman docker-registry wrk iproute2 (apt-get update once, only if
#                    needed; iproute2's `ip` builds the jepsen harness's network namespaces)
#   PyPI:            oras (oras-py)                       (pip, only if `import oras.client` fails)
#   crates.io:       s3s-fs, the S3 test server            (scripts/s3-server.sh install, only if
#                                                          not in the tool cache; a few minutes)
#   npm:             oidc-provider, the OpenID Connect     (scripts/oidc-provider.sh install, only
#                    provider of the sign-in tests         if not in the tool cache; needs Node.js
#                                                          >= 20.19 and npm; a few seconds)
# Idempotent and fast when everything is present (no network then). Needs root (or passwordless
# sudo) only when something is missing. Works on a fresh Debian with just rust + python3 + pip.
set -euo pipefail

DEBIAN_PACKAGES=(skopeo podman docker-registry wrk iproute2)
ORAS_PIP_SPEC="${ORAS_PIP_SPEC:-oras==0.2.43}"
PYTHON="${PYTHON:-python3}"

log() { printf 'install-test-deps: %s\n' "$*"; }

have_deb() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        log "ERROR: need root to run: $*"
        return 1
    fi
}

# ---- Debian packages -------------------------------------------------------------------------
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${DEBIAN_PACKAGES[@]}"; do
        have_deb "$p" || missing+=("$p")
    done
else
    # Not Debian: accept the tools if they are on PATH, otherwise we cannot help.
    for p in "${DEBIAN_PACKAGES[@]}"; do
        tool="$p"
        [ "$p" = iproute2 ] && tool=ip
        command -v "$tool" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "ERROR: no dpkg here and missing: ${missing[*]}; install them by hand"
        exit 1
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait (bounded) for another apt/dpkg run to release its locks instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    log "apt-get update"
    as_root apt-get "${apt_opts[@]}" update -q
    log "apt-get install ${missing[*]}"
    as_root apt-get "${apt_opts[@]}" install -y -q "${missing[@]}"
    for p in "${missing[@]}"; do
        have_deb "$p" || { log "ERROR: $p still not installed"; exit 1; }
    done
    log "installed: ${missing[*]}"
else
    log "Debian packages present: ${DEBIAN_PACKAGES[*]}"
fi

# ---- oras-py -----------------------------------------------------------------------------------
if oras_version="$("$PYTHON" -c 'import oras.client, oras.version as v; print(v.__version__)' 2>/dev/null)"; then
    log "python oras present ($oras_version)"
else
    log "pip install $ORAS_PIP_SPEC"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    pip_cmd=("$PYTHON" -m pip install --quiet)
    if ! "${pip_cmd[@]}" "$ORAS_PIP_SPEC" 2>/tmp/install-test-deps.pip.$$; then
        if grep -q externally-managed /tmp/install-test-deps.pip.$$; then
            # Debian's system python (PEP 668): install for this interpreter anyway.
            "${pip_cmd[@]}" --break-system-packages "$ORAS_PIP_SPEC"
        else
            cat /tmp/install-test-deps.pip.$$ >&2
            rm -f /tmp/install-test-deps.pip.$$
            exit 1
        fi
    fi
    rm -f /tmp/install-test-deps.pip.$$
    "$PYTHON" -c 'import oras.client' || { log "ERROR: oras still not importable by $PYTHON"; exit 1; }
    log "installed python oras"
fi

# ---- s3s-fs (S3-compatible server for the S3 blob backend's tests) ------------------------------
S3_SERVER_SCRIPT="$(dirname "${BASH_SOURCE[0]}")/s3-server.sh"
if s3s_fs_path="$(bash "$S3_SERVER_SCRIPT" path 2>/dev/null)"; then
    log "s3s-fs present ($s3s_fs_path)"
else
    log "installing s3s-fs"
    bash "$S3_SERVER_SCRIPT" install
    log "installed s3s-fs ($(bash "$S3_SERVER_SCRIPT" path))"
fi

# ---- oidc-provider (OpenID Connect provider for the sign-in tests) -----------------------------
OIDC_PROVIDER_SCRIPT="$(dirname "${BASH_SOURCE[0]}")/oidc-provider.sh"
if oidc_path="$(bash "$OIDC_PROVIDER_SCRIPT" path 2>/dev/null)"; then
    log "oidc-provider present ($oidc_path)"
else
    log "installing oidc-provider"
    bash "$OIDC_PROVIDER_SCRIPT" install
    log "installed oidc-provider ($(bash "$OIDC_PROVIDER_SCRIPT" path))"
fi
