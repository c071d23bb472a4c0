#!/usr/bin/env bash
# The main job: set up, get CIFAR-100, train the seed tutorial's three models with the `fast` recipe,
# print the comparison table and write the report. Same command on a CPU and a GPU.
# On a CPU, every model's training is capped at C100_BUDGET_MINUTES (default 9): within it logreg and
# simplecnn run their full recipe, and resnet18 trains on the images that fit (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ROOT=$(bash scripts/find_data.sh)
SUITE=${C100_SUITE:-runs/seed-table}
.venv/bin/c100 bench logreg simplecnn resnet18 --recipe fast --suite "$SUITE" --data-root "$ROOT" \
  --budget-minutes "${C100_BUDGET_MINUTES:-9}" --no-progress
.venv/bin/c100 report "$SUITE" --out "$SUITE/report"
