//! Undo and redo across the canvas: adding, removing and reordering references, their weights
//! and crops (whole canvas states), interleaved with the start image's mask strokes (which the
//! start image keeps itself), so that Ctrl+Z always takes back the most recent edit of either.
//!
//! Canvas edits are not announced by the code that makes them (panels, drops, pastes, results
//! used as references, a project opened): after every frame the canvas is compared with the
//! last committed state, and a difference becomes one step. A drag of a weight slider or a crop
//! is one step, because nothing is committed while a pointer button is down. A state costs a
//! few words per reference: pixels are shared (`Arc`), never copied.

use std::sync::Arc;

use image::{GrayImage, RgbImage};

use crate::commands::MaskEdit;
use crate::panels::start_image::StartImage;
use crate::references::{Canvas, Reference};

/// Steps kept; the oldest are forgotten first.
pub const MAX_UNDO_STEPS: usize = 100;

/// What a reference is, without its texture and view.
#[derive(Clone)]
struct ReferenceState {
    name: String,
    path: Option<std::path::PathBuf>,
    image: Arc<RgbImage>,
    alpha: Option<Arc<GrayImage>>,
    weight: f32,
    crop: [f32; 2],
}

impl PartialEq for ReferenceState {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.path == other.path
            && Arc::ptr_eq(&self.image, &other.image)
            && self.weight == other.weight
            && self.crop == other.crop
    }
}

/// The canvas's references at one moment.
#[derive(Clone, Default, PartialEq)]
pub struct CanvasState(Vec<ReferenceState>);

impl CanvasState {
    /// The state of `canvas` now.
    pub fn of(canvas: &Canvas) -> Self {
        Self(
            canvas
                .references
                .iter()
                .map(|r| ReferenceState {
                    name: r.name.clone(),
                    path: r.path.clone(),
                    image: r.image.clone(),
                    alpha: r.alpha.clone(),
                    weight: r.weight,
                    crop: r.crop,
                })
                .collect(),
        )
    }

    /// Puts this state on `canvas`, keeping the textures of references whose pixels stay.
    fn apply_to(&self, canvas: &mut Canvas) {
        let mut old = std::mem::take(&mut canvas.references);
        canvas.references = self
            .0
            .iter()
            .map(|state| {
                let kept = old
                    .iter()
                    .position(|r| Arc::ptr_eq(&r.image, &state.image))
                    .map(|i| old.swap_remove(i));
                let mut reference = kept.unwrap_or_else(|| {
                    Reference::from_shared(state.name.clone(), None, state.image.clone())
                });
                reference.name = state.name.clone();
                reference.path = state.path.clone();
                reference.alpha = state.alpha.clone();
                reference.weight = state.weight;
                reference.crop = state.crop;
                reference
            })
            .collect();
    }
}

enum Step {
    /// The canvas as it was before (on the undo stack) or after (on the redo stack).
    Canvas(CanvasState),
    /// A mask edit, undone and redone by the start image itself.
    Mask,
}

/// The undo and redo stacks.
#[derive(Default)]
pub struct UndoHistory {
    undo: Vec<Step>,
    redo: Vec<Step>,
    committed: CanvasState,
    /// The start image seen last (its id) and how many mask edits it had made.
    mask_seen: Option<(u64, u64)>,
}

impl UndoHistory {
    /// Records what changed since the last call; `interacting` (a pointer button held) defers
    /// canvas changes so that a drag becomes one step.
    pub fn observe(&mut self, canvas: &Canvas, start: Option<&StartImage>, interacting: bool) {
        let seen = start.map(|s| (s.id(), s.edit_count()));
        match (self.mask_seen, seen) {
            (Some((old_id, old_edits)), Some((id, edits))) if old_id == id => {
                for _ in old_edits..edits {
                    self.push(Step::Mask);
                }
            }
            (old, new) if old.map(|o| o.0) != new.map(|n| n.0) => {
                // Another start image (or none): its strokes cannot be undone from here.
                self.undo.retain(|s| matches!(s, Step::Canvas(_)));
                self.redo.retain(|s| matches!(s, Step::Canvas(_)));
            }
            _ => {}
        }
        self.mask_seen = seen;
        if !interacting {
            let now = CanvasState::of(canvas);
            if now != self.committed {
                let before = std::mem::replace(&mut self.committed, now);
                self.push(Step::Canvas(before));
            }
        }
    }

    fn push(&mut self, step: Step) {
        if self.undo.len() == MAX_UNDO_STEPS {
            self.undo.remove(0);
        }
        self.undo.push(step);
        self.redo.clear();
    }

    /// Takes back the most recent edit; `false` when there is none.
    pub fn undo(&mut self, canvas: &mut Canvas, start: Option<&mut StartImage>) -> bool {
        self.step(canvas, start, true)
    }

    /// Applies again the most recently undone edit; `false` when there is none.
    pub fn redo(&mut self, canvas: &mut Canvas, start: Option<&mut StartImage>) -> bool {
        self.step(canvas, start, false)
    }

