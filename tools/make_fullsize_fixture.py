#!/usr/bin/env python3
"""Makes a full-size LumosI2I_XL_2 parity fixture (random weights) in the layout of
`fixtures/lumos_i2i_tiny`, using the PyTorch reference model of shared/bench/torch_reference.py:

    python3 tools/make_fullsize_fixture.py OUT_DIR
    cargo run -p lumos-engine --bin lumos -- selftest --fixtures OUT_DIR

OUT_DIR/lumos_i2i_tiny/ then holds config.json, weights.pth (a 3.3 GB `torch.save` of the state
dict, the container of the published Lumos_I2I.pth) and io.safetensors (x, t, y, out);
dino_vit_tiny/ a ViT-B/16 (timm, DINO's key names) and vae_tiny/ an sd-vae-ft-mse-sized
AutoencoderKL saved by diffusers. It checks that checkpoints of the real sizes and formats
load and compute the same functions. Needs torch, timm, diffusers and safetensors.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
from torch_reference import LumosI2I  # noqa: E402

out = os.path.join(sys.argv[1], "lumos_i2i_tiny")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = LumosI2I().eval()
with torch.no_grad():
    # Non-degenerate weights (the original init zeroes adaLN and output projections).
    for name, p in model.named_parameters():
        if p.dim() > 1:
            p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
        else:
            p.copy_(torch.randn_like(p) * 0.1)
    x = torch.randn(2, 4, 32, 32)
    t = torch.tensor([999.0, 421.37])
    y = torch.nn.functional.normalize(torch.randn(2, 768), dim=-1).reshape(2, 1, 1, 768)
    y_out = model(x, t, y)
torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
save_file({"x": x, "t": t, "y": y, "out": y_out.contiguous()}, os.path.join(out, "io.safetensors"))
config = {"input_size": 32, "patch_size": 2, "in_channels": 4, "hidden_size": 1152, "depth": 28,
          "num_heads": 16, "mlp_ratio": 4.0, "caption_channels": 768, "model_max_length": 1,
          "pred_sigma": True, "lewei_scale": 1.0}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
print(json.dumps({"out_max": y_out.abs().max().item(), "dir": out}))

# DINO ViT-B/16 at full size (timm's ViT-B/16 has the DINO key names and eps), in the layout
# of fixtures/dino_vit_tiny: only the 224 px path (timm interpolates positions differently).
import timm  # noqa: E402

dino_dir = os.path.join(sys.argv[1], "dino_vit_tiny")
os.makedirs(dino_dir, exist_ok=True)
vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0).eval()
with torch.no_grad():
    for name, p in vit.named_parameters():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif p.dim() == 1:
            p.copy_(0.1 * torch.randn_like(p))
    img = torch.randn(2, 3, 224, 224)
    cls = vit.forward_features(img)[:, 0]
torch.save(vit.state_dict(), os.path.join(dino_dir, "weights.pth"))
save_file({"x224": img, "224.cls": cls.contiguous()}, os.path.join(dino_dir, "io.safetensors"))
json.dump({"img_size": [224], "patch_size": 16, "in_chans": 3, "embed_dim": 768, "depth": 12,
           "num_heads": 12, "mlp_ratio": 4}, open(os.path.join(dino_dir, "config.json"), "w"))
print(json.dumps({"cls_max": cls.abs().max().item(), "dir": dino_dir}))

# The SD VAE at full size (sd-vae-ft-mse's configuration), saved by diffusers.
from diffusers import AutoencoderKL  # noqa: E402

vae_dir = os.path.join(sys.argv[1], "vae_tiny")
vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4,
                    block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                    latent_channels=4, norm_num_groups=32).eval()
with torch.no_grad():
    for name, p in vae.named_parameters():
        if "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif p.dim() == 1:
            p.copy_(0.1 * torch.randn_like(p))
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    mean = vae.encode(image).latent_dist.mean
    latent = torch.randn(1, 4, 32, 32)
    decoded = vae.decode(latent).sample
vae.save_pretrained(vae_dir)
save_file({"image": image, "posterior_mean": mean.contiguous(), "latent": latent,
           "decoded": decoded.contiguous()}, os.path.join(vae_dir, "io.safetensors"))
print(json.dumps({"decoded_max": decoded.abs().max().item(), "dir": vae_dir}))
