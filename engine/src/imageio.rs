//! Image files in and out: decoding with limits (corrupt, truncated and decompression-bomb
//! images get a clear error), and PNG writing with the settings embedded twice — an
//! A1111-style `parameters` tEXt chunk that other tools read, and our own versioned JSON in an
//! iTXt chunk (`lumos`) that restores a run when the file is dropped back on the app.
//!
//! Writes are atomic (temporary file, then link/rename) and never replace an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{EngineError, Result};
use crate::protocol::{GenerationMeta, Mode};

/// Largest image file we read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest decoded side length.
pub const MAX_SIDE_PX: u32 = 16_384;
/// Largest decoded allocation.
pub const MAX_DECODED_BYTES: u64 = 512 << 20;
/// Keyword of our JSON chunk.
pub const META_KEYWORD: &str = "lumos";
/// Keyword of the A1111-style chunk.
pub const PARAMETERS_KEYWORD: &str = "parameters";

fn image_error(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Image {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads and decodes an image file into RGB (alpha dropped, as PIL's `convert('RGB')`). An
/// animated GIF, WebP or PNG gives its first frame ([`load_image_with_notice`] says so).
pub fn load_image(path: &Path) -> Result<RgbImage> {
    load_image_with_notice(path).map(|(image, _)| image)
}

/// Like [`load_image`], with a notice for the user when the file is animated (only its first
/// frame is used).
pub fn load_image_with_notice(path: &Path) -> Result<(RgbImage, Option<String>)> {
    let len = std::fs::metadata(path)
        .map_err(|e| image_error(path, e))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(image_error(
            path,
            format!(
                "the file is {} MiB; the limit is {} MiB",
                len >> 20,
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| image_error(path, e))?;
    let image = decode_image(&bytes, &path.display().to_string())?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((image, animation_notice(&bytes, &name)))
}

/// A notice when `bytes` hold an animated image (GIF, WebP or APNG with more than one frame):
/// the decoders give its first frame, and the user should know that the rest is not used.
/// `None` for still images and for anything that does not decode.
pub fn animation_notice(bytes: &[u8], name: &str) -> Option<String> {
    use image::AnimationDecoder as _;
    let cursor = || std::io::Cursor::new(bytes);
    let kind = match image::guess_format(bytes).ok()? {
        image::ImageFormat::Gif => {
            let mut decoder = image::codecs::gif::GifDecoder::new(cursor()).ok()?;
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(MAX_DECODED_BYTES);
            image::ImageDecoder::set_limits(&mut decoder, limits).ok()?;
            // Decoding a second frame is enough to know; never the whole animation.
            let frames = decoder.into_frames().take(2).filter(|f| f.is_ok()).count();
            (frames > 1).then_some("GIF")?
        }
        image::ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(cursor())
            .ok()?
            .has_animation()
            .then_some("WebP")?,
        image::ImageFormat::Png => image::codecs::png::PngDecoder::new(cursor())
            .ok()?
            .is_apng()
            .ok()?
            .then_some("PNG (APNG)")?,
        _ => return None,
    };
    Some(format!(
        "{name} is an animated {kind}: only its first frame is used."
    ))
}

/// Decodes an in-memory image (e.g. pasted or dropped bytes); `name` is used in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let path = PathBuf::from(name);
    if bytes.is_empty() {
        return Err(image_error(&path, "the file is empty"));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| image_error(&path, e))?;
    if reader.format().is_none() {
        return Err(image_error(
            &path,
            "not a recognised image (PNG, JPEG, WebP, GIF or BMP)",
        ));
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        // The decoder would fill the missing part with grey and carry on.
        return Err(image_error(
            &path,
            "the JPEG is truncated (it ends before its end-of-image marker); \
             the file was probably cut off while downloading or copying",
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PX);
    limits.max_image_height = Some(MAX_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let decoded = decode_oriented(reader).map_err(|e| match e {
        image::ImageError::Limits(_) => image_error(
            &path,
            format!(
                "the image is too large to decode safely (limit {MAX_SIDE_PX} px per side, \
                 {} MiB); scale it down first",
                MAX_DECODED_BYTES >> 20
            ),
        ),
        other => image_error(
            &path,
            format!("cannot decode ({other}); the file may be corrupt or truncated"),
        ),
    })?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(image_error(&path, "the image has no pixels"));
    }
    Ok(decoded.to_rgb8())
}

/// Decodes with the EXIF orientation applied, as every photo viewer shows the picture (phones
/// store portrait photos landscape with an orientation tag).
fn decode_oriented<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
) -> image::ImageResult<image::DynamicImage> {
    use image::ImageDecoder;
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut decoded = image::DynamicImage::from_decoder(decoder)?;
    decoded.apply_orientation(orientation);
    Ok(decoded)
}

/// Whether a JPEG's data reaches its end-of-image marker (FF D9) after the first scan. Markers
/// are walked by their lengths up to the first start-of-scan, so the end marker of an embedded
/// EXIF thumbnail does not count; inside the entropy-coded data FF bytes are stuffed (FF 00),
/// so FF D9 there is the real end. Data after the marker (trailers, motion-photo video) is fine.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        let marker = bytes[at + 1];
        match marker {
            0xFF => at += 1,      // fill byte
            0xD9 => return false, // end before any scan
            0x01 | 0xD0..=0xD7 => at += 2,
            0xDA => {
                return bytes[at + 2..].windows(2).any(|w| w == [0xFF, 0xD9]);
            }
            _ => {
                let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
                at += 2 + len;
            }
        }
    }
    false
}

/// SHA-256 of an image's RGB pixels with its size, as lowercase hex.
pub fn pixel_hash(img: &RgbImage) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(img.width().to_le_bytes());
    hasher.update(img.height().to_le_bytes());
    hasher.update(img.as_raw());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of raw bytes, as lowercase hex.
pub fn bytes_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The A1111-style `parameters` text for a result.
pub fn parameters_text(meta: &GenerationMeta) -> String {
    if let Some(prompt) = &meta.prompt {
        // As A1111 writes it: the prompt, then one line of settings.
        return format!(
            "{}\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
            prompt.trim_end(),
            meta.settings.steps,
            meta.settings.solver,
            meta.settings.guidance,
            meta.settings.seed,
            meta.size[0],
            meta.size[1],
            meta.model,
        );
    }
    let refs: Vec<String> = meta
        .references
        .iter()
        .map(|r| format!("{} ({:.2})", r.name, r.weight))
        .collect();
    let mode = match &meta.mode {
        Mode::Variations { count } => format!("variations x{count}"),
        Mode::Interpolate { frames, path } => format!("interpolate {frames} frames ({path:?})"),
        Mode::Sweep { rows, guidance } => format!("sweep {} x {}", rows.len(), guidance.len()),
    };
    format!(
        "references: {}\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}, Mode: {}",
        refs.join(", "),
        meta.settings.steps,
        meta.settings.solver,
        meta.settings.guidance,
        meta.settings.seed,
        meta.size[0],
        meta.size[1],
        meta.model,
        mode,
    )
}

/// Encodes a PNG with both metadata chunks.
pub fn encode_png(img: &RgbImage, meta: Option<&GenerationMeta>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, img.width(), img.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encode_error = |e: png::EncodingError| EngineError::Write {
        path: PathBuf::from("<png>"),
        reason: e.to_string(),
    };
    if let Some(meta) = meta {
        let json = serde_json::to_string(meta).map_err(|e| EngineError::Write {
            path: PathBuf::from("<png>"),
            reason: e.to_string(),
        })?;
        let parameters = parameters_text(meta);
        // tEXt is what other tools read; it is Latin-1 only, so fall back to iTXt.
        if parameters.chars().all(|c| u32::from(c) < 256) {
            encoder.add_text_chunk(PARAMETERS_KEYWORD.into(), parameters)
        } else {
            encoder.add_itxt_chunk(PARAMETERS_KEYWORD.into(), parameters)
        }
        .map_err(encode_error)?;
        encoder
            .add_itxt_chunk(META_KEYWORD.into(), json)
            .map_err(encode_error)?;
    }
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer
        .write_image_data(img.as_raw())
        .map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    Ok(bytes)
}

/// The opacity of an encoded image, if it has any transparent pixel (255 = opaque). Only
/// formats with alpha are decoded a second time; any error means "no alpha" (the RGB decode
/// says what is wrong with a bad file).
pub fn decode_alpha(bytes: &[u8]) -> Option<image::GrayImage> {
    use image::ImageDecoder as _;
    let decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    if !decoder.color_type().has_alpha() {
        return None;
    }
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE_PX || h > MAX_SIDE_PX {
        return None;
    }
    let rgba = image::DynamicImage::from_decoder(decoder).ok()?.to_rgba8();
    let alpha = image::GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        image::Luma([rgba.get_pixel(x, y).0[3]])
    });
    alpha.pixels().any(|p| p.0[0] < 255).then_some(alpha)
}

/// Encodes an RGB or RGBA PNG with extra iTXt chunks (keyword, text), e.g. a view's camera.
pub fn encode_png_with_text(
    img: &image::DynamicImage,
    chunks: &[(&str, String)],
) -> Result<Vec<u8>> {
    let encode_error = |e: png::EncodingError| EngineError::Write {
        path: PathBuf::from("<png>"),
        reason: e.to_string(),
    };
    let (color, raw) = match img {
        image::DynamicImage::ImageRgba8(rgba) => (png::ColorType::Rgba, rgba.as_raw().clone()),
        other => (png::ColorType::Rgb, other.to_rgb8().into_raw()),
    };
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, img.width(), img.height());
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    for (keyword, text) in chunks {
        encoder
            .add_itxt_chunk((*keyword).into(), text.clone())
            .map_err(encode_error)?;
    }
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer.write_image_data(&raw).map_err(encode_error)?;
    writer.finish().map_err(encode_error)?;
    Ok(bytes)
}

