//! The Lumos engine: everything that computes, and nothing that draws.
//!
//! It holds the Lumos DiT, the DINO ViT, EfficientNet-Lite0 and the SD VAE in candle (`models`), the
//! DPM-Solver++/DDIM samplers (`sampling`), staged generation pipelines (`pipelines`),
//! checkpoint discovery and loading (`checkpoints`), the text-to-image prompt path (`text`:
//! caption cleaning and the T5 tokenizer), the encoder's image transform (`preprocess`), image
//! IO with embedded settings (`imageio`), project files (`project`), repaint masks (`mask`),
//! orbit cameras (`camera`), multi-view sets written for 3D tools (`multiview_export`),
//! procedural multi-view ground truth (`synthetic`) and its figures (`multiview_eval`),
//! labelled contact sheets (`contact_sheet`), parity checks against fixtures (`selftest`),
//! benchmarks (`bench`), the trainer of small priors (`train`) and the engine thread with its job protocol (`worker`, `protocol`).
//!
//! Boundaries: this crate must not depend on egui, eframe, wgpu, winit or rfd. Models and
//! solvers are pure and single-threaded from the caller's point of view (candle uses rayon
//! inside); only `worker` owns a thread and channels.

pub mod bench;
pub mod camera;
pub mod checkpoints;
pub mod contact_sheet;
pub mod device;
pub mod embedded;
pub mod error;
pub mod eval;
pub mod imageio;
pub mod mask;
pub mod models;
pub mod multiview_eval;
pub mod multiview_export;
pub mod noise;
pub mod pillow;
pub mod pipelines;
pub mod preprocess;
pub mod project;
pub mod protocol;
pub mod sampling;
pub mod selftest;
pub mod synthetic;
pub mod text;
pub mod train;
pub mod worker;

pub use error::EngineError;
