#!/usr/bin/env bash
# The whole test suite: dependencies, formatting, lints, then every test target.
# The integration tests start their own PostgreSQL on a free port (see src/cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
