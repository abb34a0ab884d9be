"""PyTorch mirrors of the two networks of the built-in default prior, for training on a GPU.

The GPU machines this project is lent have PyTorch but no Rust, so the built-in prior is trained
there in PyTorch and shipped as safetensors that the engine loads with the same key names. These
modules therefore compute exactly what the engine's `models/lumos.rs` (LumosI2I, including the
`adaln_condition`, `prediction` and `final_conv` options) and `models/efficientnet.rs` compute;
`tools/gpu/check_parity.py` writes reference tensors that an engine test compares against.

Nothing here is used at run time: the app and the CLI only ever run the Rust engine.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

FREQUENCY_EMBEDDING_SIZE = 256
POSE_FEATURES = 4  # [Δelevation (rad), sin Δazimuth, cos Δazimuth, Δradius]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------
# LumosI2I
# --------------------------------------------------------------------------------------------


def timestep_features(t: torch.Tensor) -> torch.Tensor:
    """`[cos(t f_k), sin(t f_k)]`, f_k = exp(-ln(10000) k / 128); (b,) → (b, 256)."""
    half = FREQUENCY_EMBEDDING_SIZE // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(10000.0) * k / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_pos_embed(dim: int, grid: int, base: int, lewei_scale: float = 1.0) -> torch.Tensor:
    """PixArt's 2-D embedding, `(1, grid*grid, dim)`: [sin col, cos col, sin row, cos row]."""
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    idx = torch.arange(grid, dtype=torch.float64) / (grid / base) / lewei_scale
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")

    def enc(pos):
        out = pos.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    emb = torch.cat([enc(cols), enc(rows)], dim=1)
    return emb.float().unsqueeze(0)


