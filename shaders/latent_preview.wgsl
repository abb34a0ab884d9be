// Live preview of a diffusion latent: 4 latent channels -> RGB with a fixed linear map,
// upscaled smoothly (bilinear) to the callback's viewport.
//
// The latent arrives as an rgba32float texture (one texel per latent position, channels 0..3
// in r, g, b, a). Float32 textures are not filterable everywhere, so the bilinear filter is
// done by hand with `textureLoad`; that also makes the result exactly reproducible on the CPU
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

fn load_clamped(texel: vec2<i32>, size: vec2<i32>) -> vec4<f32> {
    return textureLoad(latent, clamp(texel, vec2<i32>(0, 0), size - vec2<i32>(1, 1)), 0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let size = vec2<i32>(textureDimensions(latent));
    // Texel centres sit at (i + 0.5) / size, as in a GPU's linear filter with clamp-to-edge.
    let pos_in_latent = in.uv * vec2<f32>(size) - vec2<f32>(0.5, 0.5);
    let base = floor(pos_in_latent);
    let frac = pos_in_latent - base;
    let texel = vec2<i32>(base);
    let top = mix(load_clamped(texel, size), load_clamped(texel + vec2<i32>(1, 0), size), frac.x);
    let bottom = mix(
        load_clamped(texel + vec2<i32>(0, 1), size),
        load_clamped(texel + vec2<i32>(1, 1), size),
        frac.x,
    );
    let value = mix(top, bottom, frac.y);
    let rgb = vec3<f32>(
        dot(value, uniforms.weights_r),
        dot(value, uniforms.weights_g),
        dot(value, uniforms.weights_b),
    ) + uniforms.bias.rgb;
    return vec4<f32>(clamp(rgb * 0.5 + vec3<f32>(0.5), vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
}
