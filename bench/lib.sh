# Helpers shared by bench/run.sh, bench/policy_proxy.sh and bench/isolation.sh, which source
# this file after defining `log`, `die`, `repo` and `tmp`. Binaries are looked up under
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
