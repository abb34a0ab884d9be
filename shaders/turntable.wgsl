// Turntable preview of a multi-view set: the two views either side of the orbit angle the
// user dragged to, cross-faded. Views are rgba8 textures in egui's gamma space, filtered
// bilinearly (`sample_bilinear_clamped`, `common.wgsl`) so that
// `lumos_shaders::turntable_cpu` reproduces the result exactly; the blend happens in gamma
// space and the output is written as is (egui's framebuffer is not sRGB-aware).
//
// The app works out which two views and how far between them (the views' azimuths are not
// evenly spaced in every preset); the shader only mixes, so one bind group per neighbouring
// pair, built once, serves every angle.

struct TurntableUniforms {
    // x: weight of `to_view` in [0, 1] (0 shows `from_view` alone); y, z, w: unused.
    blend: vec4<f32>,
};

@group(0) @binding(0) var<uniform> uniforms: TurntableUniforms;
@group(0) @binding(1) var from_view: texture_2d<f32>;
@group(0) @binding(2) var to_view: texture_2d<f32>;

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let from_rgb = sample_bilinear_clamped(from_view, in.uv).rgb;
    let to_rgb = sample_bilinear_clamped(to_view, in.uv).rgb;
    return vec4<f32>(mix(from_rgb, to_rgb, clamp(uniforms.blend.x, 0.0, 1.0)), 1.0);
}