class Mlp(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cond):
        b, n, c = x.shape
        l = cond.shape[1]
        q = self.q_linear(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        kv = self.kv_linear(cond).reshape(b, l, 2, self.heads, c // self.heads)
        k = kv[:, :, 0].transpose(1, 2)
        v = kv[:, :, 1].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class AdaLNModulation(nn.Module):
    """`adaLN_modulation = Sequential(SiLU, Linear)`: the Linear is key `.1`."""

    def __init__(self, c):
        super().__init__()
        self.add_module("1", nn.Linear(c, 6 * c))

    def forward(self, x):
        return getattr(self, "1")(F.silu(x))


class Block(nn.Module):
    def __init__(self, c, heads, mlp_ratio):
        super().__init__()
        self.attn = SelfAttention(c, heads)
        self.cross_attn = CrossAttention(c, heads)
        self.mlp = Mlp(c, int(c * mlp_ratio), c)
        self.adaLN_modulation = AdaLNModulation(c)

    def forward(self, x, t_emb, cond):
        c = x.shape[-1]
        mod = self.adaLN_modulation(t_emb).unsqueeze(1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        norm = lambda v: F.layer_norm(v, (c,), eps=1e-6)
        x = x + gate_msa * self.attn(norm(x) * (1 + scale_msa) + shift_msa)
        x = x + self.cross_attn(x, cond)
        x = x + gate_mlp * self.mlp(norm(x) * (1 + scale_mlp) + shift_mlp)
        return x


class FinalLayer(nn.Module):
    def __init__(self, c, patch, out_c):
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.randn(2, c) / c**0.5)
        self.linear = nn.Linear(c, patch * patch * out_c)

    def forward(self, x, t_emb):
        shift, scale = (self.scale_shift_table[None] + t_emb[:, None]).chunk(2, dim=1)
        x = F.layer_norm(x, (x.shape[-1],), eps=1e-6)
        return self.linear(x * (1 + scale) + shift)


class Named(nn.Module):
    """A container that only exists for a key segment (`x_embedder.proj`, `t_embedder.mlp`)."""


class LumosI2I(nn.Module):
    """`LumosI2I` with the engine's options. `cfg` is the engine's `LumosConfig` as a dict."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        c, p = cfg["hidden_size"], cfg["patch_size"]
        cc = cfg["caption_channels"]
        self.out_channels = cfg["in_channels"] * (2 if cfg.get("pred_sigma", True) else 1)
        self.x_embedder = Named()
        in_total = cfg["in_channels"] + cfg.get("input_view_channels", 0)
        self.x_embedder.proj = nn.Conv2d(in_total, c, p, stride=p)
        self.t_embedder = Named()
        self.t_embedder.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_SIZE, c), nn.SiLU(), nn.Linear(c, c)
        )
        self.y_embedder = Named()
        self.y_embedder.y_proj = Mlp(cc, c, c)
        self.y_embedder.register_parameter(
            "y_embedding",
            nn.Parameter(torch.randn(cfg.get("model_max_length", 1), cc) / cc**0.5),
        )
        if cfg.get("adaln_condition", False):
            self.ada_condition = Mlp(cc, c, c)
        if cfg.get("pose_condition", False):
            # Novel views: [Δelevation, sin Δazimuth, cos Δazimuth, Δradius] → added to the
            # global condition token (the engine's `with_pose`).
            self.pose_embedder = Mlp(POSE_FEATURES, c, cc)
        self.blocks = nn.ModuleList(
            [Block(c, cfg["num_heads"], cfg["mlp_ratio"]) for _ in range(cfg["depth"])]
        )
        self.final_layer = FinalLayer(c, p, self.out_channels)
        if cfg.get("final_conv", False):
            self.final_conv = nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)
        grid = cfg["input_size"] // p
        self.register_buffer(
            "pos_embed",
            sincos_pos_embed(c, grid, grid, cfg.get("lewei_scale", 1.0)),
            persistent=False,
        )
        self._init_weights()

    def _init_weights(self):
        # DiT / PixArt initialisation: xavier linears, adaLN-Zero, zero output layer.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.normal_(self.y_embedder.y_proj.fc1.weight, std=0.02)
        nn.init.normal_(self.y_embedder.y_proj.fc2.weight, std=0.02)
        for blk in self.blocks:
            lin = getattr(blk.adaLN_modulation, "1")
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
            nn.init.zeros_(blk.cross_attn.proj.weight)
            nn.init.zeros_(blk.cross_attn.proj.bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if hasattr(self, "final_conv"):
            nn.init.zeros_(self.final_conv.weight)
            nn.init.zeros_(self.final_conv.bias)
        if hasattr(self, "pose_embedder"):
            # The pose starts with no effect: a prior initialised from an image prior begins
            # as that prior.
            nn.init.zeros_(self.pose_embedder.fc2.weight)
            nn.init.zeros_(self.pose_embedder.fc2.bias)

    def forward(self, x, t, y, pose=None):
        """x (b, in + input_view, h, w); t (b,) network time; y (b, 1, l, caption); pose (b, 4)
        for a novel-view prior → (b, out, h, w)."""
        cfg = self.cfg
        b, _, h, w = x.shape
        p = cfg["patch_size"]
        tokens = self.x_embedder.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        t_emb = self.t_embedder.mlp(timestep_features(t).to(x.dtype))
        y = y.to(x.dtype)
        if pose is not None:
            posed = self.pose_embedder(pose.to(x.dtype)).reshape(b, 1, 1, -1)
            y = torch.cat([y[:, :, :1] + posed, y[:, :, 1:]], dim=2)
        cond = self.y_embedder.y_proj(y).reshape(b, -1, tokens.shape[-1])
        if hasattr(self, "ada_condition"):
            # The global (first) token, brought to unit RMS per component.
            scale = math.sqrt(cfg["caption_channels"])
            t_emb = t_emb + self.ada_condition(y[:, 0, 0] * scale)
        for blk in self.blocks:
            tokens = blk(tokens, t_emb, cond)
        out = self.final_layer(tokens, t_emb)
        gh, gw = h // p, w // p
        out = out.reshape(b, gh, gw, p, p, self.out_channels)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(b, self.out_channels, h, w)
        if hasattr(self, "final_conv"):
            out = out + self.final_conv(out)
        return out


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (frozen encoder)
# --------------------------------------------------------------------------------------------

LITE0_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
BN_EPS = 1e-3


def _same_pad(x, kernel, stride):
    h, w = x.shape[-2:]

    def side(n):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        return total // 2, total - total // 2

    top, bottom = side(h)
    left, right = side(w)
    return F.pad(x, (left, right, top, bottom))


class EfficientNetLite0(nn.Module):
    """Pooled 1280-d features; batch norms folded from the checkpoint (inference only).
    Build it from tensors already on the target device: the blocks keep references to their
    parameters."""

    def __init__(self, state: dict):
        super().__init__()
        state = {k: v.float() for k, v in state.items()}

        def fold(conv, bn):
            w = state[f"{conv}.weight"]
            scale = state[f"{bn}.weight"] / torch.sqrt(state[f"{bn}.running_var"] + BN_EPS)
            bias = state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale
            return nn.Parameter(w * scale.reshape(-1, 1, 1, 1), requires_grad=False), nn.Parameter(
                bias, requires_grad=False
            )

        self.stem_w, self.stem_b = fold("_conv_stem", "_bn0")
        self.blocks = []
        params = nn.ParameterList()
        for i, stride in enumerate(LITE0_STRIDES):
            pre = f"_blocks.{i}"
            has_expand = f"{pre}._expand_conv.weight" in state
            expand = fold(f"{pre}._expand_conv", f"{pre}._bn0") if has_expand else None
            dw = fold(f"{pre}._depthwise_conv", f"{pre}._bn1")
            proj = fold(f"{pre}._project_conv", f"{pre}._bn2")
            c_in = expand[0].shape[1] if expand else dw[0].shape[0]
            c_out = proj[0].shape[0]
            self.blocks.append((expand, dw, proj, stride, stride == 1 and c_in == c_out))
            for pair in (expand, dw, proj):
                if pair:
                    params.extend(pair)
        self.block_params = params
        self.head_w, self.head_b = fold("_conv_head", "_bn1")
        self.requires_grad_(False)

    def forward(self, pixels):
        return self.feature_map(pixels).mean(dim=(2, 3))

    def feature_map(self, pixels):
        """(b, 1280, s/32, s/32): the head's output before pooling."""
        x = F.conv2d(_same_pad(pixels, 3, 2), self.stem_w, self.stem_b, stride=2).clamp(0, 6)
        for expand, (dw_w, dw_b), (pw, pb), stride, residual in self.blocks:
            h = F.conv2d(x, expand[0], expand[1]).clamp(0, 6) if expand else x
            k = dw_w.shape[-1]
            h = F.conv2d(_same_pad(h, k, stride), dw_w, dw_b, stride=stride, groups=dw_w.shape[0])
            h = F.conv2d(h.clamp(0, 6), pw, pb)
            x = x + h if residual else h
        return F.conv2d(x, self.head_w, self.head_b).clamp(0, 6)


def normalize_u8(images_u8: torch.Tensor) -> torch.Tensor:
    """(b, 3, s, s) u8 (or float 0..255) → ImageNet-normalised floats, as `preprocess::normalize`."""
    mean = torch.tensor(IMAGENET_MEAN, device=images_u8.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images_u8.device).reshape(1, 3, 1, 1)
    return (images_u8.float() / 255.0 - mean) / std


def embed(encoder: EfficientNetLite0, images_u8: torch.Tensor) -> torch.Tensor:
    """L2-normalised embeddings (b, 1280) of square u8 images already at the encoder's size."""
    feats = encoder(normalize_u8(images_u8))
    return feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def embed_tokens(encoder: EfficientNetLite0, images_u8: torch.Tensor, grid: int) -> torch.Tensor:
    """(b, 1 + grid², 1280): the global embedding, then the feature map average-pooled to
    grid × grid (row-major), each token L2-normalised like the global one."""
    fmap = encoder.feature_map(normalize_u8(images_u8))
    tokens = [fmap.mean(dim=(2, 3))[:, None]]
    if grid:
        tokens.append(F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2))
    out = torch.cat(tokens, 1)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
