#!/usr/bin/env bash
# Local backing services for couponrush on one machine: MariaDB, Redis and a Kafka-compatible
# broker (tansu, in-memory storage), plus the database and the topic(s) the apps expect.
#
#   scripts/stack.sh up         start what is missing, create database + topics, print the app env
#   scripts/stack.sh status     one line per service (UP/DOWN, ours/external) + topics; exit 0 iff all fine
#   scripts/stack.sh down       stop only what this script started (by pid file)
#   scripts/stack.sh env        print only the `export COUPON__...` lines: eval "$(scripts/stack.sh env)"
#   scripts/stack.sh tool NAME  install tool NAME if missing (apt-get, pip, or a .deb unpacked), print its path
#   scripts/stack.sh cluster-up|cluster-status|cluster-down|cluster-env
#                               a local Redis Cluster on private ports (scripts/lib/redis_cluster.sh)
#
# A service that already answers on its port is reused and never stopped by `down`. A service this
# script starts gets a pid file and a log in $STACK_STATE_DIR. Every setting has a default:
#   STACK_MYSQL_HOST=127.0.0.1 STACK_MYSQL_PORT=3306 STACK_MYSQL_USER=root STACK_MYSQL_PASSWORD=
#   STACK_MYSQL_DATABASE=couponrush STACK_REDIS_HOST=127.0.0.1 STACK_REDIS_PORT=6379
#   STACK_KAFKA_HOST=127.0.0.1 STACK_KAFKA_PORT=9092 STACK_TOPIC=coupon-issue STACK_PARTITIONS=3
#   STACK_DLQ_TOPIC=<topic>.dlq (empty: none) STACK_DLQ_PARTITIONS=1
#   STACK_STATE_DIR=<repo>/.stack STACK_WAIT_SECONDS=30 STACK_TANSU_BIN=<path to tansu, optional>
#   STACK_TOOLS_DIR=~/.cache/couponrush/tools (tools installed with pip or unpacked from a .deb, shared by every state dir)
#
# Notes:
# - tansu runs with memory storage: its topics vanish when it restarts; `up` recreates them.
# - On port 3306 (as root, with Debian's MariaDB installed) `up` starts the system mariadbd the way
#   this machine does (start-stop-daemon); on any other port it initialises its own datadir under
#   $STACK_STATE_DIR and runs a private mariadbd with its own socket.
# - Topics are listed and created with tansu's CLI (plain Kafka Metadata/CreateTopics requests),
#   also against a broker that is not tansu (CI's Apache Kafka, where they are pre-created).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=stack
# shellcheck source=scripts/lib/tools.sh
source "$ROOT/scripts/lib/tools.sh"
# shellcheck source=scripts/lib/harness.sh
source "$ROOT/scripts/lib/harness.sh"
# shellcheck source=scripts/lib/services.sh
source "$ROOT/scripts/lib/services.sh"
# shellcheck source=scripts/lib/redis_cluster.sh
source "$ROOT/scripts/lib/redis_cluster.sh"

