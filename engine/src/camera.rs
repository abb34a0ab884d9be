//! Orbit cameras for multi-view sets: where each view is taken from, the relative pose a
//! novel-view prior is conditioned on, and the camera files 3D tools read.
//!
//! Conventions (written once here, used by every export):
//! - World: right-handed, **Z up**, the object at the origin (Blender's).
//! - An orbit pose is (elevation above the horizontal plane, azimuth counter-clockwise seen
//!   from above, radius). Azimuth 0 puts the camera on −Y looking towards +Y (Blender's front
//!   view); the reference image is the view at azimuth 0.
//! - Cameras follow OpenGL/Blender: they look along their −Z, +Y is up in the image, +X right.
//!   `transforms.json` (nerfstudio, instant-ngp) stores these camera-to-world matrices as is.
//!
//! Hand-written: the maths is a dozen lines, and no maintained crate writes nerfstudio's
//! `transforms.json` or Zero123++'s pose order.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

pub mod zero123;

/// Field of view of the Objaverse renders Zero123 was trained on (35 mm lens, 32 mm sensor).
pub const DEFAULT_FOV_DEG: f64 = 49.134_342_5;
/// Camera distance of the input view when none is given.
pub const DEFAULT_RADIUS: f64 = 1.5;
/// Elevations must stay below the poles, where "up" is undefined.
pub const MAX_ABS_ELEVATION_DEG: f64 = 89.0;

/// Where a camera sits on its orbit around the object.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrbitPose {
    /// Degrees above the horizontal plane.
    pub elevation_deg: f64,
    /// Degrees counter-clockwise seen from above; 0 is the reference's view.
    pub azimuth_deg: f64,
    /// Distance to the object's centre.
    pub radius: f64,
}

impl OrbitPose {
    /// A pose, refused when the elevation is at or beyond a pole or the radius is not
    /// positive.
    pub fn new(elevation_deg: f64, azimuth_deg: f64, radius: f64) -> Result<Self> {
        if !elevation_deg.is_finite() || elevation_deg.abs() > MAX_ABS_ELEVATION_DEG {
            return Err(EngineError::InvalidRequest(format!(
                "elevation {elevation_deg}° is outside ±{MAX_ABS_ELEVATION_DEG}°"
            )));
        }
        if !(azimuth_deg.is_finite() && radius.is_finite() && radius > 0.0) {
            return Err(EngineError::InvalidRequest(format!(
                "azimuth {azimuth_deg}° and radius {radius} must be finite, the radius positive"
            )));
        }
        Ok(Self {
            elevation_deg,
            azimuth_deg,
            radius,
        })
    }

    /// The camera's position in the world.
    pub fn position(&self) -> [f64; 3] {
        let (e, a) = (
            self.elevation_deg.to_radians(),
            self.azimuth_deg.to_radians(),
        );
        [
            self.radius * e.cos() * a.sin(),
            -self.radius * e.cos() * a.cos(),
            self.radius * e.sin(),
        ]
    }

    /// The 4×4 camera-to-world matrix (rows), OpenGL/Blender camera axes, looking at the
    /// origin.
    pub fn camera_to_world(&self) -> [[f64; 4]; 4] {
        let eye = self.position();
        let forward = normalize(scale(eye, -1.0));
        let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
        let up = cross(right, forward);
        let back = scale(forward, -1.0);
        let mut m = [[0.0; 4]; 4];
        for row in 0..3 {
            m[row] = [right[row], up[row], back[row], eye[row]];
        }
        m[3] = [0.0, 0.0, 0.0, 1.0];
        m
    }

