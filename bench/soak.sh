#!/usr/bin/env bash
# Soak test: a mixed workload through redveil for minutes, with a backend restart in the
# middle; reports the proxy's RSS over time, throughput, errors by SQLSTATE per phase,
# recovery time after the restart and hangs. See bench/README.md.
#
#   bench/soak.sh                 # 16 clients, 10 minutes
#   bench/soak.sh --quick         # 1 minute
#   bench/soak.sh --minutes 30 --clients 32
#
# Options (environment variables in brackets):
#   --minutes M [MINUTES=10]     duration of the workload
#   --quick                      --minutes 1
#   --clients N [CLIENTS=16]     concurrent client threads
#   --pool N [POOL_SIZE=8]       redveil's backend connections (transaction mode)
#   --down S [DOWN=5]            seconds the backend stays stopped in the middle
#   --deadline S [DEADLINE=30]   a statement running longer than this counts as a hang
#   --sample S [SAMPLE=5]        seconds between RSS samples
#   BENCH_TLS [on]               TLS between the clients and redveil (verify-full)
#   OUT [bench/results/<date>-soak.md]
#
# The workload (bench/soak.py, psycopg 3 from a virtualenv this script builds once under
# ~/.cache/redveil, or the project's .venv-clients when it has psycopg): the demo users
# `analyst`, `bi_service` and `admin` on `hr.employees` in the simple and extended protocols,
# protocol-level and SQL-level prepared statements, impersonation and back, refused
# statements, failing and rolled-back transactions, savepoints, COPY (…) TO STDOUT, large
# results, and clients that vanish mid-result or after a Parse without Sync. Half-way, the
# backend is stopped (`pg_ctl stop -m fast`) and started again after --down seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

MINUTES=${MINUTES:-10}
CLIENTS=${CLIENTS:-16}
POOL_SIZE=${POOL_SIZE:-8}
DOWN=${DOWN:-5}
DEADLINE=${DEADLINE:-30}
SAMPLE=${SAMPLE:-5}
BENCH_TLS=${BENCH_TLS:-on}
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) MINUTES=$2; shift 2 ;;
        --quick) MINUTES=1; shift ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --pool) POOL_SIZE=$2; shift 2 ;;
        --down) DOWN=$2; shift 2 ;;
        --deadline) DEADLINE=$2; shift 2 ;;
        --sample) SAMPLE=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
seconds=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')

log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- set-up and clean-up

./scripts/install-deps.sh
command -v python3 >/dev/null || die "python3 not found"

# psycopg 3: the client suite's virtualenv when it has it, else one of our own, built once.
python=""
if [ -x .venv-clients/bin/python ] && .venv-clients/bin/python -c 'import psycopg' 2>/dev/null; then
    python=.venv-clients/bin/python
else
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/redveil/soak-venv
    psycopg_req=$(grep -m1 '^psycopg\[binary\]==' tests/clients/python/requirements.txt)
    if ! [ -x "$venv/bin/python" ] || [ "$(cat "$venv/.redveil-stamp" 2>/dev/null)" != "$psycopg_req" ]; then
        log "building $venv ($psycopg_req)"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input "$psycopg_req"
        echo "$psycopg_req" >"$venv/.redveil-stamp"
    fi
    python=$venv/bin/python
fi

log "building redveil (release)"
cargo build --release --locked --bin redveil --example bench_cluster
redveil_bin=${CARGO_TARGET_DIR:-$repo/target}/release/redveil

tmp=$(mktemp -d /tmp/redveil-soak.XXXXXX)
chmod 755 "$tmp"
pids=()
cluster_pid=""

bench_logs="redveil.log cluster.err soak.err"
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- the backend and redveil

log "starting the ephemeral PostgreSQL (demo dataset and catalog, raw access revoked)"
start_cluster
database=${backend[database]}
log "PostgreSQL on ${backend[host]}:${backend[port]}, database $database"

./certs/make-dev-certs.sh "$tmp/certs" >/dev/null
if [ "$BENCH_TLS" = on ]; then
    rv_tls_mode=require proxy_ssl="sslmode=verify-full sslrootcert=$tmp/certs/ca.crt"
else
    rv_tls_mode=disable proxy_ssl="sslmode=disable"
fi

start_redveil_with_metrics soak.sh
log "started redveil on 127.0.0.1:$rv_port (transaction mode, pool $POOL_SIZE, TLS $BENCH_TLS)"
wait_sql redveil PGHOST=127.0.0.1 PGPORT="$rv_port" PGUSER=analyst PGPASSWORD=analyst \
    PGDATABASE="$database" PGSSLMODE=require

