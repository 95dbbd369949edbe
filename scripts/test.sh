#!/usr/bin/env bash
# The whole test suite: dependencies, formatting, lints, every test target (and a subset again
# in the Redshift dialect), then other
# projects' client suites through the proxy (a subset, see scripts/peer-suites.sh) and each
# fuzz target for a short fixed time (scripts/fuzz.sh).
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
# The suites that already hold on Redshift, against a PostgreSQL made to read and answer like
# it (src/cluster/redshift_like.rs) with backend.dialect = "redshift". Still to follow (issue
# 15): bypass.rs and policy_views' leaky-function test (row rules need Redshift RLS policies:
# without a security barrier a client's predicate reaches hidden rows, e.g. through a division
# by zero), last_line and stale_statements (they pick backend connections by process id,
# which Redshift mode closes between clients), and the clients (their scripts are
# PostgreSQL's SQL).
REDVEIL_TEST_DIALECT=redshift cargo test --locked --test enforcement --test policy_sync \
    --test impersonation --test fidelity --test relay --test dialect_masks --test bypass_last_line \
    --test bypass_backslash --test bypass_pooled_state --test dialect_start --test copy \
    --test cluster --test pool --test policy_views --test large --test robustness \
    --test subscription --test shutdown --test restart --test metrics --test redshift_drivers \
    -- --skip a_leaky_client_function_sees_only_what_the_view_shows
# psycopg2's encoding tests, asyncpg's prepared-statement and type-cache tests and the
# regression files that differed: direct, and through redveil in both pool modes. Fails on a
# test that passes directly and fails through redveil unless expected.toml names it.
./scripts/peer-suites.sh --subset ci --check \
    --target direct --target redveil-session --target redveil-transaction
./scripts/fuzz.sh --seconds 20
