#!/usr/bin/env bash
# Installs what redveil's tests and demo need, when it is missing (Debian/Ubuntu, apt-get):
#   PostgreSQL server binaries (initdb, postgres, pg_ctl) and the psql client;
#   the server headers and gcc, to build the Redshift-like test cluster's module;
#   with --bench also PgBouncer, pgbench, python3 and valgrind (for bench/run.sh).
# Idempotent and silent when everything is present. Runs apt-get update only when a
# package must be installed. Never creates or starts a system PostgreSQL cluster: the
# tests and the demo start their own private server on a free port.
set -euo pipefail

usage() {
    echo "usage: $0 [--bench]" >&2
}

bench=0
for arg in "$@"; do
    case "$arg" in
        --bench) bench=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage; exit 2 ;;
    esac
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

has_server_in() {
    [ -x "$1/initdb" ] && [ -x "$1/postgres" ] && [ -x "$1/pg_ctl" ]
}

# Same search order as src/cluster/binaries.rs.
have_server() {
    local dir
    if command -v pg_config >/dev/null 2>&1 && dir=$(pg_config --bindir 2>/dev/null) \
        && has_server_in "$dir"; then
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        if has_server_in "$dir"; then
            return 0
        fi
    done
    return 1
}

missing=()
have_server || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# The Redshift-like cluster (src/cluster/redshift_like.rs) compiles a small server module.
has_server_headers() {
    command -v pg_config >/dev/null 2>&1 &&
        [ -f "$(pg_config --includedir-server 2>/dev/null)/postgres.h" ]
}
if ! has_server_headers; then
    major=""
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/postgres" ] && major=$(basename "$(dirname "$dir")")
    done
    missing+=("postgresql-server-dev-${major:-all}")
fi
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ "$bench" -eq 1 ]; then
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
    # pgbench ships in Debian's postgresql-client-NN (postgresql-contrib on older releases).
    if ! command -v pgbench >/dev/null 2>&1 && [[ " ${missing[*]} " != *" postgresql-client "* ]]; then
        missing+=(postgresql-client)
    fi
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2

# Debian's postgresql package creates a "main" cluster and starts it on 5432. Stop both:
# no cluster creation (postgresql-common reads createcluster.d), and no service start
# during the install (policy-rc.d answering 101 = "action forbidden").
as_root mkdir -p /etc/postgresql-common/createcluster.d
if [ ! -f /etc/postgresql-common/createcluster.d/redveil.conf ]; then
    echo "create_main_cluster = false" |
        as_root tee /etc/postgresql-common/createcluster.d/redveil.conf >/dev/null
fi
policy_created=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
fi
cleanup() {
    if [ "$policy_created" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
}
trap cleanup EXIT

as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null

if ! have_server; then
    echo "error: PostgreSQL server binaries still not found after installing" >&2
    exit 1
fi
