//! Pillow's resampling of 8-bit RGB images (`libImaging/Resample.c`, `Reduce.c`,
//! `Image.resize(..., reducing_gap)`, `Image.thumbnail`), reproduced so that inputs prepared
//! here match the bytes the original Python demos feed their models: the I2I demo's bilinear
//! `Resize(224)` and the Zero123 demo's Lanczos `thumbnail([200, 200])`.
//!
//! What matters for the bytes: filter weights normalised per output pixel and rounded to
//! 22-bit fixed point; the horizontal pass first, clipped and rounded to `u8`, then the
//! vertical one; a source box given as f32; and for large shrinks (`reducing_gap`) a box
//! average by an integer factor first. No crate does this (`image`'s resize is float
//! throughout and differs by up to 19 levels at high-contrast edges).

use image::{ImageBuffer, Pixel, RgbImage, RgbaImage};

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle, support 1 (`Image.BILINEAR`).
    Bilinear,
    /// Windowed sinc, support 3 (`Image.LANCZOS`).
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point taps of one output position: first source index and weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for output positions over the source span
/// `[in0, in1)`.
fn taps(in_size: usize, in0: f32, in1: f32, out_size: usize, filter: Filter) -> Vec<Taps> {
    let scale = f64::from(in1 - in0) / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
            let raw: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| filter.weight((x as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|k| {
                    let k = if total != 0.0 { k / total } else { *k };
                    let fixed = k * f64::from(1u32 << PRECISION_BITS);
                    if fixed < 0.0 {
                        (fixed - 0.5) as i32
                    } else {
                        (fixed + 0.5) as i32
                    }
                })
                .collect();
            Taps {
                start: xmin,
                weights,
            }
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass along an axis with precomputed taps, every channel alike.
fn resample_axis<P>(
    src: &ImageBuffer<P, Vec<u8>>,
    taps: &[Taps],
    horizontal: bool,
) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let channels = usize::from(P::CHANNEL_COUNT);
    let (out_w, out_h) = if horizontal {
        (taps.len() as u32, src.height())
    } else {
        (src.width(), taps.len() as u32)
    };
    let mut out = ImageBuffer::<P, Vec<u8>>::new(out_w, out_h);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let tap = &taps[if horizontal { x } else { y } as usize];
        let mut acc = [1i64 << (PRECISION_BITS - 1); 4];
        for (i, &w) in tap.weights.iter().enumerate() {
            let s = (tap.start + i) as u32;
            let p = if horizontal {
                src.get_pixel(s, y)
            } else {
                src.get_pixel(x, s)
            };
            for (a, &v) in acc.iter_mut().zip(p.channels()) {
                *a += i64::from(v) * i64::from(w);
            }
        }
        for (dst, &a) in pixel.channels_mut().iter_mut().zip(&acc[..channels]) {
            *dst = clip8(a);
        }
    }
    out
}

/// `Image.resize((width, height), filter, box)` without a reducing gap; `area` is the source
/// box `[x0, y0, x1, y1]` (the whole image when `None`).
pub fn resize<P>(
    src: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
    filter: Filter,
    area: Option<[f32; 4]>,
) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (w, h) = src.dimensions();
    let [x0, y0, x1, y1] = area.unwrap_or([0.0, 0.0, w as f32, h as f32]);
    let need_horizontal = width != w || x0 != 0.0 || x1 != width as f32;
    let need_vertical = height != h || y0 != 0.0 || y1 != height as f32;
    let mut image = src.clone();
    if need_horizontal {
        let taps = taps(w as usize, x0, x1, width as usize, filter);
        image = resample_axis(&image, &taps, true);
    }
    if need_vertical {
        let taps = taps(h as usize, y0, y1, height as usize, filter);
        image = resample_axis(&image, &taps, false);
    }
    image
}

/// `Image.resize` of an RGBA image: Pillow resamples it premultiplied (`RGBA → RGBa`, with
/// its rounding `MULDIV255`), then divides the colour back out (`(255·c) / a`, truncated;
/// untouched where alpha is 0 or 255).
pub fn resize_rgba(src: &RgbaImage, width: u32, height: u32, filter: Filter) -> RgbaImage {
    let premultiplied = RgbaImage::from_fn(src.width(), src.height(), |x, y| {
        let [r, g, b, a] = src.get_pixel(x, y).0;
        let scale = |c: u8| {
            let t = u32::from(c) * u32::from(a) + 128;
            (((t >> 8) + t) >> 8) as u8
        };
        image::Rgba([scale(r), scale(g), scale(b), a])
    });
    let mut resized = resize(&premultiplied, width, height, filter, None);
    for pixel in resized.pixels_mut() {
        let [r, g, b, a] = pixel.0;
        if a != 0 && a != 255 {
            let unscale = |c: u8| ((255 * u32::from(c)) / u32::from(a)).min(255) as u8;
            pixel.0 = [unscale(r), unscale(g), unscale(b), a];
        }
    }
    resized
}

