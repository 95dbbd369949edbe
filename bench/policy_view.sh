#!/usr/bin/env bash
# What a policy view costs inside PostgreSQL: pgbench primary-key lookups on the demo's
# policy view vs the raw table, -M extended and -M prepared, interleaved rounds, median TPS
# and ratios. `--sync-scale` instead times sync of 100 data sources x 20 columns.
# Starts its own ephemeral PostgreSQL (nothing else is touched); see bench/README.md.
#   bench/policy_view.sh [--seconds N] [--rounds N] [--clients N] | --callgrind | --sync-scale
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
command -v pgbench >/dev/null || { echo "pgbench not found (postgresql-client)" >&2; exit 1; }
# The example only orchestrates (cluster, sync, pgbench); a debug build measures the same.
exec cargo run --quiet --example policy_bench -- "$@"
