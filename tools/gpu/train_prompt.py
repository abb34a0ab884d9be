"""Trains the built-in prompt model: a small text encoder, learnt from the corpus's image names,
in front of the built-in image prior — and runs the paper's I2I → T2I experiment in miniature.

Why this shape: Lumos's claim is that its text-free image prior is a better start for
text-to-image than training from scratch. The built-in prior is conditioned on one 1280-d image
embedding (through cross-attention and adaLN), so a text encoder that outputs a vector in the
same space lets the prior take text "in place of the image embedding" with no new network
parts. Every run trains with the same two losses: the prior's denoising loss (x0 target, the
built-in recipe) through the text vector, and 1 − cos(text vector, the image's embedding), which
keeps the vector in the space the image prior already understands.

The text encoder (`PromptEncoder`, mirrored by the engine's `models::prompt_encoder`): words
(lowercase ASCII letters and digits; the vocabulary is the words seen at least twice in the
run's training names) → a learnt embedding each → their mean → LayerNorm → MLP (GELU) → 1280,
L2-normalised. A bag of words: the names are short and mostly order-free ("cat face",
"person golfing medium dark"); word order is not modelled.

Runs (`--init` and `--fraction` pick them; the same steps and batch each):
  (a) the built-in image prior, `--tune cond`: only the condition pathway of the prior
      (`y_embedder`, `ada_condition`) and the text encoder learn; 10 % of the pairs;
  (b) from scratch, everything learns, 100 % of the pairs;  (c) from scratch on 10 %.
Prompt text of an image: the words of its name, then the words of its source ("noto",
"fluent emoji 3d", "openclipart", …) as a style; Fluent 3D files are named by code points,
turned into Unicode character names (skin-tone modifiers as the Iconify names spell them).

Resumable: `checkpoint.pt` every 250 steps; rerunning the same command continues.

Usage: python3 train_prompt.py --data corpus.npz --manifest corpus/manifest.jsonl
           --encoder efficientnet_lite0.safetensors --out runs/a --steps 2000
           [--init assets/default [--autoencoder DIR]] [--fraction 0.1] [--tune cond|all] [--eval-only]
       python3 train_prompt.py --data … --manifest … --encoder … --out DIR --pairs-out PAIRS.tsv
"""

import argparse
import collections
import hashlib
import json
import math
import os
import re
import time
import unicodedata

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from lumos_torch import EfficientNetLite0, LumosI2I, embed
from train_prior import (
    ddim_sample,
    decode_latents,
    encode_latents,
    is_held_out,
    load_autoencoder,
    load_corpus,
    retrieval,
    run_logger,
    schedule,
    upsample_u8,
)

T = 1000
SKIN_TONES = {
    "EMOJI MODIFIER FITZPATRICK TYPE-1-2": "light",
    "EMOJI MODIFIER FITZPATRICK TYPE-3": "medium light",
    "EMOJI MODIFIER FITZPATRICK TYPE-4": "medium",
    "EMOJI MODIFIER FITZPATRICK TYPE-5": "medium dark",
    "EMOJI MODIFIER FITZPATRICK TYPE-6": "dark",
}


def words(text):
    """The tokenizer the engine repeats: lowercase, runs of ASCII letters and digits."""
    return re.findall(r"[a-z0-9]+", text.lower())


def prompt_of(row):
    """The prompt text of a manifest row, or None when its name says nothing."""
    source, original = row["source"], row["original"]
    if source == "fluent-emoji-3d":
        points = os.path.splitext(os.path.basename(original))[0].split("-")
        try:
            names = [unicodedata.name(chr(int(p, 16))) for p in points if p not in ("200d", "fe0f")]
        except (ValueError, TypeError, OverflowError):
            return None
        name = " ".join(SKIN_TONES.get(n, n) for n in names)
    elif ":" in original:
        name = original.split(":", 1)[1]
    else:
        name = os.path.splitext(original)[0]
    text = " ".join(words(name) + words(source))
    return text or None


