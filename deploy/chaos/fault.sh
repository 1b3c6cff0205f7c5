#!/usr/bin/env bash
# The faults and measurements of the Chaos Toolkit experiments in this directory, on one of two
# targets (the experiments pass ${target} from CHAOS_TARGET):
#
#   deploy/chaos/fault.sh local|k8s VERB [ARG]
#     kill-consumer         SIGKILL one consumer (k8s: force-delete one pod of the consumer label)
#     start-consumer        local: restart killed consumers; k8s: wait for the rollout to be whole
#     stop-broker / resume-broker      SIGSTOP / SIGCONT the broker (k8s: kubectl exec ... kill 1)
#     stop-mysql / start-mysql         stop / restart MySQL (k8s: scale its workload to 0 / 1)
#     freeze-mysql / thaw-mysql        SIGSTOP / SIGCONT MySQL: connections hang instead of failing
#     stop-redis / start-redis         SIGKILL Redis / restart it empty (k8s: scale 0 / 1)
#     repair-redis          the runbook after Redis loss: compensation-batch reconcile --repair
#     observe SECONDS       poll every readiness endpoint, print each change with its time
#     wait-ready SECONDS    poll the read-only smoke test; print how long it took to pass
#     probe-issue [N]       N users (1) at once on the drill coupon (CHAOS_DRILL_COUPON): what they are told
#     check-probe-issued SECONDS   the probe-issue users reach ISSUED (every 202 ends as a coupon)
#     audit [noticed:api|ops:SECONDS]...   every recorded answer was true; readiness noticed the fault
#
# local: pids from CHAOS_STATE_DIR (consumer-N.pid, written by scripts/chaos.sh) and
#   STACK_STATE_DIR (services started by scripts/stack.sh, restarted by `stack.sh up`).
# k8s: CHAOS_K8S_NAMESPACE=couponrush CHAOS_K8S_CONSUMER_SELECTOR=app.kubernetes.io/name=coupon-consumer
#   CHAOS_K8S_BROKER_POD=kafka-0 CHAOS_K8S_BROKER_NAMESPACE CHAOS_K8S_MYSQL=statefulset/mysql
#   CHAOS_K8S_MYSQL_POD=mysql-0 (freeze/thaw)
#   CHAOS_K8S_MYSQL_NAMESPACE CHAOS_K8S_REDIS=deployment/redis CHAOS_K8S_REDIS_NAMESPACE
#   (namespaces default to CHAOS_K8S_NAMESPACE), CHAOS_K8S_TIMEOUT=180s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${1:?local or k8s}
VERB=${2:?verb}
ARG=${3:-}
STATE=${CHAOS_STATE_DIR:-$ROOT/.stack/chaos}
NS=${CHAOS_K8S_NAMESPACE:-couponrush}
K8S_TIMEOUT=${CHAOS_K8S_TIMEOUT:-180s}

pidof_svc() { cat "${STACK_STATE_DIR:?}/$1.pid"; }
stack_up() { "$ROOT/scripts/stack.sh" up >/dev/null; }
since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
mark() { date +%s%N >"$STATE/fault-$1"; } # fault-start / fault-end: what observe measures from
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/health/ready" || true; }

API=${SMOKE_API_URL:-http://127.0.0.1:8080}
SVC=kafka && [[ $VERB == *-mysql ]] && SVC=mysql
mkdir -p "$STATE"
case $VERB in
    kill-consumer | stop-* | freeze-*) mark start ;;
    start-* | resume-* | thaw-*) mark end ;;
