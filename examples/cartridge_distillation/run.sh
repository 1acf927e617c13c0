#!/usr/bin/env bash
# The Cartridges distillation demo on the bundled demo model (README.md here): builds the
# data from 300 of the demo's quotes, trains a 32-token cartridge by context distillation,
# and evaluates the held-out questions with the untrained (initialised) cartridge, with
# the quotes' chunk in the context, and with the trained cartridge.
# Usage: examples/cartridge_distillation/run.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
out=${2:-runs/cartridge_distillation}
ph=$build/host/prompthost
python3 "$here/make_data.py" "$out/data" 300
common=(--plugin cartridge --data "$out/data/train.jsonl" --set num_virtual_tokens=32
        --set "init_text_file=$out/data/corpus.txt" --threads 2 --overwrite)
# PEFT's initialisation alone (one step at a negligible rate): the untrained cartridge
"$ph" train "${common[@]}" --set objective=next_token --lr 1e-12 --max-steps 1 \
  --output "$out/init" --quiet
# distillation: teacher = the frozen model reading each example's chunk of quotes
"$ph" train "${common[@]}" --set objective=distillation --set top_k=20 --lr 0.03 --epochs 4 \
  --eval-data "$out/data/heldout.jsonl" --output "$out/distilled"
for run in init distilled; do
  echo "== $run cartridge, question alone"
  "$ph" eval --adapter "$out/$run" --data "$out/data/heldout.jsonl" --no-generate --threads 2
done
echo "== init cartridge, the quotes' chunk in the context"
"$ph" eval --adapter "$out/init" --data "$out/data/heldout-in-context.jsonl" --no-generate \
  --threads 2
