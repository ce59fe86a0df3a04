#!/usr/bin/env bash
# Lists (and then kills) the processes still running that carry MPFR_TEST_RUN=<tag> in their
# environment: everything a test run started inherits it (QEMU and MicroPython included, though
# they run in groups and sessions of their own), and no other process has it.
# Usage: scripts/survivors.sh TAG. Exits 1 when any survived, after killing them.
set -uo pipefail
tag=${1:?usage: survivors.sh TAG}
find_them() {
    local e pid
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        if { tr '\0' '\n' < "$e"; } 2>/dev/null | grep -qxF "MPFR_TEST_RUN=$tag"; then
            # A zombie has exited already; its parent reaps it.
            state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || continue
            [ "$state" = Z ] || echo "$pid"
        fi
    done
}
# Processes that are on their way out get a few seconds.
for _ in $(seq 50); do
    left=$(find_them)
    [ -z "$left" ] && exit 0
    sleep 0.2
done
echo "processes started by the test run are still running:" >&2
for pid in $left; do
    echo "  pid $pid: $({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null)" >&2
done
kill -KILL $left 2>/dev/null
exit 1