/// Reads the text of the iTXt/tEXt chunk `keyword` of a PNG, if it has one.
pub fn read_png_text(path: &Path, keyword: &str) -> Result<Option<String>> {
    let file = std::fs::File::open(path).map_err(|e| image_error(path, e))?;
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| image_error(path, format!("not a readable PNG ({e})")))?;
    let info = reader.info();
    if let Some(chunk) = info.utf8_text.iter().find(|c| c.keyword == keyword) {
        return chunk
            .get_text()
            .map(Some)
            .map_err(|e| image_error(path, format!("unreadable {keyword} chunk ({e})")));
    }
    Ok(info
        .uncompressed_latin1_text
        .iter()
        .find(|c| c.keyword == keyword)
        .map(|c| c.text.clone()))
}

/// Why a write failed, in words that say what to do.
pub fn write_failure(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            format!("the disk is full ({error}); free some space or choose another folder")
        }
        ErrorKind::ReadOnlyFilesystem => {
            format!("the folder is on a read-only disk ({error}); choose another folder")
        }
        ErrorKind::PermissionDenied => {
            format!("no permission to write there ({error}); choose another folder")
        }
        ErrorKind::NotFound => {
            format!("the folder is gone ({error}); it was removed or its disk was unplugged")
        }
        _ => error.to_string(),
    }
}

