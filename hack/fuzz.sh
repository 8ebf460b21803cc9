#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for the given time each
# (default 20s), one after another, and prints the executions of each and
# their total; with FUZZ_RESULTS=file it also writes them there as JSON.
# New crashers land in the package's testdata/fuzz/ and should be
# committed as regression corpus; any failing target fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
export GOTOOLCHAIN=local
total=0 failed=0 entries=()
start=$(date +%s)
while read -r f; do
  pkg=./$(dirname "${f#./}")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
    echo "== $pkg $target ($time)"
    status=ok
    out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1) || { status=FAIL; failed=$((failed + 1)); }
    if [ "$status" = FAIL ]; then echo "$out" | tail -n 30; else echo "$out" | tail -n 3; fi
    # The last progress line holds the executions of the whole run.
    n=$(echo "$out" | sed -n 's/.*execs: \([0-9]*\) .*/\1/p' | tail -n 1)
    n=${n:-0}
    total=$((total + n))
    entries+=("{\"package\":\"$pkg\",\"target\":\"$target\",\"execs\":$n,\"result\":\"$status\"}")
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
took=$(( $(date +%s) - start ))
echo "fuzz: $total executions in ${#entries[@]} targets ($time each, ${took}s), $failed failing"
if [ -n "${FUZZ_RESULTS:-}" ]; then
  mkdir -p "$(dirname "$FUZZ_RESULTS")"
  list=$(IFS=,; echo "${entries[*]}")
  printf '{"fuzztime":"%s","seconds":%d,"total_execs":%d,"failing_targets":%d,"targets":[%s]}\n' \
    "$time" "$took" "$total" "$failed" "$list" > "$FUZZ_RESULTS"
fi
[ "$failed" -eq 0 ]
