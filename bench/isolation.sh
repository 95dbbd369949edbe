#!/usr/bin/env bash
# What isolating backend connections by identity costs: users alternating on a small pool
# against one user, through redveil (transaction mode), with the pool's own counters read
# from its Prometheus endpoint (`[metrics] listen`). See bench/README.md.
#
#   bench/isolation.sh                          # defaults below
#   DURATION=10 ROUNDS=2 bench/isolation.sh
#
# Shapes, each DURATION seconds, interleaved within every round:
#   direct      one pgbench, CLIENTS clients, straight to PostgreSQL (no proxy; baseline)
#   one         one pgbench, CLIENTS clients, as `analyst`
#   one_split   two pgbench processes of CLIENTS/2, both as `analyst` (the control: the same
#               process layout as `two`, one identity)
#   two         two pgbench processes of CLIENTS/2, as `analyst` and as `admin`: two
#               identities on the same pool, so connections go back and forth between them
# Workloads: `-S` (pgbench's select-only on pgbench_accounts, a table no policy covers) and
# the policy-view lookup on hr.employees (rewritten to the user's class view), each in the
# modes of MODES.
#
# Environment knobs (defaults in brackets):
#   CLIENTS [10]          pgbench clients per shape (split in two for one_split and two)
#   JOBS [2]              pgbench threads per shape (split likewise)
#   DURATION [15]         seconds per pgbench run
#   ROUNDS [1]            repetitions of the matrix, interleaved; the table shows medians
#   POOL_SIZE [2]         redveil's backend connections (the small pool)
#   MODES [simple extended prepared]
#   WORKLOADS [select policy]
#   SCALE [1]             pgbench -i scale in database demo
#   BENCH_TLS [on]        TLS between pgbench and redveil (off: cleartext); direct is cleartext
#   OUT [bench/results/<date>-isolation.md]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CLIENTS=${CLIENTS:-10}
JOBS=${JOBS:-2}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-1}
POOL_SIZE=${POOL_SIZE:-2}
MODES=${MODES:-simple extended prepared}
WORKLOADS=${WORKLOADS:-select policy}
SCALE=${SCALE:-1}
BENCH_TLS=${BENCH_TLS:-on}

log() { printf '[isolation-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$CLIENTS" -ge 2 ] || die "CLIENTS must be at least 2 (two processes share them)"
half_clients=$((CLIENTS / 2))
half_jobs=$(((JOBS + 1) / 2))
[ "$half_jobs" -le "$half_clients" ] || half_jobs=$half_clients

# ---------------------------------------------------------------- set-up and clean-up

# PostgreSQL server and client; pgbench comes with Debian's client package
# (`scripts/install-deps.sh --bench` also installs PgBouncer, which this bench does not use).
./scripts/install-deps.sh
command -v pgbench >/dev/null || die "pgbench not found (scripts/install-deps.sh --bench)"
command -v python3 >/dev/null || die "python3 not found"

log "building redveil (release)"
cargo build --release --locked --bin redveil --example bench_cluster
redveil_bin=${CARGO_TARGET_DIR:-$repo/target}/release/redveil

tmp=$(mktemp -d /tmp/redveil-isolation-bench.XXXXXX)
pids=()
cluster_pid=""

bench_logs="redveil.log cluster.err"
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------- the backend

log "starting the ephemeral PostgreSQL (demo dataset and catalog, raw access revoked)"
start_cluster
pg_host=${backend[host]}
pg_port=${backend[port]}
database=${backend[database]}
su_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[superuser]}"
    PGPASSWORD="${backend[superuser_password]}" PGDATABASE="$database" PGSSLMODE=disable)
log "PostgreSQL on $pg_host:$pg_port, database $database"

# pgbench's tables in the demo database itself: one pool (per database) serves both workloads.
log "pgbench -i -s $SCALE in database $database"
env "${su_env[@]}" pgbench -i -s "$SCALE" -q "$database" 2>"$tmp/pgbench-init.log" ||
    { cat "$tmp/pgbench-init.log" >&2; die "pgbench -i failed"; }
env "${su_env[@]}" psql -X -q -v ON_ERROR_STOP=1 \
    -c "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO ${backend[query_user]}" >/dev/null

./certs/make-dev-certs.sh "$tmp/certs" >/dev/null
if [ "$BENCH_TLS" = on ]; then
    rv_tls_mode=require proxy_sslmode=require
