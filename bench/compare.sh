#!/usr/bin/env bash
# Runs `prompthost bench` and the PyTorch baseline (bench/torch_baseline.py, Debian's
# python3-torch) on the same configurations, one after the other on this machine, and
# prints a table of ratios. Usage: bench/compare.sh [build-dir]   (THREADS=2 STEPS=5)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/../build}"
threads="${THREADS:-2}"
steps="${STEPS:-5}"
ph="$build/host/prompthost"
py=/usr/bin/python3
if ! $py -c "import torch" 2>/dev/null; then
  echo "bench/compare.sh: needs python3-torch (apt-get install python3-torch)" >&2
  exit 1
fi
configs=(
  "--shape gpt2-small --plugin prompt_tuning --workload lm --batch 8 --seq 128 --virtual 20"
  "--shape gpt2-small --plugin prefix_tuning --workload lm --batch 8 --seq 128 --virtual 20"
  "--shape smollm2-135m --plugin prompt_tuning --workload lm --batch 8 --seq 128 --virtual 20"
  "--shape gpt2-small --plugin prompt_tuning --workload cls --batch 8 --seq 128 --virtual 20"
  "--shape gpt2-small --plugin prompt_tuning --workload generate --batch 1 --seq 32 --virtual 20 --new 64"
  "--shape roberta-base --plugin prompt_tuning --workload cls --batch 8 --seq 128 --virtual 20"
  "--shape t5-base --plugin prompt_tuning --workload lm --batch 8 --seq 128 --virtual 20"
)
# "of peak": training, the step's GEMM GFLOP/s over the SGEMM rate measured in the same run;
# generate, weight bytes streamed per second over the measured read bandwidth.
printf "%-72s %12s %12s %8s %10s %10s %8s\n" configuration "ours" "pytorch" "speedup" "rss ours" "rss torch" "of peak"
for c in "${configs[@]}"; do
  ours=$("$ph" bench $c --threads "$threads" --steps "$steps" --warmup 1)
  theirs=$($py "$here/torch_baseline.py" ${c//--plugin/--method} --threads "$threads" --steps "$steps" --warmup 1)
  $py - "$c" "$ours" "$theirs" <<'PY'
import json, sys
c, a, b = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
if a["workload"] == "generate":
    va, vb, unit = a["tokens_per_s"], b["tokens_per_s"], "tok/s"
    speed = va / vb
    peak = a.get("bandwidth_fraction", float("nan"))
else:
    va, vb, unit = a["step_ms_median"], b["step_ms_median"], "ms"
    speed = vb / va
    peak = a.get("sgemm_fraction", float("nan"))
print(f"{c:72s} {va:9.1f} {unit:>2s} {vb:9.1f} {unit:>2s} {speed:7.2f}x {a['peak_rss_mb']:8.0f}MB {b['peak_rss_mb']:8.0f}MB {peak:7.2f}")
PY
done
