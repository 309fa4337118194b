#!/usr/bin/env bash
# Evaluate a candidate checkpoint the way the default is judged before it ships (issue 15; docs/MODEL_CARD.md).
#
#   bash tools/evaluate_release.sh CHECKPOINT OUT valid   # selection: valid rows and valid speakers only
#   bash tools/evaluate_release.sh CHECKPOINT OUT test    # the report, once the choice is made
#   CORPUS=runs/corpus-v3 AFFECT_VALID=runs/affect-v3-lead LIMIT=N FACES=100 ... bash tools/evaluate_release.sh ...
#
# Builds the candidate's engines into OUT/engines (tools/build_engine.py --checkpoint), then writes into
# OUT/SPLIT/ one file per measurement and summary.md with them all:
#   text.txt         the text path on MOSI/MOSEI (tools/evaluate_text_path.py; valid, or test + test_asr)
#   voice-live.*     held-out actors through `qamoe-live --camera none --mic` (tools/evaluate_affect_live.py),
#                    the window at each clip's end and the windows in progress; valid: every valid clip (RAVDESS
#                    104, EmoDB 96: with 60 of each, seeds of one recipe read 0.4 apart in AUC), LIMIT=N for fewer
#   voice-offline.*  valid only: the affect corpus's valid rows offline (tools/evaluate_affect.py on AFFECT_VALID)
#   faces-live.*     test only: FACES held-out FER2013 photos and the GRID clips with each stream
#                    (tools/evaluate_faces_live.py --grid-streams); GRID is a report set, never read in selection
#   ../checkpoint    CHECKPOINT's path (an OUT holds one candidate's reports; tools/select_default.py reads it)
#   shipped.txt      test only: the shipped-model tests (GRID guard, spoken sentences, lost devices) run on
#                    OUT/engines (QAMOE_CANDIDATE_ENGINES, tests/integration/test_shipped_model.py)
# Exit codes: 0 every step ran (targets and the shipped-model tests are reported, not enforced), 2 bad arguments,
# else the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,23p' "$0"; }
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { usage; exit 0; }
[ $# -eq 3 ] || { echo "evaluate_release.sh: takes CHECKPOINT OUT valid|test (see --help)" >&2; exit 2; }
CK=$1 OUT=$2 SPLIT=$3
case "$SPLIT" in valid|test) ;; *) echo "evaluate_release.sh: split must be valid or test, not $SPLIT" >&2; exit 2 ;; esac
[ -f "$CK/model.safetensors" ] || { echo "evaluate_release.sh: $CK holds no model.safetensors" >&2; exit 2; }
PY=${PY:-.venv/bin/python}
AFFECT_DATA=${AFFECT_DATA:-../shared/data/affect}
CORPUS=${CORPUS:-runs/corpus-v3}
AFFECT_VALID=${AFFECT_VALID:-runs/affect-v3-lead}
GRID=${GRID:-../shared/media/grid}
LIMIT=${LIMIT:-}
FACES=${FACES:-100}
DRY_RUN=${DRY_RUN:-0}
DIR="$OUT/$SPLIT"
ENGINES="$OUT/engines"
run() {  # run NAME COMMAND...: stdout and stderr into DIR/NAME.txt, shown as it goes
  local name=$1; shift
  echo "== $name: $*"
  [ "$DRY_RUN" = 1 ] && return 0
  "$@" 2>&1 | tee "$DIR/$name.txt"
}
if [ -f "$OUT/checkpoint" ] && [ "$(cat "$OUT/checkpoint")" != "$CK" ]; then
  echo "evaluate_release.sh: $OUT holds the reports of $(cat "$OUT/checkpoint"), not $CK: use another OUT" >&2; exit 2
fi
[ "$DRY_RUN" = 1 ] || { mkdir -p "$DIR"; echo "$CK" > "$OUT/checkpoint"; }  # read by tools/select_default.py
run engines "$PY" tools/build_engine.py --checkpoint "$CK" --engines-dir "$ENGINES"
if [ -d "$CORPUS" ]; then
  splits=$([ "$SPLIT" = valid ] && echo valid || echo test,test_asr)
  run text "$PY" tools/evaluate_text_path.py --corpus "$CORPUS" --splits "$splits" --checkpoint "$CK"
else
  echo "== text: skipped, $CORPUS not found (CORPUS=DIR, docs/CORPUS.md)"
fi
if [ "$SPLIT" = valid ]; then
  run voice-live "$PY" tools/evaluate_affect_live.py --affect "$AFFECT_DATA" --engines "$ENGINES" --split valid \
      ${LIMIT:+--limit "$LIMIT"} --json "$DIR/voice-live.json"
  if [ -d "$AFFECT_VALID" ]; then
    run voice-offline "$PY" tools/evaluate_affect.py --data "shards:$AFFECT_VALID" --split valid --checkpoint "$CK" \
        --json "$DIR/voice-offline.json"
  else
    echo "== voice-offline: skipped, $AFFECT_VALID not found (AFFECT_VALID=DIR)"
  fi
else
  run voice-live "$PY" tools/evaluate_affect_live.py --affect "$AFFECT_DATA" --engines "$ENGINES" --split test \
      --json "$DIR/voice-live.json"
  run faces-live "$PY" tools/evaluate_faces_live.py --affect "$AFFECT_DATA" --engines "$ENGINES" --split test \
      --limit "$FACES" --grid "$GRID" --grid-streams --json "$DIR/faces-live.json"
  # a failing guard is a result to report, not a reason to stop
  QAMOE_CANDIDATE_ENGINES="$(cd "$ENGINES" 2>/dev/null && pwd || echo "$ENGINES")" \
      run shipped "$PY" -m pytest -q -s tests/integration/test_shipped_model.py -k "grid or speech or missing" \
      || echo "== shipped: FAILED (see $DIR/shipped.txt)"
fi
[ "$DRY_RUN" = 1 ] && exit 0
{
  echo "# $CK on $SPLIT ($(date -u +%F), git $(git rev-parse --short HEAD))"
  for f in "$DIR"/{text,voice-live,voice-offline,faces-live,shipped}.txt; do
    [ -f "$f" ] && { echo; echo "## $(basename "$f" .txt)"; echo; grep -v -e '^== ' -e ' INFO ' "$f" || true; }
  done
} > "$DIR/summary.md"
echo "evaluate_release.sh: $DIR/summary.md"
