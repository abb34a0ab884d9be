//! The Lumos image-to-image prior (`LumosI2I`), a DiT in the PixArt-α family.
//!
//! Reproduces `lumos_diffusion/model/lumos/LumosI2I.py` of the Lumos release ("Learning Visual
//! Generative Priors without Text"). Checkpoint keys have no prefix (`x_embedder.proj.weight`,
//! `blocks.0.attn.qkv.weight`, `y_embedder.y_embedding`, ...). Unlike PixArt's adaLN-single,
//! every block has its own `adaLN_modulation`; the cross-attention branch has no norm, no
//! modulation and no gate; the final layer adds the *raw* timestep embedding to its table.
//!
//! Options of our own, off unless a config sets them: the condition also drives adaLN
//! (`ada_condition.fc1/fc2`) and a residual 3×3 convolution follows unpatchify (`final_conv`) —
//! the built-in default uses both; spatial condition tokens beside the global one; and the
//! paper's novel-view design (the input view's latent as extra input channels, a relative pose
//! through `pose_embedder.fc1/fc2` added to the condition). `tools/gpu/lumos_torch.py` mirrors
//! the image-to-image options for training on a GPU (`tests/torch_mirror.rs` checks they agree).
//!
//! The blocks are shared with the text-to-image model (`lumos_t2i`), whose cross-attention
//! reads packed, masked caption tokens ([`CrossTokens::Packed`]).

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::fast_ops::{Activation, DenseLinear, gated_residual};
use super::layers::{PlainLayerNorm, attention, fused_qkv_attention, merge_heads, split_heads};

/// Hyper-parameters of `LumosI2I` (names as in the original constructor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LumosConfig {
    /// Latent side length the model was built for (pos-embed base grid = input_size / patch).
    pub input_size: usize,
    /// Patch size of the patch embedding.
    pub patch_size: usize,
    /// Latent channels.
    pub in_channels: usize,
    /// Transformer width.
    pub hidden_size: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width as a multiple of `hidden_size`.
    pub mlp_ratio: f64,
    /// Width of a condition token (768 for DINO ViT-B/16).
    pub caption_channels: usize,
    /// Condition tokens per sample in training (1 for I2I).
    #[serde(default = "one")]
    pub model_max_length: usize,
    /// Whether the model also predicts the variance (out channels = 2 × in channels).
    #[serde(default = "yes")]
    pub pred_sigma: bool,
    /// Positional-embedding scale.
    #[serde(default = "one_f64")]
    pub lewei_scale: f64,
    /// What the network predicts: the noise (Lumos, PixArt) or the velocity `α ε − σ x0`
    /// (the small pixel-space default: its error does not blow up at high noise).
    #[serde(default)]
    pub prediction: Prediction,
    /// Also condition every adaLN on the reference: its embedding (first token, brought to unit
    /// RMS by `√caption_channels`) through `ada_condition` (an MLP) is added to the timestep
    /// embedding that drives the blocks' and the final layer's modulation (RCG's way of feeding a
    /// representation to a DiT; DiT's adaLN-Zero ablation). With one condition token,
    /// cross-attention can only add the same vector to every patch; this makes the condition
    /// scale and shift every feature. Off in the published model.
    #[serde(default)]
    pub adaln_condition: bool,
    /// A residual 3×3 convolution (`final_conv`) after unpatchify, which lets neighbouring
    /// patches agree at their borders (against the seams of large pixel patches). Off in the
    /// published model.
    #[serde(default)]
    pub final_conv: bool,
    /// Spatial condition tokens: besides the global embedding, the reference encoder's feature
    /// map average-pooled to `grid × grid`, each an L2-normalised token
    /// (`ImageEncoder::embed_tokens`), so `model_max_length` is `1 + grid²`. With several
    /// tokens the cross-attention depends on the patch it serves, so the reference's layout can
    /// reach each patch (the Lumos paper: local tokens make image-to-image training converge
    /// much faster). 0 (the published model): the global embedding alone.
    #[serde(default)]
    pub spatial_condition_grid: usize,
    /// Novel-view synthesis (the Lumos paper's NVS design): channels of the input view's
    /// latent, concatenated after the noisy latent's at the patch embedding — `x` then has
    /// `in_channels + input_view_channels` channels and the output stays `in_channels`. 0: none.
    #[serde(default)]
    pub input_view_channels: usize,
    /// Novel-view synthesis: the relative camera pose `[Δelevation, sin Δazimuth, cos Δazimuth,
    /// Δradius]` through `pose_embedder` (an MLP 4 → hidden → caption_channels, keys
    /// `pose_embedder.fc1/fc2`) is added to the global condition token, so it reaches the
    /// cross-attention and, with `adaln_condition`, every adaLN ([`LumosI2I::with_pose`]).
    #[serde(default)]
    pub pose_condition: bool,
}

