#!/usr/bin/env bash
# Set up and run the whole test suite on the CPU. Real-data tests use $C100_REAL_DATA, or unpack
# ../shared/cifar100 when present, and skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
