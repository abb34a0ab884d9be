"""Trains a novel-view prior (the Lumos NVS config of the engine's DiT) on a `lumos
render-dataset` set, in PyTorch, for a fixed wall-clock budget — on a lent GPU, or briefly on a
CPU.

The network is `lumos_torch.LumosI2I` with `input_view_channels = 3` and `pose_condition`: the
input view (pixels in [-1, 1]) is concatenated to the noisy target's channels, and an MLP of the
relative pose `[Δelevation (rad), sin Δazimuth, cos Δazimuth, Δradius]` is added to the global
condition token, which is the L2-normalised EfficientNet-Lite0 embedding of the input view (the
engine's `pipelines::multiview` does the same at inference). The target and loss are the image
recipe's (x0, ‖x̂0 − x0‖² / max(σ², 0.05)); the condition is dropped to the learned null with
probability `--cond-drop` (guidance).

`--init DIR` starts from an image prior (`prior.safetensors` + `model.json` as
`install_default.py` writes them, e.g. `assets/default`): every weight is taken over, the new
input-view channels of the patch embedding start at zero and the pose MLP's output layer at
zero, so training begins exactly at the image prior — the paper's "with the I2I prior". Without
`--init` the same network starts from scratch (`--width/--depth/--patch`): the other arm of the
comparison.

Views of each object are composited over white and resized to the model's size; pairs (input,
target) are drawn from the train split only (`object.json` `split`). Exports what `lumos
multiview` and `lumos eval-multiview` load: `prior.safetensors` (float16, original key names)
and a complete `model.json` (ModelSpec) next to it.

Usage: python3 train_nvs.py --data nvs-data --encoder assets/encoder/efficientnet_lite0.safetensors
           --out runs/nvs --minutes 10 [--init assets/default] [--size 64]
           [--embeddings-cache nvs-data.embeddings.safetensors]
"""

import argparse
import hashlib
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lumos_torch import EfficientNetLite0, LumosI2I, embed

T = 1000


@torch.no_grad()
def embed_views(images, encoder_path, device):
    """The L2-normalised EfficientNet-Lite0 embeddings `(n, v, 1280)` of u8 views `(n, v, 3, s, s)`,
    upsampled to the encoder's 128 px as the engine's pipeline does."""
    encoder = EfficientNetLite0({k: v.to(device) for k, v in load_file(encoder_path).items()})
    flat = images.reshape(-1, *images.shape[2:])

    def embed_chunk(u8):  # upsampled a chunk at a time: all at once is 21 GB for 9,000 objects
        up = F.interpolate(u8.to(device).float(), size=(128, 128), mode="bilinear", align_corners=False)
        return embed(encoder, up.round())

    embeddings = torch.cat([embed_chunk(flat[i : i + 256]) for i in range(0, len(flat), 256)])
    return embeddings.reshape(*images.shape[:2], -1)


def embeddings_key(images, encoder_path):
    """A digest of the views' pixels and the encoder's file: a cache of embeddings is only used
    for the very same views through the very same encoder (a dataset grown, re-rendered or
    resized gets new ones)."""
    digest = hashlib.sha256(images.contiguous().numpy().tobytes())
    with open(encoder_path, "rb") as f:
        digest.update(f.read())
    return digest.hexdigest()


def load_cached_embeddings(path, key):
    """The embeddings `save_cached_embeddings` wrote for these views, or None (no cache, or one
    of other views: said so)."""
    if not path or not os.path.isfile(path):
        return None
    with safe_open(path, "pt") as f:
        if (f.metadata() or {}).get("key") != key:
            print(f"{path} holds the embeddings of other views: embedding again", flush=True)
            return None
        print(f"embeddings of the views from {path}", flush=True)
        return f.get_tensor("embeddings").float()


def save_cached_embeddings(path, key, embeddings):
    """Writes the embeddings with their key in the file's metadata (one file,
    written aside and renamed: a killed run leaves the old cache or the new one)."""
    tensors = {"embeddings": embeddings.cpu().contiguous()}
    save_file(tensors, path + ".tmp", metadata={"key": key})
    os.replace(path + ".tmp", path)


def load_dataset(root, size):
    """(images u8 (n, v, 3, size, size), poses (n, v, 3) [elev°, azim°, radius]) of the train
    objects."""
    from PIL import Image

    images, poses = [], []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "object.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            obj = json.load(f)
        if obj["split"] != "train":
            continue
        views, cams = [], []
        for view in obj["views"]:
            rgba = Image.open(os.path.join(root, name, view["image"])).convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            white.alpha_composite(rgba)
            rgb = white.convert("RGB").resize((size, size), Image.BILINEAR)
            views.append(np.asarray(rgb).transpose(2, 0, 1))
            pose = view["pose"]
            cams.append([pose["elevation_deg"], pose["azimuth_deg"], pose["radius"]])
        images.append(np.stack(views))
        poses.append(cams)
    if not images:
        raise SystemExit(f"{root} has no train objects (make them with lumos render-dataset)")
    return torch.from_numpy(np.stack(images)), torch.tensor(poses, dtype=torch.float32)


def relative_pose(target, source):
    """The engine's `OrbitPose::relative_to`: (b, 3) degrees/radius → (b, 4)."""
    d_az = torch.deg2rad(target[:, 1] - source[:, 1])
    return torch.stack(
        [torch.deg2rad(target[:, 0] - source[:, 0]), d_az.sin(), d_az.cos(), target[:, 2] - source[:, 2]], 1
    )


