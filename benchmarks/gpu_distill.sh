#!/usr/bin/env bash
# The distillation seed tables on one GPU in one call: TextCNN and BiLSTM students of one teacher against
# the same models on gold labels only, the alpha and temperature settings, 3 seeds each, all trained
# LANES at a time (default 2: on an H200 a TextCNN student trained at 7.9-9.6K samples/s beside one
# other run and at 1.7K/s beside nine, so more lanes only made every run slower), then the seed_groups tables on webmd_val and AskaPatient.
# Jobs start in the order listed; none starts after the deadline, and a running one is stopped there,
# so the figures of whatever finished always come back. ONLY: a regex of the job names to run (e.g.
# '^stu-a02-14 ').
#
# Usage: benchmarks/gpu_distill.sh TEACHER_RUN TEACHER_CACHE DATA_DIR OUT_DIR [TRAIN_SECONDS]
#   DATA_DIR holds webmd_reviews.csv, webmd_val.csv, webmd_effectiveness_only.csv and
#   askapatient_reviews.csv; TEACHER_CACHE is a --teacher-cache folder (it is written to).
#   SMOKE=1: 300 training, 100 validation, 300 unlabelled and 200 AskaPatient reviews, 1 epoch, 2 lanes
#   and seeds 13, 14 only (to test the script on a CPU; the teacher computes what the cache lacks).
set -u
TEACHER=$(realpath "$1"); CACHE=$(realpath "$2"); DATA=$(realpath "$3"); OUT=$(realpath -m "$4")
BUDGET=${5:-420}
mkdir -p "$OUT/runs" "$OUT/logs"
export TEACHER CACHE OUT
export DEADLINE=$(($(date +%s) + BUDGET))
export TRAIN="$DATA/webmd_reviews.csv" VAL="$DATA/webmd_val.csv" UNL="$DATA/webmd_effectiveness_only.csv"
ASK="$DATA/askapatient_reviews.csv"
export EXTRA="--set trainer.num_threads=2 --set trainer.progress_bar=false --set split.test_frac=0"
LANES=${LANES:-2}; export SEEDS=${SEEDS:-13 14 15}
if [ "${SMOKE:-0}" = 1 ]; then
  python3 - "$DATA" "$OUT" <<'EOF'
import sys, pandas as pd
src, out = sys.argv[1:]
for name, n in (("webmd_reviews", 300), ("webmd_val", 100), ("webmd_effectiveness_only", 300), ("askapatient_reviews", 200)):
    pd.read_csv(f"{src}/{name}.csv").sample(n, random_state=0).to_csv(f"{out}/{name}.csv", index=False)
EOF
  TRAIN="$OUT/webmd_reviews.csv" VAL="$OUT/webmd_val.csv" UNL="$OUT/webmd_effectiveness_only.csv"
  ASK="$OUT/askapatient_reviews.csv"; EXTRA="$EXTRA --max-epochs 1"; LANES=2; SEEDS="13 14"
fi

job() {  # job NAME train|distill MODEL SEED [ARGS...]: one run, bounded by the deadline
  local name=$1 how=$2 model=$3 seed=$4; shift 4
  local left=$((DEADLINE - $(date +%s))) start=$(date +%s) rc
  if [ "$left" -lt 20 ]; then echo "$name skipped: deadline" >>"$OUT/summary.txt"; return; fi
  if [ "$how" = train ]; then
    set -- train --model "$model" "$@"
  else
    set -- distill "$TEACHER" --student "$model" --unlabeled "$UNL" --teacher-cache "$CACHE" "$@"
  fi
  # shellcheck disable=SC2086
  timeout "$left" python3 -c "from medsent.interfaces.cli import main; main()" "$@" --data "$TRAIN" --val-data "$VAL" \
    --preset webmd --seed "$seed" --out "$OUT/runs/$name" $EXTRA >"$OUT/logs/$name.log" 2>&1
  rc=$?
  python3 - "$OUT/runs/$name" "$name" "$rc" "$(($(date +%s) - start))" >>"$OUT/summary.txt" <<'EOF'
import json, sys
from pathlib import Path
run, name, rc, wall = Path(sys.argv[1]), *sys.argv[2:]
try:
    m = json.loads((run / "metrics.json").read_text())
    src = json.loads((run / "manifest.json").read_text()).get("distill_sources", {})
    print(f"{name} rc={rc} wall={wall}s val_macro_f1={m['val']['macro_f1']:.4f} "
          f"neutral_f1={m['val']['per_class']['Neutral']['f1']:.4f} epochs={m['epochs_run']} "
          f"best={m['best_epoch']} fit={m['fit_seconds']:.0f}s {m['train_samples_per_s']:.0f}/s "
          f"{m['precision']} sources={src}")
except Exception as exc:  # a run stopped at the deadline has no metrics
    print(f"{name} rc={rc} wall={wall}s no metrics ({type(exc).__name__})")
EOF
}
export -f job

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"
python3 -c "import torch, lightning, transformers; print('torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"

