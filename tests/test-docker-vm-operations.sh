#!/usr/bin/env bash
# Docker tier, shell side: builds the vm-operator image and checks it from the
# outside the way a user would run it with `docker run`.
#
#   environment   docker client, engine reachable, curl, python3
#   image         builds with BASE_IMAGE (default: the local base
#                 vm-operator-base:bookworm; scripts/docker-provision.sh makes it);
#                 its package carries the simulator (python3 -m vm_operator.simulator)
#   no Tart       /health 200 "degraded", /vms 503 problem+json saying what to mount
#   simulator     binary visible and executable, Tart home mounted, /vms JSON,
#                 detail, start -> running, stop -> stopped, 404, logs
#   hardening     non-root user, Health.Status healthy within a bound,
#                 graceful `docker stop` (exit code 0, time printed)
#
# Containers are reached ONLY through ports published on 127.0.0.1
# (-p 127.0.0.1::8082 + `docker port`) or `docker exec`.
#
# Output: PASS/FAIL per check, then a last line "N passed, M failed".
# Exit status: 0 only when nothing failed. Cleans up its containers, image and
# temp dirs on exit (names carry $$ so parallel runs do not collide).
#
# Env:
#   BASE_IMAGE            base for the build (default vm-operator-base:bookworm)
#   HEALTHY_WAIT_SECS     bound for Health.Status=healthy (default 60)
#   KEEP_IMAGE=1          keep the built image
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-vm-operator-base:bookworm}"
HEALTHY_WAIT_SECS="${HEALTHY_WAIT_SECS:-60}"
SIMULATOR="$ROOT/bin/tart-simulator"  # runs the image's vm_operator.simulator
IMAGE="vm-operator-test:$$"
C_NOTART="vmop-notart-$$"
C_SIM="vmop-sim-$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vmop-docker-test.XXXXXX")"
TART_HOME_HOST="$WORK/tart-home"
VM="macos-sequoia-base"
OCI_ENCODED="ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base%3Alatest"

# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    docker rm -f -v "$C_NOTART" "$C_SIM" >/dev/null 2>&1 || true
    # The tag is unique to this run: remove it even if the trap fired while
    # `docker build` was still finishing.
    if [ "${KEEP_IMAGE:-0}" != 1 ]; then
        docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
    fi
    # The Tart home may hold files written by UID 10001; we own the parent.
    rm -rf "$WORK" 2>/dev/null || true
    summarize "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$1" "$2"; }

# http METHOD PORT PATH: sets STATUS, CTYPE and writes the body to $WORK/body.
http() { http_to "$2" "$1" "$3"; }

host_port() {
    # The 127.0.0.1 port Docker published for the container's 8082.
    docker port "$1" 8082/tcp 2>/dev/null | awk -F: '/^127\.0\.0\.1:/ { print $2; exit }'
}

wait_http() {
    # Wait (bounded) until GET /health answers at all.
    local port="$1"
    for _ in $(seq 1 60); do
        if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:${port}/health"; then return 0; fi
        sleep 0.25
    done
    return 1
}

wait_state() {
    # Poll GET /vms/NAME until its state is WANT (bounded, ~20 s).
    local port="$1" name="$2" want="$3"
    for _ in $(seq 1 80); do
        http GET "$port" "/vms/$name"
        if [ "$STATUS" = 200 ] && [ "$(json 'b["state"]')" = "$want" ]; then return 0; fi
        sleep 0.25
    done
    info "last: HTTP $STATUS $(head -c 300 "$WORK/body" 2>/dev/null)"
    return 1
}

first_healthy_secs() {
    # Seconds from container start to the end of its first passing health probe,
    # from Docker's own records (independent of when this script looked).
    docker inspect "$1" | python3 -c '
import datetime, json, sys
def ts(text):
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(head).timestamp() + float("0." + (frac or "0")[:6])
state = json.load(sys.stdin)[0]["State"]
ok = [ts(p["End"]) for p in (state.get("Health") or {}).get("Log") or [] if p["ExitCode"] == 0]
start = ts(state["StartedAt"])
print(f"{min(ok) - start:.2f}" if ok else "n/a")' 2>/dev/null || echo n/a
}

show_logs() { info "container logs:"; docker logs --tail 20 "$1" 2>&1 | sed 's/^/        /'; }

# ----------------------------------------------------------------- environment
echo "== environment"
check "docker client installed ($(command -v docker || echo none))" have docker
need_docker
check "curl installed" have curl
check "python3 installed (JSON checks)" have python3
check "Tart simulator present and executable ($SIMULATOR)" test -x "$SIMULATOR"
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && [ "$BASE_IMAGE" = "vm-operator-base:bookworm" ]; then
    info "building the local base image (scripts/build-local-base.sh)"
    "$ROOT/scripts/build-local-base.sh" || true
fi

# ----------------------------------------------------------------------- image
echo "== image (BASE_IMAGE=$BASE_IMAGE)"
t0="$(now)"
if docker build -q -f "$ROOT/docker/vm-operator/Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1; then
    pass "image builds ($IMAGE in $(elapsed "$t0" "$(now)") s, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
else
    fail "image builds"
    tail -n 20 "$WORK/build.log" | sed 's/^/        /'
    exit 1
fi
pkg_sim="$(docker run --rm --entrypoint python3 "$IMAGE" -m vm_operator.simulator --version 2>&1 || true)"
check "the image's package carries the simulator (python3 -m vm_operator.simulator --version: ${pkg_sim:-nothing})" \
    test "$pkg_sim" = 2.31.0

