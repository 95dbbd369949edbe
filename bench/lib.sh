# Helpers shared by bench/run.sh, bench/policy_proxy.sh, bench/isolation.sh and bench/soak.sh,
# which source this file after defining `log`, `die`, `repo` and `tmp`. Binaries are looked up under
# CARGO_TARGET_DIR when it is set, as cargo built them.

# The EXIT trap of every bench: stops what it started (`pids`, PgBouncer by its pid file,
# the cluster), prints the tail of the logs named in `bench_logs` (relative to `tmp`) when the
# run failed, and removes `tmp`.
bench_cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -f "$tmp/pgbouncer/pgbouncer.pid" ]; then
        kill "$(cat "$tmp/pgbouncer/pgbouncer.pid")" 2>/dev/null || true
    fi
    if [ -n "$cluster_pid" ]; then
        # Closing its stdin stops it too; SIGTERM makes sure. It removes its own files.
        kill "$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
    fi
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        local f
        for f in $bench_logs; do
            [ -s "$tmp/$f" ] && { log "--- tail of $f"; tail -n 20 "$tmp/$f" >&2; }
        done
    fi
    rm -rf "$tmp"
    exit "$status"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

# Waits until `psql` with the given environment can run a query.
wait_sql() {
    local label=$1
    shift
    for _ in $(seq 1 150); do
        if env "$@" psql -X -q -t -c 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    env "$@" psql -X -q -t -c 'SELECT 1' || true
    die "$label does not answer"
}

# Starts the ephemeral PostgreSQL with the demo dataset (examples/bench_cluster.rs). Its
# --policy-catalog writes the demo catalog ([control], demo users, data sources) to
# $tmp/catalog.toml and revokes the query role's raw access to hr.employees. Sets
# `cluster_pid` and the associative array `backend` (host, port, database, superuser, ...).
# The cluster stops when its stdin closes, so it never outlives the calling script.
start_cluster() {
    coproc CLUSTER {
        exec "${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_cluster" --policy-catalog "$tmp/catalog.toml" \
            2>"$tmp/cluster.err"
    }
    cluster_pid=$CLUSTER_PID
    declare -gA backend=()
    local key value
    while IFS='=' read -r -t 120 -u "${CLUSTER[0]}" key value; do
        [ "$key" = ready ] && break
        backend[$key]=$value
    done
    [ -n "${backend[port]:-}" ] || die "the cluster did not start: $(cat "$tmp/cluster.err")"
}

# Sends a command to the cluster started by start_cluster (`stop`: pg_ctl stop -m fast;
# `start`: the same data and port, returns once it accepts connections) and waits for its
# answer. Call it from the script's own shell: a subshell does not have the coprocess's pipes.
cluster_command() {
    local reply
    printf '%s\n' "$1" >&"${CLUSTER[1]}"
    IFS= read -r -t 120 -u "${CLUSTER[0]}" reply || die "the cluster did not answer '$1'"
    case $reply in
        stopped | started) ;;
        *) die "cluster '$1': $reply" ;;
    esac
}

# Prints a redveil config for the cluster started by start_cluster: listens on 127.0.0.1:PORT,
# TLS as `rv_tls_mode` says with the certificates of `$tmp/certs`, database DATABASE as the query
# role, transaction pool of SIZE, log level warn. EXTRA (optional) is appended as it is (a
# `[metrics]` table, say); POOL_EXTRA (optional) goes into `[pool]`. The caller appends the
# demo catalog ($tmp/catalog.toml) when it wants the policies.
redveil_config() {
    local port=$1 database=$2 size=$3 extra=${4:-} pool_extra=${5:-}
    cat <<EOT
[listen]
address = "127.0.0.1:$port"

[tls]
mode = "$rv_tls_mode"
cert = "$tmp/certs/server.crt"
key = "$tmp/certs/server.key"

[backend]
host = "${backend[host]}"
port = ${backend[port]}
database = "$database"
user = "${backend[query_user]}"
password = "${backend[query_password]}"

[pool]
mode = "transaction"
size = $size
$pool_extra
[log]
level = "warn"
$extra
EOT
}

# Writes $tmp/redveil.toml (the bench cluster's `database`, a pool of POOL_SIZE, /metrics on
# a free port, the catalog of `start_cluster`) and starts `redveil_bin` on a free port,
# logging to $tmp/redveil.log (redveil logs to stdout). Sets rv_port, metrics_port, rv_pid.
start_redveil_with_metrics() {
    local script=$1
    rv_port=$(free_port)
    metrics_port=$(free_port)
    {
        echo "# Written by bench/$script."
        redveil_config "$rv_port" "$database" "$POOL_SIZE" "
[metrics]
listen = \"127.0.0.1:$metrics_port\""
        # [control], the demo users (password = name) and data sources, as `redveil demo`.
        cat "$tmp/catalog.toml"
    } >"$tmp/redveil.toml"
    "$redveil_bin" --config "$tmp/redveil.toml" >"$tmp/redveil.log" 2>&1 &
    rv_pid=$!
    pids+=("$rv_pid")
}
