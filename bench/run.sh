#!/usr/bin/env bash
# Side-by-side benchmark: direct PostgreSQL, PgBouncer (transaction mode) and redveil
# (transaction mode, release build), in one run on one machine. See bench/README.md.
#
#   bench/run.sh                       # everything, defaults below
#   CLIENTS="1 10 50" DURATION=30 ROUNDS=3 bench/run.sh
#   DURATION=3 CLIENTS="1 10" STREAM_ROWS=0 IDLE_COUNTS= CALLGRIND_N=0 bench/run.sh  # smoke
#
# Two workloads, alternating targets within each (mode, clients) cell:
#   pgbench -S           pgbench_accounts lookups: direct, PgBouncer, redveil
#   policy view          `SELECT * FROM hr.employees WHERE id = :id` (custom script): the raw
#                        table directly (system role) vs redveil as `analyst`, which rewrites
#                        it to the demo catalog's policy view (second redveil instance with
#                        the demo catalog and [control], as bench/policy_proxy.sh sets it up)
#
# Environment knobs (defaults in brackets):
#   CLIENTS [1 10 50]   pgbench client counts (space separated)
#   JOBS [2]            pgbench worker threads
#   DURATION [20]       seconds per pgbench run
#   ROUNDS [1]          repetitions of the whole pgbench matrix; the table shows medians
#   MODES [simple extended prepared]
#   SCALE [10]          pgbench -i scale (10 = 1 000 000 rows in pgbench_accounts)
#   POOL_SIZE [10]      backend connections per proxy (same for both)
#   STREAM_ROWS [1000000] rows of repeat('x', 1000) in the large-result runs (0 = skip)
#   IDLE_COUNTS [1000 10000] idle TLS clients held open per proxy (empty = skip)
#   CALLGRIND_N [2000]  statements per callgrind run (instructions per statement; 0 = skip)
#   BENCH_TLS [on]      TLS between clients and both proxies (off: cleartext to both)
#   POLICY [on]         off: skip the policy-view workload
#   OUT [bench/RESULTS.md]  the report (also copied to bench/results/<date>.md when OUT is unset)
#   HOLD [0]            1: start everything, print psql/pgbench environments, wait for
#                       Ctrl-C (for profiling by hand); runs no measurement
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CLIENTS=${CLIENTS:-1 10 50}
JOBS=${JOBS:-2}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-1}
MODES=${MODES:-simple extended prepared}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-10}
STREAM_ROWS=${STREAM_ROWS:-1000000}
IDLE_COUNTS=${IDLE_COUNTS-1000 10000}
BENCH_TLS=${BENCH_TLS:-on}
HOLD=${HOLD:-0}
CALLGRIND_N=${CALLGRIND_N:-2000}
POLICY=${POLICY:-on}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- set-up and clean-up

./scripts/install-deps.sh --bench
command -v pgbench >/dev/null || die "pgbench not found (Debian: postgresql-client)"
command -v python3 >/dev/null || die "python3 not found"
pgbouncer_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

log "building redveil (release)"
cargo build --release --locked --bin redveil --example bench_cluster --example bench_idle
redveil_bin=${CARGO_TARGET_DIR:-$repo/target}/release/redveil

tmp=$(mktemp -d /tmp/redveil-bench.XXXXXX)
chmod 755 "$tmp"
pids=()
cluster_pid=""

bench_logs="redveil.log redveil-policy.log pgbouncer/pgbouncer.log cluster.err"
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# Runs a command as the OS user the proxies and the cluster run as (PgBouncer refuses root).
# runuser's PAM session resets the soft open-files limit (1024 on Debian): raise it again,
# or PgBouncer cannot hold the idle-client test's connections.
as_service() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- bash -c 'ulimit -n "$(ulimit -Hn)" && exec "$@"' as_service "$@"
    else
        "$@"
    fi
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- the backend

log "starting the ephemeral PostgreSQL (demo dataset and catalog)"
start_cluster
pg_host=${backend[host]}
pg_port=${backend[port]}
su_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[superuser]}"
    PGPASSWORD="${backend[superuser_password]}" PGSSLMODE=disable)
query_user=${backend[query_user]}
query_password=${backend[query_password]}
log "PostgreSQL on $pg_host:$pg_port ($(env "${su_env[@]}" PGDATABASE=postgres psql -X -A -t -c 'SHOW server_version'))"

