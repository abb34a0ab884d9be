//! Training data: a folder of images, resized once to the prior's size, and for each image the
//! encoder embeddings of a few views (the clean image and augmented crops), computed once and
//! cached next to the checkpoints. The Lumos recipe conditions the prior on the embedding of an
//! augmented view of the same image; precomputing a handful of views per image keeps the frozen
//! encoder out of the training loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::models::ImageEncoder;

/// Image file extensions the trainer reads.
const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "bmp"];

/// Images and their view embeddings, in memory.
pub struct TrainingSet {
    /// Source files (relative to the data folder), sorted.
    pub files: Vec<String>,
    /// Images `(n, 3, s, s)` as u8.
    pub images: Tensor,
    /// L2-normalised embeddings `(n, views, c)`; view 0 is the clean image.
    pub embeddings: Tensor,
}

impl TrainingSet {
    /// Indices of the images trained on: all but the held-out split of [`crate::eval`].
    pub fn training_indices(&self) -> Vec<u32> {
        (0..self.files.len() as u32)
            .filter(|&i| !crate::eval::is_held_out(&self.files[i as usize]))
            .collect()
    }
}

/// Every image file under `dir`, sorted (relative paths).
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| EngineError::Io {
            path: folder.clone(),
            source: e,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path.strip_prefix(dir).unwrap_or(&path).to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// One random view for the condition: a crop of 55–100% of the area (aspect 3:4–4:3), a
/// horizontal flip half of the time and a ±20% brightness/contrast/saturation jitter, resized to
/// `size`.
pub fn augmented_view(image: &RgbImage, size: u32, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let area = rng.random_range(0.55f32..=1.0) * w * h;
    let aspect = rng.random_range((0.75f32).ln()..=(4.0f32 / 3.0).ln()).exp();
    let cw = ((area * aspect).sqrt().round() as u32).clamp(8, image.width());
    let ch = ((area / aspect).sqrt().round() as u32).clamp(8, image.height());
    let x = rng.random_range(0..=image.width() - cw);
    let y = rng.random_range(0..=image.height() - ch);
    let crop = image::imageops::crop_imm(image, x, y, cw, ch).to_image();
    let mut view =
        image::imageops::resize(&crop, size, size, image::imageops::FilterType::Triangle);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut view);
    }
    let brightness = rng.random_range(0.8f32..=1.2);
    let contrast = rng.random_range(0.8f32..=1.2);
    let saturation = rng.random_range(0.8f32..=1.2);
    let mean = {
        let sum: f32 = view.pixels().map(|p| luma(p.0)).sum();
        sum / (size * size) as f32
    };
    for p in view.pixels_mut() {
        let rgb = p.0.map(|v| f32::from(v) * brightness);
        let grey = luma(rgb.map(|v| v.clamp(0.0, 255.0) as u8));
        for (c, v) in rgb.iter().enumerate() {
            let saturated = grey + (v - grey) * saturation;
            let contrasted = mean + (saturated - mean) * contrast;
            p.0[c] = contrasted.round().clamp(0.0, 255.0) as u8;
        }
    }
    view
}

fn luma(p: [u8; 3]) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

/// Decodes and resizes every image in `dir` to `size × size` (short side, centre crop). Files
/// that fail to decode are skipped and counted.
pub fn load_images(dir: &Path, size: u32) -> Result<(Vec<String>, Vec<RgbImage>, usize)> {
    let files = list_images(dir)?;
    let decoded: Vec<Option<(String, RgbImage)>> = files
        .par_iter()
        .map(|rel| {
            let image = crate::imageio::load_image(&dir.join(rel)).ok()?;
            let square = crate::preprocess::resize_and_crop(&image, size, None);
            Some((rel.to_string_lossy().into_owned(), square))
        })
        .collect();
    let skipped = decoded.iter().filter(|d| d.is_none()).count();
    let (names, images) = decoded.into_iter().flatten().unzip();
    Ok((names, images, skipped))
}

