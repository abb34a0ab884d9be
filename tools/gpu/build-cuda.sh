#!/usr/bin/env bash
# Builds `lumos` with `--features cuda` on a machine that has no CUDA toolkit and no GPU.
#
# Why this way: candle compiles its kernels with nvcc at build time (PTX, plus a static library
# of GGUF/MoE kernels) and links cuBLAS, cuRAND, NVRTC and the driver dynamically. NVIDIA
# publishes the CUDA 13.0 compiler as PyPI wheels, so the compiler comes from pip (cached). The
# libraries are only needed when the binary runs, on the GPU machine (its driver and PyTorch's
# `nvidia-*` wheels provide them); for linking here, the script makes stub libraries with the
# same SONAMEs and symbol names — what the toolkit's own `lib64/stubs` are — from cudarc's
# bindings (the driver stub exists in no wheel; the cuBLAS wheels alone are 450 MB).
#
# Usage: bash tools/gpu/build-cuda.sh [--check]
#   CUDA_COMPUTE_CAP  the kernels' PTX target (default 80). The driver compiles PTX for the GPU
#                     it runs on, so compute 8.0 covers A100, RTX 30/40/50, H100/H200 in one
#                     binary (candle's kernels use nothing newer); 90 restricts it to Hopper.
#   LUMOS_CUDA_CACHE  where wheels and the toolkit are kept (default ~/.cache/lumos-cuda)
#   --check           `cargo check --features cuda` only (what CI runs), no binary
#   --toolkit         lay out the toolkit and the stubs only
# Prints the stripped binary's path as its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${LUMOS_CUDA_CACHE:-$HOME/.cache/lumos-cuda}
CUDA_SERIES=13.0
TK=$CACHE/toolkit-$CUDA_SERIES
PY=${PYTHON:-python3}
MODE=${1:-build}

if [ ! -x "$TK/bin/nvcc" ] || [ ! -e "$TK/.complete" ]; then
  echo "laying out the CUDA $CUDA_SERIES compiler from PyPI wheels in $TK" >&2
  mkdir -p "$CACHE/wheels"
  "$PY" -m pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 -q -d "$CACHE/wheels" \
    "nvidia-cuda-nvcc==$CUDA_SERIES.*" "nvidia-cuda-crt==$CUDA_SERIES.*" \
    "nvidia-cuda-runtime==$CUDA_SERIES.*" "nvidia-cuda-cccl==$CUDA_SERIES.*" \
    "nvidia-nvvm==$CUDA_SERIES.*" >&2
  rm -rf "$TK" "$CACHE/unpack"
  mkdir -p "$CACHE/unpack"
  for wheel in "$CACHE"/wheels/nvidia_cuda_nvcc-"$CUDA_SERIES".*.whl \
    "$CACHE"/wheels/nvidia_cuda_crt-"$CUDA_SERIES".*.whl \
    "$CACHE"/wheels/nvidia_cuda_runtime-"$CUDA_SERIES".*.whl \
    "$CACHE"/wheels/nvidia_cuda_cccl-"$CUDA_SERIES".*.whl \
    "$CACHE"/wheels/nvidia_nvvm-"$CUDA_SERIES".*.whl; do
    "$PY" -m zipfile -e "$wheel" "$CACHE/unpack"
  done
  mv "$CACHE/unpack/nvidia/cu13" "$TK"
  rm -rf "$CACHE/unpack"
  chmod +x "$TK"/bin/* "$TK"/nvvm/bin/*
  # The crt headers ship in bin/crt; nvcc looks for them in include/crt.
  ln -sfn ../bin/crt "$TK/include/crt"
  # Link-time names for the runtime the kernel library uses.
  ln -sfn libcudart.so.13 "$TK/lib/libcudart.so"
  touch "$TK/.complete"
fi

# Stub libraries to link against (never shipped, never loaded where the real ones exist).
cargo fetch --manifest-path "$ROOT/Cargo.toml" -q
CUDARC=$(cargo metadata --manifest-path "$ROOT/Cargo.toml" --format-version 1 --features lumos-engine/cuda 2>/dev/null |
  "$PY" -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc").rsplit("/",1)[0])')
STUBS=$TK/lib/stubs
if [ ! -e "$STUBS/.from-$(basename "$CUDARC")" ]; then
  rm -rf "$STUBS"
  mkdir -p "$STUBS"
  # library  SONAME             cudarc bindings
  while read -r lib soname module; do
    # Every stub returns CUDA_ERROR_STUB_LIBRARY (34) like the toolkit's stubs, should one ever load.
    sed -n 's/^pub unsafe fn \([A-Za-z0-9_]*\)(.*/int \1(void) { return 34; }/p' \
      "$CUDARC/src/$module/sys/mod.rs" | sort -u >"$STUBS/$lib.c"
    cc -shared -fPIC -o "$STUBS/lib$lib.so" -Wl,-soname,"$soname" "$STUBS/$lib.c"
    rm "$STUBS/$lib.c"
  done <<'EOF'
cuda libcuda.so.1 driver
cublas libcublas.so.13 cublas
cublasLt libcublasLt.so.13 cublaslt
curand libcurand.so.10 curand
nvrtc libnvrtc.so.13 nvrtc
EOF
  touch "$STUBS/.from-$(basename "$CUDARC")"
fi

[ "$MODE" = "--toolkit" ] && { echo "$TK"; exit 0; }

export CUDA_HOME=$TK CUDA_PATH=$TK CUDARC_CUDA_VERSION=13000
export PATH=$TK/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
cd "$ROOT"
# A target folder of its own, so CPU builds and tests are never rebuilt because of it.
export CARGO_TARGET_DIR=$ROOT/target/cuda
if [ "$MODE" = "--check" ]; then
  cargo check -p lumos-engine --features cuda --all-targets
  exit 0
fi
# Thin LTO would add minutes on 2 cores for nothing measurable: the GPU does the work.
CARGO_PROFILE_RELEASE_LTO=false cargo build --release -p lumos-engine --bin lumos --features cuda >&2
BIN=$CARGO_TARGET_DIR/release/lumos
strip "$BIN"
echo "$BIN"
