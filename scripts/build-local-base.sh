#!/usr/bin/env bash
# Build the local base image vm-operator-base:bookworm without any image
# registry: debootstrap a minimal Debian bookworm (variant minbase) with
# python3 (and the OpenSSH client, for the operator's SSH transport to a Mac
# host) from the Debian mirror configured in this machine's apt sources, then
# `docker import` it.
#
# Why: where no registry is reachable, `FROM python:3.12-slim` cannot be
# pulled. Build the vm-operator image with
#   docker build --build-arg BASE_IMAGE=vm-operator-base:bookworm ...
#
# Cached: does nothing when the image already exists with the same package
# set (its label org.vm-operator.base.packages); FORCE=1 rebuilds.
#
# Env:
#   BASE_IMAGE_NAME   image name (default vm-operator-base:bookworm)
#   DEBIAN_MIRROR     override the mirror URI (default: read from apt sources)
#   FORCE=1           rebuild even if the image exists
set -euo pipefail

IMAGE="${BASE_IMAGE_NAME:-vm-operator-base:bookworm}"
SUITE=bookworm
# What goes in on top of minbase. Changing this list invalidates the cache.
PACKAGES="python3,passwd,openssh-client"
PACKAGES_LABEL=org.vm-operator.base.packages
SOURCES_DEB822=/etc/apt/sources.list.d/debian.sources
SOURCES_LEGACY=/etc/apt/sources.list

log() { printf '[build-local-base] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mirror_from_deb822() {
    # First URI of a stanza whose Suites list contains exactly "bookworm".
    [ -r "$SOURCES_DEB822" ] || return 0
    awk -v suite="$SUITE" '
        function flush() {
            if (uri != "" && has_suite && !done) { print uri; done = 1 }
            uri = ""; has_suite = 0
        }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]*#/ { next }
        tolower($1) == "uris:" { uri = $2 }
        tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
        END { flush() }
    ' "$SOURCES_DEB822"
}

mirror_from_legacy() {
    # "deb [opts] URI bookworm main" in /etc/apt/sources.list.
    [ -r "$SOURCES_LEGACY" ] || return 0
    awk -v suite="$SUITE" '
        $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == suite) { print $i; exit }
        }
    ' "$SOURCES_LEGACY"
}

keyring_from_deb822() {
    [ -r "$SOURCES_DEB822" ] || return 0
    awk 'tolower($1) == "signed-by:" { print $2; exit }' "$SOURCES_DEB822"
}

find_mirror() {
    local m="${DEBIAN_MIRROR:-}"
    [ -n "$m" ] || m="$(mirror_from_deb822)"
    [ -n "$m" ] || m="$(mirror_from_legacy)"
    [ -n "$m" ] || die "no '$SUITE' mirror in $SOURCES_DEB822 or $SOURCES_LEGACY (set DEBIAN_MIRROR)"
    printf '%s\n' "$m"
}

slim_rootfs() {
    # Drop what a runtime image never needs: apt lists, caches, docs, man pages,
    # locales (C.UTF-8 is built into glibc), logs.
    local root="$1"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/usr/share/lintian/* \
        "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* \
        "$root"/debootstrap
    # Keep the stdlib's __pycache__ (made by py3compile at install): the image
    # runs with PYTHONDONTWRITEBYTECODE and a read-only root, so without them
    # every python3 start (the service, each health probe, the simulator)
    # would recompile the stdlib: ~0.7 s instead of ~0.05 s.
    # Keep later apt-get installs (in derived images) from re-adding docs.
    mkdir -p "$root"/etc/dpkg/dpkg.cfg.d
    cat > "$root"/etc/dpkg/dpkg.cfg.d/01-nodoc <<'NODOC'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
NODOC
    # Same apt source the image was built from, for anyone extending it.
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" > "$root"/etc/apt/sources.list
}

cached() {
    # The image exists and was built from the same package list.
    local have
    have="$(docker image inspect -f "{{index .Config.Labels \"$PACKAGES_LABEL\"}}" "$IMAGE" 2>/dev/null)" \
        || return 1
    if [ "$have" != "$PACKAGES" ]; then
        log "$IMAGE has packages '${have:-?}', want '$PACKAGES': rebuilding"
        return 1
    fi
}

main() {
    command -v docker >/dev/null 2>&1 || die "docker client not found (run scripts/docker-provision.sh)"
    docker info >/dev/null 2>&1 || die "Docker engine not reachable (run scripts/docker-provision.sh)"
    if [ "${FORCE:-0}" != "1" ] && cached; then
        log "$IMAGE already exists; skipping (FORCE=1 rebuilds)"
        return 0
    fi
    # Two test runs started together must not both debootstrap: the second
    # waits here, then finds the image made by the first.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"${TMPDIR:-/tmp}/vm-operator-base.lock"
        flock 9
        if [ "${FORCE:-0}" != "1" ] && cached 2>/dev/null; then
            log "$IMAGE was built meanwhile; skipping"
            return 0
        fi
    fi
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (run scripts/docker-provision.sh)"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

    MIRROR="$(find_mirror)"
    local keyring args workdir start
    keyring="$(keyring_from_deb822)"
    args=(--variant=minbase "--include=$PACKAGES" --components=main)
    if [ -n "$keyring" ] && [ -r "$keyring" ]; then
        args+=("--keyring=$keyring")
    fi

    workdir="$(mktemp -d /var/tmp/vm-operator-base.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: workdir is local
    trap "rm -rf '$workdir'" EXIT INT TERM
    start=$SECONDS
    log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
    if ! debootstrap "${args[@]}" "$SUITE" "$workdir/rootfs" "$MIRROR" > "$workdir/debootstrap.log" 2>&1; then
        tail -n 40 "$workdir/debootstrap.log" >&2 || true
        [ -f "$workdir/rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$workdir/rootfs/debootstrap/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    chroot "$workdir/rootfs" python3 --version >/dev/null 2>&1 \
        || die "python3 missing from the rootfs"
    chroot "$workdir/rootfs" ssh -V >/dev/null 2>&1 \
        || die "ssh (openssh-client) missing from the rootfs"
    slim_rootfs "$workdir/rootfs"

    local old_id
    old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    log "importing as $IMAGE"
    tar --numeric-owner -C "$workdir/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'LABEL org.opencontainers.image.title=vm-operator-base org.opencontainers.image.description="Debian bookworm minbase + python3 + openssh-client, built locally by scripts/build-local-base.sh"' \
        --change "LABEL $PACKAGES_LABEL=$PACKAGES" \
        --change 'CMD ["python3"]' \
        - "$IMAGE" >/dev/null
    if [ -n "$old_id" ]; then
        # FORCE rebuild: drop the replaced image unless something still uses it.
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
    docker run --rm "$IMAGE" python3 -c 'import sys; print("python", sys.version.split()[0])' >&2
    log "built $IMAGE in $((SECONDS - start))s, size $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

main "$@"
