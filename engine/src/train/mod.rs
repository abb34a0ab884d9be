//! `lumos train`: the Lumos recipe, scaled down. The prior (the same `LumosI2I` the engine
//! samples) learns the prediction its config names on the linear schedule, conditioned on the
//! frozen encoder's embedding of an augmented view of the training image, with the condition
//! replaced by the learned null embedding 10% of the time (so classifier-free guidance works).
//! No text, no labels: a folder of images in, a model folder out.
//!
//! Given a posed multi-view dataset (`lumos render-dataset`) instead, it trains the Lumos NVS
//! config of the same network ([`multiview`]): started from an image prior's weights (the
//! paper's "with the I2I prior": the new input-view channels and the pose MLP's output start at
//! zero, so step 0 is the image prior), or from scratch with the same config, in the image
//! prior's pixel or latent space.
//!
//! State (raw weights, AdamW moments, EMA weights, step) is saved every `save_every` steps and
//! at the end, so a run can be stopped and resumed; the exported model (`prior.safetensors`, the
//! EMA weights with the original key names, plus a `model.json` manifest the app and CLI load)
//! is rewritten at every save.

pub mod data;
pub mod multiview;
pub mod optim;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::models::{EncoderConfig, ImageEncoder, LumosConfig, LumosI2I, Prediction, VaeConfig};
use crate::protocol::{ComponentSpec, ModelSpec, Precision};
use crate::sampling::NoiseSchedule;

use self::optim::{AdamW, AdamWConfig, Ema};

/// Everything a training run is set up with (saved beside its checkpoints).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSettings {
    /// The prior's hyper-parameters.
    pub prior: LumosConfig,
    /// The frozen encoder.
    pub encoder: ComponentSpec<EncoderConfig>,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Cosine decay of the learning rate to 10 % at this step (`lumos train` sets it to the
    /// run's `--steps`); 0: constant after warm-up, as runs saved before it existed train.
    #[serde(default)]
    pub decay_steps: usize,
    /// Gradients are scaled down to at most this global L2 norm before each update (the
    /// PyTorch trainers clip at 1); 0: not clipped, as runs saved before it existed train.
    #[serde(default)]
    pub grad_clip: f64,
    /// EMA decay.
    pub ema_decay: f64,
    /// Probability of training on the null condition.
    pub condition_dropout: f64,
    /// Embedded views per image (view 0 is the clean image).
    pub views: usize,
    /// Steps between saves.
    pub save_every: usize,
    /// Seed of the run.
    pub seed: u64,
    /// The autoencoder whose latent space the prior works in; `None`: pixels.
    #[serde(default)]
    pub vae: Option<ComponentSpec<VaeConfig>>,
    /// Prior weights the run starts from (an image prior, or a novel-view prior to continue);
    /// `None`: PixArt's initialisation.
    #[serde(default)]
    pub init: Option<PathBuf>,
}

impl TrainSettings {
    /// The recipe of the first GPU-trained built-in default (the shipped one is its 128 px
    /// latent-space successor, trained by `tools/gpu/train_prior.py`): a 64×64 pixel-space
    /// x0-prediction prior (patch 8, width 256, depth 6, the condition also through adaLN, a
    /// final 3×3 convolution) conditioned on EfficientNet-Lite0 embeddings at 128 px.
    pub fn small_default(encoder_path: PathBuf) -> Self {
        Self {
            prior: LumosConfig {
                input_size: 64,
                patch_size: 8,
                in_channels: 3,
                hidden_size: 256,
                depth: 6,
                num_heads: 4,
                mlp_ratio: 4.0,
                caption_channels: crate::models::efficientnet::FEATURES,
                model_max_length: 1,
                pred_sigma: false,
                lewei_scale: 1.0,
                prediction: Prediction::Sample,
                adaln_condition: true,
                final_conv: true,
                spatial_condition_grid: 0,
                input_view_channels: 0,
                pose_condition: false,
            },
            encoder: ComponentSpec {
                path: encoder_path,
                config: EncoderConfig::EfficientNetLite(
                    crate::models::EfficientNetLiteConfig::lite0(128),
                ),
            },
            batch: 32,
            lr: 5e-4,
            warmup: 200,
            decay_steps: 0,
            grad_clip: 1.0,
            ema_decay: 0.999,
            condition_dropout: 0.1,
            views: 3,
            save_every: 250,
            seed: 0,
            vae: None,
            init: None,
        }
    }