    fn step(&mut self, canvas: &mut Canvas, start: Option<&mut StartImage>, back: bool) -> bool {
        // An edit not yet observed (made this frame) is committed first, so it is what goes.
        let now = CanvasState::of(canvas);
        if now != self.committed {
            let before = std::mem::replace(&mut self.committed, now);
            self.push(Step::Canvas(before));
        }
        let (from, to) = if back {
            (&mut self.undo, &mut self.redo)
        } else {
            (&mut self.redo, &mut self.undo)
        };
        let Some(step) = from.pop() else {
            return false;
        };
        match step {
            Step::Canvas(state) => {
                to.push(Step::Canvas(std::mem::replace(
                    &mut self.committed,
                    state.clone(),
                )));
                state.apply_to(canvas);
            }
            Step::Mask => {
                if let Some(start) = start {
                    start.edit_mask(if back { MaskEdit::Undo } else { MaskEdit::Redo });
                }
                to.push(Step::Mask);
            }
        }
        true
    }

    /// Whether there is an edit to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is an undone edit to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(canvas: &Canvas) -> Vec<(String, f32)> {
        canvas
            .references
            .iter()
            .map(|r| (r.name.clone(), r.weight))
            .collect()
    }

    fn reference(name: &str) -> Reference {
        Reference::new(name.into(), None, RgbImage::new(2, 2))
    }

    #[test]
    fn adds_removals_moves_and_weight_drags_undo_one_step_each() {
        let mut canvas = Canvas::default();
        let mut history = UndoHistory::default();
        canvas.push(reference("a"));
        history.observe(&canvas, None, false);
        canvas.push(reference("b"));
        history.observe(&canvas, None, false);
        canvas.move_to(0, 1);
        history.observe(&canvas, None, false);
        // A drag: several frames with the pointer down, one step.
        for weight in [1.2, 1.5, 1.8] {
            canvas.references[0].weight = weight;
            history.observe(&canvas, None, true);
        }
        history.observe(&canvas, None, false);
        canvas.remove(1);
        history.observe(&canvas, None, false);
        assert_eq!(names(&canvas), [("b".into(), 1.8)]);

        assert!(history.undo(&mut canvas, None));
        assert_eq!(names(&canvas), [("b".into(), 1.8), ("a".into(), 1.0)]);
        assert!(history.undo(&mut canvas, None));
        assert_eq!(names(&canvas), [("b".into(), 1.0), ("a".into(), 1.0)]);
        assert!(history.undo(&mut canvas, None));
        assert_eq!(names(&canvas), [("a".into(), 1.0), ("b".into(), 1.0)]);
        assert!(history.redo(&mut canvas, None));
        assert!(history.redo(&mut canvas, None));
        assert_eq!(names(&canvas), [("b".into(), 1.8), ("a".into(), 1.0)]);
        // A new edit forgets what was undone.
        canvas.references[1].crop = [0.0, 0.5];
        history.observe(&canvas, None, false);
        assert!(!history.can_redo());
        assert!(history.undo(&mut canvas, None));
        assert_eq!(canvas.references[1].crop, [0.5, 0.5]);
        // The drag, the move and the two adds.
        for _ in 0..4 {
            assert!(history.undo(&mut canvas, None));
        }
        assert!(canvas.references.is_empty());
        assert!(
            !history.undo(&mut canvas, None),
            "nothing before the first edit"
        );
    }

    #[test]
    fn mask_strokes_and_canvas_edits_undo_in_the_order_they_were_made() {
        let mut canvas = Canvas::default();
        let mut history = UndoHistory::default();
        let mut start = StartImage::new("start".into(), &RgbImage::new(8, 8));
        history.observe(&canvas, Some(&start), false);
        let brush = crate::panels::start_image::Brush::hard(
            2.0,
            crate::panels::start_image::BrushMode::Paint,
        );
        start.stroke_to(egui::pos2(2.0, 2.0), brush);
        start.end_stroke();
        history.observe(&canvas, Some(&start), false);
        canvas.push(reference("a"));
        history.observe(&canvas, Some(&start), false);
        assert!(start.masked_pixels() > 0);

        assert!(history.undo(&mut canvas, Some(&mut start)));
        assert!(canvas.references.is_empty());
        assert!(
            start.masked_pixels() > 0,
            "the stroke is older than the reference"
        );
        assert!(history.undo(&mut canvas, Some(&mut start)));
        assert_eq!(start.masked_pixels(), 0);
        assert!(history.redo(&mut canvas, Some(&mut start)));
        assert!(start.masked_pixels() > 0);
        assert!(history.redo(&mut canvas, Some(&mut start)));
        assert_eq!(names(&canvas), [("a".into(), 1.0)]);

        // A different start image: its predecessor's strokes are no longer undoable.
        let other = StartImage::new("other".into(), &RgbImage::new(8, 8));
        history.observe(&canvas, Some(&other), false);
        assert!(history.undo(&mut canvas, None));
        assert!(canvas.references.is_empty());
        assert!(!history.can_undo());
    }
}
