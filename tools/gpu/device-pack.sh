#!/usr/bin/env bash
# Packs what tools/gpu/run-on-device.sh needs into .gpu-bin/ (git-ignored; carried to the GPU
# machine): the CUDA build of `lumos` (xz), the PyTorch reference benchmark and up to 512
# training images. The tree and what is carried must stay under the device's 64 MiB, so the
# model weights that the binary already holds (assets/default, assets/multiview, assets/encoder,
# assets/prompt: 54 MB) are moved
# aside into .gpu-stash/ until `--restore` puts them back — run it right after the call.
# Usage: bash tools/gpu/device-pack.sh [CORPUS_IMAGES_DIR]   (default $LUMOS_CORPUS, else the
#        app's sample images);  bash tools/gpu/device-pack.sh --restore
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STASH=.gpu-stash
EMBEDDED="assets/default/prior.safetensors assets/multiview/prior.safetensors assets/encoder/efficientnet_lite0.safetensors assets/prompt/prompt.safetensors"
if [ "${1:-}" = "--restore" ]; then
  for f in $EMBEDDED; do
    [ -e "$STASH/$f" ] && mv "$STASH/$f" "$f"
  done
  rm -rf "$STASH"
  git status --short -- assets
  exit 0
fi
BIN=$(bash tools/gpu/build-cuda.sh | tail -1)
rm -rf .gpu-bin
mkdir -p .gpu-bin/train-images
xz -T0 -6 -c "$BIN" >.gpu-bin/lumos.xz
cp ../shared/bench/torch_reference.py .gpu-bin/
CORPUS=${1:-${LUMOS_CORPUS:-assets/samples}}
mapfile -t images < <(find "$CORPUS" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' \) | sort)
cp "${images[@]:0:512}" .gpu-bin/train-images/
for f in $EMBEDDED; do
  mkdir -p "$STASH/$(dirname "$f")"
  mv "$f" "$STASH/$f"
done
# What the device copies: the tracked files still here (the moved ones are not).
tracked=$({ git ls-files -z | xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
packed=$(du -sb .gpu-bin | cut -f1)
total=$((tracked + packed))
echo "tree $((tracked / 1048576)) MiB + .gpu-bin $((packed / 1048576)) MiB = $((total / 1048576)) MiB (limit 64)"
echo "after the device call: bash tools/gpu/device-pack.sh --restore"
[ "$total" -lt $((64 * 1048576)) ] || { echo "too large for the device" >&2; exit 1; }
