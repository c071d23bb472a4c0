#!/usr/bin/env bash
# The main job: set up, get CIFAR-100, make the seed tutorial's three rows, print the comparison table
# and write the report. Every row is real and says where it comes from (its provenance column).
#
#   on a GPU:               trains logreg, simplecnn and resnet18 with the `fast` recipe, in full;
#   on a CPU:               trains logreg and simplecnn with `fast` (their full recipes fit the 20-minute
#                           cap on a 2-core CPU), and for resnet18
#                             - evaluates the shipped weights/resnet18.safetensors on the test set here
#                               (row "shipped weights, trained by <command> on <machine> in <time>;
#                               evaluated here"), or, when no such file ships,
#                             - trains an 8-minute budget run: a subset of one epoch on a 2-core CPU,
#                               labelled budget-capped and never compared with the tutorial's figures;
#   C100_CPU_BUDGET=0:      trains all three in full on any device (ResNet18 takes hours on a CPU);
#   C100_CPU_BUDGET=N:      caps each CPU training at N minutes instead of 20 / 8.
#
# $C100_WEIGHTS replaces the weights/ folder; $C100_SUITE the suite folder (runs/seed-table).
# C100_DRY_RUN=1 prints the c100 commands instead of running them (no setup, no data): for tests.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { if [ -n "${C100_DRY_RUN:-}" ]; then echo "+ $*"; else "$@"; fi; }
if [ -n "${C100_DRY_RUN:-}" ]; then
  ROOT=${C100_DATA:-data}
else
  bash scripts/setup.sh
  ROOT=$(bash scripts/find_data.sh)
fi
SUITE=${C100_SUITE:-runs/seed-table}
SHIPPED=${C100_WEIGHTS:-weights}/resnet18.safetensors
C100=.venv/bin/c100
# C100_MAIN_GPU=1/0 stands in for the detection in tests
GPU=${C100_MAIN_GPU:-$(.venv/bin/python -c "import torch; print(int(torch.cuda.is_available()))")}

if [ "$GPU" = 1 ] || [ "${C100_CPU_BUDGET:-}" = 0 ]; then
  run "$C100" bench logreg simplecnn resnet18 --recipe fast --suite "$SUITE" --data-root "$ROOT" --no-progress
else
  run "$C100" bench logreg simplecnn --recipe fast --suite "$SUITE" --data-root "$ROOT" \
    --budget-minutes "${C100_CPU_BUDGET:-20}" --no-progress
  if [ -f "$SHIPPED" ]; then
    echo "resnet18: evaluating the shipped weights $SHIPPED on the test set here (no GPU to train it on)"
    run "$C100" eval "$SHIPPED" --run-out "$SUITE/resnet18-shipped" --data-root "$ROOT"
  else
    echo "resnet18: no shipped weights at $SHIPPED; training a budget-capped run (not the recipe's result)"
    run "$C100" bench resnet18 --recipe fast --suite "$SUITE" --data-root "$ROOT" \
      --budget-minutes "${C100_CPU_BUDGET:-8}" --no-progress
  fi
fi
run "$C100" report "$SUITE" --out "$SUITE/report" --data-root "$ROOT"
