// The starting image with its repaint mask tinted on top: for a mask value m in [0, 1],
// out = mix(image, tint.rgb, m * tint.a). The image is an rgba8 texture in egui's gamma space
// and the output is written as is (egui's framebuffer is not sRGB-aware), so the blend happens
// in gamma space, like the egui overlay it replaces.
//
// The image is filtered bilinearly by hand (`sample_bilinear_clamped`, `common.wgsl`) so that
// `lumos_shaders::mask_overlay_cpu` reproduces it exactly; the mask (r8 texture) is read with
// nearest sampling so that brush edges stay crisp.

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

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let uv = mix(uniforms.view_uv.xy, uniforms.view_uv.zw, in.uv);
    let rgb = sample_bilinear_clamped(image, uv).rgb;
    let mask_size = vec2<i32>(textureDimensions(mask));
    let mask_texel = clamp(
        vec2<i32>(floor(uv * vec2<f32>(mask_size))),
        vec2<i32>(0, 0),
        mask_size - vec2<i32>(1, 1),
    );
    let m = textureLoad(mask, mask_texel, 0).r;
    return vec4<f32>(mix(rgb, uniforms.tint.rgb, m * uniforms.tint.a), 1.0);
}
