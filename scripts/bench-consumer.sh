#!/usr/bin/env bash
# couponrush benchmark of coupon-consumer (not a test: it passes or fails nothing, it measures).
#
#   scripts/bench-consumer.sh                          the full run (~3-5 minutes)
#   BENCH_BATCH_SIZES=2000 BENCH_MORE=50000 scripts/bench-consumer.sh       a quick one
#
# One run, on the real stack (MariaDB, Redis, tansu broker via scripts/stack.sh), for each batch
# size of BENCH_BATCH_SIZES (COUPON__CONSUMER__BATCH_SIZE), with its own topic (3 partitions),
# dead-letter topic, consumer group and coupon (stock BENCH_STOCK, created through issuer-api,
# which is stopped again before anything is measured):
#   A. the incident's backlog: BENCH_BACKLOG (45,000) IssueRequested messages for distinct users
#      preloaded before the consumer starts (python confluent-kafka, batched; read back to prove
#      the topic holds them), then ONE coupon-consumer (release, RUST_LOG=warn, JSON logs) is
#      started; time until MySQL holds them all, from the process start and from the first row
#      (the group join takes a few seconds with tansu);
#   B. a full backlog drained by a consumer already in the group: the consumer is frozen
#      (SIGSTOP, sent by the preloading helper once its payloads are built, so the freeze lasts
#      about 2 s, well within the session timeout; a rejoin would be reported), BENCH_MORE
#      (200,000) more messages are preloaded, and the clock starts with SIGCONT; time until MySQL
#      holds them all;
# then, once:
#   C. the raw MySQL ceiling: BENCH_CEILING_ROWS (245,000) coupon_user rows for a fresh coupon,
#      BENCH_CEILING_PER_STMT (2000, the consumer's default batch) rows per INSERT IGNORE, one
#      transaction per statement shaped like the consumer's (lock the coupon row, insert,
#      decrement the stock, commit), statements built before the clock starts, over one
#      connection (PyMySQL); and once more with the consumer's whole SQL for a first delivery
#      (plus the participation-log INSERT; it looks users up only when a batch is re-delivered).
# Checks at the end of each batch size: coupon_user rows == BACKLOG + MORE, distinct users ==
# rows, available_quantity == total - rows, Redis issued counter and users hash == rows, the
# dead-letter topic empty, no consumer-group rejoin during phase B. Topics are counted by reading
# them back (scripts/load/bench-consumer.py count): tansu 0.6.0 answers ListOffsets(latest) with
# the last record batch's base offset + 1, so its high watermarks undercount batched writes.
#
# "Rows in MySQL" is polled every BENCH_POLL_MS as total_quantity - available_quantity of the
# coupon (a primary-key read): the consumer decrements the stock in the same transaction that
# inserts the rows, so every committed snapshot has COUNT(*) == total - available (COUNT(*) is
# read once more when the target is reached and printed). A COUNT(*) over a 245,000-row range
# takes 50-100 ms of MariaDB CPU and would itself load the 2-core machine every 50 ms;
# BENCH_POLL=count polls COUNT(*) anyway.
#
# For every phase it records the CPU each process used (from /proc, % of one core; the machine
# has `nproc` x 100 %): coupon-consumer, mariadbd, the broker, redis-server, the python helper
# (gen) and "other"; per thread of the consumer in phase B; `top -b` snapshots during phase B
# go to $BENCH_DIR/logs. It prints a summary table with the versions and the commit, writes
# nothing else besides logs, and appends nothing to docs/benchmarks.md (written by hand).
#
# Settings (environment, all optional):
#   BENCH_BATCH_SIZES="2000 500"   COUPON__CONSUMER__BATCH_SIZE of each round (A + B each)
#   BENCH_BACKLOG=45000            phase A messages
#   BENCH_MORE=200000              phase B messages
#   BENCH_STOCK=250000             total_quantity of each round's coupon (>= BACKLOG + MORE)
#   BENCH_CEILING_ROWS=245000      rows of each ceiling phase (0: skip phase C)
#   BENCH_CEILING_PER_STMT=2000    rows per INSERT (and per transaction) of the ceiling
#   BENCH_POLL_MS=50               MySQL polling interval while draining
#   BENCH_POLL=stock               stock | count (see above)
#   BENCH_DRAIN_TIMEOUT=180        seconds a phase may take before the run is declared failed
#   BENCH_DATABASE=couponrush_bench_consumer   dropped and recreated each run (contains "bench")
#   BENCH_HTTP_BIND=127.0.0.1:18082            issuer-api address (only to create the coupons)
#   BENCH_PARTITIONS=3             partitions of each round's topic
#   BENCH_OPS_BIND=127.0.0.1:19093 the consumer's ops port (its /metrics is read after A and B:
#                                  batch sizes and time spent in persist())
#   BENCH_QUIET_WAIT=0             seconds to wait, before measuring, for other processes to use
#                                  less than BENCH_QUIET_PCT % of one core (0: do not wait)
#   BENCH_QUIET_PCT=20
#   BENCH_KEEP=0                   1: keep the Redis keys, topics and database after the run
#   BENCH_DIR=<repo>/.stack/bench-consumer     logs (logs/ is replaced each run), stack state,
#                                  a python virtualenv if the system python refuses pip
#   BENCH_BUILD=1                  0: do not run cargo build, use the binaries already in the
#                                  target directory (e.g. a build of another commit)
#   CARGO_TARGET_DIR               respected when set
#   COUPON__*                      passed to coupon-consumer (e.g. COUPON__MYSQL__POOL_SIZE, or
#                                  COUPON__KAFKA__SESSION_TIMEOUT_MS: tansu 0.6.0 completes a new
#                                  group's join after about max(1 s, session timeout / 2)); the
#                                  stack's addresses, topics, group, prefix, batch size and
#                                  logging are set here
#   STACK_*                        passed to scripts/stack.sh (hosts, ports, credentials...)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench-consumer
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
read -r -a BATCH_SIZES <<<"${BENCH_BATCH_SIZES:-2000 500}"
BACKLOG=${BENCH_BACKLOG:-45000}
MORE=${BENCH_MORE:-200000}
STOCK=${BENCH_STOCK:-250000}
CEILING_ROWS=${BENCH_CEILING_ROWS:-245000}
CEILING_PER_STMT=${BENCH_CEILING_PER_STMT:-2000}
POLL_MS=${BENCH_POLL_MS:-50}
POLL=${BENCH_POLL:-stock}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-180}
DATABASE=${BENCH_DATABASE:-couponrush_bench_consumer}
HTTP_BIND=${BENCH_HTTP_BIND:-127.0.0.1:18082}
PARTITIONS=${BENCH_PARTITIONS:-3}
OPS_BIND=${BENCH_OPS_BIND:-127.0.0.1:19093}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
QUIET_PCT=${BENCH_QUIET_PCT:-20}
KEEP=${BENCH_KEEP:-0}
BUILD=${BENCH_BUILD:-1}
BENCH_DIR=${BENCH_DIR:-$ROOT/.stack/bench-consumer}