log "pgbench -i -s $SCALE in database bench"
env "${su_env[@]}" PGDATABASE=postgres psql -X -q -c 'CREATE DATABASE bench' >/dev/null
env "${su_env[@]}" pgbench -i -s "$SCALE" -q bench 2>"$tmp/pgbench-init.log" ||
    { cat "$tmp/pgbench-init.log" >&2; die "pgbench -i failed"; }
env "${su_env[@]}" PGDATABASE=bench psql -X -q -v ON_ERROR_STOP=1 \
    -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO $query_user" >/dev/null

# ---------------------------------------------------------------- certificates

./certs/make-dev-certs.sh "$tmp/certs" >/dev/null
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$tmp/certs"
fi
ca=$tmp/certs/ca.crt
if [ "$BENCH_TLS" = on ]; then
    proxy_sslmode=require
else
    proxy_sslmode=disable
fi

# ---------------------------------------------------------------- redveil

rv_port=$(free_port)
rv_user=bi_service
rv_password=bi_service
rv_verifier=$(printf '%s\n' "$rv_password" | "$redveil_bin" passwd)
if [ "$BENCH_TLS" = on ]; then rv_tls_mode=require; else rv_tls_mode=disable; fi
cat >"$tmp/redveil.toml" <<EOF
# Written by bench/run.sh.
[listen]
address = "127.0.0.1:$rv_port"
max_connections = 20000

[tls]
mode = "$rv_tls_mode"
cert = "$tmp/certs/server.crt"
key = "$tmp/certs/server.key"

[backend]
host = "$pg_host"
port = $pg_port
database = "bench"
user = "$query_user"
password = "$query_password"

[pool]
mode = "transaction"
size = $POOL_SIZE

[log]
level = "warn"

[[users]]
name = "$rv_user"
password = "$rv_verifier"
EOF
log "starting redveil on 127.0.0.1:$rv_port (pool $POOL_SIZE, TLS $BENCH_TLS)"
"$redveil_bin" --config "$tmp/redveil.toml" >"$tmp/redveil.log" 2>&1 &
rv_pid=$!
pids+=("$rv_pid")

# ---------------------------------------------------------------- PgBouncer

pgb_port=$(free_port)
mkdir -p "$tmp/pgbouncer"
# The role's SCRAM verifier, as PostgreSQL stores it: PgBouncer then checks clients without
# deriving the key from a plaintext password on every login (as redveil does with its
# verifiers), and logs in to PostgreSQL with the client's SCRAM proof.
query_verifier=$(env "${su_env[@]}" PGDATABASE=postgres psql -X -A -t \
    -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$query_user'")
printf '"%s" "%s"\n' "$query_user" "$query_verifier" >"$tmp/pgbouncer/userlist.txt"
if [ "$BENCH_TLS" = on ]; then
    pgb_tls="client_tls_sslmode = require
client_tls_cert_file = $tmp/certs/server.crt
client_tls_key_file = $tmp/certs/server.key"
else
    pgb_tls="client_tls_sslmode = disable"
fi
cat >"$tmp/pgbouncer/pgbouncer.ini" <<EOF
; Written by bench/run.sh.
[databases]
bench = host=$pg_host port=$pg_port dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
pidfile = $tmp/pgbouncer/pgbouncer.pid
logfile = $tmp/pgbouncer/pgbouncer.log
auth_type = scram-sha-256
auth_file = $tmp/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 20000
log_connections = 0
log_disconnections = 0
server_tls_sslmode = disable
$pgb_tls
EOF
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$tmp/pgbouncer"
fi
log "starting PgBouncer $("$pgbouncer_bin" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$pgb_port (pool $POOL_SIZE, TLS $BENCH_TLS)"
as_service "$pgbouncer_bin" "$tmp/pgbouncer/pgbouncer.ini" 2>>"$tmp/pgbouncer/pgbouncer.err" &
pids+=("$!")

direct_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="$query_user"
    PGPASSWORD="$query_password" PGDATABASE=bench PGSSLMODE=disable)
pgb_env=(PGHOST=127.0.0.1 PGPORT="$pgb_port" PGUSER="$query_user"
    PGPASSWORD="$query_password" PGDATABASE=bench PGSSLMODE="$proxy_sslmode")
rv_env=(PGHOST=127.0.0.1 PGPORT="$rv_port" PGUSER="$rv_user"
    PGPASSWORD="$rv_password" PGDATABASE=bench PGSSLMODE="$proxy_sslmode")
wait_sql PostgreSQL "${direct_env[@]}"
wait_sql redveil "${rv_env[@]}"
wait_sql PgBouncer "${pgb_env[@]}"
pgb_pid=$(cat "$tmp/pgbouncer/pgbouncer.pid")

