#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for the given time each
# (default 20s), one after another; new crashers land in the package's
# testdata/fuzz/ and should be committed as regression corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-20s}
export GOTOOLCHAIN=local
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  pkg=./$(dirname "${f#./}")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
    echo "== $pkg $target ($time)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1 | tail -n 3
  done
done
