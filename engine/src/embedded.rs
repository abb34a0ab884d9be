//! Files compiled into the engine: the default prior and its autoencoder, the built-in
//! multi-view model, their encoder and the sample references, so that a fresh install makes
//! images and multi-view sets with no download. They are addressed by paths of the form
//! `embedded:NAME` wherever a weights path is accepted.

use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::protocol::ModelSpec;

/// Path prefix that names an embedded file.
pub const SCHEME: &str = "embedded:";

macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../assets/", $name)).as_slice(),
        )
    };
}

/// Every embedded file by name.
static FILES: &[(&str, &[u8])] = &[
    asset!("default/prior.safetensors"),
    asset!("default/autoencoder.safetensors"),
    asset!("default/model.json"),
    asset!("multiview/prior.safetensors"),
    asset!("multiview/model.json"),
    asset!("prompt/prompt.safetensors"),
    asset!("prompt/held_out_prompts.tsv"),
    asset!("encoder/efficientnet_lite0.safetensors"),
    // The two emoji first: references in the style the built-in model knows.
    asset!("samples/grinning_face.png"),
    asset!("samples/tangerine.png"),
    asset!("samples/astronaut.jpg"),
    asset!("samples/chelsea.jpg"),
    asset!("samples/coffee.jpg"),
    asset!("samples/grace_hopper.jpg"),
    asset!("samples/rocket.jpg"),
];

/// The bytes of an embedded file.
pub fn file(name: &str) -> Option<&'static [u8]> {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The embedded file a path names, if it uses the `embedded:` scheme.
pub fn resolve(path: &Path) -> Option<Result<&'static [u8]>> {
    let name = path.to_str()?.strip_prefix(SCHEME)?;
    Some(file(name).ok_or_else(|| EngineError::Checkpoint {
        path: path.to_path_buf(),
        reason: "no such embedded file".into(),
    }))
}

/// Names of the embedded sample references (`samples/…`).
pub fn samples() -> impl Iterator<Item = &'static str> {
    FILES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with("samples/"))
}

/// What follows the manifest's name in a built-in model's name.
pub const DEFAULT_NAME_SUFFIX: &str = " (built in)";

/// What the app tells a user about the built-in model, in plain words.
pub const DEFAULT_MODEL_NOTE: &str = "The built-in model is small (128 px) and was trained by this \
project on emoji and clip art: it keeps the subject, colours and layout of emoji-like references \
(faces, animals, signs, flags, objects on white), with soft, ragged edges. Photos are outside \
what it learned and come out as rough coloured shapes. \
For photographs, install the full Lumos model (Models, below).";

/// What the app tells a user about the built-in multi-view model, in plain words.
pub const MULTIVIEW_MODEL_NOTE: &str = "The built-in multi-view model is small (64 px) and was \
trained by this project on simple textured shapes it rendered itself (balls, boxes, cylinders, \
cones): it turns the object's outline and shading with the camera, but its textures come out \
blurred or noisy. For real objects, add a Zero123-family checkpoint (Models, below).";

/// Whether a model name is a built-in model's.
pub fn is_default_name(name: &str) -> bool {
    name.ends_with(DEFAULT_NAME_SUFFIX)
}

/// The default model: the small prior this project trains (see `assets/default/MODEL_CARD.md`).
pub fn default_spec() -> Result<ModelSpec> {
    builtin_spec("default")
}

/// The built-in multi-view model: the novel-view config of the same DiT, started from the
/// default prior and trained on objects the engine renders (`assets/multiview/MODEL_CARD.md`).
pub fn multiview_spec() -> Result<ModelSpec> {
    builtin_spec("multiview")
}

/// The spec of the built-in model in `folder` (its `model.json` and `prior.safetensors`, with
/// the shared encoder).
fn builtin_spec(folder: &str) -> Result<ModelSpec> {
    let manifest = format!("{folder}/model.json");
    let json = file(&manifest).unwrap_or_default();
    let mut spec: ModelSpec =
        serde_json::from_slice(json).map_err(|e| EngineError::Checkpoint {
            path: PathBuf::from(format!("{SCHEME}{manifest}")),
            reason: format!("bad manifest: {e}"),
        })?;
    spec.prior.path = PathBuf::from(format!("{SCHEME}{folder}/prior.safetensors"));
    spec.encoder.path = PathBuf::from(format!("{SCHEME}encoder/efficientnet_lite0.safetensors"));
    spec.name = format!("{}{DEFAULT_NAME_SUFFIX}", spec.name);
    Ok(spec)
}
