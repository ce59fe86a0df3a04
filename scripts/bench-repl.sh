#!/usr/bin/env bash
# Benchmark: mpfr vs mpremote on the same kind of device, in one run.
#
# Every invocation gets a fresh device: the MicroPython unix port behind a pty made by socat
# (the way QEMU or a USB CDC board appears: a tty path). Both tools open that path as a serial
# port, enter the raw REPL without a soft reset (the unix port exits on one; mpremote needs
# `resume` for that) and run the same code. Only the tool's own wall time is measured.
#
#   scripts/bench-repl.sh            # N=20 runs of each case
#   N=50 scripts/bench-repl.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${N:-20}
mp=${MPFR_MICROPYTHON:-$root/.venv/bin/micropython}
mpremote=${MPREMOTE:-$root/.venv/bin/mpremote}
for tool in socat "$mp" "$mpremote"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/setup.sh" >&2; exit 1; }
done
if [ -z "${MPFR_BIN:-}" ]; then
  cargo build --release --locked -q -p mpfr
fi
mpfr=${MPFR_BIN:-$root/target/release/mpfr}

tmp=$(mktemp -d)
dev_pid=""
cleanup() {
  [ -n "$dev_pid" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# A 30 KB script that does a little work at the end.
python3 - "$tmp/big.py" <<'PY'
import sys
lines, n = [], 0
while sum(len(l) for l in lines) < 30 * 1024:
    lines.append(f"v{n} = {n}  # padding so the script is about thirty kilobytes\n"); n += 1
lines.append(f"print(sum([{','.join(f'v{i}' for i in range(n))}]))\n")
open(sys.argv[1], "w").write("".join(lines))
PY

start_device() {
  rm -f "$tmp/dev"
  socat "PTY,link=$tmp/dev,rawer" "EXEC:$mp,pty,rawer,setsid" 2>/dev/null &
  dev_pid=$!
  for _ in $(seq 400); do [ -e "$tmp/dev" ] && return 0; sleep 0.005; done
  echo "bench: socat did not create $tmp/dev" >&2; exit 1
}
stop_device() {
  kill "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  dev_pid=""
}

# total_ms TOOL-COMMAND...: N runs, each on a fresh device; prints total milliseconds.
total_ms() {
  local total=0 t0 t1 i
  for i in $(seq "$n"); do
    start_device
    t0=$(date +%s%N)
    "$@" >"$tmp/out" 2>&1 || { echo "bench: failed: $*" >&2; cat "$tmp/out" >&2; exit 1; }
    t1=$(date +%s%N)
    stop_device
    total=$((total + (t1 - t0) / 1000))
  done
  echo $((total / 1000))
}

row() { # name mpfr_ms mpremote_ms
  awk -v name="$1" -v a="$2" -v b="$3" -v n="$n" 'BEGIN {
    printf "%-16s %10.1f %13.1f %8.2fx\n", name, a / n, b / n, a / b }'
}

echo "bench: $n runs per case, fresh MicroPython behind a socat pty each run" >&2
a=$(total_ms "$mpfr" exec --board host --port "$tmp/dev" "pass")
b=$(total_ms "$mpremote" connect "$tmp/dev" resume exec "pass")
c=$(total_ms "$mpfr" run --board host --port "$tmp/dev" "$tmp/big.py")
d=$(total_ms "$mpremote" connect "$tmp/dev" resume run "$tmp/big.py")
e=$(total_ms "$mpfr" run --verbatim --board host --port "$tmp/dev" "$tmp/big.py")
printf "%-16s %10s %13s %9s\n" case "mpfr ms" "mpremote ms" ratio
row 'exec "pass"' "$a" "$b"
row "run 30 KB" "$c" "$d"
row "run --verbatim" "$e" "$d"