    /// The features a novel-view prior is conditioned on, from `input` to this view:
    /// `[Δelevation (radians), sin Δazimuth, cos Δazimuth, Δradius]`.
    pub fn relative_to(&self, input: &OrbitPose) -> [f32; 4] {
        let d_azimuth = (self.azimuth_deg - input.azimuth_deg).to_radians();
        [
            (self.elevation_deg - input.elevation_deg).to_radians() as f32,
            d_azimuth.sin() as f32,
            d_azimuth.cos() as f32,
            (self.radius - input.radius) as f32,
        ]
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn scale(a: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
    scale(a, 1.0 / n)
}

/// Which views a multi-view set is made of.
#[derive(Clone, Debug, PartialEq)]
pub enum OrbitPreset {
    /// Zero123++ v1.2's six views: azimuths 30°…330° in steps of 60°, elevations 20° and −10°
    /// alternating.
    Zero123Plus,
    /// `n` frames around the object at the input's elevation; frame 0 is the input itself,
    /// so `n − 1` views are made.
    Turntable(usize),
    /// The given poses (elevation, azimuth, radius).
    Custom(Vec<OrbitPose>),
}

impl OrbitPreset {
    /// Parses `zero123pp`, `turntable:N` or `custom:FILE` (a text file of `elevation azimuth
    /// [radius]` lines in degrees; `#` starts a comment).
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |msg: String| EngineError::InvalidRequest(msg);
        if text == "zero123pp" {
            return Ok(Self::Zero123Plus);
        }
        if let Some(n) = text.strip_prefix("turntable:") {
            let n: usize = n
                .parse()
                .map_err(|_| invalid(format!("turntable:{n}: N must be a whole number")))?;
            if !(2..=72).contains(&n) {
                return Err(invalid(format!("turntable:{n}: N must be 2 to 72")));
            }
            return Ok(Self::Turntable(n));
        }
        if let Some(file) = text.strip_prefix("custom:") {
            return Self::read_custom(Path::new(file));
        }
        Err(invalid(format!(
            "unknown orbit preset {text:?}: use zero123pp, turntable:N or custom:FILE"
        )))
    }

    /// Reads a custom orbit file.
    pub fn read_custom(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Self::parse_custom(&text, &path.display().to_string())
    }

    /// Parses the lines of a custom orbit; `name` is used in errors.
    pub fn parse_custom(text: &str, name: &str) -> Result<Self> {
        let mut poses = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: String| {
                EngineError::InvalidRequest(format!("{name} line {}: {why}", number + 1))
            };
            let values: Vec<f64> = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| bad(format!("{v:?} is not a number")))
                })
                .collect::<Result<_>>()?;
            let pose = match values[..] {
                [elevation, azimuth] => OrbitPose::new(elevation, azimuth, DEFAULT_RADIUS),
                [elevation, azimuth, radius] => OrbitPose::new(elevation, azimuth, radius),
                _ => {
                    return Err(bad(format!(
                        "expected `elevation azimuth [radius]`, found {} values",
                        values.len()
                    )));
                }
            }
            .map_err(|e| bad(e.to_string()))?;
            poses.push(pose);
        }
        if poses.is_empty() {
            return Err(EngineError::InvalidRequest(format!(
                "{name} lists no views (lines of `elevation azimuth [radius]`)"
            )));
        }
        Ok(Self::Custom(poses))
    }

    /// The views to make, in the preset's order, for an input seen from `input`.
    pub fn views(&self, input: &OrbitPose) -> Vec<OrbitPose> {
        let at = |elevation_deg: f64, azimuth_deg: f64| OrbitPose {
            elevation_deg,
            azimuth_deg,
            radius: input.radius,
        };
        match self {
            Self::Zero123Plus => (0..6)
                .map(|i| {
                    at(
                        if i % 2 == 0 { 20.0 } else { -10.0 },
                        30.0 + 60.0 * i as f64,
                    )
                })
                .collect(),
            Self::Turntable(n) => (1..*n)
                .map(|k| at(input.elevation_deg, 360.0 * k as f64 / *n as f64))
                .collect(),
            Self::Custom(poses) => poses.clone(),
        }
    }
}

/// Pinhole intrinsics of square views.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    /// Side length in pixels.
    pub size_px: u32,
    /// Horizontal (= vertical) field of view in degrees.
    pub fov_deg: f64,
}

impl Intrinsics {
    /// Focal length in pixels.
    pub fn focal_px(&self) -> f64 {
        0.5 * f64::from(self.size_px) / (0.5 * self.fov_deg.to_radians()).tan()
    }

    /// Principal point in pixels (the image centre).
    pub fn centre_px(&self) -> f64 {
        0.5 * f64::from(self.size_px)
    }
}

/// nerfstudio / instant-ngp `transforms.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transforms {
    /// Horizontal field of view in radians (instant-ngp).
    pub camera_angle_x: f64,
    /// Focal length in pixels, x.
    pub fl_x: f64,
    /// Focal length in pixels, y.
    pub fl_y: f64,
    /// Principal point x.
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
    /// Width in pixels.
    pub w: u32,
    /// Height in pixels.
    pub h: u32,
    /// Camera model name (nerfstudio).
    pub camera_model: String,
    /// One frame per view.
    pub frames: Vec<TransformsFrame>,
}

