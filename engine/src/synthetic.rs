//! Ground truth for multi-view models: textured procedural objects rendered from known orbit
//! cameras, by a small CPU rasteriser.
//!
//! No 3D asset corpus can be downloaded here, so the project makes its own: spheres, boxes,
//! cylinders, cones, tori and superquadrics, extruded silhouettes of corpus images
//! ([`silhouette`]) and compositions of two or three solids, textured with corpus images, lit
//! by an ambient term plus a Lambert light, on white, seen from the cameras of
//! [`crate::camera`] (Z up, OpenGL axes). Each view gives RGB, alpha (coverage) and depth. Training a novel-view prior
//! on these and measuring its views against the true ones is what the built-in multi-view
//! model is built from.
//!
//! Hand-written rather than through wgpu: a few hundred triangles at 64–256 px render in
//! milliseconds on a CPU, the output is bit-for-bit deterministic on every machine (training
//! data and test references must not depend on a GPU driver), and it runs where no GPU
//! adapter exists.

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::camera::OrbitPose;

pub mod silhouette;

/// A procedural shape, sized to fit inside a sphere of radius 0.5 around the origin.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shape {
    /// A sphere.
    Sphere,
    /// An axis-aligned box with these half extents.
    Box {
        /// Half extents x, y, z.
        half: [f32; 3],
    },
    /// A capped cylinder along Z.
    Cylinder {
        /// Radius.
        radius: f32,
        /// Half height.
        half_height: f32,
    },
    /// A capped cone along Z, apex up.
    Cone {
        /// Base radius.
        radius: f32,
        /// Half height.
        half_height: f32,
    },
    /// A torus around Z.
    Torus {
        /// Radius of the ring's centre line.
        major: f32,
        /// Radius of the tube.
        minor: f32,
    },
    /// A superquadric `|x|^(2/e2) + |y|^(2/e2))^(e2/e1) + |z|^(2/e1) = 1`, scaled.
    Superquadric {
        /// Vertical exponent (small: flat top and bottom).
        e1: f32,
        /// Horizontal exponent (small: square cross-section).
        e2: f32,
        /// Semi-axes.
        scale: [f32; 3],
    },
    /// The outline of the object's texture image extruded into a slab standing in the XZ
    /// plane, the image on both faces ([`silhouette::extruded_silhouette`]). Without its image
    /// ([`Mesh::of`]) it is the slab of the whole square.
    Extrusion {
        /// Half thickness, where the image is 1 wide.
        half_depth: f32,
    },
}

/// A further solid of a composed object: a shape, scaled, then moved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Its shape (a procedural solid).
    pub shape: Shape,
    /// Uniform scale of the shape.
    pub scale: f32,
    /// Where its centre goes.
    pub offset: [f32; 3],
}

/// A vertex of a mesh.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vertex {
    /// Position.
    pub position: [f32; 3],
    /// Unit normal.
    pub normal: [f32; 3],
    /// Texture coordinate in [0, 1]².
    pub uv: [f32; 2],
}

/// A triangle mesh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mesh {
    /// Vertices.
    pub vertices: Vec<Vertex>,
    /// Counter-clockwise triangles (seen from outside).
    pub triangles: Vec<[u32; 3]>,
}

