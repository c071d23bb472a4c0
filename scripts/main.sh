#!/usr/bin/env bash
# The main job: set up, get CIFAR-100, train the seed tutorial's three models with the `fast` recipe,
# print the comparison table and write the report. The same command on a CPU and on a GPU.
#
# CPU budget (documented in README.md): each model's training is capped by --budget-minutes, which
# measures the step time first and then keeps the recipe whole if it fits, else trains fewer epochs,
# else one epoch on the stratified subset that fits. logreg and simplecnn get 20 minutes each (their
# full recipes fit in it on a 2-core CPU), resnet18 gets 8 (on a CPU that is a subset of one epoch;
# on a GPU the whole recipe fits and the budget changes nothing). Set C100_CPU_BUDGET=0 for no cap.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ROOT=$(bash scripts/find_data.sh)
SUITE=${C100_SUITE:-runs/seed-table}
SMALL=${C100_CPU_BUDGET:-20}
BIG=${C100_CPU_BUDGET:-8}
.venv/bin/c100 bench logreg simplecnn --recipe fast --suite "$SUITE" --data-root "$ROOT" \
  --budget-minutes "$SMALL" --no-progress
.venv/bin/c100 bench resnet18 --recipe fast --suite "$SUITE" --data-root "$ROOT" \
  --budget-minutes "$BIG" --no-progress
.venv/bin/c100 report "$SUITE" --out "$SUITE/report" --data-root "$ROOT"
