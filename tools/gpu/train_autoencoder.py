"""Trains a small autoencoder for the built-in prior's latent space, in PyTorch, resumably.

Why: the built-in prior drew 8 × 8 pixel patches through a linear unpatchify, which shows as seams
and costs 192 inputs per token; a latent space from a small autoencoder (× 8 down, 4 channels,
patch 2) keeps the DiT's token count at 128 px and lets a convolutional decoder draw the pixels.
The network is diffusers' `AutoencoderKL` (the field's implementation, the layout the engine's
`models/vae.rs` loads by its key names), so nothing here is written twice.

Recipe: L1 + `--mse` × L2 on pixels in [-1, 1] plus `--kl` × the KL term (SD's 1e-6 order), on
random `--crop` squares when given (a quarter of the cost at half the side), flipped half the
time, the held-out split of the engine (`eval::is_held_out`) never trained on, AdamW with warm-up and cosine
decay over the wall-clock budget. `state.pt` (model, optimiser, step, elapsed time) is written every
`--save-every` seconds and a run given the same `--out` continues from it. At the end the scaling
factor (1 / std of the latent means, as SD chose 0.18215) and a least-squares latent → RGB map for
the live preview are measured and written with the weights:

  OUT/autoencoder.safetensors  diffusers key names, float32
  OUT/config.json              diffusers config (with `scaling_factor`)
  OUT/preview_rgb.json         {"matrix": 4 × 3 rows, "bias": 3}: rgb = latent · matrix + bias
  OUT/eval.json                held-out PSNR of reconstructions and the figures above

Usage: python3 train_autoencoder.py --data corpus128.npz --out runs/ae --minutes 20
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from train_prior import is_held_out, load_corpus, run_logger


def build(channels, layers, latent):
    from diffusers import AutoencoderKL

    n = len(channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(channels),
        layers_per_block=layers,
        latent_channels=latent,
        norm_num_groups=min(32, min(channels)),
    )


def psnr(a, b):
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return (10 * torch.log10(4.0 / mse)).mean().item()  # peak-to-peak 2 in [-1, 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of the whole run (resumes count)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--channels", default="32,64,64,64")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--latent", type=int, default=4)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--mse", type=float, default=1.0)
    ap.add_argument("--crop", type=int, default=0, help="train on random crops of this side (0: whole images)")
    ap.add_argument("--save-every", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    say = run_logger(args.out)
    names, images = load_corpus(args.data)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(dev)
    held = torch.tensor([is_held_out(n) for n in names], device=dev)
    train_idx, held_idx = (~held).nonzero().squeeze(1), held.nonzero().squeeze(1)
    size = images.shape[-1]
    say(f"{len(names)} images at {size}px: {len(train_idx)} trained on, {len(held_idx)} held out")

    channels = [int(c) for c in args.channels.split(",")]
    model = build(channels, args.layers, args.latent).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    state_path = os.path.join(args.out, "state.pt")
    step, spent = 0, 0.0
    if os.path.exists(state_path):
        state = torch.load(state_path, map_location=dev)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent = state["step"], state["elapsed"]
        say(f"resumed at step {step} after {spent:.0f}s")
    n_params = sum(p.numel() for p in model.parameters())
    say(f"channels {channels}, {args.layers} resnet(s) per level, {args.latent} latent channels: {n_params / 1e6:.2f} M parameters")

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": spent}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    gen = torch.Generator(device=dev).manual_seed(args.seed + step)
    budget = args.minutes * 60
    warmup = min(30.0, 0.05 * budget)
    start, last_save = time.time() - spent, time.time()
    losses = []
    model.train()
    while True:
        spent = time.time() - start
        if spent >= budget:
            break
        lr = args.lr * min(1.0, (spent + 1e-3) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * spent / budget)))
        for g in opt.param_groups:
            g["lr"] = lr
        pick = train_idx[torch.randint(len(train_idx), (args.batch,), generator=gen, device=dev)]
        x = images[pick]
        if args.crop and args.crop < size:
            # The network is convolutional (one attention at the bottom): random crops train
            # the same weights at a fraction of the cost per image.
            oy, ox = (int(v) for v in torch.randint(size - args.crop + 1, (2,), generator=gen, device=dev))
            x = x[:, :, oy : oy + args.crop, ox : ox + args.crop]
        x = x.float() / 127.5 - 1
        flip = torch.rand(args.batch, generator=gen, device=dev) < 0.5
        x = torch.where(flip.reshape(-1, 1, 1, 1), x.flip(3), x)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            posterior = model.encode(x).latent_dist
            z = posterior.sample(generator=gen)
            rec = model.decode(z).sample.float()
        loss = (rec - x).abs().mean() + args.mse * ((rec - x) ** 2).mean() + args.kl * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.detach())
        if step % 100 == 0:
            say(f"step {step} loss {torch.stack(losses).mean().item():.4f} lr {lr:.2e} {spent:.0f}s")
            losses = []
        if time.time() - last_save >= args.save_every:
            save()
            last_save = time.time()
    save()
    say(f"trained {step} steps x {args.batch} in {spent:.0f}s")

    model.eval()
    with torch.no_grad():
        means, recs = [], []
        for idx in (train_idx[:2048], held_idx):
            out = []
            for i in range(0, len(idx), 64):
                x = images[idx[i : i + 64]].float() / 127.5 - 1
                mean = model.encode(x).latent_dist.mean
                out.append((mean, model.decode(mean).sample.clamp(-1, 1), x))
            means.append(torch.cat([o[0] for o in out]))
            recs.append((torch.cat([o[1] for o in out]), torch.cat([o[2] for o in out])))
        scaling = 1.0 / means[0].std().item()
        # Least squares from scaled latents to the RGB of each latent cell (area average).
        z = (means[0] * scaling).permute(0, 2, 3, 1).reshape(-1, args.latent)
        cell = size // means[0].shape[-1]
        rgb = F.avg_pool2d(recs[0][1], cell).permute(0, 2, 3, 1).reshape(-1, 3)
        design = torch.cat([z, torch.ones(len(z), 1, device=dev)], 1)
        solution = torch.linalg.lstsq(design.cpu().double(), rgb.cpu().double()).solution.float()
        preview_err = ((design.cpu() @ solution - rgb.cpu()) ** 2).mean().sqrt().item()
        results = {
            "steps": step,
            "batch": args.batch,
            "params": n_params,
            "latent_shape": list(means[0].shape[1:]),
            "scaling_factor": scaling,
            "psnr_train": psnr(*recs[0]),
            "psnr_held_out": psnr(*recs[1]),
            "preview_rms": preview_err,
        }
        grid = torch.cat([recs[1][1][:16], recs[1][0][:16]], 3)  # source | reconstruction
        np.save(os.path.join(args.out, "reconstructions.npy"), ((grid + 1) * 127.5).round().clamp(0, 255).byte().cpu().numpy())

    weights = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(args.out, "autoencoder.safetensors"))
    config = dict(model.config)
    config["scaling_factor"] = scaling
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if not k.startswith("_")}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(args.out, "preview_rgb.json"), "w") as f:
        json.dump({"matrix": solution[: args.latent].tolist(), "bias": solution[args.latent].tolist()}, f, indent=1)
    say("eval " + json.dumps(results))
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
