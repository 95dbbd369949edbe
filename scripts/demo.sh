#!/usr/bin/env bash
# Runs the demo: installs what it needs, then `redveil demo` with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
exec cargo run --release --locked -- demo "$@"
