#!/usr/bin/env bash
# Trains the built-in default prior on a lent GPU machine (PyTorch there, no Rust), as an A/B of
# recipes run side by side on the one GPU, each for the same wall-clock minutes:
#   base      adaLN condition + x0 prediction + final 3x3 conv (the shipped recipe)
#   spatial2  base + 2x2 spatial condition tokens, replaced by their null 20 % of the time
#   spatial4  base + 4x4 spatial condition tokens, the same dropout
#   gate      spatial2 on 256 training images, no dropout (the issue's gate)
# The run with the best held-out top-1 retrieval (trainer's check) is copied to $OUT/ship;
# summary.txt has every run's log and figures. Needs .gpu-data/corpus64.npz
# (tools/gpu/pack_corpus.py), carried.
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
T="$PY tools/gpu/train_prior.py --data $DATA --encoder $ENC --shards 2 --adaln-condition --final-conv --prediction sample ${EXTRA:-}"
$T --out /tmp/runs/base --minutes "$MIN" --seed 1 >/tmp/base.txt 2>&1 &
$T --out /tmp/runs/spatial2 --minutes "$MIN" --spatial-tokens 2 --token-drop 0.2 --seed 2 >/tmp/spatial2.txt 2>&1 &
$T --out /tmp/runs/spatial4 --minutes "$MIN" --spatial-tokens 4 --token-drop 0.2 --seed 3 >/tmp/spatial4.txt 2>&1 &
$T --out /tmp/runs/gate --minutes 2 --spatial-tokens 2 --subset 256 --cond-drop 0 --eval-n 256 --eval-guidance 1 --seed 4 >/tmp/gate.txt 2>&1 &
wait
for r in base spatial2 spatial4 gate; do echo "=== $r"; cat /tmp/$r.txt; done >"$OUT/summary.txt"
$PY - "$OUT" >>"$OUT/summary.txt" <<'PY'
import json, os, shutil, sys
out = sys.argv[1]
def top1(name):
    try:
        return json.load(open(f"/tmp/runs/{name}/eval.json"))["held_out"]["top1"]
    except Exception:
        return -1
best = max(["base", "spatial2", "spatial4"], key=top1)
os.makedirs(os.path.join(out, "ship"), exist_ok=True)
for f in ("prior.part0.safetensors", "prior.part1.safetensors", "model.json", "samples.npy", "eval.json", "train.log"):
    shutil.copy(os.path.join("/tmp/runs", best, f), os.path.join(out, "ship", f))
print(f"shipped: {best} (held-out top-1 {top1(best)})")
PY
grep -E "^===|eval|trained|embedded|shipped|Error|error" "$OUT/summary.txt"
