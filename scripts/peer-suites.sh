#!/usr/bin/env bash
# Transparency harness (issue 18): other projects' test suites, fetched from the package
# registries, run directly against PostgreSQL 15 and through each proxy, with no data source
# registered in redveil's catalog. A test that passes directly and fails through redveil is a
# transparency bug of the proxy.
#
#   scripts/peer-suites.sh                          # every suite, every target
#   scripts/peer-suites.sh --subset ci              # a few minutes: prepare/type-cache/encoding
#   scripts/peer-suites.sh --suite asyncpg --target redveil-transaction --target direct
#   scripts/peer-suites.sh --check                  # exit 1 on a redveil failure not allowed
#                                                   # by scripts/peer_suites/expected.toml
#
# Suites (--suite, repeatable): psycopg2 (its sdist's tests/, unittest), asyncpg (its sdist's
# tests/, unittest), node (npm `pg`: skipped while the npm tarball ships no tests), regress
# (PostgreSQL 15's regression .sql files as libpg_query ships them in the pglast sdist, each
# run with psql and compared with the direct output).
# Targets (--target, repeatable): direct, redveil-session, redveil-session-fresh (session mode
# with pool.reuse = "never": a backend per client), redveil-transaction, pgbouncer
# (PgBouncer 1.18 from Debian, transaction mode). Each target gets a fresh ephemeral cluster
# (examples/bench_cluster.rs), and every client logs in as the cluster's superuser
# `postgres`: directly, through PgBouncer (its SCRAM verifier in the auth file) and through
# redveil (a [[users]] entry of that name; redveil's [backend] user is that superuser too).
#
# Downloads, the venv and results live in .peer-suites/ (gitignored); reruns are offline.
# Results: .peer-suites/results/<target>/<suite>.txt (results-ci/ for --subset ci), one failing test (or regression file
# whose output differs from the direct run's) per line, `<id><TAB><error>`, sorted, so targets
# can be diffed; <suite>.time holds the seconds the suite took. --keep also copies the suite
# runners' logs and the proxy and cluster logs there.
# Exit status: 0 unless the harness itself breaks (or, with --check, a redveil target has a
# failure that neither expected.toml nor the direct run allows).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PSYCOPG2_VERSION=2.9.13
ASYNCPG_VERSION=0.32.0
# pglast 5.x embeds libpg_query 15, whose test/sql/postgres_regress is PostgreSQL 15's.
PGLAST_VERSION=5.10
PG_NODE_VERSION=8.23.1
POOL_SIZE=${POOL_SIZE:-60}

all_suites=(psycopg2 asyncpg node regress)
all_targets=(direct redveil-session redveil-session-fresh redveil-transaction pgbouncer)

usage() {
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "usage: $0 [--suite NAME]... [--target NAME]... [--subset ci] [--keep] [--check]" >&2
}

suites=()
targets=()
subset=""
keep=0
check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --suite) suites+=("${2:?--suite NAME}"); shift 2 ;;
        --target) targets+=("${2:?--target NAME}"); shift 2 ;;
        --subset) subset=${2:?--subset ci}; shift 2 ;;
        --keep) keep=1; shift ;;
        --check) check=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage; exit 2 ;;
    esac
done
[ ${#suites[@]} -gt 0 ] || suites=("${all_suites[@]}")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for s in "${suites[@]}"; do
    [[ " ${all_suites[*]} " == *" $s "* ]] || { echo "unknown suite $s" >&2; exit 2; }
done
for t in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target $t" >&2; exit 2; }
done
case "$subset" in "" | ci) ;; *) echo "unknown subset $subset (only: ci)" >&2; exit 2 ;; esac
# The direct run is the regression suite's reference: run it first.
ordered=()
for t in "${all_targets[@]}"; do
    [[ " ${targets[*]} " == *" $t "* ]] && ordered+=("$t")
done
targets=("${ordered[@]}")

