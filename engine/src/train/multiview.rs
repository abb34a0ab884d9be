//! Training data for novel-view priors: a `lumos render-dataset` folder (objects × views with
//! their cameras), its train split brought once into the prior's space and cached next to the
//! checkpoints, as `pipelines::multiview` brings views at inference: each view flattened over
//! white and resized by [`as_rendered`], then encoded by the model's autoencoder (or kept as
//! pixels for a pixel-space prior), and embedded by the frozen encoder as an input view is.
//!
//! A step draws an object, an input view and another of its views as the target; the
//! condition is the input view's embedding plus the relative pose (the Lumos NVS design),
//! and the input view's latent is concatenated to the noisy target's channels.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Batch, TrainEvent, TrainSettings, data};
use crate::camera::OrbitPose;
use crate::error::{EngineError, Result};
use crate::models::{AutoencoderKl, ImageEncoder};
use crate::pipelines::multiview::as_rendered;
use crate::synthetic::{DatasetObject, read_view};

/// The train split of a posed dataset, in the prior's space.
pub struct PosedViews {
    /// Object folder names, sorted.
    pub objects: Vec<String>,
    /// `(n, v, c, h, w)`: u8 pixels for a pixel-space prior, f16 scaled latents for a latent
    /// one.
    pub views: Tensor,
    /// `(n, v, caption)` f16: each view's L2-normalised encoder embedding.
    pub embeddings: Tensor,
    /// `(n, v, 3)` f32: elevation (°), azimuth (°) and radius of each view's camera.
    pub poses: Tensor,
}

/// Whether `dir` holds a posed multi-view dataset (object folders with an `object.json`), as
/// `lumos render-dataset` writes.
pub fn is_posed_dataset(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().join("object.json").is_file())
    })
}

/// The train objects of `dir` with at least two views, sorted by name; all must have the same
/// number of views.
fn train_objects(dir: &Path) -> Result<Vec<DatasetObject>> {
    let entries = std::fs::read_dir(dir).map_err(|source| EngineError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut objects = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("object.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not an object folder, or one still being rendered
        };
        let object: DatasetObject = serde_json::from_str(&text).map_err(|e| {
            EngineError::InvalidRequest(format!(
                "{} is not an object description: {e}",
                path.display()
            ))
        })?;
        if object.split == "train" && object.views.len() >= 2 {
            objects.push(object);
        }
    }
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let Some(first) = objects.first() else {
        return Err(EngineError::InvalidRequest(format!(
            "{} has no train objects with two or more views (make them with lumos \
             render-dataset)",
            dir.display()
        )));
    };
    let views = first.views.len();
    if let Some(odd) = objects.iter().find(|o| o.views.len() != views) {
        return Err(EngineError::InvalidRequest(format!(
            "{} has {} views but {} has {views}: render every object with the same --views",
            odd.name,
            odd.views.len(),
            first.name
        )));
    }
    Ok(objects)
}

/// Reads the train split of `dir`, brings every view into the prior's space and embeds it.
pub fn prepare(
    dir: &Path,
    settings: &TrainSettings,
    device: &Device,
    report: &mut dyn FnMut(TrainEvent),
) -> Result<PosedViews> {
    let objects = train_objects(dir)?;
    let encoder =
        crate::checkpoints::build_model(&settings.encoder.path, DType::F32, device, |vb| {
            ImageEncoder::load(&settings.encoder.config, vb)
        })?;
    let vae = match &settings.vae {
        Some(vae) => Some(crate::checkpoints::build_model(
            &crate::checkpoints::vae_weights_file(&vae.path),
            DType::F32,
            device,
            |vb| AutoencoderKl::load(&vae.config, vb),
        )?),
        None => None,
    };
    let size = settings.prior.input_size
        * vae
            .as_ref()
            .map_or(1, |vae| vae.config().downsampling_factor());
    let (mut views, mut embeddings, mut poses) = (Vec::new(), Vec::new(), Vec::new());
    for (done, object) in objects.iter().enumerate() {
        let folder = dir.join(&object.name);
        let mut rendered = Vec::with_capacity(object.views.len());
        for view in &object.views {
            let (rgb, alpha) = read_view(&folder.join(&view.image))?;
            rendered.push(as_rendered(&rgb, Some(&alpha), size as u32).image);
            poses.extend([
                view.pose.elevation_deg as f32,
                view.pose.azimuth_deg as f32,
                view.pose.radius as f32,
            ]);
        }
        let pixels = data::images_tensor(&rendered, device)?;
        views.push(match &vae {
            Some(vae) => {
                let unit = ((pixels.to_dtype(DType::F32)? / 127.5)? - 1.0)?;
                let latents = (vae.encode(&unit)?.mean * vae.config().scaling_factor)?;
                latents.to_dtype(DType::F16)?.unsqueeze(0)?
            }
            None => pixels.unsqueeze(0)?,
        });
        embeddings.push(
            data::embed_views(&encoder, &rendered, 1, device, &mut |_| {})?
                .squeeze(1)?
                .unsqueeze(0)?,
        );
        report(TrainEvent::Preparing {
            what: "encoding views",
            done: done + 1,
            total: objects.len(),
        });
    }
    let (n, v) = (objects.len(), objects[0].views.len());
    Ok(PosedViews {
        objects: objects.into_iter().map(|o| o.name).collect(),
        views: Tensor::cat(&views, 0)?,
        embeddings: Tensor::cat(&embeddings, 0)?,
        poses: Tensor::from_vec(poses, (n, v, 3), device)?,
    })
}

