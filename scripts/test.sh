#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what is missing, then: format check, clippy, build, every test in the workspace, a
# short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# The budget benchmark must keep working (its figures are read by people, not checked here).
budget=$(bash scripts/agent-budget.sh 2>&1) || { echo "$budget" >&2; echo "scripts/agent-budget.sh failed" >&2; exit 1; }
# Every fuzz target for a few seconds (one build for all; scripts/fuzz.sh SECONDS runs longer).
FUZZ_BUILD=quick bash scripts/fuzz.sh 5
# One closing line for the whole run, summed over every test binary above.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