esac
case $TARGET:$VERB in
    local:kill-consumer)
        pid=$(cat "$STATE/consumer-1.pid")
        kill -KILL "$pid" && echo "SIGKILL consumer-1 (pid $pid)" ;;
    k8s:kill-consumer)
        pod=$(kubectl -n "$NS" get pod -l "${CHAOS_K8S_CONSUMER_SELECTOR:-app.kubernetes.io/name=coupon-consumer}" \
            --field-selector=status.phase=Running -o 'jsonpath={.items[0].metadata.name}')
        [[ -n $pod ]] || { echo "no running consumer pod in namespace $NS" && exit 1; }
        kubectl -n "$NS" delete pod "$pod" --grace-period=0 --force --wait=false ;;
    local:start-consumer)
        for f in "$STATE"/consumer-*.pid; do
            n=$(basename "$f" .pid)
            kill -0 "$(cat "$f")" 2>/dev/null && continue
            COUPON__CONSUMER__OPS_BIND=$(cat "$STATE/$n.ops") setsid "${CHAOS_CONSUMER_BIN:?}" \
                </dev/null >>"$STATE/logs/$n.log" 2>&1 &
            echo "$!" >"$f" && echo "restarted $n (pid $!)"
        done ;;
    k8s:start-consumer) kubectl -n "$NS" rollout status deployment/coupon-consumer --timeout="$K8S_TIMEOUT" ;;
    local:stop-broker | local:freeze-mysql) kill -STOP "$(pidof_svc "$SVC")" && echo "SIGSTOP $SVC" ;;
    local:resume-broker | local:thaw-mysql) kill -CONT "$(pidof_svc "$SVC")" && echo "SIGCONT $SVC" ;;
    k8s:stop-broker | k8s:resume-broker | k8s:freeze-mysql | k8s:thaw-mysql)
        sig=STOP && [[ $VERB == resume-broker || $VERB == thaw-mysql ]] && sig=CONT
        pod=${CHAOS_K8S_BROKER_POD:-kafka-0} pns=${CHAOS_K8S_BROKER_NAMESPACE:-$NS}
        [[ $SVC == mysql ]] && pod=${CHAOS_K8S_MYSQL_POD:-mysql-0} pns=${CHAOS_K8S_MYSQL_NAMESPACE:-$NS}
        kubectl -n "$pns" exec "$pod" -- kill -"$sig" 1 ;;
    local:stop-mysql | local:stop-redis)
        svc=${VERB#stop-} sig=TERM && [[ $svc == redis ]] && sig=KILL
        pid=$(pidof_svc "$svc")
        kill -"$sig" "$pid" && while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        echo "$svc (pid $pid) stopped by SIG$sig" ;;
    local:start-mysql | local:start-redis) stack_up && echo "${VERB#start-} restarted" ;;
    k8s:stop-mysql | k8s:start-mysql | k8s:stop-redis | k8s:start-redis)
        svc=${VERB#*-} n=0 && [[ $VERB == start-* ]] && n=1
        ref=${CHAOS_K8S_MYSQL:-statefulset/mysql} wns=${CHAOS_K8S_MYSQL_NAMESPACE:-$NS}
        [[ $svc == redis ]] && ref=${CHAOS_K8S_REDIS:-deployment/redis} wns=${CHAOS_K8S_REDIS_NAMESPACE:-$NS}
        kubectl -n "$wns" scale "$ref" --replicas="$n"
        ((n == 0)) || kubectl -n "$wns" rollout status "$ref" --timeout="$K8S_TIMEOUT" ;;
    local:repair-redis) "${CHAOS_BATCH_BIN:?}" reconcile --coupon "${CHAOS_DRILL_COUPON:?}" --repair ;;
    k8s:repair-redis)
        kubectl -n "$NS" exec deployment/coupon-consumer -- compensation-batch reconcile \
            --coupon "${CHAOS_DRILL_COUPON:?}" --repair ;;
    *:observe)
        urls=("$API") && read -ra ops <<<"${SMOKE_OPS_URLS-}"
        urls+=("${ops[@]}") && declare -A last=() && t0=$(date +%s%N) && f0=$t0
        [[ -s $STATE/fault-start ]] && f0=$(<"$STATE/fault-start")
        echo "times since the fault began"
        while (($(date +%s%N) - t0 < ${ARG:-10} * 1000000000)); do
            for u in "${urls[@]}"; do
                c=$(code "$u")
                [[ ${last[$u]:-} == "$c" ]] || echo "+$(since "$f0")s $u/health/ready ${last[$u]:-start} -> $c" \
                    | tee -a "$STATE/observe.log"
                last[$u]=$c
            done
            sleep 0.5
        done
        for u in "${urls[@]}"; do echo "end (+$(since "$f0")s): $u/health/ready ${last[$u]}"; done ;;
    *:wait-ready)
        t0=$(date +%s%N)
        until out=$("$ROOT/scripts/smoke-test.sh" 2>&1); do
            (($(date +%s%N) - t0 < ${ARG:-60} * 1000000000)) || { echo "$out"; echo "NOT ready after $(since "$t0") s"; exit 1; }
            sleep 0.5
        done
        echo "ready after $(since "$t0") s" ;;
    *:probe-issue) # ARG users at once on the drill coupon; each answer recorded for check-probe-issued
        : >"$STATE/probe-users"
        for ((i = 0; i < ${ARG:-1}; i++)); do
            user=probe-$(date +%s)-$RANDOM
            curl -s -o "$STATE/$user.body" -w "$user %{http_code} %{time_total}\n" --max-time 10 -X POST \
                -H "userId: $user" "$API/coupons/${CHAOS_DRILL_COUPON:?}/issue" >>"$STATE/probe-users" &
        done
        wait || true
        cut -d' ' -f1,2 "$STATE/probe-users" >>"$STATE/answers"
        while read -r user told secs; do
            echo "$user: HTTP $told in $secs s $(head -c 160 "$STATE/$user.body" 2>/dev/null)"
        done <"$STATE/probe-users" ;;
    *:check-probe-issued) # every probe user told 202 ends ISSUED; any other answer ends ISSUED or nothing
        t0=$(date +%s%N) && rc=0
        while read -r user told _; do
            want="ISSUED|NOT_REQUESTED" && [[ $told == 202 ]] && want=ISSUED
            s="" && until [[ $s =~ ^($want)$ ]] || (($(date +%s%N) - t0 > ${ARG:-60} * 1000000000)); do
                s=$(curl -s --max-time 2 -H "userId: $user" "$API/coupons/$CHAOS_DRILL_COUPON/issuances/$user" | jq -r '.status // empty' || true)
                [[ $s =~ ^($want)$ ]] || sleep 0.3
            done
            echo "$user (told $told): ${s:-no answer} at +$(since "$t0") s (want $want)"
            [[ $s =~ ^($want)$ ]] || rc=1
        done <"$STATE/probe-users"
        exit "$rc" ;;
    *:audit) # ARG...: noticed:api|ops:SECONDS. Every answer recorded since the run began was true,
        # and (from observe's log) each API / consumer turned not-ready within SECONDS of the fault.
        bad=0 n=0
        while read -r user told; do
            n=$((n + 1)) && s=$(curl -s --max-time 2 -H "userId: $user" "$API/coupons/$CHAOS_DRILL_COUPON/issuances/$user" | jq -r '.status // empty' || true)
            case $told:$s in
                202:ISSUED | 503:ISSUED | 503:NOT_REQUESTED | 000:ISSUED | 000:NOT_REQUESTED) ;;
                *) echo "UNTRUE: $user was told $told, now ${s:-no answer}" && bad=1 ;;
            esac
        done < <(cat "$STATE/answers" 2>/dev/null)
        echo "$n answers audited"
        for rule in "${@:3}"; do
            IFS=: read -r _ who within <<<"$rule" && urls=("$API") && [[ $who == ops ]] && read -ra urls <<<"${SMOKE_OPS_URLS-}"
            [[ -s $STATE/observe.log ]] || continue
            for u in "${urls[@]}"; do
                t=$(awk -v u="$u/health/ready" '$2 == u && ($NF == 503 || $NF == "000") { print substr($1, 2) + 0; exit }' "$STATE/observe.log")
                if [[ -n $t ]] && awk -v t="$t" -v w="$within" 'BEGIN { exit !(t <= w) }'; then echo "$u turned not-ready at +${t}s"
                else echo "UNNOTICED: $u did not turn not-ready within ${within}s of the fault" && bad=1; fi
            done
        done
        exit "$bad" ;;
    *) sed -n '2,25p' "$0" >&2 && exit 2 ;;
esac