    /// The novel-view recipe on `base`'s network, space and encoder (the input view
    /// concatenated to the input channels, the relative pose through an MLP added to the
    /// condition): started from `base`'s prior weights when `from_base_weights`, else from
    /// scratch with the same config — the two arms of the paper's comparison.
    pub fn novel_view(base: &ModelSpec, from_base_weights: bool) -> Self {
        let mut prior = base.prior.config.clone();
        prior.input_view_channels = prior.in_channels;
        prior.pose_condition = true;
        Self {
            prior,
            encoder: base.encoder.clone(),
            batch: 32,
            lr: 3e-4,
            warmup: 200,
            decay_steps: 0,
            grad_clip: 1.0,
            ema_decay: 0.999,
            condition_dropout: 0.1,
            views: 1,
            save_every: 250,
            seed: 0,
            vae: base.vae.clone(),
            init: from_base_weights.then(|| base.prior.path.clone()),
        }
    }

    /// Whether this trains a novel-view prior (input view and pose).
    pub fn is_novel_view(&self) -> bool {
        self.prior.input_view_channels > 0 || self.prior.pose_condition
    }
}

/// One step's training examples in the prior's space.
pub(crate) struct Batch {
    /// Clean targets `(b, in, h, w)`, f32.
    x0: Tensor,
    /// Condition tokens `(b, 1, 1, caption)`, f32, before dropout.
    condition: Tensor,
    /// Per example: 1 keeps the condition, 0 replaces it by the learned null embedding.
    keep: Vec<f32>,
    /// Novel views: the input view `(b, in, h, w)`, concatenated to the noisy target, and the
    /// relative pose `(b, 4)`.
    novel_view: Option<(Tensor, Tensor)>,
}

/// What a run trains on.
pub enum TrainingData {
    /// Images and their view embeddings, and the indices trained on.
    Images(data::TrainingSet, Vec<u32>),
    /// Posed views of objects.
    Views(multiview::PosedViews),
}

/// Progress the loop reports.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// Images decoded / embedded while preparing the data.
    Preparing {
        what: &'static str,
        done: usize,
        total: usize,
    },
    /// A step finished.
    Step { step: usize, loss: f32, lr: f64 },
    /// State and the exported model were written.
    Saved { step: usize, path: PathBuf },
}

/// Where a run keeps its files.
pub struct RunFolder(pub PathBuf);

impl RunFolder {
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// The settings of the run.
    pub fn settings(&self) -> PathBuf {
        self.file("train.json")
    }
    /// The cached images and view embeddings.
    pub fn dataset(&self) -> PathBuf {
        self.file("dataset.safetensors")
    }
    /// The cached posed views of a novel-view run.
    pub fn posed_views(&self) -> PathBuf {
        self.file("views.safetensors")
    }
    /// Raw weights, moments and EMA weights.
    pub fn state(&self) -> PathBuf {
        self.file("state.safetensors")
    }
    /// The exported prior (EMA weights, original key names).
    pub fn prior(&self) -> PathBuf {
        self.file("prior.safetensors")
    }
    /// The model manifest the app and CLI load.
    pub fn manifest(&self) -> PathBuf {
        self.file(crate::checkpoints::MANIFEST_FILE)
    }
    /// Loss per step, CSV.
    pub fn loss_log(&self) -> PathBuf {
        self.file("loss.csv")
    }
}