/// Writes `bytes` to `path` atomically; fails if `path` exists (nothing is overwritten) and
/// leaves no partial file behind on failure (e.g. a full disk).
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let write_error = |reason: String| EngineError::Write {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        return Err(write_error(
            "the file already exists; choose another name or folder".into(),
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_error(write_failure(&e)));
    }
    // A hard link fails if the target appeared meanwhile, so nothing is ever replaced.
    let linked = std::fs::hard_link(&tmp, path);
    let outcome = match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(write_error(
            "the file already exists; choose another name or folder".into(),
        )),
        Err(_) if !path.exists() => {
            std::fs::rename(&tmp, path).map_err(|e| write_error(write_failure(&e)))
        }
        Err(e) => Err(write_error(write_failure(&e))),
    };
    let _ = std::fs::remove_file(&tmp);
    outcome
}

/// Replaces `path` with `bytes` atomically (temporary file beside it, flushed to disk, then
/// renamed over it): a reader, a crash or a full disk sees the old file or the new one, never
/// half of either. For files the user asked to replace (a project's Save); results use
/// [`write_new_file`], which never replaces anything.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let write_error = |reason: String| EngineError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| write_error("the path names no file".into()))?;
    let tmp = dir.join(format!(".{file_name}.{}.replace.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is flushed (where the OS allows it).
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(write_failure(&e))
    })
}

