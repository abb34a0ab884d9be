"""Trains the built-in default prior on a GPU, in PyTorch, for a fixed wall-clock budget.

Why a second trainer: `lumos train` (Rust, candle) is the trainer anyone can run on a CPU; the
GPU machines this project is sometimes lent for 15 minutes have PyTorch and no Rust toolchain.
This script trains the same network (`lumos_torch.LumosI2I`, key-for-key the engine's
`LumosI2I`) on the same corpus and split, and exports what `lumos` loads: `prior.safetensors`
(float16, original key names, split into shards when asked) and `model.json`.

Recipe (each part an option, so A/B runs differ by flags only):
- data: `corpus.npz` from `pack_corpus.py` (u8 images and file names); the held-out split is the
  engine's (`eval::is_held_out`: first SHA-256 byte & 63 == 0) and is never trained on;
- condition: the L2-normalised EfficientNet-Lite0 embedding of the clean image or of one of
  `--views` augmented views (crop 55–100 % of the area, aspect 3:4–4:3, flip, ±20 % brightness,
  contrast, saturation; the augmentation of `train/data.rs`), computed once on the GPU;
  with `--spatial-tokens G` also the feature map pooled to G × G tokens (the engine's
  `ImageEncoder::embed_tokens`), replaced by their learned nulls with probability
  `--token-drop`; all replaced by the learned null with probability `--cond-drop` (guidance);
- target: x0 (`--prediction sample`, loss ‖x̂0 − x0‖² / max(σ², 0.05)) or v or ε, on the
  Lumos linear schedule (β 1e-4 → 0.02, 1000 steps);
- AdamW, warm-up then cosine decay over the wall-clock budget, EMA of the weights (exported);
- space: pixels in [-1, 1], or with `--autoencoder DIR` the scaled latent means of the small
  autoencoder `train_autoencoder.py` trains (encoded once; samples decoded for the check, which
  then also reports the retrieval of the autoencoder's own reconstructions: its floor);
- a quick retrieval check on the held-out split at the end (DDIM, 20 steps, guidance 4.5 or
  `--eval-guidance`).

Usage: python3 train_prior.py --data corpus.npz --encoder efficientnet_lite0.safetensors
           --out OUT/run --minutes 7 [--adaln-condition] [--final-conv] [--prediction sample]
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
from safetensors.torch import load_file, save_file

from lumos_torch import EfficientNetLite0, LumosI2I, embed, embed_tokens

T = 1000


def is_held_out(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[0] & 0x3F == 0


def schedule(device):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float().to(device)


def augmented_views(images_u8, size, gen):
    """Random crops/flips/jitter of (b, 3, s, s) u8 images, resized to `size`; u8 out."""
    b, _, s, _ = images_u8.shape
    dev = images_u8.device
    rand = lambda *shape: torch.rand(*shape, generator=gen, device=dev)
    area = 0.55 + 0.45 * rand(b)
    log_aspect = math.log(0.75) + (math.log(4 / 3) - math.log(0.75)) * rand(b)
    aspect = log_aspect.exp()
    cw = (area * aspect).sqrt().clamp(max=1.0)
    ch = (area / aspect).sqrt().clamp(max=1.0)
    cx = (rand(b) * (1 - cw)) + cw / 2  # centre in [0, 1]
    cy = (rand(b) * (1 - ch)) + ch / 2
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cw * flip
    theta[:, 0, 2] = cx * 2 - 1
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy * 2 - 1
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    view = F.grid_sample(images_u8.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = 0.8 + 0.4 * rand(b, 1, 1, 1)
    contrast = 0.8 + 0.4 * rand(b, 1, 1, 1)
    saturation = 0.8 + 0.4 * rand(b, 1, 1, 1)
    luma_w = torch.tensor([0.299, 0.587, 0.114], device=dev).reshape(1, 3, 1, 1)
    mean = (view * luma_w).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    rgb = view * brightness
    grey = (rgb.clamp(0, 255).floor() * luma_w).sum(1, keepdim=True)
    out = mean + (grey + (rgb - grey) * saturation - mean) * contrast
    return out.round().clamp(0, 255)


def upsample_u8(images_u8, size):
    """Bilinear resize (half-pixel centres, as Pillow upsamples), rounded to u8 values."""
    if images_u8.shape[-1] == size:
        return images_u8.float()
    out = F.interpolate(images_u8.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255)


@torch.no_grad()
def embed_all(encoder, images_u8, size, views, seed, grid):
    """(n, views, 1 + grid², 1280): view 0 the clean image, then augmented views; the global
    embedding, then the spatial tokens."""
    gen = torch.Generator(device=images_u8.device).manual_seed(seed)
    out = []
    for i in range(0, images_u8.shape[0], 1024):
        chunk = images_u8[i : i + 1024]
        per = [embed_tokens(encoder, upsample_u8(chunk, size), grid)]
        for _ in range(views - 1):
            per.append(embed_tokens(encoder, augmented_views(chunk, size, gen), grid))
        out.append(torch.stack(per, 1).half())
    return torch.cat(out)


@torch.no_grad()
def ddim_sample(model, cond, null, ac, steps, guidance, gen, prediction, size, channels=3, clip=True):
    """DDIM (eta 0) on the time-uniform grid, x0 clipped to [-1, 1] at every step when `clip`
    (pixel space; latents are not clipped, as the engine does)."""
    b = cond.shape[0]
    x = torch.randn(b, channels, size, size, generator=gen, device=cond.device)
    ts = torch.linspace(T - 1, 0, steps + 1, device=cond.device).round().long()
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        tt = t.repeat(2 * b).float()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cond.is_cuda):
            out = model(torch.cat([x, x]), tt, torch.cat([cond, null])).float()
        c_out, u_out = out.chunk(2)
        pred = u_out + guidance * (c_out - u_out)
        a, s = ac[t].sqrt(), (1 - ac[t]).sqrt()
        if prediction == "sample":
            x0 = pred
        elif prediction == "v":
            x0 = a * x - s * pred
        else:
            x0 = (x - s * pred) / a
        if clip:
            x0 = x0.clamp(-1, 1)
        eps = (x - a * x0) / s
        if i == steps - 1:
            x = x0
        else:
            an = ac[t_next]
            x = an.sqrt() * x0 + (1 - an).sqrt() * eps
    return x


def retrieval(gen_emb, src_emb):
    sims = gen_emb @ src_emb.T
    ranks = (sims > sims.diag()[:, None]).sum(1)
    return {
        "top1": (ranks < 1).float().mean().item(),
        "top5": (ranks < 5).float().mean().item(),
        "mean_cos": sims.diag().mean().item(),
    }


def export(model, ema, cfg, out_dir, name, shards):
    os.makedirs(out_dir, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in ema.items()}
    keys = sorted(state)
    if shards <= 1:
        save_file(state, os.path.join(out_dir, "prior.safetensors"))
    else:
        per = math.ceil(len(keys) / shards)
        for i in range(shards):
            part = {k: state[k] for k in keys[i * per : (i + 1) * per]}
            save_file(part, os.path.join(out_dir, f"prior.part{i}.safetensors"))
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump({"name": name, "prior_config": cfg}, f, indent=1)


def run_logger(out_dir):
    """Creates `out_dir`; returns `say(msg)`, which prints and appends to its `train.log`."""
    os.makedirs(out_dir, exist_ok=True)
    log = open(os.path.join(out_dir, "train.log"), "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    return say


def load_corpus(paths):
    """Names and u8 images (n, s, s, 3) from `pack_corpus.py`'s file, or from its parts
    (comma-separated paths)."""
    import io

    from PIL import Image

    names, images = [], []
    for path in paths.split(","):
        data = np.load(path)
        blob, offsets = data["blob"], data["offsets"]
        for i, name in enumerate(data["names"]):
            names.append(str(name))
            images.append(np.asarray(Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]].tobytes())).convert("RGB")))
    return names, np.stack(images)


def load_autoencoder(folder, dev):
    """The diffusers `AutoencoderKL` of `train_autoencoder.py` (config.json with its scaling
    factor, autoencoder.safetensors), frozen."""
    from diffusers import AutoencoderKL

    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    ae = AutoencoderKL.from_config(config)
    ae.load_state_dict(load_file(os.path.join(folder, "autoencoder.safetensors")))
    ae = ae.to(dev).eval().requires_grad_(False)
    return ae, config


@torch.no_grad()
def encode_latents(ae, scaling, images_u8, batch=128):
    """Scaled posterior means of (n, 3, s, s) u8 images."""
    out = []
    for i in range(0, images_u8.shape[0], batch):
        x = images_u8[i : i + batch].float() / 127.5 - 1
        out.append(ae.encode(x).latent_dist.mean * scaling)
    return torch.cat(out)


@torch.no_grad()
def decode_latents(ae, scaling, latents, batch=128):
    """Images in [-1, 1] from scaled latents."""
    return torch.cat([ae.decode(latents[i : i + batch] / scaling).sample.clamp(-1, 1) for i in range(0, len(latents), batch)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--ema", type=float, default=0.9995)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--prediction", default="sample", choices=["sample", "v", "epsilon"])
    ap.add_argument("--adaln-condition", action="store_true")
    ap.add_argument("--final-conv", action="store_true")
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--spatial-tokens", type=int, default=0, help="grid side of spatial condition tokens (0: the global token only)")
    ap.add_argument("--token-drop", type=float, default=0.0, help="probability of replacing the spatial tokens by their null")
    ap.add_argument("--encoder-size", type=int, default=128)
    ap.add_argument("--subset", type=int, default=0, help="train on the first N training images only (the gate)")
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--eval-guidance", type=float, default=4.5, help="1 for runs without condition dropout")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0, help="train exactly this many steps, the schedule over steps (--minutes ignored)")
    ap.add_argument("--autoencoder", help="folder of train_autoencoder.py's output: the prior works in its latent space")
    ap.add_argument("--init", help="folder of an exported model (prior*.safetensors) to continue from")
    args = ap.parse_args()

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    say = run_logger(args.out)

    names, images = load_corpus(args.data)
    images = torch.from_numpy(images).to(dev)  # (n, s, s, 3) u8
    images = images.permute(0, 3, 1, 2).contiguous()
    size = images.shape[-1]
    held = torch.tensor([is_held_out(n) for n in names], device=dev)
    train_idx = (~held).nonzero().squeeze(1)
    held_idx = held.nonzero().squeeze(1)
    if args.subset:
        train_idx = train_idx[: args.subset]
    say(f"{len(names)} images at {size}px: {len(train_idx)} trained on, {len(held_idx)} held out")

    enc_state = {k: v.to(dev) for k, v in load_file(args.encoder).items()}
    encoder = EfficientNetLite0(enc_state).eval()
    t0 = time.time()
    used = torch.cat([train_idx, held_idx])
    n_tokens = 1 + args.spatial_tokens**2
    emb = torch.zeros(len(names), args.views, n_tokens, 1280, device=dev, dtype=torch.float16)
    emb[used] = embed_all(encoder, images[used], args.encoder_size, args.views, args.seed, args.spatial_tokens)
    say(f"embedded {len(used)} images x {args.views} views in {time.time() - t0:.1f}s")

    ae, scaling, targets = None, 1.0, None
    if args.autoencoder:
        t0 = time.time()
        ae, ae_config = load_autoencoder(args.autoencoder, dev)
        scaling = ae_config["scaling_factor"]
        latents = encode_latents(ae, scaling, images[used])
        targets = torch.zeros((len(names),) + latents.shape[1:], device=dev)
        targets[used] = latents
        say(f"encoded {len(used)} images to latents {tuple(latents.shape[1:])} in {time.time() - t0:.1f}s (std {latents.std().item():.3f})")
    space_channels = 3 if ae is None else targets.shape[1]
    space_size = size if ae is None else targets.shape[-1]

    cfg = {
        "input_size": space_size,
        "patch_size": args.patch,
        "in_channels": space_channels,
        "hidden_size": args.width,
        "depth": args.depth,
        "num_heads": args.heads,
        "mlp_ratio": 4.0,
        "caption_channels": 1280,
        "model_max_length": n_tokens,
        "pred_sigma": False,
        "lewei_scale": 1.0,
        "prediction": args.prediction,
        "adaln_condition": args.adaln_condition,
        "final_conv": args.final_conv,
        "spatial_condition_grid": args.spatial_tokens,
    }
    model = LumosI2I(cfg).to(dev)
    if args.init:
        state = {}
        for f in sorted(os.listdir(args.init)):
            if f.startswith("prior") and f.endswith(".safetensors"):
                state.update(load_file(os.path.join(args.init, f)))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        say(f"continuing from {args.init} ({len(state)} tensors)")
    n_params = sum(p.numel() for p in model.parameters())
    say(f"config {json.dumps(cfg)}; {n_params / 1e6:.2f} M parameters")
    params = dict(model.named_parameters())
    ema = {k: v.detach().clone().float() for k, v in params.items()}
    ema_list, param_list = list(ema.values()), list(params.values())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    ac = schedule(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed + 1)
    budget = args.minutes * 60
    warmup_secs = min(20.0, 0.05 * budget)
    start = time.time()
    step = 0
    losses = []
    while True:
        elapsed = time.time() - start
        if args.steps:
            # A fixed number of steps (a fair A/B whatever else runs on the machine): the
            # schedule follows the steps, warm-up over the first 50.
            if step >= args.steps:
                break
            frac, warm = step / args.steps, min(1.0, (step + 1) / 50)
        else:
            if elapsed >= budget or (args.max_steps and step >= args.max_steps):
                break
            frac, warm = elapsed / budget, min(1.0, (elapsed + 1e-3) / warmup_secs)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        pick = train_idx[torch.randint(len(train_idx), (args.batch,), generator=gen, device=dev)]
        x0 = images[pick].float() / 127.5 - 1 if ae is None else targets[pick]
        view = torch.randint(args.views, (args.batch,), generator=gen, device=dev)
        y = emb[pick, view].float().reshape(args.batch, 1, n_tokens, 1280)
        null = model.y_embedder.y_embedding.reshape(1, 1, n_tokens, 1280).expand_as(y)
        if n_tokens > 1 and args.token_drop > 0:
            tok_drop = torch.rand(args.batch, generator=gen, device=dev) < args.token_drop
            spatial = torch.where(tok_drop.reshape(-1, 1, 1, 1), null[:, :, 1:], y[:, :, 1:])
            y = torch.cat([y[:, :, :1], spatial], 2)
        drop = torch.rand(args.batch, generator=gen, device=dev) < args.cond_drop
        y = torch.where(drop.reshape(-1, 1, 1, 1), null, y)
        t = torch.randint(T, (args.batch,), generator=gen, device=dev)
        a = ac[t].sqrt().reshape(-1, 1, 1, 1)
        s = (1 - ac[t]).sqrt().reshape(-1, 1, 1, 1)
        eps = torch.randn(x0.shape, generator=gen, device=dev)
        xt = a * x0 + s * eps
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model(xt, t.float(), y).float()
        if args.prediction == "sample":
            per = ((out - x0) ** 2).mean(dim=(1, 2, 3)) / (s.flatten() ** 2).clamp_min(0.05)
        elif args.prediction == "v":
            per = ((out - (a * eps - s * x0)) ** 2).mean(dim=(1, 2, 3))
        else:
            per = ((out - eps) ** 2).mean(dim=(1, 2, 3))
        loss = per.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_list, [p.detach().float() for p in param_list], 1 - decay)
        losses.append(loss.detach())
        if step % 500 == 0:
            mean = torch.stack(losses).mean().item()
            losses = []
            say(f"step {step} loss {mean:.4f} lr {lr:.2e} {time.time() - start:.0f}s")
        if step % 5000 == 0:
            export(model, ema, cfg, args.out, f"Lumos small ({step} steps)", args.shards)
    say(f"trained {step} steps x {args.batch} in {time.time() - start:.0f}s")
    export(model, ema, cfg, args.out, f"Lumos small ({step} steps)", args.shards)

    # Retrieval of held-out (and some training) sources from one variation each.
    with torch.no_grad():
        for k, v in params.items():
            v.copy_(ema[k])
    model.eval()
    results = {"steps": step, "batch": args.batch, "params": n_params}
    for split, idx in (("held_out", held_idx[: args.eval_n]), ("train", train_idx[: args.eval_n])):
        cond = emb[idx, 0].float().reshape(-1, 1, n_tokens, 1280)
        src = cond[:, 0, 0]
        g = torch.Generator(device=dev).manual_seed(1234)
        null = model.y_embedder.y_embedding.detach().reshape(1, 1, n_tokens, 1280).expand(len(idx), 1, n_tokens, 1280)
        samples = ddim_sample(model, cond, null, ac, 20, args.eval_guidance, g, args.prediction, space_size, space_channels, ae is None)
        if ae is not None:
            samples = decode_latents(ae, scaling, samples)
            # The autoencoder's floor: its reconstructions of the sources, retrieved the same way.
            recon = decode_latents(ae, scaling, targets[idx])
            recon_emb = embed(encoder, upsample_u8(((recon + 1) * 127.5).round().clamp(0, 255), args.encoder_size))
            results[split + "_reconstructed"] = retrieval(recon_emb, src)
        u8 = ((samples + 1) * 127.5).round().clamp(0, 255)
        gen_emb = embed(encoder, upsample_u8(u8, args.encoder_size))
        r = retrieval(gen_emb, src)
        r["pixel_mse"] = ((samples - (images[idx].float() / 127.5 - 1)) ** 2).mean().item()
        results[split] = r
        if split == "held_out":
            grid = torch.cat([images[idx[:16]].float(), u8[:16]], dim=3)  # source | variation
            np.save(os.path.join(args.out, "samples.npy"), grid.byte().cpu().numpy())
    say("eval " + json.dumps(results))
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