# ---------------------------------------------------------------- redveil for the policy view

# A second instance (same pool mode and size) on database demo with the demo catalog and
# [control] appended, as bench/policy_proxy.sh runs it: `analyst`'s statements on
# hr.employees are rewritten to the policy view. The pgbench -S instance stays catalog-free.
demo_db=${backend[database]}
rv_policy_pid=""
raw_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[system_user]}"
    PGPASSWORD="${backend[system_password]}" PGDATABASE="$demo_db" PGSSLMODE=disable)
rv_policy_env=()
if [ "$POLICY" = on ]; then
    rvp_port=$(free_port)
    cat >"$tmp/redveil-policy.toml" <<EOF
# Written by bench/run.sh.
[listen]
address = "127.0.0.1:$rvp_port"
max_connections = 20000

[tls]
mode = "$rv_tls_mode"
cert = "$tmp/certs/server.crt"
key = "$tmp/certs/server.key"

[backend]
host = "$pg_host"
port = $pg_port
database = "$demo_db"
user = "$query_user"
password = "$query_password"

[pool]
mode = "transaction"
size = $POOL_SIZE

[log]
level = "warn"
EOF
    # [control], the demo users (password = name) and data sources, as `redveil demo` has them.
    cat "$tmp/catalog.toml" >>"$tmp/redveil-policy.toml"
    log "starting redveil (policy view, demo catalog) on 127.0.0.1:$rvp_port (pool $POOL_SIZE, TLS $BENCH_TLS)"
    "$redveil_bin" --config "$tmp/redveil-policy.toml" >"$tmp/redveil-policy.log" 2>&1 &
    rv_policy_pid=$!
    pids+=("$rv_policy_pid")
    rv_policy_env=(PGHOST=127.0.0.1 PGPORT="$rvp_port" PGUSER=analyst PGPASSWORD=analyst
        PGDATABASE="$demo_db" PGSSLMODE="$proxy_sslmode")
    wait_sql "redveil (policy view)" "${rv_policy_env[@]}"
fi

target_env() {
    case $1 in
        direct) target_envv=("${direct_env[@]}") ;;
        pgbouncer) target_envv=("${pgb_env[@]}") ;;
        redveil) target_envv=("${rv_env[@]}") ;;
        policy-direct) target_envv=("${raw_env[@]}") ;;
        policy-redveil) target_envv=("${rv_policy_env[@]}") ;;
    esac
}
target_pid() {
    case $1 in
        direct | policy-direct) echo "" ;;
        pgbouncer) echo "$pgb_pid" ;;
        redveil) echo "$rv_pid" ;;
        policy-redveil) echo "$rv_policy_pid" ;;
    esac
}

if [ "$POLICY" = on ]; then
    # The bench must measure the rewrite: the raw table shows every row unmasked, analyst
    # through redveil only the EU rows with ssn NULL.
    rows=$(env "${raw_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees")
    eu_rows=$(env "${raw_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees WHERE region = 'EU'")
    seen=$(env "${rv_policy_env[@]}" psql -X -A -t -v ON_ERROR_STOP=1 \
        -c "SELECT count(*), count(ssn) FROM hr.employees" 2>&1 | tr '|' ' ') ||
        die "policy view through redveil: $seen"
    [ "$seen" = "$eu_rows 0" ] ||
        die "analyst through redveil sees '$seen' of hr.employees (count, count(ssn)), expected '$eu_rows 0'"
    log "policy view: analyst sees $eu_rows of $rows rows of hr.employees, ssn masked"
    printf '\\set id random(1, 10000)\nSELECT * FROM hr.employees WHERE id = :id;\n' >"$tmp/policy.sql"
fi

if [ "$HOLD" = 1 ]; then
    log "holding (Ctrl-C ends); redveil pid $rv_pid, PgBouncer pid $pgb_pid"
    for t in direct pgbouncer redveil; do
        target_env "$t"
        printf '%-10s env %s\n' "$t" "${target_envv[*]}"
    done
    sleep infinity &
    pids+=("$!")
    wait "$!"
fi

