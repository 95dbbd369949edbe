# Helpers shared by bench/run.sh, bench/policy_proxy.sh and bench/isolation.sh, which source
# this file after defining `log`, `die`, `repo` and `tmp`. Binaries are looked up under
# CARGO_TARGET_DIR when it is set, as cargo built them.

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
