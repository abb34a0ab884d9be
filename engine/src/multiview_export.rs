//! Writing a multi-view set to a folder: a PNG per view with its camera in a `lumos-camera`
//! iTXt chunk, nerfstudio's `transforms.json`, a grid (Zero123++ v1.2's 3 × 2 order for that
//! preset) and a turntable GIF. The reference as the model saw it is frame 0, with its pose.
//!
//! One writer for every front end: `lumos multiview` writes a fresh folder and refuses to
//! replace anything; the app first asks [`MultiviewSet::existing_files`] and replaces files
//! only when the user said so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{GrayImage, RgbImage};

use crate::camera::{Intrinsics, OrbitPose, OrbitPreset, Transforms};
use crate::error::{EngineError, Result};
use crate::imageio;
use crate::pipelines::multiview::{PreparedInput, View, flood_object_mask};

/// Keyword of the PNG chunk holding a view's camera (JSON of its orbit pose and intrinsics).
pub const CAMERA_KEYWORD: &str = "lumos-camera";
/// The files of a set besides its views.
pub const SET_FILES: [&str; 3] = ["transforms.json", "grid.png", "turntable.gif"];
/// Time each turntable frame is shown.
const TURNTABLE_FRAME_MILLIS: u32 = 250;

/// How the views of a set are arranged in `grid.png`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GridLayout {
    /// Zero123++ v1.2: its six views (not the input) in 3 rows × 2 columns, in pose order —
    /// what InstantMesh-style reconstructors take.
    Zero123Plus,
    /// Every frame, the input first, in a near-square grid.
    Square,
}

impl GridLayout {
    /// The layout that suits a preset.
    pub fn for_preset(preset: &OrbitPreset) -> Self {
        match preset {
            OrbitPreset::Zero123Plus => Self::Zero123Plus,
            OrbitPreset::Turntable(_) | OrbitPreset::Custom(_) => Self::Square,
        }
    }
}

/// Whether exported views carry an alpha channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViewAlpha {
    /// RGB on white, as the model made them.
    #[default]
    Opaque,
    /// RGBA: the object cut from the white background.
    ObjectMask,
}

/// What to do with files of the set that already exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingFiles {
    /// Write nothing if any exists (the CLI; the app before it has asked).
    Refuse,
    /// Replace them atomically (the user said so).
    Replace,
}

/// One frame of a set: the input (frame 0) or a made view.
#[derive(Clone, Debug)]
pub struct SetFrame {
    /// Its camera.
    pub pose: OrbitPose,
    /// The picture on white.
    pub image: Arc<RgbImage>,
    /// Where the object is (255), at the picture's size.
    pub object_mask: Arc<GrayImage>,
}

/// A finished multi-view set, ready to be written.
#[derive(Clone, Debug)]
pub struct MultiviewSet {
    /// Frame 0 is the input view, then the views in the order they were asked for.
    pub frames: Vec<SetFrame>,
    /// Field of view written to `transforms.json`, in degrees.
    pub fov_deg: f64,
    /// How `grid.png` is laid out.
    pub grid: GridLayout,
}

impl MultiviewSet {
    /// A set from the prepared input and the views the pipeline made (in any order; each
    /// view's mask is cut from its white background).
    pub fn new(
        input: &PreparedInput,
        input_pose: OrbitPose,
        mut views: Vec<View>,
        fov_deg: f64,
        grid: GridLayout,
    ) -> Self {
        views.sort_by_key(|v| v.index);
        let mut frames = vec![SetFrame {
            pose: input_pose,
            image: Arc::new(input.image.clone()),
            object_mask: Arc::new(input.object_mask.clone()),
        }];
        frames.extend(views.into_iter().map(|view| SetFrame {
            pose: view.pose,
            object_mask: Arc::new(flood_object_mask(&view.image)),
            image: Arc::new(view.image),
        }));
        Self {
            frames,
            fov_deg,
            grid,
        }
    }

    /// File name of frame `index`.
    pub fn frame_file_name(index: usize) -> String {
        format!("view_{index:02}.png")
    }

    /// Every file the set writes, frames first.
    pub fn file_names(&self) -> Vec<String> {
        (0..self.frames.len())
            .map(Self::frame_file_name)
            .chain(SET_FILES.iter().map(|n| (*n).to_owned()))
            .collect()
    }

    /// The files of the set that already exist in `dir`.
    pub fn existing_files(&self, dir: &Path) -> Vec<PathBuf> {
        self.file_names()
            .into_iter()
            .map(|name| dir.join(name))
            .filter(|path| path.exists())
            .collect()
    }

    /// Frame indices sorted by azimuth from the input round (the turntable's order).
    pub fn turntable_order(&self) -> Vec<usize> {
        let poses: Vec<OrbitPose> = self.frames.iter().map(|f| f.pose).collect();
        turntable_order(&poses)
    }

