//! Extruded silhouettes: the outline of a corpus image (an emoji, an icon) made into a slab
//! with the image printed on both faces — flat objects with a recognisable outline, which the
//! procedural solids lack.
//!
//! The corpus is drawn on white, so the outline is the set of pixels that are not near white.
//! The slab is built on a grid over that mask: a face where a row's cells are set (runs merged
//! into one quad, whose texture coordinates stay exact because they are linear along it), a
//! wall wherever a set cell meets an unset one. Marching squares would smooth the outline's
//! staircase, but at [`GRID`] cells across the object a step is 1–2 pixels at the sizes the
//! dataset renders (64–128 px), within the 2 × 2 supersampling's reach.

use image::RgbImage;

use super::{Mesh, Vertex};

/// Cells across the image.
pub const GRID: u32 = 64;
/// A pixel belongs to the outline when its darkest channel is below this.
const NOT_WHITE: u8 = 235;
/// Fewer set cells than this share of the grid, or more than `1 - MIN_SHARE`, is no outline.
const MIN_SHARE: f32 = 0.05;

/// The outline of `image` on a `GRID × GRID` grid, row 0 at the top: a cell is set when at
/// least half of its pixels are not near white. `None` when the image has no usable outline
/// (almost blank, or almost all ink, like a photo).
pub fn silhouette_mask(image: &RgbImage) -> Option<Vec<bool>> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return None;
    }
    let mut mask = vec![false; (GRID * GRID) as usize];
    for row in 0..GRID {
        let (y0, y1) = (
            row * h / GRID,
            ((row + 1) * h / GRID).max(row * h / GRID + 1),
        );
        for col in 0..GRID {
            let (x0, x1) = (
                col * w / GRID,
                ((col + 1) * w / GRID).max(col * w / GRID + 1),
            );
            let (mut ink, mut all) = (0u32, 0u32);
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    all += 1;
                    if image.get_pixel(x, y).0.iter().any(|&c| c < NOT_WHITE) {
                        ink += 1;
                    }
                }
            }
            mask[(row * GRID + col) as usize] = 2 * ink >= all.max(1);
        }
    }
    let share = mask.iter().filter(|&&set| set).count() as f32 / mask.len() as f32;
    (MIN_SHARE..=1.0 - MIN_SHARE)
        .contains(&share)
        .then_some(mask)
}

/// The slab of `image`'s outline: the image spans x ∈ [−0.5, 0.5] (left to right) and
/// z ∈ [−0.5, 0.5] (bottom to top), the slab y ∈ [−`half_depth`, `half_depth`]; the image reads
/// the right way round from −Y. Centred on its outline's bounding box. `None` without an
/// outline (see [`silhouette_mask`]).
pub fn extruded_silhouette(image: &RgbImage, half_depth: f32) -> Option<Mesh> {
    let mask = silhouette_mask(image)?;
    let set = |col: i64, row: i64| {
        (0..i64::from(GRID)).contains(&col)
            && (0..i64::from(GRID)).contains(&row)
            && mask[(row * i64::from(GRID) + col) as usize]
    };
    let cell = 1.0 / GRID as f32;
    // Grid corner (col, row) → position and texture coordinate (u clamped off 1.0, where the
    // sampler wraps).
    let x_of = |col: f32| col * cell - 0.5;
    let z_of = |row: f32| 0.5 - row * cell;
    let uv_of = |col: f32, row: f32| [(col * cell).min(1.0 - 1e-4), 1.0 - row * cell];
    let mut mesh = Mesh::default();
    let mut quad = |corners: [([f32; 3], [f32; 2]); 4], normal: [f32; 3]| {
        let first = mesh.vertices.len() as u32;
        for (position, uv) in corners {
            mesh.vertices.push(Vertex {
                position,
                normal,
                uv,
            });
        }
        mesh.triangles.push([first, first + 1, first + 2]);
        mesh.triangles.push([first, first + 2, first + 3]);
    };
    for row in 0..i64::from(GRID) {
        let (top, bottom) = (row as f32, row as f32 + 1.0);
        // Faces: one quad per run of set cells, front (−Y) and back (+Y).
        let mut col = 0;
        while col < i64::from(GRID) {
            if !set(col, row) {
                col += 1;
                continue;
            }
            let start = col;
            while set(col, row) {
                col += 1;
            }
            let (left, right) = (start as f32, col as f32);
            for (y, normal) in [
                (-half_depth, [0.0, -1.0, 0.0]),
                (half_depth, [0.0, 1.0, 0.0]),
            ] {
                quad(
                    [
                        ([x_of(left), y, z_of(bottom)], uv_of(left, bottom)),
                        ([x_of(right), y, z_of(bottom)], uv_of(right, bottom)),
                        ([x_of(right), y, z_of(top)], uv_of(right, top)),
                        ([x_of(left), y, z_of(top)], uv_of(left, top)),
                    ],
                    normal,
                );
            }
        }
        // Walls: each edge between a set cell and an unset one, coloured like the set cell.
        for col in 0..i64::from(GRID) {
            if !set(col, row) {
                continue;
            }
            let (left, right) = (col as f32, col as f32 + 1.0);
            let uv = uv_of(left + 0.5, top + 0.5);
            let edges = [
                (
                    set(col - 1, row),
                    [-1.0, 0.0, 0.0],
                    [(left, top), (left, bottom)],
                ),
                (
                    set(col + 1, row),
                    [1.0, 0.0, 0.0],
                    [(right, top), (right, bottom)],
                ),
                (
                    set(col, row - 1),
                    [0.0, 0.0, 1.0],
                    [(left, top), (right, top)],
                ),
                (
                    set(col, row + 1),
                    [0.0, 0.0, -1.0],
                    [(left, bottom), (right, bottom)],
                ),
            ];
            for (neighbour_set, normal, [(c0, r0), (c1, r1)]) in edges {
                if neighbour_set {
                    continue;
                }
                quad(
                    [
                        ([x_of(c0), -half_depth, z_of(r0)], uv),
                        ([x_of(c1), -half_depth, z_of(r1)], uv),
                        ([x_of(c1), half_depth, z_of(r1)], uv),
                        ([x_of(c0), half_depth, z_of(r0)], uv),
                    ],
                    normal,
                );
            }
        }
    }
    mesh.centre_on_bounds();
    Some(mesh)
}
