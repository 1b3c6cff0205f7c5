#!/usr/bin/env bash
# Checks crates/issuer-api/src/openapi.json against the running API with schemathesis.
#
#   scripts/check-openapi.sh
#
# What it does, in order:
#   1. installs schemathesis 4.x with pip when missing (a virtualenv in $OPENAPI_VENV when the
#      system python refuses pip installs), and redis-cli when missing;
#   2. brings up MariaDB, Redis and the broker with scripts/stack.sh (reusing whatever already
#      answers) with this run's own database, topic and Redis key prefix, so it never touches
#      the tests' or the demo's data;
#   3. builds the release binaries, runs `compensation-batch migrate`, starts issuer-api on a
#      free port with a random admin token;
#   4. creates one coupon (open now, for an hour) through POST /admin/coupons so that the
#      operations also meet real data (the document's links feed its id to the stateful phase);
#   5. runs schemathesis against the live API, with the schema from GET /openapi.json when the
#      API serves it, else from the file, the admin token as a bearer header;
#   6. at exit (also on failure or Ctrl-C): stops the API, deletes this run's Redis keys, drops
#      its database, deletes its topic and stops the stack services this run started.
# Exit status: 0 iff schemathesis found no failure (and everything before it worked).
#
# Settings (environment, all optional):
#   OPENAPI_MAX_EXAMPLES=100   schemathesis --max-examples (test cases per operation and phase)
#   OPENAPI_SEED=              schemathesis --seed, to replay a run
#   OPENAPI_CHECKS=<list>      comma-separated schemathesis checks (default below)
#   OPENAPI_WORKERS=1          schemathesis --workers
#   OPENAPI_READY_TIMEOUT=60   seconds for the API to become ready
#   OPENAPI_DIR=<repo>/.stack/openapi   logs and the JUnit report (replaced each run), stack state
#   OPENAPI_VENV=<repo>/.stack/venv-openapi   virtualenv used when the system python refuses pip
#   OPENAPI_KEEP_STACK=0       1: leave the stack services this run started running
#   CARGO_TARGET_DIR           respected when set
#   STACK_*                    passed to scripts/stack.sh (hosts, ports, credentials...)
#
# Default checks: not_a_server_error, status_code_conformance, content_type_conformance,
# response_schema_conformance, response_headers_conformance, negative_data_rejection,
# missing_required_header, ignored_auth. Not by default: positive_data_acceptance (OpenAPI 3.0
# cannot express "issue_ends_at strictly after issue_starts_at": the document says it in words
# and lists 422, so a schema-valid coupon with equal or reversed times rightly gets 422) and unsupported_method (it also demands an `Allow` header on 405 answers).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=check-openapi
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

MAX_EXAMPLES=${OPENAPI_MAX_EXAMPLES:-100}
SEED=${OPENAPI_SEED:-}
CHECKS=${OPENAPI_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,missing_required_header,ignored_auth}
WORKERS=${OPENAPI_WORKERS:-1}
READY_TIMEOUT=${OPENAPI_READY_TIMEOUT:-60}
OUT_DIR=${OPENAPI_DIR:-$ROOT/.stack/openapi}
VENV=${OPENAPI_VENV:-$ROOT/.stack/venv-openapi}
KEEP_STACK=${OPENAPI_KEEP_STACK:-0}
SCHEMA_FILE=$ROOT/crates/issuer-api/src/openapi.json
SCHEMATHESIS_SPEC='schemathesis>=4.1,<5'

for v in MAX_EXAMPLES WORKERS READY_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "OPENAPI_$v must be a positive integer, got '${!v}'"
done
[[ -z $SEED || $SEED =~ ^[0-9]+$ ]] || die "OPENAPI_SEED must be a non-negative integer, got '$SEED'"
[[ $CHECKS =~ ^[a-z_,]+$ ]] || die "OPENAPI_CHECKS must be a comma-separated list of check names"
[[ -f $SCHEMA_FILE ]] || die "no $SCHEMA_FILE"

