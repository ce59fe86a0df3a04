#!/usr/bin/env bash
# Fetches MicroPython's source, the Debian 13 (trixie) source package `micropython`, into the
# project cache and unpacks the upstream tarball once. The machine's apt configuration is not
# touched: apt-get runs with a private sources list and lists folder; the mirror is the one the
# machine already uses and trust comes from Debian's archive keyring. Idempotent: a second run
# only checks the unpacked tree.
#
#   scripts/micropython-source.sh            fetch + unpack into .cache/micropython/<version>
#   scripts/micropython-source.sh --print    print the unpacked tree's path (fails if absent)
#   scripts/micropython-source.sh --mirror   print the Debian mirror the machine's sources use
#
# MPFR_CACHE_DIR moves the cache (default: <repo>/.cache); MPFR_DEBIAN_MIRROR names the mirror,
# MPFR_APT_KEYRING the keyring; MPFR_APT_ETC is read instead of /etc/apt.
set -euo pipefail

version=1.25.0
debian_version=1.25.0+ds-1
suite=trixie
orig=micropython_1.25.0+ds.orig.tar.xz
# sha256 of the upstream tarball as published in Debian's micropython_1.25.0+ds-1.dsc.
orig_sha256=7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea
keyring=${MPFR_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
apt_etc=${MPFR_APT_ETC:-/etc/apt}

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MPFR_CACHE_DIR:-$root/.cache}
work="$cache/micropython"
tree="$work/$version"

say() { printf 'micropython-source: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# A tree is complete when the rename at the end happened; the marker is written before it.
tree_ok() {
  [ -f "$tree/.mpfr-source" ] && [ -f "$tree/py/mpconfig.h" ] && [ -f "$tree/ports/qemu/Makefile" ]
}

# The first Debian mirror the machine's own sources use: deb822 files (URIs:) or one-line lists.
mirror() {
  local f u
  for f in "$apt_etc"/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    u=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
  for f in "$apt_etc"/sources.list "$apt_etc"/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    # deb [options] URI suite components...
    u=$(awk '$1 == "deb" || $1 == "deb-src" {
          i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$u" ] && { echo "$u"; return; }
  done
}

find_mirror() {
  local u=${MPFR_DEBIAN_MIRROR:-$(mirror)}
  [ -n "$u" ] || die "found no Debian mirror in $apt_etc/sources.list or $apt_etc/sources.list.d/ (set MPFR_DEBIAN_MIRROR to one)"
  echo "$u"
}

if [ "${1:-}" = "--mirror" ]; then
  find_mirror
  exit 0
fi

if [ "${1:-}" = "--print" ]; then
  tree_ok || die "no MicroPython $version source in $tree (run scripts/micropython-source.sh)"
  echo "$tree"
  exit 0
fi

if tree_ok; then
  say "MicroPython $version source present: $tree"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-based machine (or unpack MicroPython $version yourself and pass --micropython DIR to mpfr build)"
[ -r "$keyring" ] || die "Debian archive keyring $keyring missing: install the package debian-archive-keyring (or set MPFR_APT_KEYRING)"

url=$(find_mirror)

apt="$work/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts" "$apt/preferences.d" "$work/download"
printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "${url%/}" "$suite" >"$apt/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$apt/sources.list"
  -o "Dir::Etc::SourceParts=$apt/parts"
  -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
  -o "Dir::State::Lists=$apt/lists"
  -o "Dir::Cache=$apt/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)"
)

if [ ! -f "$work/download/$orig" ]; then
  say "reading the $suite source index from $url"
  apt-get "${apt_opts[@]}" -qq --error-on=any update \
    || die "apt-get update of $url ($suite, deb-src) failed: check the network or set MPFR_DEBIAN_MIRROR"
  say "downloading micropython $debian_version"
  (cd "$work/download" && apt-get "${apt_opts[@]}" -qq source --download-only "micropython=$debian_version") \
    || die "apt-get source micropython=$debian_version failed (is $debian_version still in $suite on $url?)"
fi
[ -f "$work/download/$orig" ] || die "the download did not produce $orig"

got=$(sha256sum "$work/download/$orig" | cut -d' ' -f1)
if [ "$got" != "$orig_sha256" ]; then
  rm -f "$work/download/$orig"
  die "$orig has sha256 $got, expected $orig_sha256 (removed; run again to download it anew)"
fi

# Unpack next to the final place and rename: an interrupted run leaves no tree that looks whole.
tmp=$(mktemp -d "$work/.unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "unpacking $orig"
tar -xJf "$work/download/$orig" -C "$tmp" || die "unpacking $orig failed"
top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
[ -n "$top" ] && [ -f "$top/py/mpconfig.h" ] || die "$orig does not hold a MicroPython tree"
printf 'micropython %s (Debian %s, %s)\n' "$version" "$debian_version" "$orig" >"$top/.mpfr-source"
rm -rf "$tree"
mv "$top" "$tree"
say "MicroPython $version source: $tree"
