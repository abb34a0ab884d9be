//! Zero123-family checkpoints (Zero-1-to-3, Zero123-XL, Stable Zero123) as the app's
//! multi-view models, beside the Lumos models the rest of the app knows as `ModelSpec`s.
//!
//! They are files (or diffusers folders) the user brings, found by Models > Search in a folder
//! and at start-up where the engine looks for weights, named by their file so that a user
//! can tell `zero123-xl.ckpt` from `stable_zero123.ckpt`, and carry a licence the app must
//! show (Stable Zero123's forbids commercial use). The chosen one is remembered by path in
//! the settings, not only by name: no search may find it again after a restart, and a
//! project opened elsewhere names a file that may be gone — then the choice is kept and the
//! app says where the file was, instead of silently falling back to another model.

use std::path::{Path, PathBuf};

use lumos_engine::checkpoints::zero123::{self, Zero123Licence};
use lumos_engine::protocol::{ModelSpec, Precision, Zero123Spec};

/// One Zero123-family checkpoint the app can make multi-view sets with.
#[derive(Clone, Debug, PartialEq)]
pub struct Zero123Checkpoint {
    /// Name in the model list: the file name and the family (`zero123-xl.ckpt · Zero123`).
    pub name: String,
    /// The checkpoint file or diffusers folder.
    pub path: PathBuf,
    /// Its terms of use.
    pub licence: Zero123Licence,
}

impl Zero123Checkpoint {
    /// The entry of the checkpoint at `path` (which need not exist any more).
    pub fn new(path: &Path) -> Self {
        Self {
            name: format!("{} · Zero123", zero123::checkpoint_name(path)),
            path: path.to_owned(),
            licence: zero123::licence_of(path),
        }
    }

    /// Whether the file (or folder) is still where it was found.
    pub fn is_present(&self) -> bool {
        self.path.exists()
    }

    /// What the engine loads.
    pub fn spec(&self, precision: Precision) -> Zero123Spec {
        Zero123Spec {
            name: self.name.clone(),
            path: self.path.clone(),
            precision,
        }
    }

    /// The error shown when the file is gone: what it was, where, and what to do.
    pub fn missing_message(&self) -> String {
        format!(
            "The Zero123 checkpoint {} is gone (moved or deleted): put it back, or search its \
             new folder under Models and choose it again. It was at {}",
            self.name,
            self.path.display()
        )
    }
}

/// The Zero123 checkpoints the app knows, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Zero123Models {
    checkpoints: Vec<Zero123Checkpoint>,
}

impl Zero123Models {
    /// Every checkpoint known.
    pub fn all(&self) -> &[Zero123Checkpoint] {
        &self.checkpoints
    }

    /// The checkpoint of this model-list name.
    pub fn by_name(&self, name: &str) -> Option<&Zero123Checkpoint> {
        self.checkpoints.iter().find(|c| c.name == name)
    }

    /// Adds the checkpoint at `path` unless it is known; returns its entry. A second file of
    /// the same name elsewhere is told apart by its folder.
    pub fn add(&mut self, path: &Path) -> &Zero123Checkpoint {
        let index = match self.checkpoints.iter().position(|c| c.path == path) {
            Some(index) => index,
            None => {
                let mut checkpoint = Zero123Checkpoint::new(path);
                if self.by_name(&checkpoint.name).is_some() {
                    let folder = path
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    checkpoint.name = format!("{} (in {folder})", checkpoint.name);
                }
                self.checkpoints.push(checkpoint);
                self.checkpoints.len() - 1
            }
        };
        &self.checkpoints[index]
    }

    /// Adds every checkpoint in `dir` (see `zero123::find_in`); returns the ones found.
    pub fn search(&mut self, dir: &Path) -> Vec<Zero123Checkpoint> {
        zero123::find_in(dir)
            .iter()
            .map(|path| self.add(path).clone())
            .collect()
    }
}

/// The model the next run uses.
#[derive(Clone, Copy, Debug)]
pub enum ChosenModel<'a> {
    /// A Lumos model (image-to-image, or a Lumos novel-view model).
    Lumos(&'a ModelSpec),
    /// A Zero123-family checkpoint (multi-view sets only).
    Zero123(&'a Zero123Checkpoint),
}

impl ChosenModel<'_> {
    /// Its name in the model list.
    pub fn name(&self) -> &str {
        match self {
            Self::Lumos(spec) => &spec.name,
            Self::Zero123(checkpoint) => &checkpoint.name,
        }
    }

    /// What the app tells a user about it in plain words when it is a built-in model.
    pub fn built_in_note(&self) -> Option<&'static str> {
        use lumos_engine::embedded::{DEFAULT_MODEL_NOTE, MULTIVIEW_MODEL_NOTE, is_default_name};
        match self {
            Self::Lumos(spec) if is_default_name(&spec.name) => Some(if spec.is_novel_view() {
                MULTIVIEW_MODEL_NOTE
            } else {
                DEFAULT_MODEL_NOTE
            }),
            _ => None,
        }
    }

    /// Whether it makes views from other cameras (and only those).
    pub fn is_multiview(&self) -> bool {
        match self {
            Self::Lumos(spec) => spec.is_novel_view(),
            Self::Zero123(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_named_by_file_and_told_apart_by_folder() {
        let mut models = Zero123Models::default();
        let first = models.add(Path::new("/models/stable_zero123.ckpt")).clone();
        assert_eq!(first.name, "stable_zero123.ckpt · Zero123");
        assert_eq!(first.licence, Zero123Licence::StabilityNonCommercial);
        assert!(!first.is_present());
        assert!(
            first
                .missing_message()
                .contains("/models/stable_zero123.ckpt")
        );
        // The same file again is the same entry.
        models.add(Path::new("/models/stable_zero123.ckpt"));
        assert_eq!(models.all().len(), 1);
        let second = models.add(Path::new("/other/stable_zero123.ckpt")).clone();
        assert_eq!(second.name, "stable_zero123.ckpt · Zero123 (in /other)");
        assert_eq!(models.by_name(&second.name), Some(&second));
        assert!(ChosenModel::Zero123(&second).is_multiview());
    }
}
