#!/usr/bin/env bash
# couponrush benchmark of issuer-api (not a test: it passes or fails nothing, it measures).
#
#   scripts/bench-api.sh                               the full run (~3 minutes)
#   BENCH_CONCURRENCIES=64 BENCH_DURATION=10 scripts/bench-api.sh        a quick one
#
# One run measures, on the real stack (MariaDB, Redis, tansu broker via scripts/stack.sh), with
# the load generator on the same machine:
#   1. accepted issuances/s: a coupon with BENCH_STOCK (10,000,000) units, every request a new
#      user, so every answer is a 202 that waited for the broker's acknowledgement; a short
#      warm-up, then BENCH_DURATION seconds at each concurrency of BENCH_CONCURRENCIES;
#   2. the sold-out path: a coupon whose only unit is already taken, every request a new user,
#      so every answer is 409 SOLD_OUT; then, for reference, the HTTP floor: GET /health/live
#      (what actix and wrk alone do here);
#   3. the Lua ceiling: crates/cache/src/lua/reserve.lua run directly with redis-benchmark
#      (EVALSHA, a random user per call) on scratch keys with a big stock and an open window,
#      and once more on a stock of 0 (the sold-out ceiling).
# For every phase it also records the CPU each process used (from /proc, in % of one core; the
# machine has `nproc` x 100 %): the load generator, issuer-api, redis-server, the broker,
# mariadbd, and "other" (whatever else ran, e.g. a compiler).
# It prints a summary table with the versions and the commit, writes nothing else besides logs
# in $BENCH_DIR/logs, and appends nothing to docs/benchmarks.md (that is written by hand).
#
# No coupon-consumer runs: the broker just accumulates the messages (nothing reads the topic,
# which is deleted at the end). Load generator: wrk (scripts/load/bench-issue.lua), closed loop,
# BENCH_WRK_THREADS threads; see docs/benchmarks.md for why wrk and not k6.
#
# Settings (environment, all optional):
#   BENCH_DURATION=20            measured seconds of each HTTP phase
#   BENCH_WARMUP=3               unmeasured seconds before each HTTP phase (same coupon, own users)
#   BENCH_CONCURRENCIES="32 64 128 256"   connections of the accepted-path phases
#   BENCH_SOLDOUT_CONCURRENCY=best    connections of the sold-out phase ("best": those of the best
#                                     accepted phase)
#   BENCH_FLOOR_SECONDS=10       seconds of GET /health/live at the sold-out concurrency: the HTTP
#                                floor (actix + wrk, no Redis, no broker); 0 skips it
#   BENCH_WORKERS=1              COUPON__HTTP__WORKERS of issuer-api (actix workers)
#   BENCH_WRK_THREADS=1          wrk threads
#   BENCH_STOCK=10000000         stock of the accepted-path coupon (must exceed the requests)
#   BENCH_LUA_REQUESTS=500000    EVALSHA calls per Lua phase
#   BENCH_LUA_CLIENTS=50         redis-benchmark connections (-c), no pipelining (-P 1)
#   BENCH_DATABASE=couponrush_bench   dropped and recreated each run (must contain "bench")
#   BENCH_HTTP_BIND=127.0.0.1:18081   issuer-api address
#   BENCH_PARTITIONS=3           partitions of the run's topic
#   BENCH_READY_TIMEOUT=60       seconds for issuer-api to become ready
#   BENCH_QUIET_WAIT=0           seconds to wait, before measuring, for other processes to use
#                                less than BENCH_QUIET_PCT % of one core (0: do not wait); the
#                                background load is printed either way and is part of "other"
#   BENCH_QUIET_PCT=20
#   BENCH_KEEP=0                 1: keep the Redis keys, topic and database after the run
#   BENCH_DIR=<repo>/.stack/bench     logs (logs/ is replaced each run), stack state
#   BENCH_BUILD=1                0: do not run cargo build, use the binaries already in the target
#                                directory (e.g. a build of another commit)
#   CARGO_TARGET_DIR             respected when set
#   COUPON__*                    passed to issuer-api (e.g. COUPON__REDIS__POOL_SIZE); the stack's
#                                addresses, topic, prefix, bind, workers and logging are set here
#   STACK_*                      passed to scripts/stack.sh (hosts, ports, credentials...)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-3}
read -r -a CONCURRENCIES <<<"${BENCH_CONCURRENCIES:-32 64 128 256}"
SOLDOUT_CONC=${BENCH_SOLDOUT_CONCURRENCY:-best}
WORKERS=${BENCH_WORKERS:-1}
FLOOR_SECS=${BENCH_FLOOR_SECONDS:-10}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
STOCK=${BENCH_STOCK:-10000000}
LUA_REQUESTS=${BENCH_LUA_REQUESTS:-500000}
LUA_CLIENTS=${BENCH_LUA_CLIENTS:-50}
DATABASE=${BENCH_DATABASE:-couponrush_bench}
HTTP_BIND=${BENCH_HTTP_BIND:-127.0.0.1:18081}
PARTITIONS=${BENCH_PARTITIONS:-3}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-60}
KEEP=${BENCH_KEEP:-0}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
BUILD=${BENCH_BUILD:-1}
QUIET_PCT=${BENCH_QUIET_PCT:-20}
BENCH_DIR=${BENCH_DIR:-$ROOT/.stack/bench}

