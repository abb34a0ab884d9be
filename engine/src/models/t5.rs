//! The T5 v1.1 text encoder (transformers' `T5EncoderModel`), the caption encoder of the Lumos
//! text-to-image prior (`lumos_diffusion/model/t5.py`, `T5Embedder`, with `t5-v1_1-xxl`).
//!
//! Checkpoint keys are Hugging Face's: `shared.weight` (or its tied copy
//! `encoder.embed_tokens.weight`), `encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight`,
//! `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight` (block 0 only; its bias
//! is reused by every block), `encoder.block.{i}.layer.{0,1}.layer_norm.weight`,
//! `encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}.weight`,
//! `encoder.final_layer_norm.weight`. No biases anywhere.
//!
//! Why not `candle_transformers::models::t5::T5EncoderModel`: its encoder has **no attention
//! mask** — `forward(input_ids)` attends to every position, padding included (its only mask is
//! the decoder's causal one). Lumos pads every caption to 120 tokens and transformers masks the
//! padded *keys* with `finfo(f32).min`, so the padding changes every kept token's embedding. On the
//! `t5_tiny` fixture, candle-transformers 0.11.1's encoder (same weights, same ids) matches
//! `last_hidden_state_nomask` to 9.5e-7 but differs from `last_hidden_state` by **2.6** on the
//! padded caption (the fixture's tolerance is 1e-4); the unpadded caption agrees to 9.5e-7. Running
//! each caption unpadded instead would fix the kept rows but not the padded rows that
//! `last_hidden_state` also holds. `engine/tests/text_to_image.rs` measures both numbers. This
//! file adds the key mask; everything else follows transformers 4.39 (`modeling_t5.py`):
//! RMS norm without mean or bias (variance in f32), pre-norm residual blocks, **no**
//! `1/sqrt(d_kv)` scaling of the logits, softmax in f32, the gated-GELU(tanh) feed-forward, and
//! bidirectional relative-position buckets computed in f32 in the original operation order.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// The fields of a transformers `T5Config` the encoder needs (its `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct T5Config {
    /// Vocabulary size (32128 for T5 v1.1: 32000 pieces, 100 sentinels, padding).
    pub vocab_size: usize,
    /// Model width (4096 for XXL).
    pub d_model: usize,
    /// Width of one attention head.
    pub d_kv: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Relative-position buckets (half per direction).
    pub relative_attention_num_buckets: usize,
    /// Offsets beyond this share the last bucket of their direction.
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    /// RMS-norm epsilon.
    pub layer_norm_epsilon: f64,
    /// `gated-gelu` (T5 v1.1) or `relu` (the original T5).
    #[serde(default = "default_feed_forward_proj")]
    pub feed_forward_proj: String,
}

fn default_max_distance() -> usize {
    128
}

fn default_feed_forward_proj() -> String {
    "relu".into()
}

impl T5Config {
    /// google/t5-v1_1-xxl (as `DeepFloyd/t5-v1_1-xxl` ships it).
    pub fn v1_1_xxl() -> Self {
        Self {
            vocab_size: 32128,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "gated-gelu".into(),
        }
    }

    fn gated(&self) -> Result<bool> {
        match self.feed_forward_proj.as_str() {
            "gated-gelu" => Ok(true),
            "relu" => Ok(false),
            other => candle_core::bail!(
                "feed_forward_proj `{other}` is not supported (use gated-gelu or relu)"
            ),
        }
    }
}

/// The bucket of a key-minus-query offset (`_relative_position_bucket`, bidirectional): half the
/// buckets per sign (positive offsets after the negative ones), exact below `buckets / 4`, then
/// logarithmic up to `max_distance`, saturating at the last bucket of the half. The logarithm is
/// taken in f32 in the original order (`log(d / max_exact) / log(max_distance / max_exact) *
/// (half - max_exact)`, truncated); f64 gives the same bucket for every offset up to ±512,
/// including the exact boundaries 16, 32 and 64 (a unit test checks it).
pub fn relative_position_bucket(
    relative_position: i64,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let half = num_buckets / 2;
    let mut bucket = if relative_position > 0 { half } else { 0 };
    let distance = relative_position.unsigned_abs() as usize;
    let max_exact = half / 2;
    if distance < max_exact {
        return bucket + distance;
    }
    let log_ratio = ((distance as f32) / (max_exact as f32)).ln();
    let log_range = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let large = max_exact + (log_ratio / log_range * (half - max_exact) as f32) as usize;
    bucket += large.min(half - 1);
    bucket
}

