#!/usr/bin/env bash
# Runs torsion's fuzz targets (cargo fuzz / libFuzzer), one after another.
#
#   fuzz/run.sh SECONDS [TARGET]
#
# Builds every target once (release, with debug assertions and overflow
# checks), replays the saved crash inputs in fuzz/regressions/<target>/,
# then fuzzes each target for SECONDS on a scratch corpus seeded from
# fuzz/seeds/<target>/ (the repository is never written to). Prints one
# summary line per target and exits non-zero if any target crashed, leaked,
# ran out of memory or timed out, naming the input that did it.
#
# Environment:
#   FUZZ_WORK         scratch directory (default /tmp/torsion-fuzz): corpus/,
#                     artifacts/, logs/ per target
#   CARGO_TARGET_DIR  build directory (default /tmp/target-fuzz)
#   FUZZ_SANITIZER    force a sanitizer (address, none, ...)
#   FUZZ_ARGS         extra libFuzzer flags for every run (e.g. -dict=...)
#
# Toolchain: a nightly from rustup if there is one (with AddressSanitizer);
# else the default toolchain if it is a nightly; else the default (stable)
# toolchain with RUSTC_BOOTSTRAP=1 and no sanitizer (libFuzzer's coverage
# instrumentation needs only -Z flags, which RUSTC_BOOTSTRAP unlocks).
set -uo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET]" >&2
    exit 2
}

seconds=${1:-}
only=${2:-}
[[ $seconds =~ ^[0-9]+$ ]] || usage

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${FUZZ_WORK:-/tmp/torsion-fuzz}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-fuzz}

targets=(gemini_request http_request ws_handshake ws_frames proxy_header config_file rate_limit)
if [[ -n $only ]]; then
    found=no
    for t in "${targets[@]}"; do [[ $t == "$only" ]] && found=yes; done
    if [[ $found == no ]]; then
        echo "unknown target '$only'; targets: ${targets[*]}" >&2
        exit 2
    fi
    targets=("$only")
fi

# Longest input per target: a little past each parser's own limit, so the
# limit is reached but time is not spent on inputs no limit lets through.
max_len() {
    case $1 in
        gemini_request) echo 1200 ;;   # MAX_REQUEST_URL 1024 + CR LF
        http_request) echo 10000 ;;    # MAX_HEAD 8192 (+ 4 control bytes)
        ws_handshake) echo 9000 ;;     # MAX_HEAD_LEN 8192
        ws_frames) echo 4200 ;;        # reassembly is checked up to 4096
        proxy_header) echo 2200 ;;     # MAX_HEADER_LEN 2064
        config_file) echo 8192 ;;      # the example file is ~3.3 KB
        rate_limit) echo 256 ;;        # MAX_QUOTA_TEXT 32; CIDR lists
        *) echo 4096 ;;
    esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

toolchain=()
sanitizer=address
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
    how="rustup nightly ($(rustc +nightly -V))"
elif rustc -V | grep -q nightly; then
    how="default toolchain, a nightly ($(rustc -V))"
else
    export RUSTC_BOOTSTRAP=1
    sanitizer=none
    how="stable with RUSTC_BOOTSTRAP=1, no sanitizer ($(rustc -V))"
fi
sanitizer=${FUZZ_SANITIZER:-$sanitizer}
triple=$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')
bin_dir=$CARGO_TARGET_DIR/$triple/release

echo "== toolchain: $how; sanitizer: $sanitizer"
echo "== building ${targets[*]}"
build=(cargo "${toolchain[@]}" fuzz build --fuzz-dir "$here" -O -a --sanitizer "$sanitizer")
if [[ -n $only ]]; then build+=("$only"); fi
if ! (cd "$here" && "${build[@]}"); then
    echo "== build failed" >&2
    exit 1
fi

failed=0
summary=()
for t in "${targets[@]}"; do
    bin=$bin_dir/$t
    corpus=$work/corpus/$t
    artifacts=$work/artifacts/$t
    log=$work/logs/$t.log
    mkdir -p "$corpus" "$artifacts" "$work/logs"
    if [[ -d $here/seeds/$t ]]; then
        cp -n "$here/seeds/$t"/* "$corpus"/ 2>/dev/null
    fi
    common=(-rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$t")"
            -artifact_prefix="$artifacts/")

    # Saved crash inputs first: each must now run clean.
    shopt -s nullglob
    regressions=("$here/regressions/$t"/*)
    shopt -u nullglob
    if ((${#regressions[@]})); then
        if ! "$bin" "${common[@]}" "${regressions[@]}" >"$work/logs/$t.regressions.log" 2>&1; then
            line="$t: REGRESSION fails again (see $work/logs/$t.regressions.log)"
            summary+=("$line")
            echo "== $line"
            failed=1
            continue
        fi
    fi

    echo "== fuzzing $t for ${seconds}s (log: $log)"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    size=$(find "$corpus" -type f | wc -l)
    line=$(printf '%-15s execs=%-10s exec/s=%-7s cov=%-6s ft=%-6s corpus=%s' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$size")

    if ((rc != 0)); then
        failed=1
        kind=crash
        if grep -q 'ERROR: libFuzzer: timeout' "$log"; then kind=timeout
        elif grep -q 'ERROR: LeakSanitizer' "$log"; then kind=leak
        elif grep -q 'out-of-memory' "$log"; then kind=out-of-memory
        fi
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        line="$line  FAILED ($kind, exit $rc): ${artifact:-no artifact, see $log}"
        grep -m1 -A3 'panicked at' "$log" | sed 's/^/    /'
    fi
    summary+=("$line")
    echo "== $line"
done

echo
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
