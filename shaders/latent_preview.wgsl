// Live preview of a diffusion latent: 4 latent channels -> RGB with a fixed linear map,
// upscaled smoothly (bilinear, `common.wgsl`) to the callback's viewport.
//
// The latent arrives as an rgba32float texture (one texel per latent position, channels 0..3
// in r, g, b, a), which `sample_bilinear_clamped` filters by hand (float32 textures are not
// filterable everywhere); that also makes the result exactly reproducible on the CPU
// (`lumos_shaders::latent_preview_cpu`). The map is linear, so filtering the latent and then
// mapping equals mapping and then filtering; clamping comes last.

struct PreviewUniforms {
    // rgb = (dot(latent, weights_r), dot(latent, weights_g), dot(latent, weights_b)) + bias.rgb,
    // in [-1, 1]; shown as rgb * 0.5 + 0.5.
    weights_r: vec4<f32>,
    weights_g: vec4<f32>,
    weights_b: vec4<f32>,
    bias: vec4<f32>,
};

@group(0) @binding(0) var<uniform> uniforms: PreviewUniforms;
@group(0) @binding(1) var latent: texture_2d<f32>;

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let value = sample_bilinear_clamped(latent, in.uv);
    let rgb = vec3<f32>(
        dot(value, uniforms.weights_r),
        dot(value, uniforms.weights_g),
        dot(value, uniforms.weights_b),
    ) + uniforms.bias.rgb;
    return vec4<f32>(clamp(rgb * 0.5 + vec3<f32>(0.5), vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
