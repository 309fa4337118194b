#!/usr/bin/env bash
# Train the shipped live checkpoint and the baselines on the live-feature corpus (docs/MODEL_CARD.md).
#
#   bash tools/train_live.sh                       # corpus in runs/corpus, checkpoints in runs/live
#   CORPUS=DIR OUT=DIR EPOCHS=5 SEEDS="0 1 2" METHODS="qamoe early_fusion" EXTRA=... bash tools/train_live.sh
#
# Every method gets the same corpus (train + train_raw twins), the same width (d_model 32, expert_hidden 48:
# the size whose ONNX graph meets the 0.3 ms CPU budget, docs/BENCHMARKS.md), the same epochs and seeds, and
# is selected on the valid split (mean of clean and spectrum-corrupted validation MAE). Two trainings run at
# a time with one torch thread each (on a 2-core machine that beats one run with two threads).
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-runs/corpus}
OUT=${OUT:-runs/live}
EPOCHS=${EPOCHS:-5}
SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-"qamoe qamoe_no_quality_gate early_fusion late_fusion"}
# EXTRA: more ModelConfig overrides for every method, e.g. EXTRA=absent_variance=learned (the recipe of the
# retired live_v1 weights, trained before the absent-modality variance bound existed; docs/MODEL_CARD.md)
DIMS="d_model=32,expert_hidden=48${EXTRA:+,$EXTRA}"
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"

jobs=()
for seed in $SEEDS; do for method in $METHODS; do jobs+=("$method:$seed"); done; done
running=0
for job in "${jobs[@]}"; do
  method=${job%%:*}; seed=${job##*:}
  if [ -f "$OUT/$method-s$seed/config.json" ]; then echo "have $OUT/$method-s$seed"; continue; fi
  echo "train $method seed $seed -> $OUT/$method-s$seed"
  "$PY" tools/train.py --data "shards:$CORPUS" --model "$method[$DIMS]" --seed "$seed" --epochs "$EPOCHS" \
      --threads 1 --out "$OUT/$method-s$seed" > "$OUT/$method-s$seed.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "done: $(ls -d "$OUT"/*/ | wc -l) checkpoints in $OUT"
