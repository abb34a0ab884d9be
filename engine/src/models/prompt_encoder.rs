//! The built-in prompt model's text encoder: a bag of words → one 1280-d unit vector in the
//! image-embedding space the built-in prior is conditioned on.
//!
//! Why a bag of words and not T5: the built-in model must work offline, from a few MB, on a
//! laptop CPU; it is learnt from scratch on the corpus's image names ("cat face", "person
//! golfing medium dark", a source name as the style), which are short and mostly order-free.
//! Written by hand because no crate has this network; it mirrors `PromptEncoder` of
//! `tools/gpu/train_prompt.py` key for key (`text_encoder.token_embedding.weight`, `norm`,
//! `fc1`, `fc2`): words → their learnt embeddings → mean → LayerNorm → fc1 → GELU (erf) →
//! fc2 → L2 normalisation.
//!
//! The tokenizer is the trainer's: lowercase, runs of ASCII letters and digits; words outside
//! the vocabulary are dropped and reported.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};

use super::layers::AffineLayerNorm;

/// LayerNorm epsilon (PyTorch's default).
const NORM_EPS: f32 = 1e-5;

/// The words of a prompt as the encoder reads them: lowercase runs of ASCII letters and digits.
pub fn words(prompt: &str) -> Vec<String> {
    prompt
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A prompt's vector and which of its words were read.
#[derive(Clone, Debug)]
pub struct EncodedPrompt {
    /// `(1, out_dim)`, unit length.
    pub embedding: Tensor,
    /// The words found in the vocabulary, in prompt order.
    pub known: Vec<String>,
    /// The words that are not (ignored).
    pub unknown: Vec<String>,
}

/// Bag-of-words prompt encoder.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    index: HashMap<String, u32>,
    token_embedding: Tensor,
    norm: AffineLayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl PromptEncoder {
    /// Builds the encoder for `vocabulary` (word `i` is row `i` of the embedding table) from
    /// `vb` at the encoder's prefix; `out_dim` is the prior's condition width.
    pub fn load(vocabulary: &[String], out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let table = vb.get_unchecked("token_embedding.weight")?;
        let (rows, width) = table.dims2()?;
        if rows != vocabulary.len() {
            candle_core::bail!(
                "the prompt encoder has {rows} word embeddings but its vocabulary {} words",
                vocabulary.len()
            );
        }
        let hidden = vb.get_unchecked("fc1.weight")?.dim(0)?;
        let index = vocabulary
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(Self {
            index,
            token_embedding: table,
            norm: AffineLayerNorm::load(width, NORM_EPS, vb.pp("norm"))?,
            fc1: linear(width, hidden, vb.pp("fc1"))?,
            fc2: linear(hidden, out_dim, vb.pp("fc2"))?,
        })
    }

    /// Words in the vocabulary.
    pub fn vocabulary_size(&self) -> usize {
        self.index.len()
    }

    /// Whether the encoder knows `word` (lowercase).
    pub fn knows(&self, word: &str) -> bool {
        self.index.contains_key(word)
    }

    /// Encodes a prompt; `None` when none of its words is in the vocabulary.
    pub fn encode(&self, prompt: &str) -> Result<Option<EncodedPrompt>> {
        let (known, unknown): (Vec<String>, Vec<String>) =
            words(prompt).into_iter().partition(|w| self.knows(w));
        if known.is_empty() {
            return Ok(None);
        }
        let ids: Vec<u32> = known.iter().map(|w| self.index[w]).collect();
        let device = self.token_embedding.device();
        let ids = Tensor::from_vec(ids, known.len(), device)?;
        let pooled = self
            .token_embedding
            .index_select(&ids, 0)?
            .to_dtype(DType::F32)?
            .mean_keepdim(0)?;
        let hidden = self.fc1.forward(&self.norm.forward(&pooled)?)?.gelu_erf()?;
        let out = self.fc2.forward(&hidden)?;
        let norm = out.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(Some(EncodedPrompt {
            embedding: out.broadcast_div(&norm)?,
            known,
            unknown,
        }))
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.token_embedding.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_ascii_runs() {
        assert_eq!(
            words("Grinning face, fluent-emoji 3D! café"),
            ["grinning", "face", "fluent", "emoji", "3d", "caf"]
        );
        assert!(words("  ,;  ").is_empty());
    }

    #[test]
    fn prompts_encode_to_unit_vectors_and_report_unknown_words() -> Result<()> {
        let device = Device::Cpu;
        let vocabulary: Vec<String> = ["cat", "face", "red"].map(String::from).to_vec();
        let mut tensors = HashMap::new();
        let seeded = |shape: &[usize], salt: f32| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|i| ((i as f32 + salt) * 0.7).sin()).collect();
            Tensor::from_vec(values, shape, &device)
        };
        tensors.insert("token_embedding.weight".into(), seeded(&[3, 8], 0.0)?);
        tensors.insert("norm.weight".into(), Tensor::ones(8, DType::F32, &device)?);
        tensors.insert("norm.bias".into(), Tensor::zeros(8, DType::F32, &device)?);
        tensors.insert("fc1.weight".into(), seeded(&[16, 8], 1.0)?);
        tensors.insert("fc1.bias".into(), seeded(&[16], 2.0)?);
        tensors.insert("fc2.weight".into(), seeded(&[5, 16], 3.0)?);
        tensors.insert("fc2.bias".into(), seeded(&[5], 4.0)?);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let encoder = PromptEncoder::load(&vocabulary, 5, vb)?;
        let a = encoder.encode("The CAT, face")?.expect("known words");
        assert_eq!(a.known, ["cat", "face"]);
        assert_eq!(a.unknown, ["the"]);
        let norm: f32 = a.embedding.sqr()?.sum_all()?.sqrt()?.to_scalar()?;
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        // A bag: order does not matter; different words give a different vector.
        let b = encoder.encode("face cat")?.expect("known words");
        let c = encoder.encode("red")?.expect("known words");
        let diff =
            |x: &Tensor, y: &Tensor| -> Result<f32> { (x - y)?.abs()?.max_all()?.to_scalar() };
        assert!(diff(&a.embedding, &b.embedding)? < 1e-6);
        assert!(diff(&a.embedding, &c.embedding)? > 1e-3);
        assert!(encoder.encode("zzz qqq")?.is_none());
        Ok(())
    }
}