# Longest first (BiLSTM), then what the tables cannot do without. Students: --unlabeled, alpha 0.5 and
# T 2 unless named; BiLSTM students capped at 8 epochs as in the CPU table.
{
  for s in $SEEDS; do echo "bstu-$s distill bilstm $s --set trainer.max_epochs=8"; done
  for s in $SEEDS; do echo "bgold-$s train bilstm $s"; done
  for s in $SEEDS; do echo "stu-a02-$s distill textcnn $s --alpha 0.2"; done
  for s in $SEEDS; do echo "stu-a02-t1-$s distill textcnn $s --alpha 0.2 --temperature 1"; done
  for s in $SEEDS; do echo "gold-$s train textcnn $s"; done
  for s in $SEEDS; do echo "stu-a05-$s distill textcnn $s"; done
  for s in $SEEDS; do echo "stu-a02-t4-$s distill textcnn $s --alpha 0.2 --temperature 4"; done
  for s in $SEEDS; do echo "bstu-a02-$s distill bilstm $s --alpha 0.2 --set trainer.max_epochs=8"; done
} | grep -E "${ONLY:-.}" | xargs -P "$LANES" -L 1 bash -c 'job "$@"' _
echo "=== training done at $((DEADLINE - $(date +%s)))s before the deadline"
sort "$OUT/summary.txt"
grep -h "reviews to compute" "$OUT"/logs/*.log | sort | uniq -c | head -5

group() {  # group NAME PREFIX: NAME=the finished runs PREFIX-13,14,15
  local runs="" s
  for s in $SEEDS; do [ -f "$OUT/runs/$1-$s/manifest.json" ] && runs="$runs,$OUT/runs/$1-$s"; done
  [ -n "$runs" ] && echo "--group $1=${runs#,}"
}
tables() {  # tables FILE PRESET NAME BASE GROUP...
  local file=$1 preset=$2 name=$3 base=$4; shift 4
  local args=() g
  for g in "$@"; do read -ra more <<<"$(group "$g")"; args+=("${more[@]}"); done
  [[ " ${args[*]} " == *" --group $base="* ]] || { echo "$name: no $base run finished" >"$OUT/table-$name.md"; return; }
  timeout 150 python3 benchmarks/seed_groups.py --data "$file" ${preset:+--preset "$preset"} "${args[@]}" \
    --base "$base" --save-proba "$OUT/proba/$name" >"$OUT/table-$name.md" 2>&1
}
tables "$VAL" "" textcnn-val gold gold stu-a05 stu-a02 stu-a02-t1 stu-a02-t4 &
tables "$ASK" askapatient textcnn-ask gold gold stu-a05 stu-a02 stu-a02-t1 stu-a02-t4 &
tables "$VAL" "" bilstm-val bgold bgold bstu bstu-a02 &
tables "$ASK" askapatient bilstm-ask bgold bgold bstu bstu-a02 &
wait
for t in "$OUT"/table-*.md; do echo "=== $t"; cat "$t"; done
(cd "$OUT" && tar czf figures.tgz proba logs $(cd "$OUT" && find runs -maxdepth 2 \( -name metrics.json -o -name history.csv -o -name manifest.json \)) 2>/dev/null)
rm -rf "$OUT/runs" "$OUT/proba" "$OUT/logs" "$OUT"/*.csv
