//! Labelled contact sheets (A1111's X/Y plot): a grid of equally sized images with a label
//! above every column and left of every row, drawn with a built-in 3×5 pixel font so that no
//! font file is needed.

use image::{Rgb, RgbImage};

/// Glyph rows (3 bits each, MSB = left column) for the characters labels use.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        ' ' => [0, 0, 0, 0, 0],
        'a' => [2, 5, 7, 5, 5],
        'c' => [7, 4, 4, 4, 7],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [7, 4, 5, 5, 7],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [7, 5, 5, 5, 7],
        'r' => [6, 5, 6, 5, 5],
        's' => [7, 4, 7, 1, 7],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        _ => return None,
    })
}

/// Pixel scale of the font.
const SCALE: u32 = 2;
/// Width of one character cell (3 columns + 1 space), in pixels.
const CHAR_W: u32 = 4 * SCALE;
/// Height of a text line (5 rows + margins), in pixels.
const LINE_H: u32 = 9 * SCALE;

/// Draws `text` with its top-left corner at `(x, y)`; unknown characters are skipped.
pub fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, color: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let cx = x + i as u32 * CHAR_W;
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..3u32 {
                if bits & (4 >> rx) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (px, py) = (cx + rx * SCALE + dx, y + ry as u32 * SCALE + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, color);
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `text` drawn by [`draw_text`].
pub fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * CHAR_W
}

/// A grid of `cells[row][col]` (all the same size) with column labels on top and row labels
/// on the left, on white with 4-pixel gaps. `None` when there are no cells or sizes differ.
pub fn labelled_grid(
    cells: &[Vec<RgbImage>],
    row_labels: &[String],
    col_labels: &[String],
) -> Option<RgbImage> {
    let first = cells.first()?.first()?;
    let (w, h) = first.dimensions();
    if cells.iter().flatten().any(|c| c.dimensions() != (w, h)) {
        return None;
    }
    let gap = 4;
    let label_w = row_labels.iter().map(|l| text_width(l)).max().unwrap_or(0) + 2 * gap;
    let rows = cells.len() as u32;
    let cols = cells.iter().map(Vec::len).max()? as u32;
    let width = label_w + cols * (w + gap) + gap;
    let height = LINE_H + gap + rows * (h + gap) + gap;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let ink = Rgb([20, 20, 20]);
    for (c, label) in col_labels.iter().enumerate().take(cols as usize) {
        let x = label_w + c as u32 * (w + gap);
        draw_text(&mut sheet, x, gap, label, ink);
    }
    for (r, row) in cells.iter().enumerate() {
        let y = LINE_H + gap + r as u32 * (h + gap);
        if let Some(label) = row_labels.get(r) {
            draw_text(&mut sheet, gap, y + h / 2 - LINE_H / 2, label, ink);
        }
        for (c, cell) in row.iter().enumerate() {
            let x = label_w + c as u32 * (w + gap);
            image::imageops::replace(&mut sheet, cell, i64::from(x), i64::from(y));
        }
    }
    Some(sheet)
}

/// The labelled sheet of a sweep from its images in index order (row-major); `None` unless
/// `mode` is a sweep and every cell is there with the same size.
pub fn sweep_sheet(mode: &crate::protocol::Mode, images: &[&RgbImage]) -> Option<RgbImage> {
    let crate::protocol::Mode::Sweep { rows, guidance } = mode else {
        return None;
    };
    if images.len() != rows.len() * guidance.len() {
        return None;
    }
    let cells: Vec<Vec<RgbImage>> = images
        .chunks(guidance.len())
        .map(|row| row.iter().map(|&img| img.clone()).collect())
        .collect();
    let row_labels: Vec<String> = (0..rows.len()).map(|r| rows.label(r)).collect();
    let col_labels: Vec<String> = guidance.iter().map(|g| format!("cfg {g}")).collect();
    labelled_grid(&cells, &row_labels, &col_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_every_cell_and_draws_labels() {
        let red = RgbImage::from_pixel(10, 10, Rgb([255, 0, 0]));
        let blue = RgbImage::from_pixel(10, 10, Rgb([0, 0, 255]));
        let cells = vec![vec![red.clone(), blue.clone()], vec![blue, red]];
        let sheet = labelled_grid(
            &cells,
            &["seed 1".into(), "seed 2".into()],
            &["cfg 1".into(), "cfg 4.5".into()],
        )
        .expect("grid");
        let count = |color: Rgb<u8>| sheet.pixels().filter(|p| **p == color).count();
        assert_eq!(count(Rgb([255, 0, 0])), 200);
        assert_eq!(count(Rgb([0, 0, 255])), 200);
        assert!(count(Rgb([20, 20, 20])) > 50, "labels are drawn");
    }

    #[test]
    fn mismatched_sizes_are_refused() {
        let cells = vec![vec![RgbImage::new(4, 4), RgbImage::new(5, 4)]];
        assert!(labelled_grid(&cells, &[], &[]).is_none());
    }
}
