//! The engine's error type: structured variants at the boundary, candle errors inside.

use std::path::PathBuf;

/// Everything that can go wrong in the engine, phrased so that a user knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A checkpoint file could not be read or does not match the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },

    /// A tensor in a checkpoint has the wrong shape.
    #[error("checkpoint {path}: key `{key}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// A key the model needs is missing from its checkpoint.
    #[error("checkpoint {path}: key `{key}` is missing (is this the right file for this model?)")]
    MissingKey { path: PathBuf, key: String },

    /// An image could not be decoded or is unreasonably large.
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },

    /// A project file could not be read.
    #[error("project {path}: {reason}")]
    Project { path: PathBuf, reason: String },

    /// A file could not be written.
    #[error("could not write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    /// The request itself is invalid (e.g. no references, zero steps).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The job was cancelled; not an error for the user, but it ends the pipeline.
    #[error("cancelled")]
    Cancelled,

    /// A numeric failure inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An IO failure with its path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Shorthand for engine results.
pub type Result<T> = std::result::Result<T, EngineError>;
