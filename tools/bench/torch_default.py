#!/usr/bin/env python3
"""PyTorch baseline for `lumos bench --only default` (4 variations x 20 steps of the built-in
default prior).

Times what the denoising costs in PyTorch: 20 forwards of the LumosI2I network at the default's
configuration (read from assets/default/model.json) on a batch of 8 (four images, each with its
conditional and unconditional half), with random weights, then, for a latent prior, one decode
of the four latents by diffusers' AutoencoderKL at the manifest's configuration. It reuses the
network of the shared PyTorch reference (`torch_reference.py`, checked against the fixtures),
whose path is the first argument. The reference always predicts a variance too (6 output
channels instead of 3), which costs one slightly wider final projection.

  python3 tools/bench/torch_default.py ../shared/bench/torch_reference.py [--threads 2]

Prints one JSON line: median seconds of the 20 forwards over --repeats runs.
"""
import argparse
import importlib.util
import json
import os
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", help="path of torch_reference.py")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("torch_reference", args.reference)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    manifest = json.load(open(os.path.join(os.path.dirname(__file__), "../../assets/default/model.json")))
    cfg = manifest["prior"]["config"]
    size, channels = cfg["input_size"], cfg["in_channels"]
    model = ref.LumosI2I(input_size=size, patch=cfg["patch_size"], in_ch=channels, c=cfg["hidden_size"],
                         depth=cfg["depth"], heads=cfg["num_heads"], cond=cfg["caption_channels"]).eval()
    x = torch.randn(8, channels, size, size)
    y = torch.randn(8, 1, 1, cfg["caption_channels"])
    decoder = None
    if manifest.get("vae"):
        from diffusers import AutoencoderKL

        vae_config = {k: v for k, v in manifest["vae"]["config"].items() if k != "latent_rgb"}
        decoder = AutoencoderKL.from_config(vae_config).eval()

    def denoise():
        for step in range(20):
            t = torch.full((8,), 999.0 - step * 50.0)
            model(x, t, y)
        if decoder is not None:
            decoder.decode(x[:4]).sample

    with torch.no_grad():
        denoise()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            denoise()
            times.append(time.perf_counter() - start)
    print(json.dumps({"what": "default_4_variations_20_steps",
                      "median_s": statistics.median(times), "runs": times,
                      "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
