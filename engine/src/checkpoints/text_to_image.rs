//! Discovery of the published text-to-image files in the usual places (the same roots as the
//! image-to-image model): `Lumos_T2I.pth`, the T5-v1.1-XXL folder (`DeepFloyd/t5-v1_1-xxl`:
//! `config.json`, `spiece.model` and the — usually sharded — weights) and the SD VAE folder.

use std::path::{Path, PathBuf};

use super::sharded::{INDEX_FILES, SINGLE_FILES};
use super::{candidate_dirs, find_vae, find_weights, search_roots};

/// File names of the published text-to-image release.
pub mod published {
    /// The Lumos T2I prior (`LumosT2IMS_XL_2`).
    pub const PRIOR: &str = "Lumos_T2I.pth";
    /// Hugging Face repository of the T5 encoder and tokenizer the demo downloads.
    pub const T5_REPO: &str = "DeepFloyd/t5-v1_1-xxl";
    /// The folder name the demo uses (`./checkpoints/t5-v1_1-xxl/`).
    pub const T5_FOLDER: &str = "t5-v1_1-xxl";
}

/// What discovery found for the text-to-image model.
#[derive(Clone, Debug, Default)]
pub struct TextToImageDiscovery {
    /// Folders searched, in order.
    pub searched: Vec<PathBuf>,
    /// `Lumos_T2I.pth` (or a `.safetensors` conversion).
    pub prior: Option<PathBuf>,
    /// A T5 folder: `config.json`, `spiece.model` and weights.
    pub text_encoder: Option<PathBuf>,
    /// The `sd-vae-ft-mse` diffusers folder.
    pub vae: Option<PathBuf>,
}

impl TextToImageDiscovery {
    /// Whether every part was found.
    pub fn is_complete(&self) -> bool {
        self.prior.is_some() && self.text_encoder.is_some() && self.vae.is_some()
    }

    /// A human-readable report: what was found where, what is missing and how to get it.
    pub fn report(&self) -> String {
        let line = |found: &Option<PathBuf>, what: &str, how: &str| match found {
            Some(path) => format!("found    {what}: {}\n", path.display()),
            None => format!("missing  {what}: {how}\n"),
        };
        let mut out = line(
            &self.prior,
            "Lumos T2I prior",
            "put Lumos_T2I.pth (from the Lumos release on Hugging Face) in a models folder",
        );
        out += &line(
            &self.text_encoder,
            "T5-v1.1-XXL text encoder",
            &format!(
                "put the {} folder (config.json, spiece.model and the weights, about 19 GB) in a \
                 models folder as `{}/`",
                published::T5_REPO,
                published::T5_FOLDER
            ),
        );
        out += &line(
            &self.vae,
            "SD VAE (sd-vae-ft-mse)",
            "put the stabilityai/sd-vae-ft-mse folder in a models folder as `sd-vae-ft-mse/`",
        );
        out += "searched:\n";
        for dir in &self.searched {
            out += &format!("  {}\n", dir.display());
        }
        out
    }
}

/// Whether `dir` holds a T5 encoder with its tokenizer.
fn is_t5_dir(dir: &Path) -> bool {
    let has_weights = INDEX_FILES
        .iter()
        .chain(SINGLE_FILES.iter())
        .any(|f| dir.join(f).is_file());
    dir.join("config.json").is_file() && dir.join("spiece.model").is_file() && has_weights
}

/// Looks for the published text-to-image files: `explicit` first, then `$LUMOS_MODELS`, the
/// app's data directory and the Hugging Face cache.
pub fn discover_text_to_image(explicit: Option<&Path>) -> TextToImageDiscovery {
    let roots = search_roots(explicit);
    let dirs: Vec<PathBuf> = roots.iter().flat_map(|r| candidate_dirs(r)).collect();
    let stem = published::PRIOR.trim_end_matches(".pth");
    let text_encoder = dirs.iter().find_map(|dir| {
        [dir.join(published::T5_FOLDER), dir.clone()]
            .into_iter()
            .find(|d| is_t5_dir(d))
    });
    TextToImageDiscovery {
        prior: find_weights(&dirs, stem),
        text_encoder,
        vae: find_vae(&dirs),
        searched: roots,
    }
}
