#!/usr/bin/env bash
# torsion against its peers on the same work, in one run (issue 9 point 3;
# the benchmark points of issues 4, 5 and 6).
#
#   benches/peers.sh                 # 3 rounds of 5 s per workload (~10-12 min)
#   QUICK=1 benches/peers.sh         # 1 round of 2 s, 1 s sweep: does the script work?
#   ROUNDS=5 SECS=10 benches/peers.sh
#   ONLY=ws benches/peers.sh         # sections: gemini,http,ws
#   SWEEP=0 IDLE_N=2000 benches/peers.sh   # no concurrency sweep, fewer idle connections
#
# What it does:
#   - installs the peers when missing: agate (cargo install), Jetforce and
#     Python websockets (pip), nginx and wrk (apt-get);
#   - builds torsion and its examples in release mode (tokio_ws_echo is the
#     tokio current_thread + tokio-tungstenite peer);
#   - runs every server pinned to core SERVER_CORE (0) and the load to core
#     LOAD_CORE (1) with taskset, on 127.0.0.1 only, alternating torsion and
#     each peer round by round (the order reverses every other round);
#   - measures each server's CPU time (utime + stime from /proc/PID/stat,
#     children included, so nginx's master + worker) over the measured
#     window and divides it by the operations: the figure to compare, since
#     one load core often cannot saturate one server core;
#   - measures RSS per idle connection (RSS before and after IDLE_N idle
#     connections, each having done one exchange) on freshly started
#     servers, before any load; benches/idle_conns.py opens them from
#     127.0.0.2, 127.0.0.3, ... (200 per address), so no server's
#     per-client cap refuses them;
#   - after the rounds, sweeps concurrency: each server once at each of
#     SWEEP_CONNS (1, 64, 512) concurrent connections for SWEEP_SECS, on
#     the section's main workload (Gemini page, HTTP keep-alive, WebSocket
#     64 B echo);
#   - writes medians and ratios (peer / torsion, for CPU per operation) to
#     benches/results/peers.md, every round to peers-rounds.tsv, every sweep
#     run to peers-sweep.tsv, a bar chart of server CPU per operation to
#     peers.svg and a line chart of throughput against concurrency per
#     section to peers-sweep-SECTION.svg (all written here with awk, no
#     plotting runtime).
#
# Servers run with logging at warn (RUST_LOG=warn for torsion and agate,
# access_log off for nginx): an access-log line per request is not free.
# Jetforce has no switch for its access log; it goes to a file here and its
# cost is part of Jetforce's figure (said in the report).
#
# Environment: ROUNDS (3), SECS (5), WARMUP (1, seconds before each measured
# window), CONNS (64), IDLE_N (10000), SWEEP (1; 0 skips the concurrency
# sweep), SWEEP_CONNS ("1 64 512"), SWEEP_SECS (3), SERVER_CORE (0),
# LOAD_CORE (1), ONLY (gemini,http,ws), QUICK (0), SKIP_INSTALL (0),
# SKIP_BUILD (0), OUT_DIR (benches/results), CARGO_TARGET_DIR (target),
# KEEP_WORK (0: keep the temporary directory with every server log and raw
# JSON).
#
# Everything it starts it stops by PID (also on error or Ctrl-C); every
# load run is bounded with timeout.

# Markdown backticks in single-quoted printf formats are meant literally.
# shellcheck disable=SC2016
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    SECS=${SECS:-2}
    SWEEP_SECS=${SWEEP_SECS:-1}
else
    ROUNDS=${ROUNDS:-3}
    SECS=${SECS:-5}
    SWEEP_SECS=${SWEEP_SECS:-3}
fi
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
IDLE_N=${IDLE_N:-10000}
SWEEP=${SWEEP:-1}
SWEEP_CONNS=${SWEEP_CONNS:-1 64 512}
SERVER_CORE=${SERVER_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
ONLY=${ONLY:-gemini,http,ws}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
OUT_DIR=${OUT_DIR:-$ROOT/benches/results}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TORSION=$TARGET_DIR/release/torsion
TOKIO_WS=$TARGET_DIR/release/examples/tokio_ws_echo
CLK_TCK=$(getconf CLK_TCK)

for v in ROUNDS SECS WARMUP CONNS IDLE_N SWEEP SWEEP_SECS SERVER_CORE LOAD_CORE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "peers.sh: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done
((ROUNDS >= 1 && SECS >= 1 && SWEEP_SECS >= 1)) || { echo "peers.sh: ROUNDS, SECS and SWEEP_SECS must be at least 1" >&2; exit 2; }
# Commas or spaces; ascending whole numbers.
SWEEP_CONNS=${SWEEP_CONNS//,/ }
for c in $SWEEP_CONNS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: SWEEP_CONNS must list whole numbers, not '$c'" >&2; exit 2; }
done

log() { printf '[peers %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/torsion-peers.XXXXXX")
STARTED=()         # PIDs of servers and helpers still running
ROUNDS_TSV=$WORK/rounds.tsv
SWEEP_TSV=$WORK/sweep.tsv
MEM_TSV=$WORK/memory.tsv
NOTES_TSV=$WORK/notes.tsv
# Where bench_run and wrk_run append their line: the sweep sets it (with
# SECS and CONNS) as a local for the functions it calls.
RUN_TSV=$ROUNDS_TSV
: >"$ROUNDS_TSV"
: >"$SWEEP_TSV"
: >"$MEM_TSV"
: >"$NOTES_TSV"

# Whether a process we started still runs (`kill -0` also succeeds on a
# zombie not yet reaped, which would make every wait below time out).
running() {
    local s
    s=$(cat /proc/"$1"/stat 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z ]]
}

# Stops one process we started: TERM, up to 5 s, then KILL.
stop_pid() {
    local pid=$1 i
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]}")
}