MYSQL_HOST=${STACK_MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${STACK_MYSQL_PORT:-3306}
MYSQL_USER=${STACK_MYSQL_USER:-root}
MYSQL_PASSWORD=${STACK_MYSQL_PASSWORD:-}
MYSQL_DATABASE=${STACK_MYSQL_DATABASE:-couponrush}
REDIS_HOST=${STACK_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${STACK_REDIS_PORT:-6379}
KAFKA_HOST=${STACK_KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${STACK_KAFKA_PORT:-9092}
TOPIC=${STACK_TOPIC:-coupon-issue}
PARTITIONS=${STACK_PARTITIONS:-3}
DLQ_TOPIC=${STACK_DLQ_TOPIC-$TOPIC.dlq}
DLQ_PARTITIONS=${STACK_DLQ_PARTITIONS:-1}
STATE_DIR=${STACK_STATE_DIR:-$ROOT/.stack}
WAIT_SECONDS=${STACK_WAIT_SECONDS:-30}
TANSU="" # the tansu CLI: it runs the broker and lists/creates topics
BROKER_URL=tcp://$KAFKA_HOST:$KAFKA_PORT

validate_settings() {
    local v
    for v in MYSQL_PORT REDIS_PORT KAFKA_PORT PARTITIONS DLQ_PARTITIONS WAIT_SECONDS; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
    done
    for v in MYSQL_PORT REDIS_PORT KAFKA_PORT; do
        ((${!v} >= 1 && ${!v} <= 65535)) || die "$v must be a TCP port, got '${!v}'"
    done
    ((PARTITIONS >= 1)) || die "STACK_PARTITIONS must be at least 1"
    [[ $MYSQL_DATABASE =~ ^[A-Za-z0-9_]+$ ]] || die "STACK_MYSQL_DATABASE must match [A-Za-z0-9_]+"
    [[ $TOPIC =~ ^[A-Za-z0-9._-]+$ ]] || die "STACK_TOPIC must match [A-Za-z0-9._-]+"
    [[ -z $DLQ_TOPIC || $DLQ_TOPIC =~ ^[A-Za-z0-9._-]+$ ]] || die "STACK_DLQ_TOPIC must match [A-Za-z0-9._-]+"
}

is_local_host() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

pid_file() { printf '%s/%s.pid\n' "$STATE_DIR" "$1"; }

# Prints the pid if this script started the service and that process is still alive.
ours_pid() {
    local name=tansu
    case $1 in mysql) name=mariadbd ;; redis) name=redis-server ;; esac
    alive_pid "$(pid_file "$1")" "$name"
}

# ---------------------------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------------------------

# Prints the partition count of topic $1, or nothing when it does not exist; fails if the
# broker cannot be asked at all.
topic_partitions() {
    local out
    out=$("$TANSU" topic list --broker "$BROKER_URL" 2>/dev/null) || return 1
    python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t.get("name") == sys.argv[1] and t.get("error_code", 0) == 0:
        print(len(t.get("partitions") or []))
' "$1" <<<"$out"
}

ensure_topic() {
    local topic=$1 want=$2 have i
    have=$(topic_partitions "$topic") || die "kafka: cannot list topics on $KAFKA_HOST:$KAFKA_PORT"
    if [[ -z $have ]]; then
        log "kafka: creating topic $topic with $want partition(s)"
        "$TANSU" topic create --broker "$BROKER_URL" --partitions "$want" "$topic" \
            >>"$STATE_DIR/kafka-admin.log" 2>&1 || log "kafka: tansu topic create failed"
        # Creation is asynchronous on a real Kafka cluster: wait for the metadata to show it.
        for ((i = 0; i < 20; i++)); do
            have=$(topic_partitions "$topic") || true
            [[ -n $have ]] && break
            sleep 0.5
        done
    fi
    [[ -n $have ]] || {
        show_log "$STATE_DIR/kafka-admin.log"
        die "kafka: topic $topic could not be created on $KAFKA_HOST:$KAFKA_PORT"
    }
    [[ $have == "$want" ]] \
        || die "kafka: topic $topic has $have partition(s), expected $want; delete it (or restart a tansu broker, which forgets topics) and run 'up' again"
    log "kafka: topic $topic has $have partition(s)"
}

# ---------------------------------------------------------------------------------------------
# Subcommands
# ---------------------------------------------------------------------------------------------

print_env() {
    printf 'export COUPON__KAFKA__BOOTSTRAP_SERVERS=%q\n' "$KAFKA_HOST:$KAFKA_PORT"
    printf 'export COUPON__KAFKA__TOPIC=%q\n' "$TOPIC"
    printf 'export COUPON__REDIS__URL=%q\n' "redis://$REDIS_HOST:$REDIS_PORT"
    printf 'export COUPON__MYSQL__HOST=%q\n' "$MYSQL_HOST"
    printf 'export COUPON__MYSQL__PORT=%q\n' "$MYSQL_PORT"
    printf 'export COUPON__MYSQL__USER=%q\n' "$MYSQL_USER"
    printf 'export COUPON__MYSQL__PASSWORD=%q\n' "$MYSQL_PASSWORD"
    printf 'export COUPON__MYSQL__DATABASE=%q\n' "$MYSQL_DATABASE"
}

# ensure_service SVC HOST PORT: reuse whatever answers, else start ours.
ensure_service() {
    local svc=$1 host=$2 port=$3 pid
    if port_open "$host" "$port"; then
        if pid=$(ours_pid "$svc"); then
            log "$svc: $host:$port already up (ours, pid $pid)"
        else
            rm -f "$(pid_file "$svc")"
            log "$svc: $host:$port already answers; reusing it (external, will not be stopped by 'down')"
        fi
        return 0
    fi
    is_local_host "$host" || die "$svc: nothing answers on $host:$port and it is not a local address"
    if pid=$(ours_pid "$svc"); then
        die "$svc: our pid $pid is alive but $host:$port does not answer; run 'down' first"
    fi
    rm -f "$(pid_file "$svc")"
    "start_$svc"
}

lock_state() { # one stack.sh at a time per state directory
    exec 9>"$STATE_DIR/.lock"
    flock -w 60 9 || die "another 'stack.sh' holds $STATE_DIR/.lock"
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    lock_state
    ensure_service mysql "$MYSQL_HOST" "$MYSQL_PORT"
    ensure_service redis "$REDIS_HOST" "$REDIS_PORT"
    TANSU=$(tool_path tansu) # the CLI is needed for the topics even when the broker is external
    ensure_service kafka "$KAFKA_HOST" "$KAFKA_PORT"
    svc_ready mysql "$MYSQL_HOST:$MYSQL_PORT" "$STATE_DIR/mysql.log" mysql_ready
    ensure_database
    command -v python3 >/dev/null || die "python3 is needed to read the topic list"
    ensure_topic "$TOPIC" "$PARTITIONS"
    [[ -z $DLQ_TOPIC ]] || ensure_topic "$DLQ_TOPIC" "$DLQ_PARTITIONS"
    cmd_status >&2 || die "not everything is up"
    log "ready; app environment:"
    print_env
}

status_line() { # status_line SVC HOST PORT -> returns 1 when down
    local svc=$1 host=$2 port=$3 state=DOWN owner=external pid rc=1
    if port_open "$host" "$port"; then
        state=UP
        rc=0
    fi
    if pid=$(ours_pid "$svc"); then
        owner="ours (pid $pid)"
    elif [[ $state == DOWN ]]; then
        owner="-"
    fi
    printf '%-6s %-22s %-5s %s\n' "$svc" "$host:$port" "$state" "$owner"
    return "$rc"
}

cmd_status() {
    local ok=0 t want have
    status_line mysql "$MYSQL_HOST" "$MYSQL_PORT" || ok=1
    status_line redis "$REDIS_HOST" "$REDIS_PORT" || ok=1
    status_line kafka "$KAFKA_HOST" "$KAFKA_PORT" || return 1
    [[ -n $TANSU ]] || TANSU=$(find_tool tansu) || true
    for t in "$TOPIC" ${DLQ_TOPIC:+"$DLQ_TOPIC"}; do
        want=$PARTITIONS
        [[ $t == "$TOPIC" ]] || want=$DLQ_PARTITIONS
        if [[ -z $TANSU ]] || ! have=$(topic_partitions "$t"); then
            printf '%-6s %-22s %s\n' topic "$t" "UNKNOWN (no tansu CLI to ask; scripts/stack.sh up installs it)"
            ok=1
        elif [[ -z $have ]]; then
            printf '%-6s %-22s %s\n' topic "$t" "MISSING (want $want partitions)"
            ok=1
        else
            printf '%-6s %-22s %s\n' topic "$t" "$have partitions (want $want)"
            [[ $have == "$want" ]] || ok=1
        fi
    done
    return "$ok"
}

stop_service() {
    local svc=$1 pid
    if ! pid=$(ours_pid "$svc"); then
        [[ -e $(pid_file "$svc") ]] && log "$svc: stale pid file removed"
        rm -f "$(pid_file "$svc")"
        log "$svc: not started by this script; left alone"
        return 0
    fi
    log "$svc: stopping pid $pid"
    stop_pids 60 "$pid"
    rm -f "$(pid_file "$svc")"
    log "$svc: stopped"
}

cmd_down() {
    [[ -d $STATE_DIR ]] || {
        log "nothing to stop ($STATE_DIR does not exist)"
        return 0
    }
    lock_state
    stop_service kafka
    stop_service redis
    stop_service mysql
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    validate_settings
    case ${1:-}:$# in
        up:1) cmd_up ;;
        status:1) cmd_status ;;
        down:1) cmd_down ;;
        env:1) print_env ;;
        tool:2) tool_path "$2" ;;
        cluster-up:1) cmd_cluster_up ;;
        cluster-status:1) cmd_cluster_status ;;
        cluster-down:1) cmd_cluster_down ;;
        cluster-env:1) cluster_env ;;
        *) usage ;;
    esac
}

main "$@"
