//! Lumos Studio, the desktop app: artists drop reference images on a canvas and get new images
//! from them with the Lumos diffusion prior, locally.
//!
//! Shape (eframe's and rerun's): [`app::LumosApp`] drains engine events in `logic` and lays out
//! panels in `ui`. Panels (`panels`) are small structs whose `*_ui` functions return
//! [`commands::AppCommand`]s; the app applies them after the frame. Persisted
//! [`settings::Settings`] (serde, versioned) are kept apart from transient state (jobs,
//! textures, selection). Live previews, the before/after wipe, the starting image's mask
//! overlay and the multi-view turntable are drawn by the WGSL shaders of `lumos-shaders`
//! through egui_wgpu paint callbacks (`preview`, `turntable`), or from CPU maps and textures
//! on other renderers.
//!
//! Boundaries: the app talks to the engine only through `lumos_engine::protocol` and
//! `lumos_engine::worker::EngineHandle`; it never touches models or tensors.
//!
//! Threads: everything here runs on the UI thread, except the engine thread (owned by the
//! handle) and short-lived threads that wait on native file dialogs. Nothing blocks the UI on
//! the engine: events arrive over a channel and wake the UI with `request_repaint`.

pub mod app;
pub mod bench;
pub mod commands;
pub mod engine_link;
pub mod export;
pub mod gallery;
pub mod history;
pub mod jobs;
pub mod multiview;
pub mod panels;
pub mod preview;
pub mod project;
pub mod prompt;
pub mod references;
pub mod settings;
pub mod turntable;
pub mod undo;
pub mod view_transform;
pub mod zero123_models;

pub use app::{AppConfig, LumosApp};
