#!/usr/bin/env bash
# Benchmark (not a test): the two-core claim of mpfr's MicroPython port on qemu-mps2-an521.
# The same CPU-bound Python work (an integer loop, no allocation, no shared objects) runs once in
# one thread and once split over two threads; the speed-up is one thread's guest ticks over two
# threads' guest ticks. Goal: >= 1.8x with the GIL off (the board's default), about 1.0x with the
# GIL on (one thread holds the GIL at a time, so the second core has nothing to do).
#
#   scripts/bench-smp.sh [--quick]      # --quick: less work per run, one pair
#
# Ticks are `time.ticks_ms()`, the FreeRTOS tick of the guest. QEMU runs without -icount here on
# purpose: under -icount QEMU runs the two vCPUs in turn on one host thread and advances the
# guest clock by the instructions of both, so two busy cores make guest time pass twice as fast
# and no speed-up can show. Without it each vCPU has a host thread and the guest clock follows
# the host's: the figure is only as good as the host's two free cores (a loaded machine lowers
# the GIL-off speed-up; run it on a quiet one).
#
# Needs the MicroPython source cache (scripts/micropython-source.sh) and a built mpfr
# (`cargo build -p mpfr`; $MPFR_BIN overrides). Builds go to target/mpfr-micropython/an521-gil-*
# (the folders the end-to-end tests use).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0
[ "${1:-}" = "--quick" ] && quick=1
mpfr=${MPFR_BIN:-$root/target/debug/mpfr}
tree=${MPFR_MICROPYTHON_TREE:-$(bash scripts/micropython-source.sh --print)}
[ -x "$mpfr" ] || { echo "no mpfr at $mpfr: run cargo build -p mpfr" >&2; exit 1; }
[ -f "$tree/py/mkenv.mk" ] || { echo "no MicroPython tree at $tree: run scripts/micropython-source.sh" >&2; exit 1; }
board=qemu-mps2-an521
work=$(mktemp -d /tmp/mpfr-bench-smp.XXXXXX)
export MPFR_STATE_DIR=$work/state MPFR_MICROPYTHON_TREE=$tree NO_COLOR=1
cleanup() {
    "$mpfr" stop --board "$board" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

build() { # build <gil> -> prints the ELF (the progress goes to $work/build-<gil>.log)
    "$mpfr" --json build --board "$board" --firmware micropython --gil "$1" \
        --out "$root/target/mpfr-micropython/an521-gil-$1" 2>"$work/build-$1.log" |
        sed -n 's/.*"elf":"\([^"]*\)".*/\1/p'
}

work_n=$([ $quick = 1 ] && echo 100000 || echo 300000)
reps=$([ $quick = 1 ] && echo 1 || echo 5)
cat > "$work/smp.py" <<EOF
import _thread, sys, time
N = $work_n
REPS = $reps
def spin(n):
    x = 0
    for i in range(n):
        x = (x + i) & 0xFFFF
    return x
def one():
    t0 = time.ticks_ms()
    spin(N)
    return time.ticks_diff(time.ticks_ms(), t0)
def two():
    lk = _thread.allocate_lock()
    done = [0]
    def half():
        spin(N // 2)
        with lk:
            done[0] += 1
    t0 = time.ticks_ms()
    _thread.start_new_thread(half, ())
    half()
    while done[0] < 2:
        time.sleep_ms(0)
    return time.ticks_diff(time.ticks_ms(), t0)
# One and two threads in turn, REPS times: a stall of the host (another process on its cores)
# lands in one measurement, and the median of the pairs' ratios leaves it out.
runs = []
for r in range(REPS):
    a = one()
    b = two()
    runs.append((a / max(1, b), a, b))
runs.sort()
s, a, b = runs[len(runs) // 2]
print('SMP gil=%s one_thread_ms=%d two_threads_ms=%d speedup=%.2f all=%s' % (
    sys.implementation._thread, a, b, s, ','.join('%.2f' % r[0] for r in runs)))
EOF
for gil in off on; do
    elf=$(build $gil)
    [ -n "$elf" ] || { cat "$work/build-$gil.log" >&2; echo "the GIL-$gil build printed no ELF" >&2; exit 1; }
    "$mpfr" flash --board "$board" "$elf" >/dev/null 2>&1
    line=$("$mpfr" run --board "$board" "$work/smp.py" | grep '^SMP' || true)
    [ -n "$line" ] || { echo "the benchmark script printed nothing (GIL $gil)" >&2; exit 1; }
    goal=$([ $gil = off ] && echo ">= 1.8x" || echo "about 1.0x")
    echo "GIL $gil: ${line#SMP } (work $work_n loop steps, median of $reps pairs, guest ticks; goal $goal)"
    "$mpfr" stop --board "$board" >/dev/null 2>&1
done
