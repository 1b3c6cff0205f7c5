#!/usr/bin/env bash
# couponrush benchmark of compensation-batch (not a test of the code paths: it measures, with a
# few correctness checks on the data it leaves).
#
#   scripts/bench-batch.sh                               the full run (under a minute, plus the build)
#   BENCH_PARTICIPANTS=10000 BENCH_HOLDERS=1000 BENCH_RECONCILE_PARTICIPANTS=20000 scripts/bench-batch.sh
#   BENCH_SEED_ONLY=1 scripts/bench-batch.sh             seed MySQL and Redis, check, run nothing
#
# On the real stack (scripts/stack.sh up: MariaDB, Redis and the broker, started if missing and
# LEFT RUNNING; `scripts/stack.sh down` stops what stack.sh started), with its own database
# (BENCH_DATABASE, dropped and recreated, then `compensation-batch migrate`) and its own Redis
# key prefix (BENCH_KEY_PREFIX; keys under it are deleted with SCAN + UNLINK before and after):
#   1. compensate, the incident's numbers: a source coupon whose event had BENCH_PARTICIPANTS
#      (40,000) distinct participants u000001.. in a window, one attempt each; the first
#      BENCH_HOLDERS (4,500) hold its coupon (outcome ACCEPTED, a coupon_user row), the others
#      were refused (SOLD_OUT): 35,500 to compensate. Seeded with set-based SQL (a digits cross
#      join, so MySQL 8 works as well as MariaDB). Then, each timed (wall clock of the process,
#      start-up checks included):
#        compensate --source-coupon S --from F --until U --name Apology --discount 3000
#                   --expiry-days 30 --batch-size BENCH_BATCH_SIZE --output json
#      first with --dry-run (must write nothing), then for real, then again (must grant nothing
#      more). Checks, from MySQL: one compensation coupon, holding exactly the eligible users
#      (none of the holders, every refused user), its total_quantity equal to them, unchanged by
#      the re-run.
#   2. reconcile: a closed coupon with BENCH_RECONCILE_PARTICIPANTS (100,000) coupon_user rows
#      (available_quantity 0) and Redis loaded as issuer-api and coupon-consumer leave it:
#      <prefix>coupon:issue:{ID}:meta (total, starts_ms, ends_ms, expiry_days), :stock = 0,
#      :users (user id -> I|<request id>|<issued_at epoch ms>, the request ids read back from
#      coupon_user; loaded with `redis-cli --pipe`, BENCH_HSET_FIELDS fields per HSET) and
#      :issued = the rows. Checked with HLEN and HGETs, then timed:
#        reconcile --coupon ID --output json
#      which must exit 0 (CONSISTENT).
# Each command's JSON is printed as it is; pass/fail comes only from exit codes and the MySQL and
# Redis state, never from the JSON's fields. Prints a summary table against the targets
# (compensate 35,500 users in < 3 s, reconcile 100,000 participants in < 5 s) with the versions
# and the commit; writes nothing else besides logs, and appends nothing to docs/benchmarks.md.
# Exits non-zero if a command failed or a check did not hold (a missed target is only reported).
#
# Settings (environment, all optional):
#   BENCH_PARTICIPANTS=40000            distinct participants of the source coupon's event
#   BENCH_HOLDERS=4500                  of them, holders of the source coupon (not eligible)
#   BENCH_RECONCILE_PARTICIPANTS=100000 coupon_user rows (and Redis participants) to reconcile
#   BENCH_BATCH_SIZE=5000               compensate --batch-size
#   BENCH_HSET_FIELDS=1000              fields per HSET when loading the participants hash
#   BENCH_DATABASE=couponrush_bench_batch   dropped and recreated each run (must contain "bench")
#   BENCH_KEY_PREFIX=couponrush-bench-batch:  Redis key prefix (must contain "bench"; [A-Za-z0-9:._-])
#   BENCH_SEED_ONLY=0                   1: seed and check MySQL and Redis, run neither compensate
#                                       nor reconcile (needs only `migrate` in the binary)
#   BENCH_KEEP=0                        1: keep the database and the Redis keys after the run
#   BENCH_DIR=<repo>/.stack/bench-batch logs (logs/ is replaced each run)
#   BENCH_BUILD=1                       0: do not run cargo build, use the binary already in the
#                                       target directory (e.g. a build of another commit)
#   CARGO_TARGET_DIR                    respected when set
#   COUPON__*                           passed to compensation-batch (e.g. COUPON__MYSQL__POOL_SIZE);
#                                       the stack's addresses, database, key prefix and logging
#                                       are set here
#   STACK_*                             passed to scripts/stack.sh (hosts, ports, credentials...)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench-batch
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
PARTICIPANTS=${BENCH_PARTICIPANTS:-40000}
HOLDERS=${BENCH_HOLDERS:-4500}
RECONCILE_PARTICIPANTS=${BENCH_RECONCILE_PARTICIPANTS:-100000}
BATCH_SIZE=${BENCH_BATCH_SIZE:-5000}
HSET_FIELDS=${BENCH_HSET_FIELDS:-1000}
DATABASE=${BENCH_DATABASE:-couponrush_bench_batch}
KEY_PREFIX=${BENCH_KEY_PREFIX:-couponrush-bench-batch:}
SEED_ONLY=${BENCH_SEED_ONLY:-0}
KEEP=${BENCH_KEEP:-0}
BUILD=${BENCH_BUILD:-1}
BENCH_DIR=${BENCH_DIR:-$ROOT/.stack/bench-batch}