else
    rv_tls_mode=disable proxy_sslmode=disable
fi

# ---------------------------------------------------------------- redveil, small pool, /metrics

start_redveil_with_metrics isolation.sh
log "started redveil on 127.0.0.1:$rv_port (pool $POOL_SIZE, TLS $BENCH_TLS, metrics on :$metrics_port)"

# The demo users log in with password = name.
user_env() {
    user_envv=(PGHOST=127.0.0.1 PGPORT="$rv_port" PGUSER="$1" PGPASSWORD="$1"
        PGDATABASE="$database" PGSSLMODE="$proxy_sslmode")
}
wait_sql redveil PGHOST=127.0.0.1 PGPORT="$rv_port" PGUSER=analyst PGPASSWORD=analyst \
    PGDATABASE="$database" PGSSLMODE="$proxy_sslmode"
metrics_url=http://127.0.0.1:$metrics_port/metrics
# grep -q would stop reading at the match and, under pipefail, fail the pipe with the writer's EPIPE.
python3 bench/isolation_report.py scrape "$metrics_url" | grep '^redveil_connections_total' >/dev/null ||
    die "no redveil_connections_total at $metrics_url"

# Direct: `-S` as the query role; the policy lookup on the raw table as the system role
# (the query role may not read it).
direct_select_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[query_user]}"
    PGPASSWORD="${backend[query_password]}" PGDATABASE="$database" PGSSLMODE=disable)
direct_policy_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[system_user]}"
    PGPASSWORD="${backend[system_password]}" PGDATABASE="$database" PGSSLMODE=disable)

# What each user sees: analyst the EU third with ssn masked, admin (group hr) everything.
# Anything else means the bench measures the wrong thing.
sees() {
    env "$@" psql -X -A -t -v ON_ERROR_STOP=1 \
        -c "SELECT count(*), count(ssn) FROM hr.employees" 2>&1 | tr '|' ' '
}
rows=$(env "${direct_policy_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees")
eu_rows=$(env "${direct_policy_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees WHERE region = 'EU'")
user_env analyst
got=$(sees "${user_envv[@]}")
[ "$got" = "$eu_rows 0" ] || die "analyst sees '$got' of hr.employees, expected '$eu_rows 0'"
user_env admin
got=$(sees "${user_envv[@]}")
[ "$got" = "$rows $rows" ] || die "admin sees '$got' of hr.employees, expected '$rows $rows'"
log "through redveil: analyst sees $eu_rows of $rows rows (ssn masked), admin all of them"

printf '\\set id random(1, 10000)\nSELECT * FROM hr.employees WHERE id = :id;\n' >"$tmp/policy.sql"
workload_args() {
    case $1 in
        select) workload_argv=(-b select-only) ;;
        policy) workload_argv=(-f "$tmp/policy.sql") ;;
    esac
}

results=$tmp/results.tsv
: >"$results"
{
    printf 'meta\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'meta\tcommit\t%s\n' "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench || echo ' (dirty)')"
    printf 'meta\tcpu\t%s × %s\n' "$(nproc)" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'meta\tkernel\t%s\n' "$(uname -r)"
    printf 'meta\tpostgres\t%s\n' "$(env "${su_env[@]}" psql -X -A -t -c 'SHOW server_version')"
    printf 'meta\tpgbench\t%s\n' "$(pgbench --version)"
    printf 'meta\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'meta\tsettings\tCLIENTS=%s JOBS=%s DURATION=%s ROUNDS=%s POOL_SIZE=%s MODES="%s" WORKLOADS="%s" SCALE=%s BENCH_TLS=%s\n' \
        "$CLIENTS" "$JOBS" "$DURATION" "$ROUNDS" "$POOL_SIZE" "$MODES" "$WORKLOADS" "$SCALE" "$BENCH_TLS"
} >>"$results"

# ---------------------------------------------------------------- pgbench

# One pgbench process in the background; its output goes to $tmp/out.<tag>.
start_pgbench() {
    local tag=$1 mode=$2 clients=$3 jobs=$4
    shift 4
    (cd "$tmp" && env "$@" pgbench -n -M "$mode" -c "$clients" -j "$jobs" -T "$DURATION" \
        "${workload_argv[@]}" >"$tmp/out.$tag" 2>&1) &
    bench_pids+=("$!")
}

