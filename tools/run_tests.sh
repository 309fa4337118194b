#!/usr/bin/env bash
# The test command (`make test`, and CI's .ci/run): set up, start what the tests need, run them, clean up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup_env.sh
# Static checks first (seconds): the configured ruff on the whole tree, and the type checker on the runtime.
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy edge
# Build the offline model assets first: many tests use them (idempotent; a second run only verifies).
.venv/bin/python tools/build_engine.py
# A real-time virtual microphone (PulseAudio null sink + remapped monitor) for the microphone tests.
if eval "$(bash tools/pulse_mic.sh start)"; then
  trap 'bash tools/pulse_mic.sh stop >/dev/null 2>&1 || true' EXIT
else
  echo "run_tests: no virtual microphone (PulseAudio did not start); microphone tests will skip" >&2
fi
.venv/bin/python -m pytest -m "not gpu and not hardware" "$@"
