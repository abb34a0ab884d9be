"""Packs a folder of corpus images into one compressed `.npz` small enough to carry to a GPU
machine (whose working tree, data included, must fit in 64 MiB).

Every image is resized like the engine's `train::data::load_images` does for square corpus
images (they already are the training size, so normally nothing changes) and stored as u8 RGB in
lossless WebP (about 2.4 kB an image, 40 % of zlib on the raw array), concatenated into one
byte array with offsets, with the file names relative to the folder (the held-out split hashes
those names). `train_prior.load_corpus` reads it back.

Usage: python3 pack_corpus.py CORPUS/images OUT.npz [--size 64] [--quality 95]

(`--quality 95`, lossy, halves the file when a checkpoint must travel beside it.)
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
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    np.savez(args.out, blob=np.concatenate(blobs), offsets=offsets, names=np.array(names))
    print(f"packed {len(names)} images into {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
