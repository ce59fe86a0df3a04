#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what is missing, then: format check, clippy, build, every test in the workspace, a
# short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's wall time, printed at the end (where CI time goes).
times=()
step() {
  local name=$1 t0=$SECONDS
  shift
  "$@"
  times+=("$name $((SECONDS - t0))s")
}
step setup bash scripts/setup.sh
step fmt cargo fmt --all -- --check
# A clean clone gains nothing from incremental compilation, only the cost of its records.
export CARGO_INCREMENTAL=0
# Clippy lints mpfr's crates while they are compiled for the tests: cargo runs clippy-driver as
# the workspace wrapper, as `cargo clippy` itself does (`CLIPPY_ARGS` carries `-D warnings` the
# way cargo-clippy passes it). The dependencies are then compiled once, not once checked for
# clippy and once built: a few minutes of CI. Every later cargo command keeps these variables,
# or it would compile the workspace again. The driver must first build a file with a known lint
# and refuse it under these arguments (so a clippy that reads its arguments another way cannot
# pass everything); without it, or if it does not, the two steps run apart.
clippy_args="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
lints_with() {
  local probe plain=0 denied=0
  probe=$(mktemp -d)
  printf 'fn main() {\n    let x = 1u8;\n    let _ = x.clone();\n}\n' >"$probe/p.rs"
  CLIPPY_ARGS= "$1" rustc --edition 2021 -o "$probe/p" "$probe/p.rs" >/dev/null 2>&1 || plain=$?
  CLIPPY_ARGS=$clippy_args "$1" rustc --edition 2021 -o "$probe/p" "$probe/p.rs" >/dev/null 2>&1 || denied=$?
  rm -rf "$probe"
  [ "$plain" -eq 0 ] && [ "$denied" -ne 0 ]
}
if driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver) && lints_with "$driver"; then
  export RUSTC_WORKSPACE_WRAPPER=$driver
  export CLIPPY_ARGS=$clippy_args
  step build+clippy cargo build --workspace --all-targets --locked
else
  step clippy cargo clippy --workspace --all-targets --locked -- -D warnings
  step build cargo build --workspace --all-targets --locked
fi
log=$(mktemp)
fuzz_log=$(mktemp)
fuzz_pid=
# kill_tree PID: the process and everything it started (an interrupted run leaves nothing).
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap '[ -z "$fuzz_pid" ] || kill_tree "$fuzz_pid"; rm -f "$log" "$log.done" "$fuzz_log"' EXIT
# Every fuzz target for a second, so none can rot (one build for all; scripts/fuzz.sh SECONDS
# runs longer, and docs/reliability.md has the figures of a long run). The fuzz package is a
# workspace of its own, which clippy does not lint: no wrapper there. It runs beside the tests at
# the lowest priority, so it takes the CPU the tests leave (the cores are busy for most of the
# run, but not while the last test finishes alone). Cargo holds the target directory's lock only
# while it builds, so the fuzz build starts once the first test binary runs (or once the test
# step has ended, if it never got that far).
fuzz_beside_tests() {
  until grep -q '^     Running ' "$log" || [ -e "$log.done" ]; do sleep 1; done
  local t0=$SECONDS
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS -u MPFR_TEST_RUN FUZZ_BUILD=smoke nice -n 19 bash scripts/fuzz.sh 1
  echo "fuzz: $((SECONDS - t0)) s beside the tests"
}
fuzz_beside_tests >"$fuzz_log" 2>&1 &
fuzz_pid=$!
# Every process the tests start inherits this tag; afterwards none may still run.
tag="mpfr-test-$$-$(date +%s%N)"
status=0
t0=$SECONDS
# Three tests at a time (cargo's default here is two, one per core): the end-to-end binary took
# about 310 s instead of 377 s, as a test waiting on a build, a boot or a timeout no longer holds
# half of the slots. Four was a little faster but once failed the an521 smp check under the load
# (docs/architecture.md, "What CI time goes to").
MPFR_TEST_RUN="$tag" RUST_TEST_THREADS=${RUST_TEST_THREADS:-3} cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
touch "$log.done"
times+=("test $((SECONDS - t0))s")
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
fuzz_pid=
cat "$fuzz_log"
times+=("fuzz(beside) $(sed -n 's/^fuzz: \([0-9]*\) s beside the tests$/\1/p' "$fuzz_log")s")
bash scripts/survivors.sh "$tag" || { echo "the test run left processes behind (killed now)" >&2; exit 1; }
[ "$status" -eq 0 ] || exit "$status"
[ "$fuzz_status" -eq 0 ] || { echo "scripts/fuzz.sh failed" >&2; exit "$fuzz_status"; }
# The budget benchmark must keep working (its figures are read by people, not checked here).
t0=$SECONDS
budget=$(MPFR_BIN=target/debug/mpfr bash scripts/agent-budget.sh 2>&1) || { echo "$budget" >&2; echo "scripts/agent-budget.sh failed" >&2; exit 1; }
budget=$(MPFR_BIN=target/debug/mpfr MPFR_BOARD=qemu-mps2-an521 bash scripts/agent-budget.sh 2>&1) || { echo "$budget" >&2; echo "MPFR_BOARD=qemu-mps2-an521 scripts/agent-budget.sh failed" >&2; exit 1; }
times+=("budget $((SECONDS - t0))s")
# The port benchmark's code path, briefly (the builds are the ones the tests above cached).
t0=$SECONDS
bench=$(bash scripts/bench-stress.sh --quick 2>&1) || { echo "$bench" >&2; echo "scripts/bench-stress.sh --quick failed" >&2; exit 1; }
echo "$bench" | tail -n 3
times+=("bench-stress $((SECONDS - t0))s")
# The other benchmarks' code paths, once and small (their figures come from the full runs).
step bench-fs env FILES=10 N=1 MPFR_BIN=target/debug/mpfr bash scripts/bench-fs.sh
step bench-repl env N=1 MPFR_BIN=target/debug/mpfr bash scripts/bench-repl.sh
step bench-smp env MPFR_BIN=target/debug/mpfr bash scripts/bench-smp.sh --quick
echo "steps: ${times[*]}"
# One closing line for the whole run, summed over every test binary above.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
