//! The multi-view mode's state: the set being made (or last made) from the first reference,
//! its views as the engine sends them, and the set as the engine's writer takes it.
//!
//! Kept apart from the gallery: a set's frames are cameras on an orbit (with a pose, laid out
//! and exported by angle), not independent results with `GenerationMeta`.

use std::sync::Arc;

use image::{GrayImage, RgbImage};
use lumos_engine::camera::{OrbitPose, OrbitPreset};
use lumos_engine::multiview_export::{GridLayout, MultiviewSet, SetFrame, turntable_order};
use lumos_engine::pipelines::multiview::{PreparedInput, View, flood_object_mask};
use lumos_engine::protocol::{JobId, SamplerSettings};

/// Where a set stands.
#[derive(Clone, Debug, PartialEq)]
pub enum SetStatus {
    /// Views are being made.
    Running,
    /// Every view and the input are here.
    Finished,
    /// Cancelled; the views made so far are kept.
    Cancelled,
    /// Failed with this reason.
    Failed(String),
}

/// One frame of a set: the reference as the model saw it, or a made view.
pub struct SetFrameView {
    /// Its camera.
    pub pose: OrbitPose,
    /// The view's seed (`None` for the reference).
    pub seed: Option<u64>,
    /// The picture on white.
    pub image: Arc<RgbImage>,
    /// Where the object is (the reference's cut-out; views are cut from white on export).
    pub object_mask: Option<Arc<GrayImage>>,
    /// Thumbnail texture (created on first draw).
    pub texture: Option<egui::TextureHandle>,
}

impl SetFrameView {
    /// Whether this is the reference (frame 0 of the set).
    pub fn is_reference(&self) -> bool {
        self.seed.is_none()
    }

    /// Its texture, created on first use.
    pub fn texture(&mut self, ctx: &egui::Context, name: &str) -> egui::TextureHandle {
        self.texture
            .get_or_insert_with(|| {
                ctx.load_texture(
                    name,
                    crate::gallery::color_image(&self.image),
                    egui::TextureOptions::LINEAR,
                )
            })
            .clone()
    }

    /// `az 30° · el 20°`.
    pub fn angle_label(&self) -> String {
        format!(
            "az {:.0}° · el {:.0}°",
            self.pose.azimuth_deg.rem_euclid(360.0),
            self.pose.elevation_deg
        )
    }
}

/// A multi-view set: what was asked for and what has arrived.
pub struct MultiviewRun {
    /// The run id shown in the queue (shared with the gallery's numbering).
    pub id: u64,
    /// The engine job while it runs.
    pub job: Option<JobId>,
    /// Name of the reference it was made from.
    pub reference: String,
    /// Name of the model.
    pub model: String,
    /// The orbit.
    pub preset: OrbitPreset,
    /// The reference's camera.
    pub input_pose: OrbitPose,
    /// The views asked for, in order.
    pub planned: Vec<OrbitPose>,
    /// Steps, guidance, solver and seed of the first view.
    pub settings: SamplerSettings,
    /// Where it stands.
    pub status: SetStatus,
    /// What the engine said about the set while making it (a checkpoint's licence).
    pub notices: Vec<String>,
    /// Made views in the order they arrived, with their index in `planned`.
    views: Vec<(usize, SetFrameView)>,
    /// The reference as the model saw it (arrives after the views).
    input: Option<SetFrameView>,
    /// Increases with every frame that arrives (the turntable re-uploads then).
    version: u64,
    /// The history folder the finished set was written to.
    pub kept_in: Option<std::path::PathBuf>,
}

impl MultiviewRun {
    /// A set that was just queued.
    pub fn new(
        id: u64,
        job: JobId,
        reference: String,
        model: String,
        preset: OrbitPreset,
        input_pose: OrbitPose,
        settings: SamplerSettings,
    ) -> Self {
        let planned = preset.views(&input_pose);
        Self {
            id,
            job: Some(job),
            reference,
            model,
            preset,
            input_pose,
            planned,
            settings,
            status: SetStatus::Running,
            notices: Vec::new(),
            views: Vec::new(),
            input: None,
            version: 0,
            kept_in: None,
        }
    }

    /// A view arrived.
    pub fn add_view(&mut self, view: View) {
        self.views.push((
            view.index,
            SetFrameView {
                pose: view.pose,
                seed: Some(view.seed),
                image: Arc::new(view.image),
                object_mask: None,
                texture: None,
            },
        ));
        self.version += 1;
    }

