#!/usr/bin/env bash
# The CUDA training levers in one pass on one GPU, every step bounded by `timeout`, figures written as they come:
#   1. a whole `medsent train --model transformer` run (V2 preset, GPU levers on) on the full pool,
#      against the plain Hugging Face Trainer recipe on the same pool and epochs (wall, samples/s,
#      validation macro-F1), cold start included for both;
#   2. the same medsent run with each GPU lever off (device data, one shape) and with torch.compile;
#   3. TextCNN and BiLSTM seconds per epoch of 121K reviews (the pool repeated to the study's size).
# Usage: benchmarks/gpu_training.sh DATA_DIR OUT_DIR   (DATA_DIR holds webmd_reviews.csv, webmd_val.csv)
# SMOKE=1: a few hundred reviews and one epoch, to test the script on a CPU.
set -u
DATA=$1; OUT=$2; mkdir -p "$OUT/runs"
PY=${PYTHON:-python3}
MEDSENT=("$PY" -c "from medsent.interfaces.cli import main; main()")
TRAIN="$DATA/webmd_reviews.csv"; VAL="$DATA/webmd_val.csv"
EPOCHS=${EPOCHS:-4}; REPEAT=7; T_LONG=220; T_SHORT=100
if [ "${SMOKE:-0}" = 1 ]; then
  "$PY" -c "import pandas as pd; d=pd.read_csv('$TRAIN'); d[d.review.notna()].sample(240, random_state=0).to_csv('$OUT/train.csv', index=False)"
  "$PY" -c "import pandas as pd; pd.read_csv('$VAL').sample(80, random_state=0).to_csv('$OUT/val.csv', index=False)"
  TRAIN="$OUT/train.csv"; VAL="$OUT/val.csv"; EPOCHS=1; REPEAT=2; T_LONG=300; T_SHORT=200
fi
log() { echo "$@" | tee -a "$OUT/summary.txt"; }
train_step() {  # train_step NAME LIMIT ARGS...: one bounded medsent run; its metrics.json kept as NAME.json
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "${MEDSENT[@]}" train --val-data "$VAL" --preset webmd --test-frac 0 --logger none \
    --out "$OUT/runs/$name" --overwrite --set trainer.progress_bar=false "$@" > "$OUT/$name.log" 2>&1
  local rc=$? wall=$((SECONDS - start))
  "$PY" - "$OUT/runs/$name" "$name" "$wall" "$rc" >> "$OUT/results.jsonl" <<'PYEOF'
import json, sys
from pathlib import Path
run, name, wall, rc = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = {"step": name, "rc": rc, "wall_s": wall}
if (run / "metrics.json").exists():
    m = json.loads((run / "metrics.json").read_text())
    out.update({k: m.get(k) for k in ("epochs_run", "train_wall_seconds", "train_samples_per_s", "precision")})
    out["val_macro_f1"] = m.get("val", {}).get("macro_f1")
if (run / "history.csv").exists():
    import csv
    rows = list(csv.DictReader((run / "history.csv").open()))
    out["epoch_seconds"] = [round(float(r["epoch_seconds"]), 2) for r in rows]
    out["epoch_samples_per_s"] = [round(float(r["train_samples_per_s"] or 0), 1) for r in rows]
print(json.dumps(out))
PYEOF
  log "$(tail -1 "$OUT/results.jsonl")"
}
log "=== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no GPU')"
"$PY" -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/summary.txt"
log "=== 1. transformer: medsent (V2, GPU levers) vs HF Trainer, $EPOCHS epochs, full pool, cold"
train_step transformer-v2 $T_LONG --model transformer --data "$TRAIN" --max-epochs "$EPOCHS" --set trainer.patience=$EPOCHS
start=$SECONDS
timeout $T_LONG "$PY" benchmarks/hf_trainer_baseline.py "$TRAIN" "$VAL" --epochs "$EPOCHS" 2> "$OUT/hf-trainer.log" | tail -1 >> "$OUT/results.jsonl"
log "$(tail -1 "$OUT/results.jsonl") (rc=$? wall=$((SECONDS - start))s)"
log "=== 2. transformer levers, 1 epoch each"
train_step tf-all-levers $T_SHORT --model transformer --data "$TRAIN" --max-epochs 1
train_step tf-host-data $T_SHORT --model transformer --data "$TRAIN" --max-epochs 1 --set trainer.device_data=host
train_step tf-default-buckets $T_SHORT --model transformer --data "$TRAIN" --max-epochs 1 --set trainer.cuda_buckets=null
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then  # inductor on a CPU takes minutes
  train_step tf-compile $T_SHORT --model transformer --data "$TRAIN" --max-epochs 1 --set trainer.compile=true
fi
log "=== 3. word models: seconds per epoch of the pool repeated x$REPEAT"
"$PY" -c "import pandas as pd; d=pd.read_csv('$TRAIN'); d=d[d.review.notna()]; pd.concat([d.assign(review=d.review + ' ' + str(i) * (i > 0)) for i in range($REPEAT)]).to_csv('$OUT/big.csv', index=False)"
train_step textcnn-121k $T_SHORT --model textcnn --data "$OUT/big.csv" --max-epochs 2 --precision bf16 --set trainer.early_stopping=false
train_step bilstm-121k $T_SHORT --model bilstm --data "$OUT/big.csv" --max-epochs 2 --precision bf16 --set trainer.early_stopping=false
rm -rf "$OUT/runs" "$OUT/big.csv" "$OUT/train.csv" "$OUT/val.csv"
log "=== done $(date -u +%FT%TZ)"
