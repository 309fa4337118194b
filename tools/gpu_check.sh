#!/usr/bin/env bash
# GPU check for an NVIDIA machine: parity + latency of the QA-MoE model on CUDA through whatever is present
# (torch CUDA, ONNX Runtime CUDA provider, TensorRT + cuda-python), one table. Installs nothing, needs no network,
# finishes in < 5 minutes (each step has a timeout). Missing pieces are reported and skipped, never fatal.
#
#   tools/gpu_check.sh                 # uses .venv/bin/python if present, else python3
#   PYTHON=/usr/bin/python3 tools/gpu_check.sh
#   RUNS=300 tools/gpu_check.sh        # batch-1 timed calls per backend (default 500)
#   tools/gpu_check.sh --checkpoint DIR   # another checkpoint (default: the shipped one)
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
RUNS="${RUNS:-500}"
BUDGET_S="${BUDGET_S:-240}"

echo "== machine"
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 20 nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader \
    || echo "nvidia-smi failed"
else
  echo "nvidia-smi: not found (Jetson, or no NVIDIA driver)"
fi
echo "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo missing))"

echo "== what is present"
timeout 60 "$PY" - <<'PY' || echo "(probe failed)"
import importlib
def ver(name):
    try:
        m = importlib.import_module(name)
        return getattr(m, "__version__", "present")
    except Exception as exc:
        return f"absent ({type(exc).__name__}: {str(exc)[:80]})"
print("torch        ", ver("torch"), end="")
try:
    import torch
    print(f"; CUDA available: {torch.cuda.is_available()}", f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
except Exception:
    print()
print("onnxruntime  ", ver("onnxruntime"), end="")
try:
    import onnxruntime as ort
    print("; providers:", ", ".join(ort.get_available_providers()))
except Exception:
    print()
print("tensorrt     ", ver("tensorrt"))
from edge.backends.probe import probe_environment
env = probe_environment()
print("probe        ", env.describe())
for note in env.notes:
    print("  note:", note)
PY

echo "== parity + latency (torch eager CPU is the reference; CUDA rows where present)"
# the shipped checkpoint (the graph users run), unless the arguments name another
ARGS=("$@")
SHIPPED=$("$PY" -c 'from qamoe.checkpoints import SHIPPED; print(SHIPPED)' 2>/dev/null || true)
case " $* " in *" --checkpoint "*) ;; *) [ -n "$SHIPPED" ] && ARGS=(--checkpoint "$SHIPPED" "${ARGS[@]}") ;; esac
timeout "$BUDGET_S" "$PY" tools/bench_engines.py --runs "$RUNS" --warmup 50 --batch-runs 30 "${ARGS[@]}"
rc=$?
if [ $rc -eq 124 ]; then echo "bench timed out after ${BUDGET_S}s (lower RUNS)"; fi
exit $rc