    /// The prepared reference arrived.
    pub fn set_input(&mut self, input: PreparedInput) {
        self.input = Some(SetFrameView {
            pose: self.input_pose,
            seed: None,
            image: Arc::new(input.image),
            object_mask: Some(Arc::new(input.object_mask)),
            texture: None,
        });
        self.version += 1;
    }

    /// The job ended.
    pub fn ended(&mut self, status: SetStatus) {
        self.job = None;
        self.status = status;
    }

    /// Number of views made so far.
    pub fn views_made(&self) -> usize {
        self.views.len()
    }

    /// Changes whenever a frame arrives.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether the set is finished with its reference frame and every view.
    pub fn is_complete(&self) -> bool {
        self.status == SetStatus::Finished
            && self.input.is_some()
            && self.views.len() == self.planned.len()
    }

    /// Whether the set was cut short (cancelled, or failed) after its reference frame and at
    /// least one view: what was made is kept and can be exported.
    pub fn is_partial(&self) -> bool {
        matches!(self.status, SetStatus::Cancelled | SetStatus::Failed(_))
            && self.input.is_some()
            && !self.views.is_empty()
    }

    /// Indices into [`Self::frames_mut`]'s order, sorted by azimuth (the turntable's order).
    fn order_by_azimuth(&self) -> Vec<usize> {
        let poses: Vec<OrbitPose> = self.frames().map(|f| f.pose).collect();
        turntable_order(&poses)
    }

    /// Every frame here: the reference (when it has arrived), then the views in arrival order.
    fn frames(&self) -> impl Iterator<Item = &SetFrameView> {
        self.input.iter().chain(self.views.iter().map(|(_, v)| v))
    }

    fn frames_mut(&mut self) -> impl Iterator<Item = &mut SetFrameView> {
        self.input
            .iter_mut()
            .chain(self.views.iter_mut().map(|(_, v)| v))
    }

    /// The frames by azimuth from the reference round: the results' layout and the
    /// turntable's order.
    pub fn frames_by_azimuth(&self) -> Vec<&SetFrameView> {
        let frames: Vec<&SetFrameView> = self.frames().collect();
        self.order_by_azimuth()
            .into_iter()
            .map(|i| frames[i])
            .collect()
    }

    /// As [`Self::frames_by_azimuth`], to create textures.
    pub fn frames_by_azimuth_mut(&mut self) -> Vec<&mut SetFrameView> {
        let order = self.order_by_azimuth();
        let mut frames: Vec<Option<&mut SetFrameView>> = self.frames_mut().map(Some).collect();
        order
            .into_iter()
            .filter_map(|i| frames.get_mut(i).and_then(Option::take))
            .collect()
    }

    /// The set as the engine's writer takes it (frame 0 the reference, then the views in the
    /// preset's order): the whole set once complete; a set cut short, the views that were made,
    /// in a square grid (a reconstructor's fixed grid would take it for a whole set); `None`
    /// while it runs or when nothing but the reference was made.
    pub fn to_set(&self, fov_deg: f64) -> Option<MultiviewSet> {
        let grid = if self.is_complete() {
            GridLayout::for_preset(&self.preset)
        } else if self.is_partial() {
            GridLayout::Square
        } else {
            return None;
        };
        let input = self.input.as_ref()?;
        let mut views: Vec<&(usize, SetFrameView)> = self.views.iter().collect();
        views.sort_by_key(|(index, _)| *index);
        let frames = std::iter::once(SetFrame {
            pose: input.pose,
            image: input.image.clone(),
            object_mask: input.object_mask.clone()?,
        })
        .chain(views.into_iter().map(|(_, view)| SetFrame {
            pose: view.pose,
            image: view.image.clone(),
            object_mask: Arc::new(flood_object_mask(&view.image)),
        }))
        .collect();
        Some(MultiviewSet {
            frames,
            fov_deg,
            grid,
        })
    }
}

/// The multi-view mode's transient state: the latest set, the turntable, the last export.
#[derive(Default)]
pub struct MultiviewMode {
    /// The set being made or last made.
    pub run: Option<MultiviewRun>,
    /// The turntable preview's angle.
    pub turntable: crate::turntable::TurntablePreview,
    /// The files the last "Export set" wrote.
    pub last_export: Vec<std::path::PathBuf>,
}