class PromptEncoder(nn.Module):
    """Bag of words → 1280-d unit vector (the engine's `PromptEncoder`, key for key)."""

    def __init__(self, vocab_size, width=256, hidden=1024, out=1280):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, out)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, ids, mask):
        """ids, mask (b, l): word ids and 1 where a word is."""
        e = self.token_embedding(ids) * mask[..., None]
        pooled = e.sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        h = self.fc2(F.gelu(self.fc1(self.norm(pooled))))
        return h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def encode_texts(texts, vocab):
    index = {w: i for i, w in enumerate(vocab)}
    rows = [[index[w] for w in words(t) if w in index] for t in texts]
    length = max(1, max(len(r) for r in rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def frechet(a, b):
    """Fréchet distance between two sets of row vectors (float64; trace of the matrix square
    root from the eigenvalues of √Σa Σb √Σa)."""
    a, b = a.double(), b.double()
    mu = (a.mean(0) - b.mean(0)).square().sum()
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    ea, va = torch.linalg.eigh(ca)
    sqrt_a = (va * ea.clamp_min(0).sqrt()) @ va.T
    ev = torch.linalg.eigvalsh(sqrt_a @ cb @ sqrt_a)
    return (mu + ca.trace() + cb.trace() - 2 * ev.clamp_min(0).sqrt().sum()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--init", help="folder of the image prior (model.json + prior.safetensors)")
    ap.add_argument("--autoencoder", help="train_autoencoder.py's folder, when the --init prior works in its latent space")
    ap.add_argument("--tune", default="all", choices=["all", "cond"])
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the name-image pairs")
    ap.add_argument("--align-weight", type=float, default=1.0)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--encoder-size", type=int, default=128)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--eval-guidance", type=float, default=4.5)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--pairs-out", help="write the held-out FILE<TAB>PROMPT pairs (for `lumos eval-prompts`) here and stop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    say = run_logger(args.out)

    names, images = load_corpus(args.data)
    rows = {os.path.basename(r["file"]): r for r in map(json.loads, open(args.manifest))}
    texts = [prompt_of(rows[n]) if n in rows else None for n in names]
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(dev)
    size = images.shape[-1]
    held = [is_held_out(n) for n in names]
    # The run's pairs: training images with a prompt, a fixed hash-chosen share of them.
    in_share = lambda n: hashlib.sha256(("pairs:" + n).encode()).digest()[1] < 256 * args.fraction
    train_idx = [i for i, n in enumerate(names) if not held[i] and texts[i] and in_share(n)]
    held_idx = [i for i, n in enumerate(names) if held[i] and texts[i]][: args.eval_n]
    if args.pairs_out:
        with open(args.pairs_out, "w") as f:
            for i, n in enumerate(names):
                if held[i] and texts[i]:
                    f.write(f"{n}\t{texts[i]}\n")
        say(f"wrote the held-out pairs to {args.pairs_out}")
        return
    counts = collections.Counter(w for i in train_idx for w in set(words(texts[i])))
    vocab = sorted(w for w, c in counts.items() if c >= 2)
    say(f"{len(train_idx)} name-image pairs ({args.fraction:.0%}), vocabulary {len(vocab)} words, "
        f"{len(held_idx)} held-out names")

    enc_state = {k: v.to(dev) for k, v in load_file(args.encoder).items()}
    encoder = EfficientNetLite0(enc_state).eval()
    used = torch.tensor(train_idx + held_idx, device=dev)
    emb = torch.zeros(len(names), 1280, device=dev)
    with torch.no_grad():
        for i in range(0, len(used), 512):
            chunk = used[i : i + 512]
            emb[chunk] = embed(encoder, upsample_u8(images[chunk], args.encoder_size))

    if args.init:
        manifest = json.load(open(os.path.join(args.init, "model.json")))
        cfg = manifest["prior"]["config"]
        if manifest.get("vae") and not args.autoencoder:
            raise SystemExit(f"{args.init} is a latent prior: name its autoencoder with --autoencoder")
    else:
        cfg = {
            "input_size": size, "patch_size": 8, "in_channels": 3, "hidden_size": 256, "depth": 6,
            "num_heads": 4, "mlp_ratio": 4.0, "caption_channels": 1280, "model_max_length": 1,
            "pred_sigma": False, "lewei_scale": 1.0, "prediction": "sample",
            "adaln_condition": True, "final_conv": True,
        }
    prior = LumosI2I(cfg).to(dev)
    if args.init:
        state = load_file(os.path.join(args.init, "prior.safetensors"))
        prior.load_state_dict({k: v.float() for k, v in state.items()})
    # A latent prior learns and samples the autoencoder's scaled latents; retrieval and the
    # Fréchet distance read the decoded images, as the engine shows them.
    ae, scaling, targets = None, 1.0, None
    if args.autoencoder:
        ae, ae_config = load_autoencoder(args.autoencoder, dev)
        scaling = ae_config["scaling_factor"]
        targets = torch.zeros((len(names), ae_config["latent_channels"], cfg["input_size"], cfg["input_size"]), device=dev)
        with torch.no_grad():
            targets[used] = encode_latents(ae, scaling, images[used])
        say(f"encoded {len(used)} images to latents {tuple(targets.shape[1:])}")
    channels = cfg["in_channels"]
    text_encoder = PromptEncoder(len(vocab)).to(dev)
    tuned = lambda k: args.tune == "all" or k.startswith(("y_embedder.", "ada_condition."))
    params = {f"prior.{k}": p for k, p in prior.named_parameters() if tuned(k)}
    for k, p in prior.named_parameters():
        p.requires_grad_(tuned(k))
    params.update({f"text_encoder.{k}": p for k, p in text_encoder.named_parameters()})
    n_params = sum(p.numel() for p in params.values())
    say(f"init {args.init or 'scratch'}, tuning {args.tune}: {n_params / 1e6:.2f} M parameters learn")
    ema = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    ac = schedule(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed + 1)
    step = 0
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=dev)
        for k, p in params.items():
            p.data.copy_(ck["params"][k])
            ema[k].copy_(ck["ema"][k])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"].cpu() if dev.type == "cpu" else ck["gen"])
        step = ck["step"]
        say(f"resumed at step {step}")
    ids_all, mask_all = encode_texts([t or "" for t in texts], vocab)
    ids_all, mask_all = ids_all.to(dev), mask_all.to(dev)
    train_t = torch.tensor(train_idx, device=dev)

    def save_checkpoint():
        tmp = ckpt_path + ".tmp"
        torch.save({"params": {k: p.detach() for k, p in params.items()}, "ema": ema,
                    "opt": opt.state_dict(), "gen": gen.get_state(), "step": step}, tmp)
        os.replace(tmp, ckpt_path)

    start, losses, aligns = time.time(), [], []
    warmup = max(1, min(100, args.steps // 20))
    while step < args.steps and not args.eval_only:
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        pick = train_t[torch.randint(len(train_t), (args.batch,), generator=gen, device=dev)]
        x0 = images[pick].float() / 127.5 - 1 if ae is None else targets[pick]
        vec = text_encoder(ids_all[pick], mask_all[pick])
        align = (1 - (vec * emb[pick]).sum(-1)).mean()
        y = vec.reshape(args.batch, 1, 1, 1280)
        null = prior.y_embedder.y_embedding.reshape(1, 1, 1, 1280).expand_as(y)
        drop = torch.rand(args.batch, generator=gen, device=dev) < args.cond_drop
        y = torch.where(drop.reshape(-1, 1, 1, 1), null, y)
        t = torch.randint(T, (args.batch,), generator=gen, device=dev)
        a = ac[t].sqrt().reshape(-1, 1, 1, 1)
        s = (1 - ac[t]).sqrt().reshape(-1, 1, 1, 1)
        xt = a * x0 + s * torch.randn(x0.shape, generator=gen, device=dev)
        out = prior(xt, t.float(), y)
        denoise = (((out - x0) ** 2).mean(dim=(1, 2, 3)) / (s.flatten() ** 2).clamp_min(0.05)).mean()
        loss = denoise + args.align_weight * align
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, p in params.items():
                ema[k].lerp_(p.detach(), 1 - decay)
        losses.append(denoise.item())
        aligns.append(align.item())
        if step % 250 == 0 or step == args.steps:
            say(f"step {step} denoise {np.mean(losses):.4f} align {np.mean(aligns):.4f} lr {lr:.2e} "
                f"{time.time() - start:.0f}s")
            losses, aligns = [], []
            save_checkpoint()

    # Export the EMA weights as float16 (the text encoder, and the prior's tensors that were
    # tuned) and evaluate exactly those. The metadata carries the vocabulary and, for the
    # engine's parity test, the first components of a few prompts' vectors.
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(ema[k].half().float())
    export = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in params.items()}
    check_prompts = ["cat face", "red apple noto", "Grinning face, fluent emoji 3d!", "the zzz cat"]
    with torch.no_grad():
        ids, mask = encode_texts(check_prompts, vocab)
        check_vecs = text_encoder(ids.to(dev), mask.to(dev))[:, :64].cpu().tolist()
    check = {p: [round(x, 7) for x in v] for p, v in zip(check_prompts, check_vecs)}
    save_file(export, os.path.join(args.out, "prompt.safetensors"),
              metadata={"vocabulary": json.dumps(vocab), "prior_config": json.dumps(cfg),
                        "tuned": args.tune, "init": "image prior" if args.init else "scratch",
                        "steps": str(step), "check": json.dumps(check)})

    # Held-out names: retrieval of the named image among the held-out images from one image
    # each, and from the text vector alone; Fréchet distance against real images.
    prior.eval()
    held_t = torch.tensor(held_idx, device=dev)
    with torch.no_grad():
        vec = text_encoder(ids_all[held_t], mask_all[held_t])
        cond = vec.reshape(-1, 1, 1, 1280)
        null = prior.y_embedder.y_embedding.reshape(1, 1, 1, 1280).expand_as(cond)
        g = torch.Generator(device=dev).manual_seed(1234)
        samples = ddim_sample(prior, cond, null, ac, 20, args.eval_guidance, g, cfg["prediction"], cfg["input_size"], channels, ae is None)
        if ae is not None:
            samples = decode_latents(ae, scaling, samples)
        u8 = ((samples + 1) * 127.5).round().clamp(0, 255)
        gen_emb = embed(encoder, upsample_u8(u8, args.encoder_size))
        src = emb[held_t]
        results = {"steps": step, "batch": args.batch, "pairs": len(train_idx), "vocabulary": len(vocab),
                   "generated": retrieval(gen_emb, src), "text_vector": retrieval(vec, src)}
        # Real sets for the Fréchet distance: training-split images not in any run's pairs
        # would bias nothing, but every run trains on some; use two fixed disjoint sets of
        # 1,000 images from the whole training split (the same for every run).
        rng = np.random.default_rng(7)
        pool = rng.permutation([i for i in range(len(names)) if not held[i]])[:1000 + len(held_idx)]
        real = torch.tensor(pool[:1000], device=dev)
        other = torch.tensor(pool[1000:], device=dev)
        real_emb = torch.cat([embed(encoder, upsample_u8(images[c], args.encoder_size)) for c in real.split(500)])
        other_emb = embed(encoder, upsample_u8(images[other], args.encoder_size))
        results["frechet"] = frechet(gen_emb, real_emb)
        results["frechet_floor"] = frechet(other_emb, real_emb)
        results["texts"] = [texts[i] for i in held_idx[:16]]
        grid = torch.cat([images[held_t[:16]].float(), u8[:16]], dim=3)
        np.save(os.path.join(args.out, "samples.npy"), grid.byte().cpu().numpy())
    say("eval " + json.dumps(results))
    json.dump(results, open(os.path.join(args.out, "eval.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