/// Segments around and along parametric surfaces.
const SEGMENTS: usize = 48;

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = dot(a, a).sqrt();
    if n > 1e-12 {
        [a[0] / n, a[1] / n, a[2] / n]
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// `sign(x)·|x|^e`, the superquadric's signed power.
fn signed_pow(x: f32, e: f32) -> f32 {
    x.signum() * x.abs().powf(e)
}

impl Mesh {
    /// A grid over a parametric surface `f(u, v)`, u around (wrapping), v along; normals from
    /// the surface's derivatives, oriented away from the origin.
    fn parametric(f: impl Fn(f32, f32) -> [f32; 3], v_range: (f32, f32)) -> Self {
        let mut mesh = Mesh::default();
        let (nu, nv) = (SEGMENTS, SEGMENTS / 2);
        let eps = 1e-3;
        for j in 0..=nv {
            for i in 0..=nu {
                let (s, t) = (i as f32 / nu as f32, j as f32 / nv as f32);
                let u = s * std::f32::consts::TAU;
                let v = v_range.0 + t * (v_range.1 - v_range.0);
                let p = f(u, v);
                let du = sub(f(u + eps, v), f(u - eps, v));
                let dv = sub(
                    f(u, (v + eps).min(v_range.1)),
                    f(u, (v - eps).max(v_range.0)),
                );
                let mut n = normalize(cross(du, dv));
                if dot(n, p) < 0.0 {
                    n = [-n[0], -n[1], -n[2]];
                }
                mesh.vertices.push(Vertex {
                    position: p,
                    normal: n,
                    uv: [s, 1.0 - t],
                });
            }
        }
        let row = (nu + 1) as u32;
        for j in 0..nv as u32 {
            for i in 0..nu as u32 {
                let (a, b, c, d) = (
                    j * row + i,
                    j * row + i + 1,
                    (j + 1) * row + i,
                    (j + 1) * row + i + 1,
                );
                mesh.triangles.push([a, b, d]);
                mesh.triangles.push([a, d, c]);
            }
        }
        mesh
    }

    /// Appends a flat disc (a cap) at height `z` with radius `r`, facing up or down.
    fn add_cap(&mut self, z: f32, r: f32, up: bool) {
        let centre = self.vertices.len() as u32;
        let normal = [0.0, 0.0, if up { 1.0 } else { -1.0 }];
        self.vertices.push(Vertex {
            position: [0.0, 0.0, z],
            normal,
            uv: [0.5, 0.5],
        });
        for i in 0..=SEGMENTS {
            let a = i as f32 / SEGMENTS as f32 * std::f32::consts::TAU;
            self.vertices.push(Vertex {
                position: [r * a.cos(), r * a.sin(), z],
                normal,
                uv: [0.5 + 0.5 * a.cos(), 0.5 + 0.5 * a.sin()],
            });
        }
        for i in 0..SEGMENTS as u32 {
            let (a, b) = (centre + 1 + i, centre + 2 + i);
            self.triangles
                .push(if up { [centre, a, b] } else { [centre, b, a] });
        }
    }

    /// The mesh of a shape.
    pub fn of(shape: &Shape) -> Self {
        use std::f32::consts::FRAC_PI_2;
        match *shape {
            Shape::Sphere => Self::parametric(
                |u, v| {
                    [
                        0.5 * v.cos() * u.cos(),
                        0.5 * v.cos() * u.sin(),
                        0.5 * v.sin(),
                    ]
                },
                (-FRAC_PI_2, FRAC_PI_2),
            ),
            Shape::Box { half } => Self::of(&Shape::Superquadric {
                e1: 0.1,
                e2: 0.1,
                scale: half,
            }),
            Shape::Cylinder {
                radius,
                half_height,
            } => {
                let mut mesh = Self::parametric(
                    |u, v| [radius * u.cos(), radius * u.sin(), v],
                    (-half_height, half_height),
                );
                mesh.add_cap(half_height, radius, true);
                mesh.add_cap(-half_height, radius, false);
                mesh
            }
            Shape::Cone {
                radius,
                half_height,
            } => {
                let mut mesh = Self::parametric(
                    |u, v| {
                        let r = radius * (half_height - v) / (2.0 * half_height);
                        [r * u.cos(), r * u.sin(), v]
                    },
                    (-half_height, half_height),
                );
                mesh.add_cap(-half_height, radius, false);
                mesh
            }
            Shape::Torus { major, minor } => {
                let mut mesh = Self::parametric(
                    |u, v| {
                        let r = major + minor * v.cos();
                        [r * u.cos(), r * u.sin(), minor * v.sin()]
                    },
                    (-std::f32::consts::PI, std::f32::consts::PI),
                );
                // Outward from the tube's centre line, not from the origin.
                for vertex in &mut mesh.vertices {
                    let p = vertex.position;
                    let ring = normalize([p[0], p[1], 0.0]);
                    let centre = [ring[0] * major, ring[1] * major, 0.0];
                    vertex.normal = normalize(sub(p, centre));
                }
                mesh
            }
            Shape::Extrusion { half_depth } => Self::of(&Shape::Box {
                half: [0.5, half_depth, 0.5],
            }),
            Shape::Superquadric { e1, e2, scale } => Self::parametric(
                |u, v| {
                    let cv = signed_pow(v.cos(), e1);
                    [
                        scale[0] * cv * signed_pow(u.cos(), e2),
                        scale[1] * cv * signed_pow(u.sin(), e2),
                        scale[2] * signed_pow(v.sin(), e1),
                    ]
                },
                (-FRAC_PI_2, FRAC_PI_2),
            ),
        }
    }

    /// Rotates the mesh about Z, then X (degrees), in place.
    pub fn rotate(&mut self, about_z_deg: f32, about_x_deg: f32) {
        let (sz, cz) = about_z_deg.to_radians().sin_cos();
        let (sx, cx) = about_x_deg.to_radians().sin_cos();
        let turn = |p: [f32; 3]| {
            let q = [cz * p[0] - sz * p[1], sz * p[0] + cz * p[1], p[2]];
            [q[0], cx * q[1] - sx * q[2], sx * q[1] + cx * q[2]]
        };
        for vertex in &mut self.vertices {
            vertex.position = turn(vertex.position);
            vertex.normal = turn(vertex.normal);
        }
    }
}

impl Mesh {
    /// The mesh of a dataset object: its shape (an extrusion of `texture`'s outline, when it
    /// is one and the texture has an outline), then each further part; a composition is
    /// centred on its bounding box.
    pub fn of_object(shape: &Shape, parts: &[Part], texture: &RgbImage) -> Self {
        let mut mesh = match *shape {
            Shape::Extrusion { half_depth } => silhouette::extruded_silhouette(texture, half_depth)
                .unwrap_or_else(|| Self::of(shape)),
            _ => Self::of(shape),
        };
        for part in parts {
            let first = mesh.vertices.len() as u32;
            let solid = Self::of(&part.shape);
            mesh.vertices.extend(solid.vertices.iter().map(|v| Vertex {
                position: [0, 1, 2].map(|i| v.position[i] * part.scale + part.offset[i]),
                ..*v
            }));
            mesh.triangles
                .extend(solid.triangles.iter().map(|t| t.map(|i| i + first)));
        }
        if !parts.is_empty() {
            mesh.centre_on_bounds();
        }
        mesh
    }

    /// Moves the mesh so that its axis-aligned bounding box is centred on the origin.
    pub fn centre_on_bounds(&mut self) {
        let mut low = [f32::INFINITY; 3];
        let mut high = [f32::NEG_INFINITY; 3];
        for v in &self.vertices {
            for i in 0..3 {
                low[i] = low[i].min(v.position[i]);
                high[i] = high[i].max(v.position[i]);
            }
        }
        if self.vertices.is_empty() {
            return;
        }
        let centre = [0, 1, 2].map(|i| 0.5 * (low[i] + high[i]));
        for v in &mut self.vertices {
            v.position = [0, 1, 2].map(|i| v.position[i] - centre[i]);
        }
    }

    /// Scales the mesh (about the origin) so that no vertex is farther than `radius`.
    pub fn fit_in_ball(&mut self, radius: f32) {
        let far = self
            .vertices
            .iter()
            .map(|v| dot(v.position, v.position).sqrt())
            .fold(0f32, f32::max);
        if far > radius {
            let s = radius / far;
            for v in &mut self.vertices {
                v.position = v.position.map(|c| c * s);
            }
        }
    }
}

/// One rendered view.
#[derive(Clone, Debug)]
pub struct RenderedView {
    /// Colour on white.
    pub rgb: RgbImage,
    /// Coverage (255 = the object).
    pub alpha: GrayImage,
    /// Distance along the camera's viewing axis per pixel; 0 where there is no object.
    pub depth: Vec<f32>,
}

/// Light: ambient share and the Lambert light's direction in camera space (from the upper
/// left behind the viewer, as a product shot).
const AMBIENT: f32 = 0.35;
const LIGHT_IN_CAMERA: [f32; 3] = [-0.4, 0.5, 0.77];

/// Renders `mesh` textured with `texture` from `pose` with a square `fov_deg` view of
/// `size_px` pixels (2 × 2 supersampled).
pub fn render(
    mesh: &Mesh,
    texture: &RgbImage,
    pose: &OrbitPose,
    fov_deg: f64,
    size_px: u32,
) -> RenderedView {
    const SS: u32 = 2;
    let n = size_px * SS;
    let m = pose.camera_to_world();
    // World → camera: the transposed rotation applied to the offset from the eye.
    let eye = [m[0][3] as f32, m[1][3] as f32, m[2][3] as f32];
    let axis = |c: usize| [m[0][c] as f32, m[1][c] as f32, m[2][c] as f32];
    let (right, up, back) = (axis(0), axis(1), axis(2));
    let to_camera = |p: [f32; 3]| {
        let d = sub(p, eye);
        [dot(d, right), dot(d, up), dot(d, back)]
    };
    let focal = 0.5 * n as f32 / (0.5 * fov_deg.to_radians() as f32).tan();
    let centre = 0.5 * n as f32;
    let light = normalize(LIGHT_IN_CAMERA);
    let light_world = normalize([
        right[0] * light[0] + up[0] * light[1] + back[0] * light[2],
        right[1] * light[0] + up[1] * light[1] + back[1] * light[2],
        right[2] * light[0] + up[2] * light[1] + back[2] * light[2],
    ]);

    let projected: Vec<([f32; 2], f32)> = mesh
        .vertices
        .iter()
        .map(|v| {
            let c = to_camera(v.position);
            let depth = -c[2];
            (
                [centre + focal * c[0] / depth, centre - focal * c[1] / depth],
                depth,
            )
        })
        .collect();
    let count = (n * n) as usize;
    let mut depth_buffer = vec![f32::INFINITY; count];
    let mut colour = vec![[255f32; 3]; count];
    for tri in &mesh.triangles {
        let [ia, ib, ic] = tri.map(|i| i as usize);
        let (pa, za) = projected[ia];
        let (pb, zb) = projected[ib];
        let (pc, zc) = projected[ic];
        if za <= 1e-4 || zb <= 1e-4 || zc <= 1e-4 {
            continue; // behind the camera (objects never cross it on an orbit)
        }
        let area = (pb[0] - pa[0]) * (pc[1] - pa[1]) - (pb[1] - pa[1]) * (pc[0] - pa[0]);
        if area.abs() < 1e-12 {
            continue;
        }
        let min_x = pa[0].min(pb[0]).min(pc[0]).floor().max(0.0) as u32;
        let max_x = (pa[0].max(pb[0]).max(pc[0]).ceil() as i64).clamp(0, i64::from(n) - 1) as u32;
        let min_y = pa[1].min(pb[1]).min(pc[1]).floor().max(0.0) as u32;
        let max_y = (pa[1].max(pb[1]).max(pc[1]).ceil() as i64).clamp(0, i64::from(n) - 1) as u32;
        for y in min_y..=max_y {
            for x in min_x..=max_x {
                let p = [x as f32 + 0.5, y as f32 + 0.5];
                let w0 = ((pb[0] - p[0]) * (pc[1] - p[1]) - (pb[1] - p[1]) * (pc[0] - p[0])) / area;
                let w1 = ((pc[0] - p[0]) * (pa[1] - p[1]) - (pc[1] - p[1]) * (pa[0] - p[0])) / area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                // Perspective-correct interpolation through 1/z.
                let inv = w0 / za + w1 / zb + w2 / zc;
                let z = 1.0 / inv;
                let index = (y * n + x) as usize;
                if z >= depth_buffer[index] {
                    continue;
                }
                depth_buffer[index] = z;
                let k = [w0 / za * z, w1 / zb * z, w2 / zc * z];
                let (va, vb, vc) = (&mesh.vertices[ia], &mesh.vertices[ib], &mesh.vertices[ic]);
                let lerp2 = |f: fn(&Vertex) -> [f32; 2]| {
                    let (a, b, c) = (f(va), f(vb), f(vc));
                    [
                        k[0] * a[0] + k[1] * b[0] + k[2] * c[0],
                        k[0] * a[1] + k[1] * b[1] + k[2] * c[1],
                    ]
                };
                let uv = lerp2(|v| v.uv);
                let normal = normalize([
                    k[0] * va.normal[0] + k[1] * vb.normal[0] + k[2] * vc.normal[0],
                    k[0] * va.normal[1] + k[1] * vb.normal[1] + k[2] * vc.normal[1],
                    k[0] * va.normal[2] + k[1] * vb.normal[2] + k[2] * vc.normal[2],
                ]);
                let shade = AMBIENT + (1.0 - AMBIENT) * dot(normal, light_world).max(0.0);
                let texel = sample_bilinear(texture, uv);
                colour[index] = texel.map(|c| c * shade);
            }
        }
    }
    // Down-sample: colour over white by coverage, depth as the nearest covered sample.
    let mut rgb = RgbImage::new(size_px, size_px);
    let mut alpha = GrayImage::new(size_px, size_px);
    let mut depth = vec![0f32; (size_px * size_px) as usize];
    for y in 0..size_px {
        for x in 0..size_px {
            let (mut sum, mut covered, mut nearest) = ([0f32; 3], 0u32, f32::INFINITY);
            for sy in 0..SS {
                for sx in 0..SS {
                    let index = ((y * SS + sy) * n + x * SS + sx) as usize;
                    let c = colour[index];
                    for ch in 0..3 {
                        sum[ch] += c[ch];
                    }
                    if depth_buffer[index].is_finite() {
                        covered += 1;
                        nearest = nearest.min(depth_buffer[index]);
                    }
                }
            }
            let samples = (SS * SS) as f32;
            rgb.put_pixel(
                x,
                y,
                image::Rgb(sum.map(|s| (s / samples).round().clamp(0.0, 255.0) as u8)),
            );
            alpha.put_pixel(
                x,
                y,
                image::Luma([(covered as f32 / samples * 255.0).round() as u8]),
            );
            if covered > 0 {
                depth[(y * size_px + x) as usize] = nearest;
            }
        }
    }
    RenderedView { rgb, alpha, depth }
}

/// Bilinear texture lookup with wrapping in u and clamping in v; values in 0..=255.
fn sample_bilinear(texture: &RgbImage, uv: [f32; 2]) -> [f32; 3] {
    let (w, h) = (texture.width() as f32, texture.height() as f32);
    let x = uv[0].rem_euclid(1.0) * w - 0.5;
    let y = (1.0 - uv[1]).clamp(0.0, 1.0) * h - 0.5;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        let xi = (xi as i64).rem_euclid(texture.width() as i64) as u32;
        let yi = (yi as i64).clamp(0, texture.height() as i64 - 1) as u32;
        texture.get_pixel(xi, yi).0.map(f32::from)
    };
    let (a, b, c, d) = (
        at(x0, y0),
        at(x0 + 1.0, y0),
        at(x0, y0 + 1.0),
        at(x0 + 1.0, y0 + 1.0),
    );
    let mut out = [0f32; 3];
    for ch in 0..3 {
        out[ch] =
            (a[ch] * (1.0 - fx) + b[ch] * fx) * (1.0 - fy) + (c[ch] * (1.0 - fx) + d[ch] * fx) * fy;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{DEFAULT_FOV_DEG, Intrinsics, OrbitPose, Transforms};

    fn white_texture() -> RgbImage {
        RgbImage::from_pixel(8, 8, image::Rgb([255, 255, 255]))
    }

    #[test]
    fn a_sphere_covers_the_disc_the_pinhole_model_predicts_with_its_depth() {
        let mesh = Mesh::of(&Shape::Sphere);
        let pose = OrbitPose::new(20.0, 40.0, 2.0).expect("pose");
        let size = 64;
        let view = render(&mesh, &white_texture(), &pose, DEFAULT_FOV_DEG, size);
        // Apparent radius of a sphere of radius 0.5 at distance 2: f · tan(asin(0.5 / 2)).
        let focal = Intrinsics {
            size_px: size,
            fov_deg: DEFAULT_FOV_DEG,
        }
        .focal_px();
        let expected_radius = focal * (0.5f64 / 2.0).asin().tan();
        let covered: f64 = view.alpha.pixels().map(|p| f64::from(p.0[0]) / 255.0).sum();
        let disc = std::f64::consts::PI * expected_radius * expected_radius;
        assert!(
            (covered / disc - 1.0).abs() < 0.05,
            "coverage {covered:.1} px vs {disc:.1}"
        );
        // Centred on the projection of the origin, nearest point 1.5 away along the axis.
        let transforms = Transforms::new(
            Intrinsics {
                size_px: size,
                fov_deg: DEFAULT_FOV_DEG,
            },
            &[("v".into(), pose)],
        );
        let [u, v] = transforms.project(0, [0.0; 3]).expect("in front");
        assert_eq!(view.alpha.get_pixel(u as u32, v as u32).0[0], 255);
        let centre_depth = view.depth[(v as u32 * size + u as u32) as usize];
        assert!(
            (centre_depth - 1.5).abs() < 0.02,
            "depth at the centre {centre_depth}"
        );
        assert_eq!(view.alpha.get_pixel(0, 0).0[0], 0);
        assert_eq!(
            view.rgb.get_pixel(0, 0).0,
            [255, 255, 255],
            "white background"
        );
        assert_eq!(view.depth[0], 0.0);
        // Lit from the upper left: the upper-left of the disc is brighter than the lower right.
        let r = (expected_radius * 0.5) as u32;
        let (cu, cv) = (u as u32, v as u32);
        let bright = view.rgb.get_pixel(cu - r, cv - r).0[0];
        let dark = view.rgb.get_pixel(cu + r, cv + r).0[0];
        assert!(bright > dark + 30, "shading {bright} vs {dark}");
    }

    #[test]
    fn every_shape_renders_inside_the_view_and_textures_show() {
        let stripes = RgbImage::from_fn(16, 16, |x, _| {
            if x < 8 {
                image::Rgb([200, 20, 20])
            } else {
                image::Rgb([20, 20, 200])
            }
        });
        let shapes = [
            Shape::Sphere,
            Shape::Box {
                half: [0.3, 0.2, 0.25],
            },
            Shape::Cylinder {
                radius: 0.25,
                half_height: 0.35,
            },
            Shape::Cone {
                radius: 0.3,
                half_height: 0.35,
            },
            Shape::Torus {
                major: 0.3,
                minor: 0.1,
            },
            Shape::Superquadric {
                e1: 0.5,
                e2: 1.5,
                scale: [0.35, 0.3, 0.3],
            },
        ];
        let pose = OrbitPose::new(25.0, 30.0, 1.5).expect("pose");
        for shape in shapes {
            let mut mesh = Mesh::of(&shape);
            for v in &mesh.vertices {
                let r = dot(v.position, v.position).sqrt();
                assert!(r <= 0.5 + 1e-4, "{shape:?} leaves the unit ball: {r}");
                assert!((dot(v.normal, v.normal) - 1.0).abs() < 1e-3);
            }
            mesh.rotate(15.0, 10.0);
            let view = render(&mesh, &stripes, &pose, DEFAULT_FOV_DEG, 48);
            let covered = view.alpha.pixels().filter(|p| p.0[0] > 127).count();
            assert!(covered > 100, "{shape:?} covers {covered} px");
            let border_clear = (0..48).all(|i| {
                [(i, 0), (i, 47), (0, i), (47, i)]
                    .iter()
                    .all(|&(x, y)| view.alpha.get_pixel(x, y).0[0] == 0)
            });
            assert!(border_clear, "{shape:?} touches the border");
            let reds = view.rgb.pixels().filter(|p| p.0[0] > p.0[2] + 40).count();
            let blues = view.rgb.pixels().filter(|p| p.0[2] > p.0[0] + 40).count();
            assert!(
                reds > 10 && blues > 10,
                "{shape:?}: texture shows ({reds} red, {blues} blue)"
            );
        }
        // The torus has a hole: from above, its centre is background.
        let torus = Mesh::of(&Shape::Torus {
            major: 0.3,
            minor: 0.1,
        });
        let top = OrbitPose::new(89.0, 0.0, 1.5).expect("pose");
        let view = render(&torus, &white_texture(), &top, DEFAULT_FOV_DEG, 48);
        assert_eq!(view.alpha.get_pixel(24, 24).0[0], 0, "the hole");
    }

    #[test]
    fn a_dataset_splits_shapes_and_textures_and_resumes_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let textures = texture_folder(dir.path(), 40, |i| {
            let i = i as u8;
            RgbImage::from_pixel(4, 4, image::Rgb([i * 6, 100, 255 - i * 6]))
        });
        let options = DatasetOptions {
            textures,
            out: dir.path().join("set"),
            objects: 20,
            views: 3,
            size_px: 24,
            seed: 5,
            shapes: ShapeSet::Basic,
        };
        let objects = write_dataset(&options, &mut |_, _| {}).expect("dataset");
        assert_eq!(objects.len(), 20);
        let test: Vec<&DatasetObject> = objects.iter().filter(|o| o.split == "test").collect();
        assert_eq!(test.len(), 2);
        for object in &objects {
            let held_out_texture = name_hash(&object.texture).is_multiple_of(TEST_TEXTURE_EVERY);
            assert_eq!(held_out_texture, object.split == "test", "{}", object.name);
            if object.split == "train" {
                assert!(
                    !matches!(object.shape, Shape::Torus { .. }),
                    "tori are held out"
                );
            }
            assert_eq!(object.views.len(), 3);
            for view in &object.views {
                let rgba =
                    image::open(options.out.join(&object.name).join(&view.image)).expect("view");
                assert_eq!((rgba.width(), rgba.height()), (24, 24));
                assert!(rgba.color().has_alpha());
                let depth =
                    image::open(options.out.join(&object.name).join(&view.depth)).expect("depth");
                assert_eq!(depth.color(), image::ColorType::L16);
                assert!((-10.0..40.0).contains(&view.pose.elevation_deg));
            }
        }
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(options.out.join("manifest.json")).expect("manifest"),
        )
        .expect("json");
        assert_eq!(manifest["objects"].as_array().map(Vec::len), Some(20));

        // An interrupted object (no object.json) is made again, the same.
        let victim = options.out.join("obj_00004");
        let before = std::fs::read(victim.join("view_01.png")).expect("read");
        std::fs::remove_file(victim.join("object.json")).expect("remove");
        std::fs::remove_file(victim.join("view_01.png")).expect("remove");
        let again = write_dataset(&options, &mut |_, _| {}).expect("resume");
        let summary = |objects: &[DatasetObject]| -> Vec<(String, String, String)> {
            objects
                .iter()
                .map(|o| (o.name.clone(), o.split.clone(), o.texture.clone()))
                .collect()
        };
        assert_eq!(summary(&again), summary(&objects));
        assert_eq!(again[4], objects[4], "the remade object is the same object");
        assert_eq!(
            std::fs::read(victim.join("view_01.png")).expect("read"),
            before
        );
    }

    /// `dir/textures` holding `count` images made by `make(i)`.
    fn texture_folder(
        dir: &std::path::Path,
        count: u32,
        make: impl Fn(u32) -> RgbImage,
    ) -> std::path::PathBuf {
        let textures = dir.join("textures");
        std::fs::create_dir_all(&textures).expect("dir");
        for i in 0..count {
            make(i)
                .save(textures.join(format!("tex{i:02}.png")))
                .expect("save");
        }
        textures
    }

    /// A disc on white, red on its left half and blue on its right.
    fn two_tone_disc(size: u32) -> RgbImage {
        let c = size as f32 / 2.0;
        RgbImage::from_fn(size, size, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - c, y as f32 + 0.5 - c);
            if dx * dx + dy * dy > (0.4 * size as f32).powi(2) {
                image::Rgb([255, 255, 255])
            } else if dx < 0.0 {
                image::Rgb([210, 20, 20])
            } else {
                image::Rgb([20, 20, 210])
            }
        })
    }

    #[test]
    fn an_extruded_silhouette_reads_from_the_front_and_is_thin_from_the_side() {
        let disc = two_tone_disc(96);
        let mesh = Mesh::of_object(&Shape::Extrusion { half_depth: 0.05 }, &[], &disc);
        let size = 64;
        let coverage = |view: &RenderedView| view.alpha.pixels().filter(|p| p.0[0] > 127).count();
        let front = render(
            &mesh,
            &disc,
            &OrbitPose::new(0.0, 0.0, 1.6).expect("pose"),
            DEFAULT_FOV_DEG,
            size,
        );
        // The disc's outline, not the square: about π/4 of the box it spans.
        let (mut left, mut right, mut top, mut bottom) = (size, 0, size, 0);
        for (x, y, p) in front.alpha.enumerate_pixels() {
            if p.0[0] > 127 {
                (left, right, top, bottom) = (left.min(x), right.max(x), top.min(y), bottom.max(y));
            }
        }
        let spanned = ((right - left + 1) * (bottom - top + 1)) as f32;
        let share = coverage(&front) as f32 / spanned;
        assert!(
            (share - std::f32::consts::FRAC_PI_4).abs() < 0.06,
            "{share}"
        );
        // The image the right way round from the front: red left, blue right.
        let mid = (top + bottom) / 2;
        let quarter = (right - left) / 4;
        let (l, r) = (
            front.rgb.get_pixel(left + quarter, mid).0,
            front.rgb.get_pixel(right - quarter, mid).0,
        );
        assert!(
            l[0] > l[2] + 60 && r[2] > r[0] + 60,
            "left {l:?} right {r:?}"
        );
        let side = render(
            &mesh,
            &disc,
            &OrbitPose::new(0.0, 90.0, 1.6).expect("pose"),
            DEFAULT_FOV_DEG,
            size,
        );
        assert!(
            coverage(&side) * 4 < coverage(&front),
            "side {} vs front {}",
            coverage(&side),
            coverage(&front)
        );
        // Blank pages and photos have no outline.
        assert!(
            silhouette::silhouette_mask(&RgbImage::from_pixel(32, 32, image::Rgb([255; 3])))
                .is_none()
        );
        assert!(
            silhouette::silhouette_mask(&RgbImage::from_pixel(32, 32, image::Rgb([90; 3])))
                .is_none()
        );
    }

    #[test]
    fn a_composition_joins_its_parts_centred() {
        let parts = [Part {
            shape: Shape::Sphere,
            scale: 0.6,
            offset: [0.0, 0.0, 0.5],
        }];
        let single = Mesh::of(&Shape::Cylinder {
            radius: 0.2,
            half_height: 0.25,
        });
        let mesh = Mesh::of_object(
            &Shape::Cylinder {
                radius: 0.2,
                half_height: 0.25,
            },
            &parts,
            &white_texture(),
        );
        assert!(mesh.vertices.len() > single.vertices.len());
        let (low, high) = mesh
            .vertices
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), v| {
                (low.min(v.position[2]), high.max(v.position[2]))
            });
        // Cylinder −0.25…0.25, sphere 0.2…0.8: 1.05 tall, centred.
        assert!(
            (high - low - 1.05).abs() < 1e-3 && (high + low).abs() < 1e-3,
            "{low} {high}"
        );
    }

    #[test]
    fn the_full_shape_set_adds_silhouettes_and_compositions_inside_the_view() {
        let dir = tempfile::tempdir().expect("tempdir");
        let textures = texture_folder(dir.path(), 24, |i| two_tone_disc(32 + i));
        let options = DatasetOptions {
            textures,
            out: dir.path().join("set"),
            objects: 40,
            views: 2,
            size_px: 32,
            seed: 11,
            shapes: ShapeSet::All,
        };
        let objects = write_dataset(&options, &mut |_, _| {}).expect("dataset");
        let extrusions = objects
            .iter()
            .filter(|o| matches!(o.shape, Shape::Extrusion { .. }))
            .count();
        let compositions = objects.iter().filter(|o| !o.parts.is_empty()).count();
        assert!(
            extrusions >= 3 && compositions >= 3,
            "{extrusions} extrusions, {compositions} compositions"
        );
        for object in &objects {
            if object.split == "train" {
                assert!(
                    object
                        .parts
                        .iter()
                        .all(|p| !matches!(p.shape, Shape::Torus { .. })),
                    "tori are held out"
                );
            }
            for view in &object.views {
                let alpha = image::open(options.out.join(&object.name).join(&view.image))
                    .expect("view")
                    .to_rgba8();
                let border_clear = (0..32).all(|i| {
                    [(i, 0), (i, 31), (0, i), (31, i)]
                        .iter()
                        .all(|&(x, y)| alpha.get_pixel(x, y).0[3] == 0)
                });
                assert!(border_clear, "{} touches the border", object.name);
            }
        }
        // object.json keeps parts and extrusions: a second run reads them back unchanged.
        let shapes = |objects: &[DatasetObject]| -> Vec<(Shape, Vec<Part>)> {
            objects.iter().map(|o| (o.shape, o.parts.clone())).collect()
        };
        let again = write_dataset(&options, &mut |_, _| {}).expect("again");
        assert_eq!(shapes(&again), shapes(&objects));
    }

    #[test]
    fn rendering_is_deterministic() {
        let mesh = Mesh::of(&Shape::Cone {
            radius: 0.3,
            half_height: 0.3,
        });
        let pose = OrbitPose::new(10.0, 200.0, 1.7).expect("pose");
        let a = render(&mesh, &white_texture(), &pose, 40.0, 32);
        let b = render(&mesh, &white_texture(), &pose, 40.0, 32);
        assert_eq!(a.rgb, b.rgb);
        assert_eq!(a.alpha, b.alpha);
        assert_eq!(a.depth, b.depth);
    }
}

