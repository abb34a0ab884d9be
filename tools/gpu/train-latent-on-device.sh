#!/usr/bin/env bash
# Trains the built-in prior at 128 px on a lent GPU machine (PyTorch there, no Rust), as an A/B
# run side by side on the one GPU, each for the same wall-clock minutes:
#   latent   adaLN + x0 + final conv in the latent space of the project's small autoencoder
#            (16 x 16 x 4 latents, patch 2: 64 tokens, the same DiT cost as the 64 px model)
#   pixel    the same recipe on 128 px pixels with patch 16 (64 tokens): the control
# The run with the best held-out top-1 retrieval (trainer's check) is copied to $OUT/ship (the
# autoencoder stays here: it is the carried one); summary.txt has every run's log and figures.
#
# Carried (git-ignored). The tree must be ~22 MiB (tools/gpu/device-pack.sh has moved the
# embedded weights aside), and one call carries at most 64 MiB with it, so what run-on-device.sh
# and this script need travels in four calls to a warm machine, each within 30 s of the last
# (what was carried stays there). The sequence that ran on 2026-11-30 (device time 775 s of 900):
#   1. "true"       carry [".gpu-bin/lumos.xz.part0", ".gpu-data/efficientnet_lite0.safetensors"]
#   2. "bash tools/gpu/run-on-device.sh"  (210 s)
#                   carry [".gpu-bin/lumos.xz.part1", ".gpu-bin/torch_reference.py",
#                          ".gpu-bin/train-images", ".gpu-data/ae128", ".whl"]
#   3. "true"       carry [".gpu-data/corpus128.part0.npz"]
#   4. "bash tools/gpu/train-latent-on-device.sh 6.5"  (440 s: MINUTES + ~50 s), timeout_s 600
#                   carry [".gpu-data/corpus128.part1.npz"]
#      MINUTES from `status`'s budget_left_s before it: (budget_left_s - 90) / 60, at most 8.
# where, here:
#   python3 tools/gpu/pack_corpus.py CORPUS128/images .gpu-data/corpus128.npz --size 128 --quality 80 --parts 2
#                             (a corpus built with --size 128; 25.7 + 26.0 MB)
#   .gpu-data/efficientnet_lite0.safetensors   a copy of assets/encoder's (stashed by device-pack.sh)
#   .gpu-data/ae128/          train_autoencoder.py's autoencoder.safetensors, config.json, preview_rgb.json (3.8 MB)
#   .whl/                     diffusers and the one package it needs that the machine lacks (6.2 MB):
#                             pip download --no-deps --only-binary=:all: -d .whl diffusers==0.42.1 importlib_metadata
# Usage (device tool): bash tools/gpu/train-latent-on-device.sh [MINUTES]
#   INIT=DIR continues the shipped model alone, without the control: DIR holds a copy of
#   assets/default/prior.safetensors (here: mkdir -p .gpu-data/init128 && cp
#   assets/default/prior.safetensors .gpu-data/init128/), carried in a "true" call of its own
#   (18 MiB: it fits beside no corpus part). Then `INIT=.gpu-data/init128 bash
#   tools/gpu/train-latent-on-device.sh MINUTES`; install the result with the same
#   --autoencoder .gpu-data/ae128 (the latents must stay those it was trained on).
set -uo pipefail
MIN=${1:-6}
OUT=${OUT:-/tmp/out}
DATA=.gpu-data/corpus128.part0.npz,.gpu-data/corpus128.part1.npz
AE=.gpu-data/ae128
cd "$(dirname "$0")/../.."
ENC=assets/encoder/efficientnet_lite0.safetensors
[ -e $ENC ] || ENC=.gpu-data/efficientnet_lite0.safetensors
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c "import diffusers" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
T="$PY tools/gpu/train_prior.py --data $DATA --encoder $ENC --shards 2 --adaln-condition --final-conv --prediction sample ${EXTRA:-}"
if [ -n "${INIT:-}" ]; then
  # Continuing a shipped latent model (INIT: a folder with its prior shards): no control run.
  $T --out /tmp/runs/latent --minutes "$MIN" --autoencoder $AE --patch 2 --seed 3 --init "$INIT" >/tmp/latent.txt 2>&1
  echo "(no pixel control: INIT continues the latent model)" >/tmp/pixel.txt
else
  $T --out /tmp/runs/latent --minutes "$MIN" --autoencoder $AE --patch 2 --seed 1 >/tmp/latent.txt 2>&1 &
  $T --out /tmp/runs/pixel --minutes "$MIN" --patch 16 --seed 2 >/tmp/pixel.txt 2>&1 &
  wait
fi
for r in latent pixel; do echo "=== $r"; cat /tmp/$r.txt; done >"$OUT/summary.txt"
$PY - "$OUT" "$AE" >>"$OUT/summary.txt" <<'PY'
import json, os, shutil, sys
out, ae = sys.argv[1], sys.argv[2]
def top1(name):
    try:
        return json.load(open(f"/tmp/runs/{name}/eval.json"))["held_out"]["top1"]
    except Exception:
        return -1
best = max(["latent", "pixel"], key=top1)
ship = os.path.join(out, "ship")
os.makedirs(ship, exist_ok=True)
for f in ("prior.part0.safetensors", "prior.part1.safetensors", "model.json", "samples.npy", "eval.json", "train.log"):
    shutil.copy(os.path.join("/tmp/runs", best, f), os.path.join(ship, f))
# At most 8 files come back from $OUT: the six above and summary.txt. The autoencoder is not
# among them; it is the one carried from here.
print(f"shipped: {best} (held-out top-1 {top1(best)}); install with tools/gpu/install_default.py"
      + (f" --autoencoder {ae}" if best == "latent" else ""))
PY
grep -E "^===|eval|trained|embedded|encoded|shipped|Error|error" "$OUT/summary.txt"
