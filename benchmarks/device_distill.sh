#!/usr/bin/env bash
# The GPU machine's side of benchmarks/gpu_distill.sh, for a machine without network access and with a
# small upload limit:
# the inputs travel in an ignored folder (default .dev) prepared here:
#   .dev/teacher  the teacher run without its onnx/ folder, encoder weights cast to fp16
#   .dev/tcache   its --teacher-cache folder (one subfolder, named by the teacher's run id)
#   .dev/data     webmd_reviews, webmd_val, webmd_effectiveness_only, askapatient_reviews (.csv.gz)
#   .whl          wheels the device lacks (pydantic and its needs, ftfy, wcwidth)
# This script installs the wheels (if pydantic or ftfy is missing), casts the encoder back to fp32,
# renames the cache folder to the restored teacher's run id (fp16 rounding changes its file hashes;
# every answer in the cache is the original teacher's, and the log's "0 reviews to compute" shows no
# answer came from the restored copy), then runs gpu_distill.sh.
# Usage: benchmarks/device_distill.sh OUT_DIR [TRAIN_SECONDS] [SRC=.dev]
set -u
OUT=$1; BUDGET=${2:-420}; SRC=${3:-.dev}; WORK=${WORK:-/tmp/distill}
if ! python3 -c "import pydantic, ftfy" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
rm -rf "$WORK" && mkdir -p "$WORK/data" || exit 2
for f in "$SRC"/data/*.csv.gz; do gunzip -c "$f" >"$WORK/data/$(basename "$f" .gz)"; done
cp -r "$SRC/teacher" "$WORK/teacher" && cp -r "$SRC/tcache" "$WORK/tcache" || exit 2
python3 - "$WORK" <<'EOF' || exit 2
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
from medsent.core.runs import run_id
work = Path(sys.argv[1])
weights = work / "teacher/model/encoder/model.safetensors"
save_file({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()},
          str(weights), metadata={"format": "pt"})
(old,) = [p for p in (work / "tcache").iterdir() if p.is_dir()]
new = old.with_name(run_id(work / "teacher"))
old.rename(new)
print(f"teacher restored to fp32; cache {old.name} -> {new.name}: {len(list(new.glob('chunk-*.npz')))} chunks")
EOF
bash "$(dirname "$0")/gpu_distill.sh" "$WORK/teacher" "$WORK/tcache" "$WORK/data" "$OUT" "$BUDGET"
