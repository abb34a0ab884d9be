#!/usr/bin/env bash
# The one script to run whenever a GPU machine is lent (any issue): checks the CUDA build of
# `lumos` there and measures it, logging everything under $OUT. The machine has PyTorch and
# NVIDIA's libraries but no Rust, so the binary is built here first and carried.
#
# Here, before the calls:  bash tools/gpu/device-pack.sh [CORPUS]   (builds, packs .gpu-bin/)
# The calls (device tool), the second within the machine's 30 s warm time after the first (what
# a call carries stays on a warm machine; the binary is too large to travel beside the tree in
# one call):
#   1. command "true", carry [".gpu-bin/lumos.xz.part0"] (and, with room, the first part of
#      the next job's data)
#   2. command "bash tools/gpu/run-on-device.sh", carry [".gpu-bin/lumos.xz.part1",
#      ".gpu-bin/torch_reference.py", ".gpu-bin/train-images"], timeout_s 360
# Here, after the calls:   bash tools/gpu/device-pack.sh --restore
#
# Steps (each bounded by `timeout`, the whole under ~5 minutes; a failing step is reported and
# the next one runs):
#   1. `lumos selftest --device cuda` over every fixture in f32, f16 and bf16 (tolerances:
#      f32 as on the CPU; half precision relative to each output's range, see
#      `selftest::network_tolerance`);
#   2. `lumos bench --device cuda` (f32 and f16) beside `torch_reference.py bench --device cuda`
#      in the same dtypes, with the ratios (a 20-step sample of 4 images is 80 of the batch-2
#      CFG forwards timed, for both);
#   3. same seed, same image: 4 variations of a sample from the built-in model on the CPU and
#      on CUDA; mean |Δ| ≤ 0.5 and max |Δ| ≤ 8 levels of 255;
#   4. `lumos train --device cuda` of the built-in prior's recipe: steps/s against the CPU.
# A dry run of the script's plumbing without a GPU: LUMOS_DEVICE=cpu BENCH_ONLY=encoder.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
DEV=${LUMOS_DEVICE:-cuda}
BENCH_ONLY=${BENCH_ONLY:-prior,encoder,vae}
# At most 8 files come back from $OUT: the log (which holds every step's output) and the
# summary go there, the steps' own files to $LOGS.
LOGS=/tmp/run-on-device
mkdir -p "$OUT" "$LOGS"
exec > >(tee -a "$OUT/run-on-device.log") 2>&1
PY=${PYTHON:-python3}
PACK=.gpu-bin
FIXTURES=${LUMOS_FIXTURES:-tests/fixtures}
[ -d shared/fixtures ] && FIXTURES=shared/fixtures
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
step() { echo; echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
# NVIDIA's libraries come with PyTorch's wheels (nvidia/cu13/lib and nvidia/*/lib).
NVLIBS=$("$PY" - <<'PY'
import glob, os, sys
dirs = []
for base in sys.path:
    for d in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        if os.path.isdir(d) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH=$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
BIN=/tmp/lumos-cuda
cat "$PACK"/lumos.xz.part* >/tmp/lumos.xz
"$PY" -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
  /tmp/lumos.xz "$BIN" && chmod +x "$BIN" || { summary "FAIL: no binary in $PACK (run device-pack.sh here first)"; exit 1; }
ldd "$BIN" | grep -E "cuda|cublas|curand|nvrtc|not found"
"$BIN" models | tail -2

step "1. selftest on $DEV ($FIXTURES)"
for precision in f32 f16 bf16; do
  timeout 90 "$BIN" selftest --device "$DEV" --precision "$precision" --fixtures "$FIXTURES" \
    >"$LOGS/selftest-$precision.txt" 2>&1
  rc=$?
  cat "$LOGS/selftest-$precision.txt"
  summary "selftest $DEV $precision: $([ $rc = 0 ] && echo PASS || echo "FAIL (exit $rc)")"
done

step "2. bench: lumos vs PyTorch on the same GPU"
# The reference's VAE needs diffusers, which the GPU machine may lack (then DiT and DINO only).
WHAT=dit,dino
"$PY" -c "import diffusers" 2>/dev/null && WHAT=dit,dino,vae
for precision in f16 f32; do
  timeout 100 "$BIN" bench --device "$DEV" --precision "$precision" --runs 5 --only "$BENCH_ONLY" \
    >"$LOGS/bench-lumos-$precision.txt" 2>&1
  cat "$LOGS/bench-lumos-$precision.txt"
  timeout 100 "$PY" "$PACK/torch_reference.py" bench --device "$DEV" --dtype "$precision" --repeats 5 \
    --what "$WHAT" >"$LOGS/bench-torch-$precision.txt" 2>&1
  cat "$LOGS/bench-torch-$precision.txt"
  "$PY" - "$LOGS/bench-lumos-$precision.txt" "$LOGS/bench-torch-$precision.txt" "$precision" <<'PY' | tee -a "$OUT/summary.txt"
import json, re, sys
ours = {}
for line in open(sys.argv[1]):
    m = re.search(r"median\s+([0-9.]+) s", line)
    if m:
        for key, name in (("LumosI2I", "lumos_i2i_xl2_forward_b2_256px"), ("DINO", "dino_vitb16_224_b1"),
                          ("VAE decode", "sd_vae_decode_32_to_256"), ("VAE encode", "sd_vae_encode_256")):
            if line.startswith(key):
                ours[name] = float(m.group(1))
theirs = {}
for line in open(sys.argv[2]):
    try:
        r = json.loads(line)
        theirs[r["what"]] = r["median_s"]
    except Exception:
        pass
for name, secs in ours.items():
    t = theirs.get(name)
    ratio = f"{secs / t:.2f}x" if t else "n/a (no PyTorch figure)"
    print(f"bench {sys.argv[3]} {name}: lumos {secs * 1000:.2f} ms, torch {t * 1000 if t else float('nan'):.2f} ms, ratio {ratio}")
if "lumos_i2i_xl2_forward_b2_256px" in ours and "lumos_i2i_xl2_forward_b2_256px" in theirs:
    o, t = 80 * ours["lumos_i2i_xl2_forward_b2_256px"], 80 * theirs["lumos_i2i_xl2_forward_b2_256px"]
    print(f"bench {sys.argv[3]} XL/2 4 images x 20 steps (80 CFG forwards): lumos {o:.2f} s, torch {t:.2f} s")
PY
done

step "3. same seed, same image: CPU vs $DEV (built-in model)"
for dev in cpu "$DEV"; do
  rm -rf "/tmp/same-$dev"
  timeout 90 "$BIN" generate assets/samples/chelsea.jpg -n 4 --seed 7 --model default --device "$dev" \
    -o "/tmp/same-$dev" >/dev/null 2>"$LOGS/same-$dev.err" || cat "$LOGS/same-$dev.err"
done
"$PY" - "$DEV" <<'PY' | tee -a "$OUT/summary.txt"
import glob
import numpy as np
from PIL import Image
import sys
cpu, cuda = sorted(glob.glob("/tmp/same-cpu/*.png")), sorted(glob.glob(f"/tmp/same-{sys.argv[1]}/*.png"))
if not cpu or len(cpu) != len(cuda):
    print(f"same-seed: FAIL ({len(cpu)} CPU images, {len(cuda)} CUDA images)")
else:
    d = np.concatenate([np.abs(np.asarray(Image.open(a).convert("RGB"), float) -
                               np.asarray(Image.open(b).convert("RGB"), float)).ravel()
                        for a, b in zip(cpu, cuda)])
    ok = d.mean() <= 0.5 and d.max() <= 8
    print(f"same-seed CPU vs CUDA, {len(cpu)} images: mean |d| {d.mean():.3f}, max {d.max():.0f}, "
          f"identical {np.mean(d == 0) * 100:.1f}% -> {'PASS' if ok else 'FAIL'} (tolerance mean 0.5, max 8)")
PY

step "4. training steps/s: $DEV vs CPU"
if [ -d "$PACK/train-images" ]; then
  for dev in "$DEV" cpu; do
    # The log prints a step line every 50 steps: the CPU's figure needs at least one.
    steps=$([ "$dev" = cpu ] && echo 50 || echo 300)
    rm -rf "/tmp/train-$dev"
    timeout 120 "$BIN" train --data "$PACK/train-images" --out "/tmp/train-$dev" --steps "$steps" \
      --batch 64 --save-every 100000 --device "$dev" >"$LOGS/train-$dev.txt" 2>&1
    tail -3 "$LOGS/train-$dev.txt"
    "$PY" - "$LOGS/train-$dev.txt" "$dev" <<'PY' | tee -a "$OUT/summary.txt"
import re, sys
text = open(sys.argv[1]).read()
# Step 0 is when the data is ready (the last "embedding views: n/n (T s)" line).
prep = re.findall(r"embedding views: (\d+)/\1 \((\d+) s\)", text)
pts = [(0, float(prep[-1][1]))] if prep else []
pts += [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"step (\d+) loss \S+ lr \S+ \((\d+) s\)", text)]
if len(pts) >= 2:
    (s0, t0), (s1, t1) = pts[0], pts[-1]
    print(f"train {sys.argv[2]} batch 64: {(s1 - s0) / max(t1 - t0, 1e-9):.2f} steps/s (steps {s0}-{s1})")
else:
    print(f"train {sys.argv[2]}: no timing (see train-{sys.argv[2]}.txt)")
PY
  done
else
  summary "train: skipped (no $PACK/train-images)"
fi

step "summary"
cat "$OUT/summary.txt"
