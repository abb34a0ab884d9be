"""Installs a model exported by `train_prior.py` as the built-in default: merges its shards into
`assets/default/prior.safetensors` (float16, key names unchanged) and writes its config and name
into `assets/default/model.json`, keeping the encoder entry. With `--autoencoder DIR` (the output
of `train_autoencoder.py`, for a prior trained in its latent space) the autoencoder is copied to
`assets/default/autoencoder.safetensors` (float16) and named in the manifest's `vae` entry with
its config and latent → RGB preview map; without it the prior is a pixel-space one (`vae: null`).

Usage: python3 tools/gpu/install_default.py EXPORT_DIR "Lumos small (…)" [--autoencoder DIR]
"""

import argparse
import json
import os

from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ASSETS = os.path.join(ROOT, "assets/default")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("name")
    ap.add_argument("--autoencoder")
    args = ap.parse_args()
    state = {}
    for f in sorted(os.listdir(args.export_dir)):
        if f.startswith("prior") and f.endswith(".safetensors"):
            state.update(load_file(os.path.join(args.export_dir, f)))
    config = json.load(open(os.path.join(args.export_dir, "model.json")))["prior_config"]
    save_file(state, os.path.join(ASSETS, "prior.safetensors"))
    manifest_path = os.path.join(ASSETS, "model.json")
    manifest = json.load(open(manifest_path))
    manifest["name"] = name = args.name
    manifest["prior"]["config"] = config
    manifest["vae"] = None
    if args.autoencoder:
        weights = {k: v.half() for k, v in load_file(os.path.join(args.autoencoder, "autoencoder.safetensors")).items()}
        save_file(weights, os.path.join(ASSETS, "autoencoder.safetensors"))
        vae_config = json.load(open(os.path.join(args.autoencoder, "config.json")))
        vae_config["latent_rgb"] = json.load(open(os.path.join(args.autoencoder, "preview_rgb.json")))
        manifest["vae"] = {"path": "embedded:default/autoencoder.safetensors", "config": vae_config}
        print("autoencoder installed: the engine embeds it once embedded.rs lists default/autoencoder.safetensors")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"installed {len(state)} tensors as {name!r}")


if __name__ == "__main__":
    main()