/// RMS norm with a learned scale (`T5LayerNorm`).
#[derive(Debug, Clone)]
struct T5LayerNorm {
    weight: Tensor,
    eps: f32,
}

impl T5LayerNorm {
    fn load(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps: eps as f32,
        })
    }
}

impl Module for T5LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        // The variance is taken in f32 whatever the model dtype.
        let normed = candle_nn::ops::rms_norm(
            &xs.to_dtype(DType::F32)?.contiguous()?,
            &self.weight.to_dtype(DType::F32)?,
            self.eps,
        )?;
        normed.to_dtype(dtype)
    }
}

/// Self-attention without biases or logit scaling, plus the relative-position bias.
#[derive(Debug, Clone)]
struct T5SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    num_heads: usize,
    d_kv: usize,
}

impl T5SelfAttention {
    fn load(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(Self {
            q: candle_nn::linear_no_bias(cfg.d_model, inner, vb.pp("q"))?,
            k: candle_nn::linear_no_bias(cfg.d_model, inner, vb.pp("k"))?,
            v: candle_nn::linear_no_bias(cfg.d_model, inner, vb.pp("v"))?,
            o: candle_nn::linear_no_bias(inner, cfg.d_model, vb.pp("o"))?,
            num_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        })
    }

    /// `xs` `(b, l, d)`, `bias` `(b or 1, heads, l, l)` (position bias plus key mask).
    fn forward(&self, xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, l, _) = xs.dims3()?;
        let heads = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, l, self.num_heads, self.d_kv))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(self.q.forward(xs)?)?;
        let k = heads(self.k.forward(xs)?)?;
        let v = heads(self.v.forward(xs)?)?;
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(bias)?;
        let dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((
            b,
            l,
            self.num_heads * self.d_kv,
        ))?;
        self.o.forward(&out)
    }
}

/// `DenseReluDense`: `wo(gelu_tanh(wi_0 x) * wi_1 x)` (gated) or `wo(relu(wi x))`.
#[derive(Debug, Clone)]
enum FeedForward {
    GatedGelu {
        wi_0: Linear,
        wi_1: Linear,
        wo: Linear,
    },
    Relu {
        wi: Linear,
        wo: Linear,
    },
}

impl FeedForward {
    fn load(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        Ok(if cfg.gated()? {
            Self::GatedGelu {
                wi_0: candle_nn::linear_no_bias(d, f, vb.pp("wi_0"))?,
                wi_1: candle_nn::linear_no_bias(d, f, vb.pp("wi_1"))?,
                wo: candle_nn::linear_no_bias(f, d, vb.pp("wo"))?,
            }
        } else {
            Self::Relu {
                wi: candle_nn::linear_no_bias(d, f, vb.pp("wi"))?,
                wo: candle_nn::linear_no_bias(f, d, vb.pp("wo"))?,
            }
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            // transformers' `gelu_new` is the tanh approximation (candle's `gelu`).
            Self::GatedGelu { wi_0, wi_1, wo } => {
                wo.forward(&(wi_0.forward(xs)?.gelu()? * wi_1.forward(xs)?)?)
            }
            Self::Relu { wi, wo } => wo.forward(&wi.forward(xs)?.relu()?),
        }
    }
}

/// One encoder block: `x + attn(norm(x))`, then `x + ff(norm(x))`.
#[derive(Debug, Clone)]
struct T5Block {
    attention: T5SelfAttention,
    attention_norm: T5LayerNorm,
    feed_forward: FeedForward,
    feed_forward_norm: T5LayerNorm,
}

impl T5Block {
    fn load(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let attn_vb = vb.pp("layer").pp("0");
        let ff_vb = vb.pp("layer").pp("1");
        Ok(Self {
            attention: T5SelfAttention::load(cfg, attn_vb.pp("SelfAttention"))?,
            attention_norm: T5LayerNorm::load(
                cfg.d_model,
                cfg.layer_norm_epsilon,
                attn_vb.pp("layer_norm"),
            )?,
            feed_forward: FeedForward::load(cfg, ff_vb.pp("DenseReluDense"))?,
            feed_forward_norm: T5LayerNorm::load(
                cfg.d_model,
                cfg.layer_norm_epsilon,
                ff_vb.pp("layer_norm"),
            )?,
        })
    }

