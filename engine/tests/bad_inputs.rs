//! Images as users' files come: cut off, rotated by a phone's EXIF tag, with trailers after
//! the data. Each case ends in the picture a photo viewer shows or in a clear error.

use image::{Rgb, RgbImage};
use lumos_engine::imageio::{decode_image, jpeg_is_complete};

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(image)
        .expect("encode");
    bytes
}

/// A noisy picture (so that its JPEG has a long scan to cut).
fn noisy(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7919 + y * 104_729) % 251;
        Rgb([v as u8, (v * 3 % 256) as u8, (255 - v) as u8])
    })
}

/// `jpeg` with an APP1 EXIF segment holding only an orientation tag, right after SOI.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut payload = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    payload.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    payload.extend_from_slice(&orientation.to_be_bytes());
    payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_truncated_jpeg_is_refused_at_any_cut() {
    let full = jpeg(&noisy(96, 64));
    assert!(jpeg_is_complete(&full));
    decode_image(&full, "whole.jpg").expect("the whole file decodes");
    for cut in [
        3_000.min(full.len() - 1),
        full.len() / 2,
        full.len() - 2,
        40,
    ] {
        let error = decode_image(&full[..cut], "cut.jpg").expect_err("a cut JPEG must fail");
        let message = error.to_string();
        assert!(
            message.contains("cut.jpg")
                && (message.contains("truncated") || message.contains("cannot decode")),
            "cut at {cut}: {message}"
        );
    }
}

#[test]
fn data_after_the_end_of_a_jpeg_is_accepted() {
    let mut bytes = jpeg(&noisy(32, 32));
    bytes.extend_from_slice(b"trailer written by a phone camera");
    let decoded = decode_image(&bytes, "trailer.jpg").expect("decodes");
    assert_eq!(decoded.dimensions(), (32, 32));
}

#[test]
fn the_exif_orientation_is_applied_as_photo_viewers_do() {
    // Stored landscape: red on the left, blue on the right.
    let stored = RgbImage::from_fn(64, 32, |x, _| {
        if x < 32 {
            Rgb([220, 20, 20])
        } else {
            Rgb([20, 20, 220])
        }
    });
    let plain = jpeg(&stored);
    assert_eq!(
        decode_image(&plain, "plain.jpg")
            .expect("decodes")
            .dimensions(),
        (64, 32)
    );
    // Orientation 6: shown rotated 90° clockwise, so the left (red) edge becomes the top.
    let rotated = decode_image(&with_orientation(&plain, 6), "portrait.jpg").expect("decodes");
    assert_eq!(rotated.dimensions(), (32, 64));
    let top = rotated.get_pixel(16, 8);
    let bottom = rotated.get_pixel(16, 56);
    assert!(top[0] > 150 && top[2] < 100, "top {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "bottom {bottom:?}");
    // Orientation 1 changes nothing.
    assert_eq!(
        decode_image(&with_orientation(&plain, 1), "upright.jpg")
            .expect("decodes")
            .dimensions(),
        (64, 32)
    );
}

fn png(image: impl Into<image::DynamicImage>) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .into()
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode png");
    bytes
}

/// The PNG flavours tools write — 16-bit, grey, grey + alpha, indexed — decode to the same RGB
/// (alpha dropped, as the original pipeline's `convert('RGB')` does).
#[test]
fn png_flavours_decode_to_the_same_rgb() {
    let rgb = RgbImage::from_fn(16, 8, |x, y| Rgb([(x * 16) as u8, (y * 32) as u8, 100]));
    let expected = decode_image(&png(rgb.clone()), "rgb.png").expect("rgb");
    assert_eq!(expected, rgb);

    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(16, 8, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgb([
            u16::from(p[0]) * 257,
            u16::from(p[1]) * 257,
            u16::from(p[2]) * 257,
        ])
    });
    assert_eq!(decode_image(&png(deep), "deep.png").expect("16-bit"), rgb);

    let rgba = image::RgbaImage::from_fn(16, 8, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgba([p[0], p[1], p[2], (x * 10) as u8])
    });
    assert_eq!(decode_image(&png(rgba), "alpha.png").expect("rgba"), rgb);

    let grey = image::GrayAlphaImage::from_fn(16, 8, |x, _| image::LumaA([(x * 16) as u8, 7]));
    let decoded = decode_image(&png(grey), "grey.png").expect("grey + alpha");
    assert_eq!(decoded.get_pixel(3, 0).0, [48, 48, 48]);

    // Indexed colour, written with the png crate (image writes no palettes).
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 4, 1);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]);
        let mut writer = encoder.write_header().expect("header");
        writer.write_image_data(&[0, 1, 2, 3]).expect("data");
    }
    let decoded = decode_image(&bytes, "palette.png").expect("indexed");
    assert_eq!(decoded.get_pixel(1, 0).0, [0, 255, 0]);
    assert_eq!(decoded.get_pixel(3, 0).0, [9, 9, 9]);
}

