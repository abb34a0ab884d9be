//! Commands that panels return and the app applies after the frame.

use std::path::PathBuf;

use lumos_engine::protocol::JobId;

use crate::gallery::RunId;

/// Which results of a run to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportSelection {
    /// Only the selected results.
    Selected,
    /// Every result of the run.
    All,
}

/// What to do with files that already exist in the export folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictChoice {
    /// Replace the existing files (the user said so).
    Overwrite,
    /// Write under a new name next to them.
    KeepBoth,
    /// Write nothing that would replace a file.
    Skip,
}

/// A change to the starting image's repaint mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskEdit {
    /// Take back the last stroke or edit.
    Undo,
    /// Apply again what was taken back.
    Redo,
    /// Swap repaint and keep.
    Invert,
    /// Remove the mask.
    Clear,
    /// Repaint where the starting image is transparent.
    FromAlpha,
}

/// Something the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// Load a reference image from a file.
    AddReferencePath(PathBuf),
    /// Load a reference image from bytes (a drop without a path, a paste).
    AddReferenceBytes {
        /// Display name.
        name: String,
        /// Encoded image.
        bytes: Vec<u8>,
    },
    /// Add a reference from pixels (a pasted image).
    AddReferencePixels {
        /// Display name.
        name: String,
        /// Width in pixels.
        width_px: usize,
        /// Height in pixels.
        height_px: usize,
        /// RGBA bytes (not premultiplied), row-major; the alpha feeds "mask from alpha".
        rgba: Vec<u8>,
    },
    /// Open the native file dialog to add references.
    OpenReferenceDialog,
    /// Remove the reference at this position.
    RemoveReference(usize),
    /// Move a reference one place.
    MoveReference {
        /// Current position.
        from: usize,
        /// New position.
        to: usize,
    },
    /// Start new images from this reference (img2img).
    StartFromReference(usize),
    /// Start new images from this result (img2img).
    StartFromResult {
        /// The run.
        run: RunId,
        /// Result index in the run.
        index: usize,
    },
    /// Start from noise again.
    ClearStartImage,
    /// Change the starting image's mask.
    EditMask(MaskEdit),
    /// Queue a generation with the current canvas and settings.
    Generate,
    /// Cancel a running or queued job.
    Cancel(JobId),
    /// Cancel the job that is running now (Esc).
    CancelCurrent,
    /// Show a result large.
    View {
        /// The run.
        run: RunId,
        /// Result index in the run.
        index: usize,
    },
    /// Close the large view.
    CloseViewer,
    /// Add a result to the canvas as a reference.
    UseAsReference {
        /// The run.
        run: RunId,
        /// Result index in the run.
        index: usize,
    },
    /// Take over the settings a result was made with.
    ReuseSettings {
        /// The run.
        run: RunId,
        /// Result index in the run.
        index: usize,
    },
    /// Remove a run from the gallery.
    RemoveRun(RunId),
    /// Export results of a run to the export folder.
    Export {
        /// The run.
        run: RunId,
        /// Which results.
        selection: ExportSelection,
    },
    /// Write the finished multi-view set into the export folder.
    ExportMultiviewSet {
        /// Replace files of an earlier set there (the user said so).
        replace: bool,
    },
    /// Answer to "files exist: overwrite?".
    ResolveExportConflict(ConflictChoice),
    /// Pick the export folder with the native dialog.
    ChooseExportFolderDialog,
    /// Look for model files in a folder.
    SearchModels(PathBuf),
    /// Pick a models folder with the native dialog.
    ChooseModelsFolderDialog,
    /// Hide a notification.
    DismissNotification(u64),
    /// Start a fresh engine thread (after it died).
    RestartEngine,
    /// Take back the most recent canvas or mask edit (Ctrl+Z).
    Undo,
    /// Apply again the most recently undone edit (Ctrl+Shift+Z).
    Redo,
    /// Empty the canvas for a new project.
    NewProject {
        /// Discard unsaved changes without asking (the user said so).
        discard: bool,
    },
    /// Pick a project file with the native dialog and open it.
    OpenProjectDialog,
    /// Open a project file.
    OpenProject {
        /// The `.lumos` file.
        path: PathBuf,
        /// Discard unsaved changes without asking (the user said so).
        discard: bool,
    },
    /// Save the project to its file (or ask where, the first time) (Ctrl+S).
    SaveProject,
    /// Pick where to save the project with the native dialog (Ctrl+Shift+S).
    SaveProjectAsDialog,
    /// Save the project to this file (`.lumos` is added when missing).
    SaveProjectAs {
        /// Where.
        path: PathBuf,
        /// Replace an existing file other than the project's own (the user said so).
        replace: bool,
    },
    /// Put back the work autosaved before the last session ended badly.
    RestoreAutosave,
    /// Do not restore it (it is kept aside, not deleted).
    DiscardAutosave,
    /// Close the question being asked without doing anything.
    CancelQuestion,
}
