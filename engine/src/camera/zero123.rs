//! The 4-number camera embedding `T` of the Zero-1-to-3 family, concatenated to the CLIP
//! embedding before `cc_projection`. Two conventions exist and a checkpoint is trained on one:
//!
//! - **Zero123 / Zero123-XL** (the demo, `ldm/data/simple.py` `get_T`): `[Δpolar (radians),
//!   sin Δazimuth, cos Δazimuth, Δradius]`, the polar angle measured from +Z down, so a camera
//!   moving up has a negative first entry.
//! - **Stable Zero123** (threestudio's `stable_zero123_guidance.py`, the model card's reference
//!   usage; ComfyUI's node is the special case of an input view at elevation 0): the same but
//!   the last entry is the input view's absolute polar angle `radians(90° − elevation)`.
//!
//! Azimuth runs counter-clockwise seen from above in both, as in [`super::OrbitPose`].
//! Values are computed in f64 and rounded to f32 (the originals use Python floats or f32
//! tensors; they agree to ~1e-7).

use serde::{Deserialize, Serialize};

use super::OrbitPose;

/// Which camera embedding a checkpoint was trained with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraConvention {
    /// Zero123, Zero123-XL: relative polar, azimuth and radius.
    Zero123,
    /// Stable Zero123: relative polar and azimuth, the input's absolute polar angle.
    StableZero123,
}

impl CameraConvention {
    /// `T` for a view at `view` of an input seen from `input`.
    pub fn embedding(self, view: &OrbitPose, input: &OrbitPose) -> [f32; 4] {
        match self {
            Self::Zero123 => demo(
                input.elevation_deg - view.elevation_deg,
                view.azimuth_deg - input.azimuth_deg,
                view.radius - input.radius,
            ),
            Self::StableZero123 => stable_zero123(
                view.elevation_deg,
                view.azimuth_deg,
                input.elevation_deg,
                input.azimuth_deg,
            ),
        }
    }
}

/// The Zero123 demo's sliders: polar change (degrees, positive moves the camera down), azimuth
/// change (degrees), radius change.
pub fn demo(polar_deg: f64, azimuth_deg: f64, radius: f64) -> [f32; 4] {
    let azimuth = azimuth_deg.to_radians();
    [
        polar_deg.to_radians() as f32,
        azimuth.sin() as f32,
        azimuth.cos() as f32,
        radius as f32,
    ]
}

/// `get_T` of the training data: from the input's and the view's 3×4 world-to-camera
/// matrices (rows).
pub fn from_world_to_camera(input: &[[f64; 4]; 3], view: &[[f64; 4]; 3]) -> [f32; 4] {
    let (polar_input, azimuth_input, radius_input) = spherical(camera_centre(input));
    let (polar_view, azimuth_view, radius_view) = spherical(camera_centre(view));
    let d_azimuth = (azimuth_view - azimuth_input).rem_euclid(std::f64::consts::TAU);
    [
        (polar_view - polar_input) as f32,
        d_azimuth.sin() as f32,
        d_azimuth.cos() as f32,
        (radius_view - radius_input) as f32,
    ]
}

/// threestudio's Zero123 guidance: the view at (elevation, azimuth, distance), the input at
/// `input` (elevation, azimuth, distance), degrees.
pub fn threestudio(
    elevation_deg: f64,
    azimuth_deg: f64,
    distance: f64,
    input: (f64, f64, f64),
) -> [f32; 4] {
    let (input_elevation, input_azimuth, input_distance) = input;
    let azimuth = (azimuth_deg - input_azimuth).to_radians();
    [
        ((90.0 - elevation_deg) - (90.0 - input_elevation)).to_radians() as f32,
        azimuth.sin() as f32,
        azimuth.cos() as f32,
        (distance - input_distance) as f32,
    ]
}

/// Stable Zero123 (threestudio): the view at (elevation, azimuth), the input at
/// (`input_elevation_deg`, `input_azimuth_deg`).
pub fn stable_zero123(
    elevation_deg: f64,
    azimuth_deg: f64,
    input_elevation_deg: f64,
    input_azimuth_deg: f64,
) -> [f32; 4] {
    let [polar, sin, cos, _] = threestudio(
        elevation_deg,
        azimuth_deg,
        0.0,
        (input_elevation_deg, input_azimuth_deg, 0.0),
    );
    [
        polar,
        sin,
        cos,
        (90.0 - input_elevation_deg).to_radians() as f32,
    ]
}

/// The camera centre `−Rᵀ t` of a world-to-camera matrix.
fn camera_centre(rt: &[[f64; 4]; 3]) -> [f64; 3] {
    let mut centre = [0.0; 3];
    for (i, c) in centre.iter_mut().enumerate() {
        *c = -(0..3).map(|row| rt[row][i] * rt[row][3]).sum::<f64>();
    }
    centre
}

/// (polar angle from +Z, azimuth, radius) of a point.
fn spherical(p: [f64; 3]) -> (f64, f64, f64) {
    let xy = p[0] * p[0] + p[1] * p[1];
    (
        xy.sqrt().atan2(p[2]),
        p[1].atan2(p[0]),
        (xy + p[2] * p[2]).sqrt(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_moving_up_has_a_negative_polar_change_in_both_conventions() {
        let input = OrbitPose::new(0.0, 0.0, 1.5).expect("pose");
        let above = OrbitPose::new(30.0, 90.0, 1.5).expect("pose");
        let zero123 = CameraConvention::Zero123.embedding(&above, &input);
        assert!(
            (zero123[0] + 30f32.to_radians()).abs() < 1e-6,
            "{zero123:?}"
        );
        assert!((zero123[1] - 1.0).abs() < 1e-6 && zero123[2].abs() < 1e-6);
        assert_eq!(zero123[3], 0.0);
        let stable = CameraConvention::StableZero123.embedding(&above, &input);
        assert_eq!(stable[..3], zero123[..3]);
        assert!((stable[3] - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
    }
}