/// One view of [`Transforms`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformsFrame {
    /// Image path relative to the file.
    pub file_path: String,
    /// Camera-to-world, rows, OpenGL camera axes.
    pub transform_matrix: [[f64; 4]; 4],
    /// The orbit pose it was made from (for people; tools ignore it).
    pub orbit: OrbitPose,
}

impl Transforms {
    /// The file for these frames (file name, pose) seen through `intrinsics`.
    pub fn new(intrinsics: Intrinsics, frames: &[(String, OrbitPose)]) -> Self {
        let focal = intrinsics.focal_px();
        Self {
            camera_angle_x: intrinsics.fov_deg.to_radians(),
            fl_x: focal,
            fl_y: focal,
            cx: intrinsics.centre_px(),
            cy: intrinsics.centre_px(),
            w: intrinsics.size_px,
            h: intrinsics.size_px,
            camera_model: "OPENCV".into(),
            frames: frames
                .iter()
                .map(|(file_path, pose)| TransformsFrame {
                    file_path: file_path.clone(),
                    transform_matrix: pose.camera_to_world(),
                    orbit: *pose,
                })
                .collect(),
        }
    }

    /// Where the world point `point` lands in frame `index`'s image (pixels, x right, y down),
    /// through the pinhole model; `None` behind the camera.
    pub fn project(&self, index: usize, point: [f64; 3]) -> Option<[f64; 2]> {
        let m = &self.frames.get(index)?.transform_matrix;
        let d = [point[0] - m[0][3], point[1] - m[1][3], point[2] - m[2][3]];
        // Camera coordinates: the transpose of the rotation applied to the offset.
        let cam: Vec<f64> = (0..3)
            .map(|col| (0..3).map(|row| m[row][col] * d[row]).sum())
            .collect();
        let depth = -cam[2];
        (depth > 1e-9).then(|| {
            [
                self.cx + self.fl_x * cam[0] / depth,
                self.cy - self.fl_y * cam[1] / depth,
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn cameras_are_orthonormal_and_look_at_the_origin_from_their_pose() {
        for (e, a, r) in [
            (0.0, 0.0, 1.5),
            (20.0, 30.0, 2.0),
            (-10.0, 270.0, 1.0),
            (80.0, -45.0, 3.0),
        ] {
            let pose = OrbitPose::new(e, a, r).expect("pose");
            let m = pose.camera_to_world();
            let column = |c: usize| [m[0][c], m[1][c], m[2][c]];
            for i in 0..3 {
                for j in 0..3 {
                    let dot: f64 = (0..3).map(|k| column(i)[k] * column(j)[k]).sum();
                    assert!(
                        close(dot, if i == j { 1.0 } else { 0.0 }),
                        "{e} {a}: {i}·{j} = {dot}"
                    );
                }
            }
            // Right-handed, and the camera's −Z points at the origin from `r` away.
            assert!(close(cross(column(0), column(1))[2], column(2)[2]));
            let eye = column(3);
            let distance = (eye[0].powi(2) + eye[1].powi(2) + eye[2].powi(2)).sqrt();
            assert!(close(distance, r));
            assert!(close(eye[2], r * e.to_radians().sin()), "elevation");
            let looking = scale(column(2), -1.0);
            for k in 0..3 {
                assert!(close(looking[k], -eye[k] / r));
            }
            // The image's up has no sideways tilt: it lies in the vertical plane of the view.
            assert!(column(0)[2].abs() < 1e-12, "the horizon stays level");
        }
        // Azimuth 90° is a quarter turn counter-clockwise from the front (−Y) to +X.
        let side = OrbitPose::new(0.0, 90.0, 2.0).expect("pose").position();
        assert!(close(side[0], 2.0) && close(side[1], 0.0));
        assert!(OrbitPose::new(90.0, 0.0, 1.0).is_err());
        assert!(OrbitPose::new(0.0, 0.0, 0.0).is_err());
    }

    #[test]
    fn points_project_where_the_pinhole_model_says_through_transforms_json() {
        let intrinsics = Intrinsics {
            size_px: 256,
            fov_deg: DEFAULT_FOV_DEG,
        };
        let front = OrbitPose::new(0.0, 0.0, 2.0).expect("pose");
        let above = OrbitPose::new(30.0, 90.0, 2.0).expect("pose");
        let written = Transforms::new(
            intrinsics,
            &[("000.png".into(), front), ("001.png".into(), above)],
        );
        let json = serde_json::to_string(&written).expect("json");
        let transforms: Transforms = serde_json::from_str(&json).expect("read back");
        assert_eq!(transforms.frames.len(), 2);
        for (read, wrote) in transforms.frames.iter().zip(&written.frames) {
            assert_eq!(read.file_path, wrote.file_path);
            for (a, b) in read
                .transform_matrix
                .iter()
                .flatten()
                .zip(wrote.transform_matrix.iter().flatten())
            {
                assert!((a - b).abs() < 1e-12, "JSON keeps the matrices");
            }
        }
        let f = intrinsics.focal_px();
        assert!(close(
            transforms.camera_angle_x,
            DEFAULT_FOV_DEG.to_radians()
        ));
        // The origin is at the centre of every view.
        for i in 0..2 {
            let [u, v] = transforms.project(i, [0.0; 3]).expect("in front");
            assert!(close(u, 128.0) && close(v, 128.0));
        }
        // From the front (camera at −Y, 2 away): +X is right, +Z is up, by f·offset/depth.
        let [u, v] = transforms.project(0, [0.5, 0.0, 0.0]).expect("in front");
        assert!(close(u, 128.0 + f * 0.5 / 2.0) && close(v, 128.0));
        let [u, v] = transforms.project(0, [0.0, 0.0, 0.25]).expect("in front");
        assert!(close(u, 128.0) && close(v, 128.0 - f * 0.25 / 2.0));
        // A point nearer the camera (on −Y) is in front; one behind the camera is not seen.
        assert!(transforms.project(0, [0.0, -3.0, 0.0]).is_none());
        // From azimuth 90° the camera sits on +X looking towards −X with Z up: its right is
        // world +Y (a quarter turn of the front view's +X), so −Y lands left of the centre.
        let [u, _] = transforms.project(1, [0.0, -0.5, 0.0]).expect("in front");
        assert!(u < 128.0);
    }

    #[test]
    fn presets_list_their_views_and_bad_orbits_say_which_line() {
        let input = OrbitPose::new(0.0, 0.0, DEFAULT_RADIUS).expect("pose");
        let views = OrbitPreset::parse("zero123pp")
            .expect("preset")
            .views(&input);
        let angles: Vec<(f64, f64)> = views
            .iter()
            .map(|v| (v.elevation_deg, v.azimuth_deg))
            .collect();
        assert_eq!(
            angles,
            [
                (20.0, 30.0),
                (-10.0, 90.0),
                (20.0, 150.0),
                (-10.0, 210.0),
                (20.0, 270.0),
                (-10.0, 330.0)
            ]
        );
        let turntable = OrbitPreset::parse("turntable:4")
            .expect("preset")
            .views(&input);
        let azimuths: Vec<f64> = turntable.iter().map(|v| v.azimuth_deg).collect();
        assert_eq!(
            azimuths,
            [90.0, 180.0, 270.0],
            "frame 0 is the input itself"
        );
        assert!(OrbitPreset::parse("turntable:1").is_err());
        assert!(OrbitPreset::parse("orbit").is_err());

        let custom = OrbitPreset::parse_custom("# front and back\n0 0\n15, 180, 2.5\n", "o.txt")
            .expect("custom");
        assert_eq!(
            custom.views(&input),
            [
                OrbitPose::new(0.0, 0.0, DEFAULT_RADIUS).expect("pose"),
                OrbitPose::new(15.0, 180.0, 2.5).expect("pose")
            ]
        );
        let error = OrbitPreset::parse_custom("0 0\n10 abc\n", "o.txt").expect_err("bad line");
        assert!(error.to_string().contains("o.txt line 2"), "{error}");
        let error = OrbitPreset::parse_custom("95 0\n", "o.txt").expect_err("pole");
        assert!(error.to_string().contains("line 1"), "{error}");
        assert!(OrbitPreset::parse_custom("# nothing\n", "o.txt").is_err());
    }

    #[test]
    fn relative_pose_features_follow_the_nvs_convention() {
        let input = OrbitPose::new(10.0, 0.0, 1.5).expect("pose");
        let view = OrbitPose::new(40.0, 90.0, 2.0).expect("pose");
        let [de, s, c, dr] = view.relative_to(&input);
        assert!((de - 30f32.to_radians()).abs() < 1e-6);
        assert!((s - 1.0).abs() < 1e-6 && c.abs() < 1e-6);
        assert!((dr - 0.5).abs() < 1e-6);
    }
}