    fn forward(&self, xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let xs = (xs
            + self
                .attention
                .forward(&self.attention_norm.forward(xs)?, bias)?)?;
        &xs + self
            .feed_forward
            .forward(&self.feed_forward_norm.forward(&xs)?)?
    }
}

/// Intermediates of [`T5Encoder::forward_traced`], for parity checks.
#[derive(Debug, Clone)]
pub struct T5Trace {
    /// Token embeddings `(b, l, d)`.
    pub embeddings: Tensor,
    /// Block 0's relative position bias, without the mask, `(1, heads, l, l)`.
    pub position_bias: Tensor,
    /// Block outputs (before the final norm).
    pub blocks: Vec<Tensor>,
    /// `last_hidden_state` `(b, l, d)`, rows at padded positions included.
    pub last_hidden_state: Tensor,
}

/// The T5 encoder stack.
#[derive(Debug, Clone)]
pub struct T5Encoder {
    shared: Embedding,
    relative_attention_bias: Embedding,
    blocks: Blocks,
    final_layer_norm: T5LayerNorm,
    config: T5Config,
}

/// The encoder's blocks: resident, or read from their weights as each one runs.
#[derive(Clone)]
enum Blocks {
    Resident(Vec<T5Block>),
    /// `encoder.block` of a lazily read checkpoint: a block's weights are read just before it
    /// runs and dropped after, so the 24 blocks of T5-XXL (18 GB in f32) never coexist.
    Streamed(VarBuilder<'static>),
}

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resident(blocks) => write!(f, "{} resident blocks", blocks.len()),
            Self::Streamed(_) => write!(f, "streamed blocks"),
        }
    }
}