/// Writes a result PNG with its settings; never overwrites.
pub fn write_png(path: &Path, img: &RgbImage, meta: &GenerationMeta) -> Result<()> {
    let bytes = encode_png(img, Some(meta)).map_err(|e| match e {
        EngineError::Write { reason, .. } => EngineError::Write {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    })?;
    write_new_file(path, &bytes)
}

/// Reads our JSON settings back from a PNG; `Ok(None)` when the PNG carries none.
pub fn read_png_meta(path: &Path) -> Result<Option<GenerationMeta>> {
    let file = std::fs::File::open(path).map_err(|e| image_error(path, e))?;
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let reader = decoder
        .read_info()
        .map_err(|e| image_error(path, format!("not a readable PNG ({e})")))?;
    let info = reader.info();
    for chunk in &info.utf8_text {
        if chunk.keyword == META_KEYWORD {
            let text = chunk
                .get_text()
                .map_err(|e| image_error(path, format!("unreadable settings chunk ({e})")))?;
            let meta = serde_json::from_str(&text)
                .map_err(|e| image_error(path, format!("unreadable settings ({e})")))?;
            return Ok(Some(meta));
        }
    }
    Ok(None)
}

/// torchvision's `make_grid(images, nrow, padding, pad_value=1)` on u8 images of equal size:
/// `nrow` images per row, `padding` white pixels around and between.
pub fn make_grid(images: &[&RgbImage], nrow: usize, padding: u32) -> Option<RgbImage> {
    let first = images.first()?;
    if images.len() == 1 {
        return Some((*first).clone());
    }
    let (w, h) = (first.width(), first.height());
    let cols = nrow.clamp(1, images.len()) as u32;
    let rows = images.len().div_ceil(cols as usize) as u32;
    let cell_w = w + padding;
    let cell_h = h + padding;
    let mut grid = RgbImage::from_pixel(
        cols * cell_w + padding,
        rows * cell_h + padding,
        image::Rgb([255; 3]),
    );
    for (i, img) in images.iter().enumerate() {
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        image::imageops::replace(
            &mut grid,
            *img,
            i64::from(col * cell_w + padding),
            i64::from(row * cell_h + padding),
        );
    }
    Some(grid)
}

/// An animated GIF (looping) of equally sized frames, `delay_millis` per frame.
pub fn encode_gif(frames: &[&RgbImage], delay_millis: u32) -> Result<Vec<u8>> {
    let gif_error = |e: image::ImageError| EngineError::Write {
        path: PathBuf::from("<gif>"),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(gif_error)?;
        for frame in frames {
            let rgba = image::DynamicImage::ImageRgb8((*frame).clone()).to_rgba8();
            let delay = image::Delay::from_numer_denom_ms(delay_millis, 1);
            encoder
                .encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))
                .map_err(gif_error)?;
        }
    }
    Ok(bytes)
}
