//! Multi-view sets with a Zero123-family checkpoint (Zero123, Zero123-XL, Stable Zero123):
//! the input view prepared as the Zero123 demo does, then one view per camera, sampled as the
//! demo samples (ldm DDIM with η = 1 by default, classifier-free guidance with zeroed inputs).
//!
//! The demo's preparation (`gradio_new.preprocess_image`): the object's matte (alpha > 127,
//! or the border flood of [`super::multiview::flood_object_mask`] for opaque images) sets the
//! background to white, the matte's bounding box is cropped and shrunk to fit 200 × 200 (never
//! enlarged) with Pillow's own arithmetic (`crate::pillow`), and pasted on a 256 × 256 white
//! canvas at `((256 − w)/2, (256 − h)/2)`. The model then sees `x/255·2 − 1`, resized bilinearly without antialiasing when its
//! size is not 256 (the pinned torchvision's behaviour).

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use image::{GrayImage, RgbImage};

use super::multiview::{PreparedInput, SetOutput, flood_object_mask, report_views, view_seeds};
use super::{StepHook, StepReport};
use crate::camera::OrbitPose;
use crate::checkpoints::zero123::LoadedZero123;
use crate::error::{EngineError, Result};
use crate::pillow;
use crate::protocol::DeviceChoice;
use crate::sampling::ldm_ddim::{self, LdmDdimSchedule};

/// Side of the demo's canvas.
pub const CANVAS: u32 = 256;
/// Largest side of the object on it.
pub const OBJECT_SIDE: u32 = 200;
/// The demo's guidance scale.
pub const DEMO_GUIDANCE: f64 = 3.0;
/// The demo's DDIM η.
pub const DEMO_ETA: f64 = 1.0;

/// What to make.
#[derive(Clone, Debug)]
pub struct Zero123Request {
    /// The reference's pixels.
    pub image: Arc<RgbImage>,
    /// Its opacity, when it has transparent pixels.
    pub alpha: Option<Arc<GrayImage>>,
    /// Where the reference's camera is.
    pub input_pose: OrbitPose,
    /// The views to make.
    pub views: Vec<OrbitPose>,
    /// Requested DDIM steps (the demo runs `1000 / (1000 // steps)`, minus one).
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f64,
    /// DDIM η (1 in the demo: fresh noise at every step).
    pub eta: f64,
    /// Seed of view 0 (view `i` uses `seed + i` unless `shared_seed`).
    pub seed: u64,
    /// Every view from the same noise.
    pub shared_seed: bool,
    /// Cut the object out and centre it as the demo's default does; `false` is the demo's
    /// "preprocess" box unticked: the whole reference resized to the canvas and flattened
    /// onto white by its alpha ([`model_input_keeping_framing`]).
    pub recenter: bool,
    /// Where it runs.
    pub device: DeviceChoice,
}

/// The demo's preparation of a reference, at 256 × 256.
pub fn prepare_input(rgb: &RgbImage, alpha: Option<&GrayImage>) -> Result<PreparedInput> {
    let (w, h) = rgb.dimensions();
    let matte: GrayImage = match alpha.filter(|a| a.dimensions() == (w, h)) {
        Some(alpha) if alpha.pixels().any(|p| p.0[0] < 255) => alpha.clone(),
        _ => flood_object_mask(rgb),
    };
    let foreground = |x: u32, y: u32| matte.get_pixel(x, y).0[0] > 127;
    let Some((x0, y0, cw, ch)) = object_box(&matte) else {
        return Err(EngineError::InvalidRequest(
            "the reference shows no object: it is fully transparent or one flat colour".into(),
        ));
    };
    let white = image::Rgb([255, 255, 255]);
    let object = RgbImage::from_fn(cw, ch, |x, y| {
        if foreground(x0 + x, y0 + y) {
            *rgb.get_pixel(x0 + x, y0 + y)
        } else {
            white
        }
    });
    let mask = GrayImage::from_fn(cw, ch, |x, y| {
        image::Luma([if foreground(x0 + x, y0 + y) { 255 } else { 0 }])
    });
    let object = pillow::thumbnail(&object, OBJECT_SIDE);
    let (tw, th) = object.dimensions();
    let mask = if (tw, th) == (cw, ch) {
        mask
    } else {
        image::imageops::resize(&mask, tw, th, image::imageops::FilterType::Triangle)
    };
    let (ox, oy) = (i64::from((CANVAS - tw) / 2), i64::from((CANVAS - th) / 2));
    let mut image = RgbImage::from_pixel(CANVAS, CANVAS, white);
    let mut object_mask = GrayImage::new(CANVAS, CANVAS);
    image::imageops::replace(&mut image, &object, ox, oy);
    image::imageops::replace(&mut object_mask, &mask, ox, oy);
    Ok(PreparedInput { image, object_mask })
}

