# shellcheck shell=bash
# Processes a script starts and stops itself (stack.sh's servers, chaos.sh's apps): started
# detached with a log and a pid file, waited for until ready, told apart from a recycled pid,
# stopped with SIGTERM then SIGKILL. Sourced after scripts/lib/tools.sh (log, die).

# alive_pid PIDFILE NAME: prints the pid in PIDFILE if that process lives and its command line
# names NAME (so a pid recycled by another program is not taken for ours).
alive_pid() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
    fi
    printf '%s\n' "$pid"
}

# launch PIDFILE LOG CMD...: starts CMD detached in its own session, its pid in PIDFILE.
launch() {
    local pidf=$1 logf=$2 i
    shift 2
    rm -f "$pidf"
    printf -- '--- %s starting: %s\n' "$(date '+%F %T')" "$*" >>"$logf"
    # The inner shell records its own pid, then exec keeps that pid for the program itself.
    # shellcheck disable=SC2016
    setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidf" "$@" </dev/null >>"$logf" 2>&1 9>&- &
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidf ]] && return 0
        sleep 0.1
    done
    die "could not record the pid of: $*"
}

show_log() {
    [[ -f $1 ]] || return 0
    log "last lines of $1:"
    tail -n 20 "$1" >&2 || true
}

# wait_ready NAME PIDFILE LOG SECONDS CMD...: polls CMD until it succeeds; dies (stopping a
# half-started process of ours) when the process exits or SECONDS pass.
wait_ready() {
    local name=$1 pidf=$2 logf=$3 deadline=$((SECONDS + $4))
    shift 4
    until "$@"; do
        if [[ -s $pidf ]] && ! kill -0 "$(<"$pidf")" 2>/dev/null; then
            show_log "$logf"
            rm -f "$pidf"
            die "$name exited during start-up (see $logf)"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$logf"
            if [[ -s $pidf ]]; then kill -TERM "$(<"$pidf")" 2>/dev/null || true; fi
            rm -f "$pidf"
            die "$name did not answer within $4 s (see $logf)"
        fi
        sleep 0.5
    done
}

any_alive() { # any_alive PID...: some of them still runs
    local pid
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then return 0; fi
    done
    return 1
}

# stop_pids GRACE PID...: SIGTERM each (SIGCONT first: a frozen process would never see it),
# SIGKILL whatever still runs after GRACE seconds, then wait until they are gone.
stop_pids() {
    local grace=$1 pid i
    shift
    for pid in "$@"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < grace * 10; i++)); do
        any_alive "$@" || break
        sleep 0.1
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM for ${grace}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done # reaps those that are our children
    for ((i = 0; i < 20; i++)); do # the others: their parent reaps them
        any_alive "$@" || break
        sleep 0.1
    done
    return 0
}