fn io_error(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Loads the cached training data, or builds it from `data_dir` and caches it.
pub fn prepare_data(
    data_dir: &Path,
    run: &RunFolder,
    settings: &TrainSettings,
    device: &Device,
    report: &mut dyn FnMut(TrainEvent),
) -> Result<TrainingData> {
    if settings.is_novel_view() {
        if run.posed_views().exists() {
            return Ok(TrainingData::Views(multiview::load(
                &run.posed_views(),
                device,
            )?));
        }
        let set = multiview::prepare(data_dir, settings, device, report)?;
        multiview::save(&set, &run.posed_views())?;
        return Ok(TrainingData::Views(set));
    }
    let set = prepare_images(data_dir, run, settings, device, report)?;
    let pool = set.training_indices();
    Ok(TrainingData::Images(set, pool))
}

fn prepare_images(
    data_dir: &Path,
    run: &RunFolder,
    settings: &TrainSettings,
    device: &Device,
    report: &mut dyn FnMut(TrainEvent),
) -> Result<data::TrainingSet> {
    if run.dataset().exists() {
        return data::load(&run.dataset(), device);
    }
    let size = settings.prior.input_size as u32;
    let (files, images, skipped) = data::load_images(data_dir, size)?;
    if images.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "the data folder {} has no readable images",
            data_dir.display()
        )));
    }
    if skipped > 0 {
        eprintln!("skipped {skipped} files that could not be decoded");
    }
    let encoder =
        crate::checkpoints::build_model(&settings.encoder.path, DType::F32, device, |vb| {
            ImageEncoder::load(&settings.encoder.config, vb)
        })?;
    let total = images.len();
    let mut done = 0;
    let embeddings = data::embed_views(&encoder, &images, settings.views, device, &mut |n| {
        done += n;
        report(TrainEvent::Preparing {
            what: "embedding views",
            done,
            total,
        });
    })?;
    let set = data::TrainingSet {
        files,
        images: data::images_tensor(&images, device)?,
        embeddings,
    };
    data::save(&set, &run.dataset())?;
    Ok(set)
}

/// A training run in progress.
pub struct Trainer {
    settings: TrainSettings,
    vars: Vec<(String, Var)>,
    model: LumosI2I,
    optimizer: AdamW,
    ema: Ema,
    schedule: NoiseSchedule,
    device: Device,
}

