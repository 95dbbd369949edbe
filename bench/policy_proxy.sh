#!/usr/bin/env bash
# The policy-view workload end to end: pgbench primary-key lookups on `hr.employees` as
# `analyst` through redveil (rewritten to the policy view `immuta.hr_employees`), with
# `pool.cache_rewritten_plans` on and off, against the same statement on the raw table
# directly. One ephemeral PostgreSQL with the demo dataset and catalog; see bench/README.md.
#
#   bench/policy_proxy.sh                  # defaults below
#   ROUNDS=3 DURATION=20 bench/policy_proxy.sh
#
# Environment knobs (defaults in brackets):
#   CLIENTS [10]      pgbench clients
#   JOBS [2]          pgbench worker threads
#   DURATION [15]     seconds per pgbench run
#   ROUNDS [1]        repetitions of the whole matrix, interleaved; the table shows medians
#   POOL_SIZE [10]    backend connections of each redveil instance
#   BENCH_TLS [on]    TLS between pgbench and redveil (off: cleartext); direct is cleartext
#   OUT [bench/results/<date>-policy.md]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CLIENTS=${CLIENTS:-10}
JOBS=${JOBS:-2}
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-1}
POOL_SIZE=${POOL_SIZE:-10}
BENCH_TLS=${BENCH_TLS:-on}

log() { printf '[policy-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- set-up and clean-up

./scripts/install-deps.sh --bench
command -v pgbench >/dev/null || die "pgbench not found (Debian: postgresql-client)"
command -v python3 >/dev/null || die "python3 not found"

log "building redveil (release)"
cargo build --release --locked --bin redveil --example bench_cluster
redveil_bin=${CARGO_TARGET_DIR:-$repo/target}/release/redveil

tmp=$(mktemp -d /tmp/redveil-policy-bench.XXXXXX)
pids=()
cluster_pid=""

bench_logs="redveil-cache.log redveil-nocache.log cluster.err"
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
log "PostgreSQL on $pg_host:$pg_port, database $database"

./certs/make-dev-certs.sh "$tmp/certs" >/dev/null
if [ "$BENCH_TLS" = on ]; then
    rv_tls_mode=require proxy_sslmode=require
else
    rv_tls_mode=disable proxy_sslmode=disable
fi

# ---------------------------------------------------------------- redveil, plan cache on and off

# One instance per setting, so no run waits for a restart; the idle one costs nothing.
start_redveil() {
    local name=$1 cache=$2 port=$3
    {
        echo "# Written by bench/policy_proxy.sh."
        redveil_config "$port" "$database" "$POOL_SIZE" "" "cache_rewritten_plans = $cache"
        # [control], the demo users and data sources, exactly as `redveil demo` has them.
        cat "$tmp/catalog.toml"
    } >"$tmp/redveil-$name.toml"
    log "starting redveil ($name: cache_rewritten_plans = $cache) on 127.0.0.1:$port (pool $POOL_SIZE, TLS $BENCH_TLS)"
    "$redveil_bin" --config "$tmp/redveil-$name.toml" >"$tmp/redveil-$name.log" 2>&1 &
    pids+=("$!")
    printf -v "rv_${name}_pid" '%s' "$!"
    wait_sql "redveil ($name)" PGHOST=127.0.0.1 PGPORT="$port" PGUSER=analyst \
        PGPASSWORD=analyst PGDATABASE="$database" PGSSLMODE="$proxy_sslmode"
}
rv_cache_pid="" rv_nocache_pid=""
cache_port=$(free_port)
# Started one after the other: each syncs the catalog at start (the second finds nothing to do).
start_redveil cache true "$cache_port"
nocache_port=$(free_port)
start_redveil nocache false "$nocache_port"

# The system role, which is also the catalog's [control] role (examples/bench_cluster.rs).
raw_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[system_user]}"
    PGPASSWORD="${backend[system_password]}" PGDATABASE="$database" PGSSLMODE=disable)
