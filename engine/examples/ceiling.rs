//! Temporary diagnostic: retrieval of held-out sources from degraded copies.
use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use lumos_engine::pipelines::LoadedModel;

fn main() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let spec = lumos_engine::embedded::default_spec()?;
    let model = LoadedModel::load(&spec, &dev)?;
    let dir = std::path::Path::new("/work/corpus-snapshot/images");
    let mut files: Vec<_> = std::fs::read_dir(dir)?.map(|e| e.unwrap().path()).collect();
    files.sort();
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| lumos_engine::eval::is_held_out(&f.to_string_lossy()))
        .take(200)
        .collect();
    let imgs: Vec<image::RgbImage> = files
        .iter()
        .map(|f| {
            image::imageops::resize(
                &image::open(f).unwrap().to_rgb8(),
                64,
                64,
                FilterType::Triangle,
            )
        })
        .collect();
    let embed = |v: &[image::RgbImage]| -> anyhow::Result<Tensor> {
        let rows = v
            .iter()
            .map(|i| model.encoder.embed(i, None, &dev))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    };
    let src = embed(&imgs)?;
    let report = |name: &str, v: &[image::RgbImage]| -> anyhow::Result<()> {
        let e = embed(v)?;
        let sim: Vec<Vec<f32>> = e.matmul(&src.t()?)?.to_vec2()?;
        let (mut t1, mut t5, mut cs) = (0, 0, 0.0);
        for (i, row) in sim.iter().enumerate() {
            let better = row.iter().filter(|&&s| s > row[i]).count();
            t1 += usize::from(better == 0);
            t5 += usize::from(better < 5);
            cs += row[i];
        }
        println!(
            "{name:30} top1 {:5.1}% top5 {:5.1}% cos {:.3}",
            t1 as f64 / 2.0,
            t5 as f64 / 2.0,
            cs / 200.0
        );
        Ok(())
    };
    for k in [32u32, 16, 8, 4, 1] {
        let v: Vec<_> = imgs
            .iter()
            .map(|i| {
                image::imageops::resize(
                    &image::imageops::resize(i, k, k, FilterType::Triangle),
                    64,
                    64,
                    FilterType::Triangle,
                )
            })
            .collect();
        report(&format!("blurred via {k}x{k}"), &v)?;
    }
    // noise added (like residual sampler noise)
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for amp in [20.0f32, 50.0] {
        let v: Vec<_> = imgs
            .iter()
            .map(|i| {
                let mut o = i.clone();
                for p in o.iter_mut() {
                    *p = (*p as f32 + rng.random_range(-amp..amp)).clamp(0.0, 255.0) as u8;
                }
                o
            })
            .collect();
        report(&format!("uniform noise +-{amp}"), &v)?;
    }
    // mirrored
    let v: Vec<_> = imgs.iter().map(image::imageops::flip_horizontal).collect();
    report("mirrored", &v)?;
    // shifted by 8 px
    let v: Vec<_> = imgs
        .iter()
        .map(|i| {
            let mut o = image::RgbImage::from_pixel(64, 64, image::Rgb([255, 255, 255]));
            image::imageops::overlay(&mut o, i, 6, 6);
            o
        })
        .collect();
    report("shifted 6px", &v)?;
    Ok(())
}
