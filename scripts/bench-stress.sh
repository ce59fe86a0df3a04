#!/usr/bin/env bash
# Benchmark (not a test): mpfr's MicroPython port on the QEMU board, measured in one run.
#
#   1. per-test overhead: the same trivial tests (one print each, with .exp files) run by
#      `mpfr flash` + `mpfr stress --tests` and by MicroPython's `tests/run-tests.py
#      -t execpty:...` on the same firmware ELF, each starting QEMU itself; the wall time per
#      test of each, and their ratio (goal: mpfr <= 0.5x);
#   2. MicroPython's `tests/thread` through both, wall time and verdicts (not with --quick);
#   3. thread create+join rate and lock round trips per second, GIL on and off, counted in guest
#      ticks (`time.ticks_ms()`) by a script run with `mpfr run`.
#
#   scripts/bench-stress.sh [--quick]      # --quick: few tests and rounds (CI runs this path)
#
# Needs the MicroPython source cache (scripts/micropython-source.sh) and a built mpfr
# (`cargo build -p mpfr`; $MPFR_BIN overrides). Builds go to target/mpfr-micropython/ (the same
# folders the end-to-end tests use, so a warm tree builds nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0
[ "${1:-}" = "--quick" ] && quick=1
mpfr=${MPFR_BIN:-$root/target/debug/mpfr}
tree=${MPFR_MICROPYTHON_TREE:-$(bash scripts/micropython-source.sh --print)}
py=$root/.venv/bin/python
[ -x "$mpfr" ] || { echo "no mpfr at $mpfr: run cargo build -p mpfr" >&2; exit 1; }
[ -f "$tree/tests/run-tests.py" ] || { echo "no MicroPython tree at $tree: run scripts/micropython-source.sh" >&2; exit 1; }
[ -x "$py" ] || { echo "no $py: run scripts/setup.sh (run-tests.py needs pyserial)" >&2; exit 1; }
board=qemu-mps2-an385
work=$(mktemp -d /tmp/mpfr-bench.XXXXXX)
export MPFR_STATE_DIR=$work/state MPFR_MICROPYTHON_TREE=$tree NO_COLOR=1
cleanup() {
    "$mpfr" stop --board "$board" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

build() { # build <gil> -> prints the ELF
    "$mpfr" --json build --board "$board" --firmware micropython --gil "$1" \
        --out "$root/target/mpfr-micropython/gil-$1" |
        sed -n 's/.*"elf":"\([^"]*\)".*/\1/p'
}

elf=$(build on)
echo "firmware (GIL on): $elf"

# 1. Per-test overhead on trivial tests.
n=$([ $quick = 1 ] && echo 3 || echo 20)
mkdir -p "$work/trivial"
for i in $(seq -w 1 "$n"); do
    echo "print('t$i', $((10#$i)) * 2)" > "$work/trivial/t$i.py"
    echo "t$i $((10#$i * 2))" > "$work/trivial/t$i.py.exp"
done
t0=$(now)
"$mpfr" flash --board "$board" "$elf" >/dev/null
"$mpfr" stress --board "$board" --suite none --tests "$work/trivial" --jsonl "$work/mpfr.jsonl" >"$work/mpfr.log" 2>&1 ||
    { cat "$work/mpfr.log" >&2; echo "mpfr stress failed on the trivial tests" >&2; exit 1; }
t1=$(now)
# The same without the soft reset mpfr does between tests (run-tests.py resets before each).
"$mpfr" stress --board "$board" --suite none --tests "$work/trivial" --no-reset >"$work/mpfr2.log" 2>&1 ||
    { cat "$work/mpfr2.log" >&2; echo "mpfr stress --no-reset failed on the trivial tests" >&2; exit 1; }
t1b=$(now)
"$mpfr" stop --board "$board" >/dev/null
qemu="qemu-system-arm -M mps2-an385 -nographic -monitor null -semihosting-config enable=on,target=native -serial pty -kernel $elf"
t2=$(now)
(cd "$tree/tests" && "$py" run-tests.py -r "$work/rt" -t "execpty:$qemu" "$work"/trivial/t*.py >"$work/rt.log" 2>&1) ||
    { cat "$work/rt.log" >&2; echo "run-tests.py failed" >&2; exit 1; }
t3=$(now)
passed=$(grep -c '"verdict":"PASS"' "$work/mpfr.jsonl" || true)
[ "$passed" = "$n" ] || { echo "mpfr stress passed $passed of $n trivial tests" >&2; exit 1; }
awk -v n="$n" -v a="$t0" -v b="$t1" -v b2="$t1b" -v c="$t2" -v d="$t3" 'BEGIN {
    m = (b - a) / n; m2 = (b2 - b) / n; r = (d - c) / n
    printf "per-test (%d trivial tests, QEMU start included): mpfr flash+stress %.3f s (stress --no-reset alone %.3f s), run-tests.py %.3f s, ratio %.2fx (goal <= 0.5x)\n", n, m, m2, r, m / r }'