impl MultiviewMode {
    /// The set of `job`, if this is its job.
    pub fn run_of(&mut self, job: JobId) -> Option<&mut MultiviewRun> {
        self.run.as_mut().filter(|run| run.job == Some(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(index: usize, azimuth_deg: f64, shade: u8) -> View {
        View {
            index,
            pose: OrbitPose::new(10.0, azimuth_deg, 1.5).expect("pose"),
            seed: 7 + index as u64,
            image: RgbImage::from_pixel(4, 4, image::Rgb([shade; 3])),
        }
    }

    #[test]
    fn frames_are_laid_out_by_azimuth_and_the_set_in_the_presets_order() {
        let input_pose = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
        let mut run = MultiviewRun::new(
            1,
            5,
            "ref.png".into(),
            "model".into(),
            OrbitPreset::Custom(vec![
                OrbitPose::new(10.0, 270.0, 1.5).expect("pose"),
                OrbitPose::new(10.0, 90.0, 1.5).expect("pose"),
            ]),
            input_pose,
            SamplerSettings::default(),
        );
        // The second view arrives first.
        run.add_view(view(1, 90.0, 90));
        run.add_view(view(0, 270.0, 200));
        assert!(run.to_set(40.0).is_none(), "no set before it is complete");
        run.set_input(PreparedInput {
            image: RgbImage::from_pixel(4, 4, image::Rgb([0; 3])),
            object_mask: GrayImage::from_pixel(4, 4, image::Luma([255])),
        });
        run.ended(SetStatus::Finished);
        let shades: Vec<u8> = run
            .frames_by_azimuth()
            .iter()
            .map(|f| f.image.get_pixel(0, 0).0[0])
            .collect();
        assert_eq!(shades, vec![0, 90, 200], "reference, 90°, 270°");
        let set = run.to_set(40.0).expect("complete");
        let set_shades: Vec<u8> = set
            .frames
            .iter()
            .map(|f| f.image.get_pixel(0, 0).0[0])
            .collect();
        assert_eq!(
            set_shades,
            vec![0, 200, 90],
            "reference, then the views as asked"
        );
        assert_eq!(set.grid, GridLayout::Square);
    }

    #[test]
    fn a_set_cut_short_keeps_the_reference_and_the_views_made() {
        let input_pose = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
        let mut run = MultiviewRun::new(
            2,
            6,
            "ref.png".into(),
            "model".into(),
            OrbitPreset::Zero123Plus,
            input_pose,
            SamplerSettings::default(),
        );
        let planned = run.planned.clone();
        run.set_input(PreparedInput {
            image: RgbImage::from_pixel(4, 4, image::Rgb([0; 3])),
            object_mask: GrayImage::from_pixel(4, 4, image::Luma([255])),
        });
        assert!(run.to_set(40.0).is_none(), "nothing to keep while it runs");
        for (index, shade) in [(0, 10), (1, 20)] {
            run.add_view(View {
                index,
                pose: planned[index],
                seed: 7,
                image: RgbImage::from_pixel(4, 4, image::Rgb([shade; 3])),
            });
        }
        run.ended(SetStatus::Cancelled);
        assert!(!run.is_complete() && run.is_partial());
        let set = run.to_set(40.0).expect("the views made are kept");
        let shades: Vec<u8> = set
            .frames
            .iter()
            .map(|f| f.image.get_pixel(0, 0).0[0])
            .collect();
        assert_eq!(shades, vec![0, 10, 20], "the reference, then the two views");
        assert_eq!(
            set.grid,
            GridLayout::Square,
            "not Zero123++'s 3 × 2 grid, which a reconstructor would take for a whole set"
        );

        // Cut short before any view: only the reference, nothing to keep.
        let mut empty = MultiviewRun::new(
            3,
            7,
            "ref.png".into(),
            "model".into(),
            OrbitPreset::Zero123Plus,
            input_pose,
            SamplerSettings::default(),
        );
        empty.set_input(PreparedInput {
            image: RgbImage::from_pixel(4, 4, image::Rgb([0; 3])),
            object_mask: GrayImage::from_pixel(4, 4, image::Luma([255])),
        });
        empty.ended(SetStatus::Failed("out of memory".into()));
        assert!(!empty.is_partial() && empty.to_set(40.0).is_none());
    }
}
