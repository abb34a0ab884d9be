#!/usr/bin/env bash
# Trains the built-in default prior on a lent GPU machine (PyTorch there, no Rust), as an A/B of
# recipes run side by side on the one GPU, each for the same wall-clock minutes:
#   ship    adaLN condition + x0 prediction + final 3x3 conv   (written to $OUT/ship as it trains)
#   noconv  adaLN condition + x0 prediction
#   today   cross-attention only + v prediction (the recipe before the redesign)
#   gate    ship's recipe on 256 training images, no condition dropout (the issue's gate)
# The better of ship/noconv (held-out top-1 retrieval) ends in $OUT/ship; summary.txt has every
# run's log and figures. Needs: .gpu-data/corpus64.npz (tools/gpu/pack_corpus.py), carried.
# Usage (device tool): bash tools/gpu/train-on-device.sh [MINUTES]
set -uo pipefail
MIN=${1:-6.5}
OUT=${OUT:-/tmp/out}
DATA=.gpu-data/corpus64.npz
ENC=assets/encoder/efficientnet_lite0.safetensors
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
PY=${PYTHON:-python3}
T="$PY tools/gpu/train_prior.py --data $DATA --encoder $ENC --shards 2 ${EXTRA:-}"
$T --out "$OUT/ship" --minutes "$MIN" --adaln-condition --final-conv --prediction sample > /tmp/ship.txt 2>&1 &
$T --out /tmp/runs/noconv --minutes "$MIN" --adaln-condition --prediction sample --seed 1 > /tmp/noconv.txt 2>&1 &
$T --out /tmp/runs/today --minutes "$MIN" --prediction v --seed 2 > /tmp/today.txt 2>&1 &
$T --out /tmp/runs/gate --minutes 2 --adaln-condition --final-conv --prediction sample --subset 256 --cond-drop 0 --eval-n 256 --eval-guidance 1 --seed 3 > /tmp/gate.txt 2>&1 &
wait
for r in ship noconv today gate; do echo "=== $r"; cat /tmp/$r.txt; done > "$OUT/summary.txt"
$PY - "$OUT" >> "$OUT/summary.txt" <<'PY'
import json, shutil, sys, os
out = sys.argv[1]
def top1(d):
    try: return json.load(open(os.path.join(d, "eval.json")))["held_out"]["top1"]
    except Exception: return -1
ship, noconv = os.path.join(out, "ship"), "/tmp/runs/noconv"
if top1(noconv) > top1(ship):
    for f in ("prior.part0.safetensors", "prior.part1.safetensors", "model.json", "samples.npy", "eval.json", "train.log"):
        shutil.copy(os.path.join(noconv, f), os.path.join(ship, f))
    print("shipped: noconv")
else:
    print("shipped: ship")
PY
grep -E "^===|eval|trained|embedded|shipped|Error|error" "$OUT/summary.txt"