log() { printf '[peer-suites %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache=$repo/.peer-suites
dl=$cache/dl
# A subset's results (regression files run without the others before them, too) go to a
# directory of their own, compared only with the direct run of the same subset.
results=$cache/results${subset:+-$subset}
mkdir -p "$dl" "$results"
here=$repo/scripts/peer_suites

# ---------------------------------------------------------------- installation (idempotent)

./scripts/install-deps.sh --bench
pgbouncer_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

log "building redveil and bench_cluster (release)"
cargo build --release --locked --bin redveil --example bench_cluster 2>&1 | grep -v '^\s*Compiling' >&2 || true
redveil_bin=${CARGO_TARGET_DIR:-$repo/target}/release/redveil
[ -x "$redveil_bin" ] || die "cargo build failed"

# sdists by the ordinary client; pip builds their metadata once (--no-binary applies to the
# named package only, so build dependencies come as wheels).
pip_sdist() {
    local name=$1 version=$2
    if [ ! -f "$dl/$name-$version.tar.gz" ]; then
        log "downloading $name $version (sdist)"
        python3 -m pip download -q --no-deps --no-binary "$name" "$name==$version" -d "$dl" >&2
    fi
    mkdir -p "$cache/src"
    [ -d "$cache/src/$name-$version" ] || tar xzf "$dl/$name-$version.tar.gz" -C "$cache/src"
}
need_py=0
need_regress=0
for s in "${suites[@]}"; do
    case "$s" in
        psycopg2) pip_sdist psycopg2 "$PSYCOPG2_VERSION"; need_py=1 ;;
        asyncpg) pip_sdist asyncpg "$ASYNCPG_VERSION"; need_py=1 ;;
        regress) pip_sdist pglast "$PGLAST_VERSION"; need_regress=1 ;;
    esac
done
venv=$cache/venv
if [ "$need_py" -eq 1 ]; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    if ! "$venv/bin/python" -c "
import psycopg2, asyncpg, distro, sys
sys.exit(psycopg2.__version__.split()[0] != '$PSYCOPG2_VERSION' or asyncpg.__version__ != '$ASYNCPG_VERSION')
" 2>/dev/null; then
        log "installing psycopg2 $PSYCOPG2_VERSION and asyncpg $ASYNCPG_VERSION into $venv"
        "$venv/bin/pip" install -q "psycopg2==$PSYCOPG2_VERSION" >&2 ||
            "$venv/bin/pip" install -q "psycopg2-binary==$PSYCOPG2_VERSION" >&2
        "$venv/bin/pip" install -q "asyncpg==$ASYNCPG_VERSION" distro >&2
    fi
    # The tests run against the installed packages: copies of tests/ alone, so that the
    # sdists' source trees (asyncpg/ without its compiled modules) do not shadow them.
    for p in "psycopg2-$PSYCOPG2_VERSION" "asyncpg-$ASYNCPG_VERSION"; do
        if [ -d "$cache/src/$p" ] && [ ! -d "$cache/work/$p/tests" ]; then
            mkdir -p "$cache/work/$p"
            cp -r "$cache/src/$p/tests" "$cache/work/$p/"
        fi
    done
fi
regress_sql=$cache/src/pglast-$PGLAST_VERSION/libpg_query/test/sql/postgres_regress
if [ "$need_regress" -eq 1 ]; then
    [ -f "$regress_sql/create_table.sql" ] || die "no regression files in the pglast $PGLAST_VERSION sdist"
fi

# node-postgres: its tests live in the repository, not in the npm tarball.
node_note=""
if [[ " ${suites[*]} " == *" node "* ]]; then
    if [ ! -f "$dl/pg-$PG_NODE_VERSION.tgz" ]; then
        (cd "$dl" && npm pack -q "pg@$PG_NODE_VERSION" >/dev/null 2>&1) || die "npm pack pg@$PG_NODE_VERSION failed"
    fi
    if tar tzf "$dl/pg-$PG_NODE_VERSION.tgz" | grep -q '^package/test/'; then
        node_note="the npm tarball of pg@$PG_NODE_VERSION now ships test/: wire it in"
    else
        node_note="npm pg@$PG_NODE_VERSION ships no tests (only lib/, esm/), node skipped"
    fi
    log "node-postgres: $node_note"
fi

# ---------------------------------------------------------------- per-target services

tmp=$(mktemp -d /tmp/redveil-peer.XXXXXX)
chmod 755 "$tmp"
pids=()
cluster_pid=""
bench_logs=""
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

