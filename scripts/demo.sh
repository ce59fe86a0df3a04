#!/usr/bin/env bash
# The main job on a fresh machine, no hardware: build mpfr, show the boards, render a config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -q
mpfr=target/release/mpfr
"$mpfr" boards
"$mpfr" boards show qemu-mps2-an385
"$mpfr" config --board rpi-pico-w --gil off --cores 2 --out mpfr-out/demo/rpi-pico-w
