#!/bin/sh
# rustc wrapper for `scripts/fuzz.sh` quick builds: adds libFuzzer's coverage instrumentation
# (the flags cargo-fuzz passes) to mpfr's own crates only, so the fuzz targets reuse the
# dependencies `cargo build` already compiled. Coverage inside dependencies (toml, object,
# ihex) then does not guide the fuzzer; a `cargo fuzz` build instruments everything.
rustc="$1"
shift
case " $* " in
*" --crate-name mpfr "* | *" --crate-name mpfr_firmware "* | *" --crate-name mpfr_fuzz "* | *fuzz_targets/*)
  exec "$rustc" "$@" --cfg fuzzing \
    -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    -Cllvm-args=-sanitizer-coverage-stack-depth
  ;;
esac
exec "$rustc" "$@"