    /// Writes the set into `dir` (created if missing); returns the paths written. With
    /// [`ExistingFiles::Refuse`] nothing is written when any of its files exists.
    pub fn write(
        &self,
        dir: &Path,
        alpha: ViewAlpha,
        existing: ExistingFiles,
    ) -> Result<Vec<PathBuf>> {
        if existing == ExistingFiles::Refuse
            && let Some(path) = self.existing_files(dir).into_iter().next()
        {
            return Err(EngineError::Write {
                path,
                reason: "the file already exists; choose another folder (nothing was written)"
                    .into(),
            });
        }
        let first = self
            .frames
            .first()
            .ok_or_else(|| EngineError::InvalidRequest("the set has no frames".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| EngineError::Write {
            path: dir.to_owned(),
            reason: imageio::write_failure(&e),
        })?;
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
            let path = dir.join(name);
            match existing {
                ExistingFiles::Refuse => imageio::write_new_file(&path, bytes)?,
                ExistingFiles::Replace => imageio::replace_file(&path, bytes)?,
            }
            Ok(path)
        };
        let mut written = Vec::new();
        for (index, frame) in self.frames.iter().enumerate() {
            let bytes = self.frame_png(frame, alpha)?;
            written.push(write(&Self::frame_file_name(index), &bytes)?);
        }
        let intrinsics = Intrinsics {
            size_px: first.image.width(),
            fov_deg: self.fov_deg,
        };
        let named: Vec<(String, OrbitPose)> = self
            .frames
            .iter()
            .enumerate()
            .map(|(index, frame)| (Self::frame_file_name(index), frame.pose))
            .collect();
        let transforms = serde_json::to_string_pretty(&Transforms::new(intrinsics, &named))
            .map_err(|e| EngineError::Write {
                path: dir.join(SET_FILES[0]),
                reason: e.to_string(),
            })?;
        written.push(write(SET_FILES[0], transforms.as_bytes())?);
        if let Some(grid) = self.grid_image() {
            written.push(write(SET_FILES[1], &imageio::encode_png(&grid, None)?)?);
        }
        let gif_frames: Vec<&RgbImage> = self
            .turntable_order()
            .into_iter()
            .map(|i| self.frames[i].image.as_ref())
            .collect();
        written.push(write(
            SET_FILES[2],
            &imageio::encode_gif(&gif_frames, TURNTABLE_FRAME_MILLIS)?,
        )?);
        Ok(written)
    }

    /// A frame's PNG with its camera in the `lumos-camera` chunk.
    fn frame_png(&self, frame: &SetFrame, alpha: ViewAlpha) -> Result<Vec<u8>> {
        let camera = serde_json::json!({
            "orbit": frame.pose,
            "camera_to_world": frame.pose.camera_to_world(),
            "fov_deg": self.fov_deg,
            "convention": "Z up, object at the origin, OpenGL camera axes",
        });
        let picture = match alpha {
            ViewAlpha::ObjectMask => {
                let (image, mask) = (&frame.image, &frame.object_mask);
                image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(
                    image.width(),
                    image.height(),
                    |x, y| {
                        let [r, g, b] = image.get_pixel(x, y).0;
                        let a = mask.get_pixel_checked(x, y).map_or(255, |p| p.0[0]);
                        image::Rgba([r, g, b, a])
                    },
                ))
            }
            ViewAlpha::Opaque => image::DynamicImage::ImageRgb8(frame.image.as_ref().clone()),
        };
        imageio::encode_png_with_text(&picture, &[(CAMERA_KEYWORD, camera.to_string())])
    }

    /// The grid: Zero123++'s 3 rows × 2 columns of its six views, else every frame.
    fn grid_image(&self) -> Option<RgbImage> {
        let frames = match self.grid {
            GridLayout::Zero123Plus => self.frames.get(1..).unwrap_or_default(),
            GridLayout::Square => &self.frames[..],
        };
        let images: Vec<&RgbImage> = frames.iter().map(|f| f.image.as_ref()).collect();
        let per_row = match self.grid {
            GridLayout::Zero123Plus => 2,
            GridLayout::Square => (images.len() as f64).sqrt().ceil().max(1.0) as usize,
        };
        imageio::make_grid(&images, per_row, 0)
    }
}

/// Indices of `poses` sorted by azimuth in [0°, 360°), the input (azimuth 0) first.
pub fn turntable_order(poses: &[OrbitPose]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..poses.len()).collect();
    order.sort_by(|&a, &b| {
        poses[a]
            .azimuth_deg
            .rem_euclid(360.0)
            .total_cmp(&poses[b].azimuth_deg.rem_euclid(360.0))
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(azimuth_deg: f64, shade: u8) -> SetFrame {
        SetFrame {
            pose: OrbitPose::new(0.0, azimuth_deg, 1.5).expect("pose"),
            image: Arc::new(RgbImage::from_pixel(8, 8, image::Rgb([shade; 3]))),
            object_mask: Arc::new(GrayImage::from_pixel(8, 8, image::Luma([255]))),
        }
    }

    #[test]
    fn frames_turn_by_azimuth_and_existing_files_are_refused_or_replaced() {
        let set = MultiviewSet {
            frames: vec![
                frame(0.0, 10),
                frame(240.0, 20),
                frame(-60.0, 30),
                frame(120.0, 40),
            ],
            fov_deg: 40.0,
            grid: GridLayout::Square,
        };
        // -60° is 300°: last.
        assert_eq!(set.turntable_order(), vec![0, 3, 1, 2]);
        let dir = tempfile::tempdir().expect("tempdir");
        let written = set
            .write(dir.path(), ViewAlpha::Opaque, ExistingFiles::Refuse)
            .expect("first write");
        assert_eq!(written.len(), 4 + SET_FILES.len());
        assert_eq!(set.existing_files(dir.path()).len(), written.len());
        let error = set
            .write(dir.path(), ViewAlpha::Opaque, ExistingFiles::Refuse)
            .expect_err("refused");
        assert!(error.to_string().contains("already exists"), "{error}");
        // Replacing writes the alpha version over the old files.
        set.write(dir.path(), ViewAlpha::ObjectMask, ExistingFiles::Replace)
            .expect("replaced");
        let view = image::open(dir.path().join("view_01.png")).expect("decode");
        assert_eq!(view.color(), image::ColorType::Rgba8);
    }
}