for v in FLOOR_SECS QUIET_WAIT QUIET_PCT DURATION WARMUP WORKERS WRK_THREADS STOCK LUA_REQUESTS LUA_CLIENTS PARTITIONS READY_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer, got '${!v}'"
done
((DURATION >= 1 && WRK_THREADS >= 1 && STOCK >= 2 && LUA_REQUESTS >= 1 && LUA_CLIENTS >= 1 && PARTITIONS >= 1)) \
    || die "BENCH_DURATION, BENCH_WRK_THREADS, BENCH_LUA_* and BENCH_PARTITIONS must be at least 1, BENCH_STOCK at least 2"
((${#CONCURRENCIES[@]} >= 1)) || die "BENCH_CONCURRENCIES is empty"
for c in "${CONCURRENCIES[@]}"; do
    if ! [[ $c =~ ^[0-9]+$ ]] || ((c < WRK_THREADS)); then
        die "each of BENCH_CONCURRENCIES must be a number >= BENCH_WRK_THREADS ($WRK_THREADS), got '$c'"
    fi
done
[[ $SOLDOUT_CONC == best || ($SOLDOUT_CONC =~ ^[0-9]+$ && $SOLDOUT_CONC -ge $WRK_THREADS) ]] \
    || die "BENCH_SOLDOUT_CONCURRENCY must be 'best' or a number >= BENCH_WRK_THREADS"
[[ $DATABASE =~ ^[A-Za-z0-9_]+$ && $DATABASE == *bench* ]] \
    || die "BENCH_DATABASE must match [A-Za-z0-9_]+ and contain 'bench' (it is dropped each run)"
[[ $HTTP_BIND =~ ^([^:]+):([0-9]+)$ ]] || die "BENCH_HTTP_BIND must be host:port, got '$HTTP_BIND'"
API_HOST=${BASH_REMATCH[1]}
API_PORT=${BASH_REMATCH[2]}
[[ $API_HOST == 0.0.0.0 ]] && API_HOST=127.0.0.1
BASE_URL=http://$API_HOST:$API_PORT

# Names unique to this run.
RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
TOPIC=coupon-issue-bench-$RUN_ID
KEY_PREFIX=couponrush-bench:$RUN_ID:
LUA_PREFIX=${KEY_PREFIX}lua:
USER_TAG=b$$x$(date +%s) # every user id of this run starts with it (then phase, thread, counter)
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

STACK_DIR=$BENCH_DIR/stack
LOG_DIR=$BENCH_DIR/logs
WRK_SCRIPT=$ROOT/scripts/load/bench-issue.lua
RESERVE_LUA=$ROOT/crates/cache/src/lua/reserve.lua

# ---------------------------------------------------------------------------------------------
# Clean-up: runs once on every exit (normal, failure, Ctrl-C)
# ---------------------------------------------------------------------------------------------
PIDS=()           # processes this script started (issuer-api, the load generator's subshell)
STACK_STARTED=0   # 1 once `stack.sh up` ran and not every service was up before
STACK_ENV_READY=0 # 1 once the COUPON__ environment is known
DB_CREATED=0
TANSU=""

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((${#PIDS[@]} > 0)); then
        log "stopping the benchmark's processes"
        stop_pids
    fi
    if ((STACK_ENV_READY)) && [[ $KEEP != 1 ]]; then
        delete_redis_keys "$KEY_PREFIX"
        delete_topics "$TOPIC"
        if ((DB_CREATED)); then
            mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`" - && log "mysql: dropped database $DATABASE"
        fi
    fi
    if ((STACK_STARTED)); then
        log "stopping the stack services this benchmark started"
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

CLK_TCK=$(getconf CLK_TCK)

# The processes whose CPU each phase records (besides the load generator): name=pid.
WATCH=()

# RES[phase:key] = value; CPU[phase] = "gen=% api=% ..." (percent of one core);
# TICKS[phase] = "gen=N api=N ... other=N" (clock ticks used over the phase)
declare -A RES=()
declare -A CPU=()
declare -A TICKS=()

# record_cpu PHASE BEFORE AFTER GEN_TICKS: per-process CPU % of one core over the phase.
record_cpu() {
    local phase=$1 gen=$4 i busy total line sum
    local -a b a
    read -r -a b <<<"$2"
    read -r -a a <<<"$3"
    busy=$((a[0] - b[0]))
    total=$((a[1] - b[1]))
    ((total > 0)) || total=1
    # total ticks span nproc CPUs: % of one core = ticks / (total / nproc) * 100
    pct() { awk -v t="$1" -v tot="$total" -v n="$NPROC" 'BEGIN { printf "%.0f", t * 100 * n / tot }'; }
    local ticks="gen=$gen" other
    line="gen=$(pct "$gen")"
    sum=$gen
    for ((i = 0; i < ${#WATCH[@]}; i++)); do
        line+=" ${WATCH[i]%%=*}=$(pct "$((a[i + 2] - b[i + 2]))")"
        ticks+=" ${WATCH[i]%%=*}=$((a[i + 2] - b[i + 2]))"
        sum=$((sum + a[i + 2] - b[i + 2]))
    done
    other=$((busy - sum > 0 ? busy - sum : 0))
    line+=" other=$(pct "$other") machine=$(pct "$busy")"
    CPU[$phase]=$line
    TICKS[$phase]="$ticks other=$other"
}

# cpu_per_answer PHASE ANSWERS: "gen=12 api=85 ..." microseconds of CPU per answer.
cpu_per_answer() {
    local kv out=""
    for kv in ${TICKS[$1]}; do
        out+=" ${kv%%=*}=$(awk -v t="${kv#*=}" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.0f", (n > 0 ? t * 1e6 / hz / n : 0) }')"
    done
    echo "${out# }"
}

# measure OUT CMD...: runs CMD (a load generator) with stdout+stderr to OUT.log and the CPU it used
# (`times` of a subshell: its children's user and system time) to OUT.times. CMD runs in the
# background and is waited for, so a signal reaches the EXIT trap at once; the trap stops the
# subshell, whose own trap stops CMD.
measure() {
    local out=$1 rc=0 sub
    shift
    (
        "$@" >"$out.log" 2>&1 &
        gen=$!
        trap 'kill -TERM "$gen" 2>/dev/null; wait "$gen"; exit 143' TERM
        rc=0
        wait "$gen" || rc=$?
        times >"$out.times"
        exit "$rc"
    ) 8>&- &
    sub=$!
    PIDS+=("$sub")
    wait "$sub" || rc=$?
    forget_pid "$sub"
    return "$rc"
}

# run_wrk PHASE COUPON USER_PREFIX CONNECTIONS SECONDS: one wrk run; its BENCH line goes to RES.
run_wrk() {
    local phase=$1 coupon=$2 prefix=$3 conns=$4 secs=$5 out before after kv
    out=$LOG_DIR/wrk-$phase
    before=$(cpu_snapshot)
    measure "$out" "$WRK" -t "$WRK_THREADS" -c "$conns" -d "${secs}s" --timeout 10s --latency \
        -s "$WRK_SCRIPT" "$BASE_URL" -- "$coupon" "$prefix" 1 || die "wrk failed in phase $phase (see $out.log)"
    after=$(cpu_snapshot)
    record_cpu "$phase" "$before" "$after" "$(times_to_ticks "$out.times")"
    local line
    line=$(grep '^BENCH ' "$out.log") || die "wrk printed no BENCH line in phase $phase (see $out.log)"
    for kv in ${line#BENCH }; do RES[$phase:${kv%%=*}]=${kv#*=}; done
    RES[$phase:conns]=$conns
}

# per_sec COUNT DURATION_US, ms MICROS: formatting with awk (bash has no floats).
per_sec() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", (us > 0 ? n * 1e6 / us : 0) }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }

# ---------------------------------------------------------------------------------------------
# 0. One benchmark at a time; fresh log directory
# ---------------------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
exec 8>"$BENCH_DIR/.lock"
flock -n 8 || die "another benchmark is running ($BENCH_DIR/.lock is held)"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR" "$STACK_DIR"
NPROC=$(nproc)
log "run $RUN_ID: ${DURATION}s per phase (+${WARMUP}s warm-up), concurrencies ${CONCURRENCIES[*]}, workers $WORKERS; logs in $LOG_DIR"

# ---------------------------------------------------------------------------------------------
# 1. Tools (idempotent)
# ---------------------------------------------------------------------------------------------
ensure_cmds curl:curl jq:jq flock:util-linux timeout:coreutils od:coreutils ss:iproute2 \
    redis-cli:redis-tools redis-benchmark:redis-tools wrk:wrk
WRK=$(command -v wrk)

# ---------------------------------------------------------------------------------------------
# 2. Stack: reuse what runs, start what is missing; the run's own database and topic
# ---------------------------------------------------------------------------------------------
export STACK_STATE_DIR=$STACK_DIR STACK_MYSQL_DATABASE=$DATABASE STACK_TOPIC=$TOPIC
export STACK_PARTITIONS=$PARTITIONS STACK_DLQ_TOPIC=""
if [[ -z ${STACK_TANSU_BIN:-} ]] && find_tansu; then
    export STACK_TANSU_BIN=$TANSU
fi
before=$("$ROOT/scripts/stack.sh" status 8>&- 2>/dev/null || true)
all_up=1
for svc in mysql redis kafka; do
    state=$(awk -v s="$svc" '$1 == s {print $3}' <<<"$before")
    [[ $state == UP ]] || all_up=0
done
((all_up)) || STACK_STARTED=1
stack_env=$("$ROOT/scripts/stack.sh" up 8>&-) || die "scripts/stack.sh up failed"
eval "$stack_env"
STACK_ENV_READY=1
find_tansu || true
MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client"

export COUPON__REDIS__KEY_PREFIX=$KEY_PREFIX
export COUPON__HTTP__BIND=$HTTP_BIND
export COUPON__HTTP__WORKERS=$WORKERS
export COUPON__LOG__FORMAT=json
export RUST_LOG=warn NO_COLOR=1

log "mysql: dropping and recreating database $DATABASE"
mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`; CREATE DATABASE \`$DATABASE\` CHARACTER SET utf8mb4" -
DB_CREATED=1

# ---------------------------------------------------------------------------------------------
# 3. Build, migrate, start issuer-api (no consumers: the topic just accumulates)
# ---------------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    ensure_cargo
    ensure_build_deps
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p issuer-api -p compensation-batch 8>&-) >"$LOG_DIR/build.log" 2>&1 || {
        tail -n 30 "$LOG_DIR/build.log" >&2
        die "cargo build failed"
    }
else
    log "BENCH_BUILD=$BUILD: using the binaries in $(dirname "$(bin issuer-api)") as they are"
fi
for b in issuer-api compensation-batch; do
    [[ -x $(bin "$b") ]] || die "$(bin "$b") is missing"
done
"$(bin compensation-batch)" migrate >"$LOG_DIR/migrate.log" 2>&1 8>&- || {
    tail -n 20 "$LOG_DIR/migrate.log" >&2
    die "migrate failed"
}
port_open "$API_HOST" "$API_PORT" && die "something already listens on $HTTP_BIND; set BENCH_HTTP_BIND"

COUPON__ADMIN__TOKEN=$ADMIN_TOKEN "$(bin issuer-api)" </dev/null >"$LOG_DIR/issuer-api.log" 2>&1 8>&- &
API_PID=$!
PIDS+=("$API_PID")
log "started issuer-api (pid $API_PID, $WORKERS worker(s), log $LOG_DIR/issuer-api.log)"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf --max-time 2 "$BASE_URL/health/ready" >/dev/null 2>&1; do
    alive_or_die "$API_PID" issuer-api
    ((SECONDS < deadline)) || die "issuer-api not ready within ${READY_TIMEOUT}s"
    sleep 0.3
done

WATCH=("api=$API_PID")
for w in "redis=$(pid_on_port "${COUPON__REDIS__URL##*:}")" "broker=$(pid_on_port "${COUPON__KAFKA__BOOTSTRAP_SERVERS##*:}")" \
    "mysql=$(pid_on_port "$COUPON__MYSQL__PORT")"; do
    if [[ ${w#*=} =~ ^[0-9]+$ ]]; then
        WATCH+=("$w")
    else
        log "no pid found for ${w%%=*}: its CPU is counted in 'other'"
    fi
done

# Background load: what other processes use while nothing of ours runs (2 s samples).
BACKGROUND=$(background_pct)
deadline=$((SECONDS + QUIET_WAIT))
while ((BACKGROUND > QUIET_PCT && SECONDS < deadline)); do
    log "machine busy: other processes use ${BACKGROUND}% of one core; waiting (BENCH_QUIET_WAIT=$QUIET_WAIT)"
    BACKGROUND=$(background_pct)
done
((BACKGROUND <= QUIET_PCT)) \
    || log "warning: other processes use ${BACKGROUND}% of one core before the start; results will be low (see 'other')"

# ---------------------------------------------------------------------------------------------
# 4. The two events: a huge stock, and a stock of 1 that is taken at once
# ---------------------------------------------------------------------------------------------
create_coupon() { # create_coupon STOCK: prints the coupon id
    local body created starts ends
    starts=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
    ends=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
    body=$(jq -cn --arg name "bench $RUN_ID stock $1" --argjson total "$1" --arg s "$starts" --arg e "$ends" \
        '{name: $name, discount_amount: 1000, total_quantity: $total,
          issue_starts_at: $s, issue_ends_at: $e, expiry_days: 30}')
    created=$(curl -sS --fail-with-body --max-time 10 -X POST "$BASE_URL/admin/coupons" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body") \
        || die "creating a coupon failed: $created"
    jq -er '.couponId' <<<"$created" || die "no couponId in: $created"
}
BIG=$(create_coupon "$STOCK")
ONE=$(create_coupon 1)
first=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST "$BASE_URL/coupons/$ONE/issue" -H "userId: ${USER_TAG}first")
[[ $first == 202 ]] || die "taking the only unit of coupon $ONE answered $first, not 202"
log "coupons: $BIG (stock $STOCK), $ONE (stock 1, taken)"
USERS_KEY="${KEY_PREFIX}coupon:issue:{$BIG}:users"

# ---------------------------------------------------------------------------------------------
# 5. Accepted path at each concurrency, then the sold-out path
# ---------------------------------------------------------------------------------------------
BEST=""
BEST_RPS=-1
for c in "${CONCURRENCIES[@]}"; do
    phase=accepted-c$c
    if ((WARMUP > 0)); then
        log "$phase: warm-up ${WARMUP}s"
        run_wrk "warmup-$phase" "$BIG" "${USER_TAG}w${c}t" "$c" "$WARMUP"
    fi
    users_before=$(redis_cmd HLEN "$USERS_KEY")
    log "$phase: ${DURATION}s, $c connections"
    run_wrk "$phase" "$BIG" "${USER_TAG}a${c}t" "$c" "$DURATION"
    users_after=$(redis_cmd HLEN "$USERS_KEY")
    RES[$phase:redis_new_users]=$((users_after - users_before))
    RES[$phase:rps]=$(per_sec "${RES[$phase:s202]}" "${RES[$phase:duration_us]}")
    log "$phase: ${RES[$phase:rps]} accepted/s, p99 $(ms "${RES[$phase:p99_us]}") ms (${CPU[$phase]})"
    rps=${RES[$phase:rps]}
    if ((rps > BEST_RPS)); then
        BEST_RPS=${RES[$phase:rps]}
        BEST=$c
    fi
done
stock_left=$(redis_cmd GET "${KEY_PREFIX}coupon:issue:{$BIG}:stock")

[[ $SOLDOUT_CONC == best ]] && SOLDOUT_CONC=$BEST
phase=soldout-c$SOLDOUT_CONC
if ((WARMUP > 0)); then
    log "$phase: warm-up ${WARMUP}s"
    run_wrk "warmup-$phase" "$ONE" "${USER_TAG}v${SOLDOUT_CONC}t" "$SOLDOUT_CONC" "$WARMUP"
fi
log "$phase: ${DURATION}s, $SOLDOUT_CONC connections"
run_wrk "$phase" "$ONE" "${USER_TAG}s${SOLDOUT_CONC}t" "$SOLDOUT_CONC" "$DURATION"
RES[$phase:rps]=$(per_sec "${RES[$phase:s409]}" "${RES[$phase:duration_us]}")
SOLDOUT_PHASE=$phase
log "$phase: ${RES[$phase:rps]} sold-out answers/s, p99 $(ms "${RES[$phase:p99_us]}") ms (${CPU[$phase]})"

FLOOR_PHASE=""
if ((FLOOR_SECS > 0)); then
    FLOOR_PHASE=health-c$SOLDOUT_CONC
    log "$FLOOR_PHASE: GET /health/live ${FLOOR_SECS}s, $SOLDOUT_CONC connections (the HTTP floor)"
    run_wrk "$FLOOR_PHASE" health "${USER_TAG}h" "$SOLDOUT_CONC" "$FLOOR_SECS"
    RES[$FLOOR_PHASE:rps]=$(per_sec "${RES[$FLOOR_PHASE:s200]}" "${RES[$FLOOR_PHASE:duration_us]}")
    log "$FLOOR_PHASE: ${RES[$FLOOR_PHASE:rps]} answers/s (${CPU[$FLOOR_PHASE]})"
fi

# The API is no longer needed: stop it so the Lua phases run on a quiet machine.
stop_pids
WATCH=("${WATCH[@]:1}")
API_PID=""

# ---------------------------------------------------------------------------------------------
# 6. The Lua ceiling: reserve.lua via EVALSHA from redis-benchmark, a random user per call
# ---------------------------------------------------------------------------------------------
SHA=$(redis_cmd SCRIPT LOAD "$(cat "$RESERVE_LUA")")
[[ $SHA =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD answered '$SHA'"
now=$(now_ms)
# A pending state of the real shape: P|<request id (uuid)>|<epoch ms>
STATE="P|$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')|$now"
RAND_RANGE=2000000000 # redis-benchmark's -r (an int); ids are u<12 digits>

# run_lua PHASE TAG STOCK: loads scratch keys under {TAG} and runs the benchmark on them.
run_lua() {
    local phase=$1 tag=$2 stock=$3 meta stockkey users holds void before after rps out
    meta="${LUA_PREFIX}coupon:issue:{$tag}:meta"
    stockkey="${LUA_PREFIX}coupon:issue:{$tag}:stock"
    users="${LUA_PREFIX}coupon:issue:{$tag}:users"
    holds="${LUA_PREFIX}coupon:issue:{$tag}:holds"
    void="${LUA_PREFIX}coupon:issue:{$tag}:void:r__rand_int__"
    redis_cmd HSET "$meta" total "$stock" starts_ms 0 ends_ms $((now + 86400000)) expiry_days 30 >/dev/null
    redis_cmd SET "$stockkey" "$stock" >/dev/null
    out=$LOG_DIR/redis-benchmark-$phase
    log "$phase: redis-benchmark -n $LUA_REQUESTS -c $LUA_CLIENTS -P 1 EVALSHA reserve.lua (stock $stock)"
    before=$(cpu_snapshot)
    measure "$out" redis-benchmark -u "$COUPON__REDIS__URL" -n "$LUA_REQUESTS" -c "$LUA_CLIENTS" -P 1 \
        -r "$RAND_RANGE" --csv \
        EVALSHA "$SHA" 5 "$meta" "$stockkey" "$users" "$holds" "$void" \
        "u__rand_int__" "$STATE" "$now" "r__rand_int__" "$((now - 5000))" \
        || die "redis-benchmark failed (see $out.log)"
    after=$(cpu_snapshot)
    record_cpu "$phase" "$before" "$after" "$(times_to_ticks "$out.times")"
    # --csv: a header line, then "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    rps=$(awk -F'","' 'NR == 2 { printf "%.0f", $2 }' "$out.log")
    [[ $rps =~ ^[0-9]+$ ]] || die "no result from redis-benchmark (see $out.log)"
    RES[$phase:rps]=$rps
    RES[$phase:p50]=$(awk -F'","' 'NR == 2 { print $5 }' "$out.log")
    RES[$phase:p99]=$(awk -F'","' 'NR == 2 { print $7 }' "$out.log")
    RES[$phase:users]=$(redis_cmd HLEN "$users")
    RES[$phase:stock]=$(redis_cmd GET "$stockkey")
    log "$phase: $rps evals/s (${CPU[$phase]})"
}
run_lua lua-accept 1 "$STOCK"
run_lua lua-soldout 2 0

# ---------------------------------------------------------------------------------------------
# 7. Summary
# ---------------------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# What is built: crates/, Cargo.*, migrations/. Other uncommitted files do not change the binaries.
dirty=$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock migrations 2>/dev/null | wc -l)
rustc_v=$(rustc --version 2>/dev/null | awk '{print $2}')
wrk_v=$("$WRK" -v 2>&1 | awk 'NR == 1 {print $2}' || true)
redis_v=$(redis_cmd INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" {print $2}')
mysql_v=$(mysql_q 'SELECT VERSION()' - 2>/dev/null || echo "?")
broker_v="?"
[[ -z $TANSU ]] || broker_v=$("$TANSU" --version 2>/dev/null | head -n 1 || echo "?")
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)

http_row() { # http_row LABEL PHASE COUNT_KEY
    local p=$2 errs
    local n=${RES[$p:requests]} ok=${RES[$p:$3]} e1=${RES[$p:connect]} e2=${RES[$p:read]} \
        e3=${RES[$p:write]} e4=${RES[$p:timeout]}
    errs=$((n - ok + e1 + e2 + e3 + e4))
    printf ' %-24s %5s %10s %8s %8s %8s %8s %7s\n' "$1" "${RES[$p:conns]}" "${RES[$p:rps]}" \
        "$(ms "${RES[$p:p50_us]}")" "$(ms "${RES[$p:p95_us]}")" "$(ms "${RES[$p:p99_us]}")" \
        "$(ms "${RES[$p:max_us]}")" "$errs"
}
# cpu_row LABEL PHASE ANSWERS: "name pct% (us)" per process, then other and machine in %.
cpu_row() {
    local kv per out="" name pct
    local -A us=()
    per=$(cpu_per_answer "$2" "$3")
    for kv in $per; do us[${kv%%=*}]=${kv#*=}; done
    for kv in ${CPU[$2]}; do
        name=${kv%%=*}
        pct=${kv#*=}
        case $name in
            other | machine) out+=$(printf ' %s %s%%' "$name" "$pct") ;;
            *) out+=$(printf ' %s %s%% (%s us)' "$name" "$pct" "${us[$name]:-?}") ;;
        esac
    done
    printf ' %-24s%s\n' "$1" "$out"
}
best_phase=accepted-c$BEST
RATIO=$(awk -v a="$BEST_RPS" -v l="${RES[lua-accept:rps]}" 'BEGIN { printf "%.3f", (l > 0 ? a / l : 0) }')
verdict() { if (($1)); then echo met; else echo "NOT met"; fi; } # verdict 0|1
p99_best_us=${RES[$best_phase:p99_us]}
soldout_rps=${RES[$SOLDOUT_PHASE:rps]}
# Met when any accepted phase has both the rate and the tail latency.
T_ACCEPTED=0
for c in "${CONCURRENCIES[@]}"; do
    if ((${RES[accepted-c$c:rps]} >= 10000 && ${RES[accepted-c$c:p99_us]} < 20000)); then
        T_ACCEPTED=1
    fi
done
T_SOLDOUT=$((soldout_rps >= 20000))
T_RATIO=$(awk -v r="$RATIO" 'BEGIN { print (r >= 0.4) ? 1 : 0 }')

cat <<EOF

======================================= couponrush issuer-api benchmark =======================================
 date       $(date -u +%Y-%m-%dT%H:%M:%SZ)   run $RUN_ID
 machine    $NPROC cores ($cpu_model), ${mem_gib} GiB, Linux $(uname -r)
 code       commit $commit$( ((dirty > 0)) && printf ' + %s uncommitted change(s) in crates/ Cargo.* migrations/' "$dirty" || printf ' (crates/ Cargo.* migrations/ as committed)'), rustc $rustc_v, release build$([[ $BUILD == 1 ]] || printf ' (not rebuilt: %s)' "$(bin issuer-api)")
 versions   wrk $wrk_v ($WRK_THREADS thread(s)), redis $redis_v, MariaDB $mysql_v, broker $broker_v
 issuer-api http.workers=$WORKERS, log json, RUST_LOG=warn, redis pool ${COUPON__REDIS__POOL_SIZE:-32}; no consumer running
 phases     ${WARMUP}s warm-up (not measured) + ${DURATION}s each, closed loop, every request a new user
 background other processes used ${BACKGROUND}% of one core just before the start (nothing of ours running)

 phase                    conns  answers/s   p50 ms   p95 ms   p99 ms   max ms  errors
EOF
for c in "${CONCURRENCIES[@]}"; do http_row "accepted (202)" "accepted-c$c" s202; done
http_row "sold out (409)" "$SOLDOUT_PHASE" s409
[[ -z $FLOOR_PHASE ]] || http_row "HTTP floor (health 200)" "$FLOOR_PHASE" s200
for p in lua-accept lua-soldout; do
    printf ' %-24s %5s %10s %8s %8s %8s %8s %7s\n' \
        "$([[ $p == lua-accept ]] && echo 'Lua reserve, accept' || echo 'Lua reserve, sold out')" \
        "$LUA_CLIENTS" "${RES[$p:rps]}" "${RES[$p:p50]}" "-" "${RES[$p:p99]}" "-" "-"
done
printf '\n CPU: %% of one core over the phase (machine = %s %%), in brackets us of CPU per answer;\n' "$((NPROC * 100))"
printf ' gen = the load generator (wrk, or redis-benchmark); redis, broker, mysql = the server processes,\n'
printf ' shared with whoever else uses them (the issue path never touches MySQL); other = any other process\n'
for c in "${CONCURRENCIES[@]}"; do cpu_row "accepted c$c" "accepted-c$c" "${RES[accepted-c$c:s202]}"; done
cpu_row "sold out c$SOLDOUT_CONC" "$SOLDOUT_PHASE" "${RES[$SOLDOUT_PHASE:s409]}"
[[ -z $FLOOR_PHASE ]] || cpu_row "HTTP floor c$SOLDOUT_CONC" "$FLOOR_PHASE" "${RES[$FLOOR_PHASE:s200]}"
cpu_row "Lua reserve, accept" lua-accept "$LUA_REQUESTS"
cpu_row "Lua reserve, sold out" lua-soldout "$LUA_REQUESTS"
cat <<EOF

 checks     accepted phases: Redis recorded $(for c in "${CONCURRENCIES[@]}"; do printf '%s/%s ' "${RES[accepted-c$c:redis_new_users]}" "${RES[accepted-c$c:s202]}"; done)new users / 202s seen by wrk
            (Redis may hold up to one in-flight request per connection more); stock left $stock_left of $STOCK
            Lua accept: $LUA_REQUESTS evals -> ${RES[lua-accept:users]} users recorded (the rest drew an id twice), stock ${RES[lua-accept:stock]}
 best       accepted ${BEST_RPS}/s at $BEST connections, p99 $(ms "$p99_best_us") ms
 ratio      accepted / Lua ceiling = $BEST_RPS / ${RES[lua-accept:rps]} = $RATIO
 targets    >= 10000 accepted/s with p99 < 20 ms ........ $(verdict "$T_ACCEPTED")
            >= 20000 sold-out answers/s ................. $(verdict "$T_SOLDOUT")
            accepted >= 0.4 x Lua ceiling ............... $(verdict "$T_RATIO")
===============================================================================================================
EOF
log "logs in $LOG_DIR"
