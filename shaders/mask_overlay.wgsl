// The starting image with its repaint mask tinted on top: for a mask value m in [0, 1],
// out = mix(image, tint.rgb, m * tint.a). The image is an rgba8 texture in egui's gamma space
// and the output is written as is (egui's framebuffer is not sRGB-aware), so the blend happens
// in gamma space, like the egui overlay it replaces.
//
// The image is filtered bilinearly by hand with `textureLoad` (as in latent_preview.wgsl) so
// that `lumos_shaders::mask_overlay_cpu` reproduces it exactly; the mask (r8 texture) is read
// with nearest sampling so that brush edges stay crisp.

struct MaskOverlayUniforms {
    // Tint colour in rgb (gamma space, [0, 1]); a: opacity of the tint where the mask is 1.
    tint: vec4<f32>,
    // The part of the image shown in the viewport, as (min.x, min.y, max.x, max.y) in its
    // texture coordinates ((0, 0, 1, 1): the whole image).
    view_uv: vec4<f32>,
};

@group(0) @binding(0) var<uniform> uniforms: MaskOverlayUniforms;
@group(0) @binding(1) var image: texture_2d<f32>;
@group(0) @binding(2) var mask: texture_2d<f32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// Two triangles covering the viewport (egui sets the viewport to the callback's rect).
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

fn load_image(texel: vec2<i32>, size: vec2<i32>) -> vec4<f32> {
    return textureLoad(image, clamp(texel, vec2<i32>(0, 0), size - vec2<i32>(1, 1)), 0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let uv = mix(uniforms.view_uv.xy, uniforms.view_uv.zw, in.uv);
    let size = vec2<i32>(textureDimensions(image));
    // Texel centres sit at (i + 0.5) / size, as in a GPU's linear filter with clamp-to-edge.
    let pos_in_image = uv * vec2<f32>(size) - vec2<f32>(0.5, 0.5);
    let base = floor(pos_in_image);
    let frac = pos_in_image - base;
    let texel = vec2<i32>(base);
    let top = mix(load_image(texel, size), load_image(texel + vec2<i32>(1, 0), size), frac.x);
    let bottom = mix(
        load_image(texel + vec2<i32>(0, 1), size),
        load_image(texel + vec2<i32>(1, 1), size),
        frac.x,
    );
    let rgb = mix(top, bottom, frac.y).rgb;
    let mask_size = vec2<i32>(textureDimensions(mask));
    let mask_texel = clamp(
        vec2<i32>(floor(uv * vec2<f32>(mask_size))),
        vec2<i32>(0, 0),
        mask_size - vec2<i32>(1, 1),
    );
    let m = textureLoad(mask, mask_texel, 0).r;
    return vec4<f32>(mix(rgb, uniforms.tint.rgb, m * uniforms.tint.a), 1.0);
}