/// `Image.reduce((fx, fy), box)`: the average of each `fx × fy` block of the integer box
/// `[x0, y0, x1, y1]`, rounded; blocks cut by the box's edge average what they hold.
pub fn reduce(src: &RgbImage, fx: u32, fy: u32, area: [u32; 4]) -> RgbImage {
    let [x0, y0, x1, y1] = area;
    let out_w = (x1 - x0).div_ceil(fx);
    let out_h = (y1 - y0).div_ceil(fy);
    RgbImage::from_fn(out_w, out_h, |x, y| {
        let (sx, sy) = (x0 + x * fx, y0 + y * fy);
        let (ex, ey) = ((sx + fx).min(x1), (sy + fy).min(y1));
        let count = (ex - sx) * (ey - sy);
        let mut sum = [0u32; 3];
        for yy in sy..ey {
            for xx in sx..ex {
                let p = src.get_pixel(xx, yy).0;
                for c in 0..3 {
                    sum[c] += u32::from(p[c]);
                }
            }
        }
        image::Rgb(sum.map(|s| ((s + count / 2) / count) as u8))
    })
}

/// `Image.resize((width, height), filter, reducing_gap=gap)`: when the image is at least
/// `2·gap` times the target along an axis, a box reduction by `int(ratio / gap)` first, then
/// the filter over the matching fractional box.
pub fn resize_with_reducing_gap(
    src: &RgbImage,
    width: u32,
    height: u32,
    filter: Filter,
    gap: f64,
) -> RgbImage {
    let (w, h) = src.dimensions();
    let factor = |from: u32, to: u32| ((f64::from(from) / f64::from(to) / gap) as u32).max(1);
    let (fx, fy) = (factor(w, width), factor(h, height));
    if fx == 1 && fy == 1 {
        return resize(src, width, height, filter, None);
    }
    // `_get_safe_box`: the box grown by the filter's reach, so the reduction keeps every
    // pixel the resampling will read.
    let reach = filter.support() - 0.5;
    let (support_x, support_y) = (
        reach * f64::from(w) / f64::from(width),
        reach * f64::from(h) / f64::from(height),
    );
    let safe = [
        ((-support_x) as i64).max(0) as u32,
        ((-support_y) as i64).max(0) as u32,
        (f64::from(w) + support_x).ceil().min(f64::from(w)) as u32,
        (f64::from(h) + support_y).ceil().min(f64::from(h)) as u32,
    ];
    let reduced = reduce(src, fx, fy, safe);
    let area = [
        (0.0 - safe[0] as f64) as f32 / fx as f32,
        (0.0 - safe[1] as f64) as f32 / fy as f32,
        ((f64::from(w) - f64::from(safe[0])) / f64::from(fx)) as f32,
        ((f64::from(h) - f64::from(safe[1])) / f64::from(fy)) as f32,
    ];
    resize(&reduced, width, height, filter, Some(area))
}

/// `Image.thumbnail([side, side], LANCZOS)` (reducing gap 2): shrinks only, keeping the
/// aspect as Pillow rounds it.
pub fn thumbnail(src: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = thumbnail_size(src.width(), src.height(), side);
    if (w, h) == src.dimensions() {
        return src.clone();
    }
    resize_with_reducing_gap(src, w, h, Filter::Lanczos, 2.0)
}

/// Pillow's `thumbnail` size: shrink only, keep the aspect, the other side floor or ceil of
/// its exact value, whichever keeps the aspect closer (floor on a tie).
pub fn thumbnail_size(w: u32, h: u32, side: u32) -> (u32, u32) {
    if w <= side && h <= side {
        return (w, h);
    }
    let aspect = f64::from(w) / f64::from(h);
    let side_f = f64::from(side);
    let pick = |exact: f64, error: &dyn Fn(f64) -> f64| -> u32 {
        let (floor, ceil) = (exact.floor(), exact.ceil());
        let chosen = if error(ceil) < error(floor) {
            ceil
        } else {
            floor
        };
        chosen.max(1.0) as u32
    };
    // Pillow compares the box's aspect (`x / y`, here a square) with the image's.
    if aspect <= 1.0 {
        let x = pick(side_f * aspect, &|n| (aspect - n / side_f).abs());
        (x, side)
    } else {
        let y = pick(side_f / aspect, &|n| {
            if n == 0.0 {
                0.0
            } else {
                (aspect - side_f / n).abs()
            }
        });
        (side, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_shrink_only_and_keep_the_aspect_as_pillow_rounds_it() {
        assert_eq!(thumbnail_size(227, 160, 200), (200, 141));
        assert_eq!(thumbnail_size(824, 810, 200), (200, 197));
        assert_eq!(thumbnail_size(120, 80, 200), (120, 80));
        assert_eq!(thumbnail_size(50, 400, 200), (25, 200));
    }

    #[test]
    fn a_flat_image_stays_flat_through_every_path() {
        let flat = RgbImage::from_pixel(830, 410, image::Rgb([200, 17, 90]));
        for out in [
            thumbnail(&flat, 200),
            resize(&flat, 33, 21, Filter::Bilinear, None),
            reduce(&flat, 3, 2, [0, 0, 830, 410]),
        ] {
            assert!(out.pixels().all(|p| p.0 == [200, 17, 90]));
        }
    }
}