/// Width of a relative camera pose `[Δelevation, sin Δazimuth, cos Δazimuth, Δradius]`.
pub const POSE_FEATURES: usize = 4;

/// The network's training target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// ε (the published model).
    #[default]
    Epsilon,
    /// v = α ε − σ x0.
    V,
    /// The clean image x0 itself (JiT: what rescues large pixel patches).
    Sample,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn one_f64() -> f64 {
    1.0
}

impl LumosConfig {
    /// `LumosI2I_XL_2`: the published model (depth 28, width 1152, 16 heads, patch 2, 256 px).
    pub fn xl_2() -> Self {
        Self {
            input_size: 32,
            patch_size: 2,
            in_channels: 4,
            hidden_size: 1152,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            caption_channels: 768,
            model_max_length: 1,
            pred_sigma: true,
            lewei_scale: 1.0,
            prediction: Prediction::Epsilon,
            adaln_condition: false,
            final_conv: false,
            spatial_condition_grid: 0,
            input_view_channels: 0,
            pose_condition: false,
        }
    }

    /// Output channels (eps, plus the variance when `pred_sigma`).
    pub fn out_channels(&self) -> usize {
        if self.pred_sigma {
            2 * self.in_channels
        } else {
            self.in_channels
        }
    }

    fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Number of parameters (for reports and FLOP estimates).
    pub fn parameter_count(&self) -> usize {
        let c = self.hidden_size;
        let m = self.mlp_hidden();
        let p = self.patch_size;
        let block = (3 * c * c + 3 * c)
            + (c * c + c)
            + (c * c + c)
            + (2 * c * c + 2 * c)
            + (c * c + c)
            + (c * m + m + m * c + c)
            + (6 * c * c + 6 * c);
        let embed = (self.in_channels + self.input_view_channels) * c * p * p
            + c
            + (256 * c + c + c * c + c)
            + (self.caption_channels * c + c + c * c + c)
            + self.caption_channels;
        let final_layer = 2 * c + c * p * p * self.out_channels() + p * p * self.out_channels();
        let ada_condition = if self.adaln_condition {
            self.caption_channels * c + c + c * c + c
        } else {
            0
        };
        let final_conv = if self.final_conv {
            let o = self.out_channels();
            o * o * 9 + o
        } else {
            0
        };
        let pose = if self.pose_condition {
            POSE_FEATURES * c + c + c * self.caption_channels + self.caption_channels
        } else {
            0
        };
        embed + self.depth * block + final_layer + ada_condition + final_conv + pose
    }
}

/// Number of sinusoidal timestep features.
pub(crate) const FREQUENCY_EMBEDDING_SIZE: usize = 256;

/// Sinusoidal timestep features `[cos(t f_k), sin(t f_k)]`, computed in f32 in the original
/// operation order (`exp(-ln(10000) * k / half)`), on the CPU. `(b,)` → `(b, 256)`.
pub fn timestep_features(timesteps: &[f32], device: &Device) -> Result<Tensor> {
    let half = FREQUENCY_EMBEDDING_SIZE / 2;
    let neg_log_period = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|k| ((neg_log_period * k as f32) / half as f32).exp())
        .collect();
    let mut features = Vec::with_capacity(timesteps.len() * FREQUENCY_EMBEDDING_SIZE);
    for &t in timesteps {
        features.extend(freqs.iter().map(|&f| (t * f).cos()));
        features.extend(freqs.iter().map(|&f| (t * f).sin()));
    }
    Tensor::from_vec(
        features,
        (timesteps.len(), FREQUENCY_EMBEDDING_SIZE),
        device,
    )
}