for v in BACKLOG MORE STOCK CEILING_ROWS CEILING_PER_STMT POLL_MS DRAIN_TIMEOUT PARTITIONS QUIET_WAIT QUIET_PCT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer, got '${!v}'"
done
((BACKLOG >= 1 && MORE >= 1 && POLL_MS >= 1 && PARTITIONS >= 1 && CEILING_PER_STMT >= 1)) \
    || die "BENCH_BACKLOG, BENCH_MORE, BENCH_POLL_MS, BENCH_PARTITIONS and BENCH_CEILING_PER_STMT must be at least 1"
((STOCK >= BACKLOG + MORE && STOCK >= CEILING_ROWS)) \
    || die "BENCH_STOCK ($STOCK) must be at least BENCH_BACKLOG + BENCH_MORE and BENCH_CEILING_ROWS"
((${#BATCH_SIZES[@]} >= 1)) || die "BENCH_BATCH_SIZES is empty"
for b in "${BATCH_SIZES[@]}"; do
    if ! [[ $b =~ ^[0-9]+$ ]] || ((b < 1)); then
        die "each of BENCH_BATCH_SIZES must be a positive integer, got '$b'"
    fi
done
[[ $POLL == stock || $POLL == count ]] || die "BENCH_POLL must be stock or count, got '$POLL'"
[[ $DATABASE =~ ^[A-Za-z0-9_]+$ && $DATABASE == *bench* ]] \
    || die "BENCH_DATABASE must match [A-Za-z0-9_]+ and contain 'bench' (it is dropped each run)"
[[ $HTTP_BIND =~ ^([^:]+):([0-9]+)$ ]] || die "BENCH_HTTP_BIND must be host:port, got '$HTTP_BIND'"
API_HOST=${BASH_REMATCH[1]}
API_PORT=${BASH_REMATCH[2]}
[[ $API_HOST == 0.0.0.0 ]] && API_HOST=127.0.0.1
BASE_URL=http://$API_HOST:$API_PORT
[[ $OPS_BIND =~ ^([^:]+):([0-9]+)$ ]] || die "BENCH_OPS_BIND must be host:port, got '$OPS_BIND'"
OPS_HOST=${BASH_REMATCH[1]}
OPS_PORT=${BASH_REMATCH[2]}
[[ $OPS_HOST == 0.0.0.0 ]] && OPS_HOST=127.0.0.1
OPS_URL=http://$OPS_HOST:$OPS_PORT

# Names unique to this run.
RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
TOPIC_BASE=coupon-issue-benchc-$RUN_ID
GROUP_BASE=coupon-issue-benchc-group-$RUN_ID
KEY_PREFIX=couponrush-benchc:$RUN_ID:
USER_TAG=c$$x$(date +%s) # every user id of this run starts with it
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

STACK_DIR=$BENCH_DIR/stack
LOG_DIR=$BENCH_DIR/logs
HELPER=$ROOT/scripts/load/bench-consumer.py

# ---------------------------------------------------------------------------------------------
# Clean-up: runs once on every exit (normal, failure, Ctrl-C)
# ---------------------------------------------------------------------------------------------
PIDS=()           # processes this script started (issuer-api, coupon-consumer, top)
TOPICS=()         # topics this run created
STACK_STARTED=0   # 1 once `stack.sh up` ran and not every service was up before
STACK_ENV_READY=0 # 1 once the COUPON__ environment is known
DB_CREATED=0
TANSU=""

stop_pid() { # stop_pid PID: stops one process of ours and forgets it
    local keep=("${PIDS[@]}")
    PIDS=("$1")
    stop_pids
    PIDS=("${keep[@]}")
    forget_pid "$1"
}

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
        delete_topics "${TOPICS[@]}"
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

# A python with confluent-kafka and PyMySQL: the system one (pip-installing what it lacks), or a
# virtualenv in $BENCH_DIR/venv when the system python refuses pip installs.
PY=""
ensure_python() {
    local py=python3 pylog=$BENCH_DIR/pip.log check='import confluent_kafka, pymysql'
    ensure_cmds python3:python3
    if [[ -x $BENCH_DIR/venv/bin/python ]] && "$BENCH_DIR/venv/bin/python" -c "$check" 2>/dev/null; then
        PY=$BENCH_DIR/venv/bin/python
        return 0
    fi
    if ! "$py" -c "$check" 2>/dev/null; then
        log "python: pip install confluent-kafka pymysql"
        if ! "$py" -m pip install -q --disable-pip-version-check confluent-kafka pymysql >>"$pylog" 2>&1; then
            log "python: pip into python3 failed; using a virtualenv in $BENCH_DIR/venv"
            python3 -m venv "$BENCH_DIR/venv" >>"$pylog" 2>&1 || {
                apt_install python3-venv python3-pip
                python3 -m venv "$BENCH_DIR/venv" >>"$pylog" 2>&1
            } || die "python: cannot create a virtualenv in $BENCH_DIR/venv (see $pylog)"
            py=$BENCH_DIR/venv/bin/python
            "$py" -m pip install -q --disable-pip-version-check confluent-kafka pymysql >>"$pylog" 2>&1 \
                || die "python: pip install confluent-kafka pymysql failed (see $pylog)"
        fi
    fi
    "$py" -c "$check" || die "python: confluent_kafka / pymysql still not importable (see $pylog)"
    PY=$py
}

# helper NAME ARGS...: runs the python helper, its JSON line into $LOG_DIR/NAME.json; its CPU
# ticks (user+sys of the child) into GEN_TICKS.
GEN_TICKS=0
helper() {
    local name=$1 rc=0
    shift
    (
        "$PY" "$HELPER" "$@" >"$LOG_DIR/$name.json" 2>"$LOG_DIR/$name.err" || rc=$?
        times >"$LOG_DIR/$name.times"
        exit "$rc"
    ) 8>&- || rc=$?
    GEN_TICKS=$(times_to_ticks "$LOG_DIR/$name.times")
    return "$rc"
}
jget() { jq -r "$2" "$LOG_DIR/$1.json"; } # jget NAME FILTER

CLK_TCK=$(getconf CLK_TCK)

# thread_ticks PID: "name ticks" per thread of PID, summed by thread name (tokio-runtime-w, rdk:broker1...)
thread_ticks() {
    local t stat rest name
    for t in /proc/"$1"/task/*; do
        stat=$(cat "$t/stat" 2>/dev/null) || continue
        name=${stat#*(}
        name=${name%%)*}
        rest=${stat##*) }
        # shellcheck disable=SC2086 # word splitting wanted
        set -- $rest
        printf '%s %d\n' "${name// /_}" $((${12} + ${13}))
    done | awk '{s[$1] += $2} END {for (n in s) print n, s[n]}'
}

# The processes whose CPU each phase records: name=pid (the consumer is added per round).
WATCH=()

# RES[phase:key] = value; CPU[phase] = "gen=% consumer=% ... other=% machine=%" (% of one core)
declare -A RES=()
declare -A CPU=()

# record_cpu PHASE BEFORE AFTER GEN_TICKS
record_cpu() {
    local phase=$1 gen=$4 i busy total line sum other
    local -a b a
    read -r -a b <<<"$2"
    read -r -a a <<<"$3"
    busy=$((a[0] - b[0]))
    total=$((a[1] - b[1]))
    ((total > 0)) || total=1
    pct() { awk -v t="$1" -v tot="$total" -v n="$NPROC" 'BEGIN { printf "%.0f", t * 100 * n / tot }'; }
    line="gen=$(pct "$gen")"
    sum=$gen
    for ((i = 0; i < ${#WATCH[@]}; i++)); do
        line+=" ${WATCH[i]%%=*}=$(pct "$((a[i + 2] - b[i + 2]))")"
        sum=$((sum + a[i + 2] - b[i + 2]))
    done
    other=$((busy - sum > 0 ? busy - sum : 0))
    line+=" other=$(pct "$other") machine=$(pct "$busy")"
    CPU[$phase]=$line
}

per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# ---------------------------------------------------------------------------------------------
# 0. One benchmark at a time; fresh log directory
# ---------------------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
exec 8>"$BENCH_DIR/.lock"
flock -n 8 || die "another consumer benchmark is running ($BENCH_DIR/.lock is held)"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR" "$STACK_DIR"
NPROC=$(nproc)
log "run $RUN_ID: batch sizes ${BATCH_SIZES[*]}, backlog $BACKLOG + $MORE, ceiling $CEILING_ROWS rows; logs in $LOG_DIR"

# ---------------------------------------------------------------------------------------------
# 1. Tools (idempotent)
# ---------------------------------------------------------------------------------------------
ensure_cmds curl:curl jq:jq flock:util-linux timeout:coreutils od:coreutils ss:iproute2 \
    redis-cli:redis-tools top:procps
ensure_python

# ---------------------------------------------------------------------------------------------
# 2. Stack: reuse what runs, start what is missing; the run's own database
# ---------------------------------------------------------------------------------------------
export STACK_STATE_DIR=$STACK_DIR STACK_MYSQL_DATABASE=$DATABASE STACK_PARTITIONS=$PARTITIONS
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

# stack_up TOPIC: (re)runs stack.sh up for a topic and its dead-letter topic; exports the env.
stack_up() {
    local env_lines
    TOPICS+=("$1" "$1.dlq")
    env_lines=$(STACK_TOPIC=$1 STACK_DLQ_TOPIC=$1.dlq "$ROOT/scripts/stack.sh" up 8>&- 2>>"$LOG_DIR/stack.log") \
        || {
            tail -n 20 "$LOG_DIR/stack.log" >&2
            die "scripts/stack.sh up failed (see $LOG_DIR/stack.log)"
        }
    eval "$env_lines"
    STACK_ENV_READY=1
}
stack_up "$TOPIC_BASE-b${BATCH_SIZES[0]}"
find_tansu || true
MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client"

export COUPON__REDIS__KEY_PREFIX=$KEY_PREFIX
export COUPON__HTTP__BIND=$HTTP_BIND
export COUPON__LOG__FORMAT=json
export RUST_LOG=warn NO_COLOR=1

log "mysql: dropping and recreating database $DATABASE"
mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`; CREATE DATABASE \`$DATABASE\` CHARACTER SET utf8mb4" -
DB_CREATED=1

# ---------------------------------------------------------------------------------------------
# 3. Build, migrate, create the coupons through issuer-api (MySQL + Redis), stop the API
# ---------------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
    ensure_cargo
    ensure_build_deps
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p issuer-api -p coupon-consumer -p compensation-batch 8>&-) >"$LOG_DIR/build.log" 2>&1 || {
        tail -n 30 "$LOG_DIR/build.log" >&2
        die "cargo build failed"
    }
else
    log "BENCH_BUILD=$BUILD: using the binaries in $(dirname "$(bin coupon-consumer)") as they are"
fi
for b in issuer-api coupon-consumer compensation-batch; do
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
deadline=$((SECONDS + 60))
until curl -sf --max-time 2 "$BASE_URL/health/ready" >/dev/null 2>&1; do
    alive_or_die "$API_PID" issuer-api
    ((SECONDS < deadline)) || die "issuer-api not ready within 60s"
    sleep 0.3
done

create_coupon() { # create_coupon NAME: prints the coupon id (stock BENCH_STOCK, open for a day)
    local body created starts ends
    starts=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
    ends=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
    body=$(jq -cn --arg name "bench-consumer $RUN_ID $1" --argjson total "$STOCK" --arg s "$starts" --arg e "$ends" \
        '{name: $name, discount_amount: 1000, total_quantity: $total,
          issue_starts_at: $s, issue_ends_at: $e, expiry_days: 30}')
    created=$(curl -sS --fail-with-body --max-time 10 -X POST "$BASE_URL/admin/coupons" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body") \
        || die "creating a coupon failed: $created"
    jq -er '.couponId' <<<"$created" || die "no couponId in: $created"
}
declare -A COUPON=()
for b in "${BATCH_SIZES[@]}"; do COUPON[$b]=$(create_coupon "batch $b"); done
if ((CEILING_ROWS > 0)); then
    COUPON[plain]=$(create_coupon "ceiling plain")
    COUPON[full]=$(create_coupon "ceiling full")
fi
for k in "${!COUPON[@]}"; do
    [[ $(redis_cmd EXISTS "${KEY_PREFIX}coupon:issue:{${COUPON[$k]}}:stock") == 1 ]] \
        || die "coupon ${COUPON[$k]} ($k) has no stock key in Redis"
done
log "coupons (stock $STOCK, loaded in Redis): $(for k in "${!COUPON[@]}"; do printf '%s=%s ' "$k" "${COUPON[$k]}"; done)"
stop_pid "$API_PID" # nothing of ours but the consumer and the helper runs while measuring

WATCH=()
for w in "mysql=$(pid_on_port "$COUPON__MYSQL__PORT")" "broker=$(pid_on_port "${COUPON__KAFKA__BOOTSTRAP_SERVERS##*:}")" \
    "redis=$(pid_on_port "${COUPON__REDIS__URL##*:}")"; do
    if [[ ${w#*=} =~ ^[0-9]+$ ]]; then
        WATCH+=("$w")
    else
        log "no pid found for ${w%%=*}: its CPU is counted in 'other'"
    fi
done
BASE_WATCH=("${WATCH[@]}")

BACKGROUND=$(background_pct)
deadline=$((SECONDS + QUIET_WAIT))
while ((BACKGROUND > QUIET_PCT && SECONDS < deadline)); do
    log "machine busy: other processes use ${BACKGROUND}% of one core; waiting (BENCH_QUIET_WAIT=$QUIET_WAIT)"
    BACKGROUND=$(background_pct)
done
((BACKGROUND <= QUIET_PCT)) \
    || log "warning: other processes use ${BACKGROUND}% of one core before the start; results will be low (see 'other')"

# ---------------------------------------------------------------------------------------------
# 4. Per batch size: A (backlog, fresh consumer), B (full backlog, joined consumer)
# ---------------------------------------------------------------------------------------------
POLL_ARGS=(--poll-ms "$POLL_MS" --timeout "$DRAIN_TIMEOUT")
[[ $POLL == count ]] && POLL_ARGS+=(--count)

# produce PHASE TOPIC COUPON FIRST COUNT [helper args]: preloads COUNT messages, users
# ${USER_TAG}u<n>.
produce() {
    local phase=$1 topic=$2 coupon=$3 first=$4 count=$5
    shift 5
    helper "$phase-produce" produce --bootstrap "$COUPON__KAFKA__BOOTSTRAP_SERVERS" --topic "$topic" \
        --coupon "$coupon" --prefix "${USER_TAG}u" --first "$first" --count "$count" "$@" \
        || die "$phase: preloading failed: $(cat "$LOG_DIR/$phase-produce.json" "$LOG_DIR/$phase-produce.err")"
    RES[$phase:produce_s]=$(jget "$phase-produce" .seconds)
    RES[$phase:produce_rate]=$(jget "$phase-produce" .rate)
    log "$phase: preloaded $count messages in ${RES[$phase:produce_s]} s (${RES[$phase:produce_rate]}/s)"
}

# read_back PHASE TOPIC EXPECTED: proves the topic holds EXPECTED messages with distinct keys.
read_back() {
    local phase=$1 topic=$2 want=$3 n k gaps
    helper "$phase-count" count --bootstrap "$COUPON__KAFKA__BOOTSTRAP_SERVERS" --topic "$topic" --keys \
        || die "$phase: reading $topic back failed: $(cat "$LOG_DIR/$phase-count.json" "$LOG_DIR/$phase-count.err")"
    n=$(jget "$phase-count" .messages)
    k=$(jget "$phase-count" .distinct_keys)
    gaps=$(jget "$phase-count" .offset_gaps)
    RES[$phase:topic_msgs]=$n
    RES[$phase:topic_keys]=$k
    RES[$phase:list_offsets]=$(jget "$phase-count" .list_offsets_high_sum)
    [[ $n == "$want" && $k == "$want" && $gaps == 0 ]] \
        || die "$phase: topic $topic holds $n messages ($k distinct keys, $gaps offset gaps), expected $want"
    log "$phase: topic $topic holds $n messages, $k distinct users (ListOffsets says ${RES[$phase:list_offsets]})"
}

# drain PHASE COUPON TARGET [wait args...]: polls MySQL until TARGET rows; records the times.
drain() {
    local phase=$1 coupon=$2 target=$3 before after
    shift 3
    before=$(cpu_snapshot)
    helper "$phase-wait" wait --coupon "$coupon" --target "$target" "${POLL_ARGS[@]}" "$@" \
        || die "$phase: MySQL did not reach $target rows: $(jq -c 'del(.timeline)' "$LOG_DIR/$phase-wait.json" 2>/dev/null || cat "$LOG_DIR/$phase-wait.err")"
    after=$(cpu_snapshot)
    record_cpu "$phase" "$before" "$after" "$GEN_TICKS"
    local k new
    for k in total_s first_s after_first_s rate_total rate_after_first count_star base; do
        RES[$phase:$k]=$(jget "$phase-wait" ".$k")
    done
    new=$((target - $(jget "$phase-wait" .base)))
    log "$phase: $new rows in ${RES[$phase:total_s]} s from the start (${RES[$phase:rate_total]}/s), ${RES[$phase:after_first_s]} s from the first row (${RES[$phase:rate_after_first]}/s); CPU ${CPU[$phase]}"
}

# batches PHASE COUPON FROM_ID TO_ID: the consumer's transactions of the phase, read from
# coupon_user (every row of one batch carries the batch's issued_at): count, mean rows, mean
# interval between two transactions' starts.
batches() {
    local phase=$1 n rows ms
    read -r n rows ms < <(mysql_q "
        SELECT COUNT(*), ROUND(AVG(n)), ROUND(TIMESTAMPDIFF(MICROSECOND, MIN(t), MAX(t)) / 1000 / GREATEST(COUNT(*) - 1, 1), 1)
        FROM (SELECT issued_at t, COUNT(*) n FROM coupon_user
              WHERE coupon_id = $2 AND id BETWEEN $3 AND $4 GROUP BY issued_at) b")
    RES[$phase:txns]=$n
    RES[$phase:txn_rows]=$rows
    RES[$phase:txn_ms]=$ms
}

# scrape NAME: the consumer's /metrics into $LOG_DIR/NAME.metrics; prints "batches persist_s"
# (count and sum of coupon_consumer_transaction_duration_seconds: decode + MySQL + Redis of
# each batch, measured by the consumer), or "- -" when the ops port does not answer.
scrape() {
    local f=$LOG_DIR/$1.metrics
    if curl -sf --max-time 3 "$OPS_URL/metrics" >"$f" 2>/dev/null; then
        awk '$1 == "coupon_consumer_transaction_duration_seconds_count" { c = $2 }
             $1 == "coupon_consumer_transaction_duration_seconds_sum" { s = $2 }
             END { printf "%d %.6f\n", c, s }' "$f"
    else
        echo "- -"
    fi
}

# persist_share PHASE BEFORE AFTER: batches, mean ms in persist() per batch and its share of the
# phase's wall time, from two scrapes.
persist_share() {
    local phase=$1 c0 s0 c1 s1
    read -r c0 s0 <<<"$2"
    read -r c1 s1 <<<"$3"
    if [[ $c0 == - || $c1 == - ]]; then
        RES[$phase:persist_ms]="-"
        RES[$phase:persist_pct]="-"
        return 0
    fi
    RES[$phase:persist_ms]=$(awk -v c="$((c1 - c0))" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.1f", (c > 0 ? (s1 - s0) * 1000 / c : 0) }')
    RES[$phase:persist_pct]=$(awk -v s0="$s0" -v s1="$s1" -v t="${RES[$phase:total_s]}" 'BEGIN { printf "%.0f", (t > 0 ? (s1 - s0) * 100 / t : 0) }')
}

port_open "$OPS_HOST" "$OPS_PORT" && die "something already listens on $OPS_BIND; set BENCH_OPS_BIND"
for b in "${BATCH_SIZES[@]}"; do
    topic=$TOPIC_BASE-b$b
    [[ $b == "${BATCH_SIZES[0]}" ]] || stack_up "$topic"
    coupon=${COUPON[$b]}
    pa=b$b-A
    pb=b$b-B
    log "=== batch size $b: topic $topic, coupon $coupon"

    # A. the backlog, then a fresh consumer
    produce "$pa" "$topic" "$coupon" 0 "$BACKLOG"
    read_back "$pa" "$topic" "$BACKLOG"
    t0=$(now_ms)
    COUPON__KAFKA__TOPIC=$topic COUPON__KAFKA__DLQ_TOPIC=$topic.dlq \
        COUPON__KAFKA__CONSUMER_GROUP=$GROUP_BASE-b$b COUPON__CONSUMER__BATCH_SIZE=$b \
        COUPON__CONSUMER__OPS_BIND=$OPS_BIND \
        "$(bin coupon-consumer)" </dev/null >"$LOG_DIR/consumer-b$b.log" 2>&1 8>&- &
    CONSUMER_PID=$!
    PIDS+=("$CONSUMER_PID")
    WATCH=("consumer=$CONSUMER_PID" "${BASE_WATCH[@]}")
    log "$pa: started coupon-consumer (pid $CONSUMER_PID, batch size $b)"
    drain "$pa" "$coupon" "$BACKLOG" --t0-ms "$t0"
    alive_or_die "$CONSUMER_PID" "consumer-b$b"
    sleep 0.2 # the last batch's metrics are recorded after its commit
    m_a=$(scrape "$pa")
    persist_share "$pa" "0 0" "$m_a"
    max_a=$(mysql_q "SELECT COALESCE(MAX(id), 0) FROM coupon_user WHERE coupon_id = $coupon")
    batches "$pa" "$coupon" 0 "$max_a"

    # B. freeze the joined consumer, preload, thaw: a full backlog, no join in the measurement
    # The helper sends SIGSTOP itself once its payloads are built, right before producing.
    produce "$pb" "$topic" "$coupon" "$BACKLOG" "$MORE" --stop-pid "$CONSUMER_PID"
    stop_ms=$(now_ms)
    ticks_before=$(thread_ticks "$CONSUMER_PID")
    (sleep 2 && top -b -n 1 -w 200 >"$LOG_DIR/top-$pb.txt" 2>&1 && top -H -b -n 1 -w 200 -p "$CONSUMER_PID" \
        >"$LOG_DIR/top-threads-$pb.txt" 2>&1) 8>&- &
    TOP_PID=$!
    drain "$pb" "$coupon" $((BACKLOG + MORE)) --signal-pid "$CONSUMER_PID" --signal CONT
    # frozen: production + flush, then until the poller sent SIGCONT (its start-up)
    RES[$pb:frozen_s]=$(awk -v p="${RES[$pb:produce_s]}" -v ms="$(($(now_ms) - stop_ms))" -v t="${RES[$pb:total_s]}" \
        'BEGIN { printf "%.2f", p + ms / 1000 - t }')
    wait "$TOP_PID" 2>/dev/null || true
    ticks_after=$(thread_ticks "$CONSUMER_PID")
    RES[$pb:threads]=$(awk -v hz="$CLK_TCK" -v s="${RES[$pb:total_s]}" '
        NR == FNR { b[$1] = $2; next }
        { d = $2 - b[$1]; if (d > 0) printf "%s=%.0f%% ", $1, d * 100 / hz / s }' \
        <(echo "$ticks_before") <(echo "$ticks_after"))
    alive_or_die "$CONSUMER_PID" "consumer-b$b"
    sleep 0.2
    persist_share "$pb" "$m_a" "$(scrape "$pb")"
    batches "$pb" "$coupon" $((max_a + 1)) 999999999999
    if grep -q 'SESSTMOUT\|rejoin' "$LOG_DIR/consumer-b$b.log"; then
        RES[$pb:rejoined]=1
        log "warning: $pb: the consumer left and rejoined its group (see $LOG_DIR/consumer-b$b.log); B includes a rejoin"
    else
        RES[$pb:rejoined]=0
    fi
    stop_pid "$CONSUMER_PID"

    # Checks: every message issued once, stock, Redis, nothing dead-lettered, topic complete
    read_back "$pb" "$topic" $((BACKLOG + MORE))
    read -r rows distinct < <(mysql_q "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM coupon_user WHERE coupon_id = $coupon")
    read -r avail total < <(mysql_q "SELECT available_quantity, total_quantity FROM coupon WHERE id = $coupon")
    helper "b$b-dlq" count --bootstrap "$COUPON__KAFKA__BOOTSTRAP_SERVERS" --topic "$topic.dlq" \
        || die "reading $topic.dlq failed"
    RES[b$b:rows]=$rows
    RES[b$b:distinct]=$distinct
    RES[b$b:avail]=$avail
    RES[b$b:total]=$total
    RES[b$b:dlq]=$(jget "b$b-dlq" .messages)
    RES[b$b:r_issued]=$(redis_cmd GET "${KEY_PREFIX}coupon:issue:{$coupon}:issued")
    RES[b$b:r_users]=$(redis_cmd HLEN "${KEY_PREFIX}coupon:issue:{$coupon}:users")
    RES[b$b:errors]=$(grep -c '"level":"ERROR"' "$LOG_DIR/consumer-b$b.log" || true)
    want=$((BACKLOG + MORE))
    problems=()
    ((rows == want)) || problems+=("rows $rows != $want")
    ((distinct == rows)) || problems+=("distinct users $distinct != rows $rows")
    ((avail == total - rows)) || problems+=("available_quantity $avail != total $total - rows $rows")
    [[ ${RES[b$b:dlq]} == 0 ]] || problems+=("${RES[b$b:dlq]} message(s) in $topic.dlq")
    [[ ${RES[b$b:r_issued]} == "$rows" ]] || problems+=("redis issued counter ${RES[b$b:r_issued]} != rows $rows")
    [[ ${RES[b$b:r_users]} == "$rows" ]] || problems+=("redis users hash ${RES[b$b:r_users]} != rows $rows")
    if ((${#problems[@]} == 0)); then
        RES[b$b:check]=OK
    else
        RES[b$b:check]="FAILED: ${problems[*]}"
    fi
    log "batch size $b: checks ${RES[b$b:check]}"
done

# ---------------------------------------------------------------------------------------------
# 5. The raw MySQL ceiling: same rows, same transaction shape, no Kafka, no Redis, no Rust
# ---------------------------------------------------------------------------------------------
WATCH=("${BASE_WATCH[@]}")
if ((CEILING_ROWS > 0)); then
    # "full" is the consumer's SQL for a first delivery: bench-consumer.py's "log" mode.
    declare -A CEILING_SQL=([plain]=plain [full]=log)
    for mode in plain full; do
        phase=ceiling-$mode
        log "$phase: $CEILING_ROWS rows, $CEILING_PER_STMT per INSERT, coupon ${COUPON[$mode]}"
        before=$(cpu_snapshot)
        helper "$phase" ceiling --coupon "${COUPON[$mode]}" --rows "$CEILING_ROWS" --per-stmt "$CEILING_PER_STMT" \
            --prefix "${USER_TAG}$mode" --mode "${CEILING_SQL[$mode]}" \
            || die "$phase failed: $(cat "$LOG_DIR/$phase.json" "$LOG_DIR/$phase.err")"
        after=$(cpu_snapshot)
        record_cpu "$phase" "$before" "$after" "$GEN_TICKS"
        RES[$phase:rate]=$(jget "$phase" .rate)
        RES[$phase:s]=$(jget "$phase" .seconds)
        RES[$phase:txn_ms]=$(awk -v s="${RES[$phase:s]}" -v n="$(jget "$phase" .transactions)" 'BEGIN { printf "%.1f", s * 1000 / n }')
        log "$phase: ${RES[$phase:rate]} rows/s (${RES[$phase:s]} s); CPU ${CPU[$phase]}"
    done
fi

# ---------------------------------------------------------------------------------------------
# 6. Summary
# ---------------------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock migrations 2>/dev/null | wc -l)
rustc_v=$(rustc --version 2>/dev/null | awk '{print $2}')
redis_v=$(redis_cmd INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" {print $2}')
mysql_v=$(mysql_q 'SELECT VERSION()' - 2>/dev/null || echo "?")
mysql_flush=$(mysql_q 'SELECT @@innodb_flush_log_at_trx_commit, @@innodb_buffer_pool_size DIV 1048576' - 2>/dev/null | awk '{printf "flush_log_at_trx_commit=%s, buffer pool %s MiB", $1, $2}')
broker_v="?"
[[ -z $TANSU ]] || broker_v=$("$TANSU" --version 2>/dev/null | head -n 1 || echo "?")
ck_v=$("$PY" -c 'import confluent_kafka as c; print(c.version()[0], "/ librdkafka", c.libversion()[0])' 2>/dev/null || echo "?")
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)

B0=${BATCH_SIZES[0]}
BEST_B=$B0
best_rate=${RES[b$B0-B:rate_total]}
for b in "${BATCH_SIZES[@]}"; do
    r=${RES[b$b-B:rate_total]}
    if ((r > best_rate)); then
        best_rate=$r
        BEST_B=$b
    fi
done
verdict() { if (($1)); then echo met; else echo "NOT met"; fi; }
T_RATE=$((best_rate >= 20000))
T_BACKLOG=$(awk -v s="${RES[b$BEST_B-A:total_s]}" 'BEGIN { print (s < 3) ? 1 : 0 }')
T_BACKLOG_RUN=$(awk -v s="${RES[b$BEST_B-A:after_first_s]}" 'BEGIN { print (s < 3) ? 1 : 0 }')
if ((CEILING_ROWS > 0)); then
    RATIO=$(awk -v a="$best_rate" -v c="${RES[ceiling-plain:rate]}" 'BEGIN { printf "%.2f", (c > 0 ? a / c : 0) }')
    RATIO_FULL=$(awk -v a="$best_rate" -v c="${RES[ceiling-full:rate]}" 'BEGIN { printf "%.2f", (c > 0 ? a / c : 0) }')
    T_RATIO=$(awk -v r="$RATIO" 'BEGIN { print (r >= 0.4) ? 1 : 0 }')
fi

cat <<EOF

===================================== couponrush coupon-consumer benchmark =====================================
 date       $(date -u +%Y-%m-%dT%H:%M:%SZ)   run $RUN_ID
 machine    $NPROC cores ($cpu_model), ${mem_gib} GiB, Linux $(uname -r)
 code       commit $commit$( ((dirty > 0)) && printf ' + %s uncommitted change(s) in crates/ Cargo.* migrations/' "$dirty" || printf ' (crates/ Cargo.* migrations/ as committed)'), rustc $rustc_v, release build$([[ $BUILD == 1 ]] || printf ' (not rebuilt: %s)' "$(bin coupon-consumer)")
 versions   redis $redis_v, MariaDB $mysql_v ($mysql_flush), broker $broker_v, confluent-kafka $ck_v
 consumer   ONE process, RUST_LOG=warn, log json, topic of $PARTITIONS partitions, batch_wait_ms ${COUPON__CONSUMER__BATCH_WAIT_MS:-20}, mysql pool ${COUPON__MYSQL__POOL_SIZE:-16}, session timeout ${COUPON__KAFKA__SESSION_TIMEOUT_MS:-6000} ms
 background other processes used ${BACKGROUND}% of one core just before the start (nothing of ours running)
 polling    every ${POLL_MS} ms: $([[ $POLL == count ]] && echo 'COUNT(*) of coupon_user' || echo 'total - available_quantity (PK read; COUNT(*) checked at the end)')

 A = ${BACKLOG} preloaded, consumer process started at t=0 (includes start-up probes and the group join)
 B = ${MORE} preloaded while the joined consumer was frozen (SIGSTOP), t=0 at SIGCONT
 txns, rows/txn, ms/txn: the consumer's transactions, from coupon_user.issued_at (one value per batch);
 persist ms: mean time per batch in persist() (decode + MySQL transaction + Redis confirm), from the
 consumer's own coupon_consumer_transaction_duration_seconds; persist %: its share of the phase's wall time

 batch  phase  msgs    preload s  total s  first row s  after first s  issued/s (total)  issued/s (after first)  txns  rows/txn  ms/txn  persist ms  persist %
EOF
for b in "${BATCH_SIZES[@]}"; do
    for ph in A B; do
        p=b$b-$ph
        n=$BACKLOG
        [[ $ph == B ]] && n=$MORE
        printf ' %5s  %-5s  %-6s  %9s  %7s  %11s  %13s  %16s  %22s  %4s  %8s  %6s  %10s  %9s\n' "$b" "$ph" "$n" \
            "${RES[$p:produce_s]}" "${RES[$p:total_s]}" "${RES[$p:first_s]}" "${RES[$p:after_first_s]}" \
            "${RES[$p:rate_total]}" "${RES[$p:rate_after_first]}" "${RES[$p:txns]}" "${RES[$p:txn_rows]}" "${RES[$p:txn_ms]}" \
            "${RES[$p:persist_ms]}" "${RES[$p:persist_pct]}"
    done
done
if ((CEILING_ROWS > 0)); then
    printf '\n ceiling (one connection, %s rows per INSERT, one transaction each)         rows/s    s  ms/txn\n' "$CEILING_PER_STMT"
    printf ' %-70s %8s %5s %6s\n' "plain: lock coupon, INSERT IGNORE coupon_user, UPDATE stock, COMMIT" \
        "${RES[ceiling-plain:rate]}" "${RES[ceiling-plain:s]}" "${RES[ceiling-plain:txn_ms]}"
    printf ' %-70s %8s %5s %6s\n' "full: + participation-log INSERT (the consumer's SQL, first delivery)" \
        "${RES[ceiling-full:rate]}" "${RES[ceiling-full:s]}" "${RES[ceiling-full:txn_ms]}"
fi
printf '\n CPU: %% of one core over the phase (machine = %s %%); gen = the python helper (poller / ceiling client)\n' "$((NPROC * 100))"
for b in "${BATCH_SIZES[@]}"; do
    for ph in A B; do printf ' %-16s %s\n' "batch $b $ph" "${CPU[b$b-$ph]}"; done
    printf ' %-16s %s\n' "  threads in B" "${RES[b$b-B:threads]}"
done
if ((CEILING_ROWS > 0)); then
    for mode in plain full; do printf ' %-16s %s\n' "ceiling $mode" "${CPU[ceiling-$mode]}"; done
fi
printf '\n checks\n'
for b in "${BATCH_SIZES[@]}"; do
    printf ' batch %-5s rows %s, distinct users %s, available %s of %s, redis issued %s / users %s, DLQ %s, consumer ERROR lines %s, rejoin in B: %s -> %s\n' \
        "$b" "${RES[b$b:rows]}" "${RES[b$b:distinct]}" "${RES[b$b:avail]}" "${RES[b$b:total]}" \
        "${RES[b$b:r_issued]}" "${RES[b$b:r_users]}" "${RES[b$b:dlq]}" "${RES[b$b:errors]}" \
        "$([[ ${RES[b$b-B:rejoined]} == 1 ]] && echo yes || echo no)" "${RES[b$b:check]}"
    printf '             topic read back: %s messages (ListOffsets high watermarks claimed %s), frozen %s s in B\n' \
        "${RES[b$b-B:topic_msgs]}" "${RES[b$b-B:list_offsets]}" "${RES[b$b-B:frozen_s]}"
done
cat <<EOF

 best       batch size $BEST_B: B drained at ${best_rate} issuances/s; A's ${BACKLOG} in ${RES[b$BEST_B-A:total_s]} s from the process start, ${RES[b$BEST_B-A:after_first_s]} s from the first row
EOF
if ((CEILING_ROWS > 0)); then
    printf ' ratio      consumer / ceiling = %s / %s = %s (against the consumer'"'"'s whole SQL: %s / %s = %s)\n' \
        "$best_rate" "${RES[ceiling-plain:rate]}" "$RATIO" "$best_rate" "${RES[ceiling-full:rate]}" "$RATIO_FULL"
fi
cat <<EOF
 targets    one consumer >= 20000 issuances/s ................... $(verdict "$T_RATE")
            ${BACKLOG} backlog drained in < 3 s (from process start) . $(verdict "$T_BACKLOG") (from the first row: $(verdict "$T_BACKLOG_RUN"))
EOF
((CEILING_ROWS == 0)) || printf '            throughput >= 0.4 x raw insert ceiling .............. %s\n' "$(verdict "$T_RATIO")"
printf '================================================================================================================\n'
log "logs in $LOG_DIR"
ok=1
for b in "${BATCH_SIZES[@]}"; do [[ ${RES[b$b:check]} == OK ]] || ok=0; done
((ok)) || die "correctness checks failed (see above)"