impl Trainer {
    /// A fresh model (PixArt's initialisation: Xavier-uniform linears, zeroed adaLN and output
    /// layers so every block starts as the identity), or the saved state of `run` if it has one.
    pub fn new(settings: TrainSettings, run: &RunFolder, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = LumosI2I::load(&settings.prior, vb)?;
        let mut vars: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .map_err(|_| EngineError::InvalidRequest("poisoned var map".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x5eed);
        for (name, var) in &vars {
            initialise(name, var, &mut rng)?;
        }
        if let Some(init) = settings.init.as_ref().filter(|_| !run.state().exists()) {
            start_from(&vars, init)?;
        }
        let optimizer = AdamW::new(
            vars.clone(),
            AdamWConfig {
                lr: settings.lr,
                warmup: settings.warmup,
                decay_steps: settings.decay_steps,
                clip_norm: settings.grad_clip,
                ..Default::default()
            },
        )?;
        let ema = Ema::new(&vars, settings.ema_decay)?;
        let mut trainer = Self {
            settings,
            vars,
            model,
            optimizer,
            ema,
            schedule: NoiseSchedule::default(),
            device: device.clone(),
        };
        if run.state().exists() {
            trainer.resume(run)?;
        }
        Ok(trainer)
    }

    /// Steps done so far.
    pub fn step(&self) -> usize {
        self.optimizer.step
    }

    fn resume(&mut self, run: &RunFolder) -> Result<()> {
        let saved = candle_core::safetensors::load(run.state(), &self.device)?;
        for (name, var) in &self.vars {
            let raw = saved.get(name).ok_or_else(|| {
                EngineError::InvalidRequest(format!("{}: no {name}", run.state().display()))
            })?;
            var.set(raw)?;
            if let Some(avg) = saved.get(&format!("ema.{name}")) {
                self.ema.weights.insert(name.clone(), avg.clone());
            }
        }
        let step = saved
            .get("step")
            .map(|t| t.to_vec1::<f32>().map(|v| v[0] as usize))
            .transpose()?
            .unwrap_or(0);
        self.optimizer.restore(&saved, step);
        Ok(())
    }

    /// One optimisation step on a batch drawn from `data`; returns the loss.
    pub fn train_step(&mut self, data: &TrainingData) -> Result<f32> {
        let s = &self.settings;
        let step = self.optimizer.step;
        let mut rng =
            ChaCha8Rng::seed_from_u64(s.seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
        let batch = match data {
            TrainingData::Images(set, pool) => self.image_batch(set, pool, &mut rng)?,
            TrainingData::Views(set) => {
                multiview::draw_batch(set, s.batch, s.condition_dropout, &mut rng, &self.device)?
            }
        };
        self.optimise(batch, &mut rng)
    }

    /// Images drawn from `pool`, half of them mirrored, each conditioned on one of its views.
    fn image_batch(
        &self,
        set: &data::TrainingSet,
        pool: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Batch> {
        let s = &self.settings;
        let n = set.images.dim(0)?;
        let views = set.embeddings.dim(1)?;
        let b = s.batch;
        if pool.is_empty() {
            return Err(EngineError::InvalidRequest("no training images".into()));
        }
        let indices: Vec<u32> = (0..b)
            .map(|_| pool[rng.random_range(0..pool.len())])
            .collect();
        let view_of: Vec<u32> = (0..b).map(|_| rng.random_range(0..views as u32)).collect();
        let flips: Vec<bool> = (0..b).map(|_| rng.random_bool(0.5)).collect();
        let keep: Vec<f32> = (0..b)
            .map(|_| {
                if rng.random_bool(s.condition_dropout) {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let index_tensor = Tensor::new(indices.as_slice(), &self.device)?;

        // x0 in [-1, 1], half of them mirrored.
        let images = set
            .images
            .index_select(&index_tensor, 0)?
            .to_dtype(DType::F32)?;
        let images = ((images / 127.5)? - 1.0)?;
        let mirrored = images.flip(&[3])?;
        let flip_mask = Tensor::from_vec(
            flips.iter().map(|&f| u8::from(f)).collect::<Vec<_>>(),
            (b, 1, 1, 1),
            &self.device,
        )?
        .broadcast_as(images.shape())?;
        let x0 = flip_mask.where_cond(&mirrored, &images)?;

        // The condition: the embedding of one view.
        let pairs: Vec<u32> = indices
            .iter()
            .zip(&view_of)
            .map(|(&i, &v)| i * views as u32 + v)
            .collect();
        let c = set.embeddings.dim(2)?;
        let condition = set
            .embeddings
            .reshape((n * views, c))?
            .index_select(&Tensor::new(pairs.as_slice(), &self.device)?, 0)?
            .to_dtype(DType::F32)?
            .reshape((b, 1, 1, c))?;
        Ok(Batch {
            x0,
            condition,
            keep,
            novel_view: None,
        })
    }

    /// Noises `batch` at random times and takes one AdamW step on the prior's loss.
    fn optimise(&mut self, batch: Batch, rng: &mut ChaCha8Rng) -> Result<f32> {
        let Batch {
            x0,
            condition,
            keep,
            novel_view,
        } = batch;
        let b = x0.dim(0)?;
        let timesteps: Vec<usize> = (0..b)
            .map(|_| rng.random_range(0..self.schedule.total_n()))
            .collect();

        // ε and x_t = √ᾱ x0 + √(1−ᾱ) ε
        let shape = x0.dims().to_vec();
        let count: usize = shape.iter().product();
        let eps: Vec<f32> = (0..count).map(|_| StandardNormal.sample(rng)).collect();
        let eps = Tensor::from_vec(eps, shape.as_slice(), &self.device)?;
        let (signal, noise): (Vec<f32>, Vec<f32>) = timesteps
            .iter()
            .map(|&t| {
                let a = self.schedule.alphas_cumprod[t];
                (a.sqrt() as f32, (1.0 - a).sqrt() as f32)
            })
            .unzip();
        let signal = Tensor::from_vec(signal, (b, 1, 1, 1), &self.device)?;
        let noise = Tensor::from_vec(noise, (b, 1, 1, 1), &self.device)?;
        let x_t = (x0.broadcast_mul(&signal)? + eps.broadcast_mul(&noise)?)?;

        // The condition, or the learned null embedding; a novel view adds its pose and input.
        let keep = Tensor::from_vec(keep, (b, 1, 1, 1), &self.device)?;
        let null = self.model.null_condition(b)?;
        let cond =
            (condition.broadcast_mul(&keep)? + null.broadcast_mul(&keep.affine(-1.0, 1.0)?)?)?;
        let (x_t, cond) = match &novel_view {
            Some((input_view, pose)) => (
                Tensor::cat(&[&x_t, input_view], 1)?,
                self.model.with_pose(&cond, pose)?,
            ),
            None => (x_t, cond),
        };

        let t_values: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
        let pred = self.model.forward_eps(&x_t, &t_values, &cond)?;
        let loss = match self.settings.prior.prediction {
            Prediction::Epsilon => (pred - &eps)?.sqr()?.mean_all()?,
            // v = α ε − σ x0
            Prediction::V => {
                let v = (eps.broadcast_mul(&signal)? - x0.broadcast_mul(&noise)?)?;
                (pred - &v)?.sqr()?.mean_all()?
            }
            // x0, weighted by 1 / max(σ², 0.05): the v-loss's weighting with its
            // low-noise end capped (min-SNR), so that the nearly clean steps do not dominate.
            Prediction::Sample => {
                let weight = noise.sqr()?.clamp(0.05f32, f32::MAX)?.recip()?;
                (pred - &x0)?.sqr()?.broadcast_mul(&weight)?.mean_all()?
            }
        };
        let grads = loss.backward()?;
        self.optimizer.step(&grads)?;
        self.ema.update(&self.vars, self.optimizer.step)?;
        Ok(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?)
    }

    /// Saves the state and exports the EMA prior and its manifest into `run`.
    pub fn save(&self, run: &RunFolder) -> Result<()> {
        let mut state: HashMap<String, Tensor> = self.optimizer.state();
        for (name, var) in &self.vars {
            state.insert(name.clone(), var.as_tensor().clone());
        }
        for (name, avg) in &self.ema.weights {
            state.insert(format!("ema.{name}"), avg.clone());
        }
        state.insert(
            "step".into(),
            Tensor::new(&[self.optimizer.step as f32], &self.device)?,
        );
        let tmp = run.state().with_extension("tmp");
        candle_core::safetensors::save(&state, &tmp)?;
        std::fs::rename(&tmp, run.state()).map_err(|e| io_error(&run.state(), e))?;
        export(&self.ema.weights, &self.settings, self.optimizer.step, run)?;
        Ok(())
    }
}

/// PixArt's `initialize_weights`: Xavier-uniform linears and patch embedding, zero biases,
/// N(0, 0.02) for the timestep and condition MLPs, zeroed adaLN modulations and final linear
/// layer (every block starts as the identity), `randn / √c` for the final scale-shift table and
/// the null embedding; the pose MLP's output at zero (a pose starts with no effect).
fn initialise(name: &str, var: &Var, rng: &mut ChaCha8Rng) -> Result<()> {
    let dims = var.dims().to_vec();
    let count = var.elem_count();
    let mut normal = |std: f32| -> Vec<f32> {
        (0..count)
            .map(|_| {
                let v: f32 = StandardNormal.sample(rng);
                v * std
            })
            .collect()
    };
    let values: Vec<f32> = if name.contains("adaLN_modulation")
        || name.starts_with("final_layer.linear")
        || name.starts_with("pose_embedder.fc2")
        || name.ends_with(".bias")
    {
        vec![0.0; count]
    } else if name.ends_with("scale_shift_table") || name.ends_with("y_embedding") {
        normal(1.0 / (dims[1] as f32).sqrt())
    } else if name.starts_with("t_embedder") || name.starts_with("y_embedder") {
        normal(0.02)
    } else {
        let fan_out = dims[0];
        let fan_in: usize = dims[1..].iter().product();
        let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
        (0..count)
            .map(|_| rng.random_range(-bound..=bound))
            .collect()
    };
    var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    Ok(())
}

/// Sets the weights of `vars` from the prior in `path` (the run's first step): every weight of
/// the same name and shape is taken over; the patch embedding of a novel-view prior started
/// from an image prior takes the image channels and keeps its input-view channels at zero, so
/// that the new network computes exactly what the image prior computed. Weights the file lacks
/// (the pose MLP) keep their initialisation; anything else that differs is refused.
fn start_from(vars: &[(String, Var)], path: &Path) -> Result<()> {
    let saved = crate::checkpoints::load_tensors(path)?;
    for (name, var) in vars {
        let Some(weight) = saved.get(name) else {
            if name.starts_with("pose_embedder.") {
                continue;
            }
            return Err(EngineError::InvalidRequest(format!(
                "{} has no {name}: it is not a prior of this network's kind",
                path.display()
            )));
        };
        let weight = weight.to_dtype(DType::F32)?.to_device(var.device())?;
        let (want, have) = (var.dims(), weight.dims());
        if want == have {
            var.set(&weight)?;
        } else if name == "x_embedder.proj.weight"
            && want.len() == 4
            && have.len() == 4
            && (want[0], want[2], want[3]) == (have[0], have[2], have[3])
            && have[1] < want[1]
        {
            let extra = Tensor::zeros(
                (want[0], want[1] - have[1], want[2], want[3]),
                DType::F32,
                var.device(),
            )?;
            var.set(&Tensor::cat(&[&weight, &extra], 1)?)?;
        } else {
            return Err(EngineError::InvalidRequest(format!(
                "{}: {name} has shape {have:?} but this network's is {want:?} (another size of \
                 prior)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes the EMA prior (f16, original key names) and a `model.json` manifest with paths
/// relative to the run folder.
pub fn export(
    ema: &HashMap<String, Tensor>,
    settings: &TrainSettings,
    step: usize,
    run: &RunFolder,
) -> Result<()> {
    let half: HashMap<String, Tensor> = ema
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F16)?)))
        .collect::<Result<_>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "lumos-i2i".to_string()),
        ("step".to_string(), step.to_string()),
        (
            "config".to_string(),
            serde_json::to_string(&settings.prior).unwrap_or_default(),
        ),
    ]);
    let tmp = run.prior().with_extension("tmp");
    data::save_with_metadata(&half, &meta, &tmp)?;
    std::fs::rename(&tmp, run.prior()).map_err(|e| io_error(&run.prior(), e))?;
    let kind = if settings.is_novel_view() {
        "Lumos small multi-view"
    } else {
        "Lumos small"
    };
    let spec = ModelSpec {
        name: format!("{kind} (trained {step} steps)"),
        precision: Precision::F32,
        prior: ComponentSpec {
            path: PathBuf::from("prior.safetensors"),
            config: settings.prior.clone(),
        },
        encoder: settings.encoder.clone(),
        vae: settings.vae.clone(),
        guidance: None,
        object_fill: None,
    };
    let json = serde_json::to_string_pretty(&spec)
        .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
    std::fs::write(run.manifest(), json).map_err(|e| io_error(&run.manifest(), e))
}

/// Changes the learning rate of an existing run from its next step (a lower rate for the last
/// steps sharpens the samples); the new rate is saved in the run's settings. Returns the old.
pub fn change_learning_rate(run: &RunFolder, lr: f64) -> Result<f64> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(EngineError::InvalidRequest(format!(
            "the learning rate must be a positive number, not {lr}"
        )));
    }
    let mut settings = crate::checkpoints::read_config::<TrainSettings>(&run.settings())?;
    let old = settings.lr;
    settings.lr = lr;
    let json = serde_json::to_string_pretty(&settings)
        .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
    std::fs::write(run.settings(), json).map_err(|e| io_error(&run.settings(), e))?;
    Ok(old)
}

/// Drops the loss-log lines of steps after `saved_step`: a run stopped between saves logged steps
/// it will now redo, and the log should list each step once.
fn forget_unsaved_steps(log: &Path, saved_step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Ok(()); // no log yet
    };
    let step_of = |line: &str| line.split(',').next()?.trim().parse::<usize>().ok();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| step_of(line).is_none_or(|step| step <= saved_step))
        .collect();
    if kept.len() == text.lines().count() {
        return Ok(());
    }
    let mut out = kept.join("\n");
    out.push('\n');
    std::fs::write(log, out).map_err(|e| io_error(log, e))
}

/// Runs (or resumes) training until `until_step`, reporting progress and appending the loss log.
pub fn train(
    data_dir: &Path,
    run: &RunFolder,
    settings: TrainSettings,
    until_step: usize,
    device: &Device,
    report: &mut dyn FnMut(TrainEvent),
) -> Result<()> {
    let trainable = |settings: &TrainSettings| {
        let prior = &settings.prior;
        if prior.spatial_condition_grid > 0 {
            return Err(EngineError::InvalidRequest(
                "this trainer conditions on the global embedding only; priors with spatial \
                 condition tokens are trained by tools/gpu/train_prior.py --spatial-tokens"
                    .into(),
            ));
        }
        let posed = run.posed_views().exists() || multiview::is_posed_dataset(data_dir);
        if settings.is_novel_view() && !posed {
            return Err(EngineError::InvalidRequest(format!(
                "a novel-view prior (input view, pose) trains on posed multi-view data; {} \
                 holds none (make it with lumos render-dataset)",
                data_dir.display()
            )));
        }
        if posed && !settings.is_novel_view() {
            return Err(EngineError::InvalidRequest(format!(
                "{} holds posed multi-view data, which trains a novel-view prior, not an \
                 image prior",
                data_dir.display()
            )));
        }
        if settings.vae.is_some() && !settings.is_novel_view() {
            return Err(EngineError::InvalidRequest(
                "this trainer trains image priors on pixels; latent-space image priors are \
                 trained by tools/gpu/train_prior.py"
                    .into(),
            ));
        }
        Ok(())
    };
    // A run that exists goes on with its saved settings, whatever `settings` says.
    let settings = if run.settings().exists() {
        let saved = crate::checkpoints::read_config::<TrainSettings>(&run.settings())?;
        trainable(&saved)?;
        saved
    } else {
        trainable(&settings)?;
        std::fs::create_dir_all(&run.0).map_err(|e| io_error(&run.0, e))?;
        let json = serde_json::to_string_pretty(&settings)
            .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        std::fs::write(run.settings(), json).map_err(|e| io_error(&run.settings(), e))?;
        settings
    };
    let set = prepare_data(data_dir, run, &settings, device, report)?;
    let save_every = settings.save_every.max(1);
    let mut trainer = Trainer::new(settings, run, device)?;
    forget_unsaved_steps(&run.loss_log(), trainer.step())?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run.loss_log())
        .map_err(|e| io_error(&run.loss_log(), e))?;
    while trainer.step() < until_step {
        let loss = trainer.train_step(&set)?;
        if !loss.is_finite() {
            return Err(EngineError::InvalidRequest(format!(
                "the loss diverged at step {}",
                trainer.step()
            )));
        }
        let step = trainer.step();
        writeln!(log, "{step},{loss}").map_err(|e| io_error(&run.loss_log(), e))?;
        report(TrainEvent::Step {
            step,
            loss,
            lr: trainer.optimizer.learning_rate(),
        });
        if step % save_every == 0 || step == until_step {
            trainer.save(run)?;
            report(TrainEvent::Saved {
                step,
                path: run.prior(),
            });
        }
    }
    Ok(())
}
