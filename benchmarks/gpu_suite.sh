#!/usr/bin/env bash
# GPU checks in one pass (mixed precision, throughput, full-pool quality), each step bounded by `timeout`
# so the whole pass fits in about 10 minutes.
# Usage: benchmarks/gpu_suite.sh DATA_DIR OUT_DIR   (DATA_DIR holds webmd_reviews.csv and webmd_val.csv)
# SMOKE=1 shrinks every step to a few hundred reviews and one epoch (to test the script on a CPU).
set -u
DATA=$1; OUT=$2; mkdir -p "$OUT/runs"
MEDSENT=(python3 -c "from medsent.interfaces.cli import main; main()")
TRAIN="$DATA/webmd_reviews.csv"; VAL="$DATA/webmd_val.csv"; EXTRA=(); SPEED=2048
if [ "${SMOKE:-0}" = 1 ]; then
  python3 -c "import pandas as pd; d=pd.read_csv('$TRAIN'); d[d.review.notna()].sample(300, random_state=0).to_csv('$OUT/train.csv', index=False)"
  python3 -c "import pandas as pd; pd.read_csv('$VAL').sample(100, random_state=0).to_csv('$OUT/val.csv', index=False)"
  TRAIN="$OUT/train.csv"; VAL="$OUT/val.csv"; EXTRA=(--max-epochs 1); SPEED=64
fi
step() {  # step NAME SECONDS ARGS...: one training run, bounded, its figures kept even on timeout
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "${MEDSENT[@]}" train --data "$TRAIN" --val-data "$VAL" --preset webmd --test-frac 0 \
    --out "$OUT/runs/$name" --overwrite "$@" "${EXTRA[@]}" 2>&1 | grep -vE "^\s*$|it/s|s/it|LeafSpec|warn" | tail -8
  echo "rc=${PIPESTATUS[0]} wall=$((SECONDS - start))s"
  cp "$OUT/runs/.$name.work/history.csv" "$OUT/runs/$name-partial-history.csv" 2>/dev/null || true
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"
python3 -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
echo "=== transformer engine vs HF Trainer, bf16, all layers trainable"
timeout 80 python3 benchmarks/transformer_speed.py --samples "$SPEED" --batch 32 --precision bf16 2>&1 | grep -E "machine|medsent|Trainer|ratio|MiniLM|Error" 
step transformer-v2 200 --model transformer --precision bf16
step textcnn-v2 80 --model textcnn --precision bf16
step textcnn-fp16 40 --model textcnn --precision fp16 --max-epochs 2
step bilstm-v2 140 --model bilstm --precision bf16
# Small figures only (weights stay there): metrics and histories of every run, in one archive.
(cd "$OUT/runs" && find . -name "metrics.json" -o -name "history.csv" -o -name "*partial-history.csv" | grep -v "/\.\w*\.partial" | tar czf "$OUT/figures.tgz" -T -)
rm -rf "$OUT/runs" "$OUT/train.csv" "$OUT/val.csv"
