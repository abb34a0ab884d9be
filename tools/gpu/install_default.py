"""Installs a model exported by `train_prior.py` as the built-in default: merges its shards into
`assets/default/prior.safetensors` (float16, key names unchanged) and writes its config and name
into `assets/default/model.json`, keeping the encoder entry.

Usage: python3 tools/gpu/install_default.py EXPORT_DIR "Lumos small (…)"
"""

import json
import os
import sys

from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main(export_dir: str, name: str) -> None:
    state = {}
    for f in sorted(os.listdir(export_dir)):
        if f.startswith("prior") and f.endswith(".safetensors"):
            state.update(load_file(os.path.join(export_dir, f)))
    config = json.load(open(os.path.join(export_dir, "model.json")))["prior_config"]
    save_file(state, os.path.join(ROOT, "assets/default/prior.safetensors"))
    manifest_path = os.path.join(ROOT, "assets/default/model.json")
    manifest = json.load(open(manifest_path))
    manifest["name"] = name
    manifest["prior"]["config"] = config
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"installed {len(state)} tensors as {name!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
