//! The CPU twin of `common.wgsl`'s `sample_bilinear_clamped`: the same texel centres, weights
//! and clamping, written once for every CPU map (the fallbacks of renderers without wgpu, and
//! the references the offscreen tests compare the shaders against).

/// The texture `load(x, y)` of `width × height` texels at texture coordinates `(u, v)`
/// ((0, 0)–(1, 1) the whole texture), filtered bilinearly between the four nearest texels and
/// clamped to the edge. Texel centres sit at `(i + 0.5) / size`. An empty texture is read as
/// one texel.
pub fn bilinear_clamped<const N: usize>(
    width: usize,
    height: usize,
    load: impl Fn(usize, usize) -> [f32; N],
    u: f32,
    v: f32,
) -> [f32; N] {
    let (max_x, max_y) = (width.max(1) as i64 - 1, height.max(1) as i64 - 1);
    let at = |x: i64, y: i64| load(x.clamp(0, max_x) as usize, y.clamp(0, max_y) as usize);
    let pos_x = u * width.max(1) as f32 - 0.5;
    let pos_y = v * height.max(1) as f32 - 0.5;
    let (base_x, base_y) = (pos_x.floor(), pos_y.floor());
    let (frac_x, frac_y) = (pos_x - base_x, pos_y - base_y);
    let (x0, y0) = (base_x as i64, base_y as i64);
    let top = lerp(at(x0, y0), at(x0 + 1, y0), frac_x);
    let bottom = lerp(at(x0, y0 + 1), at(x0 + 1, y0 + 1), frac_x);
    lerp(top, bottom, frac_y)
}

/// `a + (b − a)·t` per component (WGSL's `mix`).
pub(crate) fn lerp<const N: usize>(a: [f32; N], b: [f32; N], t: f32) -> [f32; N] {
    std::array::from_fn(|k| a[k] + (b[k] - a[k]) * t)
}

/// The centre of pixel `index` of `count` in texture coordinates.
pub(crate) fn pixel_centre(index: usize, count: usize) -> f32 {
    (index as f32 + 0.5) / count as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texel_centres_are_exact_between_them_is_linear_and_edges_clamp() {
        // A 2×1 texture: 0 then 10.
        let load = |x: usize, _y: usize| [if x == 0 { 0.0 } else { 10.0 }];
        assert_eq!(bilinear_clamped(2, 1, load, 0.25, 0.5), [0.0]);
        assert_eq!(bilinear_clamped(2, 1, load, 0.75, 0.5), [10.0]);
        assert_eq!(bilinear_clamped(2, 1, load, 0.5, 0.5), [5.0]);
        assert_eq!(
            bilinear_clamped(2, 1, load, 0.0, 0.5),
            [0.0],
            "left edge clamps"
        );
        assert_eq!(
            bilinear_clamped(2, 1, load, 1.0, 0.5),
            [10.0],
            "right edge clamps"
        );
    }
}