/// PixArt's 2-D sin-cos positional embedding for an `h × w` token grid, `(1, h*w, dim)`.
/// The first half of the features encodes the column, the second half the row; computed in
/// f64 and cast to f32 like the original (numpy) code.
pub fn sincos_pos_embed(
    dim: usize,
    grid_h: usize,
    grid_w: usize,
    base_size: usize,
    lewei_scale: f64,
    device: &Device,
) -> Result<Tensor> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64))
        .collect();
    let encode = |pos: f64, out: &mut Vec<f32>| {
        out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
        out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
    };
    let mut data = Vec::with_capacity(grid_h * grid_w * dim);
    for i in 0..grid_h {
        for j in 0..grid_w {
            let col = j as f64 / (grid_w as f64 / base_size as f64) / lewei_scale;
            let row = i as f64 / (grid_h as f64 / base_size as f64) / lewei_scale;
            encode(col, &mut data);
            encode(row, &mut data);
        }
    }
    Tensor::from_vec(data, (1, grid_h * grid_w, dim), device)
}

/// Linear → GELU(tanh) → Linear (timm's `Mlp` as PixArt uses it).
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    fc1: DenseLinear,
    fc2: DenseLinear,
}

impl Mlp {
    pub(crate) fn load(
        in_dim: usize,
        hidden: usize,
        out_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            fc1: DenseLinear::load(in_dim, hidden, vb.pp("fc1"))?,
            fc2: DenseLinear::load(hidden, out_dim, vb.pp("fc2"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = self.fc1.forward_activated(xs, Activation::GeluTanh)?;
        self.fc2.forward(&hidden)
    }
}

impl Mlp {
    /// [`Module::forward`] with [`per_row`] products (for per-sample inputs).
    pub(crate) fn forward_per_row(&self, xs: &Tensor) -> Result<Tensor> {
        per_row(
            &self.fc2,
            &super::fast_ops::gelu_tanh(&per_row(&self.fc1, xs)?)?,
        )
    }
}

/// `linear(xs)` one row at a time, for the small per-sample products (timestep, condition,
/// adaLN). GEMM kernels choose their summation order by shape, and with a handful of rows the
/// shape is the batch size: computed row by row, a sample's result is the same bits in any
/// batch, which lets the pipeline batch images on the CPU without changing any seed's image.
/// Training (weights that track gradients) keeps the batched product. On the CPU a row that
/// repeats an earlier one (every row's timestep under classifier-free guidance, the null
/// condition of each unconditional row) is computed once and copied.
pub(crate) fn per_row(linear: &impl RowLinear, xs: &Tensor) -> Result<Tensor> {
    let dims = xs.dims().to_vec();
    let Some((&width, outer)) = dims.split_last() else {
        return linear.forward(xs);
    };
    let flat = xs.reshape(((), width))?;
    let rows = flat.dim(0)?;
    if rows <= 1 || linear.tracks_gradients() {
        return linear.forward(xs);
    }
    let (distinct, source_of_row) = distinct_rows(&flat)?;
    let outs = distinct
        .iter()
        .map(|&r| linear.forward(&flat.narrow(0, r, 1)?))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Tensor::cat(&outs, 0)?;
    if distinct.len() < rows {
        let index = Tensor::new(source_of_row.as_slice(), out.device())?;
        out = out.index_select(&index, 0)?;
    }
    let mut out_dims = outer.to_vec();
    out_dims.push(out.dim(1)?);
    out.reshape(out_dims)
}

/// A linear layer that [`per_row`] runs one row at a time.
pub(crate) trait RowLinear: Module {
    /// Whether the weight tracks gradients (training keeps the batched product).
    fn tracks_gradients(&self) -> bool;
}

impl RowLinear for Linear {
    fn tracks_gradients(&self) -> bool {
        self.weight().track_op()
    }
}

impl RowLinear for DenseLinear {
    fn tracks_gradients(&self) -> bool {
        DenseLinear::tracks_gradients(self)
    }
}

/// The first row of each distinct bit pattern of `flat` `(rows, width)`, and for every row the
/// position of its pattern among them. Other devices and dtypes (where reading the rows back
/// would cost a transfer) count every row as distinct.
fn distinct_rows(flat: &Tensor) -> Result<(Vec<usize>, Vec<u32>)> {
    let rows = flat.dim(0)?;
    if !flat.device().is_cpu() || flat.dtype() != DType::F32 {
        return Ok(((0..rows).collect(), (0..rows as u32).collect()));
    }
    let mut distinct = Vec::new();
    let mut position = std::collections::HashMap::new();
    let mut source_of_row = Vec::with_capacity(rows);
    for (r, row) in flat.to_vec2::<f32>()?.iter().enumerate() {
        let bits: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
        let next = distinct.len() as u32;
        let at = *position.entry(bits).or_insert(next);
        if at == next {
            distinct.push(r);
        }
        source_of_row.push(at);
    }
    Ok((distinct, source_of_row))
}

/// Multi-head self-attention with a fused `qkv` projection.
#[derive(Debug, Clone)]
struct SelfAttention {
    qkv: DenseLinear,
    proj: DenseLinear,
    num_heads: usize,
}

impl SelfAttention {
    fn load(dim: usize, num_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            qkv: DenseLinear::load(dim, 3 * dim, vb.pp("qkv"))?,
            proj: DenseLinear::load(dim, dim, vb.pp("proj"))?,
            num_heads,
        })
    }
}

