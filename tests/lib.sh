# Helpers shared by the shell suites (sourced; they set $WORK before using these).
# Every request goes to 127.0.0.1 only.

passed=0
failed=0

pass() { printf 'PASS: %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; failed=$((failed + 1)); }
info() { printf '      %s\n' "$*"; }

# check DESCRIPTION COMMAND...: PASS/FAIL by the command's exit status.
check() {
    local desc="$1"
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# expect STATUS DESCRIPTION REQUEST...: make the request (the suite's `http ...`), then check
# that its answer's status is STATUS (the description gets "(got STATUS)").
expect() {
    local want="$1" desc="$2"
    shift 2
    "$@"
    check "$desc (got $STATUS)" test "$STATUS" = "$want"
}

# need_docker: PASS when the Docker engine answers; else FAIL, and the suite stops.
need_docker() {
    if docker info >/dev/null 2>&1; then
        pass "Docker engine reachable (server $(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    else
        fail "Docker engine reachable (run scripts/docker-provision.sh)"
        exit 1
    fi
}

# http_to PORT METHOD PATH: sets STATUS and CTYPE, writes the body to $WORK/body.
http_to() {
    local out
    out="$(curl -sS -o "$WORK/body" -w '%{http_code} %{content_type}' --max-time 20 \
        -X "$2" "http://127.0.0.1:${1}${3}" 2>"$WORK/curl.err")" || out="000 -"
    STATUS="${out%% *}"
    CTYPE="${out#* }"
}

# summarize RC: count an abort no check caught, print "N passed, M failed", exit 1 on any failure.
summarize() {
    if [ "$failed" -eq 0 ] && [ "$1" -ne 0 ]; then
        fail "aborted (exit status $1)"  # a signal or an unexpected error before any check failed
    fi
    printf '%d passed, %d failed\n' "$passed" "$failed"
    if [ "$failed" -ne 0 ]; then exit 1; fi
    exit 0
}

# jq-like: evaluate a Python expression on the JSON body (bound to `b`).
json() {
    python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$WORK/body" "$1" 2>/dev/null
}
json_true() { [ "$(json "$1")" = "True" ]; }
valid_json() { python3 -m json.tool "$WORK/body" >/dev/null 2>&1; }
have() { command -v "$1" >/dev/null 2>&1; }
