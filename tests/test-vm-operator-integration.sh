#!/usr/bin/env bash
# Integration: the whole API through docker-compose, as a newcomer runs it.
#
#   docker-compose up -d --build   (docker/vm-operator/docker-compose.yml, the
#                                   simulator as Tart, demo VMs, a project name
#                                   and a free host port unique to this run)
#   wait for Health.Status healthy
#   curl 127.0.0.1:$port: health, ready, list (+ filters), detail, OCI name,
#                         start/running, start again, logs, stop/stopped,
#                         404, 405, 400 on a bad query
#   docker-compose down -v --rmi local   (trap, on every exit)
#
# Output: PASS/FAIL per check, then a last line "N passed, M failed".
# Exit status: 0 only when nothing failed.
#
# Env:
#   BASE_IMAGE         base for the build (default vm-operator-base:bookworm)
#   VM_OPERATOR_PORT   host port (default: a free one chosen now)
#   HEALTHY_WAIT_SECS  bound for healthy (default 90)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_DIR="$ROOT/docker/vm-operator"
HEALTHY_WAIT_SECS="${HEALTHY_WAIT_SECS:-90}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/vmop-it.XXXXXX")"
VM="ubuntu-runner"
VM2="macos-sonoma-xcode"
OCI_ENCODED="ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base%3Alatest"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

export BASE_IMAGE="${BASE_IMAGE:-vm-operator-base:bookworm}"
export VM_OPERATOR_PORT="${VM_OPERATOR_PORT:-$(free_port)}"
export VM_OPERATOR_BIND=127.0.0.1
export VM_OPERATOR_IMAGE="vm-operator-it:$$"
export TART_SIM_SEED=demo
export COMPOSE_PROJECT_NAME="vmopit$$"
# Use the defaults of the compose file for the Tart binary and home.
unset TART_BINARY TART_HOME_DIR
port="$VM_OPERATOR_PORT"

# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
brought_up=0

compose() { (cd "$COMPOSE_DIR" && docker-compose "$@"); }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$brought_up" = 1 ]; then
        if [ "$failed" -ne 0 ]; then
            info "service logs (last 30 lines):"
            compose logs --no-color --tail 30 2>&1 | sed 's/^/        /' || true
        fi
        compose down -v --rmi local --remove-orphans >/dev/null 2>&1 || true
        docker rmi -f "$VM_OPERATOR_IMAGE" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    summarize "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# http METHOD PATH: sets STATUS and CTYPE, body in $WORK/body.
http() { http_to "$port" "$1" "$2"; }
is_problem() { [ "${CTYPE%%;*}" = application/problem+json ] && json_true '"title" in b and "status" in b'; }

wait_state() {
    local name="$1" want="$2"
    for _ in $(seq 1 80); do
        http GET "/vms/$name"
        if [ "$STATUS" = 200 ] && [ "$(json 'b["state"]')" = "$want" ]; then return 0; fi
        sleep 0.25
    done
    info "last: HTTP $STATUS $(head -c 300 "$WORK/body")"
    return 1
}

# ----------------------------------------------------------------- environment
echo "== environment"
check "docker-compose installed ($(docker-compose version --short 2>/dev/null || echo none))" \
    have docker-compose
need_docker
check "curl installed" have curl
check "compose file is valid" compose config -q
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && [ "$BASE_IMAGE" = "vm-operator-base:bookworm" ]; then
    info "building the local base image (scripts/build-local-base.sh)"
    "$ROOT/scripts/build-local-base.sh" || true
fi

# ---------------------------------------------------------------------- up
echo "== docker-compose up -d --build (project $COMPOSE_PROJECT_NAME, port $port, BASE_IMAGE=$BASE_IMAGE)"
brought_up=1
t0=$SECONDS
if compose up -d --build >"$WORK/up.log" 2>&1; then
    pass "docker-compose up -d --build ($((SECONDS - t0)) s)"
else
    fail "docker-compose up -d --build"
    tail -n 20 "$WORK/up.log" | sed 's/^/        /'
    exit 1
fi
cid="$(compose ps -q vm-operator)"
health=""
t0=$SECONDS
while [ $((SECONDS - t0)) -lt "$HEALTHY_WAIT_SECS" ]; do
    health="$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null || true)"
    [ "$health" = healthy ] && break
    sleep 0.5
