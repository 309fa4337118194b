#!/usr/bin/env bash
# `make demo`: set up, build the engines (offline assets + the shipped checkpoint), make the demo clip, and run
# qamoe-live on it at real time while qamoe-tap prints what it publishes. Output: runs/demo/annotated.mp4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
.venv/bin/python tools/build_engine.py
.venv/bin/python tools/make_demo.py --out runs/demo/demo.mp4
endpoint=${QAMOE_DEMO_ENDPOINT:-tcp://127.0.0.1:5556}
.venv/bin/qamoe-tap --endpoint "$endpoint" --topics sentiment transcript &
tap=$!
trap 'kill "$tap" 2>/dev/null || true' EXIT
.venv/bin/qamoe-live --video-file runs/demo/demo.mp4 --endpoint "$endpoint" --out runs/demo/annotated.mp4
sleep 0.5
echo "demo: the replay with its overlay is in runs/demo/annotated.mp4"