impl Module for SelfAttention {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let merged = fused_qkv_attention(&self.qkv.forward(xs)?, self.num_heads)?;
        self.proj.forward(&merged)
    }
}

/// Per-sample cross-attention from image tokens to condition tokens.
#[derive(Debug, Clone)]
struct CrossAttention {
    q_linear: Linear,
    kv_linear: Linear,
    proj: Linear,
    num_heads: usize,
}

impl CrossAttention {
    fn load(dim: usize, num_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            q_linear: candle_nn::linear(dim, dim, vb.pp("q_linear"))?,
            kv_linear: candle_nn::linear(dim, 2 * dim, vb.pp("kv_linear"))?,
            proj: candle_nn::linear(dim, dim, vb.pp("proj"))?,
            num_heads,
        })
    }

    /// `xs`: `(b, n, c)` image tokens; `cond`: `(b, l, c)` embedded condition tokens.
    /// Returns `(b, n, c)`, or `(b, 1, c)` to be broadcast when `l == 1`.
    fn forward(&self, xs: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (_, l, c) = cond.dims3()?;
        if l == 1 {
            // The softmax over a single key is exactly 1: every query receives that key's
            // value, so the output is `proj(v(y))` per sample, the same for every token. This
            // skips the query and key projections entirely (bit-compatible with the original).
            let value_weight = self.kv_linear.weight().narrow(0, c, c)?;
            let value_bias = self
                .kv_linear
                .bias()
                .map(|b| b.narrow(0, c, c))
                .transpose()?;
            let v = per_row(&Linear::new(value_weight, value_bias), cond)?;
            return per_row(&self.proj, &v);
        }
        let q = split_heads(&self.q_linear.forward(xs)?, self.num_heads)?;
        let kv = self.kv_linear.forward(cond)?;
        let k = split_heads(&kv.narrow(D::Minus1, 0, c)?, self.num_heads)?;
        let v = split_heads(&kv.narrow(D::Minus1, c, c)?, self.num_heads)?;
        let head_dim = c / self.num_heads;
        let out = attention(&q, &k, &v, 1.0 / (head_dim as f64).sqrt())?;
        self.proj.forward(&merge_heads(&out)?)
    }

    /// Block-diagonal cross-attention over packed tokens (the original's xformers
    /// `BlockDiagonalMask`): `xs` `(b, n, c)`; `tokens` `(t, c)`, the kept tokens of every sample
    /// in sample order, sample `i` owning `lens[i]` of them. The image tokens of sample `i`
    /// attend to its own tokens only, so padded caption tokens have no influence at all.
    fn forward_packed(&self, xs: &Tensor, tokens: &Tensor, lens: &[usize]) -> Result<Tensor> {
        let (b, _, c) = xs.dims3()?;
        if lens.len() != b || lens.iter().sum::<usize>() != tokens.dim(0)? {
            candle_core::bail!(
                "{} packed caption tokens with lengths {lens:?} for a batch of {b}",
                tokens.dim(0)?
            )
        }
        let q = self.q_linear.forward(xs)?;
        let kv = self.kv_linear.forward(tokens)?; // (t, 2c): K then V, heads contiguous
        let scale = 1.0 / ((c / self.num_heads) as f64).sqrt();
        let mut start = 0;
        let mut outs = Vec::with_capacity(b);
        for (i, &len) in lens.iter().enumerate() {
            let kv_i = kv.narrow(0, start, len)?.unsqueeze(0)?; // (1, len, 2c)
            start += len;
            let q_i = split_heads(&q.narrow(0, i, 1)?, self.num_heads)?;
            let k_i = split_heads(&kv_i.narrow(D::Minus1, 0, c)?, self.num_heads)?;
            let v_i = split_heads(&kv_i.narrow(D::Minus1, c, c)?, self.num_heads)?;
            outs.push(merge_heads(&attention(&q_i, &k_i, &v_i, scale)?)?);
        }
        self.proj.forward(&Tensor::cat(&outs, 0)?)
    }

    fn forward_tokens(&self, xs: &Tensor, cond: &CrossTokens<'_>) -> Result<Tensor> {
        match cond {
            CrossTokens::PerSample(tokens) => self.forward(xs, tokens),
            CrossTokens::Packed { tokens, lens } => self.forward_packed(xs, tokens, lens),
        }
    }
}