done
check "service healthy within ${HEALTHY_WAIT_SECS}s (${health:-none} after $((SECONDS - t0)) s)" test "$health" = healthy
check "published on 127.0.0.1:$port only" \
    test "$(docker port "$cid" 8082/tcp | sort -u | tr '\n' ' ')" = "127.0.0.1:$port "
check "container runs read-only, init, no capabilities" \
    test "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Init}} {{.HostConfig.CapDrop}}' "$cid")" = "true true [ALL]"

# --------------------------------------------------------------------- API
echo "== API via curl on 127.0.0.1:$port"
http GET /health
check "GET /health 200 healthy" test "$STATUS:$(json 'b.get("status")')" = "200:healthy"
check "/health reports the Tart simulator ($(json 'b["tart"].get("version")'))" json_true 'b["tart"]["available"] is True'
expect 200 "GET /ready 200" http GET /ready

http GET /vms
check "GET /vms 200 application/json (got $STATUS $CTYPE)" test "$STATUS:${CTYPE%%;*}" = "200:application/json"
check "/vms is valid JSON" valid_json
check "/vms holds the 4 demo VMs ($(json 'len(b)'))" \
    json_true '{"macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner", "ghcr.io/cirruslabs/macos-sequoia-base:latest"} <= {v["name"] for v in b}'
check "/vms entries have the documented keys" \
    json_true 'all({"name", "source", "state", "status", "running", "disk_gb", "size_gb", "accessed"} <= set(v) for v in b)'
http GET "/vms?source=local"
check "GET /vms?source=local lists only local VMs" \
    test "$STATUS:$(json 'bool(b) and all(v["source"] == "local" for v in b)')" = "200:True"

http GET "/vms/$VM"
check "GET /vms/$VM 200 detail" test "$STATUS:$(json 'b.get("name")')" = "200:$VM"
http GET "/vms/$OCI_ENCODED"
check "GET /vms/<percent-encoded OCI name> 200" \
    test "$STATUS:$(json 'b.get("name")')" = "200:ghcr.io/cirruslabs/macos-sequoia-base:latest"

expect 202 "POST /vms/$VM/start 202" http POST "/vms/$VM/start"
check "$VM is running" wait_state "$VM" running
http GET "/vms?state=running"
check "GET /vms?state=running lists $VM" json_true '"'"$VM"'" in [v["name"] for v in b]'
http POST "/vms/$VM/start"
check "start again 200 changed:false (got $STATUS)" test "$STATUS:$(json 'b.get("changed")')" = "200:False"
expect 200 "GET /vms/$VM/logs 200" http GET "/vms/$VM/logs"
expect 200 "POST /vms/$VM/stop 200" http POST "/vms/$VM/stop"
check "$VM is stopped" wait_state "$VM" stopped

expect 202 "POST /vms/$VM2/start 202" http POST "/vms/$VM2/start"
check "$VM2 is running" wait_state "$VM2" running
expect 200 "POST /vms/$VM2/stop 200" http POST "/vms/$VM2/stop"

echo "== errors"
http GET "/vms/no-such-vm-$$"
check "GET unknown VM 404 problem+json (got $STATUS $CTYPE)" test "$STATUS" = 404
check "404 body is a problem document" is_problem
expect 404 "POST start of unknown VM 404" http POST "/vms/no-such-vm-$$/start"
expect 405 "DELETE /vms/$VM/start 405" http DELETE "/vms/$VM/start"
check "405 body is a problem document" is_problem
expect 405 "GET /vms/$VM/start 405" http GET "/vms/$VM/start"
expect 400 "GET /vms?bogus=1 400" http GET "/vms?bogus=1"
check "400 body is a problem document" is_problem
expect 400 "GET /vms?state=flying 400" http GET "/vms?state=flying"
expect 404 "GET /no-such-route 404" http GET "/no-such-route"

echo "== down"
t0=$SECONDS
if compose down -v --rmi local --remove-orphans >"$WORK/down.log" 2>&1; then
    brought_up=0
    docker rmi -f "$VM_OPERATOR_IMAGE" >/dev/null 2>&1 || true
    pass "docker-compose down -v ($((SECONDS - t0)) s)"
else
    fail "docker-compose down -v"
fi
check "no container of the project left" test -z "$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")"
check "no volume of the project left" test -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")"