# The views find their user only by looking the pinned `immuta.token` up in
# immuta_system.session_tokens (src/policy/tokens.rs), which only the system role reads. The
# proxies' sync wrote a token per catalog user when they started (one set per proxy instance,
# valid while it runs); take analyst's own (not an impersonation's) to pin directly.
analyst_token=$(env "${raw_env[@]}" psql -X -A -t -v ON_ERROR_STOP=1 -c \
    "SELECT token FROM immuta_system.session_tokens
     WHERE user_name = 'analyst' AND NOT impersonation ORDER BY token LIMIT 1") ||
    die "cannot read analyst's token from immuta_system.session_tokens"
[[ $analyst_token =~ ^[0-9a-f]+$ ]] || die "no token for analyst in immuta_system.session_tokens"
# The view without the proxy: the query role, with analyst's token pinned for the session
# (a session-level setting, as the proxy's set_config('immuta.token', $1, false) is), at
# connect time so the measured statements are the same lookups as before.
view_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="${backend[query_user]}"
    PGPASSWORD="${backend[query_password]}" PGDATABASE="$database" PGSSLMODE=disable
    PGOPTIONS="-c immuta.token=$analyst_token")
rv_cache_env=(PGHOST=127.0.0.1 PGPORT="$cache_port" PGUSER=analyst PGPASSWORD=analyst
    PGDATABASE="$database" PGSSLMODE="$proxy_sslmode")
rv_nocache_env=(PGHOST=127.0.0.1 PGPORT="$nocache_port" PGUSER=analyst PGPASSWORD=analyst
    PGDATABASE="$database" PGSSLMODE="$proxy_sslmode")

target_env() {
    case $1 in
        raw) target_envv=("${raw_env[@]}") ;;
        view) target_envv=("${view_env[@]}") ;;
        rv_cache) target_envv=("${rv_cache_env[@]}") ;;
        rv_nocache) target_envv=("${rv_nocache_env[@]}") ;;
    esac
}
target_pid() {
    case $1 in
        rv_cache) echo "$rv_cache_pid" ;;
        rv_nocache) echo "$rv_nocache_pid" ;;
        *) echo "" ;;
    esac
}

# What each target sees: the raw table has every row unmasked; analyst's view, through the
# proxy or not, only the EU third with ssn NULL. Anything else means the bench measures the
# wrong thing.
check_sees() {
    local target=$1 expected=$2 got
    target_env "$target"
    got=$(env "${target_envv[@]}" psql -X -A -t -v ON_ERROR_STOP=1 \
        -c "SELECT count(*), count(ssn) FROM hr.employees" 2>&1 | tr '|' ' ') ||
        die "$target: $got"
    [ "$got" = "$expected" ] || die "$target sees '$got' of hr.employees (count, count(ssn)), expected '$expected'"
}
rows=$(env "${raw_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees")
eu_rows=$(env "${raw_env[@]}" psql -X -A -t -c "SELECT count(*) FROM hr.employees WHERE region = 'EU'")
check_sees raw "$rows $rows"
# The query role reads the view by its own name; hr.employees is out of its reach.
view_check=$(env "${view_env[@]}" psql -X -A -t -v ON_ERROR_STOP=1 \
    -c "SELECT count(*), count(ssn) FROM immuta.hr_employees" | tr '|' ' ')
[ "$view_check" = "$eu_rows 0" ] || die "policy view as analyst: '$view_check', expected '$eu_rows 0'"
check_sees rv_cache "$eu_rows 0"
check_sees rv_nocache "$eu_rows 0"
log "analyst sees $eu_rows of $rows rows, ssn masked, through both proxies and the view"

printf '\\set id random(1, 10000)\nSELECT * FROM hr.employees WHERE id = :id;\n' >"$tmp/raw.sql"
printf '\\set id random(1, 10000)\nSELECT * FROM immuta.hr_employees WHERE id = :id;\n' >"$tmp/view.sql"
script_of() {
    case $1 in
        view) echo "$tmp/view.sql" ;;
        *) echo "$tmp/raw.sql" ;;
    esac
}