# Names of this run; every one starts with a fixed stem so that leftovers of an interrupted run
# are recognised (and removed) by the next one.
RUN_ID=$(date +%Y%m%d%H%M%S)_$$
DATABASE=couponrush_openapi_$RUN_ID
DB_STEM=couponrush_openapi_
TOPIC=coupon-issue-openapi-${RUN_ID//_/-}
TOPIC_STEM=coupon-issue-openapi-
KEY_PREFIX=couponrush-openapi:$RUN_ID:
KEY_STEM=couponrush-openapi:
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
STACK_DIR=$OUT_DIR/stack
LOG_DIR=$OUT_DIR/logs

# ---------------------------------------------------------------------------------------------
# Clean-up: runs once on every exit
# ---------------------------------------------------------------------------------------------
API_PID=""
STACK_STARTED=0   # 1 when some service was down before `stack.sh up`
STACK_ENV_READY=0 # 1 once the COUPON__ variables are known
TANSU=""
MYSQL_CLIENT=""

# shellcheck disable=SC2317 # runs from the EXIT trap
stop_api() {
    [[ -n $API_PID ]] || return 0
    local i
    kill -TERM "$API_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do # graceful shutdown waits up to 10 s, then flushes the producer
        kill -0 "$API_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$API_PID" 2>/dev/null; then
        log "issuer-api (pid $API_PID) ignored SIGTERM for 20s; sending SIGKILL"
        kill -KILL "$API_PID" 2>/dev/null || true
    fi
    wait "$API_PID" 2>/dev/null || true
    API_PID=""
}

# delete_keys PATTERN: deletes the Redis keys matching PATTERN (SCAN, never KEYS).
# shellcheck disable=SC2317 # runs from the EXIT trap
delete_keys() {
    local n
    n=$(redis_cmd --scan --pattern "$1" 2>/dev/null \
        | xargs -r -n 500 redis-cli -u "$COUPON__REDIS__URL" --no-auth-warning DEL 2>/dev/null \
        | awk '{s += $1} END {print s + 0}') || n=0
    ((n == 0)) || log "redis: deleted $n key(s) matching $1"
}

# shellcheck disable=SC2317 # runs from the EXIT trap
drop_database() {
    [[ -n $MYSQL_CLIENT ]] || return 0
    if mysql_q "DROP DATABASE IF EXISTS \`$1\`"; then
        log "mysql: dropped database $1"
    else
        log "mysql: could not drop database $1"
    fi
}

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n $API_PID ]]; then
        log "stopping issuer-api (pid $API_PID)"
        stop_api
    fi
    if ((STACK_ENV_READY)); then
        delete_keys "${KEY_PREFIX}*"
        drop_database "$DATABASE"
        delete_topics "$TOPIC"
    fi
    if ((STACK_STARTED)) && [[ $KEEP_STACK != 1 ]]; then
        log "stopping the stack services this run started"
        STACK_STATE_DIR=$STACK_DIR "$ROOT/scripts/stack.sh" down 8>&- || log "stack.sh down failed"
    fi
    ((rc == 0)) || log "failed (exit $rc); logs are in $LOG_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# Whether python $1 runs a schemathesis 4.x CLI.
schemathesis_ok() {
    local py=$1
    [[ -x $py ]] || command -v "$py" >/dev/null 2>&1 || return 1
    "$py" - >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
import schemathesis.cli  # noqa: F401
sys.exit(0 if version("schemathesis").split(".")[0] == "4" else 1)
EOF
}

