#!/usr/bin/env bash
# The whole test suite: dependencies, formatting, lints, then every test target.
# The integration tests start their own PostgreSQL on a free port (see src/cluster).
# tests/clients.rs runs real clients (psql, pgjdbc, psqlODBC, Python and Node drivers,
# redshift_connector), installed here by scripts/install-clients.sh; REDVEIL_SKIP_CLIENTS=1
# skips both the install and that suite, for quick local runs (not under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
if [ "${REDVEIL_SKIP_CLIENTS:-}" != "1" ] || [ "${CI:-}" = "true" ]; then
    ./scripts/install-clients.sh
fi
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