/// The embedded condition tokens a block's cross-attention reads.
pub(crate) enum CrossTokens<'a> {
    /// `(b, l, c)`: every image token of sample `i` attends to all `l` tokens of sample `i`.
    PerSample(&'a Tensor),
    /// `(t, c)`: the kept tokens of all samples, packed in sample order; sample `i` owns
    /// `lens[i]` of them (text-to-image: the caption tokens its mask keeps).
    Packed {
        /// The packed tokens.
        tokens: &'a Tensor,
        /// Tokens per sample.
        lens: &'a [usize],
    },
}

/// Intermediate tensors of one block, for parity checks.
#[derive(Debug, Clone)]
pub struct BlockTrace {
    /// `adaLN_modulation(t_emb)`, `(b, 6c)` (in a block's own result `(1, 6c)` when every
    /// sample has the same time).
    pub ada_ln: Tensor,
    /// Self-attention output before the gate.
    pub attn_out: Tensor,
    /// Cross-attention output (broadcast to `(b, n, c)`).
    pub cross_attn_out: Tensor,
    /// MLP output before the gate.
    pub mlp_out: Tensor,
    /// Block output.
    pub out: Tensor,
}

/// One Lumos block: adaLN self-attention, plain cross-attention, adaLN MLP.
#[derive(Debug, Clone)]
pub(crate) struct LumosBlock {
    attn: SelfAttention,
    cross_attn: CrossAttention,
    mlp: Mlp,
    ada_ln_modulation: Linear,
    norm: PlainLayerNorm,
}

impl LumosBlock {
    pub(crate) fn load(cfg: &LumosConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.hidden_size;
        Ok(Self {
            attn: SelfAttention::load(c, cfg.num_heads, vb.pp("attn"))?,
            cross_attn: CrossAttention::load(c, cfg.num_heads, vb.pp("cross_attn"))?,
            mlp: Mlp::load(c, cfg.mlp_hidden(), c, vb.pp("mlp"))?,
            ada_ln_modulation: candle_nn::linear(c, 6 * c, vb.pp("adaLN_modulation").pp("1"))?,
            norm: PlainLayerNorm::new(c, 1e-6, vb.dtype(), vb.device())?,
        })
    }

    /// `xs`: `(b, n, c)`, `t_emb`: `(b, c)` or `(1, c)` for all, `cond`: the embedded
    /// condition tokens.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        t_emb: &Tensor,
        cond: &CrossTokens<'_>,
    ) -> Result<BlockTrace> {
        let ada_ln = per_row(&self.ada_ln_modulation, &t_emb.silu()?)?;
        // (b, 6c) → six (b, 1, c) chunks
        let chunks = ada_ln.unsqueeze(1)?.chunk(6, D::Minus1)?;
        let [
            shift_msa,
            scale_msa,
            gate_msa,
            shift_mlp,
            scale_mlp,
            gate_mlp,
        ] = &chunks[..]
        else {
            candle_core::bail!("adaLN_modulation must give 6 chunks")
        };
        let attn_in = self.norm.forward_modulated(xs, shift_msa, scale_msa)?;
        let attn_out = self.attn.forward(&attn_in)?;
        let xs = gated_residual(xs, &attn_out, gate_msa)?;
        let cross_attn_out = self.cross_attn.forward_tokens(&xs, cond)?;
        let xs = xs.broadcast_add(&cross_attn_out)?;
        let mlp_in = self.norm.forward_modulated(&xs, shift_mlp, scale_mlp)?;
        let mlp_out = self.mlp.forward(&mlp_in)?;
        let out = gated_residual(&xs, &mlp_out, gate_mlp)?;
        Ok(BlockTrace {
            ada_ln,
            attn_out,
            cross_attn_out,
            mlp_out,
            out,
        })
    }
}