def nvs_model(args, device):
    if args.init:
        with open(os.path.join(args.init, "model.json")) as f:
            spec = json.load(f)
        cfg = dict(spec["prior"]["config"] if "prior" in spec else spec["prior_config"])
    else:
        cfg = {
            "input_size": args.size, "patch_size": args.patch, "in_channels": 3,
            "hidden_size": args.width, "depth": args.depth, "num_heads": max(args.width // 64, 1),
            "mlp_ratio": 4.0, "caption_channels": 1280, "model_max_length": 1, "pred_sigma": False,
            "lewei_scale": 1.0, "prediction": "sample", "adaln_condition": True, "final_conv": True,
        }
    cfg.update(input_view_channels=3, pose_condition=True)
    if cfg["input_size"] != args.size:
        raise SystemExit(f"--size {args.size} but the prior works at {cfg['input_size']} px")
    model = LumosI2I(cfg)
    if args.init:
        image_prior = {k: v.float() for k, v in load_file(os.path.join(args.init, "prior.safetensors")).items()}
        state = model.state_dict()
        new = []
        for key, value in state.items():
            if key not in image_prior:
                new.append(key)
                continue
            old = image_prior[key]
            if key == "x_embedder.proj.weight":
                value.zero_()
                value[:, : old.shape[1]] = old  # the input view's channels start at zero
            else:
                value.copy_(old)
        model.load_state_dict(state)
        print(f"initialised from {args.init}; new (kept at their initialisation): {new}")
    return model.to(device), cfg


def export(args, cfg, ema):
    """Writes what the engine loads: float16 EMA weights and a complete model.json."""
    os.makedirs(args.out, exist_ok=True)
    save_file(
        {k: v.to(torch.float16).contiguous().cpu() for k, v in ema.items()},
        os.path.join(args.out, "prior.safetensors.tmp"),
    )  # written aside and renamed: a run killed mid-write keeps its previous export
    os.replace(os.path.join(args.out, "prior.safetensors.tmp"), os.path.join(args.out, "prior.safetensors"))
    spec = {
        "name": args.name,
        "precision": "F32",
        "prior": {"path": "prior.safetensors", "config": cfg},
        "encoder": {
            "path": "embedded:encoder/efficientnet_lite0.safetensors",
            "config": {"architecture": "efficientnet_lite0", "image_size": 128},
        },
        "vae": None,
        "guidance": args.guidance,
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(spec, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--init", help="an image prior's folder (prior.safetensors + model.json)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time only)")
    ap.add_argument("--save-minutes", type=float, default=10, help="export this often while training")
    ap.add_argument("--name", default="Lumos small multi-view")
    ap.add_argument(
        "--guidance",
        type=float,
        default=1.0,
        help="the guidance the exported manifest names, which lumos multiview, eval-multiview and the app"
        " start from (1: no guidance, the best of every novel-view model measured; assets/multiview/MODEL_CARD.md)",
    )
    ap.add_argument(
        "--embeddings-cache",
        help="a file for the input views' encoder embeddings: written on the first run, reused by later"
        " runs on the same views (embedding the 108,000 views of 9,000 objects took ~25 minutes on 2 CPU cores)",
    )
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)

    images, poses = load_dataset(args.data, args.size)
    n_obj, n_view = images.shape[:2]
    print(f"{n_obj} train objects × {n_view} views at {args.size} px on {device}")
    key = embeddings_key(images, args.encoder) if args.embeddings_cache else None
    embeddings = load_cached_embeddings(args.embeddings_cache, key)
    if embeddings is None:
        t0 = time.time()
        embeddings = embed_views(images, args.encoder, device)
        print(f"embedded {n_obj * n_view} views in {time.time() - t0:.0f} s", flush=True)
        if args.embeddings_cache:
            save_cached_embeddings(args.embeddings_cache, key, embeddings)
    embeddings = embeddings.to(device)
    images, poses = images.to(device), poses.to(device)

    model, cfg = nvs_model(args, device)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    ac = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float().to(device)
    deadline = time.time() + args.minutes * 60
    last_export = time.time()
    start, step, gen = time.time(), 0, torch.Generator(device=device).manual_seed(1)
    while time.time() < deadline and (args.max_steps == 0 or step < args.max_steps):
        b = args.batch
        obj = torch.randint(0, n_obj, (b,), generator=gen, device=device)
        src = torch.randint(0, n_view, (b,), generator=gen, device=device)
        dst = (src + torch.randint(1, n_view, (b,), generator=gen, device=device)) % n_view
        to_unit = lambda u8: u8.float() / 127.5 - 1
        x0, view = to_unit(images[obj, dst]), to_unit(images[obj, src])
        pose = relative_pose(poses[obj, dst], poses[obj, src])
        y = embeddings[obj, src].reshape(b, 1, 1, -1)
        drop = torch.rand(b, generator=gen, device=device) < args.cond_drop
        null = model.y_embedder.y_embedding.reshape(1, 1, 1, -1).expand(b, -1, -1, -1)
        y = torch.where(drop.reshape(b, 1, 1, 1), null, y)
        t = torch.randint(0, T, (b,), generator=gen, device=device)
        a = ac[t].reshape(b, 1, 1, 1)
        noise = torch.randn(x0.shape, generator=gen, device=device)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = model(torch.cat([xt, view], 1), t.float(), y, pose)
        weight = 1 / (1 - a).clamp(min=0.05)
        loss = (weight * (pred - x0) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        warm = min(1.0, (step + 1) / 200)
        progress = min(1.0, (time.time() - start) / max(deadline - start, 1e-6))
        for group in opt.param_groups:
            group["lr"] = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        opt.step()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(args.ema).add_(v, alpha=1 - args.ema)
        step += 1
        if step % 100 == 0 or step == 1:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
        if time.time() > last_export + args.save_minutes * 60:
            export(args, cfg, ema)  # a killed run keeps its last export; --init DIR continues it
            last_export = time.time()

    export(args, cfg, ema)
    print(f"exported {args.out} after {step} steps × {args.batch} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
