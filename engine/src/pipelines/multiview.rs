//! Multi-view sets: views of the object in one reference from other cameras on an orbit
//! around it, with a novel-view prior (the Lumos NVS design: the input view's latent as extra
//! input channels, the reference embedding plus an MLP of the relative pose as the condition).
//!
//! The reference is first brought to what novel-view models are trained on, as the Zero123
//! demo does: the object alone on white, centred, its longer side 80 % of the view, or the
//! share the model's manifest names (`object_fill`). The object is cut out by the reference's
//! alpha when it has any, else by a flood from the border over pixels of the border's colour
//! (icons, renders and product shots on a plain background).
//!
//! Under classifier-free guidance the unconditional branch keeps the input view and the pose
//! and drops only the reference embedding (the learned null embedding takes its place): the
//! view must stay the input's object; guidance strengthens its identity.
//!
//! Camera conventions and exports: [`crate::camera`].

use std::collections::VecDeque;

use candle_core::{DType, Tensor};
use image::{GrayImage, RgbImage};

use super::{LoadedModel, StepHook};
use crate::camera::OrbitPose;
use crate::error::{EngineError, Result};
use crate::models::LumosI2I;
use crate::protocol::{DeviceChoice, MixSettings, Mode, ReferenceImage, SamplerSettings};
use crate::sampling::NoisePredictor;

/// Share of the view's side the object's longer side fills when a model's manifest does not
/// say (`ModelSpec::object_fill`): the Zero123 demo's framing.
pub const OBJECT_FILL: f32 = 0.8;

/// The share of the view `spec`'s model wants a reference's object to fill.
pub fn object_fill(spec: &crate::protocol::ModelSpec) -> f32 {
    spec.object_fill.unwrap_or(OBJECT_FILL)
}

/// Largest per-channel difference from the border's colour that still counts as background.
const BACKGROUND_TOLERANCE: u8 = 30;
/// Alpha at or above which a pixel belongs to the object.
const OPAQUE_ALPHA: u8 = 128;

/// What a multi-view pipeline hands out as soon as it is ready: the input view as the model
/// sees it first, before any sampling (so that a set cancelled or failed after some views still
/// has its frame 0 and can be kept), then each view as its batch is done.
#[derive(Clone, Debug)]
pub enum SetOutput {
    /// The set's frame 0.
    Input(PreparedInput),
    /// One generated view.
    View(View),
}

/// The input view as the model sees it.
#[derive(Clone, Debug)]
pub struct PreparedInput {
    /// The object on white, centred, at the model's size.
    pub image: RgbImage,
    /// Where the object is (255) at the same size: the views' alpha when exported with one.
    pub object_mask: GrayImage,
}

/// Cuts the object out of `rgb` (by `alpha` when it has transparent pixels, else by a flood
/// from the border), centres it on white and scales it so that its longer side fills `fill`
/// of a `size` × `size` view.
pub fn prepare_input(
    rgb: &RgbImage,
    alpha: Option<&GrayImage>,
    size: u32,
    fill: f32,
) -> Result<PreparedInput> {
    let (w, h) = rgb.dimensions();
    let coverage: GrayImage =
        match alpha.filter(|a| a.dimensions() == (w, h) && a.pixels().any(|p| p.0[0] < 255)) {
            Some(alpha) => alpha.clone(),
            None => flood_object_mask(rgb),
        };
    let recentring = Recentring::of(&coverage, size, fill).ok_or_else(|| {
        EngineError::InvalidRequest(
            "the reference shows no object: it is fully transparent or one flat colour".into(),
        )
    })?;
    Ok(recentring.apply(rgb, &coverage))
}

/// The move [`prepare_input`] gives a reference: its pixels scaled by `scale`, then shifted
/// by `offset`, so that the object's bounding box lands centred in a `size` × `size` view
/// with its longer side filling the given share of it. Kept apart so that the true views of a
/// rendered object can be moved as its input view was (`lumos eval-multiview --recenter`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recentring {
    scale: f32,
    offset: (f32, f32),
    size: u32,
}

