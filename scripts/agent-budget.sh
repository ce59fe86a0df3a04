#!/usr/bin/env bash
# The telemetry agent's cost on Cortex-M3, or Cortex-M33 with MPFR_BOARD (arm-none-eabi-gcc -Os), against the budgets in
# docs/firmware.md: flash (text of the agent's objects), static RAM besides the RTT buffers (bss),
# and the deepest stack the agent uses in the task that runs it (from gcc's call-graph
# information, through the FreeRTOS kernel functions it calls).
#
#   scripts/agent-budget.sh                 the budget profile: no own task, 16 tasks, 2 events
#   scripts/agent-budget.sh -DMPFR_AGENT_OWN_TASK=1 ...   any other set of agent knobs
#   MPFR_BOARD=qemu-mps2-an521 scripts/agent-budget.sh    the same on two Cortex-M33 (SMP port)
#   MPFR_BIN=target/debug/mpfr scripts/agent-budget.sh   with an mpfr already built
#
# Needs what scripts/setup.sh installs (arm-none-eabi-gcc, cargo, python3).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ]; then
    set -- -DMPFR_AGENT_OWN_TASK=0 -DMPFR_AGENT_MAX_TASKS=16 -DMPFR_AGENT_EVENTS=2 \
        -DMPFR_AGENT_EVENT_TEXT=16
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel=$(cargo metadata --locked --format-version 1 | python3 -c '
import json, sys
pkgs = json.load(sys.stdin)["packages"]
print([p for p in pkgs if p["name"] == "freertos-next"][0]["manifest_path"].rsplit("/", 1)[0])
')/FreeRTOS-Kernel
board=${MPFR_BOARD:-qemu-mps2-an385}
# $MPFR_BIN: an mpfr already built (CI passes the one its tests used; `cargo run -p mpfr` alone
# would compile mpfr again with other dependency features than a workspace build).
if [ -n "${MPFR_BIN:-}" ]; then
    "$MPFR_BIN" config --board "$board" --out "$work/config" >/dev/null
else
    cargo run --locked -q -p mpfr -- config --board "$board" --out "$work/config" >/dev/null
fi

# The CPU flags and port folder as boards.toml gives them for the board's reference build.
case "$board" in
qemu-mps2-an385)
    cpu=(-mcpu=cortex-m3 -mthumb)
    port=$kernel/portable/GCC/ARM_CM3 ;;
qemu-mps2-an521)
    cpu=(-mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16)
    port=$PWD/firmware/smp/cm33_mps2 ;;
*)
    echo "agent-budget.sh: no compiler flags for board $board (qemu-mps2-an385 or qemu-mps2-an521)" >&2
    exit 1 ;;
esac
cflags=("${cpu[@]}" -Os -std=gnu11 -fcallgraph-info=su
    -I"$work/config" -I"$PWD/firmware/reference" -I"$PWD/firmware/agent"
    -I"$kernel/include" -I"$port")
for f in firmware/agent/mpfr_agent.c firmware/agent/mpfr_proto.c firmware/agent/mpfr_rtt.c \
    "$kernel/tasks.c" "$kernel/list.c" "$port/port.c" \
    "$kernel/portable/MemMang/heap_4.c"; do
    case "$f" in /*) src=$f ;; *) src=$PWD/$f ;; esac
    (cd "$work" && arm-none-eabi-gcc "${cflags[@]}" "$@" -c "$src" -o "$(basename "$f" .c).o")
done

echo "board: $board; agent knobs: $*"
arm-none-eabi-size "$work"/mpfr_agent.o "$work"/mpfr_proto.o "$work"/mpfr_rtt.o
python3 - "$work" <<'EOF'
import glob, os, re, subprocess, sys

work = sys.argv[1]
agent = [os.path.join(work, f) for f in ("mpfr_agent.o", "mpfr_proto.o", "mpfr_rtt.o")]

def sizes(obj):
    out = subprocess.run(["arm-none-eabi-size", "-A", obj], capture_output=True, text=True,
                         check=True).stdout
    sec = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            sec[parts[0]] = int(parts[1])
    return sec

flash = sum(sizes(o).get(".text", 0) + sizes(o).get(".rodata", 0) for o in agent)
# The task walk (freertos_tasks_c_additions.h) is compiled into the kernel's tasks.o.
nm = subprocess.run(["arm-none-eabi-nm", "-S", os.path.join(work, "tasks.o")],
                    capture_output=True, text=True, check=True).stdout
flash += sum(int(l.split()[1], 16) for l in nm.splitlines()
             if len(l.split()) == 4 and l.split()[3] in ("mpfr_task_walk", "mpfr_walk_list"))
# The RTT buffers are mpfr_rtt.o's bss besides its control block; the agent's RAM is the rest.
nm = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", agent[2]], capture_output=True,
                    text=True, check=True).stdout
rtt_buffers = sum(int(l.split()[1], 16) for l in nm.splitlines()
                  if l.split()[-1] in ("log_buf", "tel_buf", "down_buf"))
ram = sum(sizes(o).get(".bss", 0) + sizes(o).get(".data", 0) for o in agent) - rtt_buffers

nodes, edges = {}, {}
for ci in glob.glob(os.path.join(work, "*.ci")):
    for line in open(ci):
        m = re.match(r'node: \{ title: "([^"]+)" label: "([^"]*)"', line)
        if m:
            b = re.search(r"\\n(\d+) bytes", m.group(2))
            if b:
                nodes[m.group(1)] = int(b.group(1))
            continue
        m = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
        if m:
            edges.setdefault(m.group(1), []).append(m.group(2))

# The kernel's task walk calls the agent back through a pointer: follow it by name.
for walker in [n for n in nodes if n.rsplit(":", 1)[-1] in ("mpfr_walk_list", "mpfr_task_walk")]:
    edges.setdefault(walker, []).extend(n for n in nodes if n.rsplit(":", 1)[-1] == "visit")

def deepest(fn, seen=()):
    if fn in seen or fn not in nodes:
        return 0, []
    best = (0, [])
    for callee in edges.get(fn, []):
        d = deepest(callee, seen + (fn,))
        if d[0] > best[0]:
            best = d
    return nodes[fn] + best[0], [f"{fn.rsplit(':', 1)[-1]} {nodes[fn]}"] + best[1]

entry = "mpfr_agent_poll" if "mpfr_agent_poll" in nodes else next(
    (n for n in nodes if n.endswith(":agent_main")), None)
stack, path = deepest(entry) if entry else (0, [])
print(f"flash {flash} B (budget 4096)")
print(f"static RAM {ram} B besides {rtt_buffers} B of RTT buffers (budget 1024)")
print(f"stack {stack} B deepest, in the task that runs {entry}: {' > '.join(path)}")
print("  (calls through the firmware's source callbacks are not included)")
EOF
