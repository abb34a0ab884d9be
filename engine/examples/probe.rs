//! Temporary diagnostic: x0 estimates of the default prior at several noise levels.
use candle_core::{Device, Tensor};
use lumos_engine::pipelines::LoadedModel;

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let spec = lumos_engine::embedded::default_spec()?;
    let model = LoadedModel::load(&spec, &dev)?;
    let args: Vec<String> = std::env::args().collect();
    let mut rows = Vec::new();
    for path in &args[1..] {
        let img = image::open(path)?.to_rgb8();
        let img = image::imageops::resize(&img, 64, 64, image::imageops::FilterType::Triangle);
        let cond = model
            .encoder
            .embed(&img, None, &dev)?
            .reshape((1, 1, 1, 1280))?;
        let null = model.prior.null_condition(1)?;
        let x0 = Tensor::from_vec(img.as_raw().clone(), (64, 64, 3), &dev)?
            .permute((2, 0, 1))?
            .to_dtype(candle_core::DType::F32)?
            .affine(1.0 / 127.5, -1.0)?
            .unsqueeze(0)?;
        let mut row = vec![x0.clone()];
        let eps = Tensor::randn(0f32, 1f32, x0.shape(), &dev)?;
        for t in [50usize, 200, 400, 600, 800, 950] {
            let a = model.schedule.alphas_cumprod[t];
            let (al, si) = (a.sqrt(), (1.0 - a).sqrt());
            let xt = ((&x0 * al)? + (&eps * si)?)?;
            for c in [&cond, &null] {
                let v = model.prior.forward_eps(&xt, &[t as f32], c)?;
                let x0h = ((&xt * al)? - (&v * si)?)?.clamp(-1f32, 1f32)?;
                let mse = (&x0h - &x0)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
                let tv = ((&eps * al)? - (&x0 * si)?)?;
                let vmse = (&v - &tv)?.sqr()?.mean_all()?.to_scalar::<f32>()?;
                println!(
                    "{path} t {t} {} x0-mse {mse:.4} v-mse {vmse:.4}",
                    if std::ptr::eq(c, &cond) {
                        "cond"
                    } else {
                        "null"
                    }
                );
                row.push(x0h);
            }
        }
        rows.push(Tensor::cat(&row, 3)?);
    }
    let sheet = Tensor::cat(&rows, 2)?
        .squeeze(0)?
        .affine(127.5, 127.5)?
        .clamp(0f32, 255f32)?
        .to_dtype(candle_core::DType::U8)?
        .permute((1, 2, 0))?;
    let (h, w, _) = sheet.dims3()?;
    let buf = sheet.flatten_all()?.to_vec1::<u8>()?;
    image::RgbImage::from_raw(w as u32, h as u32, buf)
        .unwrap()
        .save("/tmp/probe.png")?;
    Ok(())
}
