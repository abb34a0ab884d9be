// Before/after wipe: image `before` left of the split, image `after` right of it, with a thin
// divider line. Both are rgba8 textures in egui's gamma space, filtered bilinearly
// (`sample_bilinear_clamped`, `common.wgsl`); the output is written as is (egui's framebuffer
// is not sRGB-aware).

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

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let split = uniforms.split.x;
    if abs(in.uv.x - split) <= uniforms.split.y {
        return uniforms.divider_color;
    }
    if in.uv.x < split {
        return sample_bilinear_clamped(
            before_image,
            mix(uniforms.before_uv.xy, uniforms.before_uv.zw, in.uv),
        );
    }
    return sample_bilinear_clamped(after_image, in.uv);
}
