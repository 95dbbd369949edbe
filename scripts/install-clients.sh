#!/usr/bin/env bash
# Installs the real clients of the client-compatibility suite (tests/clients.rs), from the
# package registries only:
#   Debian (apt-get): psql, pgjdbc (libpostgresql-jdbc-java) and a JDK, psqlODBC and unixODBC
#     (odbc-postgresql, unixodbc), python3 with venv, node and npm when missing;
#   PyPI, into the project-local virtualenv .venv-clients/: psycopg 3, psycopg2, asyncpg,
#     SQLAlchemy, pyodbc, redshift_connector, sqlalchemy-redshift (tests/clients/python/
#     requirements.txt, every version pinned);
#   npm, into tests/clients/node/node_modules: node-postgres, from the committed
#     package-lock.json (npm ci).
# Idempotent and quick when everything is there: apt-get update runs only when a Debian
# package is missing, and the virtualenv and node_modules are rebuilt only when their
# requirements changed (a stamp holds the hash of what they were built from).
set -euo pipefail
cd "$(dirname "$0")/.."

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

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Debian's python3, not whatever python3 comes first on PATH: the virtualenv must not
# depend on a per-user interpreter.
PYTHON=/usr/bin/python3

missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
installed libpostgresql-jdbc-java || missing+=(libpostgresql-jdbc-java)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
installed odbc-postgresql || missing+=(odbc-postgresql)
installed unixodbc || missing+=(unixodbc)
[ -x "$PYTHON" ] || missing+=(python3)
# ensurepip ships in python3.X-venv; without it `python3 -m venv` fails.
if [ ! -x "$PYTHON" ] || ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
        exit 1
    fi
    echo "install-clients: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! grep -qs '^\[PostgreSQL Unicode\]' /etc/odbcinst.ini; then
    echo "error: odbc-postgresql is installed but its driver is not registered in /etc/odbcinst.ini" >&2
    exit 1
fi

hash_of() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# Python drivers.
venv=.venv-clients
requirements=tests/clients/python/requirements.txt
want="$(hash_of "$requirements") $("$PYTHON" --version 2>&1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.redveil-stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-clients: building $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
    echo "$want" >"$venv/.redveil-stamp"
fi

# node-postgres.
node_dir=tests/clients/node
want=$(hash_of "$node_dir/package.json" "$node_dir/package-lock.json")
if [ ! -f "$node_dir/node_modules/pg/package.json" ] \
    || [ "$(cat "$node_dir/node_modules/.redveil-stamp" 2>/dev/null)" != "$want" ]; then
    echo "install-clients: npm ci in $node_dir" >&2
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >"$node_dir/node_modules/.redveil-stamp"
fi