# -------------------------------------------------------- container without Tart
echo "== container without Tart"
docker run -d --name "$C_NOTART" -p 127.0.0.1::8082 "$IMAGE" >/dev/null
port="$(host_port "$C_NOTART")"
check "port published on 127.0.0.1 (${port:-none})" test -n "$port"
if [ -n "$port" ] && wait_http "$port"; then
    http GET "$port" /health
    check "GET /health is 200 without Tart" test "$STATUS" = 200
    check "/health status is \"degraded\" ($(json 'b.get("status")'))" test "$(json 'b.get("status")')" = degraded
    check "/health tart.available is false" test "$(json 'b["tart"]["available"]')" = False
    expect 503 "GET /vms is 503 without Tart" http GET "$port" /vms
    check "/vms error is application/problem+json ($CTYPE)" test "${CTYPE%%;*}" = application/problem+json
    check "/vms problem detail says to mount /app/bin/tart-binary" json_true '"/app/bin/tart-binary" in b["detail"] and "ount" in b["detail"]'
    info "detail: $(json 'b["detail"]')"
else
    fail "operator answers without Tart"
    show_logs "$C_NOTART"
fi
docker rm -f -v "$C_NOTART" >/dev/null 2>&1 || true

# ------------------------------------------------------ container with simulator
echo "== container with the Tart simulator"
mkdir -p "$TART_HOME_HOST"
# The service runs as UID/GID 10001: give it the Tart home.
chown 10001:10001 "$TART_HOME_HOST" 2>/dev/null || chmod 0777 "$TART_HOME_HOST"
docker run -d --name "$C_SIM" -p 127.0.0.1::8082 \
    -v "$SIMULATOR:/app/bin/tart-binary:ro" \
    -v "$TART_HOME_HOST:/home/vmoperator/.tart" \
    -e TART_SIM_SEED=demo "$IMAGE" >/dev/null
port="$(host_port "$C_SIM")"
check "port published on 127.0.0.1 (${port:-none})" test -n "$port"
check "binary visible and executable inside (/app/bin/tart-binary)" docker exec "$C_SIM" test -x /app/bin/tart-binary
version="$(docker exec "$C_SIM" /app/bin/tart-binary --version 2>&1 || true)"
check "binary runs inside (tart --version: ${version:-nothing})" test -n "$version"
check "Tart home mounted at /home/vmoperator/.tart" \
    docker exec "$C_SIM" sh -c 'grep -q " /home/vmoperator/.tart " /proc/mounts && test -w /home/vmoperator/.tart'
uid="$(docker exec "$C_SIM" id -u 2>/dev/null || echo 0)"
check "runs as a non-root user (uid $uid)" test "$uid" -ne 0
if [ -n "$port" ] && wait_http "$port"; then
    http GET "$port" /health
    check "GET /health is 200 \"healthy\" with Tart ($(json 'b.get("status")'))" \
        test "$STATUS:$(json 'b.get("status")')" = "200:healthy"
    info "tart: $(json 'b.get("tart")')"

    expect 200 "GET /vms is 200" http GET "$port" /vms
    check "/vms is valid JSON" valid_json
    check "/vms lists the demo VMs ($(json '",".join(v["name"] for v in b)'))" \
        json_true 'isinstance(b, list) and {"'"$VM"'", "ubuntu-runner"} <= {v["name"] for v in b}'
    check "/vms entries carry name/source/state/running" \
        json_true 'all({"name", "source", "state", "running"} <= set(v) for v in b)'
    check "storage is the mounted Tart home (host sees vms/$VM)" test -d "$TART_HOME_HOST/vms/$VM"

    http GET "$port" "/vms/$VM"
    check "GET /vms/$VM is 200 with its name" test "$STATUS:$(json 'b.get("name")')" = "200:$VM"
    expect 200 "GET of a percent-encoded OCI name is 200" http GET "$port" "/vms/$OCI_ENCODED"

    expect 202 "POST /vms/$VM/start is 202" http POST "$port" "/vms/$VM/start"
    check "$VM reaches state running" wait_state "$port" "$VM" running
    http POST "$port" "/vms/$VM/start"
    check "second start is 200 changed:false (got $STATUS)" \
        test "$STATUS:$(json 'b.get("changed")')" = "200:False"
    expect 200 "GET /vms/$VM/logs is 200" http GET "$port" "/vms/$VM/logs"
    expect 200 "POST /vms/$VM/stop is 200" http POST "$port" "/vms/$VM/stop"
    check "$VM reaches state stopped" wait_state "$port" "$VM" stopped

    expect 404 "GET of an unknown VM is 404" http GET "$port" "/vms/no-such-vm-$$"
    check "404 is application/problem+json ($CTYPE)" test "${CTYPE%%;*}" = application/problem+json
else
    fail "operator answers with the simulator"
    show_logs "$C_SIM"
fi

# ----------------------------------------------------------------- hardening
echo "== health and shutdown"
health=""
deadline=$((SECONDS + HEALTHY_WAIT_SECS))
while [ "$SECONDS" -lt "$deadline" ]; do
    health="$(docker inspect -f '{{.State.Health.Status}}' "$C_SIM" 2>/dev/null || true)"
    [ "$health" = healthy ] && break
    sleep 0.5
done
check "Health.Status healthy within ${HEALTHY_WAIT_SECS}s (${health:-none}; first passing probe $(first_healthy_secs "$C_SIM") s after start)" \
    test "$health" = healthy

# A VM left running must not hold up the stop.
[ -n "$port" ] && http POST "$port" "/vms/$VM/start"
t0="$(now)"
docker stop -t 10 "$C_SIM" >/dev/null
stop_secs="$(elapsed "$t0" "$(now)")"
exit_code="$(docker inspect -f '{{.State.ExitCode}}' "$C_SIM")"
check "docker stop is graceful: exit code $exit_code in ${stop_secs} s" test "$exit_code" = 0
check "docker stop took under 5 s (${stop_secs} s)" python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= 5)' "$stop_secs"
