#!/usr/bin/env bash
# Regenerates server/link/symbol-order.txt from a profile of the release
# binary: start-up, one round of each protocol (exercise.py), shutdown.
# See server/link/README.md. Needs valgrind and python3 with `websockets`;
# with perf (and permission to trace page faults) it also adds code that
# only the real CPU runs. Takes a few minutes; uses ports 19650, 18080 and
# 18443 on 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
link="$root/server/link"
work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

cd "$root"
# The same profile and flags as any release build, so the symbol names
# (which carry a hash of the build's settings) are the ones lld will see.
TORSION_LINK_MAP="$work/map.txt" cargo build --release --bin torsion
bin="$root/target/release/torsion"
ports=(19650 18080 18443)
args=(--port "${ports[0]}" --http-port "${ports[1]}" --ws-port "${ports[2]}")
mkdir -p "$work/run" && cd "$work/run"

wait_listening() {
    for _ in $(seq 1 120); do
        grep -q "listening: http://" "$1" && return 0
        sleep 0.5
    done
    echo "torsion did not start; see $1" >&2
    exit 1
}

# 1. Every instruction valgrind runs, in three dumps: start-up, serving, shutdown.
valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
    --callgrind-out-file="$work/cg.%p" "$bin" "${args[@]}" >"$work/vg.log" 2>&1 &
server=$!
wait_listening "$work/vg.log"
sleep 1
callgrind_control --dump=startup "$server" >/dev/null
python3 "$link/exercise.py" "${ports[@]}"
sleep 2
callgrind_control --dump=serving "$server" >/dev/null
kill -TERM "$server"
wait "$server" || true
server=
final=$(ls "$work"/cg.* | grep -v '\.[0-9]$')
cg=("$final.1" "$final.2" "$final")

# 2. What the real CPU runs that valgrind's does not: its exec page faults.
faults=()
if command -v perf >/dev/null; then
    perf record -q -e exceptions:page_fault_user -o "$work/pf.data" \
        "$bin" "${args[@]}" >"$work/pf.log" 2>&1 &
    server=$!
    wait_listening "$work/pf.log"
    python3 "$link/exercise.py" "${ports[@]}" >/dev/null
    kill -TERM "$(pgrep -P "$server" -x torsion || echo "$server")" 2>/dev/null || true
    wait "$server" || true
    server=
    if perf script -i "$work/pf.data" -F trace >"$work/pf.txt" 2>/dev/null &&
        perf script -i "$work/pf.data" --show-mmap-events >"$work/pf.maps" 2>/dev/null; then
        faults=(--faults "$work/pf.txt" "$work/pf.maps")
    fi
fi

python3 "$link/order.py" "$work/map.txt" "$bin" "${cg[@]}" "${faults[@]}" \
    --real-cpu "$link/real-cpu-only.txt" \
    >"$link/symbol-order.txt"
echo "wrote $link/symbol-order.txt ($(wc -l <"$link/symbol-order.txt") sections); rebuild with cargo build --release"
