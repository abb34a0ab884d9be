//! Errors and notices shown in the app (and logged): what happened and what to do.

use crate::commands::AppCommand;

/// How serious a notification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something went wrong; the message says what to do.
    Error,
    /// Something worth knowing (an export finished).
    Info,
}

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Id for dismissing.
    pub id: u64,
    /// Seriousness.
    pub level: Level,
    /// The message.
    pub text: String,
}

/// Messages, newest last.
#[derive(Default)]
pub struct Notifications {
    items: Vec<Notification>,
    next_id: u64,
}

/// At most this many messages are kept; older ones are dropped.
const MAX_NOTIFICATIONS: usize = 8;

impl Notifications {
    /// Shows (and logs) an error.
    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        log::error!("{text}");
        self.push(Level::Error, text);
    }

    /// Shows (and logs) a notice.
    pub fn info(&mut self, text: impl Into<String>) {
        let text = text.into();
        log::info!("{text}");
        self.push(Level::Info, text);
    }

    fn push(&mut self, level: Level, text: String) {
        self.next_id += 1;
        self.items.push(Notification {
            id: self.next_id,
            level,
            text,
        });
        if self.items.len() > MAX_NOTIFICATIONS {
            self.items.remove(0);
        }
    }

    /// Hides a message.
    pub fn dismiss(&mut self, id: u64) {
        self.items.retain(|n| n.id != id);
    }

    /// The messages.
    pub fn items(&self) -> &[Notification] {
        &self.items
    }

    /// Draws the messages, each with a dismiss button.
    pub fn notifications_ui(&self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        for item in &self.items {
            let (color, tag) = match item.level {
                Level::Error => (ui.visuals().error_fg_color, "Error"),
                Level::Info => (ui.visuals().text_color(), "Note"),
            };
            ui.horizontal_wrapped(|ui| {
                if ui.small_button("Dismiss").clicked() {
                    commands.push(AppCommand::DismissNotification(item.id));
                }
                ui.colored_label(color, format!("{tag}: {}", item.text));
            });
        }
    }
}
