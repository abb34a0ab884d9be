#!/usr/bin/env bash
# Packs what tools/gpu/run-on-device.sh needs into .gpu-bin/ (git-ignored; carried to the GPU
# machine): the CUDA build of `lumos` (xz, in two parts), the PyTorch reference benchmark and up
# to 512 training images. The tree and what is carried must stay under the device's 64 MiB, so the
# model weights that the binary already holds (assets/default, assets/multiview, assets/encoder,
# assets/prompt: 57 MB) are moved aside into .gpu-stash/ until `--restore` puts them back — run
# it right after the calls.
# Usage: bash tools/gpu/device-pack.sh [CORPUS_IMAGES_DIR]   (default $LUMOS_CORPUS, else the
#        app's sample images);  bash tools/gpu/device-pack.sh --restore
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STASH=.gpu-stash
EMBEDDED="assets/default/prior.safetensors assets/default/autoencoder.safetensors assets/multiview/prior.safetensors assets/encoder/efficientnet_lite0.safetensors assets/prompt/prompt.safetensors"
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
# The binary holds the built-in models (56 MB as xz), more than one call can carry beside the
# tree, so it travels in two parts, in two calls to a warm machine (run-on-device.sh says which).
xz -T0 -6 -c "$BIN" | split -b 28M -d -a 1 - .gpu-bin/lumos.xz.part
cp ../shared/bench/torch_reference.py .gpu-bin/
# The shared reference's DiT makes its timestep frequencies on the CPU in f32, so on a GPU it
# stops at its first forward (a device mismatch; in f16 then a dtype mismatch). The carried copy
# is patched for both; on the CPU in f32 it computes what the original does.
chmod u+w .gpu-bin/torch_reference.py
sed -i -e 's/\* freqs\[None\]/* freqs[None].to(t.device)/' \
  -e 's/self\.t_embedder\.mlp(timestep_features(t))/self.t_embedder.mlp(timestep_features(t).to(x.dtype))/' \
  .gpu-bin/torch_reference.py
[ "$(grep -c -e 'freqs\[None\]\.to(t\.device)' -e 'timestep_features(t)\.to(x\.dtype)' .gpu-bin/torch_reference.py)" = 2 ] ||
  echo "warning: torch_reference.py changed; its GPU patch did not apply" >&2
CORPUS=${1:-${LUMOS_CORPUS:-assets/samples}}
mapfile -t images < <(find "$CORPUS" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' \) | sort)
cp "${images[@]:0:512}" .gpu-bin/train-images/
for f in $EMBEDDED; do
  mkdir -p "$STASH/$(dirname "$f")"
  mv "$f" "$STASH/$f"
done
# What the device copies: the tracked files still here (the moved ones are not).
tracked=$({ git ls-files -z | xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
echo "after the device calls: bash tools/gpu/device-pack.sh --restore"
for part in .gpu-bin/lumos.xz.part0 ".gpu-bin/lumos.xz.part1 .gpu-bin/torch_reference.py .gpu-bin/train-images"; do
  # shellcheck disable=SC2086
  total=$((tracked + $(du -scb $part | tail -1 | cut -f1)))
  echo "call carrying $part: $((total / 1048576)) MiB with the tree (limit 64)"
  [ "$total" -lt $((64 * 1048576)) ] || { echo "too large for the device" >&2; exit 1; }
done
