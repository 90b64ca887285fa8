#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer binary (AddressSanitizer + coverage, optimised as a release build: about
# 6x the inputs per second of a debug build on the text target, with Swift's bounds and overflow checks
# kept; Tests/Fuzz/.build/release) and runs every
# target for FUZZ_SECONDS (default 60) from its committed seeds (Tests/Fuzz/Corpus/TARGET), growing a
# working corpus under FUZZ_OUT (default out/fuzz). Prints one line per target:
#   fuzz TARGET: N runs, C crashes
# A crash, a sanitizer report, a leak or a broken invariant is kept as FUZZ_OUT/crashes/TARGET-*; the
# script then exits 1. FUZZ_TARGETS="a b" runs only those. FUZZ_RUNS=N stops a target after N inputs (or
# FUZZ_SECONDS, whichever comes first): FUZZ_RUNS=1000000 FUZZ_SECONDS=1800 is the long pass. Inputs are at
# most 16 KiB, 4 KiB for the text and vocab targets (their cost grows with the size). Reproduce one input with
#   BERTKIT_FUZZ_TARGET=TARGET Tests/Fuzz/.build/release/BertKitFuzz FILE
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_OUT:-out/fuzz}
targets=${FUZZ_TARGETS:-$(ls Tests/Fuzz/Corpus)}
(cd Tests/Fuzz && swift build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address 2>&1 \
    | grep -Ev '^\[[0-9]+/[0-9]+\]|Cannot export local symbol' || true)
binary=Tests/Fuzz/.build/release/BertKitFuzz
[[ -x $binary ]] || { echo "fuzz: the build failed" >&2; exit 1; }
mkdir -p "$out/crashes"
failed=0
for t in $targets; do
    [[ -d Tests/Fuzz/Corpus/$t ]] || { echo "fuzz: no target $t (Tests/Fuzz/Corpus/$t)" >&2; exit 2; }
    mkdir -p "$out/corpus/$t"
    log=$out/$t.log
    case $t in text|vocab) max_len=4096 ;; *) max_len=16384 ;; esac
    rc=0
    BERTKIT_FUZZ_TARGET=$t ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} LSAN_OPTIONS=suppressions=Tests/Fuzz/lsan.supp "$binary" -max_total_time="$seconds" -timeout=20 \
        -rss_limit_mb=4096 -max_len=$max_len -runs="${FUZZ_RUNS:--1}" -report_slow_units=60 -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" \
        "$out/corpus/$t" "Tests/Fuzz/Corpus/$t" > "$log" 2>&1 || rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || echo 0)
    # Crashes, leaks, timeouts and running out of memory fail; a slow unit (a stall on a busy machine,
    # beyond 60 s) is reported but kept apart.
    crashes=$(find "$out/crashes" \( -name "$t-crash-*" -o -name "$t-leak-*" -o -name "$t-timeout-*" -o -name "$t-oom-*" \) | wc -l)
    slow=$(find "$out/crashes" -name "$t-slow-unit-*" | wc -l)
    echo "fuzz $t: $runs runs, $crashes crashes$([[ $slow -gt 0 ]] && echo ", $slow slow units (kept in $out/crashes)")"
    if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
        failed=1
        grep -E 'ERROR|invariant broken|Fatal error|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
    fi
done
exit $failed