/// The demo's `preprocess=False` path: the reference resized to 256 × 256 as Pillow resizes
/// RGBA (premultiplied Lanczos), flattened onto white in f32 (`α·rgb + (1 − α)`), then to the
/// model's input `(1, 3, size, size)` in [−1, 1] like [`to_model_input`]. Also returns the
/// canvas and its alpha, for display and export.
pub fn model_input_keeping_framing(
    rgb: &RgbImage,
    alpha: Option<&GrayImage>,
    size: usize,
    device: &Device,
) -> Result<(Tensor, PreparedInput)> {
    let rgba = image::RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let a = alpha
            .filter(|a| a.dimensions() == rgb.dimensions())
            .map_or(255, |a| a.get_pixel(x, y).0[0]);
        image::Rgba([r, g, b, a])
    });
    let resized = pillow::resize_rgba(&rgba, CANVAS, CANVAS, pillow::Filter::Lanczos);
    let flat = flatten_on_white(&resized);
    let canvas = RgbImage::from_fn(CANVAS, CANVAS, |x, y| {
        let i = 3 * (y * CANVAS + x) as usize;
        image::Rgb([0, 1, 2].map(|c| (flat[i + c] * 255.0).round() as u8))
    });
    let object_mask = GrayImage::from_fn(CANVAS, CANVAS, |x, y| {
        image::Luma([resized.get_pixel(x, y).0[3]])
    });
    let input = Tensor::from_vec(
        flat.iter().map(|v| v * 2.0 - 1.0).collect::<Vec<f32>>(),
        (CANVAS as usize, CANVAS as usize, 3),
        &Device::Cpu,
    )?
    .permute((2, 0, 1))?
    .unsqueeze(0)?;
    let input = resize_bilinear(&input, size)?.to_device(device)?;
    Ok((
        input,
        PreparedInput {
            image: canvas,
            object_mask,
        },
    ))
}

/// `α·rgb + (1 − α)·1` of 8-bit RGBA in f32, row-major RGB.
pub fn flatten_on_white(rgba: &image::RgbaImage) -> Vec<f32> {
    rgba.pixels()
        .flat_map(|p| {
            let alpha = f32::from(p.0[3]) / 255.0;
            [0, 1, 2].map(|c| alpha * (f32::from(p.0[c]) / 255.0) + (1.0 - alpha) * 1.0)
        })
        .collect()
}

/// `cv2.boundingRect` of the matte's foreground (> 127): `(x, y, w, h)`, `None` when empty.
pub fn object_box(matte: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in matte.enumerate_pixels() {
        if p.0[0] > 127 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    (x0 != u32::MAX).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// The model's input view `(1, 3, size, size)` in [−1, 1] from the prepared 8-bit canvas:
/// `x/255·2 − 1`, then a bilinear resize without antialiasing (`align_corners=False`).
pub fn to_model_input(canvas: &RgbImage, size: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = (canvas.width() as usize, canvas.height() as usize);
    let values: Vec<f32> = canvas
        .as_raw()
        .iter()
        .map(|&v| f32::from(v) / 255.0 * 2.0 - 1.0)
        .collect();
    let input = Tensor::from_vec(values, (h, w, 3), &Device::Cpu)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?;
    Ok(resize_bilinear(&input, size)?.to_device(device)?)
}

/// torchvision's tensor `resize` of `(1, 3, h, w)` to `size` × `size` as the pinned version
/// does it: bilinear, `align_corners=False`, no antialiasing; f32 on the CPU.
fn resize_bilinear(input: &Tensor, size: usize) -> Result<Tensor> {
    let (_, c, h, w) = input.dims4()?;
    let src = input.flatten_all()?.to_vec1::<f32>()?;
    let rows = bilinear_taps(h, size);
    let cols = bilinear_taps(w, size);
    let mut out = Vec::with_capacity(c * size * size);
    for plane in src.chunks(h * w) {
        for &(y0, y1, ty) in &rows {
            for &(x0, x1, tx) in &cols {
                let top = plane[y0 * w + x0] * (1.0 - tx) + plane[y0 * w + x1] * tx;
                let bottom = plane[y1 * w + x0] * (1.0 - tx) + plane[y1 * w + x1] * tx;
                out.push(top * (1.0 - ty) + bottom * ty);
            }
        }
    }
    Ok(Tensor::from_vec(out, (1, c, size, size), &Device::Cpu)?)
}

/// torch's bilinear source pixels and weight, `align_corners=False`.
fn bilinear_taps(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let real = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            (i0, i1, real - i0 as f32)
        })
        .collect()
}