/// Everything `LumosI2I::forward_traced` computes on the way, for parity checks.
#[derive(Debug, Clone)]
pub struct LumosTrace {
    /// Patch embedding before the positional embedding, `(b, n, c)`.
    pub x_embed: Tensor,
    /// The positional embedding used, `(1, n, c)`.
    pub pos_embed: Tensor,
    /// Sinusoidal timestep features, `(b, 256)`.
    pub t_freq: Tensor,
    /// Timestep embedding (plus the condition's with `adaln_condition`), `(b, c)`.
    pub t_emb: Tensor,
    /// Embedded condition, `(b, 1, l, c)`.
    pub y_emb: Tensor,
    /// Per-block intermediates.
    pub blocks: Vec<BlockTrace>,
    /// Final layer output before unpatchify, `(b, n, p*p*out)`.
    pub final_out: Tensor,
    /// The model output, `(b, out, h, w)`.
    pub out: Tensor,
}

/// The Lumos image-to-image DiT.
#[derive(Debug, Clone)]
pub struct LumosI2I {
    x_embedder: Conv2d,
    t_mlp_0: Linear,
    t_mlp_2: Linear,
    y_proj: Mlp,
    y_embedding: Tensor,
    ada_condition: Option<Mlp>,
    pose_embedder: Option<Mlp>,
    blocks: Vec<LumosBlock>,
    final_table: Tensor,
    final_linear: Linear,
    final_conv: Option<Conv2d>,
    norm: PlainLayerNorm,
    config: LumosConfig,
}

