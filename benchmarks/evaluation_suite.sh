#!/usr/bin/env bash
# The evaluation figures on webmd_val: calibration (ECE before/after), ensembles vs their members, the
# comparison table + report. Uses the benchmark runs (see BENCHMARKS.md for how each was trained).
# Usage: bash benchmarks/evaluation_suite.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/eval-suite}
VAL=../shared/data/webmd/webmd_val.csv
M=(.venv/bin/medsent)
SVM=runs/svm-webmd CNN=runs/bench/textcnn LSTM=runs/bench/bilstm BERT=runs/bench/transformer
mkdir -p "$OUT"
echo "## temperature scaling on $VAL"
for r in $SVM $CNN $LSTM $BERT; do echo -n "$r: "; "${M[@]}" calibrate "$r" --data "$VAL" | head -1; done
echo "## ensembles (members calibrated above)"
"${M[@]}" ensemble $SVM $LSTM $BERT --out "$OUT/ens-soft" --overwrite | head -1
"${M[@]}" ensemble $SVM $LSTM $BERT --out "$OUT/ens-hard" --method hard --overwrite | head -1
"${M[@]}" ensemble $SVM $CNN $LSTM $BERT --out "$OUT/ens-soft4" --overwrite | head -1
# Fitted weights need data the weights never saw: fit on one half of webmd_val, score the other.
.venv/bin/python - "$VAL" "$OUT" <<'PY'
import sys, pandas as pd
from sklearn.model_selection import train_test_split
val = pd.read_csv(sys.argv[1])
a, b = train_test_split(val, test_size=0.5, random_state=0, stratify=val["satisfaction"])
a.to_csv(f"{sys.argv[2]}/val_half_a.csv", index=False); b.to_csv(f"{sys.argv[2]}/val_half_b.csv", index=False)
PY
"${M[@]}" ensemble $SVM $LSTM $BERT --out "$OUT/ens-fit-a" --fit-weights "$OUT/val_half_a.csv" --overwrite
for r in "$OUT/ens-fit-a" "$OUT/ens-soft" $BERT; do
  echo -n "half B, $r: "; "${M[@]}" evaluate "$r" --data "$OUT/val_half_b.csv" --json | .venv/bin/python -c \
    "import json,sys; m=json.load(sys.stdin); print(f\"macro-F1 {m['macro_f1']:.4f} kappa {m['kappa']:.4f} Neutral {m['per_class']['Neutral']['f1']:.4f}\")"
done
echo "## comparison"
"${M[@]}" compare $SVM $CNN $LSTM $BERT "$OUT/ens-soft" "$OUT/ens-hard" "$OUT/ens-soft4" --data "$VAL" --out "$OUT/compare"
