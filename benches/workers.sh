#!/usr/bin/env bash
# Gemini requests per second with --workers 1 and --workers 2 (issue 8).
#
#   benches/workers.sh                    # 5 alternating rounds of 10 s each
#   ROUNDS=3 SECS=5 CONNS=64 benches/workers.sh
#
# One torsion at a time, Gemini only, on a free port of 127.0.0.1 with the
# built-in capsule; `torsion bench gemini://…/ -c CONNS` (a fresh TLS 1.3
# connection per request) for SECS after 1 s of warm-up, the two worker
# counts alternating round by round (the order reverses every other round).
# Nothing is pinned: two workers need both cores, and the load generator
# runs beside them. Prints one line per round and the medians as a markdown
# table; RUST_LOG=warn (an access line per request is not free).
#
# On a machine with as many cores as workers plus the load's, the second
# worker adds a core's worth of handshakes. On 2 cores the load generator
# (whose TLS handshakes cost about what the server's do) takes one of them,
# so this measures what a second worker buys when the cores are already
# shared — say so next to the figures.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-10}
CONNS=${CONNS:-64}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/torsion

(cd "$ROOT" && cargo build --release --quiet)
WORK=$(mktemp -d)
SERVER=
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run_round WORKERS → prints "req/s server_us_per_op"
run_round() {
    local workers=$1 port log
    port=$(free_port)
    log=$WORK/server-$workers.log
    (cd "$WORK" && RUST_LOG=warn exec "$BIN" --no-http --no-ws --port "$port" \
        --workers "$workers" --state-dir "$WORK/state" --max-conns-per-ip 0 2>"$log") &
    SERVER=$!
    for _ in $(seq 100); do
        [ "$(grep -c 'listening on' "$log" || true)" -ge 1 ] && break
        sleep 0.05
    done
    timeout $((SECS + 30)) "$BIN" bench "gemini://localhost:$port/" -c "$CONNS" \
        --warmup 1s -d "${SECS}s" --server-pid "$SERVER" --json >"$WORK/out.json"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
    python3 - "$WORK/out.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
cpu = r["cpu"]["server_us_per_op"]
print(f'{r["ops_per_s"]:.0f} {cpu if cpu is not None else "nan"} {r["errors"]["total"]}')
EOF
}

declare -a R1 R2 C1 C2
for round in $(seq "$ROUNDS"); do
    order="1 2"
    [ $((round % 2)) -eq 0 ] && order="2 1"
    for w in $order; do
        read -r rps cpu errs < <(run_round "$w")
        echo "round $round  --workers $w  $rps req/s  server $cpu µs/req  errors $errs" >&2
        if [ "$w" = 1 ]; then R1+=("$rps"); C1+=("$cpu"); else R2+=("$rps"); C2+=("$cpu"); fi
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m1=$(median "${R1[@]}"); m2=$(median "${R2[@]}")
c1=$(median "${C1[@]}"); c2=$(median "${C2[@]}")
echo
echo "| workers | Gemini req/s (median of $ROUNDS) | server CPU µs/req | req/s ratio to 1 worker |"
echo "|--:|--:|--:|--:|"
echo "| 1 | $m1 | $c1 | 1.00 |"
awk -v a="$m1" -v b="$m2" -v c="$c2" 'BEGIN {printf "| 2 | %s | %s | %.2f |\n", b, c, b / a}'
echo
echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), -c $CONNS, ${SECS} s rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)."
