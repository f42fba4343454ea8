#!/usr/bin/env bash
# The project's one test command (README "Tests"; .ci/run calls exactly this).
#
# On a fresh machine it sets up what the suites need, then runs all of them:
#   - a virtualenv with pytest and the other test-only packages (.venv, reused when present);
#   - the static checks first: ruff (pyproject's [tool.ruff]) and mypy --strict (pyproject's
#     [tool.mypy]); a finding fails the run (the suites still run, to report everything);
#   - in CI (CI=true) or with --docker: Docker engine, docker-compose, debootstrap and the
#     cached local base image (scripts/docker-provision.sh), plus Debian's sshd for the
#     SSH-transport suite, Debian's prometheus for tests/edge/test_prometheus.py, acl (setfacl)
#     for the compose recipe and Debian's chromium + chromium-driver for tests/api/test_dashboard.py;
#     there a missing engine, sshd, prometheus or browser is a failure, never a skip;
#   - elsewhere the Docker, SSH, Prometheus and browser tiers run when an engine / sshd /
#     prometheus / chromium is there and skip with a visible reason when not.
# Extra arguments go to pytest (e.g. scripts/test.sh -k health).
set -euo pipefail
cd "$(dirname "$0")/.."

provision=0
if [ "${CI:-}" = "true" ]; then provision=1; fi
if [ "${1:-}" = "--docker" ]; then provision=1; shift; fi

step() { printf '\n==> %s\n' "$*"; }

step "Python virtualenv (.venv) with pytest, kubernetes-validate, PyYAML, schemathesis, openapi-python-client, Selenium, ruff and mypy (tests only)"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf .venv && "$PYTHON" -m venv .venv
        else
            echo "cannot create a virtualenv: install python3-venv" >&2; exit 1
        fi
    fi
fi
.venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "Python >= 3.11 is required (set PYTHON=...)" >&2; exit 1; }
# Test-only dependencies (pyproject's "test" extra): kubernetes-validate checks the Kubernetes
# manifests against Kubernetes' published schemas (tests/deploy/test_kubernetes.py); schemathesis
# generates requests from /openapi.json (tests/api/test_schemathesis.py; its newest release, whose
# checks read the event stream too); openapi-python-client generates a client from it
# (tests/api/test_generated_client.py); Selenium drives Debian's
# headless Chromium through Debian's chromedriver (tests/api/test_dashboard.py); ruff and mypy are the
# static checks (versions pinned: a new release brings new rules).
{ .venv/bin/python -c 'import pytest, kubernetes_validate, yaml, schemathesis, selenium, openapi_python_client, websockets' 2>/dev/null \
    && [ -x .venv/bin/ruff ] && [ -x .venv/bin/mypy ]; } \
    || .venv/bin/python -m pip install -q 'pytest>=7' 'kubernetes-validate>=1.30' 'pyyaml>=6' \
        'schemathesis>=4.32.5,<5' 'ruff>=0.17,<0.18' 'mypy>=2.4,<3' 'selenium>=4.20' \
        'openapi-python-client>=0.29.1,<0.30' 'websockets>=15'
# The simulator's "#!/usr/bin/env python3" must find a fast interpreter: the venv's.
export PATH="$PWD/.venv/bin:$PATH"

if [ "$provision" = 1 ]; then
    step "Docker engine, docker-compose, debootstrap, local base image"
    bash scripts/docker-provision.sh
    export VM_OPERATOR_REQUIRE_DOCKER=1
    step "OpenSSH server for the SSH transport suite"
    if ! [ -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! [ -x /usr/bin/python3 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client python3 >/dev/null
    fi
    export VM_OPERATOR_REQUIRE_SSH=1
    step "Prometheus (Debian's package) for tests/edge/test_prometheus.py, its packaged service not started"
    if ! [ -x /usr/bin/prometheus ]; then
        # The package's postinst starts its own service (a daemon on :9090) through invoke-rc.d
        # or deb-systemd-invoke; both obey policy-rc.d, and exit 101 there means "do not start".
        # The test runs /usr/bin/prometheus itself, with its own config, TSDB and port.
        made_policy=0
        if ! [ -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        installed=0
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends prometheus >/dev/null; } || installed=$?
        if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
        if [ "$installed" != 0 ]; then echo "apt-get install prometheus failed" >&2; exit 1; fi
    fi
    export VM_OPERATOR_REQUIRE_PROMETHEUS=1
    step "Chromium and its driver (Debian's chromium, chromium-driver) for tests/api/test_dashboard.py"
    if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    fi
    export VM_OPERATOR_REQUIRE_BROWSER=1
    step "openssl and curl for the TLS tests (certificates made by openssl; curl and s_client as peers)"
    if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl curl ca-certificates >/dev/null
    fi
    step "acl (setfacl) for the README's compose token recipe (tests/docker/test_compose_recipes.py)"
    if ! command -v setfacl >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends acl >/dev/null
    fi
fi
export BASE_IMAGE=${BASE_IMAGE:-vm-operator-base:bookworm}

status=0
step "Static checks: ruff check . and mypy --strict (pyproject's configuration)"
.venv/bin/ruff check . || { echo "FAIL: ruff found problems (above)" >&2; status=1; }
.venv/bin/mypy || { echo "FAIL: mypy found problems (above)" >&2; status=1; }

# The suites start the simulator (and the operator) as fresh processes thousands of times.
# Their bytecode is kept in the venv, never in the checkout: with PYTHONDONTWRITEBYTECODE
# alone, each start compiled every module it imports again (about a quarter of the suite's CPU).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"

step "pytest: unit, API over loopback, hardening, SSH transport, Docker tier"
.venv/bin/python -m pytest -p no:cacheprovider --durations=25 "$@" || status=$?

docker_ready=0
if command -v docker >/dev/null && docker info >/dev/null 2>&1 \
        && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    docker_ready=1
fi
if [ "$docker_ready" = 1 ]; then
    step "Shell suite: tests/test-docker-vm-operations.sh"
    bash tests/test-docker-vm-operations.sh || status=1
    step "Shell suite: tests/test-vm-operator-integration.sh"
    bash tests/test-vm-operator-integration.sh || status=1
elif [ "$provision" = 1 ]; then
    echo "FAIL: the Docker engine or the base image $BASE_IMAGE is missing after provisioning" >&2
    status=1
else
    echo "SKIPPED: Docker shell suites (no engine, or no $BASE_IMAGE image: run scripts/test.sh --docker)"
fi
exit "$status"