impl Recentring {
    /// The move that centres the solid pixels of `coverage` (alpha ≥ 128) in a `size` px
    /// view at `fill` of its side; `None` when no pixel is solid.
    pub fn of(coverage: &GrayImage, size: u32, fill: f32) -> Option<Self> {
        let (x0, y0, x1, y1) = solid_bounds(coverage)?;
        let longer = (x1 - x0 + 1).max(y1 - y0 + 1) as f32;
        let scale = fill * size as f32 / longer;
        let centre = |a: u32, b: u32| (a + b + 1) as f32 / 2.0;
        let half = size as f32 / 2.0;
        Some(Self {
            scale,
            offset: (half - scale * centre(x0, x1), half - scale * centre(y0, y1)),
            size,
        })
    }

    /// `rgb` flattened onto white by `coverage` (255 = opaque) and moved: the view and where
    /// the object is in it. Only the source pixels that land in the view are resampled.
    pub fn apply(&self, rgb: &RgbImage, coverage: &GrayImage) -> PreparedInput {
        let size = self.size;
        let mut image = RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
        let mut object_mask = GrayImage::new(size, size);
        let (w, h) = rgb.dimensions();
        let first = |offset: f32| ((-offset / self.scale).floor().max(0.0)) as u32;
        let end = |offset: f32, extent: u32| {
            ((size as f32 - offset) / self.scale)
                .ceil()
                .clamp(0.0, extent as f32) as u32
        };
        let (sx0, sy0) = (first(self.offset.0), first(self.offset.1));
        let (sx1, sy1) = (end(self.offset.0, w), end(self.offset.1, h));
        if sx1 > sx0 && sy1 > sy0 && coverage.dimensions() == (w, h) {
            let (cw, ch) = (sx1 - sx0, sy1 - sy0);
            let mask = image::imageops::crop_imm(coverage, sx0, sy0, cw, ch).to_image();
            let rgb = image::imageops::crop_imm(rgb, sx0, sy0, cw, ch).to_image();
            let object = over_white(&rgb, &mask);
            let scaled = |n: u32| ((n as f32 * self.scale).round() as u32).max(1);
            let (dw, dh) = (scaled(cw), scaled(ch));
            let filter = image::imageops::FilterType::Lanczos3;
            let (dx, dy) = (
                (self.offset.0 + self.scale * sx0 as f32).round() as i64,
                (self.offset.1 + self.scale * sy0 as f32).round() as i64,
            );
            image::imageops::replace(
                &mut image,
                &image::imageops::resize(&object, dw, dh, filter),
                dx,
                dy,
            );
            image::imageops::replace(
                &mut object_mask,
                &image::imageops::resize(&mask, dw, dh, filter),
                dx,
                dy,
            );
        }
        PreparedInput { image, object_mask }
    }
}

/// The bounding box `(x0, y0, x1, y1)`, inclusive, of `coverage`'s solid pixels.
fn solid_bounds(coverage: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in coverage.enumerate_pixels() {
        if p.0[0] >= OPAQUE_ALPHA {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    (x0 != u32::MAX).then_some((x0, y0, x1, y1))
}

/// `rgb` composited over white by `coverage` (255 = opaque).
fn over_white(rgb: &RgbImage, coverage: &GrayImage) -> RgbImage {
    RgbImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let a = f32::from(coverage.get_pixel(x, y).0[0]) / 255.0;
        image::Rgb(
            rgb.get_pixel(x, y)
                .0
                .map(|c| (f32::from(c) * a + 255.0 * (1.0 - a)).round() as u8),
        )
    })
}