ensure_schemathesis() { # sets ST_PY: the python whose `-m schemathesis.cli` to run
    local py pylog=$OUT_DIR/pip.log
    for py in "$VENV/bin/python" python3; do
        if schemathesis_ok "$py"; then
            ST_PY=$py
            return 0
        fi
    done
    ensure_cmds python3:python3
    log "pip install '$SCHEMATHESIS_SPEC' (log: $pylog)"
    if python3 -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_SPEC" >>"$pylog" 2>&1 \
        && schemathesis_ok python3; then
        ST_PY=python3
        return 0
    fi
    # No pip, or an "externally managed" system python (Debian): a private virtualenv.
    log "pip into python3 failed; using a virtualenv in $VENV"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" >>"$pylog" 2>&1 || {
        apt_install python3-venv python3-pip
        python3 -m venv "$VENV" >>"$pylog" 2>&1
    } || die "cannot create a virtualenv in $VENV (see $pylog)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_SPEC" \
        >>"$pylog" 2>&1 || die "pip install $SCHEMATHESIS_SPEC failed (see $pylog)"
    schemathesis_ok "$VENV/bin/python" || die "schemathesis installed but its CLI does not run (see $pylog)"
    ST_PY=$VENV/bin/python
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json_field FIELD: prints FIELD of the JSON object on stdin (fails when absent).
json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# Removes what interrupted runs left: databases, Redis keys and topics of this script's stems.
remove_leftovers() {
    local db t
    while IFS= read -r db; do
        if [[ -n $db && $db != "$DATABASE" ]]; then drop_database "$db"; fi
    done < <(mysql_q "SHOW DATABASES LIKE '${DB_STEM//_/\\_}%'" || true)
    delete_keys "${KEY_STEM}*"
    [[ -n $TANSU ]] || return 0
    while IFS= read -r t; do
        if [[ -n $t && $t != "$TOPIC" ]]; then delete_topics "$t"; fi
    done < <("$TANSU" topic list --broker "tcp://$COUPON__KAFKA__BOOTSTRAP_SERVERS" 2>/dev/null \
        | python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if str(t.get("name", "")).startswith(sys.argv[1]):
        print(t["name"])
' "$TOPIC_STEM" || true)
}

# ---------------------------------------------------------------------------------------------
# 0. One run at a time (leftover clean-up must not remove a live run's data)
# ---------------------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
exec 8>"$OUT_DIR/.lock"
flock -n 8 || die "another check-openapi run holds $OUT_DIR/.lock"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR" "$STACK_DIR"

# ---------------------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------------------
ensure_cmds curl:curl redis-cli:redis-tools od:coreutils python3:python3
ensure_schemathesis
ST_VERSION=$("$ST_PY" -m schemathesis.cli --version 2>/dev/null | tail -n 1)
ST_VERSION="schemathesis ${ST_VERSION##* }"
log "schemathesis: $ST_VERSION ($ST_PY)"
"$ST_PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["openapi"] == "3.0.3"' \
    "$SCHEMA_FILE" || die "$SCHEMA_FILE is not JSON with openapi 3.0.3"

# ---------------------------------------------------------------------------------------------
# 2. Stack with this run's own database and topic
# ---------------------------------------------------------------------------------------------
export STACK_STATE_DIR=$STACK_DIR STACK_MYSQL_DATABASE=$DATABASE STACK_TOPIC=$TOPIC
export STACK_PARTITIONS=1 STACK_DLQ_TOPIC=""
if [[ -z ${STACK_TANSU_BIN:-} ]] && find_tansu; then
    export STACK_TANSU_BIN=$TANSU # reuse the broker CLI an earlier stack.sh installed
fi
before=$("$ROOT/scripts/stack.sh" status 8>&- 2>/dev/null || true)
for svc in mysql redis kafka; do
    [[ $(awk -v s="$svc" '$1 == s {print $3}' <<<"$before") == UP ]] || STACK_STARTED=1
done
stack_env=$("$ROOT/scripts/stack.sh" up 8>&- 2>"$LOG_DIR/stack.log") || {
    tail -n 20 "$LOG_DIR/stack.log" >&2
    die "scripts/stack.sh up failed"
}
eval "$stack_env"
STACK_ENV_READY=1
find_tansu || true
MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client"
remove_leftovers

export COUPON__REDIS__KEY_PREFIX=$KEY_PREFIX
export COUPON__ADMIN__TOKEN=$ADMIN_TOKEN
export COUPON__LOG__FORMAT=text
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1

# ---------------------------------------------------------------------------------------------
# 3. Build, migrate, start the API
# ---------------------------------------------------------------------------------------------
ensure_cargo
ensure_build_deps
log "building release binaries"
(cd "$ROOT" && cargo build --release -p issuer-api -p compensation-batch 8>&-) \
    >"$LOG_DIR/build.log" 2>&1 || {
    tail -n 30 "$LOG_DIR/build.log" >&2
    die "cargo build failed"
}
log "migrating database $DATABASE"
"$(bin compensation-batch)" migrate >"$LOG_DIR/migrate.log" 2>&1 8>&- || {
    tail -n 20 "$LOG_DIR/migrate.log" >&2
    die "migrate failed"
}

PORT=$(free_port)
BASE_URL=http://127.0.0.1:$PORT
COUPON__HTTP__BIND=127.0.0.1:$PORT "$(bin issuer-api)" </dev/null >"$LOG_DIR/issuer-api.log" 2>&1 8>&- &
API_PID=$!
log "issuer-api pid $API_PID on $BASE_URL (log $LOG_DIR/issuer-api.log)"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf --max-time 2 "$BASE_URL/health/ready" >/dev/null 2>&1; do
    if ! kill -0 "$API_PID" 2>/dev/null; then
        tail -n 20 "$LOG_DIR/issuer-api.log" >&2
        API_PID=""
        die "issuer-api exited during start-up"
    fi
    ((SECONDS < deadline)) || die "issuer-api not ready within ${READY_TIMEOUT}s"
    sleep 0.3
done

# ---------------------------------------------------------------------------------------------
# 4. Real data: one coupon, open now
# ---------------------------------------------------------------------------------------------
starts=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
ends=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
body=$(printf '{"name":"openapi check %s","discount_amount":1000,"total_quantity":1000,"issue_starts_at":"%s","issue_ends_at":"%s","expiry_days":7}' \
    "$RUN_ID" "$starts" "$ends")
created=$(curl -sS --fail-with-body --max-time 10 -X POST "$BASE_URL/admin/coupons" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body") \
    || die "creating the coupon failed: $created"
COUPON_ID=$(json_field couponId <<<"$created") || die "no couponId in: $created"
log "coupon $COUPON_ID created (1000 coupons, $starts .. $ends)"

# ---------------------------------------------------------------------------------------------
# 5. schemathesis
# ---------------------------------------------------------------------------------------------
args=(run --url "$BASE_URL" -H "Authorization: Bearer $ADMIN_TOKEN" --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES" --workers "$WORKERS" --request-timeout 10
    --generation-database none --no-color --report junit --report-dir "$LOG_DIR")
[[ -z $SEED ]] || args+=(--seed "$SEED")
if curl -sf --max-time 5 "$BASE_URL/openapi.json" -o "$LOG_DIR/served-openapi.json" \
    && python3 -c 'import json, sys; assert "openapi" in json.load(open(sys.argv[1]))' \
        "$LOG_DIR/served-openapi.json" 2>/dev/null; then
    LOCATION=$BASE_URL/openapi.json
    if ! python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
        "$LOG_DIR/served-openapi.json" "$SCHEMA_FILE"; then
        log "warning: the served document differs from $SCHEMA_FILE (a stale binary?); checking the served one"
    fi
else
    LOCATION=$SCHEMA_FILE
    args+=(--exclude-path /openapi.json)
    log "the API does not serve GET /openapi.json yet: using $SCHEMA_FILE, that operation excluded"
fi
log "schemathesis $LOCATION -> $BASE_URL; checks $CHECKS; up to $MAX_EXAMPLES examples per operation"
st_rc=0
(cd "$LOG_DIR" && "$ST_PY" -m schemathesis.cli "${args[@]}" "$LOCATION" 8>&-) || st_rc=$?

if grep -q panicked "$LOG_DIR/issuer-api.log"; then
    grep -m 3 -A 1 panicked "$LOG_DIR/issuer-api.log" >&2
    log "issuer-api panicked during the run (see $LOG_DIR/issuer-api.log)"
    ((st_rc != 0)) || st_rc=1
fi
if ((st_rc != 0)); then
    die "schemathesis reported failures (exit $st_rc); JUnit report in $LOG_DIR"
fi
log "OK: issuer-api conforms to $(basename "$SCHEMA_FILE") ($ST_VERSION)"
