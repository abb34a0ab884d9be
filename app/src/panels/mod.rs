//! Panels: small structs (or functions) that draw one part of the window and return the
//! [`AppCommand`](crate::commands::AppCommand)s the user asked for. Names of drawing functions
//! end in `_ui`.

pub mod canvas;
pub mod controls;
pub mod gallery;
pub mod models;
pub mod multiview;
pub mod notifications;
pub mod prompt;
pub mod queue;
pub mod start_image;
pub mod viewer;
