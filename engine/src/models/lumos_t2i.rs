//! The Lumos text-to-image prior (`LumosT2IMS`, the multi-aspect T2I DiT).
//!
//! Reproduces `lumos_diffusion/model/lumos/LumosT2IMS.py` (a subclass of `LumosT2I.py`) of the
//! Lumos release, as `gradio_demos/lumos_T2I.py` runs it. Checkpoint keys have no prefix and are
//! those of [`LumosI2I`](super::LumosI2I) (`x_embedder.proj.*`, `t_embedder.mlp.{0,2}.*`,
//! `y_embedder.y_proj.fc{1,2}.*`, `y_embedder.y_embedding`, `blocks.{i}.*`, `final_layer.*`)
//! plus the micro-condition embedders `csize_embedder.mlp.{0,2}.*` and `ar_embedder.mlp.{0,2}.*`.
//! The blocks are the image-to-image blocks (`models::lumos`), reused as they are.
//!
//! What differs from the image-to-image model, and why each piece is here:
//! - **Micro-conditions.** The bucket's size in pixels and its aspect-ratio key are embedded with
//!   the timestep sinusoid and two small MLPs (width `hidden / 3`), and added to the timestep
//!   embedding: `t_cond = t_emb + [emb(h), emb(w), emb(ar)]` drives every adaLN and the final
//!   layer. The model was trained on aspect-ratio buckets and needs to know which one it draws.
//! - **Masked, packed cross-attention.** The caption is up to `model_max_length` T5 tokens; only
//!   the tokens its mask keeps are attended, per sample (xformers' block-diagonal mask in the
//!   original). Under classifier-free guidance the mask of the prompt is tiled over the doubled
//!   batch, so the learned null caption is *truncated to the prompt's token count* — the null
//!   condition is never attended in full. [`LumosT2IMS::forward`] does the same tiling.
//! - **Position embedding per size.** The sin-cos table is recomputed for every latent size with
//!   `base_size = input_size / patch_size` and `lewei_scale`, so positions always span
//!   `[0, base_size / lewei_scale)` along each axis: a larger or non-square image gets finer,
//!   interpolated positions. The `pos_embed` buffer in the checkpoint is not read.

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::layers::PlainLayerNorm;
use super::lumos::{
    BlockTrace, CrossTokens, FREQUENCY_EMBEDDING_SIZE, LumosBlock, LumosConfig, Mlp, Prediction,
    per_row, sincos_pos_embed, timestep_features,
};

/// Hyper-parameters of `LumosT2IMS` (names as in the original constructor).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LumosT2IConfig {
    /// Latent side length the model was trained at (the position grid's base =
    /// `input_size / patch_size`).
    pub input_size: usize,
    /// Patch size of the patch embedding.
    pub patch_size: usize,
    /// Latent channels.
    pub in_channels: usize,
    /// Transformer width (divisible by 3: the size embedders are `hidden_size / 3` wide).
    pub hidden_size: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width as a multiple of `hidden_size`.
    pub mlp_ratio: f64,
    /// Width of a caption token (the T5 encoder's `d_model`: 4096 for T5-v1.1-XXL).
    pub caption_channels: usize,
    /// Caption tokens per sample (120 for the published model).
    pub model_max_length: usize,
    /// Whether the model also predicts the variance (out channels = 2 × in channels).
    #[serde(default = "yes")]
    pub pred_sigma: bool,
    /// Position-embedding scale (2.0 for the published model).
    pub lewei_scale: f64,
}

fn yes() -> bool {
    true
}