as_service() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_target() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -f "$tmp/pgbouncer/pgbouncer.pid" ]; then
        kill "$(cat "$tmp/pgbouncer/pgbouncer.pid")" 2>/dev/null || true
        rm -f "$tmp/pgbouncer/pgbouncer.pid"
    fi
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
    if [ -n "$cluster_pid" ]; then
        kill "$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
        cluster_pid=""
    fi
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_target
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a fresh cluster and the target's proxy; sets `client_env` (libpq variables of the
# connection the suites use) and `su_env` (direct superuser, for set-up).
start_target() {
    local target=$1 t=$tmp/$1
    mkdir -p "$t"
    start_cluster
    local pg_host=${backend[host]} pg_port=${backend[port]}
    local su=${backend[superuser]} su_pw=${backend[superuser_password]}
    su_env=(PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="$su" PGPASSWORD="$su_pw"
        PGSSLMODE=disable PGDATABASE=postgres)
    cp "$tmp/cluster.err" "$t/cluster.err" 2>/dev/null || true
    local port
    case "$target" in
        direct)
            client_env=(PGHOST="$pg_host" PGPORT="$pg_port") ;;
        redveil-*)
            port=$(free_port)
            local mode=${target#redveil-} reuse=affinity
            if [ "$mode" = session-fresh ]; then
                mode=session
                reuse=never
            fi
            local verifier
            verifier=$(printf '%s\n' "$su_pw" | "$redveil_bin" passwd)
            cat >"$t/redveil.toml" <<EOF
# Written by scripts/peer-suites.sh: no data source, no [control].
[listen]
address = "127.0.0.1:$port"
max_connections = 1000

[tls]
mode = "disable"

[backend]
host = "$pg_host"
port = $pg_port
database = "postgres"
user = "$su"
password = "$su_pw"

[pool]
mode = "$mode"
reuse = "$reuse"
size = $POOL_SIZE

[log]
level = "warn"

[[users]]
name = "$su"
password = "$verifier"
EOF
            "$redveil_bin" --config "$t/redveil.toml" >"$t/redveil.log" 2>&1 &
            pids+=("$!")
            client_env=(PGHOST=127.0.0.1 PGPORT="$port") ;;
        pgbouncer)
            port=$(free_port)
            mkdir -p "$t/pgbouncer"
            local su_verifier
            su_verifier=$(env "${su_env[@]}" psql -X -A -t \
                -c "SELECT rolpassword FROM pg_authid WHERE rolname = '$su'")
            printf '"%s" "%s"\n' "$su" "$su_verifier" >"$t/pgbouncer/userlist.txt"
            cat >"$t/pgbouncer/pgbouncer.ini" <<EOF
; Written by scripts/peer-suites.sh.
[databases]
* = host=$pg_host port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
pidfile = $tmp/pgbouncer/pgbouncer.pid
logfile = $t/pgbouncer/pgbouncer.log
auth_type = scram-sha-256
auth_file = $t/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = disable
EOF
            mkdir -p "$tmp/pgbouncer"
            if [ "$(id -u)" -eq 0 ]; then
                chown -R postgres "$t/pgbouncer" "$tmp/pgbouncer"
            fi
            as_service "$pgbouncer_bin" "$t/pgbouncer/pgbouncer.ini" 2>>"$t/pgbouncer/pgbouncer.err" &
            pids+=("$!")
            client_env=(PGHOST=127.0.0.1 PGPORT="$port") ;;
    esac
    client_env+=(PGUSER="$su" PGPASSWORD="$su_pw" PGSSLMODE=disable)
    wait_sql PostgreSQL "${su_env[@]}"
    for _ in $(seq 1 50); do
        env "${client_env[@]}" PGDATABASE=postgres psql -X -q -t -c 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- suites

# Failing-test lines from the runner, sorted by id (the runner writes them as they happen).
sort_fails() { LC_ALL=C sort -o "$1" "$1"; }

run_psycopg2() {
    local target=$1 out=$2 logf=$3
    env "${su_env[@]}" psql -X -q -c 'CREATE DATABASE psycopg2_test' >/dev/null
    local sel=()
    if [ "$subset" = ci ]; then
        sel=(--select test_quote --select test_connection:encod,unicode,Encod,Unicode)
    fi
    local pghost pgport
    pghost=$(printf '%s\n' "${client_env[@]}" | sed -n 's/^PGHOST=//p')
    pgport=$(printf '%s\n' "${client_env[@]}" | sed -n 's/^PGPORT=//p')
    env "${client_env[@]}" PSYCOPG2_TESTDB=psycopg2_test PSYCOPG2_TESTDB_HOST="$pghost" \
        PSYCOPG2_TESTDB_PORT="$pgport" PSYCOPG2_TESTDB_USER=postgres \
        timeout -k 10 1500 "$venv/bin/python" "$here/unittest_runner.py" \
        --top "$cache/work/psycopg2-$PSYCOPG2_VERSION" --out "$out" --timeout 120 "${sel[@]}" \
        >"$logf.summary" 2>"$logf"
}