cleanup() {
    local p
    for p in "${STARTED[@]}"; do stop_pid "$p"; done
    if [[ $KEEP_WORK == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A note for the report: section, text.
note() {
    printf '%s\t%s\n' "$1" "$2" >>"$NOTES_TSV"
    log "$1: $2"
}

section_on() { [[ ,$ONLY, == *,$1,* ]]; }

# ---------------------------------------------------------------- install

# Runs an install step, bounded; a failure is reported, not fatal (the
# peer is then skipped and the report says why).
try_install() {
    local what=$1 limit=$2
    shift 2
    log "installing $what: $*"
    if ! timeout "$limit" "$@" >"$WORK/install-$what.log" 2>&1; then
        log "could not install $what; last lines of its output:"
        tail -n 15 "$WORK/install-$what.log" >&2 || true
        printf 'install\tcould not install %s (`%s`): %s\n' "$what" "$*" \
            "$(tail -n 3 "$WORK/install-$what.log" | tr '\n\t' '  ')" >>"$NOTES_TSV"
        return 1
    fi
}

install_peers() {
    if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
        # Debian starts a newly installed nginx on port 80 unless a
        # policy-rc.d forbids it: forbid it for the duration (only when the
        # machine has none of its own).
        local policy=/usr/sbin/policy-rc.d made_policy=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
        fi
        try_install apt-update 600 apt-get update || true
        DEBIAN_FRONTEND=noninteractive try_install nginx-wrk 900 \
            apt-get install -y --no-install-recommends nginx wrk || true
        if ((made_policy)); then rm -f "$policy"; fi
    fi
    if ! command -v agate >/dev/null; then
        # Several minutes: it compiles agate.
        try_install agate 3600 cargo install agate --locked || true
    fi
    if ! command -v jetforce >/dev/null; then
        try_install jetforce 900 python3 -m pip install --quiet jetforce || true
    fi
    if ! python3 -c 'import websockets' 2>/dev/null; then
        try_install websockets 600 python3 -m pip install --quiet websockets || true
    fi
}

# ---------------------------------------------------------------- processes

# A free TCP port on 127.0.0.1 (the kernel's pick; the small race until the
# server binds it is harmless here).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts `CMD...` pinned to the server core with its output in LOG, and
# waits until PORT accepts connections. Sets LAST_PID. Returns 1 (after a
# note) when it does not come up within 30 s.
start_server() {
    local section=$1 name=$2 port=$3 logf=$4 i
    shift 4
    taskset -c "$SERVER_CORE" "$@" >"$logf" 2>&1 </dev/null &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
    for ((i = 0; i < 300; i++)); do
        if ! running "$LAST_PID"; then
            note "$section" "$name did not start (\`$*\`): $(tail -n 5 "$logf" | tr '\n\t' '  ')"
            stop_pid "$LAST_PID"
            return 1
        fi
        if timeout 1 bash -c ": <>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    note "$section" "$name was not listening on 127.0.0.1:$port after 30 s (\`$*\`)"
    stop_pid "$LAST_PID"
    return 1
}

# The PID and all its descendants.
tree_pids() {
    local c
    echo "$1"
    # shellcheck disable=SC2013 # the children files hold whitespace-separated PIDs
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}

# utime + stime in clock ticks of a process tree.
cpu_ticks() {
    local total=0 p s f
    for p in $(tree_pids "$1"); do
        s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
        # Fields after the command name (which may hold spaces) start at ')'.
        read -ra f <<<"${s##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# VmRSS in KiB of a process tree.
rss_kib() {
    local total=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' /proc/"$p"/status 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------- measuring

# One `torsion bench` run against PID; appends a line to rounds.tsv.
# bench_run SECTION WORKLOAD SERVER ROUND PID URL [bench options]
bench_run() {
    local section=$1 workload=$2 server=$3 round=$4 pid=$5 url=$6
    shift 6
    local json=$WORK/$section-$workload-$server-$round.json
    # torsion bench reads the CPU of PID alone: a server that runs its work
    # in child processes would look free.
    if (($(tree_pids "$pid" | wc -l) > 1)); then
        note "$section" "$server (pid $pid) has child processes: its CPU figure covers pid $pid only"
    fi
    if ! timeout $((SECS + WARMUP + 60)) taskset -c "$LOAD_CORE" "$TORSION" bench "$url" \
        -d "${SECS}s" --warmup "${WARMUP}s" --json --server-pid "$pid" "$@" \
        >"$json" 2>"$json.err"; then
        note "$section" "$workload against $server, round $round: torsion bench failed: $(tail -n 3 "$json.err" | tr '\n\t' '  ')"
        return 0
    fi
    python3 - "$json" "$section" "$workload" "$server" "$round" >>"$RUN_TSV" <<'EOF'
import json, sys
path, section, workload, server, rnd = sys.argv[1:]
d = json.load(open(path))
cpu = d.get("cpu", {})
def f(v):
    return "nan" if v is None else f"{v:.3f}"
print("\t".join([section, workload, server, rnd, f(d.get("ops_per_s")),
                 f(cpu.get("server_us_per_op")), f(cpu.get("harness_util")),
                 str(d.get("errors", {}).get("total", 0))]))
EOF
    tail -n 1 "$RUN_TSV" | awk -F'\t' '{printf "  %-10s %-18s round %s: %12s ops/s  %9s µs server CPU/op  load %s  errors %s\n", $2, $3, $4, $5, $6, $7, $8}' >&2
}

# One wrk run against PID (HTTP); server CPU from /proc over wrk's run.
# wrk_run SECTION WORKLOAD SERVER ROUND PID PORT [wrk options]
wrk_run() {
    local section=$1 workload=$2 server=$3 round=$4 pid=$5 port=$6
    shift 6
    local url=http://127.0.0.1:$port/ out=$WORK/$section-$workload-$server-$round.wrk
    timeout $((WARMUP + 30)) taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$@" "$url" \
        >/dev/null 2>&1 || true
    local c0 c1 t0 t1 times
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    local TIMEFORMAT='%U %S'
    if ! { time timeout $((SECS + 60)) taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNS" -d"${SECS}s" "$@" "$url" \
        >"$out" 2>"$out.err"; } 2>"$out.time"; then
        note "$section" "$workload against $server, round $round: wrk failed: $(tail -n 3 "$out.err" | tr '\n\t' '  ')"
        return 0
    fi
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    times=$(tail -n 1 "$out.time")
    awk -v s="$section" -v w="$workload" -v sv="$server" -v r="$round" \
        -v dc=$((c1 - c0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" -v times="$times" '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { v = $i; sub(",", "", v); err += v } }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END {
            split(times, u, " ")
            util = (t1 > t0) ? (u[1] + u[2]) / (t1 - t0) : 0
            cpu = (n > 0) ? dc / hz * 1e6 / n : "nan"
            printf "%s\t%s\t%s\t%s\t%.3f\t%s\t%.3f\t%d\n", s, w, sv, r, rps, \
                (n > 0 ? sprintf("%.3f", cpu) : "nan"), util, err
        }' "$out" >>"$RUN_TSV"
    tail -n 1 "$RUN_TSV" | awk -F'\t' '{printf "  %-10s %-18s round %s: %12s ops/s  %9s µs server CPU/op  load %s  errors %s\n", $2, $3, $4, $5, $6, $7, $8}' >&2
}

# RSS per idle connection: IDLE_N connections of KIND (tls, http, ws), each
# having done one exchange. Appends a line to memory.tsv.
# idle_memory SECTION SERVER PID PORT KIND
idle_memory() {
    local section=$1 server=$2 pid=$3 port=$4 kind=$5
    local out=$WORK/idle-$section-$server.out go=$WORK/idle-$section-$server.go i before after
    taskset -c "$LOAD_CORE" python3 "$ROOT/benches/idle_conns.py" "$kind" 127.0.0.1 "$port" "$IDLE_N" "$go" \
        >"$out" 2>"$out.err" </dev/null &
    local holder=$!
    STARTED+=("$holder")
    wait_line() { # pattern, seconds
        local j
        for ((j = 0; j < $2 * 10; j++)); do
            grep -q "$1" "$out" 2>/dev/null && return 0
            running "$holder" || return 1
            sleep 0.1
        done
        return 1
    }
    if ! wait_line '^warm' 60; then
        note "$section" "idle memory of $server: the holder did not warm up: $(tail -n 3 "$out.err" | tr '\n\t' '  ')"
        stop_pid "$holder"
        return 0
    fi
    sleep 0.5
    before=$(rss_kib "$pid")
    touch "$go"
    if ! wait_line '^ready' 300; then
        note "$section" "idle memory of $server: $IDLE_N connections were not opened: $(tail -n 3 "$out.err" | tr '\n\t' '  ')"
        stop_pid "$holder"
        return 0
    fi
    sleep 1
    after=$(rss_kib "$pid")
    wait_line '^alive' 30 || true
    stop_pid "$holder"
    local opened failed alive
    read -r _ opened failed <<<"$(grep '^ready' "$out")"
    alive=$(awk '/^alive/ {print $2}' "$out")
    alive=${alive:-nan}
    if ((failed > 0)); then
        note "$section" "idle memory of $server: $failed of $IDLE_N connections failed: $(head -n 1 "$out.err" | tr '\n\t' '  ')"
    fi
    if [[ $alive != "$opened" ]]; then
        note "$section" "idle memory of $server: only $alive of $opened connections were still open 2 s later"
    fi
    awk -v s="$section" -v sv="$server" -v b="$before" -v a="$after" -v n="$opened" -v al="$alive" \
        'BEGIN { printf "%s\t%s\t%s\t%d\t%s\t%d\t%d\n", s, sv, (n > 0 ? sprintf("%.2f", (a - b) / n) : "nan"), n, al, b, a }' \
        >>"$MEM_TSV"
    tail -n 1 "$MEM_TSV" | awk -F'\t' '{printf "  idle       %-18s %s KiB per connection (%s opened, %s alive; RSS %s -> %s KiB)\n", $2, $3, $4, $5, $6, $7}' >&2
}

# The servers of a section, in run order: parallel arrays.
SV_NAMES=()
SV_PIDS=()
SV_PORTS=()

add_server() {
    SV_NAMES+=("$1")
    SV_PIDS+=("$2")
    SV_PORTS+=("$3")
}

stop_servers() {
    local p
    for p in "${SV_PIDS[@]}"; do stop_pid "$p"; done
    SV_NAMES=()
    SV_PIDS=()
    SV_PORTS=()
}

# Indexes of the servers in this round's order: forward on odd rounds,
# backward on even ones, so drift in the machine's load evens out.
round_order() {
    local r=$1 n=${#SV_NAMES[@]} i
    if ((r % 2 == 1)); then
        for ((i = 0; i < n; i++)); do echo "$i"; done
    else
        for ((i = n - 1; i >= 0; i--)); do echo "$i"; done
    fi
}

# The concurrency sweep of a section: each server once at each of
# SWEEP_CONNS on the section's main workload, SWEEP_SECS each, the order of
# the servers reversing at every level. Lines go to sweep.tsv with "cN" in
# the round column.
# sweep SECTION WORKLOAD
sweep() {
    local section=$1 workload=$2
    ((SWEEP)) || return 0
    # Seen by bench_run and wrk_run (bash scoping is dynamic).
    local RUN_TSV=$SWEEP_TSV SECS=$SWEEP_SECS CONNS c i k=0
    log "   $section sweep: ${SV_NAMES[*]} at -c ${SWEEP_CONNS// /, }, $SECS s each"
    for c in $SWEEP_CONNS; do
        CONNS=$c
        k=$((k + 1))
        for i in $(round_order "$k"); do
            case $section in
                gemini)
                    bench_run gemini "$workload" "${SV_NAMES[$i]}" "c$c" "${SV_PIDS[$i]}" \
                        "gemini://localhost:${SV_PORTS[$i]}/" -c "$c"
                    ;;
                http)
                    wrk_run http "$workload" "${SV_NAMES[$i]}" "c$c" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}"
                    ;;
                ws)
                    bench_run ws "$workload" "${SV_NAMES[$i]}" "c$c" "${SV_PIDS[$i]}" \
                        "ws://127.0.0.1:${SV_PORTS[$i]}/echo" -c "$c" --size 64 --pipeline 8
                    ;;
            esac
        done
    done
}

# ---------------------------------------------------------------- sections

# --max-conns-per-ip 0: the load comes from one address with up to 512
# connections (the sweep), and no peer caps connections per client. (The
# idle connections come from many addresses, so they would not need it.)
torsion_server() { # section port logfile [torsion options]
    local section=$1 port=$2 logf=$3
    shift 3
    start_server "$section" torsion "$port" "$logf" env RUST_LOG=warn "$TORSION" \
        --state-dir "$WORK/state" --max-conns-per-ip 0 "$@" ||
        die "torsion did not start; see the notes above"
}

gemini_section() {
    log "== Gemini (issue 4): a fresh TLS connection per request for a 1 KiB index.gmi"
    local cap=$WORK/capsule i
    mkdir -p "$cap"
    local page=$'# torsion peer benchmark\n\n'
    while ((${#page} < 1023)); do page+=$'A line of gemtext to make the page one KiB long.\n'; done
    printf '%s\n' "${page:0:1023}" >"$cap/index.gmi"
    # One ECDSA P-256 certificate for every server (as the issue measured).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 ||
        die "openssl could not make a certificate"
    # agate reads DER files from a certificate directory.
    mkdir -p "$WORK/agate-certs"
    openssl x509 -in "$WORK/cert.pem" -outform DER -out "$WORK/agate-certs/cert.der"
    openssl pkcs8 -topk8 -nocrypt -in "$WORK/key.pem" -outform DER -out "$WORK/agate-certs/key.der"

    local port
    port=$(free_port)
    torsion_server gemini "$port" "$WORK/torsion-gemini.log" --host 127.0.0.1 --port "$port" \
        --hostname localhost --no-http --no-ws --dir "$cap" \
        --tls-certfile "$WORK/cert.pem" --tls-keyfile "$WORK/key.pem"
    add_server torsion "$LAST_PID" "$port"
    if command -v agate >/dev/null; then
        port=$(free_port)
        if start_server gemini agate "$port" "$WORK/agate.log" env RUST_LOG=warn agate \
            --content "$cap" --addr "127.0.0.1:$port" --hostname localhost --certs "$WORK/agate-certs"; then
            add_server agate "$LAST_PID" "$port"
        fi
    else
        note gemini "agate is not installed: not measured"
    fi
    if command -v jetforce >/dev/null; then
        port=$(free_port)
        if start_server gemini jetforce "$port" "$WORK/jetforce.log" jetforce --host 127.0.0.1 \
            --port "$port" --hostname localhost --dir "$cap" \
            --tls-certfile "$WORK/cert.pem" --tls-keyfile "$WORK/key.pem"; then
            add_server jetforce "$LAST_PID" "$port"
        fi
    else
        note gemini "jetforce is not installed: not measured"
    fi

    for i in "${!SV_NAMES[@]}"; do
        idle_memory gemini "${SV_NAMES[$i]}" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}" tls
    done
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        for i in $(round_order "$r"); do
            bench_run gemini index "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" \
                "gemini://localhost:${SV_PORTS[$i]}/" -c "$CONNS"
        done
    done
    sweep gemini index
    stop_servers
}

http_section() {
    log "== HTTP redirect (issue 5): wrk -t1 -c$CONNS, keep-alive and Connection: close"
    command -v wrk >/dev/null || { note http "wrk is not installed: section skipped"; return 0; }
    local port i
    port=$(free_port)
    torsion_server http "$port" "$WORK/torsion-http.log" --no-gemini --no-ws \
        --http-host 127.0.0.1 --http-port "$port"
    add_server torsion "$LAST_PID" "$port"
    if command -v nginx >/dev/null; then
        port=$(free_port)
        mkdir -p "$WORK/nginx"
        cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log stderr warn;
pid $WORK/nginx/nginx.pid;
worker_rlimit_nofile $((IDLE_N + 2048));
events { worker_connections $((IDLE_N + 1024)); }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$port;
        return 301 https://\$host\$request_uri;
    }
}
EOF
        if start_server http nginx "$port" "$WORK/nginx.log" nginx -e stderr \
            -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"; then
            add_server nginx "$LAST_PID" "$port"
        fi
    else
        note http "nginx is not installed: not measured"
    fi

    for i in "${!SV_NAMES[@]}"; do
        idle_memory http "${SV_NAMES[$i]}" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}" http
    done
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        for i in $(round_order "$r"); do
            wrk_run http keepalive "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}"
        done
        for i in $(round_order "$r"); do
            wrk_run http close "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}" \
                -H 'Connection: close'
        done
    done
    sweep http keepalive
    stop_servers
}

ws_section() {
    log "== WebSocket (issue 6): echo with $CONNS connections, 64 B and 16 KiB, and new connections"
    local port i
    port=$(free_port)
    torsion_server ws "$port" "$WORK/torsion-ws.log" --no-gemini --no-http \
        --ws-host 127.0.0.1 --ws-port "$port" --ws-plain
    add_server torsion "$LAST_PID" "$port"
    port=$(free_port)
    if start_server ws tokio-tungstenite "$port" "$WORK/tokio-ws.log" "$TOKIO_WS" "127.0.0.1:$port"; then
        add_server tokio-tungstenite "$LAST_PID" "$port"
    fi
    if python3 -c 'import websockets' 2>/dev/null; then
        port=$(free_port)
        if start_server ws websockets "$port" "$WORK/py-ws.log" python3 "$ROOT/benches/py_ws_echo.py" \
            "127.0.0.1:$port"; then
            add_server websockets "$LAST_PID" "$port"
        fi
    else
        note ws "Python websockets is not installed: not measured"
    fi

    for i in "${!SV_NAMES[@]}"; do
        idle_memory ws "${SV_NAMES[$i]}" "${SV_PIDS[$i]}" "${SV_PORTS[$i]}" ws
    done
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        for i in $(round_order "$r"); do
            bench_run ws echo64 "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" \
                "ws://127.0.0.1:${SV_PORTS[$i]}/echo" -c "$CONNS" --size 64 --pipeline 8
        done
        for i in $(round_order "$r"); do
            bench_run ws echo16k "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" \
                "ws://127.0.0.1:${SV_PORTS[$i]}/echo" -c "$CONNS" --size 16384 --pipeline 8
        done
        for i in $(round_order "$r"); do
            bench_run ws connect "${SV_NAMES[$i]}" "$r" "${SV_PIDS[$i]}" \
                "ws://127.0.0.1:${SV_PORTS[$i]}/echo" -c "$CONNS" --connect-only
        done
    done
    sweep ws echo64
    stop_servers
}

# ---------------------------------------------------------------- report

versions() {
    local v
    printf -- '- torsion: %s\n' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    if section_on gemini; then
        v=$(agate --version 2>&1 | head -n 1) || v="not installed"
        printf -- '- agate: %s\n' "${v:-not installed}"
        v=$(jetforce --version 2>&1 | head -n 1) || v="not installed"
        printf -- '- Jetforce: %s\n' "${v:-not installed}"
    fi
    if section_on http; then
        v=$(nginx -v 2>&1 | head -n 1) || v="not installed"
        printf -- '- nginx: %s\n' "$v"
        v=$(wrk -v 2>&1 | head -n 1 || true)
        printf -- '- wrk: %s\n' "${v:-not installed}"
    fi
    if section_on ws; then
        v=$(awk '/^name = "tokio-tungstenite"/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$ROOT/Cargo.lock")
        printf -- '- tokio-tungstenite: %s (examples/tokio_ws_echo.rs, tokio current_thread)\n' "${v:-unknown}"
        v=$(python3 -c 'import websockets; print(websockets.__version__)' 2>/dev/null) || v="not installed"
        printf -- '- Python websockets: %s on %s (benches/py_ws_echo.py)\n' "$v" "$(python3 --version 2>&1)"
    fi
}

# Medians per (section, workload, server), in order of first appearance:
# section workload server rounds ops_median cpu_median load_median errors cpu_rounds
medians() {
    awk -F'\t' '
        function med(list,    n, a, i, j, t) {
            n = 0
            split(list, parts, ",")
            for (i in parts) if (parts[i] != "nan" && parts[i] != "") a[++n] = parts[i] + 0
            if (n == 0) return "nan"
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        {
            k = $1 SUBSEP $2 SUBSEP $3
            if (!(k in n)) { order[++keys] = k }
            n[k]++
            ops[k] = ops[k] (n[k] > 1 ? "," : "") $5
            cpu[k] = cpu[k] (n[k] > 1 ? "," : "") $6
            load[k] = load[k] (n[k] > 1 ? "," : "") $7
            err[k] += $8
        }
        END {
            for (i = 1; i <= keys; i++) {
                k = order[i]; split(k, f, SUBSEP)
                printf "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", f[1], f[2], f[3], n[k], med(ops[k]), med(cpu[k]), med(load[k]), err[k], cpu[k]
            }
        }' "$ROUNDS_TSV"
}

# The markdown table of one section from medians.tsv.
section_table() {
    awk -F'\t' -v sec="$1" '
        BEGIN {
            # Goals from the issues: peer CPU per op / torsion CPU per op.
            goal["gemini/index/agate"] = 2; goal["gemini/index/jetforce"] = 5
            goal["http/keepalive/nginx"] = 1.3; goal["http/close/nginx"] = 1
            goal["ws/echo64/tokio-tungstenite"] = 1.5; goal["ws/connect/tokio-tungstenite"] = 1
            wl["index"] = "1 KiB index.gmi, -c '"$CONNS"', new TLS connection per request"
            wl["keepalive"] = "wrk -t1 -c'"$CONNS"', keep-alive"
            wl["close"] = "wrk -t1 -c'"$CONNS"', Connection: close"
            wl["echo64"] = "64 B echo, -c '"$CONNS"' --pipeline 8"
            wl["echo16k"] = "16 KiB echo, -c '"$CONNS"' --pipeline 8"
            wl["connect"] = "new connections, -c '"$CONNS"' --connect-only"
            unit["index"] = "req"; unit["keepalive"] = "req"; unit["close"] = "req"
            unit["echo64"] = "msg"; unit["echo16k"] = "msg"; unit["connect"] = "conn"
        }
        $1 == sec { rows[++nr] = $0; if ($3 == "torsion") base[$2] = $6 }
        END {
            if (nr == 0) { print "_No measurements._"; exit }
            print "| workload | server | ops/s | server CPU µs/op | CPU ratio peer/torsion | goal | load core busy | errors | CPU µs/op per round |"
            print "|---|---|--:|--:|--:|---|--:|--:|---|"
            for (i = 1; i <= nr; i++) {
                split(rows[i], f, "\t")
                w = f[2]; s = f[3]
                ratio = "base"
                if (s != "torsion") {
                    ratio = (w in base && base[w] != "nan" && base[w] > 0 && f[6] != "nan") ? sprintf("%.2f", f[6] / base[w]) : "n/a"
                }
                g = ""
                k = sec "/" w "/" s
                if (k in goal) {
                    g = "≥ " goal[k]
                    if (ratio != "n/a") g = g ((ratio + 0 >= goal[k]) ? " (met)" : " (not met)")
                }
                ops = (f[5] == "nan") ? "n/a" : sprintf("%.0f", f[5])
                cpu = (f[6] == "nan") ? "n/a" : sprintf("%.2f", f[6])
                ld = (f[7] == "nan") ? "n/a" : sprintf("%.0f%%", f[7] * 100)
                rounds = f[9]; gsub(",", ", ", rounds)
                printf "| %s | %s | %s %s/s | %s | %s | %s | %s | %d | %s |\n", wl[w], s, ops, unit[w], cpu, ratio, g, ld, f[8], rounds
            }
        }' "$WORK/medians.tsv"
}

memory_table() {
    awk -F'\t' -v sec="$1" -v n="$IDLE_N" '
        BEGIN { goal["gemini"] = 6; goal["http"] = 0.6; goal["ws"] = 2 }
        $1 == sec { rows[++nr] = $0; if ($2 == "torsion") base = $3 }
        END {
            if (nr == 0) exit
            print ""
            printf "Idle memory: RSS before and after %d idle connections (each after one exchange, opened 32 at a time from 127.0.0.2, 127.0.0.3, ... with 200 per address), divided by them.\n\n", n
            print "| server | KiB per idle connection | ratio peer/torsion | goal (torsion) | opened | still open 2 s later |"
            print "|---|--:|--:|---|--:|--:|"
            for (i = 1; i <= nr; i++) {
                split(rows[i], f, "\t")
                ratio = (f[2] == "torsion") ? "base" : ((base != "" && base + 0 > 0 && f[3] != "nan") ? sprintf("%.2f", f[3] / base) : "n/a")
                g = (f[2] == "torsion" && (sec in goal)) ? sprintf("≤ %s KiB (%s)", goal[sec], (f[3] != "nan" && f[3] + 0 <= goal[sec]) ? "met" : "not met") : ""
                printf "| %s | %s | %s | %s | %d | %s |\n", f[2], f[3], ratio, g, f[4], f[5]
            }
        }' "$MEM_TSV"
}

section_notes() {
    awk -F'\t' -v sec="$1" '$1 == sec { if (!n++) print ""; print "- " $2 }' "$NOTES_TSV"
}

# A horizontal bar chart of median server CPU per operation, one group per
# workload, each group scaled to its own largest bar (workloads differ by
# orders of magnitude).
write_svg() {
    awk -F'\t' '
        function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
        BEGIN {
            title["gemini/index"] = "Gemini: 1 KiB page, new TLS connection each (µs per request)"
            title["http/keepalive"] = "HTTP redirect, keep-alive (µs per request)"
            title["http/close"] = "HTTP redirect, Connection: close (µs per request)"
            title["ws/echo64"] = "WebSocket echo, 64 B, pipeline 8 (µs per message)"
            title["ws/echo16k"] = "WebSocket echo, 16 KiB, pipeline 8 (µs per message)"
            title["ws/connect"] = "WebSocket, new connections (µs per connection)"
            colour["torsion"] = "#d9480f"
        }
        $6 != "nan" {
            g = $1 "/" $2
            if (!(g in count)) { groups[++ng] = g; max[g] = 0 }
            count[g]++
            name[g, count[g]] = $3; val[g, count[g]] = $6 + 0
            if ($6 + 0 > max[g]) max[g] = $6 + 0
        }
        END {
            left = 150; barw = 430; rowh = 20; headh = 28; width = left + barw + 110
            h = 56; for (i = 1; i <= ng; i++) h += headh + count[groups[i]] * rowh + 8
            printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", width, h, width, h
            printf "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
            printf "<text x=\"10\" y=\"24\" font-size=\"15\" font-weight=\"bold\">Server CPU time per operation, median (lower is better)</text>\n"
            printf "<text x=\"10\" y=\"42\" fill=\"#666\">Each workload is scaled to its own largest bar. torsion in orange.</text>\n"
            y = 56
            for (i = 1; i <= ng; i++) {
                g = groups[i]
                t = (g in title) ? title[g] : g
                printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\" fill=\"#333\">%s</text>\n", y + 16, esc(t)
                y += headh
                for (j = 1; j <= count[g]; j++) {
                    n = name[g, j]; v = val[g, j]
                    w = (max[g] > 0) ? v / max[g] * barw : 0
                    if (w < 1) w = 1
                    c = (n in colour) ? colour[n] : "#868e96"
                    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + 14, esc(n)
                    printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y + 2, w, rowh - 4, c
                    printf "<text x=\"%.1f\" y=\"%d\" fill=\"#333\">%.2f µs</text>\n", left + w + 6, y + 14, v
                    y += rowh
                }
                y += 8
            }
            print "</svg>"
        }' "$WORK/medians.tsv"
}

# Whether the sweep measured anything in a section.
has_sweep() {
    awk -F'\t' -v sec="$1" '$1 == sec && $5 != "nan" { found = 1; exit } END { exit !found }' "$SWEEP_TSV"
}

# The sweep of one section as a markdown table: one row per server, one
# column per concurrency.
sweep_table() {
    awk -F'\t' -v sec="$1" '
        function grp(v,    t, out) {
            t = sprintf("%.0f", v); out = ""
            while (length(t) > 3) { out = "," substr(t, length(t) - 2) out; t = substr(t, 1, length(t) - 3) }
            return t out
        }
        $1 == sec {
            c = substr($4, 2) + 0
            if (!(c in seenc)) { seenc[c] = 1; cs[++nc] = c }
            if (!($3 in seens)) { seens[$3] = 1; names[++ns] = $3 }
            ops[$3, c] = $5; cpu[$3, c] = $6; ld[$3, c] = $7; err[$3, c] = $8
        }
        END {
            if (ns == 0) exit
            for (i = 2; i <= nc; i++) { t = cs[i]; for (j = i - 1; j >= 1 && cs[j] > t; j--) cs[j + 1] = cs[j]; cs[j + 1] = t }
            printf "| server |"; for (i = 1; i <= nc; i++) printf " -c %d |", cs[i]; print ""
            printf "|---|"; for (i = 1; i <= nc; i++) printf "--:|"; print ""
            for (k = 1; k <= ns; k++) {
                n = names[k]
                printf "| %s |", n
                for (i = 1; i <= nc; i++) {
                    c = cs[i]
                    if (!((n, c) in ops) || ops[n, c] == "nan") { printf " n/a |"; continue }
                    cell = grp(ops[n, c]) "/s"
                    if (cpu[n, c] != "nan") cell = cell ", " sprintf("%.2f", cpu[n, c]) " µs"
                    if (ld[n, c] != "nan") cell = cell ", load " sprintf("%.0f%%", ld[n, c] * 100)
                    if (err[n, c] > 0) cell = cell ", " err[n, c] " errors"
                    printf " %s |", cell
                }
                print ""
            }
        }' "$SWEEP_TSV"
}

# A line chart of one section's sweep: x = concurrency (one step per
# level, so 1, 64, 512 are evenly spaced, as on a log scale), y = ops/s from
# 0, one line per server, torsion in orange.
write_sweep_svg() {
    awk -F'\t' -v sec="$1" -v secs="$SWEEP_SECS" -v warm="$WARMUP" \
        -v score="$SERVER_CORE" -v lcore="$LOAD_CORE" '
        function esc(t) { gsub(/&/, "\\&amp;", t); gsub(/</, "\\&lt;", t); gsub(/>/, "\\&gt;", t); return t }
        function grp(v,    t, out) {
            t = sprintf("%.0f", v); out = ""
            while (length(t) > 3) { out = "," substr(t, length(t) - 2) out; t = substr(t, 1, length(t) - 3) }
            return t out
        }
        BEGIN {
            title["gemini"] = "Gemini: 1 KiB page, a new TLS connection per request"
            unit["gemini"] = "requests per second"
            title["http"] = "HTTP redirect, wrk -t1, keep-alive"
            unit["http"] = "requests per second"
            title["ws"] = "WebSocket echo, 64 B messages, --pipeline 8"
            unit["ws"] = "messages per second"
            colour["torsion"] = "#d9480f"
            pal[1] = "#1971c2"; pal[2] = "#2f9e44"; pal[3] = "#7048e8"; pal[4] = "#868e96"; pal[5] = "#e64980"
        }
        $1 == sec && $5 != "nan" {
            c = substr($4, 2) + 0
            if (!(c in seenc)) { seenc[c] = 1; cs[++nc] = c }
            if (!($3 in seens)) { seens[$3] = 1; names[++ns] = $3 }
            ops[$3, c] = $5 + 0
            if ($5 + 0 > max) max = $5 + 0
        }
        END {
            if (ns == 0) exit
            for (i = 2; i <= nc; i++) { t = cs[i]; for (j = i - 1; j >= 1 && cs[j] > t; j--) cs[j + 1] = cs[j]; cs[j + 1] = t }
            W = 700; H = 410; L = 90; R = 180; T = 76; B = 58
            pw = W - L - R; ph = H - T - B
            # A round step for about five grid lines.
            if (max <= 0) max = 1
            raw = max / 5; mag = exp(log(10) * int(log(raw) / log(10)))
            if (mag > raw) mag /= 10
            norm = raw / mag
            step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag
            ymax = step * int(max / step + 0.999999)
            if (ymax < max) ymax += step
            printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
            printf "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
            printf "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", esc((sec in title) ? title[sec] : sec)
            printf "<text x=\"10\" y=\"40\" fill=\"#666\">Throughput against concurrency, higher is better. One %s s run per point after %s s of warm-up;</text>\n", secs, warm
            printf "<text x=\"10\" y=\"56\" fill=\"#666\">server on core %s, load on core %s: near a saturated load core, compare server CPU per operation instead.</text>\n", score, lcore
            for (v = 0; v <= ymax + step / 2; v += step) {
                y = T + ph - v / ymax * ph
                printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e9ecef\"/>\n", L, y, L + pw, y
                printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333\">%s</text>\n", L - 8, y + 4, grp(v)
            }
            printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", L, T, L, T + ph
            printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", L, T + ph, L + pw, T + ph
            for (i = 1; i <= nc; i++) {
                x[i] = L + (i - 0.5) * pw / nc
                printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", x[i], T + ph, x[i], T + ph + 5
                printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">%d</text>\n", x[i], T + ph + 19, cs[i]
            }
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#333\">concurrent connections (-c)</text>\n", L + pw / 2, H - 12
            printf "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"#333\">%s</text>\n", T + ph / 2, esc(unit[sec])
            other = 0
            for (k = 1; k <= ns; k++) {
                n = names[k]
                col = (n in colour) ? colour[n] : pal[(other++ % 5) + 1]
                pts = ""
                for (i = 1; i <= nc; i++) {
                    if (!((n, cs[i]) in ops)) continue
                    pts = pts sprintf("%.1f,%.1f ", x[i], T + ph - ops[n, cs[i]] / ymax * ph)
                }
                printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", pts, col
                for (i = 1; i <= nc; i++) {
                    if (!((n, cs[i]) in ops)) continue
                    printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s, -c %d: %s/s</title></circle>\n", x[i], T + ph - ops[n, cs[i]] / ymax * ph, col, esc(n), cs[i], grp(ops[n, cs[i]])
                }
                ly = T + 8 + (k - 1) * 22
                printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", L + pw + 16, ly, L + pw + 40, ly, col
                printf "<text x=\"%d\" y=\"%d\" fill=\"#333\">%s</text>\n", L + pw + 46, ly + 4, esc(n)
            }
            print "</svg>"
        }' "$SWEEP_TSV"
}

# The sweep part of a section of the report, when the sweep measured it.
sweep_block() {
    has_sweep "$1" || return 0
    printf '\n### Throughput against concurrency

'
    printf 'Each server once at each concurrency (`SWEEP_CONNS`: %s), %s s after %s s of warm-up, on the workload above (' "${SWEEP_CONNS// /, }" "$SWEEP_SECS" "$WARMUP"
    case $1 in
        gemini) printf '1 KiB page, a new TLS connection per request' ;;
        http) printf '`wrk -t1`, keep-alive' ;;
        ws) printf '64 B echo, `--pipeline 8`' ;;
    esac
    printf '). Per cell: throughput, server CPU per operation, and how busy the load core was (near 100%%: the load'"'"'s limit, not the server'"'"'s). One run per point: a shape, not a figure to quote.

'
    printf '![%s: throughput against concurrency](peers-sweep-%s.svg)

' "$1" "$1"
    sweep_table "$1"
}

write_report() {
    mkdir -p "$OUT_DIR"
    medians >"$WORK/medians.tsv"
    cp "$ROUNDS_TSV" "$OUT_DIR/peers-rounds.tsv"
    cp "$SWEEP_TSV" "$OUT_DIR/peers-sweep.tsv"
    write_svg >"$OUT_DIR/peers.svg"
    local sec
    for sec in gemini http ws; do
        if section_on "$sec" && has_sweep "$sec"; then
            write_sweep_svg "$sec" >"$OUT_DIR/peers-sweep-$sec.svg"
        fi
    done
    local md=$OUT_DIR/peers.md
    {
        printf '# torsion and its peers\n\n'
        printf 'Written by `benches/peers.sh` on %s. Do not edit by hand: run the script again.\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        printf 'Machine: %s, %s cores, Linux %s. Load average at the start: %s; at the end: %s.\n\n' \
            "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$(nproc)" "$(uname -r)" \
            "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf 'Method: every server pinned to core %s, the load to core %s (`taskset`), traffic on 127.0.0.1; ' "$SERVER_CORE" "$LOAD_CORE"
        printf '%s round(s) of %s s after %s s of warm-up per workload, torsion and each peer alternating (the order reverses every other round); ' "$ROUNDS" "$SECS" "$WARMUP"
        printf 'figures are medians of the rounds. **Server CPU µs/op** is the server'"'"'s utime + stime from `/proc/PID/stat` (children included) over the measured window divided by the operations in it: the figure to compare, since one load core often cannot saturate one server core. '
        printf '**CPU ratio peer/torsion** above 1 means torsion spends less CPU per operation. "Load core busy" is the load generator'"'"'s CPU use: near 100%% its throughput is the load'"'"'s limit, not the server'"'"'s.\n\n'
        printf 'Logging: torsion and agate at `RUST_LOG=warn`, nginx with `access_log off`; Jetforce has no switch for its access log (written to a file), so its figures include one log line per request.\n\n'
        if [[ $QUICK == 1 || $ROUNDS -lt 3 ]]; then
            printf '> **Quick run (%s round(s) of %s s): these figures only show that the script works; do not quote them.**\n\n' "$ROUNDS" "$SECS"
        fi
        printf 'Versions:\n\n'
        versions
        printf '\n![Server CPU per operation](peers.svg)\n\n'
        printf 'Every round: [peers-rounds.tsv](peers-rounds.tsv) (section, workload, server, round, ops/s, server µs/op, load core share, errors); every run of the concurrency sweep: [peers-sweep.tsv](peers-sweep.tsv) (the same columns, `cN` for the round). Each section links its chart of throughput against concurrency.\n'
        if section_on gemini; then
            printf '\n## Gemini (issue 4)\n\n'
            printf 'A fresh TLS 1.3 connection per request (as Gemini does, no session resumption), `torsion bench gemini://localhost:PORT/ -c %s`; the same ECDSA P-256 certificate for every server. Goal: CPU per request at most half of agate'"'"'s and a fifth of Jetforce'"'"'s; at most 6 KiB per idle TLS connection.\n\n' "$CONNS"
            section_table gemini
            memory_table gemini
            sweep_block gemini
            section_notes gemini
        fi
        if section_on http; then
            printf '\n## HTTP redirect (issue 5)\n\n'
            printf '`wrk -t1 -c%s http://127.0.0.1:PORT/` against torsion'"'"'s redirect listener and nginx (one worker, `return 301 https://$host$request_uri;`, access log off), with keep-alive and with `-H '"'"'Connection: close'"'"'`; nginx'"'"'s CPU is master + worker. Goal: keep-alive throughput at least nginx'"'"'s with at most 1/1.3 of its CPU per request; with close, CPU per request at most nginx'"'"'s; at most 0.6 KiB per idle keep-alive connection.\n\n' "$CONNS"
            section_table http
            memory_table http
            sweep_block http
            section_notes http
        fi
        if section_on ws; then
            printf '\n## WebSocket (issue 6)\n\n'
            printf '`torsion bench ws://127.0.0.1:PORT/echo -c %s --size 64 --pipeline 8`, `--size 16384 --pipeline 8` and `--connect-only`, against torsion (`--ws-plain`), a tokio `current_thread` + tokio-tungstenite echo (default settings) and Python `websockets` (one asyncio loop, compression off). Goal: CPU per 64-byte message at most tokio-tungstenite'"'"'s / 1.5, CPU per new connection at most tokio-tungstenite'"'"'s, at most 2 KiB per idle ws:// connection.\n\n' "$CONNS"
            section_table ws
            memory_table ws
            sweep_block ws
            section_notes ws
        fi
        if grep -q '^install' "$NOTES_TSV"; then
            printf '\n## Installation problems\n\n'
            section_notes install
        fi
    } >"$md"
    log "wrote $md, $OUT_DIR/peers.svg and $OUT_DIR/peers-rounds.tsv"
}

# ---------------------------------------------------------------- main

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
cores=$(nproc)
((cores >= 2)) || log "warning: $cores core(s): the server and the load share one core"
((SERVER_CORE < cores && LOAD_CORE < cores)) || die "SERVER_CORE/LOAD_CORE must be below $cores"
[[ $(getent ahosts localhost | awk 'NR == 1 {print $1}') == 127.0.0.1 ]] ||
    die "localhost must resolve to 127.0.0.1 first (gemini://localhost/ is what the servers accept)"
for tool in taskset timeout python3 openssl getent; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
# IDLE_N idle connections need as many descriptors in the holder and in
# every server started from here: raise the soft limit to the hard one, and
# the hard one when it is too low and this may (root).
need_fds=$((IDLE_N + 1024))
if [[ $(ulimit -Hn) != unlimited ]] && (($(ulimit -Hn) < need_fds)); then
    ulimit -Hn "$need_fds" 2>/dev/null ||
        log "warning: the descriptor limit ($(ulimit -Hn)) is below the $need_fds that IDLE_N=$IDLE_N needs: idle connections will fail"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# cargo install puts agate here.
if [[ -d $HOME/.cargo/bin ]]; then PATH=$HOME/.cargo/bin:$PATH; fi
if [[ $SKIP_INSTALL != 1 ]]; then install_peers; fi
if [[ $SKIP_BUILD != 1 ]]; then
    log "building torsion and its examples (release) in $TARGET_DIR"
    (cd "$ROOT" && cargo build --release --quiet --bin torsion --examples) || die "the build failed"
fi
[[ -x $TORSION ]] || die "$TORSION is missing (build it, or set CARGO_TARGET_DIR)"
if section_on ws && [[ ! -x $TOKIO_WS ]]; then
    die "$TOKIO_WS is missing (cargo build --release --examples)"
fi

log "ROUNDS=$ROUNDS SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS IDLE_N=$IDLE_N, server on core $SERVER_CORE, load on core $LOAD_CORE; load average $LOAD_START"
if section_on gemini; then gemini_section; fi
if section_on http; then http_section; fi
if section_on ws; then ws_section; fi
write_report
cat "$OUT_DIR/peers.md"