# 2. MicroPython's tests/thread through both (full runs only).
if [ $quick = 0 ]; then
    "$mpfr" flash --board "$board" "$elf" >/dev/null
    t0=$(now)
    "$mpfr" stress --board "$board" --suite none --tests "$tree/tests/thread" --timeout 180s --idle-timeout 90s \
        --jsonl "$work/thread.jsonl" >/dev/null || true
    t1=$(now)
    "$mpfr" stop --board "$board" >/dev/null
    t2=$(now)
    (cd "$tree/tests" && "$py" run-tests.py -r "$work/rt2" -t "execpty:$qemu" -d thread >"$work/rt2.log" 2>&1) || true
    t3=$(now)
    verdicts=$(sed -n 's/.*"verdict":"\([A-Z]*\)".*/\1/p' "$work/thread.jsonl" | sort | uniq -c | tr -s ' \n' ' ')
    echo "tests/thread: mpfr stress $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s ($verdicts), run-tests.py $(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.1f", b-a}') s ($(grep -E '^[0-9]+ tests (passed|failed)' "$work/rt2.log" | tr '\n' ' ')), whole-run ratio $(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN{printf "%.2f", (b-a)/(d-c)}')x (goal <= 0.7x)"
fi

# 3. Thread create+join and lock round trips, GIL on and off.
rounds=$([ $quick = 1 ] && echo 20 || echo 500)
cat > "$work/rates.py" <<EOF
import _thread, time
N = $rounds
done = [0]
def w():
    done[0] += 1
t0 = time.ticks_ms()
for i in range(N):
    _thread.start_new_thread(w, ())
    while done[0] <= i:
        time.sleep_ms(0)
dt = max(1, time.ticks_diff(time.ticks_ms(), t0))
a = _thread.allocate_lock(); b = _thread.allocate_lock()
a.acquire(); b.acquire()
def pong():
    for i in range(N):
        a.acquire()
        b.release()
_thread.start_new_thread(pong, ())
t1 = time.ticks_ms()
for i in range(N):
    a.release()
    b.acquire()
dl = max(1, time.ticks_diff(time.ticks_ms(), t1))
print('RATES threads_per_s=%d lock_round_trips_per_s=%d' % (N * 1000 // dt, N * 1000 // dl))
EOF
for gil in on off; do
    e=$( [ $gil = on ] && echo "$elf" || build off )
    "$mpfr" flash --board "$board" "$e" >/dev/null
    line=$("$mpfr" run --board "$board" "$work/rates.py" | grep '^RATES' || true)
    [ -n "$line" ] || { echo "the rates script printed nothing (GIL $gil)" >&2; exit 1; }
    echo "GIL $gil: ${line#RATES } ($rounds rounds, guest ticks)"
    "$mpfr" stop --board "$board" >/dev/null
done