results=$tmp/results.tsv
: >"$results"
{
    printf 'meta\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'meta\tcommit\t%s\n' "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (dirty)')"
    printf 'meta\tcores\t%s\n' "$(nproc)"
    printf 'meta\tcpu\t%s × %s\n' "$(nproc)" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'meta\tkernel\t%s\n' "$(uname -r)"
    printf 'meta\tpostgres\t%s\n' "$(env "${direct_env[@]}" psql -X -A -t -c 'SHOW server_version')"
    printf 'meta\tpgbouncer\t%s\n' "$("$pgbouncer_bin" --version | head -n1)"
    printf 'meta\tpgbench\t%s\n' "$(pgbench --version)"
    printf 'meta\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'meta\tsettings\tCLIENTS="%s" JOBS=%s DURATION=%s ROUNDS=%s SCALE=%s POOL_SIZE=%s BENCH_TLS=%s STREAM_ROWS=%s IDLE_COUNTS="%s" CALLGRIND_N=%s POLICY=%s\n' \
        "$CLIENTS" "$JOBS" "$DURATION" "$ROUNDS" "$SCALE" "$POOL_SIZE" "$BENCH_TLS" "$STREAM_ROWS" "$IDLE_COUNTS" "$CALLGRIND_N" "$POLICY"
} >>"$results"

# ---------------------------------------------------------------- pgbench -S

run_pgbench() {
    local mode=$1 clients=$2 target=$3 round=$4
    local pid cpu0=0 cpu1=0 out dir=$tmp/pgbench-logs/$mode-$clients-$target-$round
    mkdir -p "$dir"
    target_env "$target"
    pid=$(target_pid "$target")
    # pgbench -S, or the policy-view lookup (same statement text on both policy targets).
    local workload=(-S)
    case $target in policy-*) workload=(-f "$tmp/policy.sql") ;; esac
    [ -n "$pid" ] && cpu0=$(cpu_ticks "$pid")
    out=$(cd "$dir" && env "${target_envv[@]}" pgbench -n "${workload[@]}" -M "$mode" -c "$clients" \
        -j "$JOBS" -T "$DURATION" -l --log-prefix=tx 2>&1) ||
        { printf '%s\n' "$out" >&2; die "pgbench $mode against $target failed"; }
    [ -n "$pid" ] && cpu1=$(cpu_ticks "$pid")
    local tps lat tx
    tps=$(awk '/^tps = / { print $3 }' <<<"$out")
    lat=$(awk '/^latency average = / { print $4 }' <<<"$out")
    tx=$(awk '/^number of transactions actually processed:/ { print $6 }' <<<"$out")
    local p99
    p99=$(python3 "$repo/bench/percentile.py" 99 "$dir"/tx.*)
    rm -rf "$dir"
    local cpu_s
    cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$clk_tck" 'BEGIN { printf "%.3f", (b - a) / t }')
    [ -z "$pid" ] && cpu_s=""
    printf 'pgbench\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$mode" "$clients" "$target" "$round" "$tps" "$lat" "$p99" "$tx" "$cpu_s" >>"$results"
    log "  $mode c=$clients $target: $tps tps, $lat ms mean, $p99 ms p99${cpu_s:+, proxy CPU ${cpu_s}s}"
}

log "warm-up (5 s direct)"
(cd "$tmp" && env "${direct_env[@]}" pgbench -n -S -c "$JOBS" -j "$JOBS" -T 5 >/dev/null 2>&1)
policy_targets=""
if [ "$POLICY" = on ]; then
    policy_targets="policy-direct policy-redveil"
    log "warm-up (2 s per policy-view target)"
    for target in $policy_targets; do
        target_env "$target"
        (cd "$tmp" && env "${target_envv[@]}" pgbench -n -M extended -c "$JOBS" -j "$JOBS" -T 2 \
            -f "$tmp/policy.sql" >/dev/null 2>&1) || die "warm-up against $target failed"
    done
fi

for round in $(seq 1 "$ROUNDS"); do
    for clients in $CLIENTS; do
        for mode in $MODES; do
            log "pgbench -S -M $mode, $clients clients, ${DURATION}s (round $round/$ROUNDS)"
            for target in direct pgbouncer redveil; do
                # PgBouncer 1.18 cannot keep protocol-level prepared statements in
                # transaction mode (that arrived in 1.21).
                if [ "$mode" = prepared ] && [ "$target" = pgbouncer ]; then
                    continue
                fi
                run_pgbench "$mode" "$clients" "$target" "$round"
            done
            # The policy-view workload in the same cell: raw table direct vs redveil's view.
            for target in $policy_targets; do
                run_pgbench "$mode" "$clients" "$target" "$round"
            done
        done
    done
done

# ---------------------------------------------------------------- large results

