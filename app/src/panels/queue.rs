//! The queue: the running job with its progress (step, it/s, ETA) and the waiting ones.

use crate::commands::AppCommand;
use crate::jobs::{JobQueue, JobState, Progress, format_duration};

/// Draws the queue; returns Cancel commands.
pub fn queue_ui(ui: &mut egui::Ui, queue: &JobQueue, commands: &mut Vec<AppCommand>) {
    ui.heading("Queue");
    if queue.is_empty() {
        ui.weak("Idle.");
        return;
    }
    for tracked in queue.jobs() {
        // Button first: a long description must not push it out of the panel.
        ui.horizontal_wrapped(|ui| {
            let action = match tracked.state {
                JobState::Running(_) => "Cancel",
                JobState::Waiting => "Remove",
            };
            if ui
                .add_enabled(!tracked.cancelling, egui::Button::new(action))
                .on_hover_text("Esc cancels the running job")
                .clicked()
            {
                commands.push(AppCommand::Cancel(tracked.job));
            }
            let state = match (&tracked.state, tracked.cancelling) {
                (_, true) => "cancelling…",
                (JobState::Running(_), false) => "running",
                (JobState::Waiting, false) => "waiting",
            };
            ui.label(format!("#{} {} — {state}", tracked.job, tracked.summary));
        });
    }
}

/// One line of progress: `step 7/20 · 3.1 it/s · ETA 4.2 s · image 1/4`.
pub fn progress_text(progress: &Progress) -> String {
    let mut text = format!("Step {}/{}", progress.step, progress.steps);
    if let Some(rate) = progress.steps_per_sec {
        text.push_str(&format!(" · {rate:.1} it/s"));
    }
    if let Some(eta) = progress.eta() {
        text.push_str(&format!(" · ETA {}", format_duration(eta)));
    }
    text.push_str(&format!(
        " · {} of {} images",
        progress.images_done, progress.images
    ));
    text
}

/// The progress bar of the running job.
pub fn progress_ui(ui: &mut egui::Ui, progress: &Progress) {
    let bar = if progress.step == 0 {
        egui::ProgressBar::new(0.0).text("Loading model and encoding references…")
    } else {
        egui::ProgressBar::new(progress.fraction()).text(progress_text(progress))
    };
    ui.add(bar.animate(true));
}