# ---------------------------------------------------------------- the workload

mkdir -p bench/results
out=${OUT:-bench/results/$(date +%F)-soak.md}
if [ -z "${OUT:-}" ] && [ -e "$out" ]; then
    n=2
    while [ -e "bench/results/$(date +%F)-soak-$n.md" ]; do n=$((n + 1)); done
    out=bench/results/$(date +%F)-soak-$n.md
fi
su_dsn="host=${backend[host]} port=${backend[port]} dbname=$database user=${backend[superuser]} password=${backend[superuser_password]} sslmode=disable"
command_line="bench/soak.sh${args[*]:+ ${args[*]}}"
log "$CLIENTS clients for $MINUTES min; the backend stops for ${DOWN}s half-way"
"$python" bench/soak.py \
    --dsn-proxy "host=127.0.0.1 port=$rv_port dbname=$database $proxy_ssl" \
    --dsn-super "$su_dsn" --proxy-pid "$rv_pid" --metrics "http://127.0.0.1:$metrics_port/metrics" \
    --clients "$CLIENTS" --seconds "$seconds" --sample-seconds "$SAMPLE" --deadline "$DEADLINE" \
    --tsv "$tmp/samples.tsv" --report "$tmp/report.md" \
    --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "command=\`MINUTES=$MINUTES CLIENTS=$CLIENTS POOL_SIZE=$POOL_SIZE DOWN=$DOWN DEADLINE=$DEADLINE BENCH_TLS=$BENCH_TLS $command_line\`" \
    --meta "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench examples || echo ' (dirty)')" \
    --meta "cores=$(nproc)" \
    --meta "cpu=$(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)" \
    --meta "postgres=$(env PGHOST="${backend[host]}" PGPORT="${backend[port]}" PGUSER="${backend[superuser]}" PGPASSWORD="${backend[superuser_password]}" PGDATABASE="$database" PGSSLMODE=disable psql -X -A -t -c 'SHOW server_version')" \
    --meta "settings=redveil transaction mode, pool $POOL_SIZE, TLS $BENCH_TLS (verify-full), SCRAM; backend down ${DOWN}s half-way; hang deadline ${DEADLINE}s" \
    --meta "load_start=$(cut -d' ' -f1-3 /proc/loadavg)" \
    >"$tmp/soak.out" 2>"$tmp/soak.err" &
soak_pid=$!
pids+=("$soak_pid")
tail -n +1 -f "$tmp/soak.err" --pid "$soak_pid" >&2 &
pids+=("$!")

# Half-way: stop the backend, hold it down, start it again; the driver gets the phase
# changes as signals. The cluster's pipes belong to this shell, so this runs here.
half=$((seconds / 2))
for _ in $(seq 1 "$half"); do
    kill -0 "$soak_pid" 2>/dev/null || break
    sleep 1
done
if kill -0 "$soak_pid" 2>/dev/null; then
    log "restart: stopping the backend (pg_ctl stop -m fast)"
    kill -USR1 "$soak_pid"
    cluster_command stop
    sleep "$DOWN"
    log "restart: starting the backend"
    cluster_command start
    kill -USR2 "$soak_pid"
    log "restart: the backend accepts connections again"
fi
wait "$soak_pid" || { cat "$tmp/soak.out"; die "the workload failed"; }

if ! kill -0 "$rv_pid" 2>/dev/null; then
    log "redveil is gone (exit before the end of the run): see below"
    tail -n 50 "$tmp/redveil.log" >&2
fi
{
    cat "$tmp/report.md"
    echo "#### redveil's log (level warn), $(wc -l <"$tmp/redveil.log") lines, by message"
    echo
    echo '```'
    # Messages without their variable fields (timestamps, addresses, ids), most frequent first.
    sed -E 's/\x1b\[[0-9;]*m//g; s/^[^ ]+ +//; s/\b[0-9]+(\.[0-9]+)*\b/N/g' "$tmp/redveil.log" |
        cut -c1-160 | sort | uniq -c | sort -rn | head -n 15
    echo '```'
    echo
    echo "RSS samples (t s, phase, VmRSS kB, VmHWM kB, fds, threads, redveil_clients, ok, unexpected errors):"
    echo
    echo '```'
    tail -n +2 "$tmp/samples.tsv" | tr '\t' ' '
    echo '```'
} >"$out"
cat "$tmp/report.md"
log "written to $out"
