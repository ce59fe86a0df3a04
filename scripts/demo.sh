#!/usr/bin/env bash
# The main job on a fresh machine, no hardware: build mpfr, show the boards, render a config,
# build the reference firmware, boot it on the QEMU virtual board, look at it, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
mpfr=target/release/mpfr
board=qemu-mps2-an385

step() { printf '\n\033[1m$ mpfr %s\033[0m\n' "$*"; "$mpfr" "$@"; }

step boards
step boards show "$board"
step config --board rpi-pico-w --gil off --cores 2 --out mpfr-out/demo/rpi-pico-w
step build --board "$board"
step flash --board "$board"
trap '"$mpfr" stop --board "$board" >/dev/null 2>&1 || true' EXIT
step stop --board "$board"
trap - EXIT