/// Saves the prepared views to one safetensors file.
pub fn save(set: &PosedViews, path: &Path) -> Result<()> {
    let tensors = HashMap::from([
        ("views".to_string(), set.views.clone()),
        ("embeddings".to_string(), set.embeddings.clone()),
        ("poses".to_string(), set.poses.clone()),
    ]);
    let objects = serde_json::to_string(&set.objects)
        .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
    data::save_with_metadata(
        &tensors,
        &HashMap::from([("objects".to_string(), objects)]),
        path,
    )
}

/// Loads views saved by [`save`].
pub fn load(path: &Path, device: &Device) -> Result<PosedViews> {
    let stale = |why: String| {
        EngineError::InvalidRequest(format!(
            "{} is not a prepared multi-view set ({why}): delete it to prepare the data again",
            path.display()
        ))
    };
    let (objects, mut tensors) = data::load_with_metadata::<Vec<String>>(path, "objects", device)?;
    let objects = objects.ok_or_else(|| stale("no object list".into()))?;
    let mut take = |name: &str| {
        tensors
            .remove(name)
            .ok_or_else(|| stale(format!("no {name}")))
    };
    Ok(PosedViews {
        objects,
        views: take("views")?,
        embeddings: take("embeddings")?,
        poses: take("poses")?,
    })
}

/// A batch of (input view, target view) pairs of the same objects, the condition dropped to
/// the null embedding with probability `condition_dropout`.
pub(super) fn draw_batch(
    set: &PosedViews,
    batch: usize,
    condition_dropout: f64,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Batch> {
    let (n, v) = (set.views.dim(0)?, set.views.dim(1)?);
    let mut pairs_in = Vec::with_capacity(batch);
    let mut pairs_out = Vec::with_capacity(batch);
    let keep: Vec<f32> = (0..batch)
        .map(|_| {
            let object = rng.random_range(0..n);
            let source = rng.random_range(0..v);
            let target = (source + rng.random_range(1..v)) % v;
            pairs_in.push((object * v + source) as u32);
            pairs_out.push((object * v + target) as u32);
            if rng.random_bool(condition_dropout) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let cameras = set.poses.flatten_to(1)?;
    let cameras_of = |indices: &[u32]| -> Result<Vec<OrbitPose>> {
        let rows = cameras
            .index_select(&Tensor::new(indices, device)?, 0)?
            .to_vec2::<f32>()?;
        Ok(rows
            .iter()
            .map(|row| OrbitPose {
                elevation_deg: f64::from(row[0]),
                azimuth_deg: f64::from(row[1]),
                radius: f64::from(row[2]),
            })
            .collect())
    };
    let pose: Vec<f32> = cameras_of(&pairs_out)?
        .iter()
        .zip(&cameras_of(&pairs_in)?)
        .flat_map(|(target, source)| target.relative_to(source))
        .collect();
    let flat = set.views.flatten_to(1)?;
    let in_model_space = |indices: &[u32]| -> Result<Tensor> {
        let picked = flat
            .index_select(&Tensor::new(indices, device)?, 0)?
            .to_dtype(DType::F32)?;
        Ok(if set.views.dtype() == DType::U8 {
            ((picked / 127.5)? - 1.0)?
        } else {
            picked
        })
    };
    let c = set.embeddings.dim(2)?;
    let condition = set
        .embeddings
        .flatten_to(1)?
        .index_select(&Tensor::new(pairs_in.as_slice(), device)?, 0)?
        .to_dtype(DType::F32)?
        .reshape((batch, 1, 1, c))?;
    Ok(Batch {
        x0: in_model_space(&pairs_out)?,
        condition,
        keep,
        novel_view: Some((
            in_model_space(&pairs_in)?,
            Tensor::from_vec(pose, (batch, 4), device)?,
        )),
    })
}
