// What every Lumos Studio shader shares. WGSL has no `#include`, so `lumos_shaders` prepends
// this file to each shader's own (`shader_source!`); each file alone holds only what is its
// own. Validated on its own and as part of every shader by the crate's naga test.
//
// Bilinear filtering is done by hand with `textureLoad` rather than a sampler: float32
// textures (the latent preview) are not filterable everywhere, the same code then serves
// every texture format, and the result is exactly what the CPU twins compute
// (`lumos_shaders::bilinear_clamped`), which is what the offscreen tests compare against.

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// Two triangles covering the viewport (egui sets the viewport to the callback's rect); uv runs
// from (0, 0) at the top left to (1, 1) at the bottom right.
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(0.0, 1.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
    );
    let uv = corners[index];
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn load_clamped(source: texture_2d<f32>, texel: vec2<i32>, size: vec2<i32>) -> vec4<f32> {
    return textureLoad(source, clamp(texel, vec2<i32>(0, 0), size - vec2<i32>(1, 1)), 0);
}

// `source` at `uv` (texture coordinates, (0, 0)–(1, 1) the whole texture), filtered bilinearly
// between the four nearest texels and clamped to the edge. Texel centres sit at
// (i + 0.5) / size, as in a GPU's linear filter with clamp-to-edge.
fn sample_bilinear_clamped(source: texture_2d<f32>, uv: vec2<f32>) -> vec4<f32> {
    let size = vec2<i32>(textureDimensions(source));
    let pos_in_texels = uv * vec2<f32>(size) - vec2<f32>(0.5, 0.5);
    let base = floor(pos_in_texels);
    let frac = pos_in_texels - base;
    let texel = vec2<i32>(base);
    let top = mix(
        load_clamped(source, texel, size),
        load_clamped(source, texel + vec2<i32>(1, 0), size),
        frac.x,
    );
    let bottom = mix(
        load_clamped(source, texel + vec2<i32>(0, 1), size),
        load_clamped(source, texel + vec2<i32>(1, 1), size),
        frac.x,
    );
    return mix(top, bottom, frac.y);
}