stream_one() {
    local kind=$1 target=$2 pid sql t0 t1 base=""
    local gen="SELECT repeat('x', 1000) FROM generate_series(1, $STREAM_ROWS)"
    target_env "$target"
    pid=$(target_pid "$target")
    if [ -n "$pid" ]; then
        base=$(status_kb "$pid" VmRSS)
        # Resets VmHWM to the current RSS (Linux ≥ 4.0), so the peak is this run's.
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || log "  cannot reset VmHWM of $target; peak is since start"
    fi
    t0=$(date +%s.%N)
    case $kind in
        copy)
            env "${target_envv[@]}" psql -X -q -v ON_ERROR_STOP=1 \
                -c "COPY ($gen) TO STDOUT" >/dev/null
            ;;
        select)
            env "${target_envv[@]}" psql -X -q -A -t -v ON_ERROR_STOP=1 -o /dev/null -c "$gen"
            ;;
    esac
    t1=$(date +%s.%N)
    local hwm=""
    [ -n "$pid" ] && hwm=$(status_kb "$pid" VmHWM)
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf 'stream\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$target" "$STREAM_ROWS" "$secs" "$base" "$hwm" >>"$results"
    log "  $kind $target: ${secs}s${hwm:+, RSS ${base} kB before, peak ${hwm} kB}"
}

if [ "$STREAM_ROWS" -gt 0 ]; then
    log "large results: $STREAM_ROWS rows of repeat('x', 1000)"
    for kind in copy select; do
        for target in direct pgbouncer redveil; do
            stream_one "$kind" "$target"
        done
    done
fi

# ---------------------------------------------------------------- idle connections

idle_one() {
    local target=$1 count=$2 pid before after
    target_env "$target"
    pid=$(target_pid "$target")
    local port user password tls_args=()
    case $target in
        pgbouncer) port=$pgb_port user=$query_user password=$query_password ;;
        redveil) port=$rv_port user=$rv_user password=$rv_password ;;
    esac
    [ "$BENCH_TLS" = on ] && tls_args=(--ca "$ca")
    sleep 1
    before=$(status_kb "$pid" VmRSS)
    local out=$tmp/idle-$target-$count.out
    : >"$out"
    "${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_idle" --count "$count" "${tls_args[@]}" \
        "host=localhost port=$port user=$user password=$password dbname=bench" >"$out" 2>&1 &
    local idle_pid=$!
    pids+=("$idle_pid")
    local waited=0
    while ! grep -q '^open ' "$out"; do
        if ! kill -0 "$idle_pid" 2>/dev/null; then
            cat "$out" >&2
            die "idle clients against $target failed"
        fi
        sleep 0.5
        waited=$((waited + 1))
        [ "$waited" -lt 600 ] || die "idle clients against $target: timed out"
    done
    sleep 2
    after=$(status_kb "$pid" VmRSS)
    kill "$idle_pid"
    wait "$idle_pid" 2>/dev/null || true
    printf 'idle\t%s\t%s\t%s\t%s\t%s\n' "$target" "$count" "$before" "$after" "$(awk '/^open / { print $4; exit }' "$out")" >>"$results"
    log "  $target: $count idle, RSS $before kB -> $after kB ($(head -n1 "$out"))"
}

for count in $IDLE_COUNTS; do
    log "idle connections: $count per proxy (TLS $BENCH_TLS)"
    for target in pgbouncer redveil; do
        idle_one "$target" "$count"
    done
done

# shellcheck source=bench/callgrind.sh
. "$repo/bench/callgrind.sh"
if [ "$CALLGRIND_N" -gt 0 ]; then
    if command -v valgrind >/dev/null; then
        callgrind_phase "$CALLGRIND_N"
    else
        log "valgrind not found: no instruction counts (scripts/install-deps.sh --bench)"
    fi
fi

printf 'meta\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

# ---------------------------------------------------------------- report

out=${OUT:-bench/RESULTS.md}
python3 bench/report.py "$results" "bench/run.sh" >"$tmp/report.md"
cp "$tmp/report.md" "$out"
written=$out
if [ -z "${OUT:-}" ]; then
    # The latest run is bench/RESULTS.md; every run is also kept under bench/results/.
    mkdir -p bench/results
    archive=bench/results/$(date +%F).md
    n=2
    while [ -e "$archive" ]; do archive=bench/results/$(date +%F)-$n.md; n=$((n + 1)); done
    cp "$tmp/report.md" "$archive"
    written="$out and $archive"
fi
cat "$out"
log "written to $written"