/// Nothing that is not a whole image gets through: empty, random bytes, a cut PNG.
#[test]
fn empty_random_and_cut_files_are_refused_with_their_name() {
    let whole = png(noisy(64, 64));
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty.png", Vec::new()),
        (
            "random.png",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
        ("cut.png", whole[..whole.len() / 2].to_vec()),
        ("header-only.png", whole[..33].to_vec()),
    ];
    for (name, bytes) in cases {
        let error = decode_image(&bytes, name).expect_err(name);
        assert!(error.to_string().contains(name), "{name}: {error}");
    }
}

/// An animated GIF of solid frames, one colour each.
fn animated_gif(colours: &[[u8; 3]]) -> Vec<u8> {
    let frames: Vec<RgbImage> = colours
        .iter()
        .map(|&c| RgbImage::from_pixel(8, 8, Rgb(c)))
        .collect();
    let refs: Vec<&RgbImage> = frames.iter().collect();
    lumos_engine::imageio::encode_gif(&refs, 100).expect("encode gif")
}

/// A RIFF chunk: id, little-endian size, data, a pad byte to even length.
fn riff_chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn u24(v: u32) -> [u8; 3] {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// An animated WebP (VP8X + ANIM + one ANMF per frame) of solid 8×8 frames. The frames are
/// lossless stills from image's encoder, re-wrapped the way libwebp's `img2webp` lays them out.
fn animated_webp(colours: &[[u8; 3]]) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0]; // animation flag
    vp8x.extend_from_slice(&u24(7));
    vp8x.extend_from_slice(&u24(7));
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    for &colour in colours {
        let mut still = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut still)
            .encode(
                RgbImage::from_pixel(8, 8, Rgb(colour)).as_raw(),
                8,
                8,
                image::ExtendedColorType::Rgb8,
            )
            .expect("encode webp");
        // still = RIFF size WEBP VP8L-chunk
        let vp8l = &still[12..];
        let mut frame = Vec::new();
        frame.extend_from_slice(&u24(0)); // x / 2
        frame.extend_from_slice(&u24(0)); // y / 2
        frame.extend_from_slice(&u24(7)); // width - 1
        frame.extend_from_slice(&u24(7)); // height - 1
        frame.extend_from_slice(&u24(100)); // duration, ms
        frame.push(0); // no blending flags: overwrite
        frame.extend_from_slice(vp8l);
        body.extend(riff_chunk(b"ANMF", &frame));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn animated_gif_and_webp_give_their_first_frame_and_say_so() {
    use lumos_engine::imageio::animation_notice;
    let colours = [[200, 10, 10], [10, 200, 10], [10, 10, 200]];
    for (kind, bytes) in [
        ("GIF", animated_gif(&colours)),
        ("WebP", animated_webp(&colours)),
    ] {
        let decoded = decode_image(&bytes, "anim").unwrap_or_else(|e| panic!("{kind}: {e:#}"));
        assert_eq!(decoded.dimensions(), (8, 8), "{kind}");
        let pixel = decoded.get_pixel(4, 4).0;
        let distance: i32 = pixel
            .iter()
            .zip(colours[0])
            .map(|(&a, b)| (i32::from(a) - i32::from(b)).abs())
            .sum();
        assert!(distance < 24, "{kind}: {pixel:?} is not the first frame");
        let notice = animation_notice(&bytes, "dance.anim").expect("said so");
        assert!(
            notice.contains("dance.anim")
                && notice.contains(kind)
                && notice.contains("first frame"),
            "{notice}"
        );
    }
    // A still picture gets no notice, and neither does a one-frame GIF.
    assert_eq!(
        animation_notice(&animated_gif(&colours[..1]), "still.gif"),
        None
    );
    let mut png = Vec::new();
    RgbImage::new(4, 4)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    assert_eq!(animation_notice(&png, "still.png"), None);
}
