#!/bin/bash
# Runs a test command with the engine's kernels at one instruction-set level
# (PROMPTHOST_ISA, models/engine/isa.h). On a CPU without that level the engine refuses
# it at the first kernel call; then the test reports itself skipped (CTest's
# SKIP_REGULAR_EXPRESSION "SKIPPED:") instead of failing.
#
# usage: run_at_isa.sh LEVEL COMMAND [ARGS...]
set -u
level=$1
shift
output=$(PROMPTHOST_ISA=$level "$@" 2>&1)
status=$?
if grep -q "PROMPTHOST_ISA=$level: this CPU does not support it" <<< "$output"; then
  echo "SKIPPED: this CPU does not support $level"
  exit 0
fi
echo "$output"
exit $status