/// Sampler updates per view for `request` (the first DDIM timestep is dropped).
pub fn update_count(loaded: &LoadedZero123, request: &Zero123Request) -> Result<usize> {
    Ok(
        LdmDdimSchedule::new(&loaded.alphas_cumprod, request.steps, request.eta)?
            .updates(true)
            .len(),
    )
}

/// Makes the request's views, reporting steps through `hook` and the prepared input, then each
/// view, through `on_output` as soon as each is ready.
pub fn run(
    loaded: &LoadedZero123,
    request: &Zero123Request,
    hook: &mut StepHook<'_>,
    on_output: &mut dyn FnMut(SetOutput) -> Result<()>,
) -> Result<()> {
    if request.views.is_empty() {
        return Err(EngineError::InvalidRequest(
            "the orbit lists no views".into(),
        ));
    }
    let model = &loaded.model;
    let device = model.device().clone();
    let schedule = LdmDdimSchedule::new(&loaded.alphas_cumprod, request.steps, request.eta)?;
    let updates = schedule.updates(true);
    if updates.is_empty() {
        return Err(EngineError::InvalidRequest(
            "steps must be at least 2 (the first DDIM timestep is dropped)".into(),
        ));
    }
    // The demo samples at its canvas size (h = w = 256, 32 × 32 latents for SD's autoencoder).
    let size = CANVAS as usize;
    let (pixels, input) = if request.recenter {
        let input = prepare_input(&request.image, request.alpha.as_deref())?;
        (to_model_input(&input.image, size, &device)?, input)
    } else {
        model_input_keeping_framing(&request.image, request.alpha.as_deref(), size, &device)?
    };
    let input_latent = model.input_latent(&pixels)?;
    on_output(SetOutput::Input(input))?;
    let (c, h, w) = (
        model.unet.config().out_channels,
        input_latent.dim(2)?,
        input_latent.dim(3)?,
    );

    let total = request.views.len();
    let mut start = 0;
    while start < total {
        let len = (total - start).min(super::max_batch(request.device));
        let poses = &request.views[start..start + len];
        let cameras: Vec<f32> = poses
            .iter()
            .flat_map(|p| loaded.camera.embedding(p, &request.input_pose))
            .collect();
        let cameras = Tensor::from_vec(cameras, (len, 4), &device)?;
        let condition = model.condition(&pixels.repeat((len, 1, 1, 1))?, &cameras)?;
        let view_latent = input_latent.repeat((len, 1, 1, 1))?;
        let seeds = view_seeds(start..start + len, request.seed, request.shared_seed);
        let draw = |step: u64| -> Result<Tensor> {
            let noise = seeds
                .iter()
                .map(|&seed| {
                    crate::noise::gaussian(
                        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        &[1, c, h, w],
                        &device,
                    )
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::cat(&noise, 0)?)
        };
        let mut x = draw(0)?;
        let (zero_latent, zero_context) =
            (view_latent.zeros_like()?, condition.context.zeros_like()?);
        for (n, &(index, timestep)) in updates.iter().enumerate() {
            let eps = if request.guidance == 1.0 {
                model.predict_noise(
                    &x,
                    &vec![timestep as f32; len],
                    &view_latent,
                    &condition.context,
                )?
            } else {
                let both = model.predict_noise(
                    &Tensor::cat(&[&x, &x], 0)?,
                    &vec![timestep as f32; 2 * len],
                    &Tensor::cat(&[&zero_latent, &view_latent], 0)?,
                    &Tensor::cat(&[&zero_context, &condition.context], 0)?,
                )?;
                let (uncond, cond) = (both.narrow(0, 0, len)?, both.narrow(0, len, len)?);
                (&uncond + ((&cond - &uncond)? * request.guidance)?)?
            };
            let noise = if schedule.sigmas[index] != 0.0 {
                Some(draw(n as u64 + 1)?)
            } else {
                None
            };
            let (x_prev, pred_x0) =
                ldm_ddim::update(&x, &eps, schedule.scalars(index), noise.as_ref())?;
            x = x_prev;
            hook(StepReport::Step {
                step: n + 1,
                steps: updates.len(),
                // The predicted clean latent, in the SD autoencoder's scaled units as the
                // Lumos previews are.
                preview: Some(super::latent_preview(&pred_x0)?),
            })?;
        }
        let decoded = model.decode(&x)?.to_dtype(DType::F32)?;
        report_views(start, poses, &seeds, super::to_images(&decoded)?, on_output)?;
        start += len;
    }
    Ok(())
}
