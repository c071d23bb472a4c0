#!/usr/bin/env bash
# The first GPU run in one command (docs/GPU_CHECK.md): CUDA tests, resnet18/logreg/simplecnn `fast`,
# the seed tutorial's pipeline, compile cold/warm, eval, MFU and the resnet18 weights, all under $OUT.
#
#   bash scripts/gpu_check.sh --root /tmp/c100 --out "$OUT"     # on the GPU machine
#   bash scripts/gpu_check.sh --smoke --root data --out runs/gc  # tiny end-to-end dry run on the CPU
#
# Python: $PYTHON, else the project's .venv, else python3 (the GPU machine has no venv: c100 runs
# from src/ through PYTHONPATH there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" scripts/gpu_check.py "$@"
