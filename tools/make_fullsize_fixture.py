#!/usr/bin/env python3
"""Makes a full-size LumosI2I_XL_2 parity fixture (random weights) in the layout of
`fixtures/lumos_i2i_tiny`, using the PyTorch reference model of shared/bench/torch_reference.py:

    python3 tools/make_fullsize_fixture.py OUT_DIR
    cargo run -p lumos-engine --bin lumos -- selftest --fixtures OUT_DIR

OUT_DIR/lumos_i2i_tiny/ then holds config.json, weights.pth (a 3.3 GB `torch.save` of the state
dict, the container of the published Lumos_I2I.pth) and io.safetensors (x, t, y, out). It checks
that a checkpoint of the real size and format loads and computes the same function.
Needs torch and safetensors.
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