impl T5Encoder {
    /// Builds the encoder from a (full or encoder-only) T5 checkpoint with Hugging Face keys.
    pub fn load(config: &T5Config, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..config.num_layers)
            .map(|i| T5Block::load(config, vb.pp("encoder").pp("block").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Self::load_with(config, vb, Blocks::Resident(blocks))
    }

    /// [`Self::load`] keeping only the embeddings and the final norm resident: each block is
    /// read from `vb` when it runs and dropped after (`vb` should read lazily, e.g.
    /// [`crate::checkpoints::LazyWeights`]). Peak memory is then the embedding table plus one
    /// block instead of the whole encoder.
    pub fn load_streaming(config: &T5Config, vb: VarBuilder<'static>) -> Result<Self> {
        let blocks = Blocks::Streamed(vb.pp("encoder").pp("block"));
        Self::load_with(config, vb, blocks)
    }

    fn load_with(config: &T5Config, vb: VarBuilder, blocks: Blocks) -> Result<Self> {
        config.gated()?;
        let embedding_vb = if vb.contains_tensor("shared.weight") {
            vb.pp("shared")
        } else {
            vb.pp("encoder").pp("embed_tokens")
        };
        let shared = candle_nn::embedding(config.vocab_size, config.d_model, embedding_vb)?;
        let encoder = vb.pp("encoder");
        let relative_attention_bias = candle_nn::embedding(
            config.relative_attention_num_buckets,
            config.num_heads,
            encoder
                .pp("block")
                .pp(0)
                .pp("layer")
                .pp(0)
                .pp("SelfAttention")
                .pp("relative_attention_bias"),
        )?;
        Ok(Self {
            shared,
            relative_attention_bias,
            blocks,
            final_layer_norm: T5LayerNorm::load(
                config.d_model,
                config.layer_norm_epsilon,
                encoder.pp("final_layer_norm"),
            )?,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// `(1, heads, l, l)`: the learned bias of every (query, key) offset.
    fn position_bias(&self, l: usize, device: &Device) -> Result<Tensor> {
        let cfg = &self.config;
        let buckets: Vec<u32> = (0..l)
            .flat_map(|query| {
                (0..l).map(move |key| {
                    relative_position_bucket(
                        key as i64 - query as i64,
                        cfg.relative_attention_num_buckets,
                        cfg.relative_attention_max_distance,
                    ) as u32
                })
            })
            .collect();
        let buckets = Tensor::from_vec(buckets, (l, l), device)?;
        // (l, l, heads) → (1, heads, l, l)
        self.relative_attention_bias
            .forward(&buckets)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }

    /// `last_hidden_state` for `input_ids` `(b, l)` (u32 or i64) and the optional
    /// `attention_mask` `(b, l)` (non-zero = token, zero = padding).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(self
            .forward_traced(input_ids, attention_mask)?
            .last_hidden_state)
    }

    /// The forward pass, keeping what the parity fixture records.
    pub fn forward_traced(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<T5Trace> {
        let (b, l) = input_ids.dims2()?;
        let device = self.shared.embeddings().device().clone();
        let dtype = self.shared.embeddings().dtype();
        let ids = input_ids.to_dtype(DType::U32)?.to_device(&device)?;
        let embeddings = self.shared.forward(&ids)?;
        let position_bias = self.position_bias(l, &device)?.to_dtype(dtype)?;
        // Padded keys get finfo(f32).min (transformers' extended attention mask): after the
        // softmax their weight is exactly zero.
        let bias = match attention_mask {
            Some(mask) => {
                if mask.dims2()? != (b, l) {
                    candle_core::bail!(
                        "attention mask {:?} for input ids {:?}",
                        mask.dims(),
                        input_ids.dims()
                    )
                }
                let keep = mask.to_device(&device)?.to_dtype(DType::F32)?.ne(0f64)?;
                let key_bias = keep
                    .where_cond(
                        &Tensor::zeros((b, l), DType::F32, &device)?,
                        &Tensor::full(f32::MIN, (b, l), &device)?,
                    )?
                    .to_dtype(dtype)?
                    .reshape((b, 1, 1, l))?;
                position_bias.broadcast_add(&key_bias)?
            }
            None => position_bias.clone(),
        };
        let mut xs = embeddings.clone();
        let mut blocks = Vec::with_capacity(self.config.num_layers);
        for i in 0..self.config.num_layers {
            xs = match &self.blocks {
                Blocks::Resident(resident) => resident[i].forward(&xs, &bias)?,
                Blocks::Streamed(source) => {
                    T5Block::load(&self.config, source.pp(i))?.forward(&xs, &bias)?
                }
            };
            blocks.push(xs.clone());
        }
        let last_hidden_state = self.final_layer_norm.forward(&xs)?;
        Ok(T5Trace {
            embeddings,
            position_bias,
            blocks,
            last_hidden_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket boundaries that sit exactly on an integer (offsets 16, 32, 64, where
    /// `log(d / 8) / log(16) * 8` is 2, 4, 6) land on the same bucket in f32 and f64, so the
    /// choice of precision cannot move a bucket for any offset a 120-token caption has.
    #[test]
    fn buckets_agree_in_f32_and_f64_over_caption_offsets() {
        let (buckets, max_distance) = (32usize, 128usize);
        for d in -512i64..=512 {
            let half = buckets / 2;
            let max_exact = half / 2;
            let distance = d.unsigned_abs() as usize;
            let expected = if d > 0 { half } else { 0 }
                + if distance < max_exact {
                    distance
                } else {
                    let large = (distance as f64 / max_exact as f64).ln()
                        / (max_distance as f64 / max_exact as f64).ln()
                        * (half - max_exact) as f64;
                    (max_exact + large as usize).min(half - 1)
                };
            assert_eq!(
                relative_position_bucket(d, buckets, max_distance),
                expected,
                "offset {d}"
            );
        }
    }
}
