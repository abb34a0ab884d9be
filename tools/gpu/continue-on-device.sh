#!/usr/bin/env bash
# Continues the shipped recipe from a previous export (carried in .gpu-data/init), one process
# with the whole GPU, and writes the result to $OUT/ship. Usage: continue-on-device.sh MINUTES LR
set -uo pipefail
OUT=${OUT:-/tmp/out}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
${PYTHON:-python3} tools/gpu/train_prior.py --data .gpu-data/corpus64.npz \
  --encoder assets/encoder/efficientnet_lite0.safetensors --shards 2 --out "$OUT/ship" \
  --minutes "${1:-4}" --lr "${2:-3e-4}" --adaln-condition --final-conv --prediction sample \
  --init .gpu-data/init --seed 5 ${EXTRA:-} 2>&1 | grep -vE "^step [0-9]*[1-9]00 "
