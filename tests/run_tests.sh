#!/usr/bin/env bash
# Runs every compiled tests/test_* program and every tests/cli/*.sh script from the repository root,
# then prints one closing line: "N passed, N failed, N skipped". Exit status 1 if any failed.
# Usage: BUILD=build tests/run_tests.sh [name-filter]
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export PAGODA_BIN="$PWD/$BUILD/pagoda"
filter=${1:-}
passed=0 failed=0 skipped=0 failed_names=()
run_one() { # name, command...
    local name=$1; shift
    [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return
    local log start end
    log=$(mktemp)
    start=$(date +%s.%N)
    "$@" >"$log" 2>&1
    local rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(printf '%.1f' "$(echo "$end - $start" | bc)")
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); printf 'PASS  %-40s %6ss  %s\n' "$name" "$secs" "$(tail -n 1 "$log")"
    elif [ $rc -eq 77 ]; then
        skipped=$((skipped + 1)); printf 'SKIP  %-40s %s\n' "$name" "$(grep -m1 SKIP "$log")"
    else
        failed=$((failed + 1)); failed_names+=("$name")
        printf 'FAIL  %-40s (exit %d)\n' "$name" $rc
        grep -E '(^| )FAIL' "$log" | head -n 20 | sed 's/^/      ! /'
        sed 's/^/      | /' "$log" | tail -n 40
    fi
    rm -f "$log"
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && [[ "$t" != *.d ]] && run_one "$(basename "$t")" "$t"
done
for s in tests/cli/*.sh; do
    [ -f "$s" ] && run_one "cli/$(basename "$s" .sh)" bash "$s"
done
echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
