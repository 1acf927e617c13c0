#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for a budget, over its committed corpus.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]
# SECONDS per target (default 30); FUZZ_RUNS=N instead stops each target after N
# executions. New interesting inputs go to BUILD_DIR/fuzz-corpus/<target>/ (the committed
# corpus is only read); a crash writes BUILD_DIR/fuzz-artifacts/<target>-crash-* and the
# script exits non-zero after the other targets ran. Add a crashing input to the
# committed corpus as tests/fuzz/corpus/<target>/crash-<what> once it is fixed.
# Each target's last status line (executions, coverage, corpus) is printed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]}"
seconds="${2:-30}"
shift $(( $# >= 2 ? 2 : $# ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for dir in "$here"/corpus/*/; do targets+=("$(basename "$dir")"); done
fi

budget=(-max_total_time="$seconds")
[ -n "${FUZZ_RUNS:-}" ] && budget=(-runs="$FUZZ_RUNS" -max_total_time="${FUZZ_MAX_SECONDS:-600}")
mkdir -p "$build/fuzz-artifacts"
failed=()
for t in "${targets[@]}"; do
  exe="$build/tests/fuzz/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz: $exe not built (configure with -DPROMPTHOST_FUZZ=ON)" >&2; exit 2; }
  work="$build/fuzz-corpus/$t"
  mkdir -p "$work"
  log="$build/fuzz-artifacts/$t.log"
  # -rss_limit_mb / -malloc_limit_mb: a parser that allocates gigabytes on a claim of
  # the file (a size it did not check) is a finding, as is a crash or a leak.
  "$exe" "${budget[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" \
    "$work" "$here/corpus/$t" >"$log" 2>&1
  code=$?
  stats="$(grep -E '^#[0-9]+' "$log" | tail -1)"
  runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
  echo "fuzz_$t: exit $code, ${runs:-?} executions; last: ${stats:-(none)}"
  if [ $code -ne 0 ]; then
    failed+=("$t")
    grep -E 'ERROR|SUMMARY|==[0-9]+==|Test unit written' "$log" | head -8 >&2
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (logs and inputs in $build/fuzz-artifacts)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean"
