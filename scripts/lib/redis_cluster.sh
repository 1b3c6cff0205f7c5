# shellcheck shell=bash
# A local Redis Cluster for `redis.mode = cluster` (docs/redis-cluster.md): Debian's redis-server
# with --cluster-enabled yes on private ports, joined by `redis-cli --cluster create`. Sourced by
# scripts/stack.sh (cluster-up / cluster-status / cluster-down / cluster-env). Settings:
#   STACK_CLUSTER_PORT=17180 (first port; node i listens on PORT+i, its bus on PORT+i+10000)
#   STACK_CLUSTER_MASTERS=3 STACK_CLUSTER_REPLICAS=0 (replicas per master)
CLUSTER_PORT=${STACK_CLUSTER_PORT:-17180}
CLUSTER_MASTERS=${STACK_CLUSTER_MASTERS:-3}
CLUSTER_REPLICAS=${STACK_CLUSTER_REPLICAS:-0}

cluster_ports() { seq "$CLUSTER_PORT" $((CLUSTER_PORT + CLUSTER_MASTERS * (CLUSTER_REPLICAS + 1) - 1)); }
cluster_dir() { printf '%s/redis-cluster\n' "$STATE_DIR"; }
cluster_info() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null; }
cluster_ok() { cluster_info "$1" | grep -q '^cluster_state:ok'; }

# Starts the nodes that are not up, creates the cluster if its slots are not assigned yet, and
# waits until every node says cluster_state:ok. Running it again changes nothing.
cmd_cluster_up() {
    ((CLUSTER_MASTERS >= 3)) || die "STACK_CLUSTER_MASTERS must be at least 3 (Redis Cluster)"
    local dir port nodes=() i
    dir=$(cluster_dir)
    mkdir -p "$dir"
    lock_state
    first_cmd redis-server >/dev/null || apt_install redis-server
    first_cmd redis-cli >/dev/null || apt_install redis-tools
    for port in $(cluster_ports); do
        nodes+=("127.0.0.1:$port")
        if port_open 127.0.0.1 "$port"; then
            alive_pid "$dir/$port.pid" redis-server >/dev/null \
                || die "redis-cluster: 127.0.0.1:$port answers but is not ours; pick another STACK_CLUSTER_PORT"
            continue
        fi
        log "redis-cluster: starting node 127.0.0.1:$port"
        launch "$dir/$port.pid" "$dir/$port.log" "$(first_cmd redis-server)" --port "$port" \
            --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no --cluster-enabled yes \
            --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000
        wait_ready "redis-cluster $port" "$dir/$port.pid" "$dir/$port.log" "$WAIT_SECONDS" \
            port_open 127.0.0.1 "$port"
    done
    if ! cluster_info "$CLUSTER_PORT" | grep -q '^cluster_slots_assigned:16384'; then
        log "redis-cluster: creating ${CLUSTER_MASTERS} masters, ${CLUSTER_REPLICAS} replica(s) each"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$CLUSTER_REPLICAS" \
            --cluster-yes >>"$dir/create.log" 2>&1 || {
            show_log "$dir/create.log"
            die "redis-cluster: redis-cli --cluster create failed"
        }
    fi
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        local all=1
        for port in $(cluster_ports); do cluster_ok "$port" || all=0; done
        ((all)) && break
        sleep 0.1
    done
    ((all)) || die "redis-cluster: not cluster_state:ok after ${WAIT_SECONDS}s"
    cmd_cluster_status >&2
    log "redis-cluster ready; app environment:"
    cluster_env
}

cmd_cluster_status() {
    local port ok=0 state
    for port in $(cluster_ports); do
        state=DOWN
        port_open 127.0.0.1 "$port" && state=$(cluster_info "$port" | tr -d '\r' | sed -n 's/^cluster_state://p')
        printf '%-14s %-22s %s\n' redis-cluster "127.0.0.1:$port" "${state:-UNKNOWN}"
        [[ $state == ok ]] || ok=1
    done
    return "$ok"
}

cmd_cluster_down() {
    local dir port pid
    dir=$(cluster_dir)
    [[ -d $dir ]] || return 0
    lock_state
    for port in $(cluster_ports); do
        pid=$(alive_pid "$dir/$port.pid" redis-server) && stop_pids 30 "$pid"
        rm -f "$dir/$port.pid" "$dir/nodes-$port.conf"
    done
    log "redis-cluster: stopped (its state removed: the next cluster-up creates a new one)"
}

cluster_env() {
    local seeds=() port
    for port in $(cluster_ports); do seeds+=("redis://127.0.0.1:$port"); done
    printf 'export COUPON__REDIS__MODE=cluster\n'
    printf "export COUPON__REDIS__CLUSTER_NODES='%s'\n" "$(IFS=,; echo "${seeds[*]}")"
}
