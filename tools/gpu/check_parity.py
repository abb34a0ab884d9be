"""Writes `engine/tests/data/torch_mirror.safetensors`: what the PyTorch mirrors in
`lumos_torch.py` compute, for `engine/tests/torch_mirror.rs` to compare with the engine.

The built-in prior is trained by `train_prior.py` and run by the engine, so the two must agree:
- a small `LumosI2I` with every option the built-in model uses (adaLN condition, x0 prediction,
  final conv), all weights random (none left at their zero initialisation), its output for two
  samples at different times and at one shared time (the engine's two adaLN paths);
- the same prior in its novel-view config (input-view channels, pose condition), all weights
  random, its output for two samples with their relative poses;
- the EfficientNet-Lite0 embedding (from `assets/encoder`) of two 128 × 128 images, and their
  condition tokens with a 2 × 2 spatial grid (`train_prior.py --spatial-tokens 2`);
- diffusers' `AutoencoderKL` laid out as the built-in latent model's (`train_autoencoder.py`: four
  levels, one resnet each, GroupNorm of 16 groups; narrower, to keep the file small), random
  weights: the posterior mean of two images and the decoding of it.

Usage: python3 tools/gpu/check_parity.py   (CPU is enough; needs torch, numpy, safetensors)
"""

import json
import os

import torch
from safetensors.torch import load_file, save_file

from lumos_torch import EfficientNetLite0, LumosI2I, embed, embed_tokens

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")


def main():
    torch.manual_seed(0)
    cfg = {
        "input_size": 16,
        "patch_size": 4,
        "in_channels": 3,
        "hidden_size": 64,
        "depth": 2,
        "num_heads": 2,
        "mlp_ratio": 4.0,
        "caption_channels": 32,
        "model_max_length": 1,
        "pred_sigma": False,
        "lewei_scale": 1.0,
        "prediction": "sample",
        "adaln_condition": True,
        "final_conv": True,
    }
    model = LumosI2I(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    y = torch.randn(2, 1, 1, 32, dtype=torch.float64)
    y = y / y.norm(dim=-1, keepdim=True)
    t = torch.tensor([10.0, 700.0], dtype=torch.float64)
    t_same = torch.tensor([500.0, 500.0], dtype=torch.float64)
    with torch.no_grad():
        out = model(x, t, y)
        out_same = model(x, t_same, y)
    tensors = {f"prior.{k}": v.float().contiguous() for k, v in model.state_dict().items()}
    tensors.update(
        x=x.float(), y=y.float(), t=t.float(), out=out.float(), t_same=t_same.float(), out_same=out_same.float()
    )

    # The novel-view config: the input view as extra channels, the pose on the global token.
    nvs_cfg = dict(cfg, input_view_channels=3, pose_condition=True)
    nvs = LumosI2I(nvs_cfg).double()
    with torch.no_grad():
        for p in nvs.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    nvs_x = torch.randn(2, 6, 16, 16, dtype=torch.float64)
    nvs_pose = torch.tensor([[0.3, 0.5, 0.866, 0.0], [-0.1, -1.0, 0.0, 0.2]], dtype=torch.float64)
    with torch.no_grad():
        nvs_out = nvs(nvs_x, t, y, nvs_pose)
    tensors.update({f"nvs_prior.{k}": v.float().contiguous() for k, v in nvs.state_dict().items()})
    tensors.update(nvs_x=nvs_x.float(), nvs_pose=nvs_pose.float(), nvs_out=nvs_out.float())

    enc = EfficientNetLite0(load_file(os.path.join(ROOT, "assets/encoder/efficientnet_lite0.safetensors")))
    g = torch.Generator().manual_seed(1)
    # Smooth colour fields with a few hard edges: image-like, not noise.
    coarse = torch.rand(2, 3, 8, 8, generator=g) * 255
    images = torch.nn.functional.interpolate(coarse, size=(128, 128), mode="bilinear", align_corners=False)
    images[:, :, 40:90, 30:60] = torch.tensor([250.0, 40.0, 30.0]).reshape(1, 3, 1, 1)
    images = images.round().clamp(0, 255)
    with torch.no_grad():
        emb = embed(enc, images)
        tokens = embed_tokens(enc, images, 2)
    tensors.update(
        encoder_images=images.to(torch.uint8), encoder_embeddings=emb.float(), encoder_tokens=tokens.float()
    )

    from train_autoencoder import build

    ae = build([16, 16, 32, 32], 1, 4).double().eval()
    with torch.no_grad():
        for p in ae.parameters():
            p.copy_(p + torch.randn_like(p) * 0.05)  # GroupNorm affines and biases off their init
        ae_images = images[:, :, 32:96, 32:96].double() / 127.5 - 1  # 64 px: a smaller file
        ae_mean = ae.encode(ae_images).latent_dist.mean
        ae_decoded = ae.decode(ae_mean).sample
    tensors.update({f"autoencoder.{k}": v.float().contiguous() for k, v in ae.state_dict().items()})
    tensors.update(ae_mean=ae_mean.float().contiguous(), ae_decoded=ae_decoded.float().contiguous())
    ae_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in ae.config.items() if not k.startswith("_")}

    out_path = os.path.join(ROOT, "engine/tests/data/torch_mirror.safetensors")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    save_file(
        tensors,
        out_path,
        metadata={
            "prior_config": json.dumps(cfg),
            "nvs_prior_config": json.dumps(nvs_cfg),
            "autoencoder_config": json.dumps(ae_cfg),
        },
    )
    print(f"wrote {len(tensors)} tensors to {out_path}")


if __name__ == "__main__":
    main()
