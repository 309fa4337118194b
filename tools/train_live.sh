#!/usr/bin/env bash
# Train the shipped live checkpoint and the baselines on the live-feature corpora (docs/MODEL_CARD.md).
#
#   bash tools/train_live.sh                       # MOSI/MOSEI + affect corpora, checkpoints in runs/live
#   bash tools/train_live.sh --permissive          # without RAVDESS (CC BY-NC-SA) and FER2013 (licence unclear)
#   bash tools/train_live.sh --dry-run             # print the trainings, run nothing
#   CORPUS=DIR AFFECT=DIR[,DIR] OUT=DIR EPOCHS=5 SEEDS="0 1 2" METHODS="qamoe early_fusion" EXTRA=... \
#       bash tools/train_live.sh
#
# Data: the MOSI/MOSEI corpus (tools/build_corpus.py: train + train_raw twins, valid, test; its faces re-drawn
# without GRID and without the label pairing by tools/redraw_vision.py, docs/CORPUS.md "Vision") joined with
# the affect corpus (tools/build_affect_corpus.py --balanced-out: real emotional speech, each clip at a speech
# level drawn in -50..-10 dBFS, "Speech level") in four views, each clip starting the stream, after 4.5 s of
# silence (--lead-in 4.5; docs/CORPUS.md, "Lead-in"), after it under a microphone's noise floor
# (--noise-floor=-80:-50), and as a window that ends while it is being spoken, without words (--cut=0.3:0.9,
# "In progress"), each view's training rows repeated AFFECT_REPEAT times;
# AFFECT= (empty) trains on MOSI/MOSEI alone. --permissive leaves
# out, in every split, the rows of the sources whose licence forbids commercial use or is unclear
# (qamoe/data/sources.py, DIR!SRC).
# Every method gets the same data, the same width (d_model 64, expert_hidden 96: at d_model 32 the affect rows
# cost the text path ~3 points, docs/results/affect/summary.md; 64 misses the 0.3 ms CPU budget of the model
# graph by ~0.1 ms, docs/BENCHMARKS.md), the same router (standardised logits, docs/MODEL.md; ROUTER=raw for the
# old one), the same epochs and seeds, and is selected on the valid
# split: the mean of clean and spectrum-corrupted validation MAE, averaged per source (SELECT_BY=source: the
# 200 RAVDESS/EmoDB valid clips weigh as much as MOSEI's 1,800; SELECT_BY=rows weighs every row alike). Two
# trainings run at a time with one torch thread each (on a 2-core machine that beats one run with two
# threads) when they fit in memory (PARALLEL=1|2).
set -euo pipefail
cd "$(dirname "$0")/.."
PERMISSIVE=0
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --permissive) PERMISSIVE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "train_live.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
CORPUS=${CORPUS:-runs/corpus-v3}
# the balanced views under the current map (calm at 0), at drawn speech levels: starting the stream, after the
# lead-in, under a noise floor (without it the voice hears GRID's -50 dBFS booth as negative) and in progress
# (without it a sentence still being spoken reads negative): docs/results/affect/summary.md
AFFECT=${AFFECT-runs/affect-v3-bal0,runs/affect-v3-lead-bal0,runs/affect-v3-noisy-bal0,runs/affect-v3-cut-bal0}
AFFECT_REPEAT=${AFFECT_REPEAT:-4}  # x the four views: every clip 16 times per epoch
IFS=, read -ra AFFECT_DIRS <<< "$AFFECT"
LEAVE_OUT=""
[ "$PERMISSIVE" = 1 ] && LEAVE_OUT="!ravdess!fer"
OUT=${OUT:-runs/live$([ "$PERMISSIVE" = 1 ] && echo -permissive || true)}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-"qamoe qamoe_no_quality_gate early_fusion late_fusion"}
# EXTRA: more ModelConfig overrides for every method, e.g. EXTRA=absent_variance=learned (the recipe of the
# retired live_v1 weights, trained before the absent-modality variance bound existed; docs/MODEL_CARD.md)
# WIDTH: the model's width for every method (WIDTH=d_model=32,expert_hidden=48 was live_v2's)
WIDTH=${WIDTH:-d_model=64,expert_hidden=96}
ROUTER=${ROUTER:-standardised}
DIMS="$WIDTH,router_logits=$ROUTER${EXTRA:+,$EXTRA}"
SELECT_BY=${SELECT_BY:-source}
PY=${PY:-.venv/bin/python}
DATA="shards:$CORPUS$LEAVE_OUT"
for dir in "${AFFECT_DIRS[@]}"; do DATA+=",$dir$LEAVE_OUT*$AFFECT_REPEAT"; done
# One training holds its corpus in memory (qamoe.data.gather.gather_shards: its size + one shard; peak RSS
# 10.2-10.3 GB measured with all of runs/corpus-v2, train_raw and the three affect views x4, 2026-12-07, when
# each repeat was a copy; repeats are now held once, the four views x4 in 1.0 GB instead of 3.0; with
# runs/corpus-v3 and the four views, 8.3-8.6 GB resident each while training, 2026-12-08): two at once only with
# room for both and the system (22 GB available; a 24 GB machine idle has ~23)
PARALLEL=${PARALLEL:-$([ "$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)" -ge 22 ] && echo 2 || echo 1)}
for dir in "$CORPUS" "${AFFECT_DIRS[@]}"; do
  [ -d "$dir" ] || { echo "train_live.sh: $dir not found: build it first (docs/CORPUS.md, \"Commands\")" >&2; exit 2; }
done
echo "data: $DATA -> $OUT (${EPOCHS} epochs, $PARALLEL at a time)"
[ "$DRY_RUN" = 1 ] || mkdir -p "$OUT"

jobs=()
for seed in $SEEDS; do for method in $METHODS; do jobs+=("$method:$seed"); done; done
running=0
for job in "${jobs[@]}"; do
  method=${job%%:*}; seed=${job##*:}
  if [ -f "$OUT/$method-s$seed/config.json" ]; then echo "have $OUT/$method-s$seed"; continue; fi
  echo "train $method seed $seed -> $OUT/$method-s$seed"
  args=(tools/train.py --data "$DATA" --model "$method[$DIMS]" --seed "$seed" --epochs "$EPOCHS"
        --select-by "$SELECT_BY" --threads 1 --out "$OUT/$method-s$seed")
  if [ "$DRY_RUN" = 1 ]; then echo "$PY ${args[*]}"; continue; fi
  "$PY" "${args[@]}" > "$OUT/$method-s$seed.log" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
done
wait
[ "$DRY_RUN" = 1 ] && exit 0
echo "done: $(ls -d "$OUT"/*/ | wc -l) checkpoints in $OUT"