impl LumosT2IConfig {
    /// `LumosT2IMS_XL_2` as the T2I demo builds it: 1024 px (latent 128), depth 28, width 1152,
    /// 16 heads, patch 2, T5-XXL captions of 120 tokens, `lewei_scale` 2.
    pub fn xl_2() -> Self {
        Self {
            input_size: 128,
            patch_size: 2,
            in_channels: 4,
            hidden_size: 1152,
            depth: 28,
            num_heads: 16,
            mlp_ratio: 4.0,
            caption_channels: 4096,
            model_max_length: 120,
            pred_sigma: true,
            lewei_scale: 2.0,
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

    /// The position grid's base size, `input_size / patch_size`.
    pub fn base_size(&self) -> usize {
        self.input_size / self.patch_size
    }

    /// Width of each micro-condition embedding, `hidden_size / 3`.
    pub fn size_embedding_width(&self) -> usize {
        self.hidden_size / 3
    }

    /// The block configuration shared with the image-to-image model.
    fn block_config(&self) -> LumosConfig {
        LumosConfig {
            input_size: self.input_size,
            patch_size: self.patch_size,
            in_channels: self.in_channels,
            hidden_size: self.hidden_size,
            depth: self.depth,
            num_heads: self.num_heads,
            mlp_ratio: self.mlp_ratio,
            caption_channels: self.caption_channels,
            model_max_length: self.model_max_length,
            pred_sigma: self.pred_sigma,
            lewei_scale: self.lewei_scale,
            prediction: Prediction::Epsilon,
            adaln_condition: false,
            final_conv: false,
            spatial_condition_grid: 0,
            input_view_channels: 0,
            pose_condition: false,
        }
    }
}

/// The demo's `data_info`: per row the bucket's `[height, width]` in pixels and its
/// aspect-ratio key. One row applies to the whole batch; otherwise the rows are tiled over the
/// batch (`repeat(b / rows, 1)`, as the original does for the CFG-doubled batch).
#[derive(Clone, Debug, PartialEq)]
pub struct MicroConditions {
    /// `[height, width]` in pixels, per row.
    pub img_hw: Vec<[f32; 2]>,
    /// The aspect-ratio key (e.g. 0.68 for 832×1216), per row.
    pub aspect_ratio: Vec<f32>,
}

impl MicroConditions {
    /// One row for the whole batch.
    pub fn single(height_px: f32, width_px: f32, aspect_ratio: f32) -> Self {
        Self {
            img_hw: vec![[height_px, width_px]],
            aspect_ratio: vec![aspect_ratio],
        }
    }

    fn rows(&self) -> Result<usize> {
        let rows = self.img_hw.len();
        if rows == 0 || rows != self.aspect_ratio.len() {
            candle_core::bail!(
                "micro-conditions need as many sizes as aspect ratios (at least one), got {} and {}",
                rows,
                self.aspect_ratio.len()
            )
        }
        Ok(rows)
    }

    /// The rows tiled to `batch` rows.
    fn tiled(&self, batch: usize) -> Result<Self> {
        let rows = self.rows()?;
        if !batch.is_multiple_of(rows) {
            candle_core::bail!("{rows} micro-condition rows do not tile a batch of {batch}")
        }
        Ok(Self {
            img_hw: (0..batch).map(|i| self.img_hw[i % rows]).collect(),
            aspect_ratio: (0..batch).map(|i| self.aspect_ratio[i % rows]).collect(),
        })
    }
}

/// `SizeEmbedder`: each scalar through the timestep sinusoid, then Linear → SiLU → Linear.
#[derive(Debug, Clone)]
struct SizeEmbedder {
    mlp_0: Linear,
    mlp_2: Linear,
}

impl SizeEmbedder {
    fn load(width: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("mlp");
        Ok(Self {
            mlp_0: candle_nn::linear(FREQUENCY_EMBEDDING_SIZE, width, vb.pp("0"))?,
            mlp_2: candle_nn::linear(width, width, vb.pp("2"))?,
        })
    }

    /// `rows × per_row` scalars (row-major) → the sinusoids `(rows·per_row, 256)` and the
    /// embedding `(rows, per_row · width)` (each row's scalars side by side).
    fn forward(
        &self,
        scalars: &[f32],
        rows: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let freq = timestep_features(scalars, device)?.to_dtype(dtype)?;
        let emb = per_row(&self.mlp_2, &per_row(&self.mlp_0, &freq)?.silu()?)?;
        let emb = emb.reshape((rows, ()))?;
        Ok((freq, emb))
    }
}

/// Everything [`LumosT2IMS::forward_traced`] computes on the way, for parity checks. Tensors
/// that are the same for every sample are broadcast to the batch.
#[derive(Debug, Clone)]
pub struct LumosT2ITrace {
    /// Patch embedding before the positional embedding, `(b, n, c)`.
    pub x_embed: Tensor,
    /// The positional embedding computed for this latent size, `(1, n, c)`.
    pub pos_embed: Tensor,
    /// Sinusoidal timestep features, `(b, 256)`.
    pub t_freq: Tensor,
    /// Timestep embedding, `(b, c)`.
    pub t_emb: Tensor,
    /// Size sinusoids, rows `h0, w0, h1, w1, ...`, `(2b, 256)`.
    pub csize_freq: Tensor,
    /// `[emb(h), emb(w)]`, `(b, 2c/3)`.
    pub csize_emb: Tensor,
    /// Aspect-ratio sinusoids, `(b, 256)`.
    pub ar_freq: Tensor,
    /// `emb(ar)`, `(b, c/3)`.
    pub ar_emb: Tensor,
    /// `t_emb + [csize_emb, ar_emb]`: what every adaLN and the final layer see, `(b, c)`.
    pub t_cond: Tensor,
    /// The embedded caption, all tokens, `(b, 1, l, c)`.
    pub y_emb: Tensor,
    /// The kept caption tokens of all samples, packed in sample order, `(1, t, c)`.
    pub y_packed: Tensor,
    /// Kept tokens per sample.
    pub y_lens: Vec<usize>,
    /// Per-block intermediates.
    pub blocks: Vec<BlockTrace>,
    /// Final layer output before unpatchify, `(b, n, p*p*out)`.
    pub final_out: Tensor,
    /// The model output, `(b, out, h, w)`.
    pub out: Tensor,
}

/// The Lumos multi-aspect text-to-image DiT.
#[derive(Debug, Clone)]
pub struct LumosT2IMS {
    x_embedder: Conv2d,
    t_mlp_0: Linear,
    t_mlp_2: Linear,
    csize_embedder: SizeEmbedder,
    ar_embedder: SizeEmbedder,
    y_proj: Mlp,
    y_embedding: Tensor,
    blocks: Vec<LumosBlock>,
    final_table: Tensor,
    final_linear: Linear,
    norm: PlainLayerNorm,
    config: LumosT2IConfig,
}

impl LumosT2IMS {
    /// Builds the model from weights with the original key names.
    pub fn load(config: &LumosT2IConfig, vb: VarBuilder) -> Result<Self> {
        let c = config.hidden_size;
        if !c.is_multiple_of(3) {
            candle_core::bail!("hidden_size {c} must be divisible by 3 (micro-condition width)")
        }
        let p = config.patch_size;
        let conv_cfg = Conv2dConfig {
            stride: p,
            ..Default::default()
        };
        let block_config = config.block_config();
        let t_vb = vb.pp("t_embedder").pp("mlp");
        let y_vb = vb.pp("y_embedder");
        let final_vb = vb.pp("final_layer");
        let width = config.size_embedding_width();
        Ok(Self {
            x_embedder: candle_nn::conv2d(
                config.in_channels,
                c,
                p,
                conv_cfg,
                vb.pp("x_embedder").pp("proj"),
            )?,
            t_mlp_0: candle_nn::linear(FREQUENCY_EMBEDDING_SIZE, c, t_vb.pp("0"))?,
            t_mlp_2: candle_nn::linear(c, c, t_vb.pp("2"))?,
            csize_embedder: SizeEmbedder::load(width, vb.pp("csize_embedder"))?,
            ar_embedder: SizeEmbedder::load(width, vb.pp("ar_embedder"))?,
            y_proj: Mlp::load(config.caption_channels, c, c, y_vb.pp("y_proj"))?,
            y_embedding: y_vb.get(
                (config.model_max_length, config.caption_channels),
                "y_embedding",
            )?,
            blocks: (0..config.depth)
                .map(|i| LumosBlock::load(&block_config, vb.pp("blocks").pp(i)))
                .collect::<Result<Vec<_>>>()?,
            final_table: final_vb.get((2, c), "scale_shift_table")?,
            final_linear: candle_nn::linear(
                c,
                p * p * config.out_channels(),
                final_vb.pp("linear"),
            )?,
            norm: PlainLayerNorm::new(c, 1e-6, vb.dtype(), vb.device())?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LumosT2IConfig {
        &self.config
    }

    /// Model dtype.
    pub fn dtype(&self) -> DType {
        self.y_embedding.dtype()
    }

    /// Model device.
    pub fn device(&self) -> &Device {
        self.y_embedding.device()
    }

    /// The learned null caption for classifier-free guidance, repeated for `batch`:
    /// `(batch, 1, model_max_length, caption_channels)` (the demo's
    /// `y_embedding[None].repeat(b, 1, 1)[:, None]`). Under guidance the prompt's mask truncates it.
    pub fn null_condition(&self, batch: usize) -> Result<Tensor> {
        let (l, cc) = self.y_embedding.dims2()?;
        self.y_embedding
            .unsqueeze(0)?
            .unsqueeze(0)?
            .broadcast_as((batch, 1, l, cc))?
            .contiguous()
    }

    /// `model(x, t, y, mask, data_info)`: `x` `(b, in, h, w)` (any multiple of the patch size,
    /// square or not), `timesteps` (b values), `y` `(b, 1, l, caption_channels)`, `mask`
    /// `(rows, l)` with non-zero for kept tokens (tiled to the batch; `None` keeps all `l`),
    /// `micro` the bucket's size and ratio → `(b, out, h, w)`.
    pub fn forward(
        &self,
        xs: &Tensor,
        timesteps: &[f32],
        y: &Tensor,
        mask: Option<&Tensor>,
        micro: &MicroConditions,
    ) -> Result<Tensor> {
        Ok(self.forward_traced(xs, timesteps, y, mask, micro)?.out)
    }

    /// `forward_with_dpmsolver`: the eps half of the output, `(b, in, h, w)`.
    pub fn forward_eps(
        &self,
        xs: &Tensor,
        timesteps: &[f32],
        y: &Tensor,
        mask: Option<&Tensor>,
        micro: &MicroConditions,
    ) -> Result<Tensor> {
        self.forward(xs, timesteps, y, mask, micro)?
            .narrow(1, 0, self.config.in_channels)
    }

    /// Kept token positions per sample: the mask rows tiled to `batch` (`None`: all `l`).
    fn kept_positions(mask: Option<&Tensor>, batch: usize, l: usize) -> Result<Vec<Vec<u32>>> {
        let Some(mask) = mask else {
            return Ok(vec![(0..l as u32).collect(); batch]);
        };
        let (rows, mask_l) = mask.dims2()?;
        if mask_l != l || rows == 0 || !batch.is_multiple_of(rows) {
            candle_core::bail!(
                "a {rows}×{mask_l} caption mask does not fit {batch} captions of {l} tokens"
            )
        }
        let values = mask
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?;
        Ok((0..batch)
            .map(|i| {
                values[i % rows]
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(j, _)| j as u32)
                    .collect()
            })
            .collect())
    }

    /// The forward pass, keeping every intermediate the parity fixtures record.
    pub fn forward_traced(
        &self,
        xs: &Tensor,
        timesteps: &[f32],
        y: &Tensor,
        mask: Option<&Tensor>,
        micro: &MicroConditions,
    ) -> Result<LumosT2ITrace> {
        let cfg = &self.config;
        let dtype = self.dtype();
        let device = xs.device().clone();
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
        let x_embed = self
            .x_embedder
            .forward(&xs)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let pos_embed = sincos_pos_embed(
            cfg.hidden_size,
            grid_h,
            grid_w,
            cfg.base_size(),
            cfg.lewei_scale,
            &device,
        )?
        .to_dtype(dtype)?;
        let mut tokens = x_embed.broadcast_add(&pos_embed)?;

        // Timestep and micro-conditions: one row when every sample shares them (a sampler
        // step with one bucket), else one per sample.
        let uniform_t = timesteps.windows(2).all(|w| w[0] == w[1]);
        let t_rows = if uniform_t {
            &timesteps[..1]
        } else {
            timesteps
        };
        let t_freq = timestep_features(t_rows, &device)?.to_dtype(dtype)?;
        let t_emb = per_row(&self.t_mlp_2, &per_row(&self.t_mlp_0, &t_freq)?.silu()?)?;
        let micro_rows = micro.rows()?;
        let micro = if micro_rows == 1 {
            micro.clone()
        } else {
            micro.tiled(b)?
        };
        let m = micro.img_hw.len();
        let sizes: Vec<f32> = micro.img_hw.iter().flatten().copied().collect();
        let (csize_freq, csize_emb) = self.csize_embedder.forward(&sizes, m, dtype, &device)?;
        let (ar_freq, ar_emb) = self
            .ar_embedder
            .forward(&micro.aspect_ratio, m, dtype, &device)?;
        let micro_emb = Tensor::cat(&[&csize_emb, &ar_emb], 1)?; // (m, c)
        let t_cond = t_emb.broadcast_add(&micro_emb)?; // (1, c) or (b, c)

        // Caption: embed all tokens, keep the masked ones, packed in sample order.
        let y = y.to_dtype(dtype)?;
        let (y_b, _, l, _) = y.dims4()?;
        if y_b != b {
            candle_core::bail!("{y_b} captions for a batch of {b}")
        }
        let y_emb = self.y_proj.forward(&y)?; // (b, 1, l, c)
        let c = cfg.hidden_size;
        let kept = Self::kept_positions(mask, b, l)?;
        let y_lens: Vec<usize> = kept.iter().map(Vec::len).collect();
        if let Some(i) = y_lens.iter().position(|&n| n == 0) {
            candle_core::bail!("caption {i} keeps no token: its mask is all zero")
        }
        let rows = y_emb.reshape((b * l, c))?;
        let flat_index: Vec<u32> = kept
            .iter()
            .enumerate()
            .flat_map(|(i, positions)| positions.iter().map(move |&j| (i * l) as u32 + j))
            .collect();
        let index = Tensor::new(flat_index.as_slice(), &device)?;
        let y_packed = rows.index_select(&index, 0)?; // (t, c)
        let cond = CrossTokens::Packed {
            tokens: &y_packed,
            lens: &y_lens,
        };

        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let trace = block.forward(&tokens, &t_cond, &cond)?;
            tokens = trace.out.clone();
            blocks.push(trace);
        }

        // T2IFinalLayer: shift, scale = (table[None] + t_cond[:, None]).chunk(2, dim=1)
        let table = self
            .final_table
            .unsqueeze(0)?
            .broadcast_add(&t_cond.unsqueeze(1)?)?;
        let shift = table.i((.., 0..1, ..))?;
        let scale = table.i((.., 1..2, ..))?;
        let modulated = self.norm.forward_modulated(&tokens, &shift, &scale)?;
        let final_out = self.final_linear.forward(&modulated)?;

        // (b, gh*gw, p*p*c) → (b, gh, gw, p, p, c) → (b, c, gh, p, gw, p) → (b, c, h, w)
        let out_c = cfg.out_channels();
        let out = final_out
            .reshape((b, grid_h, grid_w, p, p, out_c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .contiguous()?
            .reshape((b, out_c, h, w))?;

        let per_sample = |t: Tensor| -> Result<Tensor> {
            let mut full = t.dims().to_vec();
            full[0] = b;
            t.broadcast_as(full)
        };
        // Sinusoids of broadcast micro-conditions: tile rows the way the original sees them.
        let tile_rows = |t: Tensor, per: usize| -> Result<Tensor> {
            let have = t.dim(0)? / per;
            if have == b {
                return Ok(t);
            }
            let parts = vec![t; b / have.max(1)];
            Tensor::cat(&parts, 0)
        };
        for trace in &mut blocks {
            trace.ada_ln = per_sample(trace.ada_ln.clone())?;
        }
        Ok(LumosT2ITrace {
            x_embed,
            pos_embed,
            t_freq: per_sample(t_freq)?,
            t_emb: per_sample(t_emb)?,
            csize_freq: tile_rows(csize_freq, 2)?,
            csize_emb: per_sample(csize_emb)?,
            ar_freq: per_sample(ar_freq)?,
            ar_emb: per_sample(ar_emb)?,
            t_cond: per_sample(t_cond)?,
            y_emb,
            y_packed: y_packed.unsqueeze(0)?,
            y_lens,
            blocks,
            final_out,
            out,
        })
    }
}

impl LumosT2IMS {
    /// Number of caption tokens the model attends to at most (`model_max_length`).
    pub fn max_caption_tokens(&self) -> usize {
        self.config.model_max_length
    }

    /// Width of a caption token (`caption_channels`).
    pub fn caption_channels(&self) -> usize {
        self.config.caption_channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_conditions_tile_like_repeat() -> Result<()> {
        let micro = MicroConditions {
            img_hw: vec![[640.0, 1600.0], [832.0, 1216.0]],
            aspect_ratio: vec![0.4, 0.68],
        };
        let tiled = micro.tiled(4)?;
        assert_eq!(tiled.aspect_ratio, vec![0.4, 0.68, 0.4, 0.68]);
        assert!(micro.tiled(3).is_err());
        Ok(())
    }

    #[test]
    fn mask_rows_tile_over_the_batch() -> Result<()> {
        let mask = Tensor::new(&[[1i64, 1, 1], [1, 0, 0]], &Device::Cpu)?;
        let kept = LumosT2IMS::kept_positions(Some(&mask), 4, 3)?;
        assert_eq!(kept, vec![vec![0, 1, 2], vec![0], vec![0, 1, 2], vec![0]]);
        assert!(LumosT2IMS::kept_positions(Some(&mask), 3, 3).is_err());
        assert_eq!(LumosT2IMS::kept_positions(None, 2, 2)?, vec![vec![0, 1]; 2]);
        Ok(())
    }
}