for v in PARTICIPANTS HOLDERS RECONCILE_PARTICIPANTS BATCH_SIZE HSET_FIELDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_$v must be a non-negative integer, got '${!v}'"
done
((PARTICIPANTS >= 1 && RECONCILE_PARTICIPANTS >= 1 && BATCH_SIZE >= 1 && HSET_FIELDS >= 1)) \
    || die "BENCH_PARTICIPANTS, BENCH_RECONCILE_PARTICIPANTS, BENCH_BATCH_SIZE and BENCH_HSET_FIELDS must be at least 1"
((HOLDERS < PARTICIPANTS)) || die "BENCH_HOLDERS ($HOLDERS) must be below BENCH_PARTICIPANTS ($PARTICIPANTS)"
[[ $DATABASE =~ ^[A-Za-z0-9_]+$ && $DATABASE == *bench* ]] \
    || die "BENCH_DATABASE must match [A-Za-z0-9_]+ and contain 'bench' (it is dropped each run)"
# Every key under the prefix is deleted: never an empty or shared one. No glob characters (the
# SCAN pattern) and no braces (the config refuses them: they are the keys' hash tags).
[[ $KEY_PREFIX =~ ^[A-Za-z0-9:._-]+$ && $KEY_PREFIX == *bench* ]] \
    || die "BENCH_KEY_PREFIX must match [A-Za-z0-9:._-]+ and contain 'bench' (its keys are deleted)"
[[ $SEED_ONLY == 0 || $SEED_ONLY == 1 ]] || die "BENCH_SEED_ONLY must be 0 or 1"

