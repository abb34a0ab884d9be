// Before/after wipe: image `before` left of the split, image `after` right of it, with a thin
// divider line. Both are rgba8 textures in egui's gamma space; the output is written as is
// (egui's framebuffer is not sRGB-aware).

struct WipeUniforms {
    // x: split position in [0, 1] of the viewport width; y: divider half-width in the same
    // units; z, w: unused (uniform structs are padded to 16 bytes).
    split: vec4<f32>,
    divider_color: vec4<f32>,
    // The part of `before` to show, as (min.x, min.y, max.x, max.y) in its texture coordinates
    // (e.g. the square an image encoder sees of a wider reference).
    before_uv: vec4<f32>,
};

@group(0) @binding(0) var<uniform> uniforms: WipeUniforms;
@group(0) @binding(1) var before_image: texture_2d<f32>;
@group(0) @binding(2) var after_image: texture_2d<f32>;
@group(0) @binding(3) var image_sampler: sampler;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

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

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    // Sample both unconditionally: textureSample must be in uniform control flow.
    let before = textureSample(
        before_image,
        image_sampler,
        mix(uniforms.before_uv.xy, uniforms.before_uv.zw, in.uv),
    );
    let after = textureSample(after_image, image_sampler, in.uv);
    let split = uniforms.split.x;
    if abs(in.uv.x - split) <= uniforms.split.y {
        return uniforms.divider_color;
    }
    return select(after, before, in.uv.x < split);
}
