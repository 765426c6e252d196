#!/usr/bin/env bash
# Where medsent's transformer engine loses time on a GPU: warm-up vs steady state, bucket shapes,
# cuDNN attention. Each line: 2 epochs over the same 2,048 reviews (the second is the steady state).
set -u
S=(python3 benchmarks/transformer_speed.py --samples 2048 --batch 32 --precision bf16 --skip-trainer --epochs 2)
for variant in "" "--buckets 256" "--buckets 128,256" "--no-cudnn-sdp"; do
  echo "=== variant: ${variant:-default buckets}"
  timeout 75 "${S[@]}" $variant 2>&1 | grep -E "medsent engine|Error"
done
