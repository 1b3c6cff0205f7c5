#!/usr/bin/env bash
# Chaos drill on this machine: every Chaos Toolkit experiment in deploy/chaos/ against a private
# stack (its own MariaDB, Redis and tansu on their own ports: the faults never touch shared
# services), with issuer-api and CHAOS_CONSUMERS coupon-consumers built from this worktree.
# Exit 0 iff no experiment deviated. Journals: $CHAOS_DIR/journals/<experiment>.json.
#
#   scripts/chaos.sh                               all experiments
#   CHAOS_EXPERIMENTS="broker-stall" scripts/chaos.sh
#
# Settings: CHAOS_DIR=~/.cache/couponrush/chaos CHAOS_MYSQL_PORT=23306 CHAOS_REDIS_PORT=26379
#   CHAOS_KAFKA_PORT=29092 CHAOS_API_BIND=127.0.0.1:28080 CHAOS_OPS_PORT_BASE=28090
#   CHAOS_CONSUMERS=2 CHAOS_PROFILE=debug CHAOS_KEEP=0 (1: leave the stack and apps running)
#   CHAOS_FAULT_SECONDS=10 CHAOS_RECOVERY_SECONDS=60 (read by the experiments), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=chaos
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"

CHAOS_DIR=${CHAOS_DIR:-$HOME/.cache/couponrush/chaos}
EXPERIMENTS=${CHAOS_EXPERIMENTS:-consumer-kill broker-stall mysql-outage redis-loss mysql-freeze}
CONSUMERS=${CHAOS_CONSUMERS:-2}
OPS_BASE=${CHAOS_OPS_PORT_BASE:-28090}
API_BIND=${CHAOS_API_BIND:-127.0.0.1:28080}
PROFILE=${CHAOS_PROFILE:-debug}
export STACK_STATE_DIR=$CHAOS_DIR/stack STACK_MYSQL_PORT=${CHAOS_MYSQL_PORT:-23306}
export STACK_REDIS_PORT=${CHAOS_REDIS_PORT:-26379} STACK_KAFKA_PORT=${CHAOS_KAFKA_PORT:-29092}
export CHAOS_STATE_DIR=$CHAOS_DIR/run
LOG_DIR=$CHAOS_STATE_DIR/logs PIDS=() CHAOS_PID=""
for p in "$STACK_MYSQL_PORT" "$STACK_REDIS_PORT"; do # the faults kill these: never the shared ones
    [[ $p != 3306 && $p != 6379 ]] || die "CHAOS_MYSQL_PORT/CHAOS_REDIS_PORT must not be the shared 3306/6379"
done