impl LumosI2I {
    /// Builds the model from weights with the original key names.
    pub fn load(config: &LumosConfig, vb: VarBuilder) -> Result<Self> {
        let grid = config.spatial_condition_grid;
        if grid > 0 && config.model_max_length != 1 + grid * grid {
            candle_core::bail!(
                "{grid}×{grid} spatial condition tokens need model_max_length {}, not {}",
                1 + grid * grid,
                config.model_max_length
            )
        }
        let c = config.hidden_size;
        let p = config.patch_size;
        let conv_cfg = Conv2dConfig {
            stride: p,
            ..Default::default()
        };
        let x_embedder = candle_nn::conv2d(
            config.in_channels + config.input_view_channels,
            c,
            p,
            conv_cfg,
            vb.pp("x_embedder").pp("proj"),
        )?;
        let t_vb = vb.pp("t_embedder").pp("mlp");
        let y_vb = vb.pp("y_embedder");
        let blocks = (0..config.depth)
            .map(|i| LumosBlock::load(config, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let final_vb = vb.pp("final_layer");
        let ada_condition = config
            .adaln_condition
            .then(|| Mlp::load(config.caption_channels, c, c, vb.pp("ada_condition")))
            .transpose()?;
        let pose_embedder = config
            .pose_condition
            .then(|| {
                let cc = config.caption_channels;
                Mlp::load(POSE_FEATURES, c, cc, vb.pp("pose_embedder"))
            })
            .transpose()?;
        let out_c = config.out_channels();
        let final_conv = config
            .final_conv
            .then(|| {
                let cfg = Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                };
                candle_nn::conv2d(out_c, out_c, 3, cfg, vb.pp("final_conv"))
            })
            .transpose()?;
        Ok(Self {
            x_embedder,
            t_mlp_0: candle_nn::linear(FREQUENCY_EMBEDDING_SIZE, c, t_vb.pp("0"))?,
            t_mlp_2: candle_nn::linear(c, c, t_vb.pp("2"))?,
            y_proj: Mlp::load(config.caption_channels, c, c, y_vb.pp("y_proj"))?,
            y_embedding: y_vb.get(
                (config.model_max_length, config.caption_channels),
                "y_embedding",
            )?,
            ada_condition,
            pose_embedder,
            blocks,
            final_table: final_vb.get((2, c), "scale_shift_table")?,
            final_linear: candle_nn::linear(
                c,
                p * p * config.out_channels(),
                final_vb.pp("linear"),
            )?,
            final_conv,
            norm: PlainLayerNorm::new(c, 1e-6, vb.dtype(), vb.device())?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LumosConfig {
        &self.config
    }

    /// The learned null condition for classifier-free guidance, repeated for `batch`:
    /// `(batch, 1, model_max_length, caption_channels)`.
    pub fn null_condition(&self, batch: usize) -> Result<Tensor> {
        let (l, cc) = self.y_embedding.dims2()?;
        self.y_embedding
            .unsqueeze(0)?
            .unsqueeze(0)?
            .broadcast_as((batch, 1, l, cc))?
            .contiguous()
    }

    /// The condition of a novel view: `y` `(b, 1, l, caption_channels)` with the embedded
    /// relative pose `(b, 4)` added to its first (global) token. Needs `pose_condition`.
    pub fn with_pose(&self, y: &Tensor, pose: &Tensor) -> Result<Tensor> {
        let Some(mlp) = &self.pose_embedder else {
            candle_core::bail!("this prior has no pose condition (`pose_condition` is off)")
        };
        let (b, one, l, cc) = y.dims4()?;
        let pose_rows = pose.dims2()?.0;
        if pose_rows != b || one != 1 {
            candle_core::bail!("{pose_rows} poses for a condition of shape {:?}", y.dims())
        }
        let y = y.to_dtype(self.dtype())?;
        let embedded = mlp
            .forward_per_row(&pose.to_dtype(self.dtype())?)?
            .reshape((b, 1, 1, cc))?;
        let global = (y.narrow(2, 0, 1)? + embedded)?;
        if l == 1 {
            Ok(global)
        } else {
            Tensor::cat(&[&global, &y.narrow(2, 1, l - 1)?], 2)
        }
    }

    /// Model dtype.
    pub fn dtype(&self) -> DType {
        self.y_embedding.dtype()
    }

    /// Model device.
    pub fn device(&self) -> &Device {
        self.y_embedding.device()
    }

    /// `model(x, t, y)`: `x` `(b, in + input_view_channels, h, w)`, `timesteps` (b values, fractional allowed),
    /// `y` `(b, 1, l, caption_channels)` → `(b, out, h, w)`.
    pub fn forward(&self, xs: &Tensor, timesteps: &[f32], y: &Tensor) -> Result<Tensor> {
        Ok(self.forward_traced(xs, timesteps, y)?.out)
    }

    /// `forward_with_dpmsolver`: the eps half of the output, `(b, in, h, w)`.
    pub fn forward_eps(&self, xs: &Tensor, timesteps: &[f32], y: &Tensor) -> Result<Tensor> {
        let out = self.forward(xs, timesteps, y)?;
        out.narrow(1, 0, self.config.in_channels)
    }

    /// The patch embedding as one matrix product over flattened patches: the same sum as the
    /// strided convolution, but its backward is a plain matmul (candle's strided-conv backward
    /// runs a transposed convolution for the input's gradient, which training never needs).
    fn patch_embed_as_matmul(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c_in, h, w) = xs.dims4()?;
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        // (b, c, gh, p, gw, p) → (b, gh, gw, c, p, p): the conv weight's (c_in, kh, kw) order.
        let patches = xs
            .reshape((b, c_in, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, gh * gw, c_in * p * p))?;
        let weight = self.x_embedder.weight().flatten_from(1)?; // (c, c_in·p·p)
        let out = patches.broadcast_matmul(&weight.t()?)?;
        match self.x_embedder.bias() {
            Some(bias) => out.broadcast_add(bias),
            None => Ok(out),
        }
    }

    /// The forward pass, keeping every intermediate the parity fixtures record.
    pub fn forward_traced(&self, xs: &Tensor, timesteps: &[f32], y: &Tensor) -> Result<LumosTrace> {
        let cfg = &self.config;
        let dtype = self.dtype();
        let xs = xs.to_dtype(dtype)?;
        let (b, _, h, w) = xs.dims4()?;
        let p = cfg.patch_size;
        if h % p != 0 || w % p != 0 {
            candle_core::bail!("latent size {h}x{w} is not a multiple of the patch size {p}")
        }
        if timesteps.len() != b {
            candle_core::bail!("{} timesteps for a batch of {b}", timesteps.len())
        }
        let (grid_h, grid_w) = (h / p, w / p);
        // (b, c, gh, gw) → (b, gh*gw, c), row-major tokens
        let x_embed = if self.x_embedder.weight().track_op() {
            self.patch_embed_as_matmul(&xs)?
        } else {
            self.x_embedder
                .forward(&xs)?
                .flatten_from(2)?
                .transpose(1, 2)?
        };
        let pos_embed = sincos_pos_embed(
            cfg.hidden_size,
            grid_h,
            grid_w,
            cfg.input_size / p,
            cfg.lewei_scale,
            xs.device(),
        )?
        .to_dtype(dtype)?;
        let mut tokens = x_embed.broadcast_add(&pos_embed)?;

        // A sampler step gives every sample the same time: embed it once and let the adaLN
        // products run on that one row (broadcast over the batch) instead of one per sample.
        let uniform_t = timesteps.windows(2).all(|w| w[0] == w[1]);
        let t_rows = if uniform_t {
            &timesteps[..1]
        } else {
            timesteps
        };
        let t_freq = timestep_features(t_rows, xs.device())?.to_dtype(dtype)?;
        let t_emb = per_row(&self.t_mlp_2, &per_row(&self.t_mlp_0, &t_freq)?.silu()?)?;

        let y = y.to_dtype(dtype)?;
        let y_emb = self.y_proj.forward_per_row(&y)?; // (b, 1, l, c)
        let (_, _, l, c) = y_emb.dims4()?;
        let cond = y_emb.reshape((b, l, c))?;
        // With `adaln_condition` every sample gets its own modulation: (b, c).
        let t_emb = match &self.ada_condition {
            Some(mlp) => {
                let global = y.narrow(2, 0, 1)?.reshape((b, cfg.caption_channels))?;
                let unit_rms = (global * (cfg.caption_channels as f64).sqrt())?;
                t_emb.broadcast_add(&mlp.forward_per_row(&unit_rms)?)?
            }
            None => t_emb,
        };

        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let trace = block.forward(&tokens, &t_emb, &CrossTokens::PerSample(&cond))?;
            tokens = trace.out.clone();
            blocks.push(trace);
        }

        // shift, scale = (table[None] + t_emb[:, None]).chunk(2, dim=1)
        let table = self
            .final_table
            .unsqueeze(0)?
            .broadcast_add(&t_emb.unsqueeze(1)?)?;
        let shift = table.narrow(1, 0, 1)?;
        let scale = table.narrow(1, 1, 1)?;
        let modulated = self.norm.forward_modulated(&tokens, &shift, &scale)?;
        let final_out = self.final_linear.forward(&modulated)?;

        // (b, gh*gw, p*p*c) → (b, gh, gw, p, p, c) → (b, c, gh, p, gw, p) → (b, c, h, w)
        let out_c = cfg.out_channels();
        let out = final_out
            .reshape((b, grid_h, grid_w, p, p, out_c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .contiguous()?
            .reshape((b, out_c, h, w))?;
        let out = match &self.final_conv {
            Some(conv) => (&out + conv.forward(&out)?)?,
            None => out,
        };
        let per_sample = |t: Tensor| -> Result<Tensor> {
            let mut full = t.dims().to_vec();
            full[0] = b;
            t.broadcast_as(full)
        };
        for trace in &mut blocks {
            trace.ada_ln = per_sample(trace.ada_ln.clone())?;
        }
        Ok(LumosTrace {
            x_embed,
            pos_embed,
            t_freq: per_sample(t_freq)?,
            t_emb: per_sample(t_emb)?,
            y_emb,
            blocks,
            final_out,
            out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_row_computes_a_repeated_row_once_and_gives_every_row_its_own_bits() -> Result<()> {
        let device = Device::Cpu;
        let weight = Tensor::randn(0f32, 1.0, (5, 3), &device)?;
        let bias = Tensor::randn(0f32, 1.0, 5, &device)?;
        let linear = Linear::new(weight, Some(bias));
        let a = [0.5f32, -1.0, 2.0];
        let b = [0.25f32, 3.0, -0.75];
        let rows: Vec<f32> = [a, b, a, a, b].concat();
        let xs = Tensor::from_vec(rows, (5, 3), &device)?;

        let (distinct, source_of_row) = distinct_rows(&xs)?;
        assert_eq!(distinct, [0, 1]);
        assert_eq!(source_of_row, [0, 1, 0, 0, 1]);

        let out = per_row(&linear, &xs)?.to_vec2::<f32>()?;
        for (r, row) in out.iter().enumerate() {
            let alone = linear.forward(&xs.narrow(0, r, 1)?)?.to_vec2::<f32>()?;
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(row), bits(&alone[0]), "row {r}");
        }
        Ok(())
    }
}
