#!/usr/bin/env bash
# Prints a data root holding cifar-100-python/: $C100_DATA if set and present; else ./data, filled
# from ../shared/cifar100 when this checkout sits beside one (an offline copy), else by the official
# download (md5-checked) through `c100 data download`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${C100_DATA:-}" ] && [ -f "$C100_DATA/cifar-100-python/train" ]; then echo "$C100_DATA"; exit 0; fi
ROOT=$PWD/data
if [ ! -f "$ROOT/cifar-100-python/train" ]; then
  if [ -f ../shared/cifar100/unpack.py ]; then
    .venv/bin/python ../shared/cifar100/unpack.py --out "$ROOT" >&2
  else
    .venv/bin/c100 data download --data-root "$ROOT" >&2
  fi
fi
echo "$ROOT"