/// How a dataset is made.
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    /// Images to texture objects with.
    pub textures: std::path::PathBuf,
    /// Output folder.
    pub out: std::path::PathBuf,
    /// Number of objects.
    pub objects: usize,
    /// Views per object.
    pub views: usize,
    /// Side of each view in pixels.
    pub size_px: u32,
    /// Seed of object 0 (object `i` uses `seed + i`: a run can be resumed or extended).
    pub seed: u64,
    /// Which kinds of object to make.
    pub shapes: ShapeSet,
}

/// Which kinds of object a dataset holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeSet {
    /// The procedural solids only, drawn exactly as the first datasets drew them (the shipped
    /// multi-view model's data is reproduced with this).
    Basic,
    /// The solids (60 %), extruded silhouettes of the texture image (20 %) and compositions of
    /// two or three solids (20 %).
    #[default]
    All,
}

/// One object of a dataset, as `object.json` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetObject {
    /// Folder name.
    pub name: String,
    /// `train` or `test`.
    pub split: String,
    /// Its shape (the first part of a composition).
    pub shape: Shape,
    /// The further parts of a composition, if it is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Rotation about Z then X, degrees.
    pub rotation_deg: [f32; 2],
    /// Texture file name.
    pub texture: String,
    /// Field of view of every view, degrees.
    pub fov_deg: f64,
    /// Views: file names and cameras.
    pub views: Vec<DatasetView>,
}