run_asyncpg() {
    local target=$1 out=$2 logf=$3
    local sel=()
    if [ "$subset" = ci ]; then
        sel=(--select test_prepare --select test_cache_invalidation)
    fi
    env "${client_env[@]}" PGDATABASE=postgres \
        timeout -k 10 1800 "$venv/bin/python" "$here/unittest_runner.py" \
        --top "$cache/work/asyncpg-$ASYNCPG_VERSION" --out "$out" --timeout 120 "${sel[@]}" \
        >"$logf.summary" 2>"$logf"
}

run_regress() {
    local target=$1 out=$2 logf=$3
    env "${su_env[@]}" psql -X -q -c "CREATE DATABASE regression TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
    local only=() dir=regress
    [ "$subset" = ci ] && only=(--only "$here/regress_ci.txt")
    rm -rf "${results:?}/$target/$dir"
    env "${client_env[@]}" PGDATABASE=regression "$venv_python" "$here/regress.py" run \
        --sql-dir "$regress_sql" --schedule "$here/regress_schedule" \
        --out-dir "$results/$target/$dir" "${only[@]}" >"$logf.summary" 2>"$logf"
    if [ "$target" = direct ]; then
        : >"$out"
        sed -i 's/.*files in.*/& (the reference)/' "$logf.summary"
    else
        [ -d "$results/direct/$dir" ] || { log "regress: no direct run to compare with (add --target direct)"; return 1; }
        "$venv_python" "$here/regress.py" compare --ref "$results/direct/$dir" \
            --out-dir "$results/$target/$dir" --fails "$out" >>"$logf.summary"
    fi
}
venv_python=$venv/bin/python
[ -x "$venv_python" ] || venv_python=python3

# ---------------------------------------------------------------- main loop

t_start=$(date +%s)
for target in "${targets[@]}"; do
    log "target $target: starting a fresh cluster and the target"
    mkdir -p "$results/$target"
    rm -rf "${results:?}/$target/logs"
    started=1
    start_target "$target" || started=0
    for suite in "${suites[@]}"; do
        out=$results/$target/$suite.txt
        rm -f "$out" "$results/$target/$suite.time" "$results/$target/$suite.status"
        if [ "$suite" = node ]; then
            echo "skipped: $node_note" >"$results/$target/$suite.status"
            continue
        fi
        if [ "$started" -eq 0 ]; then
            log "target $target did not start: see its logs"
            echo "no start" >"$results/$target/$suite.status"
            continue
        fi
        logf=$tmp/$target/$suite.log
        log "target $target: suite $suite${subset:+ (subset $subset)}"
        t0=$(date +%s)
        rc=0
        "run_$suite" "$target" "$out" "$logf" || rc=$?
        echo $(($(date +%s) - t0)) >"$results/$target/$suite.time"
        touch "$out"
        sort_fails "$out"
        summary=$(tail -n 1 "$logf.summary" 2>/dev/null || true)
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "timeout (partial)" >"$results/$target/$suite.status"
        elif [ -z "$summary" ]; then
            echo "broken (rc $rc)" >"$results/$target/$suite.status"
            log "suite $suite on $target broke (rc $rc):"
            tail -n 20 "$logf" >&2 || true
        fi
        log "  $suite on $target: ${summary:-no summary} ($(cat "$results/$target/$suite.time")s)"
        if [ "$keep" -eq 1 ]; then
            mkdir -p "$results/$target/logs"
            cp "$logf" "$logf.summary" "$results/$target/logs/" 2>/dev/null || true
        fi
    done
    if [ "$keep" -eq 1 ]; then
        mkdir -p "$results/$target/logs"
        cp -r "$tmp/$target/." "$results/$target/logs/" 2>/dev/null || true
    fi
    stop_target
done
log "all done in $(($(date +%s) - t_start))s"

report_args=(--results "$results" --suites "${suites[*]}" --targets "${targets[*]}" --subset "$subset")
[ "$check" -eq 1 ] && report_args+=(--check "$here/expected.toml")
python3 "$here/report.py" "${report_args[@]}"
