//! Helpers shared by the integration tests: where the fixtures are, how to report parity, and
//! a tiny novel-view model for the tests of the multi-view mode (the app's UI tests use it).

use std::path::PathBuf;

use candle_core::DType;
use lumos_engine::selftest::Check;

/// The fixture root (`$LUMOS_FIXTURES`, `../shared/fixtures`, or the vendored copy).
pub fn fixtures_root() -> PathBuf {
    lumos_engine::checkpoints::fixtures_root()
}

/// Whether a missing fixture folder must fail the run (it must on CI).
pub fn fixtures_required() -> bool {
    std::env::var_os("CI").is_some()
}

/// Runs the parity checks of one fixture folder and fails with a table of every tensor that
/// is out of tolerance. A missing folder fails on CI and is reported as skipped elsewhere.
pub fn assert_fixture_parity(name: &str) {
    assert_fixture_parity_in(name, DType::F32);
}

/// As [`assert_fixture_parity`], with the fixture's networks run in `dtype` (half precision
/// is held to `selftest::network_tolerance`).
pub fn assert_fixture_parity_in(name: &str, dtype: DType) {
    let root = fixtures_root();
    if !root.join(name).is_dir() {
        assert!(
            !fixtures_required(),
            "fixture folder {name} is missing under {} (CI requires every fixture)",
            root.display()
        );
        eprintln!(
            "SKIPPED: fixture folder {name} not found under {}",
            root.display()
        );
        return;
    }
    let checks =
        lumos_engine::selftest::check_fixture(&root, name, &candle_core::Device::Cpu, dtype)
            .unwrap_or_else(|e| panic!("fixture {name} could not be checked: {e:#}"));
    assert!(!checks.is_empty(), "fixture {name} produced no checks");
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
    for check in &checks {
        eprintln!(
            "{:<40} {:<40} max err {:.3e} (max|ref| {:.3e}) {}",
            check.group,
            check.name,
            check.max_abs_err,
            check.max_abs_ref,
            if check.passed { "ok" } else { "FAILED" }
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} tensors out of tolerance in {name}: {}",
        failed.len(),
        checks.len(),
        failed
            .iter()
            .map(|c| format!(
                "{} {} (err {:.3e}, tol {})",
                c.group, c.name, c.max_abs_err, c.tolerance
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// A tiny novel-view prior with random weights (the Lumos NVS config in pixel space with the
/// built-in encoder, 16 px): `prior.safetensors` and `model.json` written into `dir`. The
/// same configuration as the engine's own `lumos multiview` tests; its views look like noise,
/// but every stage of a multi-view set runs.
pub fn tiny_novel_view_model(dir: &std::path::Path) -> lumos_engine::protocol::ModelSpec {
    use candle_core::{Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use lumos_engine::models::{LumosConfig, LumosI2I};
    use lumos_engine::protocol::{ComponentSpec, ModelSpec, Precision};

    let encoder = lumos_engine::embedded::default_spec()
        .expect("built-in model")
        .encoder;
    let mut config = LumosConfig::xl_2();
    config.input_size = 16;
    config.patch_size = 4;
    config.in_channels = 3;
    config.hidden_size = 32;
    config.depth = 2;
    config.num_heads = 2;
    config.caption_channels = encoder.config.embed_dim();
    config.model_max_length = 1;
    config.pred_sigma = false;
    config.adaln_condition = true;
    config.input_view_channels = 3;
    config.pose_condition = true;
    let varmap = VarMap::new();
    LumosI2I::load(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("build");
    for (i, var) in varmap.all_vars().iter().enumerate() {
        let noise = Tensor::randn(0f32, 0.2, var.shape(), &Device::Cpu).expect("randn");
        var.set(&(noise + 0.01 * i as f64).expect("add"))
            .expect("set");
    }
    let weights = dir.join("prior.safetensors");
    varmap.save(&weights).expect("save weights");
    let spec = ModelSpec {
        name: "tiny novel-view test model".into(),
        precision: Precision::F32,
        prior: ComponentSpec {
            path: weights,
            config,
        },
        encoder,
        vae: None,
        guidance: None,
        object_fill: None,
    };
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string(&spec).expect("json"),
    )
    .expect("write model.json");
    spec
}

/// The tiny text-to-image model of the fixtures, as the app's prompt tests run it: the
/// `lumos_t2ims_tiny` prior, the `t5_tokenizer_tiny` tokenizer, the `t5_tiny` encoder widened
/// to the tokenizer's vocabulary (the fixtures hold no matching pair; row `i` is the fixture's
/// row `i mod vocab`) and written into `t5_dir` as a sharded Hugging Face folder, and the
/// `pipeline_tiny` VAE. The same model as the engine's own text-to-image tests; `None` (with
/// SKIPPED) when a fixture folder is missing outside CI.
pub fn tiny_text_to_image_spec(
    t5_dir: &std::path::Path,
) -> Option<lumos_engine::pipelines::text_to_image::TextToImageSpec> {
    use std::collections::HashMap;

    use candle_core::{Device, Tensor};
    use lumos_engine::checkpoints::read_config;
    use lumos_engine::models::{LumosT2IConfig, T5Config, VaeConfig};
    use lumos_engine::text::T5Tokenizer;

    let root = fixtures_root();
    let dirs: Vec<PathBuf> = [
        "lumos_t2ims_tiny",
        "t5_tiny",
        "t5_tokenizer_tiny",
        "pipeline_tiny",
    ]
    .iter()
    .map(|n| root.join(n))
    .collect();
    if let Some(missing) = dirs.iter().find(|d| !d.is_dir()) {
        assert!(
            !fixtures_required(),
            "missing fixture {}",
            missing.display()
        );
        println!("SKIPPED: no fixture {}", missing.display());
        return None;
    }
    let tokenizer = T5Tokenizer::from_file(&dirs[2].join("spiece.model")).expect("tokenizer");
    let vocab_size = tokenizer.vocab_size();
    let mut t5_config: T5Config = read_config(&dirs[1].join("config.json")).expect("t5 config");
    let tensors = candle_core::safetensors::load(dirs[1].join("weights.safetensors"), &Device::Cpu)
        .expect("t5 weights");
    let shared = &tensors["shared.weight"];
    let rows = shared.dim(0).expect("rows");
    let index: Vec<u32> = (0..vocab_size).map(|i| (i % rows) as u32).collect();
    let index = Tensor::new(index.as_slice(), &Device::Cpu).expect("index");
    let widened = shared.index_select(&index, 0).expect("widen");
    t5_config.vocab_size = vocab_size;
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (i, key) in keys.iter().enumerate() {
        let value = if key.ends_with("embed_tokens.weight") || key.as_str() == "shared.weight" {
            widened.clone()
        } else {
            tensors[*key].clone()
        };
        shards[i % 2].insert((*key).clone(), value);
        weight_map.insert(
            (*key).clone(),
            format!("model-0000{}-of-00002.safetensors", i % 2 + 1).into(),
        );
    }
    for (i, shard) in shards.iter().enumerate() {
        candle_core::safetensors::save(
            shard,
            t5_dir.join(format!("model-0000{}-of-00002.safetensors", i + 1)),
        )
        .expect("save shard");
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        t5_dir.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("write index");
    let vae = dirs[3].join("vae");
    Some(lumos_engine::pipelines::text_to_image::TextToImageSpec {
        name: "tiny text-to-image (test fixtures, random weights)".into(),
        precision: Default::default(),
        prior: dirs[0].join("weights.safetensors"),
        prior_config: read_config::<LumosT2IConfig>(&dirs[0].join("config.json"))
            .expect("prior config"),
        text_encoder: t5_dir.to_path_buf(),
        text_encoder_config: t5_config,
        tokenizer: dirs[2].join("spiece.model"),
        vae: vae.clone(),
        vae_config: read_config::<VaeConfig>(&vae.join("config.json")).expect("vae config"),
    })
}