/// A rendered view on white at `size`, its framing kept.
pub fn as_rendered(rgb: &RgbImage, alpha: Option<&GrayImage>, size: u32) -> PreparedInput {
    let (w, h) = rgb.dimensions();
    let coverage = match alpha.filter(|a| a.dimensions() == (w, h)) {
        Some(alpha) => alpha.clone(),
        None => flood_object_mask(rgb),
    };
    let flat = over_white(rgb, &coverage);
    let filter = image::imageops::FilterType::Triangle;
    PreparedInput {
        image: image::imageops::resize(&flat, size, size, filter),
        object_mask: image::imageops::resize(&coverage, size, size, filter),
    }
}

/// 255 where the object is: everything but the pixels connected to the border that are
/// within [`BACKGROUND_TOLERANCE`] of the border's median colour.
pub fn flood_object_mask(rgb: &RgbImage) -> GrayImage {
    let (w, h) = rgb.dimensions();
    let mut border: Vec<[u8; 3]> = Vec::new();
    for x in 0..w {
        border.push(rgb.get_pixel(x, 0).0);
        border.push(rgb.get_pixel(x, h - 1).0);
    }
    for y in 0..h {
        border.push(rgb.get_pixel(0, y).0);
        border.push(rgb.get_pixel(w - 1, y).0);
    }
    let median = |c: usize| {
        let mut values: Vec<u8> = border.iter().map(|p| p[c]).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let background = [median(0), median(1), median(2)];
    let is_background = |x: u32, y: u32| {
        let p = rgb.get_pixel(x, y).0;
        (0..3).all(|c| p[c].abs_diff(background[c]) <= BACKGROUND_TOLERANCE)
    };
    let mut mask = GrayImage::from_pixel(w, h, image::Luma([255]));
    let mut queue = VecDeque::new();
    let visit = |x: u32, y: u32, mask: &mut GrayImage, queue: &mut VecDeque<(u32, u32)>| {
        if mask.get_pixel(x, y).0[0] == 255 && is_background(x, y) {
            mask.put_pixel(x, y, image::Luma([0]));
            queue.push_back((x, y));
        }
    };
    for x in 0..w {
        visit(x, 0, &mut mask, &mut queue);
        visit(x, h - 1, &mut mask, &mut queue);
    }
    for y in 0..h {
        visit(0, y, &mut mask, &mut queue);
        visit(w - 1, y, &mut mask, &mut queue);
    }
    while let Some((x, y)) = queue.pop_front() {
        if x > 0 {
            visit(x - 1, y, &mut mask, &mut queue);
        }
        if x + 1 < w {
            visit(x + 1, y, &mut mask, &mut queue);
        }
        if y > 0 {
            visit(x, y - 1, &mut mask, &mut queue);
        }
        if y + 1 < h {
            visit(x, y + 1, &mut mask, &mut queue);
        }
    }
    mask
}

/// A multi-view job.
#[derive(Clone, Debug)]
pub struct MultiviewRequest {
    /// Display name of the reference.
    pub name: String,
    /// The reference's pixels.
    pub image: std::sync::Arc<RgbImage>,
    /// Its opacity, when it has transparent pixels.
    pub alpha: Option<std::sync::Arc<GrayImage>>,
    /// Where the reference's camera is (azimuth 0 by convention).
    pub input_pose: OrbitPose,
    /// The views to make.
    pub views: Vec<OrbitPose>,
    /// Steps, guidance, solver and seed (view `i` uses `seed + i` unless `shared_seed`).
    pub settings: SamplerSettings,
    /// Every view from the same noise.
    pub shared_seed: bool,
    /// Cut the object out and centre it (a user's reference); `false` keeps the framing of a
    /// view rendered with the model's own cameras (evaluation against true views), only
    /// flattening it onto white and resizing it.
    pub recenter: bool,
    /// Where it runs.
    pub device: DeviceChoice,
}

/// One finished view.
#[derive(Clone, Debug)]
pub struct View {
    /// Position in the request's list of views.
    pub index: usize,
    /// Its camera.
    pub pose: OrbitPose,
    /// Its seed.
    pub seed: u64,
    /// The image.
    pub image: RgbImage,
}

/// The novel-view prior with the input view concatenated to its input and the posed
/// conditions.
struct NovelViewGuidance<'a> {
    model: &'a LumosI2I,
    input_view: Tensor,
    condition: Tensor,
    uncondition: Tensor,
    scale: f64,
}

