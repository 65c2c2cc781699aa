#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/: the request parser, the chunked decoder and
# the config loader. See fuzz/README.md.
#
#   scripts/fuzz.sh                      # every target, FUZZ_SECONDS each, one after the other
#   scripts/fuzz.sh chunked              # one target (request_head, chunked, config or all)
#   FUZZ_SECONDS=60 scripts/fuzz.sh all  # a short run
#
# Settings (environment): FUZZ_SECONDS (600 per target), FUZZ_TIMEOUT (s one input may take
# before it counts as a hang, 30), FUZZ_RSS_MB (2048).
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, sancov); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. cargo-fuzz itself is installed from crates.io when missing.
#
# Each target fuzzes with one job (-jobs=1; the machine has 2 cores). New inputs go to
# fuzz/generated/<target>/ (ignored by git), seeds are read from fuzz/corpus/<target>/, crashes
# land in fuzz/artifacts/<target>/ and libFuzzer's log in fuzz/artifacts/<target>/fuzz-0.log.
# Prints the executions, the final coverage line and whether a crash was found; exits 1 if any
# target crashed (or failed to run).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$repo/fuzz"
all_targets=(request_head chunked config)

FUZZ_SECONDS="${FUZZ_SECONDS:-600}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-30}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
export RUSTC_BOOTSTRAP=1

usage() {
    echo "usage: scripts/fuzz.sh [request_head|chunked|config|all]..." >&2
    exit 2
}

targets=()
if [ "$#" -eq 0 ]; then
    targets=("${all_targets[@]}")
fi
for arg in "$@"; do
    case "$arg" in
        all) targets+=("${all_targets[@]}") ;;
        request_head | chunked | config) targets+=("$arg") ;;
        -h | --help) usage ;;
        *) echo "unknown target: $arg" >&2; usage ;;
    esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

echo "== building the fuzz targets"
for t in "${targets[@]}"; do
    cargo fuzz build --fuzz-dir "$fuzz_dir" "$t"
done

failed=0
summary=()
for t in "${targets[@]}"; do
    gen="$fuzz_dir/generated/$t"
    art="$fuzz_dir/artifacts/$t"
    mkdir -p "$gen" "$art"
    dict=()
    if [ -f "$fuzz_dir/dict/$t.dict" ]; then
        dict=("-dict=$fuzz_dir/dict/$t.dict")
    fi
    before="$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)"
    echo "== fuzzing $t for ${FUZZ_SECONDS}s (log: $art/fuzz-0.log)"
    start=$(date +%s)
    rc=0
    # With -jobs, libFuzzer writes the worker's output to fuzz-0.log in the working directory.
    (cd "$art" && rm -f fuzz-0.log && cargo fuzz run --fuzz-dir "$fuzz_dir" "$t" "$gen" "$fuzz_dir/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -jobs=1 -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT" \
        -print_final_stats=1 "${dict[@]}") || rc=$?
    elapsed=$(($(date +%s) - start))
    log="$art/fuzz-0.log"
    execs="$(grep -a 'stat::number_of_executed_units' "$log" 2>/dev/null | tail -1 | awk '{print $2}')"
    cov="$(grep -a -E '^#[0-9]+.*cov: ' "$log" 2>/dev/null | tail -1 | grep -o -E 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+' || true)"
    after="$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)"
    if grep -a -q -E '^==[0-9]+== ERROR: libFuzzer|^SUMMARY: |panicked at|deadly signal' "$log" 2>/dev/null ||
        [ "$after" -gt "$before" ] || [ "$rc" -ne 0 ]; then
        verdict="CRASH (exit $rc; new artifacts: $((after - before)) in $art)"
        grep -a -E 'panicked at|^==[0-9]+== ERROR|^SUMMARY: |Test unit written to' -A2 "$log" | head -20 || true
        failed=1
    else
        verdict="no crash"
    fi
    line="$t: ${execs:-?} executions in ${elapsed}s, ${cov:-no coverage line}, $verdict"
    echo "== $line"
    summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
