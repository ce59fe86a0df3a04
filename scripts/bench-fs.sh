#!/usr/bin/env bash
# Benchmark: file transfers, mpfr vs mpremote, on the same kind of device in one run.
#
# Every invocation gets a fresh device: the MicroPython unix port behind a pty made by socat,
# running in an empty folder (its filesystem). Cases:
#   cp -r   a 100-file, 500 KB tree into the device: `mpfr fs cp -r` vs `mpremote fs cp -r`
#   sync    `mpfr sync` after one file changed vs the full copy (`mpfr sync` into an empty folder)
# Only the tool's own wall time is measured.
#
#   scripts/bench-fs.sh            # N=3 runs of each case
#   N=5 scripts/bench-fs.sh
#   FILES=10 N=1 scripts/bench-fs.sh   # a 10-file tree, once (the path CI runs; not a figure)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${N:-3}
files=${FILES:-100}
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
export MPFR_STATE_DIR="$tmp/state"

# The tree: 80 Python-like text files and 20 binary files, 5000 bytes each (500 KB in all; with
# FILES, that many files in the same proportion).
python3 - "$tmp/tree" "$files" <<'PY'
import os, random, sys
root = sys.argv[1]
files = int(sys.argv[2])
rnd = random.Random(15)
for i in range(files):
    d = os.path.join(root, f"pkg{i % 5}")
    os.makedirs(d, exist_ok=True)
    if i < files * 4 // 5:
        body = "".join(f"def f{i}_{k}(x):\n    return x * {k} + {rnd.randint(0, 999)}  # helper\n" for k in range(200))
        data = body.encode()[:5000]
        name = f"mod{i}.py"
    else:
        data = bytes(rnd.getrandbits(8) for _ in range(5000))
        name = f"blob{i}.bin"
    open(os.path.join(d, name), "wb").write(data)
PY

start_device() {
  rm -rf "$tmp/fs" "$tmp/dev"
  mkdir -p "$tmp/fs"
  (cd "$tmp/fs" && exec socat "PTY,link=$tmp/dev,rawer" "EXEC:$mp,pty,rawer,setsid" 2>/dev/null) &
  dev_pid=$!
  for _ in $(seq 400); do [ -e "$tmp/dev" ] && return 0; sleep 0.005; done
  echo "bench: socat did not create $tmp/dev" >&2; exit 1
}
stop_device() {
  kill "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  dev_pid=""
}
check_copy() { # the device folder must hold the tree, byte for byte
  diff -r "$tmp/tree" "$tmp/fs/tree" >/dev/null || { echo "bench: $1 copied the tree wrongly" >&2; exit 1; }
}
ms() { echo $(( ($2 - $1) / 1000000 )); }

cp_mpfr=0; cp_mpremote=0; full=0; incr=0
for i in $(seq "$n"); do
  start_device
  t0=$(date +%s%N); "$mpfr" fs cp -r --port "$tmp/dev" "$tmp/tree" :tree >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }; t1=$(date +%s%N)
  stop_device; check_copy mpfr; cp_mpfr=$((cp_mpfr + $(ms "$t0" "$t1")))

  start_device
  t0=$(date +%s%N); (cd "$tmp" && "$mpremote" connect "$tmp/dev" resume fs cp -r tree :tree >"$tmp/out" 2>&1) || { cat "$tmp/out" >&2; exit 1; }; t1=$(date +%s%N)
  stop_device; check_copy mpremote; cp_mpremote=$((cp_mpremote + $(ms "$t0" "$t1")))

  # sync: a full copy into an empty folder, then one changed file, on the same device.
  start_device
  t0=$(date +%s%N); "$mpfr" sync --port "$tmp/dev" "$tmp/tree" :tree >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }; t1=$(date +%s%N)
  full=$((full + $(ms "$t0" "$t1")))
  printf '# changed %s\n' "$i" >>"$tmp/tree/pkg0/mod0.py"
  t0=$(date +%s%N); "$mpfr" sync --port "$tmp/dev" "$tmp/tree" :tree >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }; t1=$(date +%s%N)
  grep -qx "update  :tree/pkg0/mod0.py" "$tmp/out" || { echo "bench: sync did not copy exactly the changed file:" >&2; cat "$tmp/out" >&2; exit 1; }
  [ "$(grep -c '^update\|^new' "$tmp/out")" = 1 ] || { cat "$tmp/out" >&2; exit 1; }
  incr=$((incr + $(ms "$t0" "$t1")))
  stop_device; check_copy "mpfr sync"
done

echo "bench: $n runs per case; $files files, $((files * 5)) KB; fresh MicroPython behind a socat pty each run" >&2
printf "%-34s %10s %10s %8s\n" case "ms" "vs ms" ratio
awk -v a="$cp_mpfr" -v b="$cp_mpremote" -v n="$n" 'BEGIN {
  printf "%-34s %10.0f %10.0f %7.2fx\n", "fs cp -r: mpfr vs mpremote", a / n, b / n, a / b }'
awk -v a="$incr" -v b="$full" -v n="$n" 'BEGIN {
  printf "%-34s %10.0f %10.0f %7.2fx\n", "sync, 1 changed vs full copy", a / n, b / n, a / b }'