impl NoisePredictor for NovelViewGuidance<'_> {
    fn predict_noise(&mut self, x: &Tensor, net_t: f32) -> Result<Tensor> {
        let b = x.dim(0)?;
        let view = self.input_view.to_dtype(x.dtype())?;
        let x_in = Tensor::cat(&[x, &view], 1)?;
        if self.scale == 1.0 {
            return Ok(self
                .model
                .forward_eps(&x_in, &vec![net_t; b], &self.condition)?
                .to_dtype(x.dtype())?);
        }
        let both = Tensor::cat(&[&x_in, &x_in], 0)?;
        let dtype = self.model.dtype();
        let y = Tensor::cat(
            &[
                &self.uncondition.to_dtype(dtype)?,
                &self.condition.to_dtype(dtype)?,
            ],
            0,
        )?;
        let eps = self
            .model
            .forward_eps(&both, &vec![net_t; 2 * b], &y)?
            .to_dtype(x.dtype())?;
        let (uncond, cond) = (eps.narrow(0, 0, b)?, eps.narrow(0, b, b)?);
        Ok((&uncond + ((&cond - &uncond)? * self.scale)?)?)
    }
}

/// Makes the request's views, reporting steps through `hook` and the prepared input, then each
/// view, through `on_output` as soon as each is ready.
pub fn run(
    model: &LoadedModel,
    request: &MultiviewRequest,
    hook: &mut StepHook<'_>,
    on_output: &mut dyn FnMut(SetOutput) -> Result<()>,
) -> Result<()> {
    if !model.is_novel_view() {
        return Err(EngineError::InvalidRequest(format!(
            "{} makes images from references, not views from other cameras: choose a \
             multi-view model",
            model.spec.name
        )));
    }
    let config = model.prior.config();
    if !config.pose_condition || config.input_view_channels != config.in_channels {
        return Err(EngineError::InvalidRequest(format!(
            "{} takes no camera pose or an input view of another shape; it cannot make orbit \
             views",
            model.spec.name
        )));
    }
    if request.views.is_empty() {
        return Err(EngineError::InvalidRequest(
            "the orbit lists no views".into(),
        ));
    }
    if request.settings.steps == 0 {
        return Err(EngineError::InvalidRequest(
            "steps must be at least 1".into(),
        ));
    }
    let size = model.image_size_px() as u32;
    let input = if request.recenter {
        let fill = object_fill(&model.spec);
        prepare_input(&request.image, request.alpha.as_deref(), size, fill)?
    } else {
        as_rendered(&request.image, request.alpha.as_deref(), size)
    };

    // The condition: the prepared view's embedding, planned as a one-reference variation.
    let reference = ReferenceImage {
        name: request.name.clone(),
        image: std::sync::Arc::new(input.image.clone()),
        weight: 1.0,
        crop: None,
    };
    let embeddings = super::embed_references(model, std::slice::from_ref(&reference))?;
    let grid = config.spatial_condition_grid;
    let tokens = 1 + grid * grid;
    let mode = Mode::Variations { count: 1 };
    let plan = super::conditions::plan(&embeddings, tokens, &[1.0], &mode, MixSettings::default())?;
    let condition = plan
        .conditions
        .narrow(0, 0, 1)?
        .reshape((1, 1, tokens, ()))?;

    let pixels = super::to_model_input(&input.image, &model.device)?;
    let input_latent = model.encode_images(&pixels)?;
    on_output(SetOutput::Input(input))?;
    let (c, h, w) = model.latent_shape();
    let grid_t = model.schedule.time_uniform_grid(request.settings.steps);
    let total = request.views.len();
    let mut start = 0;
    while start < total {
        let len = (total - start).min(super::max_batch(request.device));
        let poses = &request.views[start..start + len];
        let features: Vec<f32> = poses
            .iter()
            .flat_map(|p| p.relative_to(&request.input_pose))
            .collect();
        let pose = Tensor::from_vec(features, (len, 4), &model.device)?;
        let condition = model
            .prior
            .with_pose(&condition.repeat((len, 1, 1, 1))?, &pose)?;
        let uncondition = model
            .prior
            .with_pose(&model.prior.null_condition(len)?, &pose)?;
        let seeds = view_seeds(
            start..start + len,
            request.settings.seed,
            request.shared_seed,
        );
        let noise = seeds
            .iter()
            .map(|&seed| crate::noise::gaussian(seed, &[1, c, h, w], &model.device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let noise = Tensor::cat(&noise, 0)?;
        let predictor = NovelViewGuidance {
            model: &model.prior,
            input_view: input_latent.repeat((len, 1, 1, 1))?,
            condition,
            uncondition,
            scale: request.settings.guidance,
        };
        let latents = super::sample_with(
            model,
            Box::new(predictor),
            &noise,
            &grid_t,
            &request.settings,
            None,
            hook,
        )?;
        let images = super::to_images(&super::decode(model, &latents)?.to_dtype(DType::F32)?)?;
        report_views(start, poses, &seeds, images, on_output)?;
        start += len;
    }
    Ok(())
}

/// The seeds of views `indices`: `seed + i` each, or `seed` for all when `shared`.
pub(super) fn view_seeds(indices: std::ops::Range<usize>, seed: u64, shared: bool) -> Vec<u64> {
    indices
        .map(|i| {
            if shared {
                seed
            } else {
                seed.wrapping_add(i as u64)
            }
        })
        .collect()
}

/// Hands a batch of finished views, the first being view `start`, to `on_output`.
pub(super) fn report_views(
    start: usize,
    poses: &[OrbitPose],
    seeds: &[u64],
    images: Vec<RgbImage>,
    on_output: &mut dyn FnMut(SetOutput) -> Result<()>,
) -> Result<()> {
    for (offset, image) in images.into_iter().enumerate() {
        on_output(SetOutput::View(View {
            index: start + offset,
            pose: poses[offset],
            seed: seeds[offset],
            image,
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_cut_out_centred_and_scaled_on_white() {
        // A red 20×10 bar on a grey background, off-centre in a 100×60 image.
        let mut rgb = RgbImage::from_pixel(100, 60, image::Rgb([200, 200, 205]));
        for y in 5..15 {
            for x in 70..90 {
                rgb.put_pixel(x, y, image::Rgb([220, 20, 20]));
            }
        }
        let prepared = prepare_input(&rgb, None, 50, OBJECT_FILL).expect("prepared");
        assert_eq!(prepared.image.dimensions(), (50, 50));
        assert_eq!(
            prepared.image.get_pixel(1, 1).0,
            [255, 255, 255],
            "background is white"
        );
        let centre = prepared.image.get_pixel(25, 25).0;
        assert!(
            centre[0] > 180 && centre[1] < 80,
            "the bar is in the middle: {centre:?}"
        );
        // 80 % of 50 = 40 px wide, 20 px high.
        let row: Vec<bool> = (0..50)
            .map(|x| prepared.object_mask.get_pixel(x, 25).0[0] > 127)
            .collect();
        let width = row.iter().filter(|&&o| o).count();
        assert!((39..=41).contains(&width), "object width {width}");
        let column = (0..50)
            .filter(|&y| prepared.object_mask.get_pixel(25, y).0[0] > 127)
            .count();
        assert!((19..=21).contains(&column), "object height {column}");

        // With alpha: transparency decides, whatever the colours.
        let alpha = GrayImage::from_fn(100, 60, |x, _| image::Luma([if x < 50 { 255 } else { 0 }]));
        let prepared = prepare_input(&rgb, Some(&alpha), 50, OBJECT_FILL).expect("prepared");
        let opaque = prepared
            .object_mask
            .pixels()
            .filter(|p| p.0[0] > 127)
            .count();
        // The 50×60 left half, its longer side scaled to 40 px: 33×40.
        assert!(
            (1250..=1400).contains(&opaque),
            "the left half is the object: {opaque} px"
        );
        let centre = prepared.image.get_pixel(25, 25).0;
        assert_eq!(
            centre,
            [200, 200, 205],
            "the transparent red bar is not part of it"
        );

        // Nothing to show.
        let flat = RgbImage::from_pixel(30, 30, image::Rgb([10, 10, 10]));
        let error = prepare_input(&flat, None, 32, OBJECT_FILL).expect_err("no object");
        assert!(error.to_string().contains("no object"), "{error}");
        let clear = GrayImage::new(30, 30);
        assert!(
            prepare_input(
                &rgb.clone(),
                Some(&GrayImage::new(100, 60)),
                32,
                OBJECT_FILL
            )
            .is_err()
        );
        assert!(prepare_input(&flat, Some(&clear), 32, OBJECT_FILL).is_err());
    }

    #[test]
    fn views_are_framed_at_the_fill_asked_for_and_other_views_move_with_them() {
        let rgb = RgbImage::from_pixel(64, 64, image::Rgb([90, 140, 200]));
        let bar = |x0: u32, y0: u32| {
            GrayImage::from_fn(64, 64, |x, y| {
                let inside = (x0..x0 + 12).contains(&x) && (y0..y0 + 6).contains(&y);
                image::Luma([if inside { 255 } else { 0 }])
            })
        };
        // A 12 × 6 object centred at (20, 30) of a 64 px view.
        let alpha = bar(14, 27);
        let object_fill = |mask: &GrayImage| {
            let (x0, y0, x1, y1) = solid_bounds(mask).expect("an object");
            (x1 - x0 + 1).max(y1 - y0 + 1) as f32 / mask.width() as f32
        };
        for fill in [0.5, 0.8] {
            let prepared = prepare_input(&rgb, Some(&alpha), 32, fill).expect("prepared");
            let framed = object_fill(&prepared.object_mask);
            assert!(
                (framed - fill).abs() <= 1.5 / 32.0,
                "fill {framed}, asked {fill}"
            );
            let (x0, y0, x1, y1) = solid_bounds(&prepared.object_mask).expect("an object");
            assert!(
                (x0 + x1 + 1).abs_diff(32) <= 2 && (y0 + y1 + 1).abs_diff(32) <= 2,
                "centred: {x0}..={x1}, {y0}..={y1}"
            );
        }
        // Another view of the scene, the object 6 px to the right, moved as the first was
        // (× 16/12 about the first object's centre): it lands 8 px right of the centre.
        let recentring = Recentring::of(&alpha, 32, 0.5).expect("an object");
        let moved = recentring.apply(&rgb, &bar(20, 27));
        let (x0, y0, x1, y1) = solid_bounds(&moved.object_mask).expect("in view");
        assert!(
            x0.abs_diff(16) <= 1
                && x1.abs_diff(31) <= 1
                && y0.abs_diff(12) <= 1
                && y1.abs_diff(19) <= 1,
            "moved to {x0}..={x1}, {y0}..={y1}"
        );
        assert_eq!(moved.image.get_pixel(24, 16).0, [90, 140, 200]);
        assert_eq!(moved.image.get_pixel(4, 4).0, [255, 255, 255]);
        // One that the move takes out of the view leaves it empty, without a panic.
        let gone = recentring.apply(&rgb, &bar(50, 2));
        assert_eq!(solid_bounds(&gone.object_mask), None);
    }
}