results=$tmp/results.tsv
: >"$results"
{
    printf 'meta\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'meta\tcommit\t%s\n' "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (dirty)')"
    printf 'meta\tcpu\t%s × %s\n' "$(nproc)" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'meta\tkernel\t%s\n' "$(uname -r)"
    printf 'meta\tpostgres\t%s\n' "$(env "${raw_env[@]}" psql -X -A -t -c 'SHOW server_version')"
    printf 'meta\tpgbench\t%s\n' "$(pgbench --version)"
    printf 'meta\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'meta\tsettings\tCLIENTS=%s JOBS=%s DURATION=%s ROUNDS=%s POOL_SIZE=%s BENCH_TLS=%s\n' \
        "$CLIENTS" "$JOBS" "$DURATION" "$ROUNDS" "$POOL_SIZE" "$BENCH_TLS"
} >>"$results"

# ---------------------------------------------------------------- pgbench

run_pgbench() {
    local mode=$1 target=$2 round=$3
    local pid cpu0=0 cpu1=0 out dir=$tmp/pgbench-logs/$mode-$target-$round script
    mkdir -p "$dir"
    target_env "$target"
    pid=$(target_pid "$target")
    script=$(script_of "$target")
    [ -n "$pid" ] && cpu0=$(cpu_ticks "$pid")
    out=$(cd "$dir" && env "${target_envv[@]}" pgbench -n -M "$mode" -c "$CLIENTS" \
        -j "$JOBS" -T "$DURATION" -f "$script" -l --log-prefix=tx 2>&1) ||
        { printf '%s\n' "$out" >&2; die "pgbench $mode against $target failed"; }
    [ -n "$pid" ] && cpu1=$(cpu_ticks "$pid")
    local tps lat tx p99 cpu_s=""
    tps=$(awk '/^tps = / { print $3 }' <<<"$out")
    lat=$(awk '/^latency average = / { print $4 }' <<<"$out")
    tx=$(awk '/^number of transactions actually processed:/ { print $6 }' <<<"$out")
    p99=$(python3 "$repo/bench/percentile.py" 99 "$dir"/tx.*)
    rm -rf "$dir"
    [ -n "$pid" ] && cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$clk_tck" 'BEGIN { printf "%.3f", (b - a) / t }')
    printf 'policy\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$mode" "$target" "$round" "$tps" "$lat" "$p99" "$tx" "$cpu_s" >>"$results"
    log "  $mode $target: $tps tps, $lat ms mean, $p99 ms p99${cpu_s:+, proxy CPU ${cpu_s}s}"
}

log "warm-up (3 s per target)"
for target in raw view rv_cache rv_nocache; do
    target_env "$target"
    (cd "$tmp" && env "${target_envv[@]}" pgbench -n -M extended -c "$CLIENTS" -j "$JOBS" -T 3 \
        -f "$(script_of "$target")" >/dev/null 2>&1) || die "warm-up against $target failed"
done

for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS: $CLIENTS clients, ${DURATION}s per run"
    for target in raw view rv_cache rv_nocache; do
        run_pgbench extended "$target" "$round"
    done
    # -M prepared: the client's own named statements, prepared once per backend connection
    # whatever cache_rewritten_plans says, so one redveil row.
    for target in raw view rv_cache; do
        run_pgbench prepared "$target" "$round"
    done
done

printf 'meta\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

# ---------------------------------------------------------------- report

mkdir -p bench/results
out=${OUT:-bench/results/$(date +%F)-policy.md}
if [ -z "${OUT:-}" ] && [ -e "$out" ]; then
    n=2
    while [ -e "bench/results/$(date +%F)-policy-$n.md" ]; do n=$((n + 1)); done
    out=bench/results/$(date +%F)-policy-$n.md
fi
python3 bench/policy_report.py "$results" "bench/policy_proxy.sh" >"$out"
cat "$out"
log "written to $out"
