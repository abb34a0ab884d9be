"""Packs a folder of corpus images into one compressed `.npz` small enough to carry to a GPU
machine (whose working tree, data included, must fit in 64 MiB).

Every image is resized like the engine's `train::data::load_images` does for square corpus
images (they already are the training size, so normally nothing changes) and stored as u8 RGB in
lossless WebP (about 2.4 kB an image, 40 % of zlib on the raw array), concatenated into one
byte array with offsets, with the file names relative to the folder (the held-out split hashes
those names). `train_prior.load_corpus` reads it back.

Usage: python3 pack_corpus.py CORPUS/images OUT.npz [--size 64] [--quality 95] [--parts N]

(`--quality 95`, lossy, halves the file when a checkpoint must travel beside it. `--parts N`
writes OUT.part0.npz … OUT.part{N-1}.npz, every N-th image in each, for data larger than one
device call can carry: carry one part per call — the machine keeps what earlier calls carried
while it stays warm — and give the trainers the parts comma-separated.)
"""

import argparse
import io
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--quality", type=int, default=0, help="lossy WebP quality (0: lossless)")
    ap.add_argument("--parts", type=int, default=1)
    args = ap.parse_args()
    names = sorted(
        f for f in os.listdir(args.folder) if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))
    )
    blobs = []
    for name in names:
        im = Image.open(os.path.join(args.folder, name)).convert("RGB")
        if im.size != (args.size, args.size):
            im = im.resize((args.size, args.size), Image.BILINEAR)
        buf = io.BytesIO()
        if args.quality:
            im.save(buf, "WEBP", quality=args.quality, method=4)
        else:
            im.save(buf, "WEBP", lossless=True, quality=100, method=4)
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
    for part in range(args.parts):
        out = args.out if args.parts == 1 else args.out.removesuffix(".npz") + f".part{part}.npz"
        these = range(part, len(names), args.parts)
        offsets = np.cumsum([0] + [len(blobs[i]) for i in these]).astype(np.int64)
        blob = np.concatenate([blobs[i] for i in these])
        np.savez(out, blob=blob, offsets=offsets, names=np.array([names[i] for i in these]))
        print(f"packed {len(these)} images into {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
