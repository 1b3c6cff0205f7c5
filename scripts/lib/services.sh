# shellcheck shell=bash
# How scripts/stack.sh starts each backing service when nothing answers on its port, and how it
# tells that one is ready. Sourced by stack.sh after tools.sh and harness.sh; reads its settings
# (MYSQL_*, REDIS_*, KAFKA_*, STATE_DIR, WAIT_SECONDS, TANSU, BROKER_URL) and its pid_file.

first_cmd() { # the first of "$@" that is a command on PATH or an executable path, as a path
    local c
    for c in "$@"; do
        command -v "$c" 2>/dev/null && return 0
    done
    return 1
}

# svc_ready SVC HOST:PORT LOG CMD...: waits until CMD succeeds (see wait_ready).
svc_ready() {
    wait_ready "$1 ($2)" "$(pid_file "$1")" "$3" "$WAIT_SECONDS" "${@:4}"
}

# ---------------------------------------------------------------------------------------------
# MariaDB / MySQL
# ---------------------------------------------------------------------------------------------

mysql_ready() {
    local admin
    admin=$(first_cmd mariadb-admin mysqladmin) || {
        port_open "$MYSQL_HOST" "$MYSQL_PORT"
        return
    }
    # Exits 0 whenever the server answers, even if access is denied.
    MYSQL_PWD=$MYSQL_PASSWORD "$admin" --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
        -u "$MYSQL_USER" --connect-timeout=2 ping >/dev/null 2>&1
}

# On 3306, as root, with Debian's MariaDB installed: the system mariadbd, started the way this
# machine does. Anywhere else: a private mariadbd with its own datadir under $STATE_DIR.
start_mysql() {
    local logf=$STATE_DIR/mysql.log dir=$STATE_DIR/mysql-$MYSQL_PORT server installdb sock user
    if ! first_cmd mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld >/dev/null \
        || ! first_cmd mariadb-install-db mysql_install_db >/dev/null; then
        apt_install mariadb-server mariadb-client
    fi
    if port_open "$MYSQL_HOST" "$MYSQL_PORT"; then # the package's own start may have won
        log "mysql: $MYSQL_HOST:$MYSQL_PORT answers after install; reusing it (external)"
        return 0
    fi
    if [[ $MYSQL_PORT == 3306 ]] && is_local_host "$MYSQL_HOST" && ((EUID == 0)) \
        && [[ -x /usr/sbin/mariadbd && -d /var/lib/mysql/mysql ]]; then
        log "mysql: starting the system mariadbd on $MYSQL_HOST:$MYSQL_PORT"
        if id mysql >/dev/null 2>&1; then install -d -o mysql -g mysql /run/mysqld; fi
        start-stop-daemon --start --oknodo --background --make-pidfile \
            --pidfile "$(pid_file mysql)" --exec /usr/sbin/mariadbd >>"$logf" 2>&1 9>&-
        svc_ready mysql "$MYSQL_HOST:$MYSQL_PORT" /var/log/mysql/error.log mysql_ready
        return 0
    fi
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
    launch "$(pid_file mysql)" "$logf" "$server" --no-defaults --datadir="$dir/data" \
        --socket="$sock" --port="$MYSQL_PORT" --bind-address="$MYSQL_HOST" \
        --pid-file="$dir/mariadbd.pid" --log-error="$logf" --user="$user" --skip-name-resolve \
        --skip-log-bin --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    svc_ready mysql "$MYSQL_HOST:$MYSQL_PORT" "$logf" mysql_ready
    bootstrap_private_mysql "$sock"
}

# A fresh datadir has root with an empty password; give the configured user its password.
bootstrap_private_mysql() {
    local sock=$1 client u p h sql=""
    [[ $MYSQL_USER == root && -z $MYSQL_PASSWORD ]] && return 0
    client=$(first_cmd mariadb mysql) || die "mysql: no mariadb/mysql client"
    u=${MYSQL_USER//\\/\\\\} p=${MYSQL_PASSWORD//\\/\\\\} # SQL string literal bodies
    u=${u//\'/\'\'} p=${p//\'/\'\'}
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
    local client
    client=$(first_cmd mariadb mysql) || {
        apt_install mariadb-client
        client=$(first_cmd mariadb mysql)
    }
    MYSQL_PWD=$MYSQL_PASSWORD "$client" --protocol=TCP -h "$MYSQL_HOST" -P "$MYSQL_PORT" \
        -u "$MYSQL_USER" --connect-timeout=3 -N -B \
        -e "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\` CHARACTER SET utf8mb4" \
        || die "mysql: cannot create database $MYSQL_DATABASE as $MYSQL_USER@$MYSQL_HOST:$MYSQL_PORT"
    log "mysql: database $MYSQL_DATABASE ready"
}

# ---------------------------------------------------------------------------------------------
# Redis, tansu
# ---------------------------------------------------------------------------------------------

redis_ready() {
    # shellcheck disable=SC2016
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "PING\r\n" >&3; IFS= read -r l <&3; [[ $l == "+PONG"* || $l == "-NOAUTH"* ]]' \
        _ "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
}

start_redis() {
    local logf=$STATE_DIR/redis.log server
    server=$(first_cmd redis-server) || {
        apt_install redis-server
        server=$(first_cmd redis-server) || die "redis-server still missing after install"
    }
    if port_open "$REDIS_HOST" "$REDIS_PORT"; then # the package's own start may have won
        log "redis: $REDIS_HOST:$REDIS_PORT answers after install; reusing it (external)"
        return 0
    fi
    log "redis: starting redis-server on $REDIS_HOST:$REDIS_PORT"
    launch "$(pid_file redis)" "$logf" "$server" --port "$REDIS_PORT" --bind "$REDIS_HOST" \
        --dir "$STATE_DIR" --save "" --appendonly no
    svc_ready redis "$REDIS_HOST:$REDIS_PORT" "$logf" redis_ready
}

kafka_ready() { "$TANSU" topic list --broker "$BROKER_URL" >/dev/null 2>&1; }

start_kafka() {
    log "kafka: starting tansu broker (memory storage) on $KAFKA_HOST:$KAFKA_PORT"
    launch "$(pid_file kafka)" "$STATE_DIR/kafka.log" "$TANSU" broker \
        --listener-url "$BROKER_URL" --advertised-listener-url "$BROKER_URL" \
        --storage-engine memory://tansu/
    svc_ready kafka "$KAFKA_HOST:$KAFKA_PORT" "$STATE_DIR/kafka.log" kafka_ready
}
