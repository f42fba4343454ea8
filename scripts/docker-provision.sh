#!/usr/bin/env bash
# Provision a Docker engine for vm-operator's container tests, then build the
# local base image.
#
# Idempotent: every step checks first and only acts when something is missing.
#   1. apt-get install docker.io docker-compose debootstrap (only if missing)
#   2. start dockerd in the background when `docker info` fails (bounded wait)
#   3. scripts/build-local-base.sh (cached: skips when the image exists)
#
# Env:
#   DOCKERD_LOG        dockerd log file (default /var/log/vm-operator-dockerd.log)
#   DOCKERD_WAIT_SECS  how long to wait for the engine (default 60)
#   SKIP_BASE_IMAGE=1  do not build the local base image
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/vm-operator-dockerd.log}"
DOCKERD_WAIT_SECS="${DOCKERD_WAIT_SECS:-60}"

log() { printf '[docker-provision] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    # Run a command as root (directly, or through sudo when available).
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) for: $*"
    fi
}

missing_packages() {
    # Print the Debian packages whose commands are absent.
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    # Deduplicate while keeping order.
    printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++'
}

install_packages() {
    local pkgs
    pkgs="$(missing_packages)"
    if [ -z "$pkgs" ]; then
        log "docker, dockerd, docker-compose and debootstrap already installed"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $pkgs"
    log "installing: $(echo "$pkgs" | tr '\n' ' ')"
    # Wait for a concurrent apt/dpkg run instead of failing on its lock.
    local lock=(-o DPkg::Lock::Timeout=600)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" update -qq
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq \
        --no-install-recommends $pkgs iptables ca-certificates >/dev/null
    [ -z "$(missing_packages)" ] || die "still missing after install: $(missing_packages | tr '\n' ' ')"
}

engine_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
    if engine_up; then
        log "Docker engine already reachable"
        return 0
    fi
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd process exists but is not answering yet; waiting"
    else
        log "starting dockerd in the background (log: $DOCKERD_LOG)"
        as_root mkdir -p "$(dirname "$DOCKERD_LOG")"
        # setsid: its own session, so it outlives this script; the log is
        # opened by the root shell (works through sudo too).
        # shellcheck disable=SC2016  # $1 is expanded by the inner shell
        as_root sh -c 'exec setsid dockerd >>"$1" 2>&1 </dev/null' sh "$DOCKERD_LOG" &
    fi
    local waited=0
    until engine_up; do
        if [ "$waited" -ge "$DOCKERD_WAIT_SECS" ]; then
            log "last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "Docker engine not reachable after ${DOCKERD_WAIT_SECS}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "Docker engine ready after ${waited}s"
}

main() {
    install_packages
    start_dockerd
    if [ "${SKIP_BASE_IMAGE:-0}" = "1" ]; then
        log "SKIP_BASE_IMAGE=1: not building the local base image"
    else
        "$SCRIPT_DIR/build-local-base.sh"
    fi
}

main "$@"