# shellcheck disable=SC2317,SC2329 # runs from the EXIT trap
cleanup() {
    local rc=$? f
    trap - EXIT
    if [[ -n $CHAOS_PID ]] && kill -INT "$CHAOS_PID" 2>/dev/null; then # interrupted: its rollbacks
        log "interrupted: waiting for the experiment's rollbacks"        # end the fault
        wait "$CHAOS_PID" || true
    fi
    [[ ${CHAOS_KEEP:-0} == 1 ]] && { log "CHAOS_KEEP=1: stack and apps left running"; exit "$rc"; }
    for f in "$CHAOS_STATE_DIR"/*.pid; do [[ -s $f ]] && PIDS+=("$(<"$f")"); done
    ((${#PIDS[@]} == 0)) || stop_pids 10 "${PIDS[@]}"
    for f in "$STACK_STATE_DIR"/{kafka,mysql}.pid; do # a stopped (SIGSTOP) server ignores TERM
        [[ -s $f ]] && kill -CONT "$(<"$f")" 2>/dev/null
    done
    "$ROOT/scripts/stack.sh" down || true
    exit "$rc"
}
trap cleanup EXIT

ensure_cmds curl:curl jq:jq setsid:util-linux
CHAOS=$("$ROOT/scripts/stack.sh" tool chaos) # chaostoolkit 1.19.0, what the experiments are written for
"$CHAOS" --version 2>/dev/null | grep -q 1.19.0 || log "warning: $CHAOS is not chaostoolkit 1.19.0"

rm -rf "$CHAOS_STATE_DIR" && mkdir -p "$LOG_DIR" "$CHAOS_DIR/journals"
eval "$("$ROOT/scripts/stack.sh" up)"
for svc in mysql redis kafka; do # a reused (external) service has no pid file: refuse to fault it
    [[ -s $STACK_STATE_DIR/$svc.pid ]] || die "$svc on the chaos ports is not this script's; stop it or pick other CHAOS_*_PORT"
done

ensure_cargo && ensure_build_deps
flag=() && [[ $PROFILE == release ]] && flag=(--release)
# Private links to the binaries, taken as cargo reports each one: in a shared CARGO_TARGET_DIR,
# target/<profile>/<name> is whichever worktree built last (cargo replaces it, the link stays).
BIN=$CHAOS_DIR/bin && rm -rf "$BIN" && mkdir -p "$BIN"
(cd "$ROOT" && cargo build "${flag[@]}" --message-format=json-render-diagnostics \
    -p issuer-api -p coupon-consumer -p compensation-batch) \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' \
    | while read -r exe; do ln -f "$exe" "$BIN/" 2>/dev/null || cp "$exe" "$BIN/"; done # hard links: no space
for b in issuer-api coupon-consumer compensation-batch; do [[ -x $BIN/$b ]] || die "build failed: no $b"; done
export CHAOS_CONSUMER_BIN=$BIN/coupon-consumer CHAOS_BATCH_BIN=$BIN/compensation-batch
SMOKE_ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export COUPON__ADMIN__TOKEN=$SMOKE_ADMIN_TOKEN SMOKE_ADMIN_TOKEN COUPON__HTTP__BIND=$API_BIND
export COUPON__LOG__FORMAT=text NO_COLOR=1 SMOKE_API_URL=http://$API_BIND SMOKE_OPS_URLS=""
"$CHAOS_BATCH_BIN" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "migrate failed (see $LOG_DIR/migrate.log)"

for ((i = 1; i <= CONSUMERS; i++)); do
    echo "127.0.0.1:$((OPS_BASE + i))" >"$CHAOS_STATE_DIR/consumer-$i.ops"
    : >"$CHAOS_STATE_DIR/consumer-$i.pid" # started (and restarted) by the fault script
    SMOKE_OPS_URLS+="${SMOKE_OPS_URLS:+ }http://127.0.0.1:$((OPS_BASE + i))"
done
"$ROOT/deploy/chaos/fault.sh" local start-consumer >&2
setsid "$BIN/issuer-api" </dev/null >"$LOG_DIR/issuer-api.log" 2>&1 &
echo "$!" >"$CHAOS_STATE_DIR/issuer-api.pid"
"$ROOT/deploy/chaos/fault.sh" local wait-ready 90 >&2 || die "the apps did not become ready (see $LOG_DIR)"

starts=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ) ends=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ)
CHAOS_DRILL_COUPON=$(curl -sS --fail-with-body -X POST "$SMOKE_API_URL/admin/coupons" \
    -H "Authorization: Bearer $SMOKE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"chaos drill\",\"discount_amount\":1,\"total_quantity\":1000000,\"issue_starts_at\":\"$starts\",\"issue_ends_at\":\"$ends\",\"expiry_days\":1}" \
    | jq -er .couponId) || die "could not create the drill coupon"
export CHAOS_DRILL_COUPON

failed=()
cd "$ROOT"
for e in $EXPERIMENTS; do
    log "experiment $e"
    rm -f "$CHAOS_STATE_DIR"/{answers,observe.log,fault-start,fault-end} # what the audit judges
    "$CHAOS" --no-version-check --log-file "$CHAOS_DIR/journals/$e.log" run \
        --rollback-strategy always --journal-path "$CHAOS_DIR/journals/$e.json" \
        "deploy/chaos/$e.json" >&2 &
    CHAOS_PID=$!
    wait "$CHAOS_PID" || failed+=("$e")
    CHAOS_PID=""
done
for e in $EXPERIMENTS; do
    jq -r '"\(.experiment.title): \(.status), deviated=\(.deviated), \(.duration | floor) s",
        "  hypothesis before: \(.steady_states.before.steady_state_met), after: \(.steady_states.after.steady_state_met)",
        (.steady_states.after.probes[]? | select(.tolerance_met | not) | "  FAILED after: \(.activity.name)",
            (.output.stdout // "" | split("\n")[] | select(. != "") | "      " + .)),
        (.run[] | "  \(.activity.name): \(.status), \(.duration * 10 | floor / 10) s",
            (.output.stdout // "" | split("\n")[] | select(. != "") | "      " + .[0:200]))' \
        "$CHAOS_DIR/journals/$e.json" || true
done
((${#failed[@]} == 0)) || die "deviated or failed: ${failed[*]} (journals in $CHAOS_DIR/journals)"
log "every experiment held its steady state"
