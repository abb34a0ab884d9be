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
