#!/usr/bin/env bash
# Creates .venv and installs c100 with its test and export extras. Needs only Python >= 3.10 and pip.
# On x86_64 pip takes torch 2.14.1 + torchvision 0.29.1 (a CUDA build that also runs on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -c "import c100, torch; print(f'c100 {c100.__version__}, torch {torch.__version__}, cuda {torch.cuda.is_available()}')"