/// A view's image as written by [`write_dataset`]: its colour and its coverage (alpha).
pub fn read_view(path: &std::path::Path) -> crate::error::Result<(RgbImage, GrayImage)> {
    let rgba = image::open(path)
        .map_err(|e| {
            crate::error::EngineError::InvalidRequest(format!(
                "cannot read {}: {e}",
                path.display()
            ))
        })?
        .to_rgba8();
    let alpha = image::GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        image::Luma([rgba.get_pixel(x, y).0[3]])
    });
    Ok((image::DynamicImage::ImageRgba8(rgba).to_rgb8(), alpha))
}

/// One view of a dataset object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetView {
    /// RGBA PNG (colour on white, alpha the coverage).
    pub image: String,
    /// 16-bit grey PNG: depth along the viewing axis in thousandths of a unit; 0 = none.
    pub depth: String,
    /// The camera.
    pub pose: OrbitPose,
}

/// Shape kinds never used for training: the test split checks shapes the model never saw.
pub const HELD_OUT_SHAPE: &str = "torus";
/// One object in this many is a test object.
const TEST_EVERY: usize = 10;
/// One texture in this many (by a hash of its file name) is kept for test objects.
const TEST_TEXTURE_EVERY: u64 = 8;

/// FNV-1a of a file name: a split that does not depend on the order files are listed in.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The shape and further parts of one object of `set`; `texture` is the object's (an
/// extrusion is drawn only when it has an outline).
fn random_object(
    rng: &mut impl rand::Rng,
    test: bool,
    set: ShapeSet,
    texture: &RgbImage,
) -> (Shape, Vec<Part>) {
    if set == ShapeSet::Basic {
        return (random_shape(rng, test), Vec::new());
    }
    match rng.random_range(0..10) {
        6 | 7 if silhouette::silhouette_mask(texture).is_some() => (
            Shape::Extrusion {
                half_depth: rng.random_range(0.03..0.12),
            },
            Vec::new(),
        ),
        8 | 9 => {
            let first = random_shape(rng, test);
            let parts = (0..rng.random_range(1..=2))
                .map(|_| Part {
                    shape: random_shape(rng, test),
                    scale: rng.random_range(0.45..0.8),
                    offset: [
                        rng.random_range(-0.35..0.35),
                        rng.random_range(-0.35..0.35),
                        rng.random_range(-0.1..0.5),
                    ],
                })
                .collect();
            (first, parts)
        }
        _ => (random_shape(rng, test), Vec::new()),
    }
}