/// Embeds `views` views of every image (view 0 clean, the rest augmented with a per-image seed),
/// in batches; `progress` gets the number of images done.
pub fn embed_views(
    encoder: &ImageEncoder,
    images: &[RgbImage],
    views: usize,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<Tensor> {
    let size = encoder.image_size() as u32;
    let mut all = Vec::with_capacity(images.len());
    for (chunk_index, chunk) in images.chunks(32).enumerate() {
        let pixels = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, image)| {
                let mut rng = ChaCha8Rng::seed_from_u64((chunk_index * 32 + i) as u64);
                (0..views)
                    .map(|v| {
                        let view = if v == 0 {
                            crate::preprocess::resize_and_crop(image, size, None)
                        } else {
                            augmented_view(image, size, &mut rng)
                        };
                        crate::preprocess::normalize(&view, device)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let features = encoder.features(&Tensor::cat(&pixels, 0)?)?;
        let norm = features
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let normalised = features.broadcast_div(&norm)?;
        let (_, c) = normalised.dims2()?;
        all.push(
            normalised
                .reshape((chunk.len(), views, c))?
                .to_dtype(DType::F16)?,
        );
        progress(chunk.len());
    }
    Ok(Tensor::cat(&all, 0)?)
}

/// Images as a `(n, 3, s, s)` u8 tensor.
pub fn images_tensor(images: &[RgbImage], device: &Device) -> Result<Tensor> {
    let Some(first) = images.first() else {
        return Err(EngineError::InvalidRequest(
            "the data folder has no readable images".into(),
        ));
    };
    let s = first.width() as usize;
    let mut data = Vec::with_capacity(images.len() * 3 * s * s);
    for image in images {
        for c in 0..3 {
            data.extend(image.pixels().map(|p| p[c]));
        }
    }
    Ok(Tensor::from_vec(data, (images.len(), 3, s, s), device)?)
}

/// Saves the set (images, embeddings and the file list) to one safetensors file.
pub fn save(set: &TrainingSet, path: &Path) -> Result<()> {
    let tensors = HashMap::from([
        ("images".to_string(), set.images.clone()),
        ("embeddings".to_string(), set.embeddings.clone()),
    ]);
    let files = serde_json::to_string(&set.files)
        .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
    let meta = HashMap::from([("files".to_string(), files)]);
    save_with_metadata(&tensors, &meta, path)
}

/// Writes tensors (u8, f16, else f32) and string metadata to a safetensors file.
pub fn save_with_metadata(
    tensors: &HashMap<String, Tensor>,
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<()> {
    let data: Vec<(String, Vec<u8>, safetensors::Dtype, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let dtype = match t.dtype() {
                DType::U8 => safetensors::Dtype::U8,
                DType::F16 => safetensors::Dtype::F16,
                _ => safetensors::Dtype::F32,
            };
            let t = if dtype == safetensors::Dtype::F32 {
                t.to_dtype(DType::F32)?
            } else {
                t.clone()
            };
            let bytes = tensor_bytes(&t)?;
            Ok((name.clone(), bytes, dtype, t.dims().to_vec()))
        })
        .collect::<Result<_>>()?;
    let views = data
        .iter()
        .map(|(name, bytes, dtype, shape)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize_to_file(views, Some(meta.clone()), path).map_err(|e| {
        EngineError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        }
    })
}

fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::U8 => flat.to_vec1::<u8>()?,
        DType::F16 => flat
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        _ => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    })
}

/// Reads a file written by [`save_with_metadata`]: its metadata entry `key` parsed as JSON
/// (`None` when missing or unreadable) and its tensors.
pub fn load_with_metadata<T: serde::de::DeserializeOwned>(
    path: &Path,
    key: &str,
    device: &Device,
) -> Result<(Option<T>, HashMap<String, Tensor>)> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| EngineError::InvalidRequest(format!("{}: {e}", path.display())))?;
    let entry = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(|text| serde_json::from_str(text).ok());
    Ok((
        entry,
        candle_core::safetensors::load_buffer(&bytes, device)?,
    ))
}

/// Loads a set written by [`save`].
pub fn load(path: &Path, device: &Device) -> Result<TrainingSet> {
    let bad = |e: String| EngineError::InvalidRequest(format!("{}: {e}", path.display()));
    let (files, tensors) = load_with_metadata(path, "files", device)?;
    let files = files.ok_or_else(|| bad("no file list".into()))?;
    let get = |name: &str| {
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| bad(format!("no {name}")))
    };
    Ok(TrainingSet {
        files,
        images: get("images")?,
        embeddings: get("embeddings")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augmented_views_have_the_size_asked_for_and_differ() {
        let image = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 128]));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = augmented_view(&image, 96, &mut rng);
        let b = augmented_view(&image, 96, &mut rng);
        assert_eq!(a.dimensions(), (96, 96));
        assert_ne!(a.as_raw(), b.as_raw());
    }
}
