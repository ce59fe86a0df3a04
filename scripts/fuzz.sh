#!/usr/bin/env bash
# Fuzzes every parser of outside input (cli/fuzz, cargo-fuzz + libFuzzer). docs/reliability.md
# ("Fuzzing") lists the targets and the figures of the last long run.
#
#   scripts/fuzz.sh [SECONDS]        build once, then run each target for SECONDS (default 5)
#   FUZZ_RUNS=1000000 scripts/fuzz.sh
#                                    run each target for that many executions instead
#   FUZZ_TARGETS="rtt image" scripts/fuzz.sh 60
#                                    only these targets
#   FUZZ_BUILD=quick scripts/fuzz.sh
#                                    instrument only mpfr's own crates (scripts/fuzz-rustc.sh)
#                                    and reuse the dependencies of the workspace's `cargo build`
#                                    in target/: a fraction of the build
#   FUZZ_BUILD=smoke scripts/fuzz.sh 1
#                                    the quick build with mpfr's crates unoptimised too: less
#                                    than half its compile time, slower executions; what CI runs
#
# Each target starts from its seeds (cli/fuzz/seeds/<target>) and its regression inputs
# (cli/fuzz/regressions/<target>); what it learns goes to cli/fuzz/corpus/<target> (not in
# git). A crash stops the script with libFuzzer's report; the input is in
# cli/fuzz/artifacts/<target>/. Prints one line per target: executions, seconds, corpus size.
set -euo pipefail

secs=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/cli"

mapfile -t all < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^mpfr-fuzz$')
start=$(date +%s)
if [ "${FUZZ_BUILD:-}" = quick ] || [ "${FUZZ_BUILD:-}" = smoke ]; then
  # The root workspace's target dir and dev profile: only mpfr's crates are compiled again.
  unoptimised=()
  if [ "$FUZZ_BUILD" = smoke ]; then
    for p in mpfr mpfr-firmware mpfr-fuzz; do
      unoptimised+=(--config "profile.dev.package.$p.opt-level=0")
    done
  fi
  RUSTC_WRAPPER="$root/scripts/fuzz-rustc.sh" cargo build --locked -q \
    --manifest-path fuzz/Cargo.toml --target-dir "$root/target" --bins "${unoptimised[@]}"
  # run_target TARGET: corpus folders in $dirs, libFuzzer options in $args.
  run_target() {
    "$root/target/debug/$1" -artifact_prefix="fuzz/artifacts/$1/" "${args[@]}" "${dirs[@]}"
  }
else
  # cargo-fuzz passes flags only nightly rustc takes: use the nightly toolchain when there is
  # one, else let stable accept them.
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
  else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
  fi
  # No sanitizer: the code under test is safe Rust, and libFuzzer still catches panics, hangs
  # and runaway memory; this keeps the one build short and every execution fast. 16 codegen
  # units instead of cargo-fuzz's 1 for the same reason.
  flags=(--sanitizer none --codegen-units 16)
  "${fuzz[@]}" build "${flags[@]}"
  run_target() {
    "${fuzz[@]}" run "${flags[@]}" "$1" "${dirs[@]}" -- "${args[@]}"
  }
fi
echo "fuzz: built every target in $(($(date +%s) - start)) s" >&2

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=("${all[@]}")
fi
if [ -n "${FUZZ_RUNS:-}" ]; then
  budget=(-runs="$FUZZ_RUNS")
else
  budget=(-max_total_time="$secs")
fi

summary=()
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  dirs=("$corpus")
  for extra in fuzz/seeds/$t fuzz/regressions/$t; do
    [ -d "$extra" ] && dirs+=("$extra")
  done
  log=$(mktemp)
  t0=$(date +%s)
  # -timeout: an input that takes this long is a hang, reported like a crash.
  args=("${budget[@]}" -timeout=60 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1)
  if ! run_target "$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    rm -f "$log"
    echo "fuzz: target $t failed; the input is in cli/fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rm -f "$log"
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sb "$corpus" | cut -f1)
  summary+=("$(printf '%-18s %10s execs %6s s  corpus %5s files %8s bytes' \
    "$t" "${execs:-?}" "$(($(date +%s) - t0))" "$files" "$bytes")")
done
printf 'fuzz: %s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} targets, no crash"
