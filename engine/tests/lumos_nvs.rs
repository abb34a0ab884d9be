//! The Lumos novel-view design as a config of the engine's DiT: a tiny random model takes the
//! input view's latent (concatenated channels) and a relative camera pose, gives outputs of the
//! noisy latent's shape, is deterministic, and depends on both the input view and the pose.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use lumos_engine::models::{LumosConfig, LumosI2I};

fn tiny_nvs() -> LumosConfig {
    let mut config = LumosConfig::xl_2();
    config.input_size = 16;
    config.patch_size = 4;
    config.in_channels = 3;
    config.hidden_size = 32;
    config.depth = 2;
    config.num_heads = 2;
    config.caption_channels = 16;
    config.pred_sigma = false;
    config.adaln_condition = true;
    config.input_view_channels = 3;
    config.pose_condition = true;
    config
}

/// A model whose every weight is random (none left at a zero initialisation).
fn random_model(config: &LumosConfig) -> Result<(LumosI2I, usize)> {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    LumosI2I::load(config, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    let mut count = 0;
    for (i, var) in varmap.all_vars().iter().enumerate() {
        count += var.elem_count();
        let noise = Tensor::randn(0f32, 0.3, var.shape(), &dev)?;
        var.set(&(noise + 0.01 * i as f64)?)?;
    }
    let model = LumosI2I::load(config, VarBuilder::from_varmap(&varmap, DType::F32, &dev))?;
    Ok((model, count))
}

#[test]
fn a_novel_view_prior_takes_the_input_view_and_the_pose() -> Result<()> {
    let dev = Device::Cpu;
    let config = tiny_nvs();
    let (model, parameters) = random_model(&config)?;
    assert_eq!(config.parameter_count(), parameters);

    let noisy = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &dev)?;
    let view = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &dev)?;
    let y = Tensor::randn(0f32, 0.25, (2, 1, 1, 16), &dev)?;
    // [Δelevation, sin Δazimuth, cos Δazimuth, Δradius] per sample.
    let pose = Tensor::new(&[[0.1f32, 0.5, 0.866, 0.0], [-0.2, -1.0, 0.0, 0.1]], &dev)?;
    let run = |view: &Tensor, pose: &Tensor| -> Result<Tensor> {
        let x = Tensor::cat(&[&noisy, view], 1)?;
        model.forward(&x, &[500.0, 500.0], &model.with_pose(&y, pose)?)
    };
    let out = run(&view, &pose)?;
    assert_eq!(out.dims(), &[2, 3, 16, 16]);
    let diff =
        |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.max_all()?.to_scalar::<f32>() };
    assert_eq!(diff(&out, &run(&view, &pose)?)?, 0.0, "deterministic");
    let other_pose = Tensor::new(&[[0.1f32, -0.5, 0.866, 0.0], [-0.2, -1.0, 0.0, 0.1]], &dev)?;
    let moved = run(&view, &other_pose)?;
    assert!(
        diff(&moved.get(0)?, &out.get(0)?)? > 1e-4,
        "the pose reaches the output"
    );
    assert_eq!(
        diff(&moved.get(1)?, &out.get(1)?)?,
        0.0,
        "each sample sees its own pose"
    );
    let other_view = (&view * -1.0)?;
    assert!(
        diff(&run(&other_view, &pose)?, &out)? > 1e-4,
        "the input view reaches the output"
    );

    // Clear errors: a pose per sample, and only for a prior with a pose condition.
    assert!(model.with_pose(&y, &pose.narrow(0, 0, 1)?).is_err());
    let mut image_only = tiny_nvs();
    image_only.pose_condition = false;
    let (plain, _) = random_model(&image_only)?;
    let error = plain.with_pose(&y, &pose).expect_err("no pose embedder");
    assert!(error.to_string().contains("pose"), "{error}");
    Ok(())
}