fn random_shape(rng: &mut impl rand::Rng, test: bool) -> Shape {
    let mut range = |lo: f32, hi: f32| rng.random_range(lo..hi);
    let kinds = if test { 6 } else { 5 };
    match (range(0.0, kinds as f32) as usize).min(kinds - 1) {
        0 => Shape::Sphere,
        1 => Shape::Box {
            half: [range(0.15, 0.28), range(0.15, 0.28), range(0.15, 0.28)],
        },
        2 => Shape::Cylinder {
            radius: range(0.12, 0.3),
            half_height: range(0.15, 0.4),
        },
        3 => Shape::Cone {
            radius: range(0.15, 0.32),
            half_height: range(0.18, 0.4),
        },
        4 => Shape::Superquadric {
            e1: range(0.3, 1.8),
            e2: range(0.3, 1.8),
            scale: [range(0.2, 0.4), range(0.2, 0.4), range(0.2, 0.4)],
        },
        _ => Shape::Torus {
            major: range(0.2, 0.32),
            minor: range(0.06, 0.15),
        },
    }
}

/// Writes (or completes) a dataset: per object a folder with its views, depths,
/// `object.json` and `transforms.json`; then `manifest.json` listing every object. Objects
/// whose `object.json` exists are kept as they are, so an interrupted run resumes.
pub fn write_dataset(
    options: &DatasetOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::error::Result<Vec<DatasetObject>> {
    use rand::SeedableRng as _;
    let io = |path: &std::path::Path, e: std::io::Error| crate::error::EngineError::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut textures: Vec<std::path::PathBuf> = std::fs::read_dir(&options.textures)
        .map_err(|e| io(&options.textures, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "png" | "jpg" | "jpeg" | "webp"
                )
            })
        })
        .collect();
    textures.sort();
    let name_of = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (test_textures, train_textures): (Vec<_>, Vec<_>) = textures
        .iter()
        .partition(|p| name_hash(&name_of(p)).is_multiple_of(TEST_TEXTURE_EVERY));
    if train_textures.is_empty() || test_textures.is_empty() {
        return Err(crate::error::EngineError::InvalidRequest(format!(
            "{} holds {} usable images; at least {TEST_TEXTURE_EVERY} are needed (some are \
             kept apart for the test split)",
            options.textures.display(),
            textures.len()
        )));
    }
    if options.views == 0 || options.size_px < 8 {
        return Err(crate::error::EngineError::InvalidRequest(
            "a dataset needs at least one view of at least 8 px".into(),
        ));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| io(&options.out, e))?;
    let mut objects = Vec::with_capacity(options.objects);
    for index in 0..options.objects {
        progress(index, options.objects);
        let name = format!("obj_{index:05}");
        let dir = options.out.join(&name);
        let description = dir.join("object.json");
        if let Ok(text) = std::fs::read_to_string(&description)
            && let Ok(object) = serde_json::from_str::<DatasetObject>(&text)
        {
            objects.push(object);
            continue;
        }
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(options.seed.wrapping_add(index as u64));
        let test = index % TEST_EVERY == TEST_EVERY - 1;
        let pool = if test {
            &test_textures
        } else {
            &train_textures
        };
        let texture_path = pool[rand::Rng::random_range(&mut rng, 0..pool.len())];
        let texture = crate::imageio::load_image(texture_path)?;
        let (shape, parts) = random_object(&mut rng, test, options.shapes, &texture);
        let rotation_deg = [
            rand::Rng::random_range(&mut rng, 0.0..360.0),
            rand::Rng::random_range(&mut rng, -20.0..20.0),
        ];
        let mut mesh = Mesh::of_object(&shape, &parts, &texture);
        mesh.rotate(rotation_deg[0], rotation_deg[1]);
        mesh.fit_in_ball(0.5);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut views = Vec::with_capacity(options.views);
        for v in 0..options.views {
            let pose = OrbitPose::new(
                rand::Rng::random_range(&mut rng, -10.0..40.0),
                rand::Rng::random_range(&mut rng, 0.0..360.0),
                rand::Rng::random_range(&mut rng, 1.3..1.8),
            )?;
            let view = render(
                &mesh,
                &texture,
                &pose,
                crate::camera::DEFAULT_FOV_DEG,
                options.size_px,
            );
            let rgba = image::RgbaImage::from_fn(options.size_px, options.size_px, |x, y| {
                let [r, g, b] = view.rgb.get_pixel(x, y).0;
                image::Rgba([r, g, b, view.alpha.get_pixel(x, y).0[0]])
            });
            let depth = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(
                options.size_px,
                options.size_px,
                |x, y| {
                    let d = view.depth[(y * options.size_px + x) as usize];
                    image::Luma([(d * 1000.0).round().clamp(0.0, 65535.0) as u16])
                },
            );
            let (image_name, depth_name) =
                (format!("view_{v:02}.png"), format!("depth_{v:02}.png"));
            let save_error =
                |path: &std::path::Path, e: image::ImageError| crate::error::EngineError::Write {
                    path: path.to_owned(),
                    reason: e.to_string(),
                };
            let image_path = dir.join(&image_name);
            rgba.save(&image_path)
                .map_err(|e| save_error(&image_path, e))?;
            let depth_path = dir.join(&depth_name);
            depth
                .save(&depth_path)
                .map_err(|e| save_error(&depth_path, e))?;
            views.push(DatasetView {
                image: image_name,
                depth: depth_name,
                pose,
            });
        }
        let transforms = crate::camera::Transforms::new(
            crate::camera::Intrinsics {
                size_px: options.size_px,
                fov_deg: crate::camera::DEFAULT_FOV_DEG,
            },
            &views
                .iter()
                .map(|v| (v.image.clone(), v.pose))
                .collect::<Vec<_>>(),
        );
        let object = DatasetObject {
            name,
            split: if test { "test" } else { "train" }.into(),
            shape,
            parts,
            rotation_deg,
            texture: name_of(texture_path),
            fov_deg: crate::camera::DEFAULT_FOV_DEG,
            views,
        };
        // (Serialising these plain structs cannot fail.)
        let transforms = serde_json::to_string_pretty(&transforms).unwrap_or_default();
        crate::imageio::replace_file(&dir.join("transforms.json"), transforms.as_bytes())?;
        // Written last: its presence marks the object complete.
        let description_json = serde_json::to_string_pretty(&object).unwrap_or_default();
        crate::imageio::replace_file(&description, description_json.as_bytes())?;
        objects.push(object);
    }
    progress(options.objects, options.objects);
    let manifest = serde_json::json!({
        "objects": objects.iter().map(|o| serde_json::json!({"name": o.name, "split": o.split})).collect::<Vec<_>>(),
        "views_per_object": options.views,
        "size_px": options.size_px,
        "held_out_shape": HELD_OUT_SHAPE,
        "shapes": options.shapes,
        "conventions": "Z up, object at the origin inside a ball of radius 0.5, OpenGL camera axes (see transforms.json)",
    });
    crate::imageio::replace_file(
        &options.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(objects)
}