# The counters of the proxy's endpoint, as `record`s of the run, before or after it.
scrape() {
    local phase=$1 workload=$2 mode=$3 shape=$4 round=$5
    python3 bench/isolation_report.py scrape "$metrics_url" |
        awk -v p="$phase" -v w="$workload" -v m="$mode" -v s="$shape" -v r="$round" \
            'BEGIN { OFS = "\t" } { print "metric", w, m, s, r, p, $1, $2 }' >>"$results"
}

run_shape() {
    local workload=$1 mode=$2 shape=$3 round=$4
    local cpu0=0 cpu1=0 tag failed=0
    workload_args "$workload"
    bench_pids=()
    rm -f "$tmp"/out.*
    if [ "$shape" != direct ]; then
        scrape before "$workload" "$mode" "$shape" "$round"
        cpu0=$(cpu_ticks "$rv_pid")
    fi
    case $shape in
        direct)
            if [ "$workload" = select ]; then
                start_pgbench a "$mode" "$CLIENTS" "$JOBS" "${direct_select_env[@]}"
            else
                start_pgbench a "$mode" "$CLIENTS" "$JOBS" "${direct_policy_env[@]}"
            fi
            ;;
        one)
            user_env analyst
            start_pgbench a "$mode" "$CLIENTS" "$JOBS" "${user_envv[@]}"
            ;;
        one_split)
            user_env analyst
            start_pgbench a "$mode" "$half_clients" "$half_jobs" "${user_envv[@]}"
            start_pgbench b "$mode" "$half_clients" "$half_jobs" "${user_envv[@]}"
            ;;
        two)
            user_env analyst
            start_pgbench a "$mode" "$half_clients" "$half_jobs" "${user_envv[@]}"
            user_env admin
            start_pgbench b "$mode" "$half_clients" "$half_jobs" "${user_envv[@]}"
            ;;
    esac
    for pid in "${bench_pids[@]}"; do
        wait "$pid" || failed=1
    done
    if [ "$shape" != direct ]; then
        cpu1=$(cpu_ticks "$rv_pid")
        scrape after "$workload" "$mode" "$shape" "$round"
    fi
    [ "$failed" -eq 0 ] || { cat "$tmp"/out.* >&2; die "pgbench $workload $mode $shape failed"; }
    local cpu_s=""
    if [ "$shape" != direct ]; then
        cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$clk_tck" 'BEGIN { printf "%.3f", (b - a) / t }')
    fi
    # One record per pgbench process; the report sums TPS and weighs latencies by transactions.
    for out in "$tmp"/out.*; do
        tag=${out##*.}
        local tps lat tx
        tps=$(awk '/^tps = / { print $3 }' "$out")
        lat=$(awk '/^latency average = / { print $4 }' "$out")
        tx=$(awk '/^number of transactions actually processed:/ { print $6 }' "$out")
        printf 'run\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
            "$workload" "$mode" "$shape" "$round" "$tag" "$tps" "$lat" "$tx" "$cpu_s" >>"$results"
    done
    log "  $workload $mode $shape: $(awk '/^tps = / { printf "%s%s", sep, $3; sep = " + " }' "$tmp"/out.*) tps${cpu_s:+, proxy CPU ${cpu_s}s}"
}

log "warm-up (3 s per workload, through redveil)"
for workload in $WORKLOADS; do
    workload_args "$workload"
    user_env analyst
    (cd "$tmp" && env "${user_envv[@]}" pgbench -n -M extended -c "$CLIENTS" -j "$JOBS" -T 3 \
        "${workload_argv[@]}" >/dev/null 2>&1) || die "warm-up of $workload failed"
done

for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS: $CLIENTS clients, pool $POOL_SIZE, ${DURATION}s per run"
    for mode in $MODES; do
        for workload in $WORKLOADS; do
            for shape in direct one one_split two; do
                run_shape "$workload" "$mode" "$shape" "$round"
            done
        done
    done
done

printf 'meta\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

# ---------------------------------------------------------------- report

mkdir -p bench/results
out=${OUT:-bench/results/$(date +%F)-isolation.md}
if [ -z "${OUT:-}" ] && [ -e "$out" ]; then
    n=2
    while [ -e "bench/results/$(date +%F)-isolation-$n.md" ]; do n=$((n + 1)); done
    out=bench/results/$(date +%F)-isolation-$n.md
fi
python3 bench/isolation_report.py report "$results" "bench/isolation.sh" >"$out"
cat "$out"
log "written to $out"