ELIGIBLE=$((PARTICIPANTS - HOLDERS))
# User ids u000001...: zero-padded, at least 6 digits.
largest=$((PARTICIPANTS > RECONCILE_PARTICIPANTS ? PARTICIPANTS : RECONCILE_PARTICIPANTS))
UID_WIDTH=${#largest}
((UID_WIDTH >= 6)) || UID_WIDTH=6
COMP_NAME=Apology
COMP_DISCOUNT=3000
COMP_EXPIRY_DAYS=30

RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
LOG_DIR=$BENCH_DIR/logs

# ---------------------------------------------------------------------------------------------
# Clean-up: runs once on every exit (normal, failure, Ctrl-C). The stack is left running.
# ---------------------------------------------------------------------------------------------
STACK_ENV_READY=0 # 1 once the COUPON__ environment is known
DB_CREATED=0

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if ((STACK_ENV_READY)) && [[ $KEEP != 1 ]]; then
        delete_redis_keys "$KEY_PREFIX"
        if ((DB_CREATED)); then
            mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`" - && log "mysql: dropped database $DATABASE"
        fi
    elif ((STACK_ENV_READY)); then
        log "BENCH_KEEP=1: kept database $DATABASE and the Redis keys under $KEY_PREFIX"
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

# seq_table N: a derived table `seq` with one column n = 1..N (a cross join of digits: plain SQL
# that MariaDB and MySQL both run, no recursion limit; as fast as MariaDB's seq_1_to_N here).
seq_table() {
    local n=$1 top=$(($1 - 1)) width i expr="" joins=""
    local digits="(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
        UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
    width=${#top}
    for ((i = 0; i < width; i++)); do
        expr+=" + $((10 ** i)) * d$i.d"
        joins+="${joins:+ CROSS JOIN }$digits d$i"
    done
    printf '(SELECT n FROM (SELECT 1%s AS n FROM %s) digits WHERE n <= %d) seq' "$expr" "$joins" "$n"
}

user_id_sql() { printf "CONCAT('u', LPAD(seq.n, %d, '0'))" "$UID_WIDTH"; }

utc_sql() { date -u -d "@$1" '+%Y-%m-%d %H:%M:%S'; }   # epoch seconds -> DATETIME literal
utc_rfc3339() { date -u -d "@$1" '+%Y-%m-%dT%H:%M:%SZ'; } # epoch seconds -> RFC 3339

# seed_coupon LABEL TOTAL STARTS ENDS: inserts a sold-out coupon "bench-batch LABEL <run>" of TOTAL
# units issued from STARTS to ENDS (SQL expressions); prints its id.
seed_coupon() {
    local id
    id=$(mysql_q "
    INSERT INTO coupon (name, discount_amount, total_quantity, available_quantity,
                        issue_starts_at, issue_ends_at, expiry_days)
    VALUES ('bench-batch $1 $RUN_ID', 1000, $2, 0, $3, $4, 30);
    SELECT LAST_INSERT_ID();") || return
    [[ $id =~ ^[0-9]+$ ]] || die "creating the $1 coupon returned '$id'"
    printf '%s\n' "$id"
}

seconds() { awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }'; }
per_sec() { # per_sec N MS RC: N per second, "-" for a failed run
    awk -v n="$1" -v ms="$2" -v rc="$3" 'BEGIN { if (ms > 0 && rc == 0) printf "%.0f", n * 1000 / ms; else print "-" }'
}

# timed NAME CMD...: runs CMD, stdout to $LOG_DIR/NAME.out, stderr to $LOG_DIR/NAME.log; sets
# T_MS (wall clock) and T_RC (exit code) without stopping the script on failure.
T_MS=0
T_RC=0
timed() {
    local name=$1 t0
    shift
    T_RC=0
    t0=$(now_ms)
    "$@" </dev/null >"$LOG_DIR/$name.out" 2>"$LOG_DIR/$name.log" 8>&- || T_RC=$?
    T_MS=$(($(now_ms) - t0))
}

# batch NAME ARGS...: one timed compensation-batch run; prints its stdout (the JSON) as it is.
batch() {
    local name=$1
    shift
    log "$name: compensation-batch $*"
    timed "$name" "$(bin compensation-batch)" "$@"
    log "$name: exit $T_RC after $(seconds "$T_MS") s (log: $LOG_DIR/$name.log)"
    printf -- '--- %s: stdout of compensation-batch %s (exit %s, %s s)\n' "$name" "$*" "$T_RC" "$(seconds "$T_MS")"
    if [[ -s $LOG_DIR/$name.out ]]; then
        cat "$LOG_DIR/$name.out"
        [[ $(tail -c 1 "$LOG_DIR/$name.out") == "" ]] || echo
    else
        echo "(nothing on stdout)"
    fi
    if ((T_RC != 0)); then
        log "$name: last lines of its log:"
        tail -n 15 "$LOG_DIR/$name.log" >&2 || true
    fi
}

# own_ms NAME: the run's own elapsed_ms if its stdout is JSON that has one, else "-". Display only.
own_ms() {
    local v=""
    if command -v jq >/dev/null 2>&1; then
        v=$(jq -r 'if type == "object" and (.elapsed_ms | type) == "number" then .elapsed_ms else empty end' \
            "$LOG_DIR/$1.out" 2>/dev/null | head -n 1) || v=""
    fi
    printf '%s\n' "${v:--}"
}

PROBLEMS=()
check() { # check DESCRIPTION ACTUAL EXPECTED
    if [[ $2 == "$3" ]]; then
        log "check: $1 = $2: OK"
    else
        log "check FAILED: $1 = $2, expected $3"
        PROBLEMS+=("$1 = $2, expected $3")
    fi
}

# ---------------------------------------------------------------------------------------------
# 0. One benchmark at a time; fresh log directory
# ---------------------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR"
exec 8>"$BENCH_DIR/.lock"
flock -n 8 || die "another batch benchmark is running ($BENCH_DIR/.lock is held)"
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
NPROC=$(nproc)
log "run $RUN_ID: compensate $ELIGIBLE of $PARTICIPANTS participants ($HOLDERS holders), reconcile $RECONCILE_PARTICIPANTS; logs in $LOG_DIR"

# ---------------------------------------------------------------------------------------------
# 1. Tools, stack (left running), build
# ---------------------------------------------------------------------------------------------
ensure_cmds flock:util-linux timeout:coreutils redis-cli:redis-tools awk:gawk jq:jq

export STACK_MYSQL_DATABASE=$DATABASE
env_lines=$("$ROOT/scripts/stack.sh" up 8>&- 2>>"$LOG_DIR/stack.log") || {
    tail -n 20 "$LOG_DIR/stack.log" >&2
    die "scripts/stack.sh up failed (see $LOG_DIR/stack.log)"
}
eval "$env_lines"
STACK_ENV_READY=1
MYSQL_CLIENT=$(command -v mariadb || command -v mysql) || die "no mariadb/mysql client"

export COUPON__MYSQL__DATABASE=$DATABASE
export COUPON__REDIS__KEY_PREFIX=$KEY_PREFIX
export COUPON__LOG__FORMAT=text
export RUST_LOG=${RUST_LOG:-info} NO_COLOR=1

if [[ $BUILD == 1 ]]; then
    ensure_cargo
    ensure_build_deps
    log "building compensation-batch (release)"
    (cd "$ROOT" && cargo build --release -p compensation-batch 8>&-) >"$LOG_DIR/build.log" 2>&1 || {
        tail -n 30 "$LOG_DIR/build.log" >&2
        die "cargo build failed (see $LOG_DIR/build.log)"
    }
else
    log "BENCH_BUILD=$BUILD: using $(bin compensation-batch) as it is"
fi
[[ -x $(bin compensation-batch) ]] || die "$(bin compensation-batch) is missing"
if [[ $SEED_ONLY == 0 ]]; then
    for sub in compensate reconcile; do
        "$(bin compensation-batch)" "$sub" --help </dev/null >/dev/null 2>&1 8>&- \
            || die "$(bin compensation-batch) has no '$sub' subcommand (BENCH_SEED_ONLY=1 runs the seeding alone)"
    done
fi

# ---------------------------------------------------------------------------------------------
# 2. The run's own database and Redis keys
# ---------------------------------------------------------------------------------------------
log "mysql: dropping and recreating database $DATABASE"
mysql_q "DROP DATABASE IF EXISTS \`$DATABASE\`; CREATE DATABASE \`$DATABASE\` CHARACTER SET utf8mb4" -
DB_CREATED=1
"$(bin compensation-batch)" migrate </dev/null >"$LOG_DIR/migrate.log" 2>&1 8>&- || {
    tail -n 20 "$LOG_DIR/migrate.log" >&2
    die "compensation-batch migrate failed (see $LOG_DIR/migrate.log)"
}
log "mysql: migrated $DATABASE"
delete_redis_keys "$KEY_PREFIX" # left by an interrupted run with the same prefix

# ---------------------------------------------------------------------------------------------
# 3. Seed the compensation case
# ---------------------------------------------------------------------------------------------
# The event: a day ago; one attempt per user every 10 ms, holders first. The window covers them
# all: [from, until) with until one second after the last attempt.
NOW_S=$(date +%s)
EVENT_S=$((NOW_S - 86400))
FROM_S=$EVENT_S
UNTIL_S=$((EVENT_S + PARTICIPANTS / 100 + 1))
FROM=$(utc_rfc3339 "$FROM_S")
UNTIL=$(utc_rfc3339 "$UNTIL_S")
EVENT_SQL=$(utc_sql "$EVENT_S")

log "seeding the compensation case: $PARTICIPANTS participants, $HOLDERS holders, window $FROM .. $UNTIL"
t0=$(now_ms)
SOURCE=$(seed_coupon source "$HOLDERS" "'$EVENT_SQL'" "TIMESTAMPADD(HOUR, 1, '$EVENT_SQL')")
mysql_q "
    INSERT INTO event_participation_log (coupon_id, user_id, outcome, request_id, occurred_at)
    SELECT $SOURCE, $(user_id_sql), IF(seq.n <= $HOLDERS, 'ACCEPTED', 'SOLD_OUT'), UUID(),
           TIMESTAMPADD(MICROSECOND, seq.n * 10000, '$EVENT_SQL')
    FROM $(seq_table "$PARTICIPANTS");
    INSERT INTO coupon_user (coupon_id, user_id, request_id, status, issued_at, expires_at)
    SELECT p.coupon_id, p.user_id, p.request_id, 'ACTIVE', p.occurred_at, TIMESTAMPADD(DAY, 30, p.occurred_at)
    FROM event_participation_log p
    WHERE p.coupon_id = $SOURCE AND p.outcome = 'ACCEPTED';"
SEED_COMP_MS=$(($(now_ms) - t0))
read -r log_rows log_users in_window < <(mysql_q "
    SELECT COUNT(*), COUNT(DISTINCT user_id),
           SUM(occurred_at >= '$(utc_sql "$FROM_S")' AND occurred_at < '$(utc_sql "$UNTIL_S")')
    FROM event_participation_log WHERE coupon_id = $SOURCE")
holders=$(mysql_q "SELECT COUNT(*) FROM coupon_user WHERE coupon_id = $SOURCE")
check "seed: participation rows" "$log_rows" "$PARTICIPANTS"
check "seed: distinct participants" "$log_users" "$PARTICIPANTS"
check "seed: participation rows in the window" "$in_window" "$PARTICIPANTS"
check "seed: holders of the source coupon" "$holders" "$HOLDERS"
log "seeded coupon $SOURCE in $(seconds "$SEED_COMP_MS") s: $ELIGIBLE eligible"

# ---------------------------------------------------------------------------------------------
# 4. Seed the reconcile case: MySQL, then Redis as the API and the consumer leave it
# ---------------------------------------------------------------------------------------------
# A closed event (two hours ago, one hour long), every unit issued, one issue per millisecond.
R_STARTS_S=$((NOW_S - 7200))
R_ENDS_S=$((NOW_S - 3600))
R_STARTS_SQL=$(utc_sql "$R_STARTS_S")
log "seeding the reconcile case: $RECONCILE_PARTICIPANTS coupon_user rows"
t0=$(now_ms)
RECONCILE=$(seed_coupon reconcile "$RECONCILE_PARTICIPANTS" "'$R_STARTS_SQL'" "'$(utc_sql "$R_ENDS_S")'")
mysql_q "
    INSERT INTO coupon_user (coupon_id, user_id, request_id, status, issued_at, expires_at)
    SELECT $RECONCILE, $(user_id_sql), UUID(), 'ACTIVE',
           TIMESTAMPADD(MICROSECOND, seq.n * 1000, '$R_STARTS_SQL'),
           TIMESTAMPADD(DAY, 30, TIMESTAMPADD(MICROSECOND, seq.n * 1000, '$R_STARTS_SQL'))
    FROM $(seq_table "$RECONCILE_PARTICIPANTS");"
SEED_REC_MS=$(($(now_ms) - t0))

# The participants hash from MySQL: user, request id, issued_at in epoch ms (no time zone involved:
# DATETIME holds UTC and the difference is taken from the epoch as a DATETIME).
USERS_TSV=$LOG_DIR/reconcile-users.tsv
mysql_q "SELECT user_id, request_id,
                TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', issued_at) DIV 1000
         FROM coupon_user WHERE coupon_id = $RECONCILE ORDER BY id" >"$USERS_TSV"
rows=$(wc -l <"$USERS_TSV")
check "seed: coupon_user rows of the reconcile coupon" "$rows" "$RECONCILE_PARTICIPANTS"

K="${KEY_PREFIX}coupon:issue:{$RECONCILE}"
USERS_KEY=$K:users
t0=$(now_ms)
redis_cmd DEL "$K:meta" "$K:stock" "$USERS_KEY" "$K:issued" >/dev/null
redis_cmd HSET "$K:meta" total "$RECONCILE_PARTICIPANTS" starts_ms "$((R_STARTS_S * 1000))" \
    ends_ms "$((R_ENDS_S * 1000))" expiry_days 30 >/dev/null
redis_cmd SET "$K:stock" 0 >/dev/null
# Redis protocol, HSET_FIELDS fields per command: ~100 commands for 100,000 users.
PROTO=$LOG_DIR/reconcile-users.resp
LC_ALL=C awk -F'\t' -v key="$USERS_KEY" -v per="$HSET_FIELDS" '
    BEGIN { n = 0 }
    function bulk(s) { printf "$%d\r\n%s\r\n", length(s), s }
    function flush(  i) {
        if (n == 0) return
        printf "*%d\r\n", 2 + 2 * n
        bulk("HSET"); bulk(key)
        for (i = 0; i < n; i++) { bulk(u[i]); bulk(v[i]) }
        n = 0
    }
    { u[n] = $1; v[n] = "I|" $2 "|" $3; n++; if (n == per) flush() }
    END { flush() }' "$USERS_TSV" >"$PROTO"
redis_cmd --pipe <"$PROTO" >"$LOG_DIR/redis-pipe.log" 2>&1 || {
    cat "$LOG_DIR/redis-pipe.log" >&2
    die "redis-cli --pipe failed"
}
grep -q '^errors: 0,' "$LOG_DIR/redis-pipe.log" || {
    cat "$LOG_DIR/redis-pipe.log" >&2
    die "redis-cli --pipe reported errors"
}
redis_cmd SET "$K:issued" "$RECONCILE_PARTICIPANTS" >/dev/null
SEED_REDIS_MS=$(($(now_ms) - t0))
log "redis: loaded $USERS_KEY in $(seconds "$SEED_REDIS_MS") s ($(tail -n 1 "$LOG_DIR/redis-pipe.log"))"

check "redis: HLEN $USERS_KEY" "$(redis_cmd HLEN "$USERS_KEY")" "$RECONCILE_PARTICIPANTS"
check "redis: GET $K:issued" "$(redis_cmd GET "$K:issued")" "$RECONCILE_PARTICIPANTS"
check "redis: GET $K:stock" "$(redis_cmd GET "$K:stock")" 0
check "redis: HGET $K:meta total" "$(redis_cmd HGET "$K:meta" total)" "$RECONCILE_PARTICIPANTS"
# First, middle and last participant: the value is I|<request id of MySQL>|<issued_at ms>.
for line in 1 $(((RECONCILE_PARTICIPANTS + 1) / 2)) "$RECONCILE_PARTICIPANTS"; do
    IFS=$'\t' read -r s_user s_req s_ms < <(sed -n "${line}p" "$USERS_TSV")
    check "redis: HGET users $s_user" "$(redis_cmd HGET "$USERS_KEY" "$s_user")" "I|$s_req|$s_ms"
done
log "seeded coupon $RECONCILE: MySQL $(seconds "$SEED_REC_MS") s, Redis $(seconds "$SEED_REDIS_MS") s"

if [[ $SEED_ONLY == 1 ]]; then
    ((${#PROBLEMS[@]} == 0)) || die "seeding checks failed: ${PROBLEMS[*]}"
    log "BENCH_SEED_ONLY=1: seeding OK; not running compensate nor reconcile"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# 5. compensate: dry run, run, re-run
# ---------------------------------------------------------------------------------------------
COMP_ARGS=(compensate --source-coupon "$SOURCE" --from "$FROM" --until "$UNTIL"
    --name "$COMP_NAME" --discount "$COMP_DISCOUNT" --expiry-days "$COMP_EXPIRY_DAYS"
    --batch-size "$BATCH_SIZE" --output json)
comp_coupons() { mysql_q "SELECT COUNT(*) FROM coupon WHERE name = '$COMP_NAME'"; }
# granted_rows [ID]: coupon_user rows of coupons other than the seeded ones (and ID)
granted_rows() { mysql_q "SELECT COUNT(*) FROM coupon_user WHERE coupon_id NOT IN ($SOURCE, $RECONCILE${1:+, $1})"; }
comp_state() { # "rows total_quantity" of the compensation coupon COMP (total -1 if it is missing)
    mysql_q "SELECT (SELECT COUNT(*) FROM coupon_user WHERE coupon_id = $COMP),
                    COALESCE((SELECT total_quantity FROM coupon WHERE id = $COMP), -1)"
}

coupons_before=$(mysql_q "SELECT COUNT(*) FROM coupon")
batch compensate-dry-run "${COMP_ARGS[@]}" --dry-run
DRY_MS=$T_MS
DRY_RC=$T_RC
check "compensate --dry-run: exit code" "$DRY_RC" 0
check "compensate --dry-run: coupons afterwards" "$(mysql_q "SELECT COUNT(*) FROM coupon")" "$coupons_before"
check "compensate --dry-run: coupon_user rows granted" "$(granted_rows)" 0

batch compensate "${COMP_ARGS[@]}"
RUN_MS=$T_MS
RUN_RC=$T_RC
check "compensate: exit code" "$RUN_RC" 0
check "compensate: coupons named $COMP_NAME" "$(comp_coupons)" 1
COMP=$(mysql_q "SELECT COALESCE(MIN(id), 0) FROM coupon WHERE name = '$COMP_NAME'")
read -r comp_rows comp_total < <(comp_state)
check "compensate: coupon_user rows of coupon $COMP" "$comp_rows" "$ELIGIBLE"
check "compensate: total_quantity of coupon $COMP" "$comp_total" "$ELIGIBLE"
check "compensate: holders of the source coupon compensated" "$(mysql_q "
    SELECT COUNT(*) FROM coupon_user g JOIN coupon_user s ON s.user_id = g.user_id AND s.coupon_id = $SOURCE
    WHERE g.coupon_id = $COMP")" 0
check "compensate: refused participants not compensated" "$(mysql_q "
    SELECT COUNT(*) FROM event_participation_log p
    LEFT JOIN coupon_user g ON g.coupon_id = $COMP AND g.user_id = p.user_id
    WHERE p.coupon_id = $SOURCE AND p.outcome = 'SOLD_OUT' AND g.id IS NULL")" 0
check "compensate: rows granted to other coupons" "$(granted_rows "$COMP")" 0

batch compensate-rerun "${COMP_ARGS[@]}"
RERUN_MS=$T_MS
RERUN_RC=$T_RC
check "compensate re-run: exit code" "$RERUN_RC" 0
check "compensate re-run: coupons named $COMP_NAME" "$(comp_coupons)" 1
read -r rerun_rows rerun_total < <(comp_state)
check "compensate re-run: coupon_user rows of coupon $COMP (new: $((rerun_rows - comp_rows)))" "$rerun_rows" "$comp_rows"
check "compensate re-run: total_quantity of coupon $COMP" "$rerun_total" "$comp_total"
check "compensate re-run: rows granted to other coupons" "$(granted_rows "$COMP")" 0

# ---------------------------------------------------------------------------------------------
# 6. reconcile
# ---------------------------------------------------------------------------------------------
batch reconcile reconcile --coupon "$RECONCILE" --output json
REC_MS=$T_MS
REC_RC=$T_RC
if ((REC_RC == 3)); then
    log "reconcile: exit 3: coupon $RECONCILE is neither CONSISTENT nor PENDING (see the JSON above)"
fi
check "reconcile: exit code (0 = CONSISTENT)" "$REC_RC" 0
check "reconcile: HLEN afterwards (read-only)" "$(redis_cmd HLEN "$USERS_KEY")" "$RECONCILE_PARTICIPANTS"

# ---------------------------------------------------------------------------------------------
# 7. Summary
# ---------------------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock migrations 2>/dev/null | wc -l)
rustc_v=$(rustc --version 2>/dev/null | awk '{print $2}')
redis_v=$(redis_cmd INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" {print $2}')
mysql_v=$(mysql_q 'SELECT VERSION()' - 2>/dev/null || echo "?")
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)
# target MS LIMIT_S RC: met only for a successful run under the limit
target() {
    if (($3 != 0)); then
        echo "n/a (exit $3)"
    elif (($1 < $2 * 1000)); then
        echo "< $2 s: met"
    else
        echo "< $2 s: NOT met"
    fi
}

cat <<EOF

=========================== couponrush compensation-batch benchmark ===========================
 date       $(date -u +%Y-%m-%dT%H:%M:%SZ)   run $RUN_ID
 machine    $NPROC cores ($cpu_model), ${mem_gib} GiB, Linux $(uname -r)
 code       commit $commit$( ((dirty > 0)) && printf ' + %s uncommitted change(s) in crates/ Cargo.* migrations/' "$dirty" || printf ' (crates/ Cargo.* migrations/ as committed)'), rustc $rustc_v, release build$([[ $BUILD == 1 ]] || printf ' (not rebuilt: %s)' "$(bin compensation-batch)")
 versions   redis $redis_v, MariaDB/MySQL $mysql_v
 data       source coupon $SOURCE: $PARTICIPANTS participants, $HOLDERS holders, $ELIGIBLE eligible (seeded in $(seconds "$SEED_COMP_MS") s)
            reconcile coupon $RECONCILE: $RECONCILE_PARTICIPANTS participants (MySQL $(seconds "$SEED_REC_MS") s, Redis $(seconds "$SEED_REDIS_MS") s)
 seconds    wall clock of the process (start-up checks included); "own ms": the elapsed_ms the
            command printed, if any

 command                      users   exit  seconds    users/s  own ms  target
EOF
printf ' %-26s %7s %5s %8s %10s %7s  %s\n' \
    "compensate --dry-run" "$ELIGIBLE" "$DRY_RC" "$(seconds "$DRY_MS")" "-" "$(own_ms compensate-dry-run)" "" \
    "compensate" "$comp_rows" "$RUN_RC" "$(seconds "$RUN_MS")" "$(per_sec "$comp_rows" "$RUN_MS" "$RUN_RC")" "$(own_ms compensate)" "$(target "$RUN_MS" 3 "$RUN_RC")" \
    "compensate (re-run)" "$((rerun_rows - comp_rows))" "$RERUN_RC" "$(seconds "$RERUN_MS")" "-" "$(own_ms compensate-rerun)" "" \
    "reconcile" "$RECONCILE_PARTICIPANTS" "$REC_RC" "$(seconds "$REC_MS")" "$(per_sec "$RECONCILE_PARTICIPANTS" "$REC_MS" "$REC_RC")" "$(own_ms reconcile)" "$(target "$REC_MS" 5 "$REC_RC")"
echo
if ((${#PROBLEMS[@]} == 0)); then
    echo " checks     all OK (compensation coupon $COMP holds exactly the $ELIGIBLE eligible users; re-run granted none; reconcile CONSISTENT)"
else
    echo " checks     ${#PROBLEMS[@]} FAILED:"
    printf '            %s\n' "${PROBLEMS[@]}"
fi
printf '===============================================================================================\n'
log "logs in $LOG_DIR"
((${#PROBLEMS[@]} == 0)) || die "checks failed (see above)"
