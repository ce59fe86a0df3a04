#!/usr/bin/env bash
# The main job on a fresh machine, no hardware: build mpfr, render a config, build the reference
# firmware, boot it on the QEMU virtual board, list its threads, stress it; the same on the
# two-core board; build mpfr's MicroPython port, boot it and run Python and files on it; run
# Python on the host MicroPython; stop the virtual boards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
mpfr=target/release/mpfr
board=qemu-mps2-an385
out=mpfr-out/demo

step() { printf '\n\033[1m$ mpfr %s\033[0m\n' "$*"; "$mpfr" "$@"; }

step boards
step boards show "$board"
step config --board rpi-pico-w --gil off --cores 2 --out "$out/rpi-pico-w"
step build --board "$board"
step flash --board "$board"
trap '"$mpfr" stop --board "$board" >/dev/null 2>&1 || true' EXIT
step threads ls --board "$board"
step stress --board "$board" --junit "$out/qemu-junit.xml" --json "$out/qemu-results.jsonl"
step exec --board host "import sys; print(sys.implementation._thread, 6*7)"
step stress --board host --suite quick --junit "$out/host-junit.xml" --json "$out/host-results.jsonl"
step stop --board "$board"

smp=qemu-mps2-an521
step build --board "$smp"
step flash --board "$smp"
trap '"$mpfr" stop --board "$smp" >/dev/null 2>&1 || true' EXIT
step threads top --board "$smp" --once
step stress --board "$smp" --json "$out/an521-results.jsonl"
step stop --board "$smp"

step build --board "$board" --firmware micropython --out "$out/micropython"
step flash --board "$board"
trap '"$mpfr" stop --board "$board" >/dev/null 2>&1 || true' EXIT
step exec --board "$board" "import sys; print(sys.implementation.name, sys.implementation._thread)"
mkdir -p "$out/app"
printf 'print("hello from", __name__)\n' > "$out/app/hello.py"
step sync --board "$board" "$out/app" :app
step fs ls --board "$board" :app
step stop --board "$board"
trap - EXIT
printf '\nReports: %s\n' "$out"
